"""The command line: parse arguments, call `keyform.operations`, render. Nothing else lives here.

Only click is imported at start-up; everything else is imported by the command that needs it, so
`keyform --version` stays fast.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from keyform import __version__
from keyform.errors import Diagnostic, KeyformError

F = TypeVar("F", bound=Callable[..., Any])


class Ctx:
    def __init__(self, verbose: bool, no_color: bool) -> None:
        self.verbose = verbose
        self.no_color = no_color

    def color(self, stream: Any = None) -> bool:
        stream = stream or sys.stdout
        if self.no_color or os.environ.get("NO_COLOR"):
            return False
        return bool(getattr(stream, "isatty", lambda: False)())


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


def run_safely(ctx: Ctx, fn: Callable[[], int | None]) -> None:
    """Run a command body: KeyformError → its messages on stderr and exit 1; no traceback unless -v."""
    try:
        with _fewer_gc_passes():
            code = fn()
    except KeyformError as exc:
        if ctx.verbose:
            traceback.print_exc()
        color = ctx.color(sys.stderr)
        for d in exc.diagnostics:
            click.echo(click.style("Error: ", fg="red", bold=True) if color else "Error: ", err=True, nl=False)
            click.echo(str(d), err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        _fail("Interrupted.")
    except click.exceptions.Exit:
        raise
    except Exception as exc:  # a bug: say so plainly, traceback only with -v
        if ctx.verbose:
            traceback.print_exc()
        _fail(f"Error: internal error ({type(exc).__name__}); run with -v for details and report it")
    sys.exit(code or 0)


def files_option(fn: F) -> F:
    return click.option("-f", "--file", "files", multiple=True, type=click.Path(),
                        help="Manifest file or directory (repeatable; default keyform.yaml).")(fn)


def state_options(fn: F) -> F:
    fn = click.option("--state", "state_path", type=click.Path(), default=None,
                      help="Use this local state file instead of the manifests' state backend.")(fn)
    fn = click.option("--lock-timeout", default="0s", show_default=True,
                      help="How long to wait for the state lock (e.g. 30s).")(fn)
    return fn


def _options(files: Sequence[str], state_path: str | None = None, lock_timeout: str = "0s") -> Any:
    from keyform.durations import parse_duration
    from keyform.operations import Options

    try:
        timeout = parse_duration(lock_timeout).total_seconds()
    except ValueError as exc:
        raise KeyformError(f"--lock-timeout: {exc}") from None
    return Options(files=list(files), state_path=state_path, lock_timeout=timeout)


def console() -> None:
    """The `keyform` console script and `python -m keyform`: `main`, then a frozen heap for the exit.

    Interpreter teardown ends with a full cyclic collection over everything the command built
    (manifests, state, plan, listings): ~20-40 ms at 1,000 keys, more at 10,000, after the work
    is done. `gc.freeze()` first moves all of it out of the collector's reach; nothing is left
    unflushed or unclosed by that, the objects are simply not traversed again. In-process callers
    of `main` (tests, click's CliRunner) keep a normal heap."""
    try:
        main()
    finally:
        gc.freeze()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyform")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debugging detail.")
@click.option("--no-color", is_flag=True, help="Never colour the output (NO_COLOR is honoured too).")
@click.pass_context
def main(cctx: click.Context, verbose: bool, no_color: bool) -> None:
    """keyform: API keys as code. Plan, then apply."""
    cctx.obj = Ctx(verbose, no_color)


@main.command()
@files_option
@click.pass_obj
def validate(ctx: Ctx, files: tuple[str, ...]) -> None:
    """Check the manifests (syntax, schema, references) without touching state or remotes."""

    def body() -> int:
        from keyform.operations import load

        ws = load(_options(files))
        click.echo(f"The manifests are valid: {len(ws.keys)} keys, {len(ws.providers)} providers, "
                   f"{len(ws.sinks)} sinks.")
        return 0

    run_safely(ctx, body)


def _render(plan: Any, fmt: str, color: bool) -> str:
    if fmt == "json":
        return str(plan.dumps())
    if fmt == "markdown":
        from keyform.render.markdown import render_markdown

        return render_markdown(plan)
    from keyform.render.text import render_text

    return render_text(plan, color=color)


@main.command()
@files_option
@state_options
@click.option("--out", type=click.Path(), help="Save the plan to FILE for `keyform apply FILE`.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 if no changes, 2 if changes, 1 on error.")
@click.option("--refresh/--no-refresh", default=True, show_default=True, help="List the remote keys first.")
@click.option("--target", "targets", multiple=True, help="Plan only this address (and what it needs).")
@click.option("--destroy", is_flag=True, help="Plan to delete every managed key (or the targets).")
@click.option("--replace", "replace", multiple=True, metavar="ADDRESS", help="Force a rotation of this key.")
@click.pass_obj
def plan(ctx: Ctx, files: tuple[str, ...], state_path: str | None, lock_timeout: str, out: str | None,
         fmt: str, detailed_exitcode: bool, refresh: bool, targets: tuple[str, ...], destroy: bool,
         replace: tuple[str, ...]) -> None:
    """Show what apply would change, and why."""

    def body() -> int:
        from keyform import operations

        with operations.session(_options(files, state_path, lock_timeout), "plan") as sess:
            the_plan = operations.plan(sess, targets=targets, refresh_remote=refresh, destroy=destroy,
                                       replace=replace)
        click.echo(_render(the_plan, fmt, ctx.color()), nl=False)
        if out:
            from keyform.fsio import atomic_write

            atomic_write(out, the_plan.dumps().encode("utf-8"))
            if fmt == "text":
                click.echo(f"\nSaved the plan to {out}. To perform exactly these actions, run:\n"
                           f"  keyform apply {out}")
        return 2 if (detailed_exitcode and the_plan.has_changes) else 0

    run_safely(ctx, body)


def _confirm(auto_approve: bool, question: str) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise KeyformError("refusing to make changes without confirmation: no terminal to ask on. "
                           "Review the plan and re-run with --auto-approve, or apply a saved plan file.")
    click.echo(f"{question}\n  Only 'yes' will be accepted to approve.\n")
    answer = click.prompt("  Enter a value", default="", show_default=False)
    if answer.strip() != "yes":
        raise KeyformError("Apply cancelled.")


def _run_apply(ctx: Ctx, sess: Any, the_plan: Any, parallelism: int, fmt: str = "text") -> int:
    from keyform import operations
    from keyform.render import progress

    def on_event(event: Any) -> None:
        # plain writes: click.echo re-checks the terminal on every call, which the scheduler
        # thread (that reports progress) pays once per change
        if fmt == "json":
            stream, line = sys.stdout, progress.event_json(event)
        else:
            stream = sys.stderr if event.kind in ("failed", "skipped") else sys.stdout
            line = progress.event_text(event)
        stream.write(line + "\n")
        stream.flush()

    def on_rate(event: Any) -> None:  # from a worker thread: one write per line
        line = progress.rate_event_json(event) if fmt == "json" else progress.rate_event_text(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    report = operations.apply(sess, the_plan, parallelism=parallelism, on_event=on_event, on_rate=on_rate)
    if fmt == "json":
        click.echo(progress.summary_json(report))
    else:
        click.echo("")
        click.echo(progress.summary_text(report))
    if not report.ok:
        raise KeyformError([Diagnostic(f"{c.key}: {msg}") for c, msg in report.failed + report.skipped])
    return 0


@main.command()
@files_option
@state_options
@click.argument("plan_file", required=False, type=click.Path())
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", default=10, show_default=True, type=click.IntRange(1, 256),
              help="At most N remote calls (and N sink writes) at once; 1 runs changes one by one.")
@click.option("--target", "targets", multiple=True, help="Apply only this address (and what it needs).")
@click.option("--refresh/--no-refresh", default=True, show_default=True)
@click.option("--replace", "replace", multiple=True, metavar="ADDRESS", help="Force a rotation of this key.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: the plan, then one JSON event per line (for pipelines).")
@click.pass_obj
def apply(ctx: Ctx, files: tuple[str, ...], state_path: str | None, lock_timeout: str, plan_file: str | None,
          auto_approve: bool, parallelism: int, targets: tuple[str, ...], refresh: bool,
          replace: tuple[str, ...], fmt: str) -> None:
    """Make the remote keys match the manifests (plans first unless given a saved plan)."""

    def body() -> int:
        from keyform import operations

        opts = _options(files, state_path, lock_timeout)
        with operations.session(opts, "apply") as sess:
            if plan_file:
                the_plan = _read_plan(plan_file)
                operations.check_saved_plan(sess, the_plan)
            else:
                the_plan = operations.plan(sess, targets=targets, refresh_remote=refresh, replace=replace)
                if fmt == "json":
                    click.echo(json.dumps({"type": "planned", "plan": the_plan.to_json()}))
                else:
                    click.echo(_render(the_plan, "text", ctx.color()), nl=False)
                if not the_plan.has_changes:
                    return 0
                if fmt == "text":
                    click.echo("")
                _confirm(auto_approve, "Do you want to perform these actions?")
            return _run_apply(ctx, sess, the_plan, parallelism, fmt)

    run_safely(ctx, body)


@main.command()
@files_option
@state_options
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", default=10, show_default=True, type=click.IntRange(1, 256),
              help="At most N remote calls (and N sink writes) at once; 1 runs changes one by one.")
@click.option("--target", "targets", multiple=True, help="Destroy only this address.")
@click.pass_obj
def destroy(ctx: Ctx, files: tuple[str, ...], state_path: str | None, lock_timeout: str, auto_approve: bool,
            parallelism: int, targets: tuple[str, ...]) -> None:
    """Revoke/delete every managed key (or the targets) and forget it."""

    def body() -> int:
        from keyform import operations

        with operations.session(_options(files, state_path, lock_timeout), "destroy") as sess:
            the_plan = operations.plan(sess, targets=targets, destroy=True)
            click.echo(_render(the_plan, "text", ctx.color()), nl=False)
            if not the_plan.has_changes:
                return 0
            click.echo("")
            _confirm(auto_approve, "Do you really want to destroy these keys?")
            return _run_apply(ctx, sess, the_plan, parallelism)

    run_safely(ctx, body)


def _read_plan(path: str) -> Any:
    from keyform.plan import Plan

    try:
        with open(path, encoding="utf-8") as fh:
            return Plan.from_json(json.load(fh))
    except OSError as exc:
        raise KeyformError(f"{path}: cannot read the saved plan: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyformError(f"{path}: not a keyform plan file ({exc})") from None


@main.command("force-unlock")
@click.argument("lock_id")
@files_option
@click.option("--state", "state_path", type=click.Path(), default=None)
@click.pass_obj
def force_unlock(ctx: Ctx, lock_id: str, files: tuple[str, ...], state_path: str | None) -> None:
    """Break a state lock left by a process that died (give the lock ID from the error message)."""

    def body() -> int:
        with _backend(files, state_path) as store:
            store.force_unlock(lock_id)
        click.echo(f"keyform state has been unlocked (lock ID {lock_id}).")
        return 0

    run_safely(ctx, body)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
              add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def emulator(args: tuple[str, ...]) -> None:
    """Serve the Questra and TextQL APIs in memory on one port (see `keyform emulator --help`).

    Flags: --host, --port, --latency-ms, --error-rate, --rate-limit-rate, --retry-after,
    --drop-after-commit-rate, --seed, --questra-list-shape, --token, --log-requests."""
    from keyform.emulator.__main__ import main as emulator_main

    sys.exit(emulator_main(list(args)))


@main.command("import")
@click.argument("address")
@click.argument("remote_id")
@files_option
@state_options
@click.pass_obj
def import_(ctx: Ctx, address: str, remote_id: str, files: tuple[str, ...], state_path: str | None,
            lock_timeout: str) -> None:
    """Adopt an existing remote key (REMOTE_ID) as ADDRESS, which the manifests must declare."""

    def body() -> int:
        from keyform import operations
        from keyform.statecmds import import_key

        with operations.session(_options(files, state_path, lock_timeout), "import") as sess:
            _, warnings = import_key(sess, address, remote_id)
        click.echo(f"Imported {remote_id} as {address}.")
        for w in warnings:
            click.echo(f"Warning: {w}", err=True)
        return 0

    run_safely(ctx, body)


@main.group()
def state() -> None:
    """Inspect, edit or move the state: list, show, rm, mv, pull, push (never touches remote keys)."""


@state.command("list")
@files_option
@click.option("--state", "state_path", type=click.Path(), default=None)
@click.pass_obj
def state_list(ctx: Ctx, files: tuple[str, ...], state_path: str | None) -> None:
    """List the managed keys: address, provider instance, remote id."""

    def body() -> int:
        from keyform.statecmds import state_list as rows

        for row in rows(_read_state(files, state_path)):
            click.echo(row)
        return 0

    run_safely(ctx, body)


@state.command("show")
@click.argument("address")
@files_option
@click.option("--state", "state_path", type=click.Path(), default=None)
@click.pass_obj
def state_show(ctx: Ctx, address: str, files: tuple[str, ...], state_path: str | None) -> None:
    """Show one key's record (the state holds no secrets)."""

    def body() -> int:
        from keyform.statecmds import state_show as show

        click.echo(json.dumps(show(_read_state(files, state_path), address), indent=2))
        return 0

    run_safely(ctx, body)


@state.command("rm")
@click.argument("address")
@files_option
@state_options
@click.pass_obj
def state_rm(ctx: Ctx, address: str, files: tuple[str, ...], state_path: str | None, lock_timeout: str) -> None:
    """Forget a key without touching it remotely (it stays active; keyform stops managing it)."""

    def body() -> int:
        from keyform.statecmds import state_rm as rm

        with _locked_state(files, state_path, lock_timeout, "state rm") as (store, st):
            ks = rm(st, address)
            store.save(st)
        click.echo(f"Removed {address} ({ks.remote_id}) from the state; the remote key was not touched.")
        return 0

    run_safely(ctx, body)


@state.command("mv")
@click.argument("old")
@click.argument("new")
@click.option("--sink-name", default=None, help="Also record a new entry name in the sink (default: keep it).")
@files_option
@state_options
@click.pass_obj
def state_mv(ctx: Ctx, old: str, new: str, sink_name: str | None, files: tuple[str, ...], state_path: str | None,
             lock_timeout: str) -> None:
    """Rename a key's address in the state, keeping the remote key (and its sink entry name)."""

    def body() -> int:
        from keyform.statecmds import state_mv as mv

        with _locked_state(files, state_path, lock_timeout, "state mv") as (store, st):
            mv(st, old, new, sink_name)
            store.save(st)
        click.echo(f"Moved {old} to {new}.")
        return 0

    run_safely(ctx, body)


@state.command("pull")
@files_option
@click.option("--state", "state_path", type=click.Path(), default=None,
              help="Read this local state file instead of the manifests' state backend.")
@click.pass_obj
def state_pull(ctx: Ctx, files: tuple[str, ...], state_path: str | None) -> None:
    """Print the state as JSON on stdout, to keep or move it (it holds no secret).

    For example `keyform state pull > prod.state.json`."""

    def body() -> int:
        with _backend(files, state_path) as store:
            st = store.load()
            if st is None:
                raise KeyformError(f"{store.describe()}: there is no state yet")
        click.echo(st.dumps(), nl=False)
        return 0

    run_safely(ctx, body)


@state.command("push")
@click.argument("file", type=click.Path(dir_okay=False))
@files_option
@state_options
@click.option("--force", is_flag=True, help="Overwrite a state of another lineage or with a higher serial.")
@click.pass_obj
def state_push(ctx: Ctx, file: str, files: tuple[str, ...], state_path: str | None, lock_timeout: str,
               force: bool) -> None:
    """Write FILE's state into the configured backend as its next version, under the lock.

    FILE is a `state pull` output or a local keyform.state.json. Refuses a state of another lineage,
    an older serial, or a backend with an interrupted apply, unless --force."""

    def body() -> int:
        from pathlib import Path

        from keyform.statecmds import push_state
        from keyform.statestore import StateStore

        source = StateStore(Path(file))
        pushed = source.load()
        if pushed is None:
            raise KeyformError(f"{file}: no such state file")
        if source.read_journal() and not force:
            raise KeyformError(f"{file}: an interrupted apply left {source.journal_path}; run `keyform plan "
                               f"--state {file}` to recover it first (or push anyway with --force)")
        timeout = _options(files, state_path, lock_timeout).lock_timeout
        with _backend(files, state_path) as store, store.lock("state push", timeout=timeout):
            notes = push_state(store, pushed, force=force)
            where = store.describe()
        for note in notes:
            click.echo(f"Warning: {note}", err=True)
        click.echo(f"Pushed {file} to {where} (serial {pushed.serial}, lineage {pushed.lineage}).")
        return 0

    run_safely(ctx, body)


@contextmanager
def _backend(files: tuple[str, ...], state_path: str | None) -> Iterator[Any]:
    """The state backend (`--state FILE`, or the manifests' `state:`), closed afterwards."""
    from keyform.backends import open_backend

    workspace = None
    if not state_path:
        from keyform.operations import load

        workspace = load(_options(files))
    store = open_backend(workspace, state_path)
    try:
        yield store
    finally:
        store.close()


def _read_state(files: tuple[str, ...], state_path: str | None) -> Any:
    from keyform.state import State

    with _backend(files, state_path) as store:
        return store.load() or State.new()


@contextmanager
def _locked_state(files: tuple[str, ...], state_path: str | None, lock_timeout: str,
                  operation: str) -> Iterator[tuple[Any, Any]]:
    """The state store, locked, with its loaded state (which must exist)."""
    timeout = _options(files, state_path, lock_timeout).lock_timeout
    with _backend(files, state_path) as store, store.lock(operation, timeout=timeout):
        st = store.load()
        if st is None:
            from keyform.statestore import StateStore

            what = "no state file" if isinstance(store, StateStore) else "there is no state yet"
            raise KeyformError(f"{store.describe()}: {what}")
        yield store, st
