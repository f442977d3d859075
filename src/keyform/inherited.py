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

The lock is therefore not keyform's alone to release while such a program runs. When an apply is
abandoned at a second Ctrl-C, which stops waiting for its sink writes, `seal()` stops any further
program from starting (a worker thread may still be about to start one) and says how many were
running then; `backends.base.hold` then leaves the lock to them. The lock ends when keyform and
those programs have all exited, as after a `kill -9`.

A program is started with copies of the registered descriptors (`os.dup`, made under the mutex),
not the descriptors themselves: the owner may `drop` and close one at any time without waiting for
a start, and a closed number can never reach a program as another file.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_fds: set[int] = set()
_running = 0  # programs started through `start` that have not `ended`
_sealed: int | None = None  # once sealed: how many ran at that moment
_mutex = threading.Lock()  # never held while a program starts


def keep(fd: int) -> None:
    """Pass `fd` to every helper started from now on (until `drop`)."""
    with _mutex:
        _fds.add(fd)


def drop(fd: int) -> None:
    """Pass `fd` to no helper started from now on (the caller may then close it)."""
    with _mutex:
        _fds.discard(fd)


def start(spawn: Callable[[tuple[int, ...]], T]) -> T:
    """Start a helper: `spawn(fds)` with copies of the descriptors it must hold (closed here once
    `spawn` returns: the child has its own). It counts as running until `ended()`; not at all if
    `spawn` raises. OSError (ECANCELED) once `seal()`ed."""
    global _running
    with _mutex:
        if _sealed is not None:
            raise OSError(errno.ECANCELED, "keyform is stopping (interrupted twice): it starts no program any more")
        copies: list[int] = []
        try:
            copies.extend(os.dup(fd) for fd in sorted(_fds))
        except OSError:
            for fd in copies:
                os.close(fd)
            raise
        _running += 1
    try:
        return spawn(tuple(copies))
    except BaseException:
        ended()
        raise
    finally:
        for fd in copies:
            os.close(fd)


def ended() -> None:
    """A helper `start` started has exited (and been waited for)."""
    global _running
    with _mutex:
        _running -= 1


def running() -> int:
    """How many helpers holding these descriptors may still run."""
    with _mutex:
        return _running


def seal() -> int:
    """Start no program from now on in this process (an apply abandoned: it exits next), and say how
    many were running at this moment; the same number for every later call."""
    global _sealed
    with _mutex:
        if _sealed is None:
            _sealed = _running
        return _sealed


def sealed() -> bool:
    """Whether this process gave up (an abandoned apply): it must exit at once, whatever else fails."""
    with _mutex:
        return _sealed is not None


def left_running() -> int:
    """How many programs were running when this process was sealed (0 when it is not): those hold
    the state lock now, and it must not be released under them (`backends.base.hold`)."""
    with _mutex:
        return _sealed or 0
