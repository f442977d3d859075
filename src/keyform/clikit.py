"""The click conventions every keyform command shares (used by `keyform.cli`).

- A usage error (unknown option, missing argument, bad value) is one line on stderr,
  `Error: ...`, like every other error, and exits 1: exit code 2 means "changes present" for
  `plan --detailed-exitcode`, so a typo in a pipeline must never read as "changes".
- `-v/--verbose` and `--no-color` are accepted before the subcommand and on every subcommand.
- A bad value reads `--flag: what is wrong` (`Integer`, `Decimal`, `NonEmpty` and `NonEmptyPath` say
  it in keyform's words); a suggestion is `(did you mean '--format'?)`, as in manifest messages; a
  Terraform-style single-dash long option (`-out=x.plan`) gets one too.
- A group given no command prints its help on stderr and exits 1 (`--help`: stdout, exit 0).
- `-v` turns on the `keyform` debug log on stderr: HTTP calls, lock and journal steps, sink writes
  (never a secret; see docs/architecture.md).
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

import click

from keyform.durations import ASCII_DECIMAL, ASCII_INTEGER
from keyform.errors import Diagnostic, Severity
from keyform.lazyre import LazyPattern


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


def shown_value(text: str) -> str:
    """A value given on the command line or in the environment, as a message quotes it: in quotes,
    on one line (a newline as `\\n`, a terminal control escaped), cut (`render.safe.quoted`)."""
    from keyform.render.safe import quoted

    return quoted(text)


class _Bounded:
    """What `Integer` and `Decimal` share: the value in ASCII digits only, within the bounds, said in
    keyform's words. Python's int() and float(), which click's IntRange and FloatRange call, take
    any Unicode digit (`٣`, Arabic-Indic three, is 3), `1_000`, and float's `nan`/`inf`: a port or a
    count read from a variable set by a hostile environment was taken for another number."""

    min: Any
    max: Any
    what = "a number"
    pattern = ASCII_DECIMAL

    def _describe_range(self) -> str:
        """The range `--help` shows (`1<=x<=256`); none for a number without bounds (click's own
        wrote `x<=None`)."""
        if self.min is None and self.max is None:
            return ""
        return str(super()._describe_range())  # type: ignore[misc]

    def _bounds(self) -> str:
        def shown(v: Any) -> str:
            return str(int(v)) if float(v).is_integer() else f"{v:g}"

        if self.min is not None and self.max is not None:
            return f" from {shown(self.min)} to {shown(self.max)}"
        if self.min is not None:
            return f" of at least {shown(self.min)}"
        return f" of at most {shown(self.max)}" if self.max is not None else ""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):  # a default, or a value already converted
            return super().convert(value, param, ctx)  # type: ignore[misc]
        text = value.strip()
        if not text and isinstance(param, click.Option) and ctx is not None and param.name \
                and ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT:
            return self.convert(param.get_default(ctx), param, ctx)  # a blank variable is an unset one
        if not self.pattern.fullmatch(text):
            digits = any(c.isdigit() and not c.isascii() for c in text)
            self.fail(f"{shown_value(value)} is not {self.what}{self._bounds()}"  # type: ignore[attr-defined]
                      + (" (in ASCII digits 0-9)" if digits else ""), param, ctx)
        # (int() of more than 4,300 digits raises: no bound keyform sets is anywhere near 30)
        number = math.inf if len(text) > 30 else (int if self.pattern is ASCII_INTEGER else float)(text)
        if not math.isfinite(number) or (self.min is not None and number < self.min) \
                or (self.max is not None and number > self.max):
            self.fail(f"{shown_value(text)} is not {self.what}{self._bounds()}", param, ctx)  # type: ignore[attr-defined]
        return number


class Integer(_Bounded, click.IntRange):
    """An integer flag (`--parallelism`, `--port`): ASCII digits only, within [min, max]."""

    what = "an integer"
    pattern = ASCII_INTEGER


class Decimal(_Bounded, click.FloatRange):
    """A decimal number flag (`--latency-ms`): ASCII digits only, finite, within [min, max]."""


class NonEmpty(click.ParamType):
    """A text value that must not be empty or blank: `--target "$ADDR"` with the variable unset read
    `--target : no key with that address`, and `emulator --host "$HOST"` listened on every interface."""

    name = "text"

    def __init__(self, what: str = "value") -> None:
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(f"an empty {self.what} (is the variable it came from unset?)" if not value else
                      f"{'an' if self.what[0] in 'aeiou' else 'a'} {self.what} of {len(value)} blank character(s) "
                      "only", param, ctx)
        return value


class NonEmptyPath(click.Path):
    """click.Path refusing an empty value: `--state ""` (a `--state "$STATE"` whose variable is unset)
    was taken as no option at all, so the manifests' own backend was used, and `plan --out ""` made
    a plan, saved nothing and exited 0."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():  # (a path of spaces only: never meant, shown blank)
            self.fail("an empty path (is the variable it came from unset?)" if not value else
                      f"a path of {len(value)} blank character(s) only", param, ctx)
        return super().convert(value, param, ctx)


_NOT_ONE_OF = LazyPattern(r"^(.*) is not one of ", re.DOTALL)  # click.Choice's words
_SINGLE_DASH_LONG = LazyPattern(r"^-([a-z][a-z0-9-]+)(=.*)?$")
_EXTRA_ARGUMENT = LazyPattern(r"^Got unexpected extra arguments? \((.+)\)$")  # click's words


def usage_hint(error: click.UsageError, args: Sequence[str], command_path: str = "") -> str:
    """The one-line text of a usage error: click's message, a Terraform-style `-out=x` hint, and
    where to read the command's usage."""
    message = _in_keyform_words(error)
    cctx = error.ctx
    command = cctx.command if cctx is not None else None
    if command is not None:
        known = {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts + p.secondary_opts}
        for arg in args:
            m = _SINGLE_DASH_LONG.match(arg)
            if m and f"--{m[1]}" in known:
                suggestion = did_you_mean([f"--{m[1]}{m[2] or ''}"])
                message = f"No such option {arg!r} ({suggestion} keyform's long options take two dashes)"
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


def did_you_mean(candidates: Sequence[str]) -> str:
    """`did you mean 'x'?` (or `'x' or 'y'`): the one wording of a suggestion, for flags and commands
    as for manifest fields (`(did you mean 'name'?)`, in parentheses after what is wrong)."""
    quoted = [repr(c) for c in candidates]
    alternatives = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"did you mean {alternatives}?"


def _in_keyform_words(error: click.UsageError) -> str:
    """click's message for `error`, in keyform's words: a bad value as `--flag: what is wrong` (as a
    manifest field's, `keys.k.expires_in: 'soon' is not a valid duration`), not click's `Invalid value
    for '-f' / '--file': ...`; a suggestion as `(did you mean '--format'?)`, not `. Did you mean ...`."""
    if isinstance(error, click.BadParameter) and not isinstance(error, click.MissingParameter) \
            and error.param is not None and error.param_hint is None:
        message = error.message
        choice = _NOT_ONE_OF.match(message)
        if choice and isinstance(error.param.type, click.Choice):  # as a manifest's: `is not one of: a, b`
            message = f"{choice[1]} is not one of: {', '.join(map(str, error.param.type.choices))}"
        return f"{_param_name(error.param, error.ctx)}: {message}"
    possibilities = getattr(error, "possibilities", None)  # click's NoSuchOption, NoSuchCommand (click 8.4)
    if possibilities:
        return f"{error.message.rstrip('.')} ({did_you_mean(sorted(possibilities))})"
    return error.format_message()


def _param_name(param: click.Parameter, ctx: click.Context | None) -> str:
    """How a message names a parameter: its options as typed (`-f/--file`), an argument's metavar
    (`PLANFILE`), or the environment variable its value came from (`KEYFORM_EMULATOR_PORT`)."""
    if not isinstance(param, click.Option):
        return param.human_readable_name
    if ctx is not None and param.name and param.envvar \
            and ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT:
        names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
        return next((n for n in names if os.environ.get(n) is not None), names[0])
    return "/".join(param.opts)


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
    `Error:` line, exit 1; a group given nothing shows its help on stderr, exit 1."""
    original = list(args)
    try:
        return make(info_name, args, parent, **extra)
    except UsageFailure:
        raise
    except _NO_ARGS as exc:  # `keyform` alone: its help, on stderr, exit 1 (see KeyformGroup)
        assert exc.ctx is not None
        click.echo(exc.ctx.get_help(), err=True)
        raise click.exceptions.Exit(1) from None
    except click.UsageError as exc:
        raise UsageFailure(usage_hint(exc, original, _path(info_name, parent)), exc.ctx) from None


class KeyformGroup(click.Group):
    """A group whose subcommands (and subgroups) follow the same conventions.

    A group given no command (`keyform`, `keyform state`) prints its help on stderr and exits 1,
    as git does (terraform exits 127): `keyform $CMD` in a pipeline whose variable is unset must
    fail, not pass having done nothing. `--help` prints it on stdout, exit 0."""

    command_class = KeyformCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not any(p.name == "verbose" for p in self.params):
            self.params.extend(common_params())

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        return _one_line_usage(super().make_context, info_name, args, parent, extra)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:  # (click < 8.2 printed it, exit 0)
            click.echo(ctx.get_help(), err=True)
            raise click.exceptions.Exit(1)
        return super().parse_args(ctx, args)

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
