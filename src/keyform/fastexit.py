"""The `keyform` process ends without the interpreter's teardown, when nothing is left to it.

A command that has printed its result still frees everything it built before the process ends:
the session (manifests, state, listings: tens of objects per key) when the command returns, then
every module's objects at interpreter exit. None of it is written anywhere; at 10,000 keys it is
~10-20 ms of CPU spent after the work is done. Like mypy's `--fast-exit` (its `util.hard_exit`:
flush stdout and stderr, then `os._exit`), `console` ends such a process at once, but only when
that skips nothing but freeing memory:

- only in the `keyform` process (`cli.console` calls `enable`; in-process callers, tests and
  click's CliRunner, exit normally and free what they built);
- the exit code is the command's own (`SystemExit` with an integer or None);
- every `atexit` callback runs first (`logging`'s flush of its handlers, `weakref.finalize`
  objects such as a `TemporaryDirectory`'s clean-up, a coverage tool's save), as at a normal exit;
- not while a thread other than the main one is alive and not a daemon (the interpreter would wait
  for it: an apply's worker finishing a write), nor under a tracer or profiler (`sys.gettrace`,
  `sys.getprofile`: coverage, cProfile write their results after the program returns);
- stdout and stderr are flushed first; if that fails (a closed pipe), the process exits the normal
  way, which reports it as it always did.

`keep` holds a command's bulk data until then, so it is not freed just before the exit skips
freeing it. `KEYFORM_NO_FAST_EXIT=1` turns all of this off (a leak checker, a debugger)."""

from __future__ import annotations

import atexit
import os
import sys
import threading

_enabled = False
_kept: list[object] = []


def enable() -> None:
    """In this process, `keep` keeps and `exit_now` may end it at once (see the module)."""
    global _enabled
    # (as `KEYFORM_NO_CACHE`: unset, blank, `0`, `false`, `no`, `off` leave it on)
    _enabled = os.environ.get("KEYFORM_NO_FAST_EXIT", "").strip().lower() in ("", "0", "false", "no", "off")


def keep(data: object) -> None:
    """Hold `data` (a command's session or plan) until the process ends, if it may end fast: freeing
    it is what the fast exit saves. Nothing in-process (tests run many commands in one process)."""
    if _enabled:
        _kept.append(data)


def exit_now(code: int | str | None) -> None:
    """End the process with `code` now, if it may end fast (see the module); else return, and the
    caller exits the normal way."""
    if not _enabled or not isinstance(code, int | None) or sys.gettrace() is not None \
            or sys.getprofile() is not None:
        return
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)  # (an interpreter without it: the normal exit)
    if run_exitfuncs is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    run_exitfuncs()  # (and clears them: none runs twice if this does not exit)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code or 0)
