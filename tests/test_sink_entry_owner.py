"""A deleted or moved key never removes a sink entry that another key of the manifests now writes:
renaming a key while keeping its `as:` (old goes, new takes the same variable) leaves the new key's
secret in the sink. Two sinks that name one file (exact aliases) are one place for this: an entry
written through one name is the entry another name shows, so keyform's own entries, the entries a
deleted key leaves, a sink move, and the load-time check that no two keys write one entry all go
by the stored entry (`Workspace.entry_id`), not by the sink's name. Through the CLI against the
emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
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
    planned = project.run("plan")
    assert "its sink entry env:SHARED stays: key 'new' writes it now" in planned.stdout, planned.output
    assert "is removed" not in planned.stdout
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    live = {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG) if not k.get("revoked")}
    assert project.sink() == {"SHARED": live[project.remote_id("new")]}


@pytest.mark.parametrize("parallelism", ["1", "10"])
def test_a_key_renamed_into_another_name_of_its_file_keeps_the_new_secret(
        project: Project, emu_control: EmulatorControl, parallelism: str) -> None:
    """`old` wrote env:WEB; `new` takes WEB through env2, another name of that file. The plan was
    refused ("keyform did not write" WEB: it did, through env); once allowed, the delete of `old`
    would have removed the entry `new` had just written, by its exact (sink, entry) only."""
    _keys(project, "old:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old_id = project.remote_id("old")
    _keys(project, "new:\n  provider: qp\n  sink: {use: env2, as: WEB}\n")
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "its sink entry env:WEB stays: key 'new' writes it now" in planned.stdout
    assert "is removed" not in planned.stdout and "did not write" not in planned.output
    doc = json.loads(project.run("plan", "--format", "json").stdout)
    assert {c["address"]: c["sink"] for c in doc["changes"]} == {"new": "env2:WEB", "old": None}
    res = project.run("apply", "--auto-approve", "--parallelism", parallelism)
    assert res.exit_code == 0, res.output
    live = _live(emu_control)
    assert old_id not in live
    assert project.sink() == {"WEB": live[project.remote_id("new")]}
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_sink_renamed_to_another_name_of_its_file_moves_nothing(project: Project,
                                                                  emu_control: EmulatorControl) -> None:
    """`a` moves from env:A to env2:A, the same entry. It was refused as an entry keyform did not
    write; once allowed, the move would have written A, then removed A: the secret gone."""
    _keys(project, "a:\n  provider: qp\n  sink: {use: env, as: A}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    env = project.root / ".secrets" / "keys.env"
    before = env.read_bytes()
    _keys(project, "a:\n  provider: qp\n  sink: {use: env2, as: A}\n")
    planned = project.run("plan")
    assert planned.exit_code == 0, planned.output
    assert '~ sink = "env:A" → "env2:A"' in planned.stdout
    assert "sink env2 names the file of sink env: the secret stays where it is" in planned.stdout
    assert "moves to sink" not in planned.stdout
    doc = json.loads(project.run("plan", "--format", "json").stdout)
    assert [(c["action"], c["sink"]) for c in doc["changes"]] == [("update", None)]
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert env.read_bytes() == before  # nothing written, nothing removed
    assert project.sink() == {"A": _live(emu_control)[project.remote_id("a")]}
    state = project.state()
    assert state["keys"]["a"]["sink"] == {"sink": "env2", "as": "A"}
    assert "stale_entries" not in state and "written_entries" not in state
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("parallelism", ["1", "10"])
def test_a_move_out_of_an_entry_a_new_key_takes_through_another_name_keeps_both_secrets(
        project: Project, emu_control: EmulatorControl, parallelism: str) -> None:
    """`a` moves env:A → env:B while `b` (new) takes A through env2: the move reads A before any
    change runs (`_hold_moving_secrets`), so b's write cannot come first and hand a b's secret."""
    _keys(project, "a:\n  provider: qp\n  sink: {use: env, as: A}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    _keys(project, "a:\n  provider: qp\n  sink: {use: env, as: B}\nb:\n  provider: qp\n  sink: {use: env2, as: A}\n")
    res = project.run("apply", "--auto-approve", "--parallelism", parallelism)
    assert res.exit_code == 0, res.output
    live = _live(emu_control)
    assert project.sink() == {"B": live[project.remote_id("a")], "A": live[project.remote_id("b")]}
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
