"""Once the state's store failed, a change in flight that has not sent its call yet (it waits for
its turn at the instance's rate, or in a pause) sends nothing: it ends as not started, saying why.
Before, it sent its create when its turn came, could not journal the key it made, and revoked it:
a key made and revoked for nothing, on an API that was rate-limiting keyform already. The revoke
of a key whose record failed is still sent (the store failing must never leave a live key no
journal knows of)."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import BinaryIO

import pytest

from harness.project import Project
from keyform import fsio
from keyform.backends import local
from tests.hostile import Seen, hostile


class FullDisk:
    """The journal's writes fail with ENOSPC from the first `created` record on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self._real = fsio.append_lines
        monkeypatch.setattr(local, "append_lines", self.append_lines)

    def append_lines(self, fh: BinaryIO, lines: list[str]) -> None:
        self.full = self.full or any('"op":"created"' in line for line in lines)
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._real(fh, lines)


def test_a_change_waiting_for_its_turn_when_the_store_fails_is_not_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def script(seen: Seen) -> None:
        if seen.method == "POST":
            calls.append(f"revoke {seen.path}" if seen.path.endswith("/revoke")
                         else f"create {json.loads(seen.body)['name']}")

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        # one call a second: k0's create goes first, k1's waits for its turn (both intents journaled)
        project.questra("k0: {provider: qp, name: k0}\nk1: {provider: qp, name: k1}\n")
        text = project.manifest.read_text().replace("    org_id:", "    rate_limit: 1/s\n    org_id:", 1)
        project.manifest.write_text(text)
        FullDisk(monkeypatch)
        res = project.run("apply", "--auto-approve", "--parallelism", "2", "--no-refresh")
    assert res.exit_code == 1, res.output
    # k1's create was not sent once the journal failed; k0's key, which it could not record, was revoked
    assert calls == ["create k0", "revoke /api-keys/ak_1/revoke"], calls
    assert "k1: not sent: the apply journal could not be written while it waited" in res.stderr, res.stderr
    assert "1 change(s) not started (1 create): k1." in res.stderr, res.stderr
    assert "Traceback" not in res.output
