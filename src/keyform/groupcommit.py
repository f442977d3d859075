"""Group commit: writers that arrive while a file is being written are merged into its next write.

Used by the sinks that keep every secret in one file (dotenv, json, sops, k8s-secret), and by the
local state backend's apply journal (`backends/local.py`: one write and one fsync per batch of
records). The item each writer brings is the caller's (a sink's `(name, secret)`, a journal line);
it is never shown in a repr.

A sink that rewrites its whole file per secret does O(n) bytes of work and one atomic write (two
fsyncs) per secret, one writer at a time: an apply of 1,000 keys into one dotenv file spends most
of its time queued on that file's lock, and into one sops file it runs `sops encrypt` (~50 ms) a
thousand times in a row. Here each writer adds its entry to the file's pending list
and takes the file lock; whoever holds it writes *every* pending entry in one atomic rewrite and
marks them durable. A writer whose entry a previous holder already wrote returns at once, so each
`write` still returns only once its own entry is on stable storage.

If a merged rewrite fails, every writer of that batch writes its entry again on its own, so each
gets the error (or success) it would have had alone, worded for its own entry.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

_PENDING, _DONE, _ALONE, _LEAD = "pending", "done", "alone", "lead"

# How long a writer handed the lead waits before taking the pending entries (commit_delay, as in
# PostgreSQL): it queued behind a batch in flight, so other writers are active. A rewrite of a
# one-file sink costs ~0.5 ms of CPU and two fsyncs whatever its batch size; at 50 ms per create
# and --parallelism 16 the entries arrive ~3 ms apart, so without it nearly every entry had its own
# rewrite (1,000 creates: ~550-900 rewrites; ~330 with it). It delays only writes made while others
# are in flight, by at most this; a lone writer (--parallelism 1, the first of a burst) never waits.
# Measured: apply CPU per create -0.2 ms at 50 ms RTT, the same wall time; at 0 ms RTT less wall.
LINGER = 0.010

T = TypeVar("T")


@dataclass(eq=False)  # tickets are found in the pending list by identity
class _Ticket(Generic[T]):
    item: T = field(repr=False)  # a sink's entry holds its secret
    state: str = _PENDING
    # the writer waits on it alone for `state` to move on (no Condition, no waiter list: one futex
    # each way); one C call wakes it, so a Ctrl-C handled between two bytecodes cannot leave it
    # half woken, and a wake repeated after one (see `_wake`) is harmless: a writer waits once
    box: queue.SimpleQueue[str] = field(default_factory=queue.SimpleQueue, repr=False)

    def wake(self, state: str) -> None:
        """Tell the waiting writer its entry's `state`."""
        self.state = state
        self.box.put(state)


def _wake(ticket: _Ticket[T], state: str) -> BaseException | None:
    """Wake `ticket` whatever happens meanwhile: a Ctrl-C handled in this thread (the main one) is
    returned for the caller to raise once it has woken everyone it must, not raised half way."""
    interrupted: BaseException | None = None
    while True:
        try:
            ticket.wake(state)
            return interrupted
        except BaseException as exc:
            interrupted = interrupted or exc


class GroupCommit(Generic[T]):
    """The pending items of one file. Each sink instance owns one (an apply opens each sink once),
    so a batch is always written with that sink's own format and settings; so does each open
    journal. The file lock (a sink's `pathlocks.lock_for`, the journal's lock) still serialises
    every writer of the file: two sink entries misconfigured onto one file stay consistent with
    each other, they only do not share batches.

    One writer at a time leads: it takes the file lock and writes every pending entry. The others
    wait on their ticket alone (one wake-up each), without touching the file lock: taking it
    (a lock file opened, flocked and closed, the path resolved) only to find their entry written
    was most of a one-file sink's cost per secret. When the leader is done, the first writer still
    pending leads the next batch, after `linger` seconds (see LINGER)."""

    def __init__(self, linger: float = LINGER) -> None:
        self._linger = linger
        self._mutex = threading.Lock()
        self._pending: list[_Ticket[T]] = []
        self._leading = False  # a writer is writing a batch, or about to

    def write(self, file_lock: Callable[[], AbstractContextManager[object]], item: T,
              write_all: Callable[[list[T]], None], write_one: Callable[[], None]) -> None:
        """Make `item` durable: `write_all(items)` writes the file once with every
        pending entry (in arrival order); `write_one()` writes just this one (after a failed batch).
        Both are called holding `file_lock()` (a new context manager per use), the lock that readers
        and removers of the file take."""
        ticket: _Ticket[T] = _Ticket(item)
        try:
            with self._mutex:
                self._pending.append(ticket)
                if not self._leading:
                    ticket.state = _LEAD  # before `_leading`: `_abandon` undoes either
                    self._leading = True
            if ticket.state != _LEAD:
                ticket.box.get()  # the leader wrote it, or failed to, or handed this writer the lead
                if ticket.state == _LEAD and self._linger > 0:
                    time.sleep(self._linger)  # handed the lead: others are writing, gather them
        except BaseException:  # interrupted on the way (Ctrl-C in the main thread)
            self._abandon(ticket)
            raise
        if ticket.state == _DONE:
            return
        if ticket.state == _LEAD:
            try:
                if self._lead(ticket, file_lock, write_all):
                    return
            finally:
                self._hand_over()
        with file_lock():
            write_one()

    def _lead(self, ticket: _Ticket[T], file_lock: Callable[[], AbstractContextManager[object]],
              write_all: Callable[[list[T]], None]) -> bool:
        """Write every pending entry (`ticket`, the leader's own, among them) in one rewrite; True
        once they are durable. A failed batch: each of its writers writes its entry alone (False
        here). The file lock itself failing is the leader's error only: the next writer leads."""
        batch: list[_Ticket[T]] = []
        outcome = _ALONE  # until the batch is durable: an interrupted batch must not pass as written
        try:
            with file_lock():
                with self._mutex:
                    batch, self._pending = self._pending, []
                write_all([t.item for t in batch])
            outcome = _DONE
        except BaseException as exc:
            if not batch:  # the file lock failed: this writer is out of the queue, with its error
                with self._mutex:
                    self._pending.remove(ticket)
                raise
            if not isinstance(exc, Exception):
                raise
            return False
        finally:  # however the batch ended, each of its writers learns how
            self._settle(ticket, batch, outcome)
        return True

    @staticmethod
    def _settle(ticket: _Ticket[T], batch: list[_Ticket[T]], state: str) -> None:
        """Every writer of the batch learns `state`; the leader's own `ticket` is not waiting. A
        Ctrl-C handled meanwhile is raised once all of them are woken."""
        interrupted: BaseException | None = None
        for t in batch:
            if t is ticket:
                t.state = state
            else:
                woke = _wake(t, state)
                interrupted = interrupted or woke
        if interrupted is not None:
            raise interrupted

    def _abandon(self, ticket: _Ticket[T]) -> None:
        """A writer interrupted before its entry was taken leaves the queue (its entry is not
        written for it), passing on the lead if it had it; one already taken into a batch is
        written as usual."""
        with self._mutex:
            if ticket not in self._pending:
                return
            self._pending.remove(ticket)
            if ticket.state == _LEAD:
                self._pass_lead()

    def _hand_over(self) -> None:
        """The lead goes to the first writer still pending, if any."""
        with self._mutex:
            self._pass_lead()

    def _pass_lead(self) -> None:
        """Hand the lead to the first writer pending, or let it go; the caller holds the mutex."""
        if not self._pending:
            self._leading = False
            return
        interrupted = _wake(self._pending[0], _LEAD)
        if interrupted is not None:
            raise interrupted
