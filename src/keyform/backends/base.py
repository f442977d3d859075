"""What every state backend is: the interface (`StateBackend`, Terraform's `statemgr.Full`), the
lock's holder record (`LockInfo`) and its description, and `hold()`, the free helper that holds any
backend's lock for a block (Terraform's `statemgr.LockWithContext`).

Two backends implement it, as peers: `keyform.backends.local` (`LocalBackend`: the state file and
its `.backup`, `.lock` and `.journal` beside the manifests) and `keyform.backends.postgres`
(`PostgresBackend`: rows in a PostgreSQL database). Both promise the same behaviour, checked by one
parametrised test suite (`tests/test_backends.py`):

- `load()` returns the stored State, None when there is none, or refuses (StateError naming the
  backend) anything unreadable, malformed or from a newer keyform; refused data is never overwritten.
- `save(state)` sets `state.serial += 1` and writes it, as a compare-and-swap: it refuses unless the
  stored version is the one this backend object last loaded or saved (before any load: that there is
  no state yet), so a lost update is impossible.
- `acquire_lock(operation, timeout)` / `release_lock(info)` / `lock(...)` hold the state lock; a
  held lock is a LockError naming the holder (pid, host, operation, since, lock ID) after waiting up
  to `timeout` seconds. `force_unlock(lock_id)` breaks a lock whose ID matches.
- `journal_open()` returns a `keyform.journal.JournalWriter` whose `append(record)` is durable when
  it returns; `read_journal()` returns the records in order; `replace_journal(records)` swaps them
  atomically; `clear_journal()` removes them. Records are `keyform.journal` records: the backends
  store them as `journal.encode` makes them and read them with `journal.decode`.
- `describe()` names the backend for messages (never a password); `close()` frees connections.
- `no_state` says, for messages, what `load()` returning None means there ("no state file" for a
  local file, "there is no state yet" for a database).
- `other_workspace_states()` returns, by workspace name, the states of the *other* workspaces
  this backend can see (none for a local file; every other workspace in the database for
  postgres), so that `keyform report --unmanaged` does not call one team's keys another's orphans.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any, Protocol

from keyform import __version__, inherited
from keyform.journal import JournalWriter, Record
from keyform.records import record
from keyform.state import State

__all__ = ["JournalWriter", "LockInfo", "Locker", "StateBackend", "describe_holder", "hold"]


log = logging.getLogger(__name__)


@record
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


def holder_alive(holder: LockInfo) -> bool:
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


class Locker(Protocol):
    """What can hold the state lock (Terraform's `statemgr.Locker`)."""

    def acquire_lock(self, operation: str, timeout: float = 0.0) -> LockInfo: ...

    def release_lock(self, lock: LockInfo) -> None: ...


@contextmanager
def hold(backend: Locker, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
    """Hold a backend's state lock for the block; released even when the block fails, unless the
    block was abandoned (a second Ctrl-C: `keyform.inherited.seal`) while sink programs started
    under it still ran. Those hold the lock too, and releasing it would let the next command race
    their writes; the lock then ends when this process and they have exited."""
    info = backend.acquire_lock(operation, timeout)
    try:
        yield info
    except BaseException:
        if left := inherited.left_running():
            log.warning("not releasing the state lock: %d sink program(s) started under it still ran", left)
            raise
        backend.release_lock(info)
        raise
    backend.release_lock(info)


class StateBackend(Locker, Protocol):
    """The state, its lock and the apply journal (see the module docstring for the contract)."""

    @property
    def no_state(self) -> str:
        """What `load()` returning None means here, for messages: `no state file`."""
        ...

    def describe(self) -> str: ...

    def load(self) -> State | None: ...

    def save(self, state: State) -> None: ...

    def lock(self, operation: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]: ...

    def force_unlock(self, lock_id: str) -> LockInfo: ...

    def journal_open(self) -> JournalWriter: ...

    def read_journal(self) -> list[Record]: ...

    def journal_place(self, record: int) -> str:
        """Where record `record` (an index into the last `read_journal()`) is, for a message about it:
        `file:line` for a local journal."""
        ...

    def clear_journal(self) -> None: ...

    def replace_journal(self, records: list[Record]) -> None: ...

    def other_workspace_states(self) -> dict[str, State]: ...

    def close(self) -> None: ...
