"""A keyform project in a directory, driven through the real CLI against an emulator over real HTTP
on 127.0.0.1: in-process through click's CliRunner (`Project.run`, fast), or as a `keyform`
subprocess (`Project.run_process`, `Project.spawn`: what the kill -9 harness kills).

The constants here are the only ones: the org every manifest uses, the provider tokens, the
command line of keyform, the state file's name, the timeout of one keyform run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyform.backends.local import LocalBackend

if TYPE_CHECKING:
    from harness.generator import ManifestSpec

ORG = "org_e2e"  # the Questra org of every test manifest
TOKENS = {"QUESTRA_TOKEN": "qt-canary-token-1b7f", "TEXTQL_TOKEN": "tt-canary-token-9c2e"}
KEYFORM: tuple[str, ...] = (sys.executable, "-m", "keyform")
STATE_NAME = "keyform.state.json"
SINK_REL = ".secrets/keys.env"  # the dotenv sink of `Project.questra` and of generated manifests
COMMAND_TIMEOUT = 180.0  # seconds; a keyform run that takes longer is a failure, not a hang
LOCK_ID = re.compile(r"lock ID ([0-9a-fA-F-]{8,})")  # in keyform's "the state is locked" message
DEFINITIONS = Path(__file__).resolve().parents[2] / "examples" / "providers"

BUILT_IN = re.compile(r"^(?P<indent>[ \t]*)type: (?P<type>questra|textql)[ \t]*$", re.MULTILINE)
BUILT_IN_FLOW = re.compile(r"\{type: (?P<type>questra|textql),")


def as_rest(text: str) -> str:
    """A manifest with every built-in provider replaced by `type: rest` over the dogfood definition
    of the same API (examples/providers/NAME.yaml): the same keys, the same wire."""
    text = BUILT_IN.sub(lambda m: f"{m['indent']}type: rest\n{m['indent']}definition: "
                        f"{DEFINITIONS / (m['type'] + '.yaml')}", text)
    return BUILT_IN_FLOW.sub(lambda m: f"{{type: rest, definition: {DEFINITIONS / (m['type'] + '.yaml')},", text)


@dataclass
class Result:
    """One keyform run: its exit code and output (and, for a subprocess, its argv and duration)."""

    exit_code: int
    stdout: str
    stderr: str
    argv: tuple[str, ...] = ()
    elapsed: float = 0.0  # seconds

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def tail(self, n: int = 600) -> str:
        """The last `n` characters of the output, for an assertion message."""
        text = (self.stdout + "\n" + self.stderr).strip()
        return text[-n:]


# A REST definition with just list, create (the secret at /secret) and delete, for a test that
# scripts the API's answers (`Project.rest_api`).
SCRIPTED_REST = """\
version: 1
name: scripted
auth: {type: bearer}
key: {id: /id, created_at: /created}
attributes:
  name: {type: string, path: /name, default: "${address}"}
operations:
  list: {method: GET, path: /keys, items: /items}
  create: {method: POST, path: /keys, body: {name: "${attrs.name}"}, secret: /secret}
  delete: {method: DELETE, path: "/keys/${id}"}
"""


class Project:
    """A keyform project directory (`write` creates it if missing) whose manifests point at the
    emulator `url`.

    `env` holds the variables keyform sees on top of the environment: the provider `TOKENS` and the
    given ones (tests may change it). `rest=True` turns built-in provider types into `type: rest`
    over examples/providers/ when a manifest is written."""

    def __init__(self, root: Path, url: str, env: dict[str, str] | None = None, *, rest: bool = False) -> None:
        self.root = root
        self.rest = rest
        self.url = url
        self.env = {**TOKENS, **(env or {})}
        self.manifest = root / "keyform.yaml"

    # ----------------------------------------------------------------------------------- files

    @property
    def state_path(self) -> Path:
        return self.root / STATE_NAME

    @property
    def lock_path(self) -> Path:
        return self.root / (STATE_NAME + ".lock")

    @property
    def journal_path(self) -> Path:
        return self.root / (STATE_NAME + ".journal")

    @property
    def backup_path(self) -> Path:
        return self.root / (STATE_NAME + ".backup")

    @property
    def sink_path(self) -> Path:
        return self.root / SINK_REL

    def write(self, body: str | ManifestSpec, name: str = "keyform.yaml") -> Path:
        """Write a manifest: a text (dedented; `{url}` and `{org}` filled in) or a generated spec."""
        if isinstance(body, str):
            text = textwrap.dedent(body).replace("{url}", self.url).replace("{org}", ORG)
        else:
            text = body.render(self.url, ORG)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / name
        path.write_text(as_rest(text) if self.rest else text)
        return path

    def rest_api(self, definition: str, keys: str, name: str = "api") -> Path:
        """A manifest with one `type: rest` provider `rp` (its definition written to `NAME.yaml`
        beside it), a dotenv sink `env` and the given keys block: for a scripted API in a test."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / f"{name}.yaml").write_text(textwrap.dedent(definition))
        return self._one_provider(
            f"  rp: {{type: rest, definition: {name}.yaml, base_url: \"{{url}}\", token: {{env: QUESTRA_TOKEN}}}}\n",
            keys)

    def questra(self, keys: str, extra: str = "") -> Path:
        """A manifest with one Questra provider `qp`, a dotenv sink `env` and the given keys block."""
        return self._one_provider(
            "  qp:\n"
            "    type: questra\n"
            "    base_url: {url}\n"
            "    token: {env: QUESTRA_TOKEN}\n"
            "    org_id: {org}\n", keys, extra)

    def _one_provider(self, provider: str, keys: str, extra: str = "") -> Path:
        """A manifest with the `providers:` entry `provider`, a dotenv sink `env` and `keys`."""
        return self.write(
            "version: 1\n"
            "providers:\n" + provider +
            "sinks:\n"
            "  env:\n"
            "    type: dotenv\n"
            f"    path: {SINK_REL}\n"
            "defaults:\n"
            "  sink: env\n"
            + textwrap.dedent(extra) +
            "keys:" + (" {}\n" if not keys.strip() else "\n" + textwrap.indent(textwrap.dedent(keys), "  ")))

    def exec_vault(self, command: str, store: Path, extra: str = "") -> Path:
        """A manifest with one Questra provider `qp`, one key `q0`, and an `exec` sink `vault` whose
        write runs `command` (argv items, YAML flow syntax: `sh, "script.sh"`) and whose read and
        remove use the files in `store`; `extra`: more top-level lines (a `state:` block)."""
        return self.write(f"""
            version: 1
            {extra}
            providers:
              qp: {{type: questra, base_url: "{{url}}", token: {{env: QUESTRA_TOKEN}}, org_id: {{org}}}}
            sinks:
              vault:
                type: exec
                command: [{command}]
                read_command: [sh, -c, 'cat "{store}/$KEYFORM_SINK_NAME"']
                remove_command: [sh, -c, 'rm -f "{store}/$KEYFORM_SINK_NAME"']
            defaults: {{sink: vault}}
            keys:
              q0: {{provider: qp, name: q0}}
            """)

    def state(self) -> dict[str, Any]:
        """The state file as JSON (FileNotFoundError when there is none yet)."""
        return dict(json.loads(self.state_path.read_text()))

    def journal_records(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in LocalBackend(self.state_path).read_journal()]

    def sink(self, rel: str = SINK_REL) -> dict[str, str]:
        """The entries of a dotenv sink file (none: {})."""
        path = self.root / rel
        if not path.exists():
            return {}
        out = {}
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip().strip('"')
        return out

    def remote_id(self, address: str) -> str:
        return str(self.state()["keys"][address]["remote_id"])

    # --------------------------------------------------------------------------------- running

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        """`keyform ARGS` in this process (click's CliRunner); `-f MANIFEST` is added to the commands
        that read manifests unless given."""
        from click.testing import CliRunner

        from keyform.cli import main

        argv = list(args)
        if argv and argv[0] in {"plan", "apply", "destroy", "validate", "import"} and "-f" not in argv:
            argv[1:1] = ["-f", str(self.manifest)]
        res = CliRunner().invoke(main, argv, input=input, env={**self.env, **(env or {})}, catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr, tuple(argv))

    def process_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a keyform subprocess: this one without any QUESTRA_/TEXTQL_ variable,
        NO_COLOR, then `self.env` and `env`."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("QUESTRA_", "TEXTQL_"))}
        return {**base, "NO_COLOR": "1", **self.env, **(env or {})}

    def argv(self, *args: str) -> tuple[str, ...]:
        return (*KEYFORM, *args)

    def run_process(self, *args: str, env: dict[str, str] | None = None, timeout: float = COMMAND_TIMEOUT) -> Result:
        """`keyform ARGS` as a subprocess in the project directory (a timeout is exit code -1)."""
        argv = self.argv(*args)
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=self.root, env=self.process_env(env), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            return Result(-1, _text(exc.stdout), _text(exc.stderr) + f"\n[timed out after {timeout}s]", argv,
                          time.monotonic() - started)
        return Result(proc.returncode, proc.stdout, proc.stderr, argv, time.monotonic() - started)

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """`keyform ARGS` started as a subprocess (stdout and stderr piped), not waited for; SIGINT at
        its default in it, so that a test's Ctrl-C reaches keyform even when this process was
        started ignoring SIGINT (a background job of a non-interactive shell: Python then keeps it
        ignored, and keyform never saw the Ctrl-C)."""
        return subprocess.Popen(self.argv(*args), cwd=self.root, env=self.process_env(env),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_default_sigint)

    def interrupt_when(self, marker: str, *args: str, settle: float = 0.3,
                       timeout: float = 120) -> tuple[int, str, float]:
        """`keyform ARGS` started, and sent one SIGINT `settle` seconds after `marker` appears in its
        stdout. Returns its exit code, all its output, and how long it ran after the SIGINT."""
        proc = self.spawn(*args)
        try:
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            seen, started = "", time.monotonic()
            while marker not in seen and time.monotonic() - started < 30 and proc.poll() is None:
                with contextlib.suppress(TypeError):  # nothing to read yet
                    seen += proc.stdout.read() or ""
                time.sleep(0.02)
            assert marker in seen, seen[-2000:]
            time.sleep(settle)
            proc.send_signal(signal.SIGINT)
            signalled = time.monotonic()
            os.set_blocking(proc.stdout.fileno(), True)
            rest, err = proc.communicate(timeout=timeout)
            return proc.returncode, seen + rest + err, time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.002) -> bool:
    """Poll `predicate()` until it is true or `timeout` seconds pass; returns its last verdict."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


def _default_sigint() -> None:
    """In a child before it runs keyform: SIGINT to its default (see `Project.spawn`)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
