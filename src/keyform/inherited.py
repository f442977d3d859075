"""Open files every helper program keyform starts must hold too: the state lock.

keyform runs sink helpers (an `exec` sink's command, `sops`) in their own session, so a Ctrl-C at
the terminal does not kill them mid-write. If keyform itself is killed (`kill -9`, the OOM killer)
while one runs, the helper goes on and may write a secret late, after the next apply has revoked
that key and written its successor's: the store then holds a revoked secret. So the state lock's
open file is passed to every helper (`sinks/procs.py`: `pass_fds`). Its `flock` lives as long as
any holder of that open file: a helper that outlives keyform keeps the state locked, and the next
command waits for it (`--lock-timeout`) or says who holds the lock, instead of racing it.

The postgres backend registers its lock session's socket the same way: a socket is closed only when
its last holder closes it, so the session, and its advisory lock, outlive keyform for as long as
the helper runs.

Only descriptors registered here are passed; every other one is closed in the child as before.

The lock is therefore not keyform's alone to release while such a program runs: `running()` counts
them, and `backends.base.hold` leaves the lock to them when its block ends with one still running
(an apply abandoned at a second Ctrl-C stops waiting for its sink writes). The lock then ends when
keyform and those programs have all exited, as after a `kill -9`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_fds: set[int] = set()
_running = 0  # helpers started through `start` that have not `ended`
_mutex = threading.Lock()  # also held while a helper is started: `drop` waits for that to finish


def keep(fd: int) -> None:
    """Pass `fd` to every helper started from now on (until `drop`)."""
    with _mutex:
        _fds.add(fd)


def drop(fd: int) -> None:
    """Pass `fd` to no helper started from now on; returns once no start that may pass it is under
    way, so the caller may close it (its number cannot reach a later helper as another file)."""
    with _mutex:
        _fds.discard(fd)


def fds() -> tuple[int, ...]:
    """The descriptors a helper started now must hold."""
    with _mutex:
        return tuple(sorted(_fds))


def start(spawn: Callable[[tuple[int, ...]], T]) -> T:
    """Start a helper: `spawn(fds)` with the descriptors it must hold, none of them dropped (and
    closed) meanwhile. It counts as running until `ended()`; not at all if `spawn` raises."""
    global _running
    with _mutex:
        child = spawn(tuple(sorted(_fds)))
        _running += 1
    return child


def ended() -> None:
    """A helper `start` started has exited (and been waited for)."""
    global _running
    with _mutex:
        _running -= 1


def running() -> int:
    """How many helpers holding these descriptors may still run."""
    with _mutex:
        return _running
