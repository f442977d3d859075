"""A command that fails on a new `--state` path leaves no directory behind.

Found by review 96: `keyform import --state new/deep/s.json k ID` with an id the API does not have
failed (rightly) and left `new/deep/`, made to hold the state lock, behind. The directories the
lock made are removed again when it is released, while empty; a command that writes the state
keeps them. Real `keyform` processes against the emulator on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator


def test_a_failed_import_leaves_no_directory(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k: {provider: qp}\n")
    res = project.run_process("import", "-f", str(project.manifest), "--state", "new/deep/s.json", "k", "nosuchid")
    assert res.exit_code == 1 and "qp has no key with id nosuchid" in res.stderr, res.stderr
    # old code: new/deep/ was left, empty
    assert not (project.root / "new").exists()


def test_a_failed_apply_leaves_no_directory_and_a_good_one_keeps_its_state(tmp_path: Path,
                                                                            emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k: {provider: qp}\n")
    res = project.run_process("apply", "-f", str(project.manifest), "--auto-approve", "--state", "new/s.json",
                              env={"QUESTRA_TOKEN": ""})
    assert res.exit_code == 1, res.stderr
    assert not (project.root / "new").exists()
    res = project.run_process("apply", "-f", str(project.manifest), "--auto-approve", "--state", "new/s.json")
    assert res.exit_code == 0, res.stderr
    assert (project.root / "new" / "s.json").is_file()
    assert sorted(p.name for p in (project.root / "new").iterdir()) == ["s.json"]


def test_a_directory_that_was_there_is_left(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k: {provider: qp}\n")
    (project.root / "there").mkdir()
    res = project.run_process("import", "-f", str(project.manifest), "--state", "there/new/s.json", "k", "nosuchid")
    assert res.exit_code == 1
    assert (project.root / "there").is_dir() and not (project.root / "there" / "new").exists()
