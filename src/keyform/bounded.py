"""A plug-in's call that may never return, bounded.

A plug-in provider's or sink's code is not keyform's: a call into it can hang for ever (a socket
with no timeout, a lock, a prompt on a terminal no one watches), and keyform with it: in CI, until
the job's timeout, hours later. `call` runs such a call in a daemon thread of its own and waits for
it no longer than its bound: then the caller gets `Overdue` (a `KeyformError`: one line, exit 1), and
the call is left to end by itself, its result unused; at the latest it ends with the process, which
leaves at once, without joining threads (`running`, read by `cli`, as after a second Ctrl-C; and
so after a Ctrl-C that left a call running).

The time the call spends waiting in a keyform rate limiter (`unclocked`: its instance's pause, its
turn at the send rate, a place in its concurrency window or a --parallelism slot) does not count: a
call queued behind a configured `100/h` is not stuck. Nor is a call whose requests the API answers
(`progressed`, from the limiter): the bound counts from the last answer it accepted, so a listing of
many pages, each on time, is not cut off however long it takes in all (4 pages of 0.6 s under a 1 s
deadline failed `plan`). The call's thread gets the caller's context variables and limiter places
(`carry`), so it runs as if in the caller's thread.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from keyform.errors import Overdue

T = TypeVar("T")

_outstanding = 0  # calls abandoned and still running
_running = 0  # calls running, abandoned or still waited for
_lock = threading.Lock()
_local = threading.local()  # `.call`: the _Call the thread runs, if any


class _Call:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None
        self.started = time.monotonic()  # when the call started, or last made progress (`progressed`)
        self.unclocked = 0.0  # seconds spent in keyform's waits since, not counted
        self.waiting_since: float | None = None
        self.depth = 0
        self.lock = threading.Lock()

    def counted(self) -> float:
        """Seconds of the call since it started or last made progress, keyform's waits left out."""
        now = time.monotonic()
        with self.lock:
            waiting = now - self.waiting_since if self.waiting_since is not None else 0.0
            return now - self.started - self.unclocked - waiting


def progressed() -> None:
    """Within a bounded call (in its thread), the API accepted one of its requests: the call is not
    stuck, and its bound counts from now (`providers.ratelimit.Limiter.succeeded`). Elsewhere nothing."""
    call: _Call | None = getattr(_local, "call", None)
    if call is None:
        return
    with call.lock:
        now = time.monotonic()
        call.started, call.unclocked = now, 0.0
        if call.waiting_since is not None:
            call.waiting_since = now


@contextmanager
def unclocked() -> Iterator[None]:
    """Within a bounded call (in its thread), the time spent here is not counted against its bound:
    keyform's own waits (`providers.ratelimit.Limiter`). Elsewhere nothing."""
    call: _Call | None = getattr(_local, "call", None)
    if call is None:
        yield
        return
    with call.lock:
        call.depth += 1
        if call.depth == 1:
            call.waiting_since = time.monotonic()
    try:
        yield
    finally:
        with call.lock:
            call.depth -= 1
            if call.depth == 0 and call.waiting_since is not None:
                call.unclocked += time.monotonic() - call.waiting_since
                call.waiting_since = None


def call(fn: Callable[[], T], bound: float, overdue: Callable[[float], Overdue],
         carry: Callable[[], None] = lambda: None) -> T:
    """`fn()`, run in a daemon thread, waited for `bound` seconds of its own time at most; then
    `overdue(bound)` is raised and the call abandoned. `carry` runs first in that thread (it
    installs the caller's per-thread state there). Its result or exception is the caller's."""
    global _outstanding
    state = _Call()
    context = contextvars.copy_context()

    def body() -> None:
        global _outstanding, _running
        _local.call = state
        try:
            carry()
            state.result = context.run(fn)
        except BaseException as exc:  # (the caller's)
            state.error = exc
        finally:
            with _lock:
                abandoned = state.done.is_set()
                if abandoned:
                    _outstanding -= 1
                _running -= 1
                state.done.set()

    def abandon() -> bool:
        """Leave the call if it is still running (its end counts itself out): whether it was."""
        global _outstanding
        with _lock:
            if state.done.is_set():
                return False
            state.done.set()
            _outstanding += 1
            return True

    global _running
    with _lock:
        _running += 1
    try:
        threading.Thread(target=body, name="keyform-plugin-call", daemon=True).start()
    except BaseException:  # (no thread: nothing runs)
        with _lock:
            _running -= 1
        raise
    try:
        while True:
            left = bound - state.counted()
            if left <= 0:
                if abandon():
                    raise overdue(bound)
                break
            if state.done.wait(min(left, 1.0)):
                break
    except BaseException:  # a Ctrl-C in the main thread while it waited: the call is left running too
        abandon()
        raise
    if state.error is not None:
        raise state.error
    return state.result  # type: ignore[return-value]


def outstanding() -> int:
    """How many abandoned calls are still running in this process: it should leave without
    joining threads (a plug-in's own may wait on the stuck call)."""
    with _lock:
        return _outstanding


def running() -> int:
    """How many calls are running in this process, abandoned or still waited for (by a thread a
    Ctrl-C left, as `refresh`'s listings): it should leave without joining threads either. After a
    Ctrl-C while a plug-in's listing hung, `plan` said `Interrupted.` and hung for ever joining the
    thread the plug-in's own executor ran the stuck request in."""
    with _lock:
        return _running
