"""A sink file that cannot be read is refused at plan time, before any remote call.

A `.env` that is not UTF-8, a JSON sink that is not JSON, a symlink or a FIFO at a sink path: the
sink refuses to write there (and says so), but plan used to skip the file it could not scan, so
`plan` showed a clean create and `apply` created the key, failed to store its secret and revoked
it again. Now plan names the key (`file:line`), the sink file (`file:line` where there is a line)
and what is wrong, exits 1 and calls nothing; a saved plan is checked again at apply; a sink that
holds recorded secrets and cannot be read gets a note. No byte of the file is ever shown.
Through the CLI against the emulator over real HTTP on 127.0.0.1, plus the scan itself.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import SourceLoc
from keyform.model import SinkConfig
from keyform.sinkscan import scan

ENV = ".secrets/keys.env"
CANARY = "sk_live_CANARY_\u00e9t\u00e9_0123456789"


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def _live(control: EmulatorControl) -> list[dict[str, object]]:
    return [k for k in control.questra_keys(ORG) if not k.get("revoked")]


def _key_line(project: Project, key: str = "ci-bot") -> int:
    return project.manifest.read_text().splitlines().index(f"  {key}:") + 1


def _latin1_env(project: Project) -> Path:
    """A .env whose second line holds a secret in Latin-1: not UTF-8."""
    path = project.root / ENV
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"# team secrets\nOLD_KEY=" + CANARY.encode("latin-1") + b"\n")
    return path


@pytest.mark.parametrize("command", [("plan",), ("apply", "--auto-approve")])
def test_a_dotenv_file_that_is_not_utf8_is_refused_before_any_key_is_created(
        project: Project, emu_control: EmulatorControl, command: tuple[str, ...]) -> None:
    env = _latin1_env(project)
    before = env.read_bytes()
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    res = project.run(*command)
    assert res.exit_code == 1, res.output
    assert f"{project.manifest}:{_key_line(project)}: key 'ci-bot': sink env cannot take its secret: " in res.stderr
    assert f"{ENV}:2: not UTF-8 text. Applying would create the key and then fail to store the secret" in res.stderr
    assert "Traceback" not in res.output and "internal error" not in res.output
    assert CANARY not in res.output and CANARY.encode("latin-1").decode("latin-1") not in res.output
    assert env.read_bytes() == before  # untouched
    assert _live(emu_control) == [] and emu_control.questra_keys(ORG) == []  # nothing created, nothing revoked
    assert not project.state_path.exists()


def test_a_symlink_at_the_sink_path_is_refused_at_plan_time_and_its_target_untouched(
        project: Project, tmp_path: Path, emu_control: EmulatorControl) -> None:
    target = tmp_path / "elsewhere" / "profile"
    target.parent.mkdir()
    target.write_text("export PATH=$HOME/bin:$PATH\n")
    (project.root / ".secrets").mkdir(mode=0o700)
    (project.root / ENV).symlink_to(target)
    project.questra("ci-bot: {provider: qp}\n")
    for command in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*command)
        assert res.exit_code == 1, res.output
        assert "key 'ci-bot': sink env cannot take its secret:" in res.stderr
        assert "is a symbolic link; keyform does not write or read secrets through links" in res.stderr
    assert target.read_text() == "export PATH=$HOME/bin:$PATH\n"
    assert emu_control.questra_keys(ORG) == []


def test_a_fifo_at_the_sink_path_is_refused_without_waiting_for_a_writer(
        project: Project, emu_control: EmulatorControl) -> None:
    (project.root / ".secrets").mkdir(mode=0o700)
    os.mkfifo(project.root / ENV)
    project.questra("ci-bot: {provider: qp}\n")
    res = project.run("plan")
    assert res.exit_code == 1, res.output
    assert "is not a regular file (a pipe, device or socket)" in res.stderr
    assert emu_control.questra_keys(ORG) == []


@pytest.mark.parametrize("kind", ["dotenv", "json"])
def test_a_directory_at_a_sink_file_path_is_refused_in_one_line(project: Project, emu_control: EmulatorControl,
                                                                kind: str) -> None:
    """A directory at the path: its error carries a descriptor number, not a path, and the message
    code once took it for one (`internal error (TypeError)`)."""
    (project.root / ENV).mkdir(parents=True)
    project.questra("ci-bot: {provider: qp}\n")
    project.manifest.write_text(project.manifest.read_text().replace("type: dotenv", f"type: {kind}"))
    res = project.run("plan")
    assert res.exit_code == 1, res.output
    assert f"{ENV}: cannot read it: Is a directory" in res.stderr and "internal error" not in res.output
    assert emu_control.questra_keys(ORG) == []


def test_a_json_sink_that_is_not_json_is_named_at_its_line(project: Project, emu_control: EmulatorControl) -> None:
    path = project.root / "secrets.json"
    path.write_text('{\n  "A": "' + CANARY + '",\n  oops\n}\n')
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: js, as: CI_BOT}\n")
    project.manifest.write_text(project.manifest.read_text().replace(
        "sinks:\n", "sinks:\n  js:\n    type: json\n    path: secrets.json\n"))
    res = project.run("plan")
    assert res.exit_code == 1, res.output
    assert "key 'ci-bot': sink js cannot take its secret: " in res.stderr
    assert "secrets.json:3: not valid JSON (" in res.stderr
    assert CANARY not in res.output
    assert emu_control.questra_keys(ORG) == []


def test_a_saved_plan_is_refused_when_its_sink_file_became_unreadable(
        project: Project, emu_control: EmulatorControl) -> None:
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    out = project.root / "p.plan"
    assert project.run("plan", "--out", str(out)).exit_code == 0
    _latin1_env(project)  # between plan and apply
    res = project.run("apply", "--auto-approve", str(out))
    assert res.exit_code == 1, res.output
    assert "sink env cannot take its secret: " in res.stderr and f"{ENV}:2: not UTF-8 text" in res.stderr
    assert emu_control.questra_keys(ORG) == []


def test_a_sink_holding_recorded_secrets_that_cannot_be_read_gets_a_note_not_a_change(
        project: Project, emu_control: EmulatorControl) -> None:
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n"
                    "web:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    env = project.root / ENV
    env.write_bytes(env.read_bytes() + b"BROKEN=\xff\n")
    res = project.run("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.output  # no change: plan cannot tell a lost secret from an unreadable file
    assert f"{ENV}:3: not UTF-8 text; whether it still holds the secret of 2 keys is unknown" in res.stdout
    assert "sink env: " in res.stdout
    assert len(_live(emu_control)) == 2


def test_only_the_keys_writing_to_the_unreadable_sink_are_refused(project: Project) -> None:
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n"
                    "web:\n  provider: qp\n  sink: {use: other, as: WEB}\n")
    project.manifest.write_text(project.manifest.read_text().replace(
        "sinks:\n", "sinks:\n  other:\n    type: dotenv\n    path: other.env\n"))
    _latin1_env(project)
    res = project.run("plan")
    assert res.exit_code == 1
    assert "key 'ci-bot': sink env cannot take its secret" in res.stderr
    assert "key 'web'" not in res.stderr


def test_moving_a_secret_out_of_an_unreadable_sink_file_is_refused(project: Project,
                                                                   emu_control: EmulatorControl) -> None:
    """A sink move reads the secret back from the old entry: from a file that cannot be read, the
    update would run and the move then fail. Refused at plan time instead."""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    env = project.root / ENV
    env.write_bytes(env.read_bytes() + b"BROKEN=\xff\n")
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: other, as: CI_BOT}\n")
    project.manifest.write_text(project.manifest.read_text().replace(
        "sinks:\n", "sinks:\n  other:\n    type: dotenv\n    path: other.env\n"))
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 1, res.output
    assert "key 'ci-bot': its secret cannot be moved out of sink env: " in res.stderr
    assert f"{ENV}:2: not UTF-8 text" in res.stderr
    assert not (project.root / "other.env").exists()


@pytest.mark.parametrize(("kind", "data", "problem"), [
    ("dotenv", b"A=1\nB=\xe9\n", "x:2: not UTF-8 text"),
    ("json", b"\xff\xfe{", "x:1: not UTF-8 text"),
    ("json", b'{"a": [1, 2', "x:1: not valid JSON (Expecting"),
    ("json", b"[1, 2]", "x: not a JSON object (a flat {name: secret} map)"),
    ("json", b"[" * 100_000, "x: nested too deeply to be a keyform JSON sink"),
])
def test_scan_keeps_why_a_sink_file_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  kind: str, data: bytes, problem: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_bytes(data)
    snap = scan({"s": SinkConfig("s", kind, {"path": "x"}, SourceLoc("m.yaml", 1))}, {"s"})
    assert snap.holds("s", "A") is None  # not scanned: unknown
    assert snap.problems["s"].startswith(problem), snap.problems


def test_scan_of_a_fifo_returns_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "x")
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(scan({"s": SinkConfig("s", "dotenv", {"path": "x"}, SourceLoc("m.yaml", 1))}, {"s"})),
                         daemon=True)
    t.start()
    t.join(10)
    assert result, "scan blocked on a FIFO"


def _add_sink(project: Project, sink: str) -> None:
    """Declare one more sink (`name: {options}`, flow YAML) in the project's manifest."""
    project.manifest.write_text(project.manifest.read_text().replace("sinks:\n", f"sinks:\n  {sink}\n"))


K8S_SECRET = ("apiVersion: v1\nkind: Secret\nmetadata: {name: api-keys, namespace: default}\ntype: Opaque\n"
              f"stringData:\n  OTHER: {CANARY}\n  {{word}}: kept\n")


@pytest.mark.parametrize("word", ["123", "yes", "null", "1.5"])
def test_a_k8s_secret_with_a_key_yaml_reads_as_no_string_is_refused_before_any_key_is_created(
        project: Project, emu_control: EmulatorControl, word: str) -> None:
    """`123:` (and in YAML 1.1 `yes:`, `null:`) is a key of another type: the sink's rewrite sorts
    the keys and failed with a bare `TypeError`, after apply had created the key (then revoked)."""
    path = project.root / "k.yaml"
    path.write_text(K8S_SECRET.replace("{word}", word))
    before = path.read_bytes()
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: k, as: CI_BOT}\n")
    _add_sink(project, "k: {type: k8s-secret, path: k.yaml, name: api-keys}")
    for command in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*command)
        assert res.exit_code == 1, res.output
        assert f"{project.manifest}:{_key_line(project)}: key 'ci-bot': sink k cannot take its secret: " in res.stderr
        assert "k.yaml:7: stringData has a key that YAML reads as " in res.stderr
        assert f"not a string ({word!r}); a Secret's keys are strings: quote it. Applying would" in res.stderr
        assert "TypeError" not in res.output and "internal error" not in res.output
        assert CANARY not in res.output
    assert path.read_bytes() == before
    assert emu_control.questra_keys(ORG) == []


def test_a_k8s_secret_key_yaml_reads_as_no_string_fails_a_destroy_in_words(project: Project) -> None:
    """A delete is not held back by an unreadable sink file (plan notes it); the removal of the
    entry then fails in the sink's words, naming the file and line, never as a `TypeError`."""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: k, as: CI_BOT}\n")
    _add_sink(project, "k: {type: k8s-secret, path: k.yaml, name: api-keys}")
    assert project.run("apply", "--auto-approve").exit_code == 0
    path = project.root / "k.yaml"
    path.write_text(path.read_text() + "  123: other\n  ZZZ: other\n")  # two left to sort: 123 < 'ZZZ'
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 1, res.output
    assert "k.yaml:9: stringData has a key that YAML reads as a number, not a string ('123')" in res.output
    assert "TypeError" not in res.output and "internal error" not in res.output


def test_a_key_whose_entry_is_gone_from_a_k8s_secret_file_is_planned_for_replacement(project: Project) -> None:
    """The plain Secret file is scanned like a .env (the scan that refuses an unusable file): a
    secret removed from it is noticed by plan."""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: k, as: CI_BOT}\n")
    _add_sink(project, "k: {type: k8s-secret, path: k.yaml, name: api-keys}")
    assert project.run("apply", "--auto-approve").exit_code == 0
    (project.root / "k.yaml").unlink()
    res = project.run("plan")
    assert res.exit_code == 0, res.output
    assert "secret missing from sink k (CI_BOT)" in res.stdout


def _refused_at_plan_and_apply(project: Project, sink: str, reason: str) -> list[str]:
    """`plan` and `apply` of key ci-bot each exit 1, refusing its sink `sink` for `reason`, before
    any key is created; their outputs."""
    outputs = []
    for command in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*command)
        assert res.exit_code == 1, res.output
        assert f"key 'ci-bot': sink {sink} cannot take its secret: " in res.stderr and reason in res.stderr, res.stderr
        outputs.append(res.output)
    return outputs


@pytest.mark.parametrize(("content", "problem"), [
    ('{\n  "x": "\\ud800",\n  "OTHER": "' + CANARY + '"\n}\n',
     "holds text that is not valid Unicode (a lone surrogate: a \\ud800 escape), which keyform could not write back"),
    ('{"x": ' + "7" * 5000 + ', "OTHER": "' + CANARY + '"}',
     "holds an integer of 5000 digits, more than keyform reads (at most 4300)"),
], ids=["lone-surrogate", "5000-digits"])
def test_a_json_sink_file_keyform_could_not_write_back_is_refused_before_any_key_is_created(
        project: Project, emu_control: EmulatorControl, content: str, problem: str) -> None:
    """Python's json reads a lone surrogate escape, which UTF-8 cannot hold: the scan passed it, the
    write refused it, and every apply created a key and revoked it again. An integer too long for
    Python was refused in Python's words (`use sys.set_int_max_str_digits()`)."""
    path = project.root / "secrets.json"
    path.write_text(content)
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: js, as: CI_BOT}\n")
    _add_sink(project, "js: {type: json, path: secrets.json}")
    for output in _refused_at_plan_and_apply(project, "js", f"secrets.json: {problem}. Applying would"):
        assert "sys.set_int_max_str_digits" not in output and CANARY not in output
    assert path.read_text() == content
    assert emu_control.questra_keys(ORG) == []


@pytest.mark.parametrize(("value", "problem"), [
    ("7" * 5000, "k.yaml:4: holds an integer of 5000 digits, more than keyform reads (at most 4300)"),
    ("2024-02-30", "k.yaml:4: holds a date that does not exist (YAML reads an unquoted date as one; quote it if"),
], ids=["5000-digits", "no-such-date"])
def test_a_k8s_secret_value_python_cannot_read_is_a_problem_at_its_line_not_a_value_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    """PyYAML raised a bare ValueError for these (which apply reduced to its type name, after the
    key was created); the value is never shown (a stringData value is a secret)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k.yaml").write_text(f"apiVersion: v1\nkind: Secret\nstringData:\n  OTHER: {value}\n")
    config = SinkConfig("k", "k8s-secret", {"path": "k.yaml", "name": "api-keys"}, SourceLoc("m.yaml", 1))
    snap = scan({"k": config}, {"k"})
    assert snap.holds("k", "OTHER") is None
    assert snap.problems["k"].startswith(problem), snap.problems
    assert value not in snap.problems["k"]


def test_a_file_sink_whose_dir_is_a_symlink_is_refused_before_any_key_is_created(
        project: Project, tmp_path: Path, emu_control: EmulatorControl) -> None:
    """The plan's scan listed the directory through the link, and apply wrote the secret into the
    link's target."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    (project.root / "files").symlink_to(target)
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: f, as: CI_BOT}\n")
    _add_sink(project, "f: {type: file, dir: files}")
    _refused_at_plan_and_apply(project, "f", "files is a symbolic link; keyform does not write or read secrets "
                                              "through links")
    assert list(target.iterdir()) == []
    assert emu_control.questra_keys(ORG) == []


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo"])
def test_a_file_sink_entry_the_sink_cannot_use_is_refused_before_any_key_is_created(
        project: Project, tmp_path: Path, emu_control: EmulatorControl, kind: str) -> None:
    """The scan took an entry that is a link (to a file) as the secret's file, and missed one that
    is a directory: a directory entry planned a clean create, apply created the key, failed to
    replace the directory with the secret and revoked the key; a link entry counted as holding a
    secret the sink refuses to read. Now plan and apply name the entry, exit 1 and create nothing."""
    target = tmp_path / "elsewhere"
    target.write_text(CANARY)
    entry = project.root / "files" / "CI_BOT"
    entry.parent.mkdir(mode=0o700)
    if kind == "symlink":
        entry.symlink_to(target)
        reason = "files/CI_BOT is a symbolic link; keyform does not write or read secrets through links"
    elif kind == "directory":
        entry.mkdir()
        reason = "files/CI_BOT is a directory, not the file of a secret"
    else:
        os.mkfifo(entry)
        reason = "files/CI_BOT is not a regular file (a pipe, device or socket); keyform reads only files"
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: f, as: CI_BOT}\n"
                    "web:\n  provider: qp\n  sink: {use: f, as: WEB}\n")
    _add_sink(project, "f: {type: file, dir: files}")
    for output in _refused_at_plan_and_apply(project, "f", reason):
        assert "key 'web'" not in output  # only the key writing to that entry
        assert CANARY not in output
    assert emu_control.questra_keys(ORG) == []
    assert target.read_text() == CANARY


def test_a_recorded_file_sink_secret_replaced_by_a_symlink_is_refused_not_taken_as_present(
        project: Project, tmp_path: Path, emu_control: EmulatorControl) -> None:
    """A link planted where keyform wrote the secret's file: plan used to see the entry as there
    (the scan followed the link) while every read of it is refused. Now the plan says which entry
    the sink cannot use and plans nothing; `web`, in the same directory, is untouched."""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: f, as: CI_BOT}\n"
                    "web:\n  provider: qp\n  sink: {use: f, as: WEB}\n")
    _add_sink(project, "f: {type: file, dir: files}")
    assert project.run("apply", "--auto-approve").exit_code == 0
    entry = project.root / "files" / "CI_BOT"
    target = tmp_path / "elsewhere"
    target.write_text(CANARY)
    entry.unlink()
    entry.symlink_to(target)
    res = project.run("plan")
    assert res.exit_code == 1, res.output
    assert "key 'ci-bot': sink f cannot take its secret: " in res.stderr, res.stderr
    assert ("files/CI_BOT is a symbolic link; keyform does not write or read secrets through links. Applying would "
            "replace the key") in res.stderr
    assert "key 'web'" not in res.output and CANARY not in res.output
    assert len(_live(emu_control)) == 2 and target.read_text() == CANARY


def test_scan_of_a_file_sink_keeps_the_entries_it_cannot_use_apart(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    files = tmp_path / "files"
    files.mkdir()
    (files / "A").write_text("secret")
    (files / "LINK").symlink_to(files / "A")
    (files / "DIR").mkdir()
    snap = scan({"f": SinkConfig("f", "file", {"dir": str(files)}, SourceLoc("m.yaml", 1))}, {"f"})
    assert snap.holds("f", "A") is True
    assert snap.holds("f", "LINK") is False and snap.holds("f", "DIR") is False
    assert set(snap.entry_problems["f"]) == {"LINK", "DIR"}
    from keyform.model import SinkTarget
    assert snap.problem_at(SinkTarget("f", "A")) is None
    assert "is a symbolic link" in (snap.problem_at(SinkTarget("f", "LINK")) or "")
