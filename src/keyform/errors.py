"""Diagnostics: every user-facing failure is a KeyformError carrying one or more located messages.

Modelled on Terraform's tfdiags: validation collects *all* problems (each with `file:line`) and the
CLI prints them and exits 1. Nothing here may hold a secret value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class SourceLoc:
    """Where something was declared: a manifest file and a 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Diagnostic:
    message: str
    loc: SourceLoc | None = None

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message


class KeyformError(Exception):
    """An error meant for the user: printed as-is, exit code 1, no traceback without -v."""

    def __init__(self, diagnostics: Iterable[Diagnostic] | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class StateError(KeyformError):
    """The state file (or its lock) cannot be used as it is."""


class LockError(StateError):
    """Another keyform process holds the state lock."""


class ProviderError(KeyformError):
    """A remote API refused or failed a call. `status` is the HTTP status (None: no response)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        # True when the request may have taken effect remotely (response lost after sending).
        self.ambiguous = ambiguous
        # the created key's id when an ambiguous create's reply named it (keyform.providers.salvage)
        self.remote_id: str | None = None


class SinkError(KeyformError):
    """A sink could not store, read or remove a secret."""


class LockLostError(StateError):
    """This command's state lock was taken from it (its lock file removed); it must not write."""
