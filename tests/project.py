"""A keyform project in a temporary directory, driven through the real CLI (in-process via click's
CliRunner) against an emulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from keyform.cli import main

ORG = "org_e2e"
DEFINITIONS = Path(__file__).resolve().parents[1] / "examples" / "providers"
BUILT_IN = re.compile(r"^(?P<indent>[ \t]*)type: (?P<type>questra|textql)[ \t]*$", re.MULTILINE)
BUILT_IN_FLOW = re.compile(r"\{type: (?P<type>questra|textql),")


def as_rest(text: str) -> str:
    """A manifest with every built-in provider replaced by `type: rest` over the dogfood definition
    of the same API (examples/providers/NAME.yaml): the same keys, the same wire."""
    text = BUILT_IN.sub(lambda m: f"{m['indent']}type: rest\n{m['indent']}definition: "
                        f"{DEFINITIONS / (m['type'] + '.yaml')}", text)
    return BUILT_IN_FLOW.sub(lambda m: f"{{type: rest, definition: {DEFINITIONS / (m['type'] + '.yaml')},", text)
TOKENS = {"QUESTRA_TOKEN": "qt-canary-token-1b7f", "TEXTQL_TOKEN": "tt-canary-token-9c2e"}


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Project:
    def __init__(self, root: Path, url: str, env: dict[str, str] | None = None, *, rest: bool = False) -> None:
        self.root = root
        self.rest = rest  # built-in provider types become `type: rest` over examples/providers/
        self.url = url
        self.env = {**TOKENS, **(env or {})}
        self.manifest = root / "keyform.yaml"

    def write(self, body: str, name: str = "keyform.yaml") -> Path:
        path = self.root / name
        text = textwrap.dedent(body).replace("{url}", self.url).replace("{org}", ORG)
        path.write_text(as_rest(text) if self.rest else text)
        return path

    def questra(self, keys: str, extra: str = "") -> Path:
        """A manifest with one Questra provider `qp`, a dotenv sink `env` and the given keys block."""
        return self.write(
            "version: 1\n"
            "providers:\n"
            "  qp:\n"
            "    type: questra\n"
            "    base_url: {url}\n"
            "    token: {env: QUESTRA_TOKEN}\n"
            "    org_id: {org}\n"
            "sinks:\n"
            "  env:\n"
            "    type: dotenv\n"
            "    path: .secrets/keys.env\n"
            "defaults:\n"
            "  sink: env\n"
            + textwrap.dedent(extra) +
            "keys:\n" + textwrap.indent(textwrap.dedent(keys), "  "))

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        runner = CliRunner()
        argv = list(args)
        if argv and argv[0] in {"plan", "apply", "destroy", "validate", "import"} and "-f" not in argv:
            argv[1:1] = ["-f", str(self.manifest)]
        res = runner.invoke(main, argv, input=input, env={**self.env, **(env or {})}, catch_exceptions=False)
        return Result(res.exit_code, res.stdout, res.stderr)

    @property
    def state_file(self) -> Path:
        return self.root / "keyform.state.json"

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())

    def sink(self, rel: str = ".secrets/keys.env") -> dict[str, str]:
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
