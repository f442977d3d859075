"""The `local` state backend: `keyform.state.json` and its companions beside the manifests, written
durably. The default; one machine at a time.

Files, all next to the state file and all mode 0600:
- `<state>`         the State as JSON (`State.dumps()`), replaced atomically on every save;
- `<state>.backup`  the previous version, kept by every save;
- `<state>.lock`    held while a command may write (below);
- `<state>.journal` the apply journal: one record per line (`keyform.journal.encode`), fsynced per record.

`LocalBackend` implements `keyform.backends.base.StateBackend`; the `postgres` backend keeps the same
things in database tables. A state file that cannot be read, is not valid JSON, is missing required
fields or comes from a newer keyform is refused with a StateError naming it, and never overwritten.

The lock is held with an OS lock (`flock`) on the open `<state>.lock` file (Terraform's local
backend does the same with `fcntl`). The kernel releases it when the holder exits, however it exits:
a `kill -9`'d apply leaves the file behind, and the next command takes it over silently.
The file's JSON only describes the holder (`LockInfo`: pid, host, operation, since, lock ID) for
messages; who holds the lock is whoever holds the OS lock on the file that is at the path now.
Release removes the file (while still holding the OS lock) and then closes it; a taker re-checks,
once it holds the OS lock, that its open file is still the one at the path, so a file removed under
it is never "held".

A holder checks that its lock is still the one at the path before and after each state and journal
write (`HeldLock.check`, the fence): if someone removed the file (`force-unlock` from another host,
or by hand) and another keyform took a new lock, the writer stops with LockLostError instead of
writing over the other's work.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from keyform import inherited, journal
from keyform.backends import holders
from keyform.backends.base import LockInfo, describe_holder, hold
from keyform.errors import LockError, LockLostError, LockUnwritableError, StateError
from keyform.fsio import (
    HardLinkedError,
    IsSymlinkError,
    MiB,
    NotAFileError,
    TooLargeError,
    append_lines,
    atomic_write,
    ensure_dir,
    fsync_dir,
    open_for_append,
    open_own,
    read_capped,
    read_nofollow_stat,
)
from keyform.state import State, parse_state

__all__ = ["HeldLock", "LocalBackend", "LocalJournal", "held"]

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.1  # seconds between attempts while waiting for a held lock
# The most keyform reads of a state file or its apply journal (a state of 10,000 keys is ~7 MB): a
# --state naming a huge file is refused, not read until memory runs out. A lock record is ~300 bytes.
MAX_STATE_BYTES = 256 * MiB
MAX_LOCK_BYTES = 64 * 1024


class _Unreadable(Exception):
    """The lock file exists but does not hold a lock record (being written, or damaged)."""


class HeldLock:
    """A lock this process holds: the open file with its OS lock, and its record."""

    def __init__(self, path: Path, fd: int, info: LockInfo) -> None:
        self.path = path
        self.info = info
        self._fd: int | None = fd
        self._where = os.fspath(path)  # what `check` stats, several times per create: no pathlib per call
        st = os.fstat(fd)
        self._ident = (st.st_dev, st.st_ino)
        self._mutex = threading.Lock()
        inherited.keep(fd)  # a sink helper holds the lock too: one outliving a killed keyform keeps it

    def check(self, what: str) -> None:
        """The fence: LockLostError unless the file at the path is still the one we hold locked."""
        try:
            st = os.lstat(self._where)  # a link planted at the path is not the file we hold
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
            inherited.drop(fd)
            os.close(fd)  # releases the OS lock (once no helper holds it either)


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


def _acquire(lock_path: Path, operation: str, timeout: float = 0.0,
            *, sleep: Callable[[float], None] = time.sleep, made: list[Path] | None = None) -> LockInfo:
    """Take the OS lock on the lock file, waiting up to `timeout` seconds for a holder to release it.
    A lock file left by a dead holder (its OS lock free) is taken over. The directories made for
    it (a new `--state` path) are added to `made`."""
    def make_dir() -> None:
        try:
            created = ensure_dir(lock_path.parent)
            if made is not None:
                made.extend(created)
        except OSError as exc:  # a path through a file, or where nothing may be made (/proc): no internal error
            where = str(exc.strerror or exc)
            where = where if str(lock_path.parent) in where else f"{lock_path.parent}: {where}"
            raise StateError(f"{lock_path}: cannot make the directory of the state: {where}") from None
        except ValueError as exc:  # a NUL in a --state path
            raise StateError(f"{lock_path}: not a usable path ({exc})") from None

    make_dir()
    deadline = time.monotonic() + max(0.0, timeout)
    info = LockInfo.new(operation)
    while True:
        # (the directory made again: the holder we waited for may have made it for a new `--state`
        # path, and removed it empty with its lock file on release, `LocalBackend.release_lock`)
        got = _try_lock(lock_path, info, remake=make_dir)
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
        gone, named = _gone(holder, lock_path)
        if gone:  # its OS lock is held by a program it started (`keyform.inherited`)
            raise LockError(
                f'{lock_path}: state is locked: pid {holder.pid} (operation "{holder.operation}", since '
                f"{holder.created_at}; lock ID {holder.id}) has exited, but a program it started, such as an "
                f"`exec` sink's command still finishing a write, holds its lock{named}. Wait for it "
                "to end (use --lock-timeout to wait), or stop it; if it is a background agent that is not "
                f"writing anything, run: keyform force-unlock {holder.id}")
        raise LockError(f"{lock_path}: {describe_holder(holder)}")


def _release(lock_path: Path, info: LockInfo) -> None:
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


def _force_unlock(lock_path: Path, lock_id: str) -> LockInfo:
    """Remove the lock iff it records `lock_id` and its holder is not known to be alive; returns it.

    A holder whose OS lock is free is dead (the next command would take the lock over anyway). One
    whose OS lock is held on this host is alive (LockError names it), unless its keyform is known to
    be gone and only a program it started holds the lock (`_gone`: a sink helper's background
    agent); that lock is removed, with a warning. On another host (a shared filesystem) liveness
    cannot be told: the file is removed, and that holder's next write fails."""
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
        gone, named = _gone(holder, lock_path)
        if not gone:
            raise LockError(f'{lock_path}: refusing to force-unlock: pid {holder.pid} on {holder.host} (operation '
                            f'"{holder.operation}", since {holder.created_at}; lock ID {holder.id}) is still running '
                            "and holds the state lock. Wait for it to finish, or stop it: its lock is released when "
                            "it exits.")
        # the keyform is gone; a program it started (a sink helper's background agent) holds its lock
        log.warning("%s: pid %s has exited; a program it started still holds its lock%s. If that is an exec "
                    "sink's command still writing a secret, check that entry after the next apply", lock_path,
                    holder.pid, named)
    _remove(lock_path)
    return holder


def _gone(holder: LockInfo, lock_path: Path) -> tuple[bool, str]:
    """Whether the keyform that recorded `holder` is known to be gone while its OS lock is held (by
    a program it started), and the holders named (`keyform.backends.holders`)."""
    return holders.gone(holder, holders.holding(os.path.realpath(lock_path)))


def _try_lock(lock_path: Path, info: LockInfo, *, write: bool = True,
              remake: Callable[[], None] | None = None) -> HeldLock | None:
    """Open (creating) the lock file and take its OS lock without waiting; None if someone holds it.
    Once locked, the open file must still be the one at the path (else it was released and removed
    under us: try again). Then write our record over whatever a dead holder left. `remake`: makes
    the lock's directory again when it is gone (removed by the holder that made it, on release)."""
    while True:
        try:
            fd, _ = open_own(lock_path, os.O_RDWR | os.O_CREAT)
        except FileNotFoundError as exc:
            if remake is not None and not os.path.lexists(lock_path.parent):
                remake()
                continue
            raise StateError(f"{lock_path}: cannot open the state lock: {exc.strerror}") from None
        except (IsSymlinkError, HardLinkedError, NotAFileError, IsADirectoryError) as exc:
            raise StateError(_not_own_lock(lock_path, exc)) from None
        except OSError as exc:
            error = LockUnwritableError if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else StateError
            raise error(f"{lock_path}: cannot open the state lock: {exc.strerror}") from None
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
                now = os.lstat(lock_path)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)
                continue  # released and removed between our open and our lock (or replaced: open it again)
            if st.st_nlink != 1:  # linked to another name since the open: never write into a shared file
                os.close(fd)
                raise StateError(_not_own_lock(lock_path, HardLinkedError(lock_path, st.st_nlink)))
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


def _not_own_lock(lock_path: Path, exc: OSError) -> str:
    """The refusal of a lock path that is not a file of keyform's own (`fsio.open_own`): keyform
    truncates and writes its lock file and removes it on release, so a link there would have it
    overwrite (and a hard link, lose) whatever file it leads to, the state itself included."""
    what = ("is a symbolic link" if isinstance(exc, IsSymlinkError) else
            "has other hard links" if isinstance(exc, HardLinkedError) else "is not a regular file")
    return (f"{lock_path}: the state lock {what}; keyform writes its lock only in a file of its own and has "
            "left this one untouched: remove it if no keyform is running")


def _read_fd(fd: int) -> LockInfo | None:
    try:
        raw = os.pread(fd, 64 * 1024, 0)
        doc = json.loads(raw)
        return LockInfo.from_json(doc) if isinstance(doc, dict) else None
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None


def _read(lock_path: Path) -> LockInfo | None:
    try:
        raw = read_capped(lock_path, MAX_LOCK_BYTES, follow_symlinks=False)[0]
    except FileNotFoundError:
        return None
    except IsSymlinkError:
        raise _Unreadable("a symbolic link") from None
    except NotAFileError:
        raise _Unreadable("not a regular file") from None
    except TooLargeError as exc:
        raise _Unreadable(exc.strerror) from None
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



_FileId = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns

class LocalBackend:
    """A state file and its backup, lock and journal. Thread-safe within one process."""

    no_state = "no state file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.name:  # `--state .` or `--state /`: the backup, lock and journal sit beside a file
            raise StateError(f"{path}: cannot read the state file: Is a directory")
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self._mutex = threading.RLock()
        self._seen: _FileId | None = None  # the file as this store last read or wrote it (None: absent)
        self._seen_serial: int | None = None  # its serial, for messages
        self._journal_lock = threading.Lock()
        self._open_journals = 0
        # the journal lines this store appended (encoded bytes, no newline): `read_journal` parses
        # them back without re-validating them against the schema (an apply reads its whole
        # journal back at its end: that check was ~0.1 ms per create). Lines of any other origin,
        # and every line a later process reads, are validated as before.
        self._own_lines: set[bytes] = set()
        self._journal_lines: list[int] = []  # the line of each record of the last read_journal()
        self._lock_ids: list[str] = []  # the state locks this store holds: every write is fenced on them
        self._made_dirs: dict[str, list[Path]] = {}  # a lock id → the directories taking it made (`release_lock`)

    # -- state ------------------------------------------------------------------------------------

    def load(self) -> State | None:
        """The stored State, or None when the file does not exist. Refuses (StateError) anything else."""
        with self._mutex:
            try:
                raw, st = read_nofollow_stat(self.path, limit=MAX_STATE_BYTES)
                file_id = _file_id(st)
            except FileNotFoundError:
                self._seen = None
                return None
            except IsSymlinkError:  # a save renames over the path: the link, not its file, would change
                self._seen = None
                raise StateError(f"{self.path}: the state file is a symbolic link; keyform replaces the state "
                                 "by renaming a new file over it, which would replace the link and leave the file "
                                 "it points to behind: name the real file (state.path or --state)") from None
            except NotAFileError:  # a FIFO would block the read, with the lock held
                self._seen = None
                raise StateError(f"{self.path}: the state path is not a regular file (a FIFO, a device or a "
                                 "socket); name a state file") from None
            except TooLargeError as exc:
                self._seen = None
                raise StateError(f"{self.path}: {exc.strerror}, more than any keyform state; name a state "
                                 "file") from None
            except OSError as exc:
                self._seen = None
                raise StateError(f"{self.path}: cannot read the state file: {exc.strerror}") from None
            self._seen = None  # until it parses: a refused file must not be overwritten by save()
            state = self._parse(raw)
            self._seen = file_id
            self._seen_serial = state.serial
            return state

    def save(self, state: State) -> None:
        """Bump `state.serial`, keep the current file as the backup, and write the new one atomically.

        Call `load()` first: save refuses to overwrite a file this store has not successfully read, or
        one that was created, replaced or changed on disk since this store last loaded or saved it
        (lost-update protection). On failure the serial is restored and the previous file is intact.
        """
        with self._mutex:
            try:
                current = _stat_id(self.path)
            except OSError as exc:
                raise StateError(f"{self.path}: cannot read the state file: {exc.strerror}") from None
            if current != self._seen:
                why = "was not read first" if self._seen is None else \
                    f"changed on disk since keyform read it ({self._serials_now()})"
                raise StateError(f"{self.path}: the state file {why}; refusing to overwrite it")
            state.serial += 1
            try:
                data = state.dumps().encode("utf-8")
                ensure_dir(self.path.parent)
                self.fence("the state")
                if current is not None:
                    self._keep_backup()
                atomic_write(self.path, data, follow_symlinks=False)
                self.fence("the state")
            except OSError as exc:
                state.serial -= 1
                raise StateError(f"{self.path}: cannot write the state file: {exc.strerror}; "
                                 "the previous version is intact") from None
            except BaseException:
                state.serial -= 1
                raise
            self._seen = _stat_id(self.path)
            self._seen_serial = state.serial

    def describe(self) -> str:
        return str(self.path)

    def other_workspace_states(self) -> dict[str, State]:
        """A local state file sees no other workspace."""
        return {}

    def close(self) -> None:
        """Nothing to free: files are opened per operation."""

    def _serials_now(self) -> str:
        """`serial 5 in the file, expected 4`, as far as the file can be read now."""
        try:
            serial = json.loads(read_nofollow_stat(self.path, limit=MAX_STATE_BYTES)[0]).get("serial")
        except (OSError, ValueError, AttributeError, RecursionError):
            serial = None
        there = f"serial {serial} in the file" if isinstance(serial, int) else "the file is not readable"
        return f"{there}, expected {self._seen_serial}"

    def _keep_backup(self) -> None:
        """Make `<state>.backup` the current file: a hard link when possible, else a durable copy."""
        tmp = self.backup_path.with_name(f".{self.backup_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            os.link(self.path, tmp)
        except OSError:
            # a copy, replacing whatever is at the backup's name: a link there is not written through
            data = read_nofollow_stat(self.path, limit=MAX_STATE_BYTES)[0]
            if os.path.islink(self.backup_path):
                os.unlink(self.backup_path)
            atomic_write(self.backup_path, data, follow_symlinks=False)
            return
        try:
            os.replace(tmp, self.backup_path)  # (a link or a file at the backup's name is replaced, never written)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.path.parent)

    def _parse(self, raw: bytes) -> State:
        untouched = (f"it was left untouched — restore it from {self.backup_path} or fix it"
                     if self.backup_path.exists() else "it was left untouched — fix it, or restore it from a copy")
        return parse_state(raw, str(self.path), untouched)

    # -- lock -------------------------------------------------------------------------------------

    def acquire_lock(self, operation: str, timeout: float = 0.0) -> LockInfo:
        """Take `<state>.lock`, waiting up to `timeout` seconds; LockError names the holder."""
        made: list[Path] = []
        info = _acquire(self.lock_path, operation, timeout, made=made)
        with self._mutex:
            self._lock_ids.append(info.id)
            self._made_dirs[info.id] = made
        return info

    def release_lock(self, lock: LockInfo) -> None:
        """Release a lock taken by `acquire_lock` (the file is removed only if it is still ours).
        The directories taking it made are removed again while empty: a command that failed on a
        new `--state` path (an import of an id that does not exist) leaves no trace of it."""
        with self._mutex:
            if lock.id in self._lock_ids:
                self._lock_ids.remove(lock.id)
            made = self._made_dirs.pop(lock.id, [])
        _release(self.lock_path, lock)
        for directory in reversed(made):
            try:
                os.rmdir(directory)  # (only an empty one: a state, a journal or another lock keeps it)
            except OSError:
                break

    def fence(self, what: str) -> None:
        """LockLostError if this store took the state lock and no longer holds it (see `HeldLock.check`).
        Checked before and after every state and journal write."""
        with self._mutex:
            ids = list(self._lock_ids)
        for lock_id in ids:
            mine = held(lock_id)
            if mine is None:
                raise LockLostError(f"{self.lock_path}: the state lock (lock ID {lock_id}) was released; "
                                    f"refusing to write {what}")
            mine.check(what)

    def lock(self, operation: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]:
        """`with store.lock("apply", timeout=30):` holds the state lock for the block."""
        return hold(self, operation, timeout)

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove the lock iff it holds `lock_id` (StateError otherwise); returns the removed holder."""
        return _force_unlock(self.lock_path, lock_id)

    # -- journal ----------------------------------------------------------------------------------

    def journal_open(self) -> LocalJournal:
        """Open the journal for appending (created 0600). Close it before `clear_journal`."""
        with self._journal_lock:
            try:
                ensure_dir(self.journal_path.parent)
                fh = open_for_append(self.journal_path)
            except (IsSymlinkError, HardLinkedError, NotAFileError, IsADirectoryError) as exc:
                what = ("is a symbolic link" if isinstance(exc, IsSymlinkError) else
                        "has other hard links" if isinstance(exc, HardLinkedError) else "is not a regular file")
                raise StateError(f"{self.journal_path}: the apply journal {what}; keyform appends only to a "
                                 "journal of its own and has left this one untouched: move it away if no keyform "
                                 "is running") from None
            except OSError as exc:
                raise StateError(f"{self.journal_path}: cannot open the apply journal: {exc.strerror}") from None
            self._open_journals += 1
        return LocalJournal(self, fh)

    def read_journal(self) -> list[journal.Record]:
        """Every complete record in order ([] without a journal). A torn final line is ignored."""
        try:
            raw = read_nofollow_stat(self.journal_path, limit=MAX_STATE_BYTES)[0]  # never blocking on a FIFO
        except FileNotFoundError:
            return []
        except (NotAFileError, IsSymlinkError):  # appended to and replaced by rename, as the state is
            raise StateError(f"{self.journal_path}: the apply journal is not a regular file (a symbolic link, a "
                             "FIFO, a device or a socket); keyform will not read it") from None
        except TooLargeError as exc:
            raise StateError(f"{self.journal_path}: {exc.strerror}, more than any apply's journal; keyform "
                             "will not read it") from None
        except OSError as exc:
            raise StateError(f"{self.journal_path}: cannot read the apply journal: {exc.strerror}") from None
        lines = raw.split(b"\n")
        records: list[journal.Record] = []
        numbers: list[int] = []
        with self._journal_lock:
            own = self._own_lines
        for number, line in enumerate(lines[:-1], start=1):  # lines[-1]: b"" or an unfinished write
            if not line.strip():
                continue
            try:
                records.append(journal.decode_own(line) if line in own else journal.decode(line))
            except journal.JournalRecordError as exc:
                raise StateError(f"{self.journal_path}:{number}: apply journal record {exc}; fix or delete "
                                 "that line") from None
            numbers.append(number)
        self._journal_lines = numbers
        return records

    def journal_place(self, record: int) -> str:
        lines = self._journal_lines
        return f"{self.journal_path}:{lines[record]}" if 0 <= record < len(lines) else str(self.journal_path)

    def replace_journal(self, records: list[journal.Record]) -> None:
        """Atomically swap the journal for `records` (empty: remove it); never empty in between."""
        if not records:
            self.clear_journal()
            return
        with self._journal_lock:
            if self._open_journals:
                raise RuntimeError("replace_journal() while a LocalJournal is open; close it first")
            data = "".join(journal.encode(r) + "\n" for r in records)
            self._own_lines = set()
            self.fence("the apply journal")
            try:
                atomic_write(self.journal_path, data.encode("utf-8"), follow_symlinks=False)
            except OSError as exc:
                raise StateError(f"{self.journal_path}: cannot rewrite the apply journal: {exc.strerror}") from None
            self.fence("the apply journal")

    def clear_journal(self) -> None:
        """Remove the journal durably (after its records were folded into a saved state)."""
        with self._journal_lock:
            if self._open_journals:
                raise RuntimeError("clear_journal() while a LocalJournal is open; close it first")
            self._own_lines = set()
            self.fence("the apply journal")
            try:
                os.unlink(self.journal_path)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise StateError(f"{self.journal_path}: cannot remove the apply journal: {exc.strerror}") from None
            fsync_dir(self.journal_path.parent)


class LocalJournal:
    """An open journal: `append` writes one JSON line and returns once it is on stable storage.

    Thread-safe, with group commit (`keyform.groupcommit`): the first appender writes its line
    under the journal lock, and the appenders that arrive meanwhile are written by the next one
    together, one write and one fsync per batch, each batch fenced on the state lock before the
    write and after the fsync. Lines never interleave. With 16 parallel changes (three appends
    each) that is about one write and one fsync per four records, and each waiting appender is
    woken once (docs/performance.md). A failed batch is cut off the file again, then written line
    by line, so each appender gets its own error (a lost lock, a full disk) and no line is there
    twice."""

    def __init__(self, store: LocalBackend, fh: BinaryIO) -> None:
        from keyform.groupcommit import GroupCommit  # (an apply's: not imported by a plan)

        self._store = store
        self._fh: BinaryIO | None = fh
        # no linger: a create waits on three appends in turn, each would pay it
        self._batches: GroupCommit[str] = GroupCommit(linger=0.0)

    def append(self, record: journal.Record) -> None:
        line = journal.encode(record)
        self._batches.write(lambda: self._store._journal_lock, line, self._write, lambda: self._write([line]))

    def _write(self, lines: list[str]) -> None:
        """Write `lines` and make them durable; called holding the journal lock. If that fails,
        whatever part of them reached the file is cut off again: each line of a failed batch is
        then written once more on its own (`GroupCommit`), so it must not be there twice."""
        fh = self._fh
        if fh is None:
            raise RuntimeError("append() on a closed LocalJournal")
        self._store.fence("the apply journal")
        try:
            start = os.fstat(fh.fileno()).st_size
        except OSError as exc:
            raise StateError(f"{self._store.journal_path}: cannot write the apply journal: "
                             f"{exc.strerror}") from None
        try:
            append_lines(fh, lines)
            self._store._own_lines.update(line.encode("utf-8") for line in lines)
            os.fsync(fh.fileno())
        except BaseException as exc:  # a full disk, an I/O error, a Ctrl-C in between
            with contextlib.suppress(OSError):  # if even that fails, a line may be read twice: replay is idempotent
                os.ftruncate(fh.fileno(), start)
            if isinstance(exc, OSError):
                raise StateError(f"{self._store.journal_path}: cannot write the apply journal: "
                                 f"{exc.strerror}") from None
            raise
        # still ours after the fsync: the next holder of the lock reads these records
        self._store.fence("the apply journal")

    def close(self) -> None:
        with self._store._journal_lock:
            if self._fh is None:
                return
            self._fh.close()
            self._fh = None
            self._store._open_journals -= 1

    def __enter__(self) -> LocalJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _file_id(st: os.stat_result) -> _FileId:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _stat_id(path: Path) -> _FileId | None:
    try:
        return _file_id(os.lstat(path))  # a link swapped in since the load is a change, not the file read
    except FileNotFoundError:
        return None
