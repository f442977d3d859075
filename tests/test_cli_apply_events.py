"""What apply reports (issue 15 items 4, 7, 8; issue 21 item 6): JSON events name the key a change
issued (`remote_id`) and the one it superseded (`previous_remote_id`) and follow
schemas/apply-events.schema.json; a replace shows as `+/-` (create before destroy); plan and apply
totals agree; destroy ends with "Destroy complete"."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
KEYS = "ci-bot: {provider: qp, name: CI bot}\nweb: {provider: qp}\n"


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def events(stdout: str) -> list[dict[str, Any]]:
    """Every line is one JSON event, valid against the schema (a `planned` plan against its own)."""
    out = []
    for line in stdout.splitlines():
        event = json.loads(line)
        validator("apply-events.schema.json").validate(event)
        if event["type"] == "planned":
            validator("plan.schema.json").validate(event["plan"])
        out.append(event)
    return out


def of(evs: list[dict[str, Any]], type_: str, address: str, deposed: bool = False) -> dict[str, Any]:
    [found] = [e for e in evs if e["type"] == type_ and e.get("address") == address and e["deposed"] is deposed]
    return found


def test_apply_json_create_emits_the_new_remote_id(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    res = project.run("apply", "--auto-approve", "--format", "json")
    assert res.exit_code == 0, res.output
    evs = events(res.stdout)
    assert evs[0]["type"] == "planned" and evs[-1]["type"] == "change_summary"
    start, done = of(evs, "apply_start", "ci-bot"), of(evs, "apply_complete", "ci-bot")
    assert start["remote_id"] is None and start["previous_remote_id"] is None
    assert done["remote_id"] == project.remote_id("ci-bot")  # was null before (issue 21 item 6)
    assert done["previous_remote_id"] is None
    assert evs[-1] == {"type": "change_summary", "ok": True, "created": 2, "updated": 0, "replaced": 0,
                       "deleted": 0, "stale_copies_removed": 0, "failed": 0, "errors": [], "rate_limits": []}


def test_apply_json_replace_emits_new_and_previous_remote_id(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("ci-bot")
    res = project.run("apply", "--replace", "ci-bot", "--auto-approve", "--format", "json")
    assert res.exit_code == 0, res.output
    evs = events(res.stdout)
    new = project.remote_id("ci-bot")
    assert new != old
    start, done = of(evs, "apply_start", "ci-bot"), of(evs, "apply_complete", "ci-bot")
    assert (start["remote_id"], start["previous_remote_id"]) == (None, old)
    assert (done["remote_id"], done["previous_remote_id"]) == (new, old)
    revoked = of(evs, "apply_complete", "ci-bot", deposed=True)
    assert revoked["remote_id"] == old and revoked["action"] == "delete"
    # the plan said 1 to replace, 0 to delete: so does the summary (the revocation is part of the replace)
    plan = evs[0]["plan"]["summary"]
    summary = evs[-1]
    assert (plan["replace"], plan["delete"]) == (1, 0)
    assert (summary["replaced"], summary["deleted"]) == (1, 0)


def test_replace_shows_plus_minus_and_plan_and_apply_totals_agree(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    assert project.run("apply", "--auto-approve").exit_code == 0
    res = project.run("apply", "--replace", "ci-bot", "--auto-approve", "--no-color")
    assert res.exit_code == 0, res.output
    assert '+/- key "ci-bot"' in res.stdout and "-/+" not in res.stdout
    assert "Plan: 0 to create, 0 to update, 1 to replace, 0 to delete." in res.stdout
    assert res.stdout.rstrip().endswith("Apply complete: 0 created, 0 updated, 1 replaced, 0 deleted, 0 failed.")
    assert "ci-bot: replaced after " in res.stdout and f"[id={project.remote_id('ci-bot')}]" in res.stdout


def test_a_failed_create_event_has_no_remote_id(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("ci-bot: {provider: qp}\n")
    # the sink write fails at apply (a sink file plan cannot read is refused before any create): the new key is revoked
    project.manifest.write_text(project.manifest.read_text().replace(
        "    type: dotenv\n    path: .secrets/keys.env\n", "    type: exec\n    command: [sh, -c, 'exit 3']\n"))
    res = project.run("apply", "--auto-approve", "--format", "json")
    assert res.exit_code == 1
    evs = events(res.stdout)
    errored = of(evs, "apply_errored", "ci-bot")
    assert errored["remote_id"] is None and errored["message"]
    assert evs[-1]["ok"] is False and evs[-1]["failed"] == 1


def test_destroy_ends_with_destroy_complete(tmp_path: Path, emulator: Emulator,
                                            emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    assert project.run("apply", "--auto-approve").exit_code == 0
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert "Plan: 0 to create, 0 to update, 0 to replace, 2 to delete." in res.stdout
    assert res.stdout.rstrip().endswith("Destroy complete: 2 deleted, 0 failed.")
    assert "Apply complete" not in res.stdout
    assert all(k["revoked"] for k in emu_control.questra_keys(ORG))


def test_a_key_deleted_outside_says_which_id_it_was(tmp_path: Path, emulator: Emulator,
                                                    emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("ci-bot: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("ci-bot")
    emu_control.delete_questra(ORG, old)
    res = project.run("plan")
    assert f'+ key "ci-bot" (qp, questra) [was {old}, deleted outside keyform]' in res.stdout
    assert f"[id={old}]" not in res.stdout
