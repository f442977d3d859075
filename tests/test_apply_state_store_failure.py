"""An apply whose state store fails under it (the local backend's disk: here a full one; postgres's
database: tests/test_e2e_postgres.py) stops starting changes once a journal record cannot be
written, as after a first Ctrl-C, prints its summary and what was not started, and then the
store's error once (exit 1). Before, every remaining change was started and failed with that error
in turn, and the summary was never printed."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import BinaryIO

import pytest

from harness.project import ORG, Project
from keyform import fsio
from keyform.backends import local
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

KEYS = "".join(f"k{i}: {{provider: qp, name: key {i}}}\n" for i in range(6))


class FullDisk:
    """`local.append_lines` (the journal's writes) failing with ENOSPC once `after` `done` records
    were written, until `full` is cleared."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, after: int) -> None:
        self.after, self.done, self.full = after, 0, True
        self._real = fsio.append_lines
        monkeypatch.setattr(local, "append_lines", self.append_lines)

    def append_lines(self, fh: BinaryIO, lines: list[str]) -> None:
        if self.full and self.done >= self.after:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._real(fh, lines)
        self.done += sum('"op":"done"' in line for line in lines)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_full_disk_mid_apply_stops_it_with_one_message_and_the_next_apply_finishes(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    disk = FullDisk(monkeypatch, after=2)
    res = project.run("apply", "--auto-approve", "--parallelism", "1", "--format", fmt)
    assert res.exit_code == 1, res.output
    [error] = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
    assert error == (
        f"Error: {project.journal_path}: cannot write the apply journal: No space left on device. The apply stopped "
        "there: no change started after it (those already running ran to their end). 2 change(s) had finished; "
        "the state was saved with them. Run `keyform apply` again for the rest.")
    assert res.output.count("No space left on device") == 1, res.output
    # k2 had started: its intent, the first thing it writes, failed, so it did nothing
    assert "Stopped: 4 change(s) not started (4 create): k2, k3, k4, k5." in res.stderr, res.stderr
    if fmt == "text":
        assert "k2: not started: the apply journal could not be written" in res.stderr, res.stderr
        assert res.stdout.count("Creating...") == 3, res.stdout
        assert "Apply failed: 2 created, 0 updated, 0 replaced, 0 deleted, 0 failed." in res.stdout, res.stdout
    else:
        summary = json.loads(res.stdout.splitlines()[-1])
        assert summary["type"] == "change_summary" and summary["ok"] is False and summary["created"] == 2
        assert summary["not_started"] == ["k2", "k3", "k4", "k5"]
    with EmulatorControl(emulator.url) as control:
        assert len(control.questra_keys(ORG)) == 2  # nothing was sent after the failure
    assert sorted(project.state()["keys"]) == ["k0", "k1"]
    disk.full = False
    again = project.run("apply", "--auto-approve")
    assert again.exit_code == 0 and "Apply complete: 4 created" in again.stdout, again.output
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    with EmulatorControl(emulator.url) as control:
        assert len(control.questra_keys(ORG)) == 6
    assert sorted(project.sink()) == [f"K{i}" for i in range(6)]
