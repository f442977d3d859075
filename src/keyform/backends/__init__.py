"""State backends: where the state, its lock and the apply journal live.

A backend is anything with the `StateBackend` shape. Two exist:

- `local` (`keyform.statestore.StateStore`): `keyform.state.json` and its `.backup`, `.lock` and
  `.journal` files beside the manifests. The default; one machine at a time.
- `postgres` (`keyform.backends.postgres.PostgresBackend`): rows in a PostgreSQL database, shared by
  every runner that can reach it (`pip install 'keyform[postgres]'`).

Both promise the same behaviour, checked by one parametrised test suite (`tests/test_backends.py`):

- `load()` returns the stored State, None when there is none, or refuses (StateError naming the
  backend) anything unreadable, malformed or from a newer keyform; refused data is never overwritten.
- `save(state)` sets `state.serial += 1` and writes it, as a compare-and-swap: it refuses unless the
  stored version is the one this backend object last loaded or saved (before any load: that there is
  no state yet), so a lost update is impossible.
- `acquire_lock(operation, timeout)` / `release_lock(info)` / `lock(...)` hold the state lock; a
  held lock is a LockError naming the holder (pid, host, operation, since, lock ID) after waiting up
  to `timeout` seconds. `force_unlock(lock_id)` breaks a lock whose ID matches.
- `journal_open()` returns a writer whose `append(record)` is durable when it returns;
  `read_journal()` returns the records in order; `clear_journal()` removes them.
- `describe()` names the backend for messages (never a password); `close()` frees connections.
- `other_workspace_states()` returns, by workspace name, the states of the *other* workspaces
  this backend can see (none for a local file; every other workspace in the database for
  postgres), so that `keyform report --unmanaged` does not call one team's keys another's orphans.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from keyform.errors import Diagnostic, KeyformError
from keyform.state import State
from keyform.statelock import LockInfo

if TYPE_CHECKING:
    from keyform.model import Workspace

__all__ = ["BACKENDS", "JournalWriter", "LockInfo", "StateBackend", "open_backend"]

BACKENDS = ("local", "postgres")


class JournalWriter(Protocol):
    """An open apply journal. `append` is durable when it returns; safe to call from many threads."""

    def append(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> JournalWriter: ...

    def __exit__(self, *exc: object) -> None: ...


class StateBackend(Protocol):
    """The state, its lock and the apply journal (see the module docstring for the contract)."""

    def describe(self) -> str: ...

    def load(self) -> State | None: ...

    def save(self, state: State) -> None: ...

    def acquire_lock(self, operation: str, timeout: float = 0.0) -> LockInfo: ...

    def release_lock(self, lock: LockInfo) -> None: ...

    def lock(self, operation: str, timeout: float = 0.0) -> AbstractContextManager[LockInfo]: ...

    def force_unlock(self, lock_id: str) -> LockInfo: ...

    def journal_open(self) -> JournalWriter: ...

    def read_journal(self) -> list[dict[str, Any]]: ...

    def clear_journal(self) -> None: ...

    def replace_journal(self, records: list[dict[str, Any]]) -> None: ...

    def other_workspace_states(self) -> dict[str, State]: ...

    def close(self) -> None: ...


def open_backend(workspace: Workspace | None, state_path_override: str | os.PathLike[str] | None = None, *,
                 env: Mapping[str, str] | None = None) -> StateBackend:
    """The backend the manifests configure (`state:`), or the local file `state_path_override`
    (`--state FILE`), which always wins. Nothing is connected or read yet."""
    from keyform.statestore import StateStore

    if state_path_override:
        return StateStore(Path(state_path_override))
    if workspace is None:
        raise ValueError("open_backend: a workspace or a state path is needed")
    config = workspace.state_backend
    if config.backend == "local":
        return StateStore(Path(workspace.state_path))
    if config.backend == "postgres":
        from keyform.backends.postgres import PostgresBackend
        from keyform.resolve import read_ref

        if config.dsn is None:  # the manifest loader refuses this; keep the message anyway
            raise KeyformError("state.dsn: the postgres backend needs a DSN ({env: NAME} or {file: PATH})")
        try:
            dsn = read_ref(config.dsn, "state.dsn", env)
        except KeyformError as exc:
            raise KeyformError([Diagnostic(d.message, config.loc) for d in exc.diagnostics]) from None
        return PostgresBackend(dsn, config.workspace, dsn_source=str(config.dsn))
    raise KeyformError(f"state.backend: unknown backend {config.backend!r} (one of: {', '.join(BACKENDS)})")
