"""A saved plan is applied only with the env and file input values it was made with (`Plan.inputs`:
a digest of each changed key's input fingerprints). `apply FILE` sent whatever the variables held
at apply time: values nobody reviewed, or a replacement planned for a value that had been set back.
Terraform keeps the planned values in its plan. Against the emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

EXT = ("version: 1\n"
       "providers:\n  tq: {type: textql, base_url: {url}, token: {env: TEXTQL_TOKEN}}\n"
       "keys:\n  ext: {provider: tq, description: ext, hosts: [api.example.com], api_provider: openai,\n"
       "        auth_type: token, auth_value: {env: TOK}}\n"
       "  other: {provider: tq, description: other, hosts: [b.example.com], api_provider: openai,\n"
       "          auth_type: token, auth_value: {env: OTHER}}\n")


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    project = Project(tmp_path, emulator.url)
    project.write(EXT)
    assert project.run("apply", "--auto-approve", env={"TOK": "value-a", "OTHER": "o"}).exit_code == 0
    return project


def _auth_values(control: EmulatorControl) -> dict[str, str]:
    return {k["description"]: k["authValue"] for k in control.state()["textql"]["keys"]}


@pytest.mark.parametrize(("planned", "applied"), [("value-c", "value-b"), ("value-c", "value-a")])
def test_a_saved_plan_is_refused_when_an_input_it_changes_has_another_value_now(
        project: Project, emu_control: EmulatorControl, tmp_path: Path, planned: str, applied: str) -> None:
    saved = tmp_path / "p.plan"
    res = project.run("plan", "--out", str(saved), env={"TOK": planned, "OTHER": "o"})
    assert res.exit_code == 0 and "auth_value changed (fingerprint)" in res.stdout, res.output
    assert list(json.loads(saved.read_text())["inputs"]) == ["ext"]  # only the keys the plan changes
    before, calls = project.state_path.read_bytes(), emu_control.requests()
    res = project.run("apply", str(saved), env={"TOK": applied, "OTHER": "o"})
    assert res.exit_code == 1
    assert res.stderr == ("Error: Saved plan is stale: the value of an env or file input of key 'ext' changed "
                          "since it was made. Run `keyform plan` again.\n")
    assert planned not in res.output and applied not in res.output
    assert project.state_path.read_bytes() == before and emu_control.requests() == calls
    assert _auth_values(emu_control)["ext"] == "value-a"


def test_a_saved_plan_applies_with_the_values_it_was_made_with(project: Project, emu_control: EmulatorControl,
                                                                tmp_path: Path) -> None:
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--out", str(saved), env={"TOK": "value-c", "OTHER": "o"}).exit_code == 0
    # an input of a key the plan leaves unchanged may differ: the plan does nothing with it
    res = project.run("apply", str(saved), env={"TOK": "value-c", "OTHER": "o2"})
    assert res.exit_code == 0, res.output
    assert _auth_values(emu_control)["ext"] == "value-c"


def test_a_destroy_plan_applies_whatever_its_keys_inputs_hold_now(project: Project, tmp_path: Path) -> None:
    """A delete sends no input: a teardown after the variable was rotated or unset was refused."""
    saved = tmp_path / "d.plan"
    assert project.run("plan", "--destroy", "--out", str(saved), env={"TOK": "value-a", "OTHER": "o"}).exit_code == 0
    assert "inputs" not in json.loads(saved.read_text())
    res = project.run("apply", str(saved), env={"TOK": "value-b", "OTHER": "o"})
    assert res.exit_code == 0, res.output


def test_the_input_digests_are_kept_out_of_printed_plans(project: Project, tmp_path: Path) -> None:
    """Only `apply FILE` reads them: `plan --format json` (CI logs) and `show` leave them out."""
    saved = tmp_path / "p.plan"
    env = {"TOK": "value-c", "OTHER": "o"}
    assert "inputs" in json.loads(project.run("plan", "--out", str(saved), env=env).stdout and saved.read_text())
    assert "inputs" not in json.loads(project.run("plan", "--format", "json", env=env).stdout)
    assert "inputs" not in json.loads(project.run("show", "--format", "json", str(saved)).stdout)


def test_a_plan_made_before_any_state_carries_no_input_digests(tmp_path: Path, emulator: Emulator) -> None:
    """The salt its fingerprints would be made under is made by the apply that writes the state."""
    project = Project(tmp_path, emulator.url)
    project.write(EXT)
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--out", str(saved), env={"TOK": "a", "OTHER": "o"}).exit_code == 0
    assert "inputs" not in json.loads(saved.read_text())
    assert project.run("apply", str(saved), env={"TOK": "a", "OTHER": "o"}).exit_code == 0


@pytest.mark.parametrize("inputs", [["ext"], {"ext": 1}, "digest"])
def test_a_saved_plan_whose_input_digests_are_malformed_is_refused(project: Project, tmp_path: Path,
                                                                  inputs: object) -> None:
    saved = tmp_path / "p.plan"
    env = {"TOK": "value-c", "OTHER": "o"}
    assert project.run("plan", "--out", str(saved), env=env).exit_code == 0
    doc = json.loads(saved.read_text())
    saved.write_text(json.dumps({**doc, "inputs": inputs}))
    before = project.state_path.read_bytes()
    res = project.run("apply", str(saved), env=env)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert "not a keyform plan file" in res.stderr and project.state_path.read_bytes() == before
