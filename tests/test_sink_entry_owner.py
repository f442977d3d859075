"""A deleted or moved key never removes a sink entry that another key of the manifests now writes:
renaming a key while keeping its `as:` (old goes, new takes the same variable) leaves the new key's
secret in the sink. Two sinks that name one file (exact aliases) share its entries: two keys may not
write one entry through the two names, and a key replaced into the other name of its file does not
remove the entry its new secret was just written to. Through the CLI against the emulator over real
HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

ALIAS = "sinks:\n  env2:\n    type: dotenv\n    path: ./sub/../.secrets/keys.env\n"


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def _live(control: EmulatorControl) -> dict[str, str]:
    return {str(k["id"]): str(k["secret"]) for k in control.questra_keys(ORG) if not k.get("revoked")}


def _keys(project: Project, body: str) -> None:
    """The project's keys, and a second sink `env2` naming the file of its sink `env`."""
    project.questra(body)
    project.manifest.write_text(project.manifest.read_text().replace("sinks:\n", ALIAS, 1))


def test_renaming_a_key_that_keeps_its_variable_leaves_the_new_secret(project: Project,
                                                                      emu_control: EmulatorControl) -> None:
    project.questra("old:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.questra("new:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")  # old goes, new takes SHARED
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    live = {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG) if not k.get("revoked")}
    assert project.sink() == {"SHARED": live[project.remote_id("new")]}


def test_a_key_replaced_into_another_name_of_its_file_keeps_its_new_secret(project: Project,
                                                                          emu_control: EmulatorControl) -> None:
    """`a`'s secret went missing from env:A and its sink is now env2:A, the same entry: the replace
    writes the new secret there, and then removed "the old entry" env:A by its sink name, which
    was that very line: the only live key's secret gone, the old one revoked."""
    _keys(project, "a:\n  provider: qp\n  sink: {use: env, as: A}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.sink_path.write_text("OTHER=x\n")
    _keys(project, "a:\n  provider: qp\n  sink: {use: env2, as: A}\n")
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 2 and "secret missing from sink env" in planned.stdout, planned.output
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink() == {"OTHER": "x", "A": _live(emu_control)[project.remote_id("a")]}
    assert "stale_entries" not in project.state()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_two_keys_cannot_write_one_entry_through_two_names_of_its_file(project: Project,
                                                                        emu_control: EmulatorControl) -> None:
    """Each apply would put one key's secret over the other's: refused at load, before any call."""
    _keys(project, "a:\n  provider: qp\n  sink: {use: env, as: A}\nb:\n  provider: qp\n  sink: {use: env2, as: A}\n")
    res = project.run("plan")
    assert res.exit_code == 1
    assert ("keys.b: sink entry env2:A is the entry env:A (sinks env and env2 name one file) of key 'a'"
            in res.stderr), res.output
    assert "Traceback" not in res.output
    assert _live(emu_control) == {}
