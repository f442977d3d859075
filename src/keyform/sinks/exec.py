"""The exec sink: hand the secret to any program — a secret manager's CLI, a deploy script.

`command` (an argv list, never a shell) runs once per secret with the secret on **stdin** (exactly
the secret, no trailing newline) and never in its argv or environment. The environment is keyform's
own plus:

- `KEYFORM_ACTION`: `write`, `remove` or `read`;
- `KEYFORM_SINK_NAME`: the entry name (`sink.as`, by default the key's address in UPPER_SNAKE; no
  control character, at most `MAX_NAME_BYTES`: one environment variable holds at most 128 KiB);
- `KEYFORM_ADDRESS`: the key's address (on `write`; empty for `read` and `remove`);
- `KEYFORM_SINK`: the sink's own name in the manifests.

`remove_command` (optional) runs when the key is deleted; without it the entry is left where it is.
`read_command` (optional) makes the sink readable: its stdout is the secret (one trailing newline
is dropped: a secret ending in one, read from a command that prints exactly what was stored, comes
back without it, in a move and a `secret_of` read; the state's fingerprint of the issued secret
ignores whitespace, so it cannot tell: docs/sinks.md says to print one more newline); exit 0 with
empty output means "no such entry". Every command runs in the directory of
the manifest that declares the sink, with stdin closed unless it is a write, and is killed (with its
whole process group) after `timeout` (default 30s). A non-zero exit is a SinkError quoting the end of
its stderr with the secret redacted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keyform.durations import parse_duration
from keyform.errors import SinkError
from keyform.sinks.procs import ProgramFlooded, ProgramTimeout, describe_output, run
from keyform.typeregistry import SinkType

if TYPE_CHECKING:
    pass

DEFAULT_TIMEOUT = 30.0
# the longest entry name: `KEYFORM_SINK_NAME=NAME` and its NUL are one environment string, which
# Linux's execve takes only up to MAX_ARG_STRLEN (32 pages: 128 KiB)
MAX_NAME_BYTES = 32 * 4096 - len("KEYFORM_SINK_NAME=") - 1
COMMAND_OPTIONS = ("command", "remove_command", "read_command")


class ExecSink:
    def __init__(self, command: Sequence[str], *, remove_command: Sequence[str] | None = None,
                 read_command: Sequence[str] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 sink_name: str = "", cwd: str | None = None) -> None:
        if not command or not command[0]:
            raise SinkError(f"exec sink {sink_name}: command is empty")
        self.command = list(command)
        self.remove_command = list(remove_command) if remove_command else None
        self.read_command = list(read_command) if read_command else None
        self.timeout = timeout
        self.sink_name = sink_name
        self.cwd = cwd
        self.readable: bool = self.read_command is not None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], sink_name: str = "") -> ExecSink:
        timeout = options.get("timeout")
        return cls(options["command"], remove_command=options.get("remove_command"),
                   read_command=options.get("read_command"),
                   timeout=parse_duration(timeout).total_seconds() if timeout else DEFAULT_TIMEOUT,
                   sink_name=sink_name, cwd=options.get("workdir"))

    @staticmethod
    def name_problem(name: str) -> str | None:
        """Why `name` cannot be passed as KEYFORM_SINK_NAME, or None if it can."""
        if not name:
            return "the entry name is empty"
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            return f"{name!r} contains a control character"
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:  # every run would fail: Argument list too long
            return (f"the entry name is longer than {MAX_NAME_BYTES} bytes: it is passed as KEYFORM_SINK_NAME, "
                    "and one environment variable is at most 128 KiB")
        return None

    def write(self, address: str, name: str, secret: str) -> None:
        self._run("write", self.command, name, address, secret)

    def read(self, name: str) -> str | None:
        if self.read_command is None:
            raise SinkError(f"exec sink {self.sink_name}: no read_command, so {name} cannot be read back")
        out = self._run("read", self.read_command, name, "", None)
        try:
            text = out.decode("utf-8")
        except UnicodeDecodeError:
            raise SinkError(f"exec sink {self.sink_name}: read_command printed something that is not UTF-8 "
                            f"for {name}") from None
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        return text or None

    def remove(self, name: str) -> None:
        if self.remove_command is not None:
            self._run("remove", self.remove_command, name, "", None)

    def _run(self, action: str, argv: list[str], name: str, address: str, secret: str | None) -> bytes:
        problem = self.name_problem(name)
        if problem:
            raise SinkError(f"exec sink {self.sink_name}: {problem}")
        program = os.path.basename(argv[0])
        what = f"exec sink {self.sink_name}: {program} ({action} {name})"
        env = {**os.environ, "KEYFORM_ACTION": action, "KEYFORM_SINK_NAME": name, "KEYFORM_ADDRESS": address,
               "KEYFORM_SINK": self.sink_name}
        try:
            result = run(argv, stdin=secret.encode("utf-8") if secret is not None else None,
                         timeout=self.timeout, env=env, cwd=self.cwd)
        except ProgramTimeout:
            raise SinkError(f"{what} did not finish within {self.timeout:g}s and was killed") from None
        except ProgramFlooded as exc:
            raise SinkError(f"{what} printed more than {exc.shown} and was killed") from None
        except FileNotFoundError:
            raise SinkError(f"{what}: {argv[0]}: command not found") from None
        except OSError as exc:
            raise SinkError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from None
        if result.returncode != 0:
            # a write's stdin, or what a failing read printed before it failed (its secret, maybe)
            secrets = [secret] if secret else _printed(result.stdout) if action == "read" else []
            said = describe_output(result.stderr, secrets)
            if not said and action != "read":  # a read's stdout may be a secret: never quote it
                said = describe_output(result.stdout, secrets)
            status = f"exit status {result.returncode}" if result.returncode > 0 else \
                f"killed by signal {-result.returncode}"
            raise SinkError(f"{what} failed with {status}" + (f": {said}" if said else ""))
        return result.stdout


def _printed(out: bytes) -> list[str]:
    """What a read command printed, as `read` would take it (and each line), to scrub from its stderr."""
    text = out.decode("utf-8", errors="replace")
    return [t for t in {text, text.strip(), *text.splitlines()} if t.strip()]


def option_problems(options: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Semantic checks of an exec sink's options beyond the schema: (option path, message)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    for option in COMMAND_OPTIONS:
        argv = options.get(option)
        if isinstance(argv, list) and (not argv or argv[0] == ""):
            problems.append(((option,), "must name a program: a non-empty list like [gh, secret, set, NAME]"))
    timeout = options.get("timeout")
    if isinstance(timeout, str):
        try:
            if parse_duration(timeout).total_seconds() <= 0:
                problems.append((("timeout",), "must be longer than 0s"))
        except ValueError as exc:
            if "too long" in str(exc):  # the schema reports a malformed one
                problems.append((("timeout",), str(exc)))
    return problems


TYPE = SinkType(name="exec", required="command",
                open=lambda config: ExecSink.from_options(config.options, sink_name=config.name),
                check=option_problems, entry_name_problem=lambda config, name: ExecSink.name_problem(name),
                description="any program; the secret on its stdin")
