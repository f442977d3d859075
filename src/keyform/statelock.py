"""The state lock: `<state>.lock`, created exclusively, naming who holds it (Terraform semantics).

A lock is never broken automatically, even when its process is gone: the message says so and gives
the `keyform force-unlock ID` command. Release removes the file only if it still holds our ID.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from keyform import __version__
from keyform.errors import LockError, StateError
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


def read_lock(lock_path: Path) -> LockInfo | None:
    """The current holder, or None if unlocked. Raises StateError if the file is not a lock record."""
    try:
        return _read(lock_path)
    except _Unreadable as exc:
        raise StateError(f"{lock_path}: lock file is not readable ({exc}); if no keyform is running, "
                         "delete this file") from None


def acquire(lock_path: Path, operation: str, timeout: float = 0.0,
            *, sleep: Callable[[float], None] = time.sleep) -> LockInfo:
    """Create the lock file exclusively, waiting up to `timeout` seconds for a holder to release it."""
    ensure_dir(lock_path.parent)
    deadline = time.monotonic() + max(0.0, timeout)
    info = LockInfo.new(operation)
    while True:
        if _try_create(lock_path, info):
            return info
        remaining = deadline - time.monotonic()
        if remaining > 0:
            sleep(min(POLL_INTERVAL, remaining))
            continue
        try:
            holder = _read(lock_path)
        except _Unreadable as exc:
            raise LockError(f"{lock_path}: state is locked, but the lock file is not readable ({exc}); if no "
                            "keyform is running, delete that file") from None
        if holder is None:  # released between our attempt and the read: try again at once
            continue
        raise LockError(f"{lock_path}: {describe_holder(holder)}")


def release(lock_path: Path, info: LockInfo) -> None:
    """Remove the lock file if it still holds `info.id`; otherwise leave it (someone force-unlocked)."""
    try:
        holder = _read(lock_path)
    except _Unreadable:
        holder = None
    if holder is None or holder.id != info.id:
        log.warning("%s: not releasing the state lock: it no longer holds lock ID %s", lock_path, info.id)
        return
    _remove(lock_path)


def force_unlock(lock_path: Path, lock_id: str) -> LockInfo:
    """Remove the lock iff it holds `lock_id`; returns what was removed."""
    holder = read_lock(lock_path)
    if holder is None:
        raise StateError(f"{lock_path}: state is not locked")
    if holder.id != lock_id:
        raise StateError(f"{lock_path}: lock ID does not match: the state is locked with ID {holder.id}")
    _remove(lock_path)
    return holder


def describe_holder(holder: LockInfo, advice: str | None = None) -> str:
    """`state is locked by pid N on HOST (operation "apply", since T); lock ID X. <advice>`; the
    default advice is the local backend's (the lock outlives a dead holder: force-unlock it)."""
    dead = " (that process is no longer running)" if advice is None and not _alive(holder) else ""
    if advice is None:
        advice = "If no other keyform is using this state," if dead else "Wait for it to finish, or if it is dead"
        advice = f"{advice} run: keyform force-unlock {holder.id}"
    return (f'state is locked by pid {holder.pid} on {holder.host}{dead} (operation "{holder.operation}", '
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


def _try_create(lock_path: Path, info: LockInfo) -> bool:
    """Write the record to a private temp file, then hard-link it into place: the link is the
    exclusive create, so the lock file never exists without its content (a kill at any moment
    leaves either no lock or a complete one)."""
    tmp = lock_path.with_name(f"{lock_path.name}.{info.id}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.write(fd, (json.dumps(info.to_json(), indent=2) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, lock_path)
        except FileExistsError:
            return False
        fsync_dir(lock_path.parent)
    except OSError as exc:
        raise StateError(f"{lock_path}: cannot create the state lock: {exc.strerror}") from None
    finally:
        _remove(tmp)
    return True


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
    except (ValueError, TypeError, KeyError) as exc:
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
