"""Bad input never becomes an internal error, and never after a secret was written (issue 14, item 5):
each case here once loaded or validated and then crashed (or, for a state without `keys`, planned
a create of every key). Now each is one clear message, exit 1, with the state untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError
from keyform.model import EnvRef, FileRef
from keyform.resolve import read_ref


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def _no_internal_error(text: str) -> None:
    assert "internal error" not in text and "Traceback" not in text, text


def test_an_env_input_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyformError, match=r"keys\.k\.auth_value: environment variable BAD is not valid UTF-8"):
        read_ref(EnvRef("BAD"), "keys.k.auth_value", {"BAD": "ok\udcff"})  # b"ok\xff" as os.environ holds it
    path = tmp_path / "token"
    path.write_bytes(b"\xff\xfe secret")
    with pytest.raises(KeyformError, match=f"keys.k.auth_value: {path} is not valid UTF-8"):
        read_ref(FileRef(str(path)), "keys.k.auth_value")


def test_plan_with_an_env_input_that_is_not_utf8_exits_1(project: Project, emu_control: EmulatorControl) -> None:
    project.write(
        "version: 1\n"
        "providers:\n"
        "  tq: {type: textql, base_url: {url}, token: {env: TEXTQL_TOKEN}}\n"
        "keys:\n"
        "  t: {provider: tq, description: d, hosts: [api.questra.ai], api_provider: questra, auth_type: token,\n"
        "      auth_value: {env: BAD_INPUT}}\n")
    result = project.run("apply", "--auto-approve", env={"BAD_INPUT": "tok\udcff"})
    assert result.exit_code == 1, result.output
    assert "environment variable BAD_INPUT is not valid UTF-8" in result.stderr
    _no_internal_error(result.output)
    assert emu_control.requests().get("textql.create", 0) == 0


@pytest.mark.parametrize(("edit", "message"), [
    (lambda doc: doc.pop("keys"), 'missing required field "keys"'),
    (lambda doc: doc["keys"]["k"].update(sink="x"), """field "keys.k.sink": 'x' is not valid"""),
    (lambda doc: doc["keys"]["k"].update(sink={"sink": "env"}), 'missing required field "keys.k.sink.as"'),
    (lambda doc: doc["keys"]["k"].update(expiry_spec=5), "field \"keys.k.expiry_spec\": 5 is not of type 'string'"),
    (lambda doc: doc.update(fingerprint_salt=""), "field \"fingerprint_salt\": '' does not match"),
])
def test_a_damaged_state_is_refused_before_anything_happens(project: Project, emu_control: EmulatorControl,
                                                           edit: object, message: str) -> None:
    project.questra("k:\n  provider: qp\n  name: K\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    doc = project.state()
    edit(doc)  # type: ignore[operator]
    project.state_path.write_text(json.dumps(doc))
    before = project.state_path.read_bytes()
    creates = emu_control.requests().get("questra.create", 0)
    for command in (["plan"], ["apply", "--auto-approve"]):
        result = project.run(*command)
        assert result.exit_code == 1, result.output
        assert f"{project.state_path}: state file " in result.stderr and message in result.stderr, result.stderr
        _no_internal_error(result.output)
    assert project.state_path.read_bytes() == before
    assert emu_control.requests().get("questra.create", 0) == creates  # a state without keys created nothing
    assert len(emu_control.questra_keys(ORG)) == 1


def test_a_journal_done_record_without_address_is_refused_naming_its_line(project: Project) -> None:
    project.questra("k:\n  provider: qp\n  name: K\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    journal = project.root / "keyform.state.json.journal"
    key = project.state()["keys"]["k"]
    journal.write_text(json.dumps({"op": "sunk", "seq": "r.1"}) + "\n"
                       + json.dumps({"op": "done", "seq": "r.1", "key": key}) + "\n")
    result = project.run("plan")
    assert result.exit_code == 1
    assert f'{journal}:2: apply journal record is missing required field "address"' in result.stderr, result.stderr
    _no_internal_error(result.output)


def test_a_state_journal_or_lock_nested_too_deeply_is_refused_not_a_crash(tmp_path: Path) -> None:
    from keyform.backends.local import LocalBackend
    from keyform.errors import StateError

    deep = b"[" * 200_000 + b"]" * 200_000
    store = LocalBackend(tmp_path / "keyform.state.json")
    store.path.write_bytes(deep)
    with pytest.raises(StateError, match="nested too deeply"):
        store.load()
    store.journal_path.write_bytes(deep + b"\n")
    with pytest.raises(StateError, match=r"keyform\.state\.json\.journal:1: apply journal record is not a JSON object"):
        store.read_journal()
    store.lock_path.write_bytes(deep)  # a lock file nobody holds: taken over
    with store.lock("plan"):
        pass


def test_a_broken_symlink_in_a_manifest_directory_fails_the_plan_instead_of_deleting_its_keys(
        project: Project, emu_control: EmulatorControl) -> None:
    """`-f keys/` whose `team.yaml` links to `../common/team.yaml`: with `common/` moved away, the link
    was passed over and plan deleted b and c. Now: one message naming the link, exit 1, nothing deleted."""
    keys, common = project.root / "keys", project.root / "common"
    project.questra("a: {provider: qp, name: A}\n")
    keys.mkdir()
    common.mkdir()
    (keys / "main.yaml").write_text(project.manifest.read_text().replace("path: ", "path: ../"))
    project.manifest.unlink()
    (common / "team.yaml").write_text("version: 1\nkeys:\n  b: {provider: qp, name: B}\n  c: {provider: qp, name: C}\n")
    (keys / "team.yaml").symlink_to("../common/team.yaml")
    assert project.run("apply", "--auto-approve", "-f", str(keys)).exit_code == 0
    state_path = keys / project.state_path.name  # beside the first manifest
    state = state_path.read_bytes()
    common.rename(project.root / "moved")
    for command in (("plan",), ("apply", "--auto-approve"), ("validate",)):
        result = project.run(*command, "-f", str(keys))
        assert result.exit_code == 1, result.output
        assert "team.yaml: broken symlink (-> ../common/team.yaml)" in result.stderr
        assert "delete" not in result.output
        _no_internal_error(result.output)
    assert state_path.read_bytes() == state
    assert emu_control.requests().get("questra.delete", 0) == 0


@pytest.mark.parametrize("state", [".", "/", "./"])
@pytest.mark.parametrize("command", [("state", "list"), ("plan",), ("import", "k", "ak_1")])
def test_a_state_path_naming_a_directory_with_no_name_is_one_clear_message(
        project: Project, state: str, command: tuple[str, ...]) -> None:
    """`--state .` and `--state /` said "internal error (ValueError)": the backup, lock and journal
    paths are made beside the state file's name, and `.` has none. `--state dir` said "Is a directory"."""
    project.write("version: 1\nproviders:\n  q: {type: questra, base_url: {url}, token: {env: QUESTRA_TOKEN}, "
                  "org_id: org_1}\nsinks:\n  env: {type: dotenv, path: .env}\nkeys:\n  k: {provider: q, sink: env}\n")
    result = project.run(*command, "--state", state)
    assert result.exit_code == 1, result.output
    shown = state.rstrip("/") or "/"
    assert f"Error: {shown}: cannot read the state file: Is a directory" in result.stderr, result.stderr
    _no_internal_error(result.output)
