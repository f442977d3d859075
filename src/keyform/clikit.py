"""The click conventions every keyform command shares (used by `keyform.cli`).

- A usage error (unknown option, missing argument, bad value) is one line on stderr,
  `Error: ...`, like every other error, and exits 1: exit code 2 means "changes present" for
  `plan --detailed-exitcode`, so a typo in a pipeline must never read as "changes".
- `-v/--verbose` and `--no-color` are accepted before the subcommand and on every subcommand.
- A Terraform-style single-dash long option (`-out=x.plan`) gets a hint: `did you mean --out?`.
- `-v` turns on the `keyform` debug log on stderr: HTTP calls, lock and journal steps, sink writes
  (never a secret; see docs/architecture.md).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

import click

from keyform.errors import Diagnostic, Severity


class Ctx:
    def __init__(self, verbose: bool = False, no_color: bool = False) -> None:
        self.verbose = verbose
        self.no_color = no_color
        self.hard_exit = False  # leave without joining worker threads (a second Ctrl-C during apply)

    def color(self, stream: Any = None) -> bool:
        stream = stream or sys.stdout
        if self.no_color or os.environ.get("NO_COLOR"):
            return False
        return bool(getattr(stream, "isatty", lambda: False)())


def print_diagnostics(diagnostics: Iterable[Diagnostic], *, color: bool = False) -> None:
    """The one place a diagnostic reaches the user: on stderr, `Error: message` (red when
    `color`) or `Warning: message`, one per line (`file:line: ` first when it has a place). A
    message may quote a server or a manifest: what would drive the terminal is shown escaped, and
    a newline as `\\n`. A file found in a directory (`-f keys/`) is named as it is, and a name
    holding a newline began a line of a CI log with `::warning::…`, which GitHub Actions' runner
    takes as a command (`::stop-commands::`, `::add-mask::`), not as text."""
    from keyform.render.safe import one_line

    for d in diagnostics:
        label = f"{d.severity.value}: "
        if color and d.severity is Severity.ERROR:
            label = click.style(label, fg="red", bold=True)
        click.echo(label, err=True, nl=False)
        click.echo(one_line(str(d)), err=True)


class UsageFailure(click.UsageError):
    """A usage error shown in keyform's one-line style, exit code 1."""

    exit_code = 1

    def __init__(self, message: str, ctx: click.Context | None = None) -> None:
        super().__init__(message, ctx)

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class NonEmptyPath(click.Path):
    """click.Path refusing an empty value: `--state ""` (a `--state "$STATE"` whose variable is unset)
    was taken as no option at all, so the manifests' own backend was used, and `plan --out ""` made
    a plan, saved nothing and exited 0."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():  # (a path of spaces only: never meant, shown blank)
            self.fail("an empty path (is the variable it came from unset?)" if not value else
                      f"a path of {len(value)} blank character(s) only", param, ctx)
        return super().convert(value, param, ctx)


_SINGLE_DASH_LONG = re.compile(r"^-([a-z][a-z0-9-]+)(=.*)?$")
_EXTRA_ARGUMENT = re.compile(r"^Got unexpected extra arguments? \((.+)\)$")  # click's words


def usage_hint(error: click.UsageError, args: Sequence[str], command_path: str = "") -> str:
    """The one-line text of a usage error: click's message, a Terraform-style `-out=x` hint, and
    where to read the command's usage."""
    message = error.format_message()
    cctx = error.ctx
    command = cctx.command if cctx is not None else None
    if command is not None:
        known = {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts + p.secondary_opts}
        for arg in args:
            m = _SINGLE_DASH_LONG.match(arg)
            if m and f"--{m[1]}" in known:
                message = (f"No such option {arg!r}: did you mean --{m[1]}{m[2] or ''}? "
                           "(keyform's long options take two dashes)")
                break
    message = message.rstrip(".")
    path = cctx.command_path if cctx is not None else command_path
    extra = _EXTRA_ARGUMENT.match(message)
    if extra and command is not None and "-f" in known:  # `keyform plan keyform.yaml`
        given = f" {extra[1]} "  # the extra arguments, joined by spaces
        manifests = [a for a in args if f" {a} " in given and (a.endswith((".yaml", ".yml")) or os.path.isdir(a))]
        if manifests:
            import shlex  # (an error path: not imported by every command)

            return (f"{message}: manifests are named with -f (`{path} -f {shlex.quote(manifests[-1])}`). "
                    f"See `{path} --help`.")
    if path:
        message += f"{'' if message.endswith('?') else '.'} See `{path} --help`."
    return message


def _path(info_name: str | None, parent: click.Context | None) -> str:
    return " ".join(p for p in (parent.command_path if parent else "", info_name or "") if p)


def _set_verbose(cctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        cctx.ensure_object(Ctx).verbose = True
        enable_debug_log()


def _set_no_color(cctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        cctx.ensure_object(Ctx).no_color = True


def common_params() -> list[click.Parameter]:
    """`-v/--verbose` and `--no-color`, as every subcommand accepts them."""
    return [
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, callback=_set_verbose,
                     help="Show each HTTP call, lock, journal and sink step, and tracebacks (never a secret)."),
        click.Option(["--no-color"], is_flag=True, expose_value=False, callback=_set_no_color,
                     help="Never colour the output (NO_COLOR is honoured too)."),
    ]


class KeyformCommand(click.Command):
    """A subcommand: takes the common options, and reports usage errors in one line, exit 1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(common_params())

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        return _one_line_usage(super().make_context, info_name, args, parent, extra)


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _one_line_usage(make: Callable[..., click.Context], info_name: str | None, args: list[str],
                    parent: click.Context | None, extra: dict[str, Any]) -> click.Context:
    """`make(info_name, args, parent, **extra)` with keyform's conventions: a usage error is one
    `Error:` line, exit 1; a group given nothing shows its help, exit 0."""
    original = list(args)
    try:
        return make(info_name, args, parent, **extra)
    except UsageFailure:
        raise
    except _NO_ARGS as exc:  # `keyform` alone: its help, as `keyform --help` shows it
        assert exc.ctx is not None
        click.echo(exc.ctx.get_help())
        raise click.exceptions.Exit(0) from None
    except click.UsageError as exc:
        raise UsageFailure(usage_hint(exc, original, _path(info_name, parent)), exc.ctx) from None


class KeyformGroup(click.Group):
    """A group whose subcommands (and subgroups) follow the same conventions."""

    command_class = KeyformCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not any(p.name == "verbose" for p in self.params):
            self.params.extend(common_params())

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        return _one_line_usage(super().make_context, info_name, args, parent, extra)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageFailure:
            raise
        except click.UsageError as exc:
            raise UsageFailure(usage_hint(exc, args), exc.ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        """`keyform -v` (options, no command) is click's 'Missing command.' (exit 2, which keyform
        keeps for "changes present"): keyform's one-line usage error, exit 1."""
        try:
            return super().invoke(ctx)
        except UsageFailure:
            raise
        except click.UsageError as exc:
            if exc.ctx is not ctx:  # a subcommand's own usage error: already keyform's
                raise
            raise UsageFailure(usage_hint(exc, ctx.args), exc.ctx) from None


KeyformGroup.group_class = KeyformGroup


class _StderrHandler(logging.Handler):
    """Writes `keyform: message` lines to the current sys.stderr (looked up per record)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from keyform import redact
            from keyform.render.safe import escaped

            # scrubbed here, whatever the call site passed: a retry line names the call, and a
            # delete's names the id, which may hold a secret (found by a review: `-v` showed it)
            sys.stderr.write(f"keyform: {escaped(redact.scrub(record.getMessage(), ()))}\n")
            sys.stderr.flush()
        except Exception:  # a closed stream must not break the command
            self.handleError(record)


_handler: logging.Handler | None = None


def enable_debug_log() -> None:
    """Send the `keyform` logger's debug records to stderr."""
    global _handler
    logger = logging.getLogger("keyform")
    if _handler is None:
        _handler = _StderrHandler()
        logger.addHandler(_handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


def disable_debug_log() -> None:
    """Undo `enable_debug_log` (in-process callers such as tests run several commands)."""
    global _handler
    logger = logging.getLogger("keyform")
    if _handler is not None:
        logger.removeHandler(_handler)
        _handler = None
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def elapsed_ms(started: float) -> str:
    return f"{(time.monotonic() - started) * 1000:.0f} ms"
