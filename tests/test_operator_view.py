"""Issue 14 item 7: what the operator sees and what is left.

- `destroy` revokes deposed keys too (still in their grace period); a second destroy has nothing to do.
- A secret missing from a readable sink (the file deleted, or its entry) is planned as a replace
  with reason `secret missing from sink env (CI_BOT)`; the planner gets it from a sink snapshot
  read before planning.
"""

from __future__ import annotations

from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator.client import EmulatorControl
from keyform.plan import Action
from keyform.planner import PlanInputs, plan
from keyform.remote import RemoteSnapshot
from tests.factories import T0, questra_key, recorded, state_with, workspace

GRACE = "ci-bot: {provider: qp, name: CI bot, rotation: {grace: 24h}}\nweb: {provider: qp, name: Web}\n"


def test_destroy_revokes_deposed_keys_in_their_grace_period(tmp_path: Path, emulator: object,
                                                            emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)  # type: ignore[attr-defined]
    project.questra(GRACE)
    assert project.run("apply", "--auto-approve").exit_code == 0
    for _ in range(3):
        assert project.run("apply", "--auto-approve", "--replace", "ci-bot").exit_code == 0
    deposed = [d["remote_id"] for d in project.state()["deposed"]]
    assert len(deposed) == 3
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 0, res.output
    for rid in deposed:
        assert f"ci-bot (deposed {rid}) will be revoked" in res.stdout
    assert "destroy requested (revoked before its grace ends)" in res.stdout
    assert all(k["revoked"] for k in emu_control.questra_keys(ORG))
    st = project.state()
    assert st["keys"] == {} and st["deposed"] == []
    again = project.run("destroy", "--auto-approve")
    assert again.exit_code == 0 and "No changes" in again.stdout


def test_a_deleted_sink_file_plans_a_replace_and_apply_restores_the_secret(tmp_path: Path, emulator: object,
                                                                          emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)  # type: ignore[attr-defined]
    project.questra(GRACE)
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("ci-bot")
    (tmp_path / ".secrets/keys.env").unlink()
    res = project.run("plan", "--detailed-exitcode")
    assert res.exit_code == 2, res.output
    assert "secret missing from sink env (CI_BOT)" in res.stdout
    assert "secret missing from sink env (WEB)" in res.stdout
    assert "Plan: 0 to create, 0 to update, 2 to replace, 0 to delete." in res.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0
    secrets = {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG)}
    assert project.remote_id("ci-bot") != old
    assert project.sink()["CI_BOT"] == secrets[project.remote_id("ci-bot")]
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_deleted_entry_replaces_only_that_key(tmp_path: Path, emulator: object) -> None:
    project = Project(tmp_path, emulator.url)  # type: ignore[attr-defined]
    project.questra(GRACE)
    assert project.run("apply", "--auto-approve").exit_code == 0
    env = tmp_path / ".secrets/keys.env"
    env.write_text("".join(line for line in env.read_text().splitlines(keepends=True)
                           if not line.startswith("WEB=")) + "OTHER=1\n")
    res = project.run("plan")
    assert "secret missing from sink env (WEB)" in res.stdout and "(CI_BOT)" not in res.stdout
    assert "Plan: 0 to create, 0 to update, 1 to replace, 0 to delete." in res.stdout


def test_planner_replaces_a_key_whose_secret_the_sink_snapshot_lacks() -> None:
    spec = questra_key("ci-bot")
    state = state_with(recorded(spec, "ak_1"))
    ws = workspace(spec)
    present = plan(ws, state, RemoteSnapshot(), T0, inputs=PlanInputs(readable_sinks=frozenset({"env"})))
    assert not present.has_changes
    missing = plan(ws, state, RemoteSnapshot(), T0,
                   inputs=PlanInputs(readable_sinks=frozenset({"env"}), missing_secrets=frozenset({"ci-bot"})))
    (change,) = missing.actionable
    assert change.action is Action.REPLACE
    assert change.reasons == ("secret missing from sink env (CI_BOT)",)
