"""A deposed key (the old half of a rotation, kept through its grace) revoked outside keyform before
its grace ends (left open in stop 36): plans kept saying it "will be revoked after ..." until the
grace ended, for a key that no longer works. Without a usage rule it now goes as it does under
`unused_for`: the plan revokes it at once ("already revoked remotely", a no-op remotely) and the
apply drops the record. Real HTTP on 127.0.0.1 (the emulator)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.plan import Change


def test_a_deposed_key_revoked_outside_keyform_is_dropped_at_once(tmp_path: Path, emulator: Emulator,
                                                                  emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  rotation: {grace: 30d}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("k")
    assert project.run("apply", "--replace", "k", "--auto-approve").exit_code == 0
    assert [d["remote_id"] for d in project.state()["deposed"]] == [old]
    emu_control.revoke_questra(ORG, old)  # someone revoked it by hand
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2 and "already revoked remotely" in plan.output, plan.output
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.state()["deposed"] == []
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    live = [k for k in emu_control.questra_keys(ORG) if not k["revoked"]]
    assert [k["id"] for k in live] == [project.remote_id("k")]


@pytest.mark.parametrize("how", ["revoke", "expire"])
def test_a_key_revoked_or_expired_outside_keyform_is_replaced_and_revoked_in_the_same_apply(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, how: str) -> None:
    """The replacement of a dead key kept that key as deposed through its grace (24 h here): the
    plan right after the apply was not empty (`already revoked remotely`, exit 2 under
    --detailed-exitcode), and only the apply after that revoked it."""
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  rotation: {max_age: 30d, grace: 24h}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("k")
    (emu_control.revoke_questra if how == "revoke" else emu_control.expire_questra)(ORG, old)
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert f"the old key {old} is revoked in this apply, not kept for a grace" in planned.stdout
    revokes = emu_control.state()["requests"].get("questra.revoke", 0)
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.state().get("deposed", []) == [] and project.remote_id("k") != old
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    assert emu_control.state()["requests"].get("questra.revoke", 0) == revokes + 1  # in the same apply
    assert project.sink()["K"] == {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG)}[project.remote_id("k")]


def test_a_saved_plan_marks_a_dead_replacement_and_refuses_the_mark_elsewhere(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  rotation: {grace: 24h}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    emu_control.revoke_questra(ORG, project.remote_id("k"))
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    doc = json.loads(saved.read_text())
    [change] = [c for c in doc["changes"] if c["action"] == "replace"]
    assert change["dead"] is True
    with pytest.raises(ValueError, match="marked dead but is not a replacement"):
        Change.from_json({**change, "action": "update"})
    res = project.run("apply", str(saved))
    assert res.exit_code == 0, res.output
    assert project.state().get("deposed", []) == []


def test_a_saved_plan_edited_to_mark_a_live_key_dead_leaves_no_live_key_untracked(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    """`"dead": true` set by hand on a `--replace`: the old, live key was dropped from the state
    with no revoke, live and untracked. A dead mark revokes the old key in the same apply (the
    applier's own guard, below), and apply now refuses the file first: no plan made now marks it."""
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  rotation: {grace: 24h}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("k")
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--replace", "k", "--out", str(saved)).exit_code == 0
    doc = json.loads(saved.read_text())
    for change in doc["changes"]:
        if change["action"] == "replace":
            change["dead"] = True
    saved.write_text(json.dumps(doc))
    res = project.run("apply", str(saved))
    assert res.exit_code == 1 and "k: it marks the old key dead (revoked in this apply, no grace); a plan made " \
        "now does not" in res.stderr, res.output
    assert {k["id"] for k in emu_control.questra_keys(ORG) if not k["revoked"]} == {old}


def test_the_applier_revokes_the_old_key_of_a_change_marked_dead() -> None:
    """The applier's own guard, should an edited plan get past `apply FILE`'s checks: a replace
    marked dead revokes its old key in the same apply (dropping it would leave it live, untracked)."""
    from dataclasses import replace as with_

    from keyform.applier import ApplyContext, apply_plan
    from keyform.journal import Journal
    from keyform.model import Rotation
    from keyform.planner import PlanInputs, plan
    from keyform.providers.pool import ProviderPool
    from keyform.refresh import instances_in_use, refresh
    from keyform.resolve import input_fingerprints
    from keyform.sinks.pool import SinkPool
    from tests.factories import T0, questra_key, workspace
    from tests.test_plan_apply_property import ENV, World

    world = World()
    spec = with_(questra_key("k"), rotation=Rotation(grace=timedelta(hours=24)))
    world.converge([spec])
    old = world.state.keys["k"].remote_id
    ws = workspace(spec)
    pool = ProviderPool(ws, lambda cfg, token, org: world.providers[cfg.name], ENV)
    snapshot = refresh(ws, world.state, pool, instances_in_use(ws, world.state))
    p = plan(ws, world.state, snapshot, world.now, replace=["k"],
             inputs=PlanInputs(input_fingerprints(ws, world.state, env=ENV), frozenset({"env"})))
    marked = with_(p, changes=tuple(with_(c, dead=True) if c.address == "k" else c for c in p.changes))
    ctx = ApplyContext(ws, world.state, pool, SinkPool(ws, lambda cfg: world.sink), Journal(None, "t"),
                       lambda: T0, env=ENV)
    assert apply_plan(marked, ctx).ok
    listed = {k.id: k for k in world.providers["qp"].list() or []}
    assert listed[old].revoked and world.state.deposed == [] and world.state.keys["k"].remote_id != old
