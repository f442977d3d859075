"""The local state backend: `keyform.state.json` and its companions, written durably.

Files, all next to the state file and all mode 0600:
- `<state>`         the State as JSON (`State.dumps()`), replaced atomically on every save;
- `<state>.backup`  the previous version, kept by every save;
- `<state>.lock`    held while a command may write (see `keyform.statelock`);
- `<state>.journal` the apply journal: one JSON record per line, fsynced per record.

This is the `local` implementation of `keyform.backends.StateBackend` (`load`, `save`, `lock` /
`acquire_lock` / `release_lock`, `force_unlock`, `journal_open`, `read_journal`, `clear_journal`,
`describe`, `close`); the `postgres` one keeps the same things in database tables.
A state file that cannot be read, is not valid JSON, is missing required fields or comes from a
newer keyform is refused with a StateError naming it, and never overwritten.

Journal records are opaque dicts to the store; callers must never put a secret in one.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

from keyform import statelock
from keyform.errors import LockLostError, StateError
from keyform.fsio import append_line, atomic_write, ensure_dir, fsync_dir, open_for_append
from keyform.state import FORMAT_VERSION, State
from keyform.statecheck import journal_problem, state_problem
from keyform.statelock import LockInfo

__all__ = ["JournalFile", "LockInfo", "StateStore", "parse_state"]

_FileId = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns

class StateStore:
    """A state file and its backup, lock and journal. Thread-safe within one process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self._mutex = threading.RLock()
        self._seen: _FileId | None = None  # the file as this store last read or wrote it (None: absent)
        self._seen_serial: int | None = None  # its serial, for messages
        self._journal_lock = threading.Lock()
        self._open_journals = 0
        self._lock_ids: list[str] = []  # the state locks this store holds: every write is fenced on them

    # -- state ------------------------------------------------------------------------------------

    def load(self) -> State | None:
        """The stored State, or None when the file does not exist. Refuses (StateError) anything else."""
        with self._mutex:
            try:
                with open(self.path, "rb") as fh:
                    raw = fh.read()
                    file_id = _file_id(os.fstat(fh.fileno()))
            except FileNotFoundError:
                self._seen = None
                return None
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
                atomic_write(self.path, data)
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
            serial = json.loads(self.path.read_bytes()).get("serial")
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
            atomic_write(self.backup_path, self.path.read_bytes())
            return
        try:
            os.replace(tmp, self.backup_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.path.parent)

    def _parse(self, raw: bytes) -> State:
        untouched = f"it was left untouched — restore it from {self.backup_path} or fix it"
        return parse_state(raw, str(self.path), untouched)

    # -- lock -------------------------------------------------------------------------------------

    def acquire_lock(self, operation: str, timeout: float = 0.0) -> LockInfo:
        """Take `<state>.lock`, waiting up to `timeout` seconds; LockError names the holder."""
        info = statelock.acquire(self.lock_path, operation, timeout)
        with self._mutex:
            self._lock_ids.append(info.id)
        return info

    def release_lock(self, lock: LockInfo) -> None:
        """Release a lock taken by `acquire_lock` (the file is removed only if it is still ours)."""
        with self._mutex:
            if lock.id in self._lock_ids:
                self._lock_ids.remove(lock.id)
        statelock.release(self.lock_path, lock)

    def fence(self, what: str) -> None:
        """LockLostError if this store took the state lock and no longer holds it (see `statelock`).
        Checked before and after every state and journal write."""
        with self._mutex:
            ids = list(self._lock_ids)
        for lock_id in ids:
            held = statelock.held(lock_id)
            if held is None:
                raise LockLostError(f"{self.lock_path}: the state lock (lock ID {lock_id}) was released; "
                                    f"refusing to write {what}")
            held.check(what)

    def lock(self, operation: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]:
        """`with store.lock("apply", timeout=30):` holds the state lock for the block."""
        return statelock.hold(self, operation, timeout)

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove the lock iff it holds `lock_id` (StateError otherwise); returns the removed holder."""
        return statelock.force_unlock(self.lock_path, lock_id)

    # -- journal ----------------------------------------------------------------------------------

    def journal_open(self) -> JournalFile:
        """Open the journal for appending (created 0600). Close it before `clear_journal`."""
        with self._journal_lock:
            try:
                ensure_dir(self.journal_path.parent)
                fh = open_for_append(self.journal_path)
            except OSError as exc:
                raise StateError(f"{self.journal_path}: cannot open the apply journal: {exc.strerror}") from None
            self._open_journals += 1
        return JournalFile(self, fh)

    def read_journal(self) -> list[dict[str, Any]]:
        """Every complete record in order ([] without a journal). A torn final line is ignored."""
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f"{self.journal_path}: cannot read the apply journal: {exc.strerror}") from None
        lines = raw.split(b"\n")
        records: list[dict[str, Any]] = []
        for number, line in enumerate(lines[:-1], start=1):  # lines[-1]: b"" or an unfinished write
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):
                rec = None
            if not isinstance(rec, dict):
                raise StateError(f"{self.journal_path}:{number}: apply journal record is not a JSON object; "
                                 "fix or delete that line")
            problem = journal_problem(rec)
            if problem is not None:
                raise StateError(f"{self.journal_path}:{number}: apply journal record {problem}; fix or delete "
                                 "that line")
            records.append(rec)
        return records

    def replace_journal(self, records: list[dict[str, Any]]) -> None:
        """Atomically swap the journal for `records` (empty: remove it); never empty in between."""
        if not records:
            self.clear_journal()
            return
        with self._journal_lock:
            if self._open_journals:
                raise RuntimeError("replace_journal() while a JournalFile is open; close it first")
            data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
            self.fence("the apply journal")
            try:
                atomic_write(self.journal_path, data.encode("utf-8"))
            except OSError as exc:
                raise StateError(f"{self.journal_path}: cannot rewrite the apply journal: {exc.strerror}") from None
            self.fence("the apply journal")

    def clear_journal(self) -> None:
        """Remove the journal durably (after its records were folded into a saved state)."""
        with self._journal_lock:
            if self._open_journals:
                raise RuntimeError("clear_journal() while a JournalFile is open; close it first")
            self.fence("the apply journal")
            try:
                os.unlink(self.journal_path)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise StateError(f"{self.journal_path}: cannot remove the apply journal: {exc.strerror}") from None
            fsync_dir(self.journal_path.parent)


class JournalFile:
    """An open journal: `append` writes one JSON line and returns once it is on stable storage.

    Thread-safe, with group commit: a line is written under the journal lock (so lines never
    interleave), then fsynced outside it; appenders that arrive while an fsync is in flight are
    covered together by the next one. With 16 parallel changes that is a few fsyncs per batch of
    records instead of one per record, each behind the last (docs/performance.md)."""

    def __init__(self, store: StateStore, fh: BinaryIO) -> None:
        self._store = store
        self._fh: BinaryIO | None = fh
        self._sync_lock = threading.Lock()  # taken before the journal lock, never after it
        self._written = 0  # lines handed to the OS so far
        self._synced = 0  # of those, the ones known to be on stable storage

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        self._store.fence("the apply journal")
        with self._store._journal_lock:
            if self._fh is None:
                raise RuntimeError("append() on a closed JournalFile")
            try:
                append_line(self._fh, line)
            except OSError as exc:
                raise StateError(f"{self._store.journal_path}: cannot write the apply journal: "
                                 f"{exc.strerror}") from None
            self._written += 1
            mine = self._written
        with self._sync_lock:
            if self._synced >= mine:
                return  # an fsync that began after this line was written has finished
            with self._store._journal_lock:
                upto, fh = self._written, self._fh
            if fh is None:
                raise RuntimeError("append() on a closed JournalFile")
            try:
                os.fsync(fh.fileno())
            except OSError as exc:
                raise StateError(f"{self._store.journal_path}: cannot write the apply journal: "
                                 f"{exc.strerror}") from None
            # still ours after the fsync: the next holder of the lock reads these records
            self._store.fence("the apply journal")
            self._synced = upto

    def close(self) -> None:
        with self._sync_lock, self._store._journal_lock:
            if self._fh is None:
                return
            self._fh.close()
            self._fh = None
            self._store._open_journals -= 1

    def __enter__(self) -> JournalFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_state(raw: bytes, name: str, untouched: str, what: str = "state file") -> State:
    """The State in `raw` (a state document's UTF-8 JSON), or StateError `<name>: <what> <problem>;
    <untouched>` for anything unreadable, malformed or from a newer keyform. Shared by every backend."""
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise StateError(f"{name}: {what} is not valid JSON (truncated?): line {exc.lineno} column "
                         f"{exc.colno}; {untouched}") from None
    except UnicodeDecodeError:
        raise StateError(f"{name}: {what} is not valid UTF-8; {untouched}") from None
    except RecursionError:
        raise StateError(f"{name}: {what} is nested too deeply to be a keyform state; {untouched}") from None
    if not isinstance(doc, dict):
        raise StateError(f"{name}: {what} does not hold a JSON object; {untouched}")
    version = doc.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise StateError(f"{name}: {what} was written by a newer keyform (format {version}; this "
                         f"keyform reads {FORMAT_VERSION}); upgrade keyform to use it")
    if "format_version" in doc and version != FORMAT_VERSION:
        problem: str | None = f"unsupported format_version {version!r} (this keyform reads {FORMAT_VERSION})"
    else:
        problem = state_problem(doc)
    if problem is None:
        try:
            return State.from_json(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = f"malformed content ({type(exc).__name__})"
    raise StateError(f"{name}: {what} {problem}; {untouched}")


def _file_id(st: os.stat_result) -> _FileId:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _stat_id(path: Path) -> _FileId | None:
    try:
        return _file_id(os.stat(path))
    except FileNotFoundError:
        return None
