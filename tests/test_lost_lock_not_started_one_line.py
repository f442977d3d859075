"""After the state lock is lost mid-apply, the changes that can no longer start are said in one line
of the lost lock's error (how many, why, their addresses up to 20, then how many more), not one
line each: 1,000 changes printed 1,000 `kNNN: skipped: the state lock was lost` lines. `--format
json` keeps its `apply_skipped` event per change, as schemas/apply-events.schema.json promises."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO

import pytest

from harness.project import Project
from keyform import fsio
from keyform.backends import local
from keyform.emulator import Emulator

KEYS = "".join(f"k{i:02d}: {{provider: qp, name: key {i}}}\n" for i in range(30))


def _lose_the_lock_after_the_first_done(monkeypatch: pytest.MonkeyPatch, project: Project) -> None:
    """The lock file removed (a force-unlock from another host) once the first `done` is written."""
    real = fsio.append_lines

    def append_lines(fh: BinaryIO, lines: list[str]) -> None:
        real(fh, lines)
        if any('"op":"done"' in line for line in lines) and project.lock_path.exists():
            os.unlink(project.lock_path)

    monkeypatch.setattr(local, "append_lines", append_lines)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_changes_a_lost_lock_leaves_unstarted_are_one_line(tmp_path: Path, emulator: Emulator,
                                                              monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    _lose_the_lock_after_the_first_done(monkeypatch, project)
    res = project.run("apply", "--auto-approve", "--parallelism", "1", "--format", fmt)
    assert res.exit_code == 1, res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, res.stderr
    assert "was lost" in errors[0] and errors[0].endswith(
        "Not started, the lock being lost: 29 change(s) (29 create): k01, k02, k03, k04, k05, k06, k07, k08, k09, "
        "k10, k11, k12, k13, k14, k15, k16, k17, k18, k19, k20, and 9 more."), errors[0]
    if fmt == "text":
        assert "skipped: the state lock was lost" not in res.output, res.output  # no line per change
        assert len(res.stderr.splitlines()) < 5, res.stderr
    else:
        events = [json.loads(line) for line in res.stdout.splitlines()[1:]]
        skipped = [e["address"] for e in events if e["type"] == "apply_skipped"]
        assert skipped == [f"k{i:02d}" for i in range(1, 30)]
        assert {e["message"] for e in events if e["type"] == "apply_skipped"} == {"skipped: the state lock was lost"}
