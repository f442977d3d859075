"""The state lock: `<state>.lock`, held with an OS lock (`flock`) on the open file (Terraform's local
backend does the same with `fcntl`). The kernel releases it when the holder exits, however it exits:
a `kill -9`'d apply leaves the file behind, and the next command takes it over silently.

The file's JSON only describes the holder (pid, host, operation, since, lock ID) for messages; who
holds the lock is whoever holds the OS lock on the file that is at the path now. Release removes the
file (while still holding the OS lock) and then closes it; a taker re-checks, once it holds the OS
lock, that its open file is still the one at the path, so a file removed under it is never "held".

A holder checks that its lock is still the one at the path before and after each state and journal
write (`HeldLock.check`, the fence): if someone removed the file (`force-unlock` from another host,
or by hand) and another keyform took a new lock, the writer stops with LockLostError instead of
writing over the other's work.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from keyform import __version__
from keyform.errors import LockError, LockLostError, StateError
from keyform.fsio import ensure_dir, fsync_dir

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.1  # seconds between attempts while waiting for a held lock


@dataclass(frozen=True)
class LockInfo:
    """Who holds the state lock. Serialised as the lock file's JSON content."""

    id: str
    pid: int
    host: str
    operation: str
    created_at: str  # RFC 3339, UTC
    version: str  # keyform version of the holder

    @classmethod
    def new(cls, operation: str) -> LockInfo:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(id=str(uuid.uuid4()), pid=os.getpid(), host=socket.gethostname(), operation=operation,
                   created_at=now, version=__version__)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LockInfo:
        return cls(id=str(d["id"]), pid=int(d["pid"]), host=str(d["host"]), operation=str(d["operation"]),
                   created_at=str(d["created_at"]), version=str(d.get("version", "")))


class _Unreadable(Exception):
    """The lock file exists but does not hold a lock record (being written, or damaged)."""


class HeldLock:
    """A lock this process holds: the open file with its OS lock, and its record."""

    def __init__(self, path: Path, fd: int, info: LockInfo) -> None:
        self.path = path
        self.info = info
        self._fd: int | None = fd
        st = os.fstat(fd)
        self._ident = (st.st_dev, st.st_ino)
        self._mutex = threading.Lock()

    def check(self, what: str) -> None:
        """The fence: LockLostError unless the file at the path is still the one we hold locked."""
        try:
            st = os.stat(self.path)
            here = (st.st_dev, st.st_ino)
        except OSError:
            here = None
        if self._fd is not None and here == self._ident:
            return
        if here is None:
            now = "nobody holds it now"
        else:
            try:
                holder = _read(self.path)
            except _Unreadable:
                holder = None
            now = (f"it is now held by pid {holder.pid} on {holder.host} (operation \"{holder.operation}\", "
                   f"lock ID {holder.id})") if holder is not None else "another keyform holds it now"
        raise LockLostError(
            f"{self.path}: the state lock (lock ID {self.info.id}) was lost: its lock file was removed "
            f"(force-unlock from another host, or deleted by hand) and {now}; refusing to write {what}")

    def close(self) -> None:
        with self._mutex:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the OS lock


_held: dict[str, HeldLock] = {}  # lock ID → held lock, for this process
_held_mutex = threading.Lock()


def held(lock_id: str) -> HeldLock | None:
    with _held_mutex:
        return _held.get(lock_id)


def read_lock(lock_path: Path) -> LockInfo | None:
    """The recorded holder, or None if there is no lock file. Raises StateError if it is not a lock record."""
    try:
        return _read(lock_path)
    except _Unreadable as exc:
        raise StateError(f"{lock_path}: lock file is not readable ({exc}); if no keyform is running, "
                         "delete this file") from None


def acquire(lock_path: Path, operation: str, timeout: float = 0.0,
            *, sleep: Callable[[float], None] = time.sleep) -> LockInfo:
    """Take the OS lock on the lock file, waiting up to `timeout` seconds for a holder to release it.
    A lock file left by a dead holder (its OS lock free) is taken over."""
    ensure_dir(lock_path.parent)
    deadline = time.monotonic() + max(0.0, timeout)
    info = LockInfo.new(operation)
    while True:
        got = _try_lock(lock_path, info)
        if got is not None:
            with _held_mutex:
                _held[info.id] = got
            return info
        remaining = deadline - time.monotonic()
        if remaining > 0:
            sleep(min(POLL_INTERVAL, remaining))
            continue
        try:
            holder = _read(lock_path)
        except _Unreadable:
            raise LockError(f"{lock_path}: state is locked by another keyform that has not written its details "
                            "yet; wait for it to finish, or use --lock-timeout to wait") from None
        if holder is None:  # released between our attempt and the read: try again at once
            continue
        raise LockError(f"{lock_path}: {describe_holder(holder)}")


def release(lock_path: Path, info: LockInfo) -> None:
    """Remove the lock file if it is still the one we hold, then let go of the OS lock."""
    with _held_mutex:
        mine = _held.pop(info.id, None)
    if mine is None:
        log.warning("%s: not releasing the state lock: this keyform does not hold lock ID %s", lock_path, info.id)
        return
    try:
        mine.check("the lock file")
    except LockLostError:
        log.warning("%s: not removing the lock file: it no longer holds lock ID %s", lock_path, info.id)
    else:
        _remove(lock_path)
    finally:
        mine.close()


def force_unlock(lock_path: Path, lock_id: str) -> LockInfo:
    """Remove the lock iff it records `lock_id` and its holder is not known to be alive; returns it.

    A holder whose OS lock is free is dead (the next command would take the lock over anyway). One
    whose OS lock is held on this host is alive: LockError names it. On another host (a shared
    filesystem) liveness cannot be told: the file is removed, and that holder's next write fails."""
    holder = read_lock(lock_path)
    if holder is None:
        raise StateError(f"{lock_path}: state is not locked")
    if holder.id != lock_id:
        raise StateError(f"{lock_path}: lock ID does not match: the state is locked with ID {holder.id}")
    probe = LockInfo.new("force-unlock")
    got = _try_lock(lock_path, probe, write=False)
    if got is not None:  # nobody holds it: remove it while we hold it
        try:
            _remove(lock_path)
        finally:
            got.close()
        return holder
    if holder.host == socket.gethostname():
        alive = "is still running" if _alive(holder) else "is gone, but another process on this host holds its lock"
        raise LockError(f'{lock_path}: refusing to force-unlock: pid {holder.pid} on {holder.host} (operation '
                        f'"{holder.operation}", since {holder.created_at}; lock ID {holder.id}) {alive} and holds '
                        "the state lock. Wait for it to finish, or stop it: its lock is released when it exits.")
    _remove(lock_path)
    return holder


def describe_holder(holder: LockInfo, advice: str | None = None) -> str:
    """`state is locked by pid N on HOST (operation "apply", since T); lock ID X. <advice>`; the
    default advice is the local backend's (wait: the lock ends with its process)."""
    if advice is None:
        advice = ("Wait for it to finish (its lock is released when it exits, however it exits), or use "
                  "--lock-timeout to wait.")
        if holder.host != socket.gethostname():
            advice += f" If it runs on another host and is dead there, run: keyform force-unlock {holder.id}"
    return (f'state is locked by pid {holder.pid} on {holder.host} (operation "{holder.operation}", '
            f"since {holder.created_at}); lock ID {holder.id}. {advice}")


def _alive(holder: LockInfo) -> bool:
    """False only when we can tell: the holder ran on this host and its pid is gone."""
    if holder.host != socket.gethostname() or holder.pid <= 0:
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: exists, owned by someone else
        return True
    return True


def _try_lock(lock_path: Path, info: LockInfo, *, write: bool = True) -> HeldLock | None:
    """Open (creating) the lock file and take its OS lock without waiting; None if someone holds it.
    Once locked, the open file must still be the one at the path (else it was released and removed
    under us: try again). Then write our record over whatever a dead holder left."""
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise StateError(f"{lock_path}: cannot open the state lock: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    return None
                raise StateError(f"{lock_path}: cannot take the state lock: {exc.strerror}") from None
            st = os.fstat(fd)
            try:
                now = os.stat(lock_path)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)
                continue  # released and removed between our open and our lock
            if write:
                stale = _read_fd(fd)
                if stale is not None:
                    log.info("%s: took over the lock of pid %s on %s (lock ID %s): its OS lock was free", lock_path,
                             stale.pid, stale.host, stale.id)
                os.ftruncate(fd, 0)
                # not fsynced: the record only describes the holder, and the OS lock ends with the machine
                os.pwrite(fd, (json.dumps(info.to_json(), indent=2) + "\n").encode("utf-8"), 0)
            return HeldLock(lock_path, fd, info)
        except StateError:
            raise
        except OSError as exc:
            os.close(fd)
            raise StateError(f"{lock_path}: cannot write the state lock: {exc.strerror}") from None
        except BaseException:
            os.close(fd)
            raise


def _read_fd(fd: int) -> LockInfo | None:
    try:
        raw = os.pread(fd, 64 * 1024, 0)
        doc = json.loads(raw)
        return LockInfo.from_json(doc) if isinstance(doc, dict) else None
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None


def _read(lock_path: Path) -> LockInfo | None:
    try:
        raw = lock_path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _Unreadable(exc.strerror) from None
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise TypeError("not an object")
        return LockInfo.from_json(doc)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        what = "empty" if not raw else f"not a lock record: {type(exc).__name__}"
        raise _Unreadable(what) from None


def _remove(lock_path: Path) -> None:
    try:
        os.unlink(lock_path)
    except FileNotFoundError:
        return
    fsync_dir(lock_path.parent)


class Lockable(Protocol):
    def acquire_lock(self, operation: str, timeout: float = 0.0) -> LockInfo: ...

    def release_lock(self, lock: LockInfo) -> None: ...


@contextmanager
def hold(backend: Lockable, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
    """Hold a backend's state lock for the block; released even when the block fails."""
    info = backend.acquire_lock(operation, timeout)
    try:
        yield info
    finally:
        backend.release_lock(info)
