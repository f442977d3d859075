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
"""

from __future__ import annotations

import threading

_fds: set[int] = set()
_mutex = threading.Lock()


def keep(fd: int) -> None:
    """Pass `fd` to every helper started from now on (until `drop`)."""
    with _mutex:
        _fds.add(fd)


def drop(fd: int) -> None:
    with _mutex:
        _fds.discard(fd)


def fds() -> tuple[int, ...]:
    """The descriptors a helper started now must hold."""
    with _mutex:
        return tuple(sorted(_fds))
