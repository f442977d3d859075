"""`keyform plan` where the state's directory is read-only to this user (a pull request's checkout
owned by another account, a read-only mount): plan took the state lock, which means creating the
lock file beside the state, and failed (left open in stop 36). A plan writes nothing, so it now goes
on without the lock and says so; an apply still refuses. (Tests run as root, which ignores file
modes: the read-only directory is simulated by refusing the lock file's creation with EROFS.)"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from harness.project import Project
from keyform.emulator import Emulator


def test_plan_goes_on_without_the_lock_in_a_read_only_directory(tmp_path: Path, emulator: Emulator,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k1:\n  provider: qp\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = project.state_path.read_bytes()
    real_open = os.open

    def refusing(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path).endswith(".state.json.lock") and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "planning without the state lock" in plan.output and "No changes" in plan.output, plan.output
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 1 and "cannot open the state lock" in applied.output, applied.output
    assert project.state_path.read_bytes() == before
