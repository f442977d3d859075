"""A plug-in's call that may never return, bounded.

A plug-in provider's or sink's code is not keyform's: a call into it can hang for ever (a socket
with no timeout, a lock, a prompt on a terminal no one watches), and keyform with it: in CI, until
the job's timeout, hours later. `call` runs such a call in a daemon thread (`_Runner`) and waits for
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
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from keyform.errors import Overdue

T = TypeVar("T")

_outstanding = 0  # calls abandoned and still running
_running = 0  # calls running, abandoned or still waited for
_lock = threading.Lock()
_local = threading.local()  # `.call`: the _Call the thread runs, if any
_callers = threading.local()  # `.runner`: the `_Runner` that runs this thread's calls, if any


class _Runner:
    """The daemon thread that runs one caller thread's calls, one at a time, for as long as none of
    them is abandoned (then the caller gets a new one). A plug-in keeping what it may not share per
    thread (a `requests.Session` in a `threading.local`, a connection of its own) keeps it across
    the calls of one worker, as it did when the worker ran them; with a thread per call it opened
    one per call (20 creates at --parallelism 2: 20 sessions, not 2). Once its caller thread ends
    or leaves it, its thread ends, after the call it runs if any (`weakref.finalize`)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        threading.Thread(target=_serve, args=(self.jobs,), name="keyform-plugin-call", daemon=True).start()
        weakref.finalize(self, self.jobs.put, None)


def _serve(jobs: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    while (job := jobs.get()) is not None:
        job()
        del job


def _runner() -> _Runner:
    """The calling thread's runner (made on its first call, or after one was abandoned)."""
    runner: _Runner | None = getattr(_callers, "runner", None)
    if runner is None:
        runner = _callers.runner = _Runner()
    return runner


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
    """`fn()`, run in a daemon thread (the calling thread's `_Runner`), waited for `bound` seconds
    of its own time at most; then `overdue(bound)` is raised and the call abandoned. `carry` runs
    first in that thread (it installs the caller's per-thread state there). Its result or
    exception is the caller's."""
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
            _local.call = None  # (the thread runs its caller's next call)
            with _lock:
                abandoned = state.done.is_set()
                if abandoned:
                    _outstanding -= 1
                _running -= 1
                state.done.set()

    def abandon() -> bool:
        """Leave the call if it is still running (its end counts itself out, and its thread runs no
        other call of this caller's): whether it was."""
        global _outstanding
        with _lock:
            if state.done.is_set():
                return False
            state.done.set()
            _outstanding += 1
        if getattr(_callers, "runner", None) is runner:
            _callers.runner = None
        return True

    global _running
    runner = _runner()
    with _lock:
        _running += 1
    runner.jobs.put(body)
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
