"""Secret hygiene (issue 6): canary values in every secret input, every command run with `-v` as a
subprocess, and every output and file keyform writes scanned for them — and for every secret the
emulator ever issued. Expected hits: 0. Also: sink files are 0600 in 0700 directories, state files 0600.

Secret inputs: the provider tokens (env), a TextQL auth_value from env and one from a file, an
auth_value_extra (env), a secret header (env), a bad token (error path), and an auth value the
server holds for an imported key. Scanned: stdout and stderr of every command, and after every
command the state file, its .backup, .journal and .lock, and the saved plan files; at the end every
file in the project outside the sink directory.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.project import COMMAND_TIMEOUT, Project, Result, wait_for
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

ORG = "org_canary"
QT = "canary-qtok-7f3a91e2c4"
TT = "canary-ttok-2b8c44d1a9"
BAD = "canary-badtok-5e1d07b3f6"
AUTH_ENV = "canary-authenv-9a7b13c5e8"
AUTH_ENV2 = "canary-authenv2-4f6a28d0b7"
AUTH_FILE = "canary-authfile-4c2d88a1f3"
EXTRA = "canary-extra-3d9b21e7c0"
HEADER = "canary-header-6e0f52a8d4"
HEADER2 = "canary-header2-1c7e93b5f2"
SERVER_HELD = "canary-serverheld-8b4d17e6a0"
CANARIES = (QT, TT, BAD, AUTH_ENV, AUTH_ENV2, AUTH_FILE, EXTRA, HEADER, HEADER2, SERVER_HELD)

BASE_KEYS = """\
  q-env:
    provider: qp
  q-json:
    provider: qp
    sink: {use: js, as: Q_JSON}
  q-file:
    provider: qp
    sink: {use: files, as: q_file}
  t-env:
    provider: tq
    description: auth value from env
    hosts: [api.questra.ai]
    auth_value: {env: CANARY_AUTH}
    auth_value_extra: {env: CANARY_EXTRA}
  t-file:
    provider: tq
    description: auth value from a file
    hosts: [api.questra.ai]
    auth_value: {file: auth.txt}
  t-sec:
    provider: tq
    description: secret_of and a secret header
    hosts: [api.questra.ai]
    headers: {X-Org-Id: %(org)s, X-Api-Key: {env: CANARY_HEADER}}
    api_provider: questra
    auth_value: {secret_of: q-env}
"""
IMPORTED_KEYS = """\
  legacy:
    provider: qp
    name: legacy-0
  t-legacy:
    provider: tq
    description: legacy-t-0
    auth_value: {env: CANARY_AUTH}
"""


def manifest(url: str, keys: str) -> str:
    return (
        "version: 1\n"
        "providers:\n"
        f"  qp: {{type: questra, base_url: '{url}', token: {{env: QUESTRA_TOKEN}}, org_id: {ORG}}}\n"
        f"  tq: {{type: textql, base_url: '{url}', token: {{env: TEXTQL_TOKEN}}}}\n"
        "sinks:\n"
        "  env: {type: dotenv, path: .secrets/keys.env}\n"
        "  js: {type: json, path: .secrets/keys.json}\n"
        "  files: {type: file, dir: .secrets/files}\n"
        "defaults: {sink: env}\n"
        "keys:\n" + keys % {"org": ORG}
    )


class Scanner:
    """Runs commands with `-v`, and keeps every output and every version of keyform's files to scan."""

    def __init__(self, project: Project, control: EmulatorControl) -> None:
        self.project = project
        self.control = control
        self.texts: list[tuple[str, str]] = []
        self.issued: set[str] = set()
        self.commands = 0

    def run(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> Result:
        result = self.project.run_process("-v", *args, env=env)
        self.record(" ".join(args), result)
        if expect is not None:
            assert result.exit_code == expect, f"{args}: {result.tail(2000)}"
        return result

    def record(self, label: str, result: Result) -> None:
        self.commands += 1
        self.texts += [(f"`{label}` stdout", result.stdout), (f"`{label}` stderr", result.stderr)]
        self.snapshot(label)

    def snapshot(self, label: str) -> None:
        p = self.project
        files = [p.state_path, p.backup_path, p.journal_path, p.lock_path, *sorted(p.root.glob("*.plan"))]
        for path in files:
            if path.exists():
                self.texts.append((f"{path.name} after `{label}`", path.read_text(errors="replace")))
        state = self.control.state()
        for keys in state["questra"]["orgs"].values():
            self.issued.update(k["secret"] for k in keys)
        for k in state["textql"]["keys"]:
            self.issued.update(v for v in (k.get("authValue"), k.get("authValueExtra")) if v)
            self.issued.update(str(v) for v in (k.get("headers") or {}).values() if str(v).startswith("canary"))

    def hits(self) -> list[str]:
        secrets = set(CANARIES) | self.issued
        return [f"{where}: {secret[:14]}…" for where, text in self.texts for secret in sorted(secrets)
                if secret in text]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def check_modes(project: Project) -> None:
    secrets = project.root / ".secrets"
    assert _mode(secrets) == 0o700
    assert _mode(secrets / "files") == 0o700
    for f in (secrets / "keys.env", secrets / "keys.json", *sorted((secrets / "files").iterdir())):
        assert _mode(f) == 0o600, f
    for f in (project.state_path, project.backup_path):
        if f.exists():
            assert _mode(f) == 0o600, f


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_no_secret_reaches_any_output_or_file_keyform_writes(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(tokens=frozenset({QT, TT}))
    env = {"QUESTRA_TOKEN": QT, "TEXTQL_TOKEN": TT, "CANARY_AUTH": AUTH_ENV, "CANARY_EXTRA": EXTRA,
           "CANARY_HEADER": HEADER}
    project = Project(tmp_path / "proj", emulator.url, env=env)
    project.root.mkdir()
    (project.root / "auth.txt").write_text(AUTH_FILE + "\n")
    project.manifest.write_text(manifest(emulator.url, BASE_KEYS))
    with EmulatorControl(emulator.url) as control:
        s = Scanner(project, control)

        # read-only commands and a saved plan
        s.run("validate")
        s.run("plan")
        s.run("plan", "--format", "markdown")
        s.run("plan", "--format", "json")
        s.run("plan", "--detailed-exitcode", expect=2)
        s.run("plan", "--out", "first.plan")
        s.run("apply", "first.plan")
        s.run("plan", "--detailed-exitcode")
        check_modes(project)
        t_env = control.textql_keys()
        assert {k["authValue"] for k in t_env} >= {AUTH_ENV, AUTH_FILE}  # the canaries did reach the API

        # changed secret inputs: a replace (auth_value) and an in-place update (secret header)
        project.env.update(CANARY_AUTH=AUTH_ENV2, CANARY_HEADER=HEADER2)
        s.run("plan", "--format", "json")
        s.run("plan", "--format", "markdown", "--out", "second.plan")
        s.run("apply", "--auto-approve")
        s.run("state", "list")
        for address in ("q-env", "q-json", "t-env", "t-file", "t-sec"):
            s.run("state", "show", address)

        # import a Questra key and a TextQL key whose server-held auth value is a canary
        legacy = control.bulk_questra(ORG, 1, prefix="legacy-")[0]
        t_legacy = control.bulk_textql(1, prefix="legacy-t-")[0]
        control.patch_textql(t_legacy["id"], authValue=SERVER_HELD)
        project.manifest.write_text(manifest(emulator.url, BASE_KEYS + IMPORTED_KEYS))
        s.run("import", "legacy", legacy["id"])
        s.run("import", "t-legacy", t_legacy["id"])
        s.run("plan")
        s.run("apply", "--auto-approve")

        # lost create responses: the journal keeps the intents (of a Questra and a TextQL create)
        control.faults(drop_after_commit_rate=1.0)
        s.run("apply", "--auto-approve", "--replace", "q-json", "--replace", "t-env", expect=1)
        assert project.journal_path.exists()
        control.faults(drop_after_commit_rate=0.0)
        s.run("plan")  # recovers: revokes the orphans
        s.run("apply", "--auto-approve")

        # kill -9 in the middle of an apply: the next command takes its lock over
        control.faults(latency_ms=300)
        proc = project.spawn("-v", "apply", "--auto-approve", "--parallelism", "1", "--replace", "t-env",
                             "--replace", "q-env")
        assert wait_for(lambda: project.journal_path.exists() or proc.poll() is not None, COMMAND_TIMEOUT)
        proc.kill()
        out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
        s.record("apply (killed)", Result(proc.returncode, out, err))
        control.faults(latency_ms=0)
        s.run("apply", "--auto-approve")

        # a stale lock record of another (dead) process, and force-unlock's refusals
        fake: dict[str, Any] = {"id": "5f0c2d8e-0000-4000-8000-00000000dead", "pid": dead_pid(), "host": socket.gethostname(),
                "operation": "apply", "created_at": "2026-01-01T00:00:00Z", "version": "0.1.0"}
        project.lock_path.write_text(json.dumps(fake))
        s.run("force-unlock", "wrong-id", expect=1)
        s.run("force-unlock", fake["id"])
        s.run("force-unlock", fake["id"], expect=1)  # not locked any more
        project.lock_path.write_text(json.dumps(fake))
        s.run("plan")  # taken over

        # error paths: rejected tokens, an unset input, a sink that cannot be written
        s.run("plan", env={"QUESTRA_TOKEN": BAD}, expect=1)
        s.run("apply", "--auto-approve", "--replace", "t-sec", env={"TEXTQL_TOKEN": BAD}, expect=1)
        s.run("apply", "--auto-approve", "--replace", "t-env", env={"CANARY_AUTH": ""}, expect=1)
        sink_json = project.root / ".secrets/keys.json"
        saved = sink_json.read_bytes()
        sink_json.unlink()
        sink_json.mkdir()
        s.run("apply", "--auto-approve", "--replace", "q-json", expect=1)
        sink_json.rmdir()
        sink_json.write_bytes(saved)
        sink_json.chmod(0o600)
        s.run("plan", "--detailed-exitcode")
        check_modes(project)

        s.run("destroy", "--auto-approve")
        s.run("state", "list")
        s.run("plan", "--format", "markdown")

        # every file keyform left outside the sinks
        for path in sorted(project.root.rglob("*")):
            rel = path.relative_to(project.root)
            if path.is_file() and rel.parts[0] != ".secrets" and rel.name != "auth.txt":
                s.texts.append((f"file {rel}", path.read_text(errors="replace")))

        hits = s.hits()
        print(f"\ncanary scan: {s.commands} commands, {len(s.texts)} outputs and file versions, "
              f"{len(CANARIES)} canaries + {len(s.issued)} emulator-issued secrets, {len(hits)} hits")
        assert hits == []
        assert len(s.issued) >= 10


def test_scanner_finds_a_planted_secret(tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    """The scan itself works: a canary planted in the state file and in an output is reported."""
    emulator = make_emulator()
    project = Project(tmp_path, emulator.url)
    with EmulatorControl(emulator.url) as control:
        s = Scanner(project, control)
        project.state_path.write_text(json.dumps({"leak": QT}))
        s.record("planted", Result(0, f"token {HEADER}", ""))
        hits: list[Any] = s.hits()
        assert len(hits) == 2 and any("keyform.state.json" in h for h in hits)
