"""Questra keys end to end: manifest → plan → apply → state → sink, through the CLI, against the
emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

KEYS = """\
ci-bot:
  provider: qp
  name: CI bot
  expires_in: 90d
web:
  provider: qp
  sink: {use: env, as: WEB_KEY}
"""


@pytest.fixture(params=["builtin", "rest"])
def project(request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator) -> Project:
    """The project, once with the built-in provider and once through `type: rest` over
    examples/providers/questra.yaml (issue 17: the same assertions pass for both)."""
    p = Project(tmp_path, emulator.url, rest=request.param == "rest")
    p.questra(KEYS)
    return p


def issued_secrets(control: EmulatorControl) -> dict[str, str]:
    return {k["id"]: k["secret"] for k in control.questra_keys(ORG)}


def test_plan_apply_plan_creates_keys_sinks_secrets_and_converges(project: Project, emu_control: EmulatorControl) -> None:
    first = project.run("plan", "--detailed-exitcode")
    assert first.exit_code == 2, first.output
    assert "+ key \"ci-bot\"" in first.stdout and "Plan: 2 to create, 0 to update, 0 to replace, 0 to delete." in first.stdout
    assert "(sensitive → sink env:CI_BOT)" in first.stdout

    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 2 created" in applied.stdout

    sink = project.sink()
    secrets = issued_secrets(emu_control)
    assert sink == {"CI_BOT": secrets[project.remote_id("ci-bot")], "WEB_KEY": secrets[project.remote_id("web")]}
    assert stat.S_IMODE(os.stat(project.root / ".secrets/keys.env").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(project.root / ".secrets").st_mode) == 0o700
    state_text = project.state_path.read_text()
    for secret in secrets.values():
        assert secret not in state_text
    assert project.state()["keys"]["ci-bot"]["expires_at"]  # expires_in resolved at create time

    again = project.run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes. Your keys match the manifests." in again.stdout


def test_key_revoked_outside_keyform_is_replaced_and_new_secret_sunk(project: Project,
                                                                      emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    old_id = project.remote_id("ci-bot")
    emu_control.revoke_questra(ORG, old_id)

    drift = project.run("plan", "--detailed-exitcode")
    assert drift.exit_code == 2
    assert "revoked outside keyform" in drift.stdout and "ci-bot must be replaced" in drift.stdout

    assert project.run("apply", "--auto-approve").exit_code == 0
    new_id = project.remote_id("ci-bot")
    assert new_id != old_id
    assert project.sink()["CI_BOT"] == issued_secrets(emu_control)[new_id]
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_renamed_key_is_replaced_new_secret_sunk_old_key_revoked(project: Project, emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    old_id = project.remote_id("ci-bot")
    project.questra(KEYS.replace("name: CI bot", "name: CI robot"))

    plan = project.run("plan")
    assert "name cannot be changed in place" in plan.stdout and "# forces replacement" in plan.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0

    new_id = project.remote_id("ci-bot")
    keys = {k["id"]: k for k in emu_control.questra_keys(ORG)}
    assert keys[old_id]["revoked"] is True
    assert keys[new_id]["name"] == "CI robot" and keys[new_id]["revoked"] is False
    assert project.sink()["CI_BOT"] == keys[new_id]["secret"]
    assert project.state()["deposed"] == []


def test_key_removed_from_manifests_is_revoked_unsunk_and_forgotten(project: Project,
                                                                    emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    web_id = project.remote_id("web")
    project.questra(KEYS.split("web:")[0])

    plan = project.run("plan")
    assert "web will be deleted" in plan.stdout and "removed from the manifests" in plan.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0

    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys(ORG)}[web_id] is True
    assert "WEB_KEY" not in project.sink() and "CI_BOT" in project.sink()
    assert "web" not in project.state()["keys"]


def test_apply_without_tty_or_auto_approve_refuses_and_changes_nothing(project: Project,
                                                                        emu_control: EmulatorControl) -> None:
    res = project.run("apply")
    assert res.exit_code == 1
    assert "--auto-approve" in res.stderr
    assert emu_control.questra_keys(ORG) == []
    assert not project.state_path.exists()


def test_rejected_token_is_one_clear_message_naming_instance_call_and_status(tmp_path: Path, make_emulator) -> None:  # type: ignore[no-untyped-def]
    emu = make_emulator(tokens=frozenset({"the-right-token"}))
    project = Project(tmp_path, emu.url)
    project.questra(KEYS)
    res = project.run("plan")
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: qp: list: 401")
    assert "Traceback" not in res.output
    assert "qt-canary-token-1b7f" not in res.output


def test_unlistable_api_plans_from_state_and_says_so(project: Project, emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    emu_control.faults(questra_list_shape="none")
    res = project.run("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.output
    assert "qp: the API has no list endpoint (404/405); planned from the state alone" in res.stdout


def test_list_wrapped_in_data_object_is_read_too(project: Project, emu_control: EmulatorControl) -> None:
    emu_control.faults(questra_list_shape="data")
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_no_refresh_plans_from_state_alone(project: Project, emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    emu_control.revoke_questra(ORG, project.remote_id("web"))
    before = emu_control.requests().get("questra.list", 0)
    res = project.run("plan", "--no-refresh", "--detailed-exitcode")
    assert res.exit_code == 0 and "refresh disabled" in res.stdout
    assert emu_control.requests().get("questra.list", 0) == before


def test_target_plans_only_that_key(project: Project) -> None:
    res = project.run("plan", "--target", "web")
    assert "web will be created" in res.stdout and "ci-bot" not in res.stdout


def test_refresh_makes_exactly_one_list_call_per_provider_instance(project: Project,
                                                                   emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = emu_control.requests()
    assert project.run("plan").exit_code == 0
    after = emu_control.requests()
    assert after.get("questra.list", 0) - before.get("questra.list", 0) == 1
    assert sum(after.values()) - sum(before.values()) == 1


def test_key_expired_remotely_is_replaced(project: Project, emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    old_id = project.remote_id("web")
    emu_control.expire_questra(ORG, old_id)
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2 and "web must be replaced" in plan.stdout and "# expired" in plan.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.remote_id("web") != old_id
    assert project.sink()["WEB_KEY"] == issued_secrets(emu_control)[project.remote_id("web")]


def test_key_deleted_outside_keyform_is_created_again(project: Project, emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    emu_control.delete_questra(ORG, project.remote_id("web"))
    plan = project.run("plan")
    assert "web will be created" in plan.stdout and "deleted outside keyform" in plan.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
