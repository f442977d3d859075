"""State backends: where the state, its lock and the apply journal live.

The interface is `keyform.backends.base.StateBackend` (its docstring states the contract). Two
backends implement it, as peers:

- `local` (`keyform.backends.local.LocalBackend`): `keyform.state.json` and its `.backup`, `.lock`
  and `.journal` files beside the manifests. The default; one machine at a time.
- `postgres` (`keyform.backends.postgres.PostgresBackend`): rows in a PostgreSQL database, shared by
  every runner that can reach it (`pip install 'keyform[postgres]'`).

`open_backend` picks the one the manifests configure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from keyform.backends.base import LockInfo, StateBackend
from keyform.errors import Diagnostic, KeyformError
from keyform.journal import JournalWriter

if TYPE_CHECKING:
    from keyform.model import Workspace

__all__ = ["BACKENDS", "JournalWriter", "LockInfo", "StateBackend", "open_backend"]

BACKENDS = ("local", "postgres")


def open_backend(workspace: Workspace | None, state_path_override: str | os.PathLike[str] | None = None, *,
                 env: Mapping[str, str] | None = None) -> StateBackend:
    """The backend the manifests configure (`state:`), or the local file `state_path_override`
    (`--state FILE`), which always wins. Nothing is connected or read yet."""
    from keyform.backends.local import LocalBackend

    if state_path_override:
        return LocalBackend(Path(state_path_override))
    if workspace is None:
        raise ValueError("open_backend: a workspace or a state path is needed")
    config = workspace.state_backend
    if config.backend == "local":
        return LocalBackend(Path(workspace.state_path))
    if config.backend == "postgres":
        from keyform.backends.postgres import PostgresBackend
        from keyform.model import EnvRef
        from keyform.resolve import read_ref

        if config.dsn is None:  # the manifest loader refuses this; keep the message anyway
            raise KeyformError("state.dsn: the postgres backend needs a DSN ({env: NAME} or {file: PATH})")
        try:
            dsn = read_ref(config.dsn, "state.dsn", env)
        except KeyformError as exc:
            raise KeyformError([Diagnostic(d.message, config.loc) for d in exc.diagnostics]) from None
        # a bad DSN is reported at its manifest line, with where it was read: never the value
        origin = (f"environment variable {config.dsn.name}" if isinstance(config.dsn, EnvRef)
                  else f"file {config.dsn.path}")
        return PostgresBackend(dsn, config.workspace, dsn_source="state.dsn", dsn_origin=origin, dsn_loc=config.loc)
    raise KeyformError(f"state.backend: unknown backend {config.backend!r} (one of: {', '.join(BACKENDS)})")
