"""A deleted or moved key never removes a sink entry that another key of the manifests now writes:
renaming a key while keeping its `as:` (old goes, new takes the same variable) leaves the new key's
secret in the sink. Through the CLI against the emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def test_renaming_a_key_that_keeps_its_variable_leaves_the_new_secret(project: Project,
                                                                      emu_control: EmulatorControl) -> None:
    project.questra("old:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.questra("new:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")  # old goes, new takes SHARED
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    live = {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG) if not k.get("revoked")}
    assert project.sink() == {"SHARED": live[project.remote_id("new")]}
