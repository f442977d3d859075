"""No sink may write the local state or its backup, lock or journal (review).

`sinks: {env: {type: dotenv, path: keyform.state.json.journal}}` validated, and apply wrote the
issued secret into the journal (`A=sk_live_...`): every later command failed on it. At the state
itself the secret was written there and the state then broke with the key live; at `.backup` apply
succeeded with the secret in the file users commit; at `.lock` the apply said "state lock lost".
Now refused at the sink's `path:` (a `file` sink's `dir:`) line by `validate`, and by `plan` and
`apply` before any call to a provider, also for the state a `--state FILE` names.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.backends.local import LocalBackend
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError
from keyform.manifest import load_workspace
from keyform.manifest.build import STATE_FILES

SUFFIXES = ["", ".backup", ".lock", ".journal"]
WHAT = {"": "the file", ".backup": "the backup", ".lock": "the lock file", ".journal": "the apply journal"}
TAIL = "a sink writing there would put secrets in it and break the state; name another file"


def manifest(sinks: str, *, state: str = "", keys: str = "k: {provider: qp}\n") -> str:
    return ("version: 1\n" + state +
            "providers:\n  qp: {type: questra, base_url: 'http://127.0.0.1:1', token: {env: T}, org_id: o}\n"
            "sinks:\n" + textwrap.indent(textwrap.dedent(sinks), "  ") +
            "defaults: {sink: env}\n"
            "keys:\n" + textwrap.indent(textwrap.dedent(keys), "  "))


def problems(root: Path, text: str, state_override: str | None = None) -> list[str]:
    (root / "keyform.yaml").write_text(text)
    try:
        if state_override is None:
            load_workspace(["keyform.yaml"], cwd=root)
        else:
            load_workspace(["keyform.yaml"], cwd=root, state_override=state_override)
    except KeyformError as exc:
        return [str(d) for d in exc.diagnostics]
    return []


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_the_files_checked_are_the_local_backend_s() -> None:
    store = LocalBackend(Path("/x/s.json"))
    assert [Path("/x/s.json" + suffix) for suffix, _ in STATE_FILES] == [
        store.path, store.backup_path, store.lock_path, store.journal_path]


@pytest.mark.parametrize("sink_type", ["dotenv", "json"])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_sink_file_at_the_state_or_a_companion_is_refused_at_its_path_line(tmp_path: Path, suffix: str,
                                                                               sink_type: str) -> None:
    text = manifest(f"env:\n  type: {sink_type}\n  path: keyform.state.json{suffix}\n")
    written = tmp_path / f"keyform.state.json{suffix}"
    assert problems(tmp_path, text) == [
        f"keyform.yaml:{line_of(text, 'path:')}: sinks.env.path: {written} is {WHAT[suffix]} of the manifests' "
        f"local state: {TAIL}"]


def test_the_state_path_of_the_manifests_is_the_one_checked(tmp_path: Path) -> None:
    state = "state:\n  path: var/s.json\n"
    (tmp_path / "sub").mkdir()
    text = manifest("env: {type: dotenv, path: sub/../var/s.json.journal}\n", state=state)
    assert problems(tmp_path, text) == [
        f"keyform.yaml:{line_of(text, 'path: sub')}: sinks.env.path: {tmp_path}/var/s.json.journal is the apply "
        f"journal of the manifests' local state: {TAIL}"]
    # the default name is no state of this workspace: a file like any other
    assert problems(tmp_path, manifest("env: {type: dotenv, path: keyform.state.json}\n", state=state)) == []


def test_a_postgres_workspace_has_no_local_state_files_unless_state_names_one(tmp_path: Path) -> None:
    text = manifest("env: {type: dotenv, path: keyform.state.json.journal}\n",
                    state="state: {backend: postgres, dsn: {env: DSN}}\n")
    assert problems(tmp_path, text) == []
    assert problems(tmp_path, text, state_override=str(tmp_path / "keyform.state.json")) == [
        f"keyform.yaml:{line_of(text, 'path:')}: sinks.env.path: {tmp_path}/keyform.state.json.journal is the "
        f"apply journal of the state --state {tmp_path}/keyform.state.json: {TAIL}"]


def test_links_are_followed_as_the_writes_would_follow_them(tmp_path: Path) -> None:
    """A sink path that is a link to the state, or whose directory is a link to the state's."""
    (tmp_path / "alias").symlink_to(tmp_path)
    (tmp_path / "out.env").symlink_to("keyform.state.json.backup")
    text = manifest("env: {type: dotenv, path: alias/keyform.state.json.lock}\n"
                    "two: {type: dotenv, path: out.env}\n")
    assert problems(tmp_path, text) == [
        f"keyform.yaml:{line_of(text, 'alias/')}: sinks.env.path: {tmp_path}/alias/keyform.state.json.lock is "
        f"the lock file of the manifests' local state: {TAIL}",
        f"keyform.yaml:{line_of(text, 'out.env')}: sinks.two.path: {tmp_path}/out.env is the backup of the "
        f"manifests' local state: {TAIL}"]


def test_another_name_of_the_same_file_is_refused(tmp_path: Path) -> None:
    """Found by review 102 (suspected): the check compared resolved path strings, so a hard link to
    the state, or on macOS's case-insensitive file system `KEYFORM.STATE.JSON`, passed."""
    (tmp_path / "keyform.state.json").write_text("{}")
    (tmp_path / "secrets.env").hardlink_to(tmp_path / "keyform.state.json")
    text = manifest("env: {type: dotenv, path: secrets.env}\n")
    assert problems(tmp_path, text) == [
        f"keyform.yaml:{line_of(text, 'path:')}: sinks.env.path: {tmp_path}/secrets.env is the same file as the "
        f"file of the manifests' local state: {TAIL}"]


@pytest.mark.parametrize("written", ["KEYFORM.STATE.JSON", "Keyform.State.Json.Journal", "KEYFORM.YAML"])
def test_a_name_differing_only_in_case_is_refused(tmp_path: Path, written: str) -> None:
    """On a case-insensitive file system (macOS's, Windows') the name is the state's, or a
    manifest's, whether or not that file exists yet; the manifests may be applied from one."""
    text = manifest(f"env: {{type: dotenv, path: {written}}}\n")
    what = ("a manifest file: a sink writing there would put secrets in it, to be committed and "
            "reviewed with it; name another file") if written == "KEYFORM.YAML" else (
        f"{'the apply journal' if written.endswith('Journal') else 'the file'} of the manifests' local state: {TAIL}")
    assert problems(tmp_path, text) == [
        f"keyform.yaml:{line_of(text, 'path:')}: sinks.env.path: {tmp_path}/{written} is on a case-insensitive "
        f"file system (macOS, Windows) {what}"]


def test_a_file_sink_s_entries_and_its_dir_are_checked(tmp_path: Path) -> None:
    text = manifest("env: {type: file, dir: .}\nfiles: {type: file, dir: keyform.state.json.journal}\n",
                    keys="k: {provider: qp, sink: {use: env, as: keyform.state.json.lock}}\n"
                         "fine: {provider: qp, sink: {use: env, as: keyform.state.json.other}}\n")
    assert problems(tmp_path, text) == [
        f"keyform.yaml:{line_of(text, 'dir: .')}: sinks.env.dir: the entry 'keyform.state.json.lock' of key 'k' "
        f"would be {tmp_path}/keyform.state.json.lock, which is the lock file of the manifests' local state: a "
        "sink writing there would put secrets in it and break the state; name another directory, or set that "
        "key's sink.as",
        f"keyform.yaml:{line_of(text, 'dir: keyform')}: sinks.files.dir: {tmp_path}/keyform.state.json.journal "
        f"is the apply journal of the manifests' local state: {TAIL}"]


def test_a_relative_state_override_is_taken_from_the_current_directory(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """As the backend opens it (`LocalBackend(Path("s.json"))`), not from the manifests' directory."""
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    text = manifest("env: {type: dotenv, path: ../s.json.backup}\n")
    (tmp_path / "m" / "keyform.yaml").write_text(text)
    with pytest.raises(KeyformError) as exc:
        load_workspace(["m/keyform.yaml"], state_override="s.json")
    assert [str(d) for d in exc.value.diagnostics] == [
        f"m/keyform.yaml:{line_of(text, 'path:')}: sinks.env.path: {tmp_path}/s.json.backup is the backup of the "
        f"state --state s.json: {TAIL}"]
    load_workspace(["m/keyform.yaml"])  # the manifests' own state is m/keyform.state.json


# ------------------------------------------------------------------------------- end to end


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    p = Project(tmp_path, emulator.url)
    p.questra("k:\n  provider: qp\n")
    return p


def at_sink_path(project: Project, path: str) -> str:
    text = project.manifest.read_text().replace(".secrets/keys.env", path)
    project.manifest.write_text(text)
    return f"{project.manifest}:{line_of(text, 'path: ' + path)}"


def secrets_anywhere(project: Project, control: EmulatorControl) -> list[str]:
    issued = [str(k["secret"]) for k in control.questra_keys(ORG) if k.get("secret")]
    found = []
    for path in project.root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path.name}: {s}" for s in issued if s.encode() in data]
            if b"sk_" in data and path.name.startswith("keyform.state.json"):  # a secret of any key
                found.append(f"{path.name}: sk_")
    return found


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_apply_is_refused_before_any_key_is_made(project: Project, emu_control: EmulatorControl,
                                                 suffix: str) -> None:
    where = at_sink_path(project, f"keyform.state.json{suffix}")
    said = (f"{where}: sinks.env.path: {project.root}/keyform.state.json{suffix} is {WHAT[suffix]} of the "
            f"manifests' local state: {TAIL}")
    for args in (("validate",), ("plan",), ("apply", "--auto-approve")):
        res = project.run(*args)
        assert res.exit_code == 1, res.output
        assert said in res.stderr, res.stderr
    assert emu_control.questra_keys(ORG) == []
    assert sorted(p.name for p in project.root.iterdir()) == ["keyform.yaml"]


def test_a_workspace_with_a_state_is_refused_and_left_as_it_was(project: Project,
                                                                emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    state = project.state_path.read_bytes()
    project.questra("k:\n  provider: qp\nk2:\n  provider: qp\n")
    where = at_sink_path(project, "keyform.state.json.journal")
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 1 and f"{where}: sinks.env.path: " in res.stderr, res.output
    assert len(emu_control.questra_keys(ORG)) == 1
    assert project.state_path.read_bytes() == state and not project.journal_path.exists()
    assert secrets_anywhere(project, emu_control) == [f"keys.env: {emu_control.questra_keys(ORG)[0]['secret']}"]


def test_the_state_named_by_state_is_protected_too(project: Project, emu_control: EmulatorControl) -> None:
    """`--state other.json` with a sink at other.json.backup: validate (no --state) passes, plan
    and apply with it are refused; the manifests' own state is checked as well."""
    other = project.root / "other.json"
    where = at_sink_path(project, "other.json.backup")
    assert project.run("validate").exit_code == 0
    for args in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*args, "--state", str(other))
        assert res.exit_code == 1, res.output
        assert res.stderr == (f"Error: {where}: sinks.env.path: {other}.backup is the backup of the state "
                              f"--state {other}: {TAIL}\n")
    assert emu_control.questra_keys(ORG) == []
    assert not other.exists() and not Path(f"{other}.backup").exists()
    assert secrets_anywhere(project, emu_control) == []


@pytest.mark.parametrize("target", ["keyform.yaml", "more.yaml"])
def test_a_sink_at_a_manifest_file_is_refused_at_its_path_line(tmp_path: Path, target: str) -> None:
    """Found in the review of the above: a sink whose `path` is a manifest file itself was accepted;
    its secret would be written into a file committed and reviewed with the manifests (and the next
    load would read a dotenv file as a manifest)."""
    (tmp_path / "more.yaml").write_text("version: 1\n")
    text = manifest(f"env: {{type: dotenv, path: {target}}}\n")
    (tmp_path / "keyform.yaml").write_text(text)
    try:
        load_workspace(["keyform.yaml", "more.yaml"], cwd=tmp_path)
        found: list[str] = []
    except KeyformError as exc:
        found = [str(d) for d in exc.diagnostics]
    assert found == [f"keyform.yaml:{line_of(text, 'path: ' + target)}: sinks.env.path: {tmp_path / target} is a "
                     "manifest file: a sink writing there would put secrets in it, to be committed and reviewed with "
                     "it; name another file"], found


def test_a_sink_at_a_rest_definition_file_is_refused(tmp_path: Path) -> None:
    """Found by review 102: a sink whose `path` was a provider's REST definition file was accepted
    (the definition counts in the workspace digest and is reviewed like code)."""
    from harness.project import SCRIPTED_REST

    project = Project(tmp_path, "http://127.0.0.1:1")
    project.rest_api(SCRIPTED_REST, "k1: {provider: rp, name: k1}\n")
    text = project.manifest.read_text()
    assert "    path: .secrets/keys.env\n" in text
    project.manifest.write_text(text.replace("    path: .secrets/keys.env\n", "    path: api.yaml\n"))
    res = project.run("validate")
    assert res.exit_code == 1, res.output
    assert (f"sinks.env.path: {tmp_path / 'api.yaml'} is the REST definition file of provider rp: a sink writing "
            "there would put secrets in it, to be committed and reviewed with it; name another file") in res.stderr, \
        res.stderr
