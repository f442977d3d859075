"""A command that writes an address (or a sink entry name) into the state refuses one the state
cannot hold before writing anything: `state mv ci-bot 'bad name'` used to succeed, and every later
command then failed on the state file itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator

ADDRESS_RULE = "is not a valid address (letters, digits, '_', '.', '-'; starting with a letter or digit)"


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    p = Project(tmp_path, emulator.url)
    p.questra("ci-bot:\n  provider: qp\n")
    assert p.run("apply", "--auto-approve").exit_code == 0
    return p


@pytest.mark.parametrize("new", ["bad name", "", "clé", "a/b", "_lead", "trailing\n"])
def test_state_mv_refuses_an_invalid_address_and_leaves_the_state(project: Project, new: str) -> None:
    before = project.state_path.read_bytes()
    res = project.run("state", "mv", "ci-bot", new, "-f", str(project.manifest))
    assert res.exit_code == 1
    assert res.stderr == f"Error: state mv: {new!r} {ADDRESS_RULE}\n"
    assert res.stdout == ""
    assert project.state_path.read_bytes() == before
    listed = project.run("state", "list", "-f", str(project.manifest))
    assert listed.exit_code == 0 and listed.stdout.startswith("ci-bot\tqp\t"), listed.output


@pytest.mark.parametrize(("name", "message"), [
    ("", "--sink-name must not be empty"),
    ("A\x1b[2JB", "--sink-name 'A\\x1b[2JB' holds a control character"),
    # names the key's sink (a dotenv file) can never hold: every apply after failed on them
    ("MY-VAR", "--sink-name: 'MY-VAR' is not a valid environment variable name (letters, digits, '_'; not "
               "starting with a digit), which sink env cannot hold"),
    ("X\u200bY", "--sink-name: 'X\\u200bY' is not a valid environment variable name (letters, digits, '_'; not "
                 "starting with a digit), which sink env cannot hold"),
])
def test_state_mv_refuses_a_sink_name_the_state_cannot_hold(project: Project, name: str, message: str) -> None:
    before = project.state_path.read_bytes()
    res = project.run("state", "mv", "ci-bot", "ci-bot2", "--sink-name", name, "-f", str(project.manifest))
    assert res.exit_code == 1
    assert res.stderr == f"Error: state mv: {message}\n"
    assert project.state_path.read_bytes() == before
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_import_refuses_an_invalid_address_in_the_manifests_words(project: Project) -> None:
    before = project.state_path.read_bytes()
    res = project.run("import", "bad name", project.remote_id("ci-bot"))
    assert res.exit_code == 1
    assert res.stderr == f"Error: import: 'bad name' {ADDRESS_RULE}\n"
    assert project.state_path.read_bytes() == before


def test_the_message_is_the_manifest_validators(project: Project) -> None:
    project.questra('"bad name":\n  provider: qp\n')
    res = project.run("validate")
    assert res.exit_code == 1 and f"keys: 'bad name' {ADDRESS_RULE}" in res.stderr, res.output


def test_state_mv_with_a_named_state_and_manifests_that_do_not_load_renames_all_the_same(project: Project) -> None:
    """State surgery needs no manifests (`--state FILE`, as Terraform's `state mv` needs no
    configuration): the entry name is then checked only for what any state can hold."""
    project.manifest.write_text("version: 1\nkeys: [not, a, mapping]\n")
    res = project.run("state", "mv", "ci-bot", "ci-bot2", "--sink-name", "CI_BOT2", "--state", str(project.state_path))
    assert res.exit_code == 0, res.output
    shown = project.run("state", "show", "ci-bot2", "--state", str(project.state_path))
    assert json.loads(shown.stdout)["sink"] == {"sink": "env", "as": "CI_BOT2"}, shown.output
