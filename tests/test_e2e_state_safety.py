"""The state is never lost or overwritten by accident: locks, corrupt files, newer formats."""

from __future__ import annotations

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


def test_every_write_keeps_the_previous_state_as_backup(project: Project) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    first = project.state_path.read_text()
    project.questra("k:\n  provider: qp\n  name: renamed\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert (project.root / "keyform.state.json.backup").read_text() == first
    assert project.state()["serial"] == 2
    assert not (project.root / "keyform.state.json.lock").exists()
