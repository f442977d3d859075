"""Plans that reviewers and pipelines can trust: formats through the CLI, saved plans and their
staleness checks, --detailed-exitcode, JSON apply events, and no secret anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from harness.project import ORG, TOKENS, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json").read_text())
KEYS = "ci-bot:\n  provider: qp\n  name: CI bot\nweb:\n  provider: qp\n"


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    p = Project(tmp_path, emulator.url)
    p.questra(KEYS)
    return p


def test_detailed_exitcode_is_2_for_changes_0_for_none_1_for_errors(project: Project) -> None:
    assert project.run("plan", "--detailed-exitcode").exit_code == 2
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    project.questra(KEYS + "broken:\n  provider: nowhere\n")
    res = project.run("plan", "--detailed-exitcode")
    assert res.exit_code == 1 and "nowhere" in res.stderr


def test_saved_plan_applies_exactly_and_then_is_stale(project: Project, emu_control: EmulatorControl) -> None:
    out = project.root / "ci.plan"
    res = project.run("plan", "--out", str(out))
    assert res.exit_code == 0 and "keyform apply" in res.stdout
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    applied = project.run("apply", str(out))
    assert applied.exit_code == 0, applied.output
    assert len(emu_control.questra_keys(ORG)) == 2
    again = project.run("apply", str(out))  # the state moved on since the plan was made
    assert again.exit_code == 1
    assert "Saved plan is stale: it was made before the state existed" in again.stderr
    assert len(emu_control.questra_keys(ORG)) == 2


@pytest.mark.parametrize("edit", ["delete a declared key", "another remote id", "another key's id"])
def test_an_edited_saved_plan_is_refused_before_any_call(project: Project, emu_control: EmulatorControl,
                                                         edit: str) -> None:
    """A plan file is JSON: a replace edited into a delete was applied ('ci-bot: deleted') though
    ci-bot is in the manifests, and an edited remote id would revoke another key. Each is now
    refused, naming what no plan of these manifests and this state could hold."""
    assert project.run("apply", "--auto-approve").exit_code == 0
    out = project.root / "ci.plan"
    first = sorted(project.state()["keys"])[0]
    assert project.run("plan", "--replace", first, "--out", str(out)).exit_code == 0
    doc = json.loads(out.read_text())
    [change] = [c for c in doc["changes"] if c["action"] == "replace"]
    other = next(k["id"] for k in emu_control.questra_keys(ORG) if k["id"] != change["remote_id"])
    if edit == "delete a declared key":
        change["action"] = "delete"
    elif edit == "another remote id":
        change["remote_id"] = "ak_someone_elses"
    else:
        change["remote_id"] = other
    out.write_text(json.dumps(doc))
    before = (project.state_path.read_bytes(), emu_control.questra_keys(ORG))
    res = project.run("apply", str(out))
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith(f"Error: Saved plan: {first}: it "), res.stderr
    assert "(was the file edited?)" in res.stderr
    assert (project.state_path.read_bytes(), emu_control.questra_keys(ORG)) == before


@pytest.mark.parametrize("edit", ["a no-op made a create", "another name shown", "another sink shown",
                                  "another provider type"])
def test_a_saved_plan_edited_to_show_or_make_what_the_manifests_do_not_say_is_refused(
        project: Project, emu_control: EmulatorControl, edit: str) -> None:
    """A no-op edited into a create (the old remote id kept, as the planner's "deleted outside
    keyform" create has it) made a second key and left the first live and recorded nowhere; a
    create's name or sink edited was shown so by `show` and applied as the manifests say."""
    if edit == "a no-op made a create":
        assert project.run("apply", "--auto-approve").exit_code == 0
    out = project.root / "ci.plan"
    assert project.run("plan", "--out", str(out)).exit_code == 0
    doc = json.loads(out.read_text())
    change = doc["changes"][0]
    first = change["address"]
    if edit == "a no-op made a create":
        change.update(action="create", reasons=["deleted outside keyform"])
    elif edit == "another name shown":
        [name] = [a for a in change["attributes"] if a["name"] == "name"]
        name["after"] = "totally benign"
    elif edit == "another sink shown":
        change["sink"] = "env:SOMEWHERE_ELSE"
    else:
        change["provider_type"] = "textql"
    out.write_text(json.dumps(doc))
    before = (project.state_path.read_bytes() if project.state_path.exists() else b"", emu_control.questra_keys(ORG))
    res = project.run("apply", str(out))
    assert res.exit_code == 1, res.output
    expected = {"a no-op made a create": "it says will be created; a plan made now: is unchanged",
                "another name shown": 'it shows name = "totally benign"; a plan made now shows name = ',
                "another sink shown": "it shows the secret going to env:SOMEWHERE_ELSE; a plan made now: env:",
                "another provider type": "it says will be created; a plan made now: will be created"}[edit]
    assert res.stderr.startswith(f"Error: Saved plan: {first}: {expected}"), res.stderr
    assert (project.state_path.read_bytes() if project.state_path.exists() else b"",
            emu_control.questra_keys(ORG)) == before


def test_a_saved_plan_that_makes_anew_a_key_deleted_outside_keyform_applies(
        project: Project, emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    first = sorted(project.state()["keys"])[0]
    gone = project.remote_id(first)
    emu_control.delete_questra(ORG, gone)
    out = project.root / "ci.plan"
    assert project.run("plan", "--out", str(out)).exit_code == 0
    res = project.run("apply", str(out))
    assert res.exit_code == 0, res.output
    assert project.remote_id(first) != gone


def test_a_saved_plan_of_a_plugin_provider_type_is_read(project: Project) -> None:
    """Found by a review: the plan schema's `provider_type` allowed only questra, textql and
    rest:NAME, so once saved plans were checked against it, every plan with a plug-in provider
    (the shipped examples/plugin-provider's `acme`) was refused by `show`, `apply` and `graph`."""
    out = project.root / "ci.plan"
    assert project.run("plan", "--out", str(out)).exit_code == 0
    doc = json.loads(out.read_text())
    doc["changes"][0]["provider_type"] = "acme"
    out.write_text(json.dumps(doc))
    res = project.run("show", str(out))
    assert res.exit_code == 0 and "(qp, acme)" in res.stdout, res.output
    doc["changes"][0]["provider_type"] = "acme\u202e"
    out.write_text(json.dumps(doc))
    assert project.run("show", str(out)).exit_code == 1  # still no terminal control in a type's name


@pytest.mark.parametrize(("field", "value", "message"), [
    ("serial", float("inf"), 'field "state.serial": inf is not of type \'integer\''),
    ("address", 7, 'field "changes[0].address": 7 is not of type \'string\''),
    ("address", "a\u202eb", 'field "changes[0].address": \'a\\u202eb\' does not match \'^[A-Za-z0-9][A-Za-z0-9_.-]*$\''),
    ("notes", ["fine", None], 'field "notes[1]": None is not of type \'string\''),
    ("unchecked", ["k\x1b[2J"], 'field "unchecked[0]": \'k\\x1b[2J\' does not match \'^[A-Za-z0-9][A-Za-z0-9_.-]*$\''),
    # found by a review: a provider of "qp\n```\n# INJECTED ..." closed the Markdown diff's fence in
    # `show --format markdown` (a live heading, image and link in a PR comment)
    ("provider", "qp\n```\n# INJECTED", 'field "changes[0].provider": \'qp\\n```\\n# INJECTED\' does not match '
                                        '\'^[A-Za-z0-9][A-Za-z0-9_.-]*$\''),
    ("provider", "qp\u202e", 'field "changes[0].provider": \'qp\\u202e\' does not match \'^[A-Za-z0-9][A-Za-z0-9_.-]*$\''),
    ("depends_on", ["a\nb"], 'field "changes[0].depends_on[0]": \'a\\nb\' does not match \'^[A-Za-z0-9][A-Za-z0-9_.-]*$\''),
])
@pytest.mark.parametrize("command", ["show", "apply"])
def test_a_damaged_saved_plan_is_one_message_not_an_internal_error(
        project: Project, field: str, value: object, message: str, command: str) -> None:
    """`"serial": Infinity` was an OverflowError, an address of 7 a TypeError, a note of 1 an
    AttributeError: each "internal error". A saved plan is now checked against its schema first;
    an address is one the manifests allow (a bidi override in one drove the reviewer's terminal)."""
    out = project.root / "ci.plan"
    assert project.run("plan", "--out", str(out)).exit_code == 0
    doc = json.loads(out.read_text())
    if field == "serial":
        doc["state"]["serial"] = value
    elif field in ("notes", "unchecked"):
        doc[field] = value
    else:
        doc["changes"][0][field] = value
    out.write_text(json.dumps(doc))
    res = project.run(command, str(out))
    assert res.exit_code == 1, res.output
    assert res.stderr == f"Error: {out}: not a keyform plan file ({message})\n", res.stderr


def test_saved_plan_is_stale_when_the_state_changed(project: Project, emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    emu_control.revoke_questra(ORG, project.remote_id("web"))
    out = project.root / "ci.plan"
    assert project.run("plan", "--out", str(out)).exit_code == 0
    assert project.run("apply", "--auto-approve").exit_code == 0  # someone else applied first
    creates = len(emu_control.questra_keys(ORG))
    res = project.run("apply", str(out))
    assert res.exit_code == 1
    assert "Saved plan is stale: the state changed since it was made (serial 1 → 2)" in res.stderr
    assert len(emu_control.questra_keys(ORG)) == creates


def test_saved_plan_is_stale_when_the_manifests_changed(project: Project, emu_control: EmulatorControl) -> None:
    out = project.root / "ci.plan"
    assert project.run("plan", "--out", str(out)).exit_code == 0
    project.questra(KEYS.replace("CI bot", "CI robot"))
    res = project.run("apply", str(out))
    assert res.exit_code == 1 and "the manifests (or a REST definition file they use) changed since it was made" in res.stderr
    assert emu_control.questra_keys(ORG) == []


def test_markdown_plan_through_the_cli(project: Project) -> None:
    res = project.run("plan", "--format", "markdown")
    assert res.exit_code == 0
    assert res.stdout.startswith("### keyform plan\n\n**Plan: 2 to create")
    assert "| ➕ | `ci-bot` | create | `new key` |" in res.stdout and "```diff" in res.stdout


def test_json_plan_through_the_cli_validates(project: Project) -> None:
    res = project.run("plan", "--format", "json")
    jsonschema.validate(json.loads(res.stdout), SCHEMA)


def test_apply_json_is_an_event_stream(project: Project) -> None:
    res = project.run("apply", "--auto-approve", "--format", "json")
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events[0]["type"] == "planned" and events[-1]["type"] == "change_summary"
    assert events[-1]["created"] == 2 and events[-1]["ok"] is True
    kinds = [(e["type"], e.get("address")) for e in events[1:-1]]
    assert sorted(kinds) == sorted([("apply_start", "ci-bot"), ("apply_complete", "ci-bot"),
                                    ("apply_start", "web"), ("apply_complete", "web")])
    assert all("elapsed_seconds" in e for e in events if e["type"] == "apply_complete")


def test_text_apply_reports_each_change_and_a_summary(project: Project) -> None:
    res = project.run("apply", "--auto-approve")
    assert "ci-bot: Creating..." in res.stdout and "ci-bot: created after" in res.stdout
    assert res.stdout.rstrip().endswith("Apply complete: 2 created, 0 updated, 0 replaced, 0 deleted, 0 failed.")


def test_no_secret_in_any_plan_format_or_saved_plan(project: Project, emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    emu_control.revoke_questra(ORG, project.remote_id("web"))
    project.questra(KEYS.replace("CI bot", "CI robot"))  # replace + revoked: every path that names secrets
    out = project.root / "p.plan"
    texts = [project.run("plan", "--format", f).output for f in ("text", "markdown", "json")]
    texts.append(project.run("plan", "--out", str(out)).output + out.read_text())
    secrets = [k["secret"] for k in emu_control.questra_keys(ORG)] + list(TOKENS.values())
    for text in texts:
        for secret in secrets:
            assert secret not in text
