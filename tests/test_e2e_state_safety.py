"""The state is never lost or overwritten by accident: locks, corrupt files, newer formats."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.backends.local import LocalBackend
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    p = Project(tmp_path, emulator.url)
    p.questra("k:\n  provider: qp\n")
    return p


def test_apply_while_locked_waits_lock_timeout_then_fails_naming_the_holder(project: Project,
                                                                            emu_control: EmulatorControl) -> None:
    lock = LocalBackend(project.state_path).acquire_lock("apply")
    started = time.monotonic()
    res = project.run("apply", "--auto-approve", "--lock-timeout", "1s")
    waited = time.monotonic() - started
    assert res.exit_code == 1
    assert waited >= 1.0
    assert "state is locked by pid" in res.stderr and lock.id in res.stderr and '"apply"' in res.stderr
    assert emu_control.questra_keys(ORG) == []


@pytest.mark.parametrize("content", [b"{not json", b'{"format_version": 1, "lineage": "x"', b""])
def test_corrupt_state_is_refused_and_left_byte_identical(project: Project, content: bytes,
                                                          emu_control: EmulatorControl) -> None:
    project.state_path.write_bytes(content)
    for args in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*args)
        assert res.exit_code == 1, res.output
        assert "keyform.state.json" in res.stderr and "Traceback" not in res.output
        assert project.state_path.read_bytes() == content
    assert emu_control.questra_keys(ORG) == []


def test_state_from_a_newer_keyform_is_refused(project: Project) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    text = project.state_path.read_text().replace('"format_version": 2', '"format_version": 3')
    project.state_path.write_text(text)
    res = project.run("plan")
    assert res.exit_code == 1 and "newer keyform" in res.stderr
    assert project.state_path.read_text() == text


def test_a_saved_plan_given_as_the_state_is_named_a_plan_file(project: Project, emu_control: EmulatorControl) -> None:
    """`plan --state some.plan` said `unsupported format_version '1' (this keyform reads 1 and 2, a
    number)`: true, and no help. It is a plan file, and the message says so (every command)."""
    saved = project.root / "some.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    content = saved.read_bytes()
    said = (f"Error: {saved}: this looks like a keyform plan file (written by `keyform plan --out`), not a state "
            "file: a saved plan is applied with `keyform apply PLANFILE` or shown with `keyform show PLANFILE`; "
            "it was left untouched\n")
    for args in (("plan",), ("apply", "--auto-approve"), ("state", "list"), ("report", "--no-refresh"),
                 ("state", "push", str(saved))):
        flags = ("-f", str(project.manifest)) if args[0] in ("state", "report") else ()
        state = () if args[:2] == ("state", "push") else ("--state", str(saved))
        res = project.run(*args, *flags, *state)
        assert res.exit_code == 1, res.output
        assert res.stderr == said, (args, res.stderr)
        assert saved.read_bytes() == content
    assert emu_control.questra_keys(ORG) == []


def test_a_manifest_given_as_the_state_is_named_a_manifest(project: Project, emu_control: EmulatorControl) -> None:
    """`plan --state keyform.yaml` (meant as `-f`) said "state file is not valid JSON (truncated?):
    line 1 column 1; it was left untouched — fix it, or restore it from a copy": advice to edit a
    manifest that is fine. It is a manifest, and the message says so (every command)."""
    content = project.manifest.read_bytes()
    said = (f"Error: {project.manifest}: this looks like a manifest, not a state file: manifests are named with -f, "
            "a state file with --state; it was left untouched\n")
    for args in (("plan",), ("apply", "--auto-approve"), ("state", "list"), ("state", "push", str(project.manifest))):
        state = () if args[:2] == ("state", "push") else ("--state", str(project.manifest))
        res = project.run(*args, "-f", str(project.manifest), *state)
        assert res.exit_code == 1, res.output
        assert res.stderr == said, (args, res.stderr)
        assert project.manifest.read_bytes() == content
    assert emu_control.questra_keys(ORG) == []


def test_every_write_keeps_the_previous_state_as_backup(project: Project) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    first = project.state_path.read_text()
    project.questra("k:\n  provider: qp\n  name: renamed\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert (project.root / "keyform.state.json.backup").read_text() == first
    assert project.state()["serial"] == 2
    assert not (project.root / "keyform.state.json.lock").exists()


@pytest.mark.parametrize("link", ["symlink to the state", "symlink to a file", "hard link to a file"])
def test_a_link_planted_at_the_lock_path_is_refused_and_nothing_is_written(project: Project, link: str,
                                                                           emu_control: EmulatorControl) -> None:
    """Review: `ln -s keyform.state.json keyform.state.json.lock; keyform plan` overwrote the state
    with the lock record (keys lost, and the message said it "was left untouched"); a link to any
    other file had `plan` say "No changes" having written the lock over that file. A file placed
    beside the state (a pull request) could do it."""
    assert project.run("apply", "--auto-approve").exit_code == 0
    state = project.state_path.read_bytes()
    victim = project.root / "victim.txt"
    victim.write_text("IMPORTANT\n")
    if link == "symlink to the state":
        project.lock_path.symlink_to(project.state_path.name)
    elif link == "symlink to a file":
        project.lock_path.symlink_to(victim.name)
    else:
        os.link(victim, project.lock_path)
    what = "has other hard links" if link.startswith("hard") else "is a symbolic link"
    for args in (("plan",), ("apply", "--auto-approve"), ("destroy", "--auto-approve")):
        res = project.run(*args)
        assert res.exit_code == 1, res.output
        assert res.stderr == (f"Error: {project.lock_path}: the state lock {what}; keyform writes its lock only in "
                              "a file of its own and has left this one untouched: remove it if no keyform is "
                              "running\n")
        assert project.state_path.read_bytes() == state and victim.read_text() == "IMPORTANT\n"
        assert os.path.lexists(project.lock_path)
    assert len(emu_control.questra_keys(ORG)) == 1


def test_an_empty_file_hard_linked_as_the_journal_is_refused_before_any_change(project: Project,
                                                                                emu_control: EmulatorControl) -> None:
    """The journal's read refused a link, its append's open followed one (review): an empty file
    hard-linked at the journal's path passed the read, then took the apply's records."""
    victim = project.root / "victim.txt"
    victim.write_text("")
    os.link(victim, project.journal_path)
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 1, res.output
    assert f"{project.journal_path}: the apply journal has other hard links" in res.stderr
    assert victim.read_text() == ""
    assert emu_control.questra_keys(ORG) == []
