"""Found by an adversarial pass (stop 36): a read-only command given a missing `--state FILE` (a
typo, or a moved path in a nightly job) read it as an empty state: every key "not created",
"Nothing is due", exit 0, for ever. A read-only command never creates the file, so an explicit
`--state` path that does not exist is one clear error (exit 1), not an all-clear."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator


def test_report_with_a_missing_state_file_is_an_error(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  expires_in: 1d\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    due = project.run("report", "-f", str(project.manifest), "--due-within", "14d")
    assert due.exit_code == 2, due.output  # with the real state: due
    res = project.run("report", "-f", str(project.manifest), "--due-within", "14d",
                      "--state", str(tmp_path / "typo.state.json"))
    assert res.exit_code == 1, res.output
    assert "typo.state.json" in res.stderr, res.output
