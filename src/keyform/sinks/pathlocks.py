"""Locks for the file sinks: a read-modify-write of one sink file never loses another writer's entry,
whether that writer is a thread of this process or another keyform process.

`lock_for(path)` is keyed on the resolved path, so two sinks naming one file (or a symlink to it)
share it. Within the process it is a `threading.Lock`. With `across_processes=True` (every
read-modify-write of a one-file sink: dotenv, json, sops, k8s-secret) it also holds an exclusive
`fcntl.flock` on a lock file beside the sink, `.<name>.lock` (0600, never followed through a
symlink), for as long as the block runs: two workspaces whose sinks share one file (`path:
../shared.env`) take turns instead of overwriting each other's entries. The lock file is left in
place (deleting it would race with a process waiting on it). `create_dir=True` creates the sink's
directory (0700) first, so the very first write is locked too; without it a missing directory means
there is nothing to lock (and nothing to read or remove).
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from keyform.errors import SinkError
from keyform.fsio import StrPath

_registry_lock = threading.Lock()
_locks: dict[str, threading.Lock] = {}
DIR_LOCK_NAME = ".keyform-writers.lock"  # in a `file` sink's directory (never an entry name)


def lock_path_for(path: StrPath) -> str:
    """The lock file of the sink file at `path`: `.<name>.lock` in the same directory."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.lock")


class SinkLock:
    """The in-process lock of one sink file, plus (optionally) the cross-process lock file."""

    def __init__(self, path: StrPath, local: threading.Lock, across_processes: bool, create_dir: bool) -> None:
        self.path = os.fspath(path)
        self.local = local
        self._across = across_processes
        self._create_dir = create_dir
        self._fd: int | None = None

    def __enter__(self) -> SinkLock:
        self.local.acquire()
        try:
            if self._across:
                self._fd = self._lock_file()
        except BaseException:
            self.local.release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)  # releases the flock
        finally:
            self.local.release()

    def acquire(self) -> None:
        self.__enter__()

    def release(self) -> None:
        self.__exit__(None, None, None)

    def _lock_file(self) -> int | None:
        from keyform.sinks.sinkfs import prepare_dir

        lock_path = lock_path_for(self.path)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            if self._create_dir:
                prepare_dir(os.path.dirname(lock_path))
            fd = os.open(lock_path, flags, 0o600)
        except (FileNotFoundError, NotADirectoryError):
            return None  # no directory: nothing to read or remove; a write then fails with its own message
        except OSError as exc:
            why = "it is a symbolic link" if os.path.islink(lock_path) else exc.strerror
            raise SinkError(f"{lock_path}: cannot take the sink file's lock: {why}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd


@contextmanager
def dir_lock(directory: StrPath, *, exclusive: bool) -> Iterator[bool]:
    """Hold `directory`'s writers' lock (see the module): shared, waiting for a sweep in progress;
    or exclusive, only if no write is in flight anywhere right now (never waits). Yields whether it
    is held. Best effort: a lock file that cannot be opened or locked (another user's, a read-only
    or lock-less filesystem, a link planted there, never followed; a FIFO, device or directory
    there, never waited on) yields False and blocks nothing;
    the sweep then does not run."""
    path = os.path.join(os.fspath(directory), DIR_LOCK_NAME)
    # read-only is enough for flock; 0600 like every file keyform writes; O_NONBLOCK: opening a FIFO
    # planted there would otherwise wait for a writer forever
    flags = os.O_RDONLY | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        yield False
        return
    try:
        held = False
        if stat.S_ISREG(os.fstat(fd).st_mode):  # not a FIFO, device or directory planted there
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if exclusive else fcntl.LOCK_SH)
                held = True
            except OSError:  # a write in flight (exclusive), or no flock on this filesystem
                pass
        yield held
    finally:
        os.close(fd)


def lock_for(path: StrPath, *, across_processes: bool = False, create_dir: bool = False) -> SinkLock:
    """The lock for the file at `path` (symlinks resolved for the in-process part); see the module."""
    key = os.path.realpath(path)
    with _registry_lock:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.Lock()
    return SinkLock(path, lock, across_processes, create_dir)
