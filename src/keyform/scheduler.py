"""The apply's DAG scheduler: runs a set of changes in dependency order, in parallel.

It knows changes only by their key, address, provider instance and `depends_on`; what running one
means, and what its outcome is reported as, is the caller's (the applier's `_run`). Every callback
is called in the scheduling thread, never concurrently, in a deterministic order.
"""

from __future__ import annotations

import heapq
import queue
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from keyform.errors import KeyformError
from keyform.graph import dependents
from keyform.plan import Change
from keyform.records import record


class Abandon(BaseException):
    """Raised in the scheduling thread (by a second Ctrl-C, through `abandon`) to stop waiting for
    the changes in flight. Leaving `Scheduler.run`, it names them, sorted by key, in `in_flight`."""

    def __init__(self, in_flight: Iterable[Change] = ()) -> None:
        super().__init__()
        self.in_flight = list(in_flight)


class _HandOff:
    """The scheduling thread's hand-offs: a change becoming one in flight (its `start`, its
    submission, its place in `running`) and one in flight becoming ended (out of `running`, its
    `done`/`failed`). A second Ctrl-C landing inside one (`abandon`) is held until it ends, so every
    change is either ended or listed in flight, never neither: one that landed between
    `running.pop` and the change's callback left it unreported and unlisted. A third Ctrl-C
    raises at once (a callback blocked writing to a full pipe), the change being handed off then
    listed in flight. Only the scheduling thread (the main one, where signal handlers run) uses it."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False
        self.change: Change | None = None  # the change being handed off

    def enter(self, change: Change) -> None:
        self.depth += 1  # held from here; before it, the change is where it was (listed, or not started)
        self.change = change

    def leave(self) -> None:
        self.change = None
        self.depth -= 1
        if self.pending and not self.depth:
            self.pending = False
            raise Abandon


_HANDOFF = _HandOff()


def abandon(*, at_once: bool = False) -> None:
    """What a second Ctrl-C's handler calls: raise `Abandon` now, or, inside a hand-off (`_HandOff`),
    as soon as it ends; `at_once` (a third Ctrl-C) raises now even there."""
    if _HANDOFF.depth and not at_once:
        _HANDOFF.pending = True
        return
    raise Abandon


@record(frozen=False)
class Callbacks:
    """What the scheduler reports. `start` before a change is submitted; `done` (with the seconds it
    took and what its run returned: None, or a note saying why it did less than planned) and `failed`
    (with the exception its run raised) once it finished; `skipped` for a change that will never
    start (`reason` says why)."""

    start: Callable[[Change], None]
    done: Callable[[Change, float, str | None], None]
    failed: Callable[[Change, BaseException, float], None]
    skipped: Callable[[Change, str], None]


class Scheduler:
    """Runs `changes` through `execute` in dependency order (edges among these changes only).

    Up to `2 * parallelism` changes run at once (`parallelism <= 1`: strictly one after another);
    the caller bounds the remote calls themselves. O(changes + edges) bookkeeping: a change is
    submitted only when it can start (so at most that many futures are ever waited on), and a
    finished change touches only its dependants. Among the changes ready at once, the one with the
    smallest key starts first.

    Provider instances share the places fairly: while k instances have changes left, one holds at
    most ceil(places / k) of them, so the changes of an instance held back by its API's rate limit
    do not keep the others' changes from starting.

    A failed change's dependants are skipped (and theirs). Once `halted()` gives a reason, nothing
    more starts: every change not yet started is skipped with that reason. Once `stopping()` is
    true, nothing more starts either; `run` waits for the running changes and returns the ones left
    undone. `Abandon`, raised in the scheduling thread, stops waiting at once."""

    def __init__(self, changes: list[Change], execute: Callable[[Change], str | None], parallelism: int,
                 callbacks: Callbacks, *, halted: Callable[[], str | None] = lambda: None,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self._changes = changes
        self._execute = execute
        self._limit = 1 if parallelism <= 1 else 2 * parallelism
        self._cb = callbacks
        self._halted = halted
        self._stopping = stopping
        self._running: dict[Future[str | None], tuple[Change, float]] = {}

    def in_flight(self) -> list[Change]:
        """The changes running now (and the one being handed off, if any: `_HandOff`), by key."""
        changes = {c.key: c for c, _ in self._running.values()}
        if _HANDOFF.change is not None:
            changes.setdefault(_HANDOFF.change.key, _HANDOFF.change)
        return sorted(changes.values(), key=lambda c: c.key)

    def run(self) -> list[Change]:
        """Run every change; the changes not started because of `stopping()`, by key. A change that
        can never start (a dependency cycle: the planner orders changes topologically) is an error."""
        changes, cb, limit, running = self._changes, self._cb, self._limit, self._running
        by_key = {c.key: c for c in changes}
        addresses = {c.address for c in changes if c.primary}
        blocking = {c.key: {d for d in c.depends_on if d in addresses and d != c.address} for c in changes}
        dependants = dependents(blocking)
        ready = [key for key, deps in blocking.items() if not deps]
        heapq.heapify(ready)
        settled: set[str] = set()
        left = Counter(c.provider for c in changes)  # changes not yet settled, per instance
        active: Counter[str] = Counter()  # changes running, per instance
        parked: dict[str, list[str]] = {}  # ready, but their instance has its share running

        def share() -> int:
            return -(-limit // max(1, sum(1 for n in left.values() if n > 0)))

        def settle(change: Change) -> None:
            settled.add(change.key)
            left[change.provider] -= 1

        def skip_dependants(failed: str) -> None:
            stack = [failed]
            while stack:
                blocker = stack.pop()
                for key in dependants.get(blocker, ()):
                    if key in settled:
                        continue
                    change = by_key[key]
                    settle(change)
                    cb.skipped(change, f"skipped: {blocker} failed")
                    stack.append(key)

        completed: queue.SimpleQueue[Future[str | None]] = queue.SimpleQueue()  # O(1) per completion, unlike wait()
        handoff = _HANDOFF
        pool = ThreadPoolExecutor(max_workers=limit)
        abandoned = False
        try:
            while ready or running or any(parked.values()):
                halt = self._halted()
                if halt is not None:  # nothing more starts
                    for keys in parked.values():
                        while keys:
                            heapq.heappush(ready, heapq.heappop(keys))
                    while ready:
                        change = by_key[heapq.heappop(ready)]
                        if change.key in settled:
                            continue
                        settle(change)
                        cb.skipped(change, halt)
                        skip_dependants(change.key)  # they could never start either
                cap = share()
                for name, keys in parked.items():  # as many as may start: the rest would park again
                    for _ in range(min(len(keys), cap - active[name])):
                        heapq.heappush(ready, heapq.heappop(keys))
                while ready and len(running) < limit and not self._stopping():
                    change = by_key[heapq.heappop(ready)]
                    if active[change.provider] >= cap:
                        heapq.heappush(parked.setdefault(change.provider, []), change.key)
                        continue
                    active[change.provider] += 1
                    handoff.enter(change)
                    try:
                        cb.start(change)
                        fut = pool.submit(self._execute, change)
                        running[fut] = (change, time.monotonic())
                        fut.add_done_callback(completed.put)
                    finally:
                        handoff.leave()
                if self._stopping() and not running:
                    break
                if not running:  # everything left was skipped
                    continue
                try:
                    finished = [completed.get(timeout=0.25)]  # wakes up to notice a Ctrl-C
                except queue.Empty:
                    continue
                while not completed.empty():
                    finished.append(completed.get())
                for fut in sorted(finished, key=lambda f: running[f][0].key):
                    handoff.enter(running[fut][0])
                    try:
                        change, started = running.pop(fut)
                        elapsed = time.monotonic() - started
                        active[change.provider] -= 1
                        settle(change)
                        exc = fut.exception()
                        if exc is None:
                            cb.done(change, elapsed, fut.result())
                        else:
                            cb.failed(change, exc, elapsed)
                    finally:
                        handoff.leave()
                    if exc is None:
                        for key in dependants.get(change.key, ()):
                            deps = blocking[key]
                            deps.discard(change.key)
                            if not deps and key not in settled:
                                heapq.heappush(ready, key)
                    else:
                        skip_dependants(change.key)
        except Abandon:
            abandoned = True
            in_flight = self.in_flight()
            handoff.depth, handoff.pending, handoff.change = 0, False, None
            pool.shutdown(wait=False, cancel_futures=True)
            raise Abandon(in_flight) from None
        finally:
            if not abandoned:
                pool.shutdown(wait=True)
        if self._stopping():
            return [by_key[k] for k in sorted(set(by_key) - settled)]
        stuck = sorted(set(by_key) - settled)
        if stuck:  # unreachable: the planner orders changes topologically
            raise KeyformError("apply: dependency deadlock: " + ", ".join(stuck))
        return []
