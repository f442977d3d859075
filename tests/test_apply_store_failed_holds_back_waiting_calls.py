"""Once the state's store failed, a change in flight that has not sent its call yet (it waits for
its turn at the instance's rate, or in a pause) sends nothing: it ends as not started, saying why.
Before, it sent its create when its turn came, could not journal the key it made, and revoked it:
a key made and revoked for nothing, on an API that was rate-limiting keyform already. The revoke
of a key whose record failed is still sent (the store failing must never leave a live key no
journal knows of)."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from harness.project import Project
from keyform import fsio
from keyform.backends import local
from keyform.providers.ratelimit import Limiter
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
    k1_waiting = threading.Event()

    def script(seen: Seen) -> None:
        if seen.method == "POST":
            calls.append(f"revoke {seen.path}" if seen.path.endswith("/revoke")
                         else f"create {json.loads(seen.body)['name']}")
            if calls[-1] == "create k0":
                # k0's answer (and so the journal's failure) comes once k1 is surely waiting for its
                # turn: on a loaded machine the scheduler could otherwise see the failure before it
                # started k1, which then ends "not started" without having waited
                assert k1_waiting.wait(20)

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        # one call a second: k0's create goes first, k1's waits for its turn (both intents journaled)
        project.questra("k0: {provider: qp, name: k0}\nk1: {provider: qp, name: k1}\n")
        text = project.manifest.read_text().replace("    org_id:", "    rate_limit: 1/s\n    org_id:", 1)
        project.manifest.write_text(text)
        FullDisk(monkeypatch)
        attempts: list[int] = []
        real = Limiter.before_attempt

        def before_attempt(self: Limiter, *args: Any, **kwargs: Any) -> Any:
            attempts.append(1)
            if len(attempts) == 2:  # the second create's attempt: it waits here for its turn
                k1_waiting.set()
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Limiter, "before_attempt", before_attempt)
        res = project.run("apply", "--auto-approve", "--parallelism", "2", "--no-refresh")
    assert res.exit_code == 1, res.output
    # k1's create was not sent once the journal failed; k0's key, which it could not record, was revoked
    assert calls == ["create k0", "revoke /api-keys/ak_1/revoke"], calls
    assert "k1: not sent: the apply journal could not be written while it waited" in res.stderr, res.stderr
    assert "1 change(s) not started (1 create): k1." in res.stderr, res.stderr
    assert "Traceback" not in res.output
