"""Group commit for sinks that keep every secret in one file (dotenv, json, sops, k8s-secret):
writers that arrive while the file is being rewritten are merged into the next atomic rewrite.

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

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

_PENDING, _DONE, _ALONE = "pending", "done", "alone"


@dataclass
class _Ticket:
    name: str
    secret: str
    state: str = _PENDING


class GroupCommit:
    """The pending entries of one sink's file. Each sink instance owns one (an apply opens each sink
    once), so a batch is always written with that sink's own format and settings. The file lock
    (`pathlocks.lock_for`) still serialises every writer of the file: two sink entries misconfigured
    onto one file stay consistent with each other, they only do not share batches."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._pending: list[_Ticket] = []

    def write(self, file_lock: AbstractContextManager[object], name: str, secret: str,
              write_all: Callable[[list[tuple[str, str]]], None], write_one: Callable[[], None]) -> None:
        """Make (name, secret) durable: `write_all(entries)` rewrites the file once with every
        pending entry (in arrival order); `write_one()` writes just this one (after a failed batch).
        Both are called with `file_lock` held, the lock that readers and removers of the file take."""
        ticket = _Ticket(name, secret)
        with self._mutex:
            self._pending.append(ticket)
        with file_lock:
            if ticket.state == _DONE:
                return
            if ticket.state == _PENDING:  # nobody took it yet: write it and everything queued behind it
                with self._mutex:
                    batch, self._pending = self._pending, []
                try:
                    write_all([(t.name, t.secret) for t in batch])
                except BaseException as exc:
                    for t in batch:  # each writes alone; an interrupted batch must not pass as written
                        t.state = _ALONE
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for t in batch:
                        t.state = _DONE
                    return
            write_one()
