"""Diagnostics: every message for the user is a `Diagnostic` with a severity, an error or a warning.

Modelled on Terraform's tfdiags: validation collects *all* problems (each with `file:line`); a
failure is a KeyformError carrying its error diagnostics (the CLI prints them and exits 1); a
warning is a Diagnostic of severity WARNING that an operation returns (or a Session collects)
and the CLI prints through the same place (`keyform.render.views`). Nothing here may hold a
secret value.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from keyform.records import record


@record(order=True, dict_init=True)  # one per key (KeySpec.loc)
class SourceLoc:
    """Where something was declared: a manifest file and a 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Severity(enum.Enum):
    """How bad a diagnostic is; its value is the word the CLI prints before it (`Error: ...`)."""

    ERROR = "Error"
    WARNING = "Warning"


@record
class Diagnostic:
    message: str
    loc: SourceLoc | None = None
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}" if self.loc else self.message


Diagnostics = list[Diagnostic]


def warning(message: str, loc: SourceLoc | None = None) -> Diagnostic:
    """A warning: printed as `Warning: message`; the command goes on."""
    return Diagnostic(message, loc, Severity.WARNING)


def warnings(messages: Iterable[str]) -> Diagnostics:
    return [warning(m) for m in messages]


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


class KeyformError(Exception):
    """An error meant for the user: printed as-is, exit code 1, no traceback without -v."""

    def __init__(self, diagnostics: Iterable[Diagnostic] | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class StateError(KeyformError):
    """The state file (or its lock) cannot be used as it is."""


class JournalError(StateError):
    """The apply journal left by an interrupted apply cannot be acted on as it is. `record` is the
    index, in the journal as read, of the record at fault: the caller names its place (the backend's
    `journal_place`: `file:line` for a local journal)."""

    def __init__(self, message: str, record: int) -> None:
        super().__init__(message)
        self.record = record


class LockError(StateError):
    """Another keyform process holds the state lock."""


class LockUnwritableError(StateError):
    """The state lock cannot be made where the state is: the directory is read-only to this user (a
    pull request's checkout, a read-only mount). `plan` goes on without it (`operations.session`)."""


class ProviderError(KeyformError):
    """A remote API refused or failed a call. `status` is the HTTP status (None: no response).

    The call did not take effect remotely, except for its subclass `AmbiguousProviderError`.
    `ProviderError(..., ambiguous=True)` (the plug-in contract, docs/providers.md) constructs
    that subclass; `ambiguous` is then True, a read-only class attribute."""

    ambiguous = False

    def __new__(cls, message: str, *, status: int | None = None, code: str | None = None,
                retry_after: float | None = None, ambiguous: bool = False) -> ProviderError:
        if ambiguous and not issubclass(cls, AmbiguousProviderError):
            cls = AmbiguousProviderError
        return super().__new__(cls, message)

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        # the created key's id when an ambiguous create's reply named it (keyform.providers.salvage)
        self.remote_id: str | None = None


def is_failure(status: int) -> bool:
    """A refused token (401, 407), a missing permission (403), a rate refusal (429) or a server
    failure (5xx): never a sign that nothing is there, whatever its body says (`not_found` included:
    a gateway or a failing server may say anything), so never a delete's "already gone"."""
    return status in (401, 403, 407, 429) or status >= 500


# What a plug-in's (or a definition's) code may raise that is its own failure, to be reported as
# one line naming it: any Exception, and also a library's `sys.exit()` or a generator's leaked
# GeneratorExit, which would otherwise end keyform (or a worker) without a word. Never the user's
# Ctrl-C (KeyboardInterrupt): that stays keyform's to handle.
PLUGIN_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit, GeneratorExit)


class NotSentError(ProviderError):
    """A remote call given up before anything of it was sent: the apply was interrupted (one
    Ctrl-C or SIGTERM) while it waited for its turn. The applier reports its change as not started."""


class AmbiguousProviderError(ProviderError):
    """A call that may have taken effect remotely (sent, then its answer lost, unreadable, or a
    500/502/504): for a create, the key may exist, so it is never retried, and recovery looks for
    it (by `remote_id` when the lost answer still named it)."""

    ambiguous = True


class SinkError(KeyformError):
    """A sink could not store, read or remove a secret."""


class LockLostError(StateError):
    """This command's state lock was taken from it (its lock file removed); it must not write."""


class StateWriteError(StateError):
    """The state's store (the local backend's disk, the postgres database) failed to write a record of
    the apply journal. The applier starts no change after it (`ApplyReport.store_failed`) and says the
    store's own error once, at the end; this error, which each change in flight at the time fails
    with, only points there (`journal.Journal`). `nothing_sent`: it was the change's intent, the
    record written before any remote call, so the change did nothing and is reported as not started."""

    def __init__(self, message: str, *, nothing_sent: bool = False) -> None:
        super().__init__(message)
        self.nothing_sent = nothing_sent


class Overdue(KeyformError):
    """A plug-in's call (a provider's create, update, revoke or list; a sink's write, read, remove
    or scan) that did not return within its bound (`keyform.bounded`): keyform stopped waiting for
    it, and it may have been done. In an apply its change is left as a second Ctrl-C leaves one in
    flight: its journaled intent unresolved, for the next run to recover (a create's with an
    `abandoned` record saying it still ran: its key may be made later, `recovery.LATE_CREATE`)."""
