"""A plan in which an instance's listing shows none of the two or more keys the state records for it
says so as its first note, a warning (text, Markdown, JSON), naming the instance, the count and what applying does:
a listing that came back empty by mistake makes every key look deleted outside keyform, the plan
creates each again, and the originals stay live and untracked. Nothing is refused (an account may be
wiped on purpose). One key deleted out of several is no such sign. Against the emulator, whose keys
are deleted behind keyform's back through its control API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

KEYS = "a:\n  provider: qp\nb:\n  provider: qp\nc:\n  provider: qp\n"
SAID = ("qp: its listing shows none of the 3 keys the state records for it; applying this plan creates 3 keys "
        "again; if the API's listing is wrong, the 3 keys it recorded stay live and untracked: check the API's "
        "console before applying")


@pytest.fixture(params=["questra", "rest"])
def project(request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator) -> Project:
    p = Project(tmp_path, emulator.url, rest=request.param == "rest")
    p.questra(KEYS)
    assert p.run("apply", "--auto-approve").exit_code == 0
    return p


def test_a_listing_that_shows_none_of_the_recorded_keys_is_a_warning_in_every_format(
        project: Project, emu_control: EmulatorControl) -> None:
    for address in ("a", "b", "c"):
        emu_control.delete_questra(ORG, project.remote_id(address))
    text = project.run("plan")
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith(f"Warning: {SAID}\n"), text.stdout
    assert "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete." in text.stdout
    md = project.run("plan", "--format", "markdown")
    assert f"> **Warning:** `{SAID}`" in md.stdout, md.stdout
    doc = json.loads(project.run("plan", "--format", "json").stdout)
    assert doc["notes"][0] == f"WARNING: {SAID}", doc["notes"]
    applied = project.run("apply", "--auto-approve")  # not refused: the keys are made again
    assert applied.exit_code == 0, applied.output
    assert len(emu_control.questra_keys(ORG)) == 3


def test_keys_removed_from_the_manifests_too_are_said_deleted_all_the_same(project: Project,
                                                                          emu_control: EmulatorControl) -> None:
    """A delete of a key the listing does not show still sends the delete call: the key stays live
    and untracked only when the API answers it is gone (not "forgets 2 keys", as it said)."""
    for address in ("a", "b", "c"):
        emu_control.delete_questra(ORG, project.remote_id(address))
    project.questra("a:\n  provider: qp\n")
    doc = json.loads(project.run("plan", "--format", "json").stdout)
    assert doc["notes"][0] == (
        "WARNING: qp: its listing shows none of the 3 keys the state records for it; applying this plan creates "
        "1 key again and sends the delete call for 2 keys all the same; if the API's listing is wrong, the 1 key it "
        "recorded and creates again stays live and untracked, and a key whose delete the API answers is already "
        "gone is forgotten while it stays live and untracked: check the API's console before applying"), doc["notes"]
    before = emu_control.requests().get("questra.revoke", 0)
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert emu_control.requests().get("questra.revoke", 0) - before == 2  # each answered gone: forgotten
    assert set(json.loads(project.state_path.read_text())["keys"]) == {"a"}


def test_one_key_deleted_out_of_several_gives_no_such_warning(project: Project, emu_control: EmulatorControl) -> None:
    emu_control.delete_questra(ORG, project.remote_id("b"))
    doc = json.loads(project.run("plan", "--format", "json").stdout)
    assert doc["summary"]["create"] == 1, doc
    assert not any("listing shows none" in n for n in doc["notes"]), doc["notes"]


def test_the_built_in_textql_type_is_warned_of_too(tmp_path: Path, emulator: Emulator,
                                                   emu_control: EmulatorControl) -> None:
    p = Project(tmp_path, emulator.url)
    p.write("version: 1\nproviders:\n  tq: {type: textql, base_url: \"{url}\", token: {env: TEXTQL_TOKEN}}\n"
            "keys:\n" + "".join(f"  k{i}: {{provider: tq, description: k{i}, hosts: [h{i}.example], "
                                f"auth_value: {{env: AUTH}}}}\n" for i in range(2)))
    assert p.run("apply", "--auto-approve", env={"AUTH": "credential-0123456789"}).exit_code == 0
    for i in range(2):
        emu_control.delete_textql(p.remote_id(f"k{i}"))
    doc = json.loads(p.run("plan", "--format", "json", env={"AUTH": "credential-0123456789"}).stdout)
    assert doc["notes"][0].startswith("WARNING: tq: its listing shows none of the 2 keys the state records for it; "
                                      "applying this plan creates 2 keys again;"), doc["notes"]


def test_the_warning_comes_before_the_sessions_warnings_even_in_a_markdown_plan_that_cuts_notes(
        project: Project, emu_control: EmulatorControl) -> None:
    """The session's warnings (a manifest's warning policies here: one per policy and key, long
    enough that a Markdown plan cuts the notes) were put before the planner's notes, and pushed this
    one out of a Markdown plan."""
    for address in ("a", "b", "c"):
        emu_control.delete_questra(ORG, project.remote_id(address))
    pattern = "|".join(f"never-{i:04d}" for i in range(100))
    project.questra(KEYS, extra="policies:\n" + "".join(
        f"  named{i}:\n    severity: warning\n    require: {{name_pattern: '{pattern}'}}\n" for i in range(8)))
    doc = json.loads(project.run("plan", "--format", "json").stdout)
    assert doc["notes"][0] == f"WARNING: {SAID}", doc["notes"][:2]
    assert "policy 'named0' (warning)" in doc["notes"][1], doc["notes"][:2]
    text = project.run("plan")
    assert text.exit_code == 0 and text.stdout.startswith(f"Warning: {SAID}\n"), text.stdout[:600]
    md = project.run("plan", "--format", "markdown").stdout
    assert "more note" in md, md[:2000]  # the notes were cut
    first = md.index("> **Warning:**")
    assert md[first:].startswith(f"> **Warning:** `{SAID}`"), md[:2000]
