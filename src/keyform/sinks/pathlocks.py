"""Per-file locks for the file sinks: a read-modify-write of one sink file never loses another
thread's entry. Keyed on the resolved path, so two sinks naming one file (or a symlink to it) share
a lock. Within one process only; concurrent keyform processes are serialised by the state lock.
"""

from __future__ import annotations

import os
import threading

from keyform.fsio import StrPath

_registry_lock = threading.Lock()
_locks: dict[str, threading.Lock] = {}


def lock_for(path: StrPath) -> threading.Lock:
    """The process-wide lock for the file at `path` (symlinks resolved)."""
    key = os.path.realpath(path)
    with _registry_lock:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.Lock()
        return lock
