"""The command line: parse arguments, call one `keyform.operations` entry, render through a view
(`keyform.render.views`, chosen once per command). Nothing else lives here: no backend is opened
and no lock taken in this module.

Only click is imported at start-up; everything else is imported by the command that needs it, so
`keyform --version` stays fast (the types below are imported for the type checker only).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from keyform import __version__
from keyform.clikit import (
    Ctx,
    Decimal,
    Integer,
    KeyformGroup,
    NonEmpty,
    NonEmptyPath,
    disable_debug_log,
    print_diagnostics,
)
from keyform.errors import Diagnostic, KeyformError

if TYPE_CHECKING:
    from datetime import timedelta

    from keyform.operations import ApplyRequest, Options
    from keyform.render.views import View

F = TypeVar("F", bound=Callable[..., Any])
# The path types, shared by every option that takes one (click.Path looks its name up in gettext's
# catalogues when made: ~30 µs each, and the commands' options made ~40 at start-up).
_PATH = NonEmptyPath()
_FILE = NonEmptyPath(dir_okay=False)


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(1)


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Raise the cyclic collector's first threshold (700 → 100,000 allocations) for one command.

    keyform's bulk data (manifests, state, listings: tens of objects per key) is long-lived and
    acyclic; with the default threshold the collector re-scans it hundreds of times, ~25% of a
    10,000-key plan's CPU (docs/performance.md). Reference counting still frees everything as
    before; only cyclic garbage waits a little longer. Restored after, for in-process callers."""
    old = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _print_traceback() -> None:
    """The exception being handled, for `-v`: its text scrubbed of every secret this process knows
    and made safe for a terminal (an API's reason phrase or body quoted in it may hold an escape
    that sets the window title or hides a link; found by a review)."""
    from keyform import redact
    from keyform.render.safe import escaped

    text = traceback.format_exc()
    # `scrub` reads at most redact.MAX_RAW characters: the end, where the exception is, is what counts
    sys.stderr.write(escaped(redact.scrub(text[-redact.MAX_RAW:], ())))
    sys.stderr.flush()


def run_safely(ctx: Ctx, fn: Callable[[], int | None]) -> None:
    """Run a command body: KeyformError → its messages on stderr and exit 1; no traceback unless -v."""
    try:
        with _fewer_gc_passes():
            code = fn()
    except KeyformError as exc:
        with contextlib.suppress(OSError):  # stderr gone (a closed pipe): exit 1 all the same
            if ctx.verbose:
                _print_traceback()
            print_diagnostics(exc.diagnostics, color=ctx.color(sys.stderr))
        _exit_hard_if(ctx)
        sys.exit(1)
    except KeyboardInterrupt:
        _exit_hard_if(ctx, "Interrupted.")
        _fail("Interrupted.")
    except click.exceptions.Exit:
        raise
    except Exception as exc:  # a bug: say so plainly, traceback only with -v
        if ctx.verbose:
            with contextlib.suppress(OSError):
                _print_traceback()
        message = f"Error: internal error ({type(exc).__name__}); run with -v for details and report it"
        _exit_hard_if(ctx, message)
        _fail(message)
    _exit_hard_if(ctx, code=code or 0)
    sys.exit(code or 0)


def _exit_hard_if(ctx: Ctx, message: str | None = None, *, code: int = 1) -> None:
    """Exit (1, or `code`) at once, not waiting for worker threads, when the command asked for it,
    the process gave up an apply (`keyform.inherited.sealed`: a second Ctrl-C, even if saying so
    then failed, as on a pipe to a `tee` the same Ctrl-C killed), or it stopped waiting for a
    plug-in's call, or one is still running (`keyform.bounded.running`, as after a Ctrl-C: the
    call's thread, or one the plug-in started, may never end, and the interpreter joins non-daemon
    threads at exit)."""
    from keyform import bounded, inherited

    if not (ctx.hard_exit or inherited.sealed() or bounded.running()):
        return
    with contextlib.suppress(OSError, ValueError):
        if message:
            click.echo(message, err=True)
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def files_option(fn: F) -> F:
    return click.option("-f", "--file", "files", multiple=True, type=_PATH, metavar="PATH",
                        help="Manifest file or directory (repeatable; default keyform.yaml).")(fn)


STATE_HELP = "Use this local state file instead of the manifests' state backend."


def state_option(fn: F) -> F:
    return click.option("--state", "state_path", type=_PATH, default=None, metavar="FILE",
                        help=STATE_HELP)(fn)


def state_options(fn: F) -> F:
    fn = state_option(fn)
    fn = click.option("--lock-timeout", default="0s", show_default=True, metavar="DURATION",
                      help="How long to wait for the state lock, e.g. 30s or 5m.")(fn)
    return fn


def _options(files: Sequence[str], state_path: str | None = None, lock_timeout: str = "0s",
             policy_files: Sequence[str] = ()) -> Options:
    from keyform.durations import DURATION_RE, parse_duration
    from keyform.operations import Options
    from keyform.render.safe import quoted

    try:
        timeout = parse_duration(lock_timeout).total_seconds()
    except ValueError as exc:
        if DURATION_RE.match(lock_timeout.strip()):  # well formed, and too long: parse_duration says the maximum
            raise KeyformError(f"--lock-timeout: {exc}") from None
        bare = lock_timeout.strip()
        hint = f"{bare}s" if bare.isascii() and bare.isdigit() and len(bare) < 10 else "30s"
        raise KeyformError(f"--lock-timeout: invalid duration {quoted(lock_timeout)}: expected an integer and a "
                           f"unit s, m, h, d or w (e.g. {hint})") from None
    return Options(files=list(files), state_path=state_path, lock_timeout=timeout, policy_files=list(policy_files),
                   on_wait=_rate_wait_notice)


def _rate_wait_notice(wait: Any) -> None:
    """A listing (a plan's, an apply's before its changes, a report's) waits on a rate limit for a
    while: said on stderr, so a long `Retry-After` does not look like a hang."""
    from keyform.render.progress import rate_wait_text

    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(rate_wait_text(wait) + "\n")
        sys.stderr.flush()


def policy_option(fn: F) -> F:
    return click.option("--policy", "policy_files", multiple=True, type=_PATH, metavar="FILE",
                        help="Also enforce the policies in FILE (repeatable; e.g. org-wide rules kept "
                             "outside the repository).")(fn)


def console() -> None:
    """The `keyform` console script and `python -m keyform`: `main`, then a frozen heap for the exit.

    Interpreter teardown ends with a full cyclic collection over everything the command built
    (manifests, state, plan, listings): ~20-40 ms at 1,000 keys, more at 10,000, after the work
    is done. `gc.freeze()` first moves all of it out of the collector's reach; nothing is left
    unflushed or unclosed by that, the objects are simply not traversed again. The same happens
    after each phase that builds bulk data (`keyform.gcpause`). When only freeing memory is left,
    the process then ends without the teardown at all (`keyform.fastexit`). In-process callers of
    `main` (tests, click's CliRunner) keep a normal heap and exit normally."""
    from keyform import fastexit
    from keyform.gcpause import freeze_after_pauses

    _without_httpx_cli()
    freeze_after_pauses()
    fastexit.enable()
    gc.freeze()  # what the imports built is never scanned again (O(1))
    try:
        with _fewer_gc_passes():  # from the first argument parsed (run_safely raises it again, nested)
            main(prog_name="keyform")
    except SystemExit as done:
        gc.freeze()
        fastexit.exit_now(done.code)  # no teardown when only freeing memory is left (keyform.fastexit)
        raise
    finally:
        gc.freeze()


def _without_httpx_cli() -> None:
    """Keep httpx's own command line out of keyform's process.

    `import httpx` also tries `from ._main import main`, httpx's CLI, which imports click, pygments
    and rich, and falls back to a stub `main` when one is missing (`except ImportError` in httpx's
    `__init__`, there since httpx 0.18). Where those happen to be installed (rich and pygments are
    common in developer environments) that import cost every command that talks HTTP ~40 ms, for
    a function keyform never calls. A `None` in `sys.modules` makes that one import fail at once,
    so httpx takes its stub. Only in keyform's own process (the console script and
    `python -m keyform`), and only before httpx is loaded; nothing else of httpx is affected."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


@click.group(name="keyform", cls=KeyformGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyform")
@click.pass_context
def main(cctx: click.Context) -> None:
    """keyform: API keys as code. Plan, then apply.

    -v/--verbose and --no-color are accepted before the command and after it."""
    obj = cctx.ensure_object(Ctx)
    if not obj.verbose:
        disable_debug_log()


@main.command()
@files_option
@policy_option
@click.pass_obj
def validate(ctx: Ctx, files: tuple[str, ...], policy_files: tuple[str, ...]) -> None:
    """Check the manifests (syntax, schema, references, policies) without touching state or remotes."""

    def body() -> int:
        from keyform.operations import run_validate
        from keyform.render import plural

        ws, warnings = run_validate(_options(files, policy_files=policy_files))
        print_diagnostics(warnings)
        click.echo(f"The manifests are valid: {plural(len(ws.keys), 'key')}, "
                   f"{plural(len(ws.providers), 'provider')}, {plural(len(ws.sinks), 'sink')}.")
        return 0

    run_safely(ctx, body)


@main.command()
@files_option
@state_options
@click.option("--out", type=_PATH, metavar="FILE", help="Save the plan to FILE for `keyform apply FILE`.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="text for terminals, markdown for a pull-request comment, json (schemas/plan.schema.json).")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 if no changes, 2 if changes (also: keys that could not be checked, or an interrupted "
                   "apply that only `apply` records), 1 on error.")
@click.option("--refresh/--no-refresh", default=True, show_default=True, help="List the remote keys first.")
@click.option("--target", "targets", multiple=True, type=NonEmpty("address"), metavar="ADDRESS",
              help="Plan only this address (and what it needs); repeatable.")
@click.option("--destroy", is_flag=True, help="Plan to delete every managed key (or the targets).")
@click.option("--replace", "replace", multiple=True, type=NonEmpty("address"), metavar="ADDRESS",
              help="Force a rotation of this key; repeatable.")
@click.option("--revoke-old", "revoke_old", multiple=True, type=NonEmpty("address"), metavar="ADDRESS",
              help="Revoke this key's old keys now, grace or not (with --replace: the key it replaces too); "
                   "repeatable.")
@policy_option
@click.pass_obj
def plan(ctx: Ctx, files: tuple[str, ...], state_path: str | None, lock_timeout: str, out: str | None,
         fmt: str, detailed_exitcode: bool, refresh: bool, targets: tuple[str, ...], destroy: bool,
         replace: tuple[str, ...], revoke_old: tuple[str, ...], policy_files: tuple[str, ...]) -> None:
    """Show what apply would change, and why."""

    def body() -> int:
        from keyform import operations
        from keyform.render.views import view

        if out:
            _check_out_path(out)
        shown = view(fmt, ctx.color())
        the_plan = operations.run_plan(_options(files, state_path, lock_timeout, policy_files), targets=targets,
                                       refresh_remote=refresh, destroy=destroy, replace=replace,
                                       revoke_old=revoke_old, saving=out is not None)
        shown.plan(the_plan)
        if out:
            from keyform.fsio import atomic_write

            try:
                atomic_write(out, the_plan.dumps().encode("utf-8"))
            except OSError as exc:
                from keyform.render.safe import one_line

                raise KeyformError(f"--out {one_line(out)}: cannot write the plan: {exc.strerror or exc}") from None
            shown.saved(out)
        # 2 for a plan that could not check every key too: "0, no changes" was not established; and
        # for one whose only change is the state's record of an interrupted apply (as Terraform's plan
        # of moves only is applyable): a pipeline that applies only on 2 would never record it
        return 2 if (detailed_exitcode and (the_plan.has_changes or the_plan.unchecked or the_plan.unsaved)) else 0

    run_safely(ctx, body)


def _check_out_path(out: str) -> None:
    """`plan --out FILE` must name a file in an existing directory, and what is there already may
    only be an earlier plan: checked before any work. The plan is written by an atomic rename, which
    would put it in place of whatever the path names: the state, a sink's secrets, a manifest, or
    (as root) a device such as /dev/null."""
    from pathlib import Path

    from keyform.fsio import IsSymlinkError, NotAFileError, TooLargeError, read_nofollow
    from keyform.planfile import MAX_BYTES
    from keyform.render.safe import one_line

    shown = one_line(out)  # (a newline in it: one line, not a second `Error:`)
    path = Path(out)
    if path.is_dir():
        raise KeyformError(f"--out {shown}: is a directory; name a file, e.g. {path / 'keyform.plan'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise KeyformError(f"--out {shown}: the directory {parent} {what}")
    try:
        there = read_nofollow(path, limit=MAX_BYTES)
    except FileNotFoundError:
        return
    except TooLargeError:
        raise KeyformError(f"--out {shown}: the file exists and is larger than any keyform plan; keyform replaces "
                           "only an earlier plan there. Name another file, or remove this one first if it may go") \
            from None
    except IsSymlinkError:
        raise KeyformError(f"--out {shown}: is a symbolic link; name the plan file itself") from None
    except NotAFileError:
        raise KeyformError(f"--out {shown}: is not a regular file (a device, a FIFO or a socket); name a plan file") \
            from None
    except OSError as exc:
        raise KeyformError(f"--out {shown}: cannot read what is there: {exc.strerror or exc}") from None
    if not _is_saved_plan(there):
        raise KeyformError(f"--out {shown}: the file exists and is not a keyform plan; keyform replaces only an "
                           "earlier plan there. Name another file, or remove this one first if it may go")


def _is_saved_plan(raw: bytes) -> bool:
    """Whether `raw` is a plan `plan --out` wrote (`plan.looks_like_saved_plan`)."""
    from keyform.plan import looks_like_saved_plan

    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return looks_like_saved_plan(doc)


def _answer(err: bool = False) -> str:
    """The answer typed at a confirmation prompt (asked on stderr with `err`), stripped. Ctrl-C or
    Ctrl-D (end of input) there is no answer: the same as any answer but 'yes' (click raises Abort
    for both)."""
    try:
        answer: str = click.prompt("  Enter a value", default="", show_default=False, err=err)
    except click.exceptions.Abort:
        click.echo(err=err)  # the cursor is still after the prompt: the message that follows starts a line
        return ""
    return answer.strip()


def _confirm(auto_approve: bool, question: str, what: str = "Apply", *, err: bool = False) -> None:
    """Ask `question` on the terminal (on stderr with `err`: stdout carries a JSON stream)."""
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise KeyformError("refusing to make changes without confirmation: no terminal to ask on. "
                           "Review the plan and re-run with --auto-approve, or apply a saved plan file.")
    click.echo(f"{question}\n  Only 'yes' will be accepted to approve.\n", err=err)
    if _answer(err) != "yes":
        raise KeyformError(f"{what} cancelled.")


def _run_apply(ctx: Ctx, opts: Options, request: ApplyRequest, shown: View, auto_approve: bool,
               question: str) -> int:
    """Run `operations.run_apply` with the view (and the question on the terminal), then report."""
    from keyform import operations
    from keyform.applier import ApplyAbandoned

    def confirm() -> None:
        shown.confirming()
        _confirm(auto_approve, question, "Destroy" if request.destroy else "Apply", err=shown.asks_on_stderr)

    try:  # progress from the scheduler and worker threads: the view writes one line at a time
        report = operations.run_apply(opts, request, shown, confirm)
    except ApplyAbandoned as exc:  # the view has listed the changes in flight
        ctx.hard_exit = True  # worker threads may still wait on the network: do not wait for them
        still = (f" {exc.helpers} sink program(s) it started still run and keep the state locked until they end: "
                 "the next command waits for them with --lock-timeout." if exc.helpers else "")
        raise KeyformError("Apply interrupted twice; the state was not saved. The journal holds what finished, "
                           f"and the next `keyform apply` recovers it.{still}") from None
    if report is None:  # nothing to change
        shown.nothing_to_apply(destroy=request.destroy)
        return 0
    shown.summary(report, destroy=request.destroy)
    if report.store_failed is not None:  # the database or the disk went: said once, with what was not started
        shown.interrupted(report)
        raise KeyformError(operations.store_failed_message(report, "destroy" if request.destroy else "apply"))
    if report.interrupted:
        shown.interrupted(report)
        command, what = ("destroy", "Destroy") if request.destroy else ("apply", "Apply")
        raise KeyformError(f"{what} interrupted: the changes listed above as done were saved; run `keyform "
                           f"{command}` again for the rest.")
    if not report.ok:
        raise KeyformError([Diagnostic(f"{c.key}: {msg}") for c, msg in report.failed + report.skipped])
    return 0


@main.command()
@files_option
@state_options
@click.argument("plan_file", metavar="[PLANFILE]", required=False, type=_PATH)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", default=10, show_default=True, type=Integer(1, 256), metavar="N",
              help="At most N remote calls (and N sink writes) at once; 1 runs changes one by one.")
@click.option("--target", "targets", multiple=True, type=NonEmpty("address"), metavar="ADDRESS",
              help="Apply only this address (and what it needs); repeatable. Not with PLANFILE.")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="List the remote keys before planning. Not with PLANFILE.")
@click.option("--replace", "replace", multiple=True, type=NonEmpty("address"), metavar="ADDRESS",
              help="Force a rotation of this key; repeatable. Not with PLANFILE.")
@click.option("--revoke-old", "revoke_old", multiple=True, type=NonEmpty("address"), metavar="ADDRESS",
              help="Revoke this key's old keys now, grace or not (with --replace: the key it replaces too); "
                   "repeatable. Not with PLANFILE.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the plan, then one JSON event per line (for pipelines).")
@policy_option
@click.pass_obj
def apply(ctx: Ctx, files: tuple[str, ...], state_path: str | None, lock_timeout: str, plan_file: str | None,
          auto_approve: bool, parallelism: int, targets: tuple[str, ...], refresh: bool,
          replace: tuple[str, ...], revoke_old: tuple[str, ...], fmt: str, policy_files: tuple[str, ...]) -> None:
    """Make the remote keys match the manifests (plans first unless given a saved plan).

    PLANFILE is a plan saved by `keyform plan --out FILE`: exactly its changes are applied."""

    def body() -> int:
        from keyform.operations import ApplyRequest
        from keyform.render.views import view

        if plan_file:
            _refuse_planning_flags(plan_file, {"--target": targets, "--replace": replace, "--revoke-old": revoke_old})
        request = ApplyRequest(plan_file=plan_file, targets=targets, refresh_remote=refresh, replace=replace,
                               revoke_old=revoke_old, parallelism=parallelism)
        return _run_apply(ctx, _options(files, state_path, lock_timeout, policy_files), request,
                          view(fmt, ctx.color()), auto_approve, "Do you want to perform these actions?")

    run_safely(ctx, body)


def _refuse_planning_flags(plan_file: str, given: dict[str, tuple[str, ...]]) -> None:
    """A saved plan is applied exactly as made: planning options with it (`given`: each option as
    typed → its values) are an error (as in Terraform), never silently ignored."""
    flags = [flag for flag, values in given.items() if values]
    source = click.get_current_context().get_parameter_source("refresh")
    if source is not None and source is not click.core.ParameterSource.DEFAULT:
        flags.append("--refresh/--no-refresh")
    if flags:
        raise KeyformError(f"{', '.join(flags)} cannot be used with a saved plan ({plan_file}): it is applied "
                           "exactly as it was planned. Give the option to `keyform plan --out` instead.")


@main.command()
@files_option
@state_options
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", default=10, show_default=True, type=Integer(1, 256), metavar="N",
              help="At most N remote calls (and N sink writes) at once; 1 runs changes one by one.")
@click.option("--target", "targets", multiple=True, type=NonEmpty("address"), metavar="ADDRESS",
              help="Destroy only this address; repeatable.")
@policy_option
@click.pass_obj
def destroy(ctx: Ctx, files: tuple[str, ...], state_path: str | None, lock_timeout: str, auto_approve: bool,
            parallelism: int, targets: tuple[str, ...], policy_files: tuple[str, ...]) -> None:
    """Revoke/delete every managed key (or the targets) and forget it."""

    def body() -> int:
        from keyform.operations import ApplyRequest
        from keyform.render.views import TextView

        request = ApplyRequest(targets=targets, destroy=True, parallelism=parallelism)
        return _run_apply(ctx, _options(files, state_path, lock_timeout, policy_files), request,
                          TextView(ctx.color()), auto_approve, "Do you really want to destroy these keys?")

    run_safely(ctx, body)


@main.command()
@click.argument("plan_file", metavar="PLANFILE", type=_FILE)
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="text for terminals, markdown for a pull-request comment, json (schemas/plan.schema.json).")
@click.pass_obj
def show(ctx: Ctx, plan_file: str, fmt: str) -> None:
    """Render a plan saved by `keyform plan --out PLANFILE` (reads no manifest, state or API).

    For reviewers: download the plan artifact of a pipeline and read it here."""

    def body() -> int:
        from keyform.planfile import read_plan
        from keyform.render.views import view

        view(fmt, ctx.color()).plan(read_plan(plan_file, for_display=True))
        return 0

    run_safely(ctx, body)


@main.command("force-unlock")
@click.argument("lock_id", type=NonEmpty("lock ID"))
@files_option
@state_option
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def force_unlock(ctx: Ctx, lock_id: str, files: tuple[str, ...], state_path: str | None, force: bool) -> None:
    """Break a state lock whose holder cannot release it (give the lock ID from the error message).

    A local lock whose process died needs none: the next command takes it over. A holder that is
    still running on this host is refused."""

    def confirm() -> None:
        if not force and sys.stdin.isatty():
            click.echo(f"Do you really want to force-unlock the state (lock ID {lock_id})?\n  keyform will "
                       "remove the lock, and a command still holding it will fail on its next write.\n"
                       "  Only 'yes' will be accepted to confirm.\n")
            if _answer() != "yes":
                raise KeyformError("force-unlock cancelled.")

    def body() -> int:
        from keyform import operations

        operations.force_unlock(_options(files, state_path), lock_id, confirm)
        click.echo(f"keyform state has been unlocked (lock ID {lock_id}).")
        return 0

    run_safely(ctx, body)


@main.command()
@files_option
@state_option
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json", "csv"]), default="text",
              show_default=True, help="text for terminals, markdown for a pull-request comment, json "
              "(schemas/report.schema.json) or csv for spreadsheets.")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="List the remote keys for their live status (--no-refresh: the state alone).")
@click.option("--due-within", metavar="DURATION",
              help="Exit 2 when any key expires or is due for rotation within DURATION (e.g. 14d).")
@click.option("--idle", "idle", metavar="DURATION",
              help="Instead: list keys unused for at least DURATION (e.g. 90d); exit 2 if there are any.")
@click.option("--unmanaged", is_flag=True,
              help="Instead: list remote keys that no state tracks, with the import command for each.")
@click.pass_obj
def report(ctx: Ctx, files: tuple[str, ...], state_path: str | None, fmt: str, refresh: bool,
           due_within: str | None, idle: str | None, unmanaged: bool) -> None:
    """Every managed key at a glance: expiry, next rotation, last use, sink, live status; most urgent
    first. --idle and --unmanaged report idle keys and keys no state tracks instead.

    Read-only: takes no lock and writes nothing. Exit codes: 0; 2 with --due-within when a key is due
    within the window, or with --idle when idle keys are found; 1 on error."""

    def body() -> int:
        from keyform.durations import parse_duration
        from keyform.operations import run_report
        from keyform.render.report import RENDERERS

        if idle is not None or unmanaged:
            return _usage_report(files, state_path, fmt, refresh, due_within, idle, unmanaged)

        window = None
        if due_within is not None:
            try:
                window = parse_duration(due_within)
            except ValueError as exc:
                raise KeyformError(f"--due-within: {exc}") from None
        got = run_report(_options(files, state_path), refresh_remote=refresh)
        click.echo(RENDERERS[fmt](got.report, window, got.now), nl=False)
        return 2 if window is not None and got.report.due_within(window, got.now) else 0

    run_safely(ctx, body)


@main.command()
@files_option
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True,
              help="mermaid (GitHub renders it in Markdown) or Graphviz DOT (`| dot -Tpng -o graph.png`).")
@click.option("--plan", "plan_file", type=_PATH, metavar="FILE",
              help="Colour the keys by the actions of this saved plan (create, update, replace, delete); "
                   "refused unless made from these manifests and this state.")
@state_option
@click.pass_obj
def graph(ctx: Ctx, files: tuple[str, ...], fmt: str, plan_file: str | None, state_path: str | None) -> None:
    """The secret_of dependency graph of the keys (an arrow runs from a source to its consumer)."""

    def body() -> int:
        from keyform.operations import run_graph
        from keyform.render import graph as render

        if state_path and not plan_file:  # (the graph of the manifests reads no state: it was ignored)
            raise KeyformError("--state is read only with --plan (the plan's state); the graph of the manifests "
                               "needs none")
        ws, the_plan = run_graph(_options(files, state_path), plan_file)
        g = render.from_workspace(ws, the_plan)
        click.echo(render.dot(g) if fmt == "dot" else render.mermaid(g), nl=False)
        return 0

    run_safely(ctx, body)


@main.command()
@click.option("-f", "--file", "files", multiple=True, type=_PATH, metavar="PATH",
              help="Manifest file or directory whose REST definitions (type: rest) to list too (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
@click.pass_obj
def providers(ctx: Ctx, files: tuple[str, ...], fmt: str) -> None:
    """List every provider and sink type: built-in, from an installed plug-in package, or (with -f)
    a REST definition the manifests use."""

    def body() -> int:
        from keyform import providerscmd

        render = {"json": providerscmd.render_json, "text": providerscmd.render_text}[fmt]
        rows = providerscmd.list_types()
        if files:
            from keyform.operations import run_validate

            rows += providerscmd.definitions(run_validate(_options(files))[0])
        click.echo(render(rows), nl=False)
        return 1 if any(r.problem for r in rows) else 0

    run_safely(ctx, body)


@main.command(context_settings={"show_default": True})
@click.option("--host", default="127.0.0.1", type=NonEmpty("host"), metavar="HOST", help="Address to listen on.")
@click.option("--port", default=8787, type=Integer(0, 65535), envvar="KEYFORM_EMULATOR_PORT",
              show_envvar=True, metavar="PORT", help="Port to listen on; 0 picks a free one (printed at start).")
@click.option("--latency-ms", default=0.0, type=Decimal(0, 86_400_000), metavar="MS",
              help="Delay before every answer.")
@click.option("--error-rate", default=0.0, type=Decimal(0, 1), metavar="P",
              help="Probability of a 503 answer.")
@click.option("--rate-limit-rate", default=0.0, type=Decimal(0, 1), metavar="P",
              help="Probability of a 429 answer.")
@click.option("--retry-after", default=1.0, type=Decimal(0, 86_400), metavar="SECONDS",
              help="Retry-After on a 429.")
@click.option("--drop-after-commit-rate", default=0.0, type=Decimal(0, 1), metavar="P",
              help="Probability of dropping the connection after a create was committed.")
@click.option("--seed", default=None, type=Integer(), metavar="N", help="Seed for the fault knobs, so runs replay.")
@click.option("--questra-list-shape", default="array", type=click.Choice(["array", "data", "none"]),
              help="Questra's list answer: a bare array, {\"data\": [...]}, or no list endpoint (404).")
@click.option("--token", "tokens", multiple=True, type=NonEmpty("token"), metavar="TOKEN",
              help="Accept only this bearer token (repeatable; default: any non-empty token).")
@click.option("--read-only-token", "read_only_tokens", multiple=True, type=NonEmpty("token"), metavar="TOKEN",
              help="Accept this bearer token for listing only; every write answers 403 (repeatable).")
@click.option("--log-requests", is_flag=True, help="Log every request on stderr.")
@click.option("--rate-limit-rps", default=0.0, type=Decimal(0), metavar="RPS",
              help="Requests/s allowed per org (or per token); beyond it 429 with Retry-After (0: no limit).")
@click.option("--rate-limit-burst", default=0.0, type=Decimal(0), metavar="N",
              help="Token bucket size (0: one second's worth).")
@click.option("--rate-limit-scope", default="org", type=click.Choice(["org", "token"]),
              help="What one rate-limit bucket counts: an organisation or a bearer token.")
@click.option("--org-rate-limit", "org_rate_limits", multiple=True, metavar="ORG=RPS",
              help="This org's (or token's) own rate, e.g. org_a=10 (repeatable).")
@click.option("--clock-offset", default=0.0, type=Decimal(-3153600000, 3153600000), metavar="SECONDS",
              help="The APIs' clock is this far off the real time (negative: behind): their timestamps "
                   "and Date headers.")
def emulator(host: str, port: int, latency_ms: float, error_rate: float, rate_limit_rate: float,
             retry_after: float, drop_after_commit_rate: float, seed: int | None, questra_list_shape: str,
             tokens: tuple[str, ...], read_only_tokens: tuple[str, ...], log_requests: bool,
             rate_limit_rps: float, rate_limit_burst: float, rate_limit_scope: str,
             org_rate_limits: tuple[str, ...], clock_offset: float) -> None:
    """Serve the Questra and TextQL APIs in memory on one port, until Ctrl-C.

    Its control API under /_emulator/ (state dump, out-of-band revoke, delete, expire and modify,
    faults, reset) is described in docs/emulator.md."""
    from keyform.emulator import EmulatorConfig
    from keyform.emulator.__main__ import serve

    sys.exit(serve(EmulatorConfig(
        host=host, port=port, latency_ms=latency_ms, error_rate=error_rate, rate_limit_rate=rate_limit_rate,
        drop_after_commit_rate=drop_after_commit_rate, seed=seed, questra_list_shape=questra_list_shape,
        tokens=frozenset(tokens) if tokens else None, read_only_tokens=frozenset(read_only_tokens),
        retry_after=retry_after, log_requests=log_requests, rate_limit_rps=rate_limit_rps,
        rate_limit_burst=rate_limit_burst, rate_limit_scope=rate_limit_scope,
        rate_limits=_org_rate_limits(org_rate_limits), clock_offset=clock_offset)))


def _org_rate_limits(items: tuple[str, ...]) -> dict[str, float]:
    """`--org-rate-limit ORG=RPS` values; a malformed one is a usage error (exit 1)."""
    from keyform.clikit import UsageFailure, shown_value
    from keyform.durations import ascii_decimal

    limits: dict[str, float] = {}
    for item in items:
        name, sep, rps = item.rpartition("=")
        value = ascii_decimal(rps)  # (float() took `٣` and `inf`)
        if not sep or not name.strip() or value is None or value < 0:
            raise UsageFailure(f"--org-rate-limit: {shown_value(item)} is not ORG=RPS (a number of at least 0 "
                               "in ASCII digits), e.g. org_a=10")
        limits[name] = value
    return limits


@main.command("import")
@click.argument("address")  # (its address rule, statecmds, says what an empty one is)
@click.argument("remote_id", type=NonEmpty("remote id"))
@files_option
@state_options
@click.pass_obj
def import_(ctx: Ctx, address: str, remote_id: str, files: tuple[str, ...], state_path: str | None,
            lock_timeout: str) -> None:
    """Adopt an existing remote key (REMOTE_ID) as ADDRESS, which the manifests must declare."""

    def body() -> int:
        from keyform import operations

        _, warnings = operations.import_key(_options(files, state_path, lock_timeout), address, remote_id,
                                            warn=print_diagnostics)
        click.echo(f"Imported {remote_id} as {address}.")
        print_diagnostics(warnings)
        return 0

    run_safely(ctx, body)


def _usage_report(files: tuple[str, ...], state_path: str | None, fmt: str, refresh: bool,
                  due_within: str | None, idle: str | None, unmanaged: bool) -> int:
    """`report --idle` / `--unmanaged` (keyform.usage)."""
    from keyform import operations
    from keyform.render import usage as render

    if due_within is not None:
        raise KeyformError("--due-within cannot be combined with --idle or --unmanaged")
    if fmt == "csv":
        raise KeyformError("--format csv is for the key report; --idle and --unmanaged print text, markdown or json")
    threshold = _positive_duration("--idle", idle) if idle is not None else None
    result = operations.run_usage_report(_options(files, state_path), idle=threshold, unmanaged=unmanaged,
                                         refresh_remote=refresh)
    out = {"json": render.render_json, "markdown": render.render_markdown}.get(fmt, render.render_text)
    click.echo(out(result), nl=False)
    return 2 if result.idle else 0


def _positive_duration(flag: str, text: str) -> timedelta:
    from datetime import timedelta

    from keyform.durations import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise KeyformError(f"{flag}: {exc}") from None
    except OverflowError:
        raise KeyformError(f"{flag}: {text!r} is too long") from None
    if value <= timedelta(0):
        raise KeyformError(f"{flag}: must be longer than 0")
    return value


@main.group()
def state() -> None:
    """Inspect, edit or move the state: list, show, rm, mv, rekey, pull, push (never touches remote keys)."""


@state.command("list")
@files_option
@state_option
@click.pass_obj
def state_list(ctx: Ctx, files: tuple[str, ...], state_path: str | None) -> None:
    """List the managed keys: address, provider instance, remote id."""

    def body() -> int:
        from keyform.operations import read_state
        from keyform.statecmds import state_list as rows

        for row in rows(read_state(_options(files, state_path), warn=print_diagnostics)):
            click.echo(row)
        return 0

    run_safely(ctx, body)


@state.command("show")
@click.argument("address", type=NonEmpty("address"))
@files_option
@state_option
@click.pass_obj
def state_show(ctx: Ctx, address: str, files: tuple[str, ...], state_path: str | None) -> None:
    """Show one key's record (the state holds no secrets)."""

    def body() -> int:
        from keyform.operations import read_state
        from keyform.statecmds import state_show as show

        click.echo(json.dumps(show(read_state(_options(files, state_path), warn=print_diagnostics), address),
                              indent=2))
        return 0

    run_safely(ctx, body)


@state.command("rm")
@click.argument("address", type=NonEmpty("address"))
@files_option
@state_options
@click.pass_obj
def state_rm(ctx: Ctx, address: str, files: tuple[str, ...], state_path: str | None, lock_timeout: str) -> None:
    """Forget a key without touching it remotely (it stays active; keyform stops managing it)."""

    def body() -> int:
        from keyform.operations import state_rm as rm

        ks = rm(_options(files, state_path, lock_timeout), address)
        click.echo(f"Removed {address} ({ks.remote_id}) from the state; the remote key was not touched.")
        return 0

    run_safely(ctx, body)


@state.command("mv")
@click.argument("old")
@click.argument("new")  # (its address rule, statecmds, says what an empty one is)
@click.option("--sink-name", default=None, metavar="NAME",
              help="Also record a new entry name in the sink (default: keep it).")
@files_option
@state_options
@click.pass_obj
def state_mv(ctx: Ctx, old: str, new: str, sink_name: str | None, files: tuple[str, ...], state_path: str | None,
             lock_timeout: str) -> None:
    """Rename a key's address in the state, keeping the remote key (and its sink entry name)."""

    def body() -> int:
        from keyform.operations import state_mv as mv

        mv(_options(files, state_path, lock_timeout), old, new, sink_name)
        click.echo(f"Moved {old} to {new}.")
        return 0

    run_safely(ctx, body)


@state.command("rekey")
@files_option
@state_options
@click.option("--old-key-env", default=None, metavar="NAME",
              help="The environment variable holding the key a keyed state was made with "
                   "(default: state.fingerprint_key).")
@click.option("--old-key-file", default=None, type=_PATH, metavar="PATH",
              help="The file holding the key a keyed state was made with.")
@click.pass_obj
def state_rekey(ctx: Ctx, files: tuple[str, ...], state_path: str | None, lock_timeout: str,
                old_key_env: str | None, old_key_file: str | None) -> None:
    """Re-make the input fingerprints in the mode the manifests set (state.fingerprint_key: keyed;
    none: salted), without a plan diff. Reads every input the state has a fingerprint of."""

    def body() -> int:
        from keyform.model import EnvRef, FileRef
        from keyform.operations import rekey_state

        old: EnvRef | FileRef | None = None
        if old_key_env is not None and old_key_file is not None:
            raise KeyformError("state rekey: give --old-key-env or --old-key-file, not both")
        if old_key_env is not None:  # (an empty one is refused, not taken as none given)
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", old_key_env):
                from keyform.render.safe import quoted

                raise KeyformError(f"state rekey: --old-key-env {quoted(old_key_env)} is not an environment variable "
                                   "name (letters, digits, '_'; not starting with a digit)")
            old = EnvRef(old_key_env)
        elif old_key_file is not None:
            old = FileRef(os.path.abspath(old_key_file))
        report = rekey_state(_options(files, state_path, lock_timeout), old, warn=print_diagnostics)
        if not report.written:
            click.echo(f"The state's fingerprints are {report.mode} as the manifests say already; nothing was written.")
            return 0
        click.echo(f"Rekeyed the state: {report.converted} fingerprint(s) now {report.mode}.")
        for path in report.changed:
            click.echo(f"  {path} changed since the last apply: the next plan still shows it.")
        return 0

    run_safely(ctx, body)


@state.command("pull")
@files_option
@state_option
@click.pass_obj
def state_pull(ctx: Ctx, files: tuple[str, ...], state_path: str | None) -> None:
    """Print the state as JSON on stdout, to keep or move it (it holds no secret).

    For example `keyform state pull > prod.state.json`."""

    def body() -> int:
        from keyform.operations import pull_state

        click.echo(pull_state(_options(files, state_path)).dumps(), nl=False)
        return 0

    run_safely(ctx, body)


@state.command("push")
@click.argument("file", type=_FILE)
@files_option
@state_options
@click.option("--force", is_flag=True, help="Overwrite a state of another lineage or with a higher serial.")
@click.pass_obj
def state_push(ctx: Ctx, file: str, files: tuple[str, ...], state_path: str | None, lock_timeout: str,
               force: bool) -> None:
    """Write FILE's state into the configured backend as its next version, under the lock.

    FILE is a `state pull` output or a local keyform.state.json; `-` reads it from stdin. Refuses a
    state of another lineage, an older serial, or a backend with an interrupted apply, unless
    --force."""

    def body() -> int:
        from keyform.operations import push_state

        pushed = push_state(_options(files, state_path, lock_timeout), file, force=force)
        print_diagnostics(pushed.warnings)
        from keyform.render.safe import one_line

        source = "the state from stdin" if file == "-" else one_line(file)
        click.echo(f"Pushed {source} to {pushed.where} (serial {pushed.state.serial}, lineage {pushed.state.lineage}).")
        return 0

    run_safely(ctx, body)
