"""What the remote APIs say: plain values crossing the provider seam.

A provider turns wire JSON into RemoteKey (attributes in manifest naming, never a secret) and
CreateResult (which holds the one-time secret in memory only; its repr hides it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import field
from typing import Any, Protocol

from keyform.records import record

# The longest issued secret keyform accepts, in characters. API keys are tens or hundreds of
# characters (a PEM private key a few thousand); what an API sends beyond this is no credential a
# sink should hold: a create answered with a longer one is refused as unusable, and its key revoked,
# as one answered with no secret (applier `_sink_new_secret`). It also bounds what the state records
# of a secret (`State.secret_fingerprint`: `<visible length>:<hmac>`, at most 5 digits, within the 6
# schemas/state.schema.json allows), and `redact.MAX_RAW`, the characters of a secret whose windows
# `redact` builds to mask it, is not less: every window of every secret keyform keeps is masked.
MAX_SECRET = 65536


@record(dict_init=True)  # a refresh builds one per listed key
class RemoteKey:
    id: str
    attrs: Mapping[str, Any]
    created_at: str | None = None
    expires_at: str | None = None
    revoked: bool = False
    expired: bool = False
    # usage, for provider types that report it (kinds.ProviderKind.reports_usage): `usage_reported`
    # says the listing carried the field at all; then `last_used_at` None means "never used"
    last_used_at: str | None = None
    usage_reported: bool = False


@record
class CreateResult:
    key: RemoteKey
    secret: str | None = field(default=None, repr=False)


@record
class CreateRequest:
    """Everything a create call needs. `secret_inputs` are resolved values (in memory only)."""

    address: str
    attrs: Mapping[str, Any]
    expires_at: str | None
    secret_inputs: Mapping[str, str] = field(default_factory=dict, repr=False)


@record
class InstanceSnapshot:
    """One provider instance's keys as listed, or why they could not be (`keys` is None).
    `clock_offset`: the API's clock minus keyform's, in seconds, from the `Date` header of its
    listing (None: not known). Its times (`last_used_at`, `created_at`) are on that clock."""

    keys: Mapping[str, RemoteKey] | None
    note: str | None = None
    clock_offset: float | None = None
    clock_note: str | None = None  # why the clock was not read, when the user should know (`ClockCheckSkipped`)


@record
class RemoteSnapshot:
    """The result of refresh: one list call per provider instance. `refreshed` is False for
    `--no-refresh` (then nothing is known remotely)."""

    instances: Mapping[str, InstanceSnapshot] = field(default_factory=dict)
    refreshed: bool = False

    def lookup(self, instance: str, remote_id: str) -> tuple[bool, RemoteKey | None]:
        """(known, key): known is False when that instance could not be listed."""
        snap = self.instances.get(instance)
        if snap is None or snap.keys is None:
            return False, None
        return True, snap.keys.get(remote_id)

    def clock_offset(self, instance: str) -> float | None:
        """The API's clock minus keyform's (seconds), as its listing's `Date` said; None if unknown."""
        snap = self.instances.get(instance)
        return snap.clock_offset if snap is not None else None


class Provider(Protocol):
    """One remote API instance. Four calls; everything else is built on them."""

    name: str

    def list(self) -> list[RemoteKey] | None:
        """All keys (no secrets), or None when the API has no list endpoint (404/405)."""

    def create(self, request: CreateRequest) -> CreateResult: ...

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        """Change updatable attributes in place (providers without updates never get this call)."""

    def delete(self, remote_id: str) -> None:
        """Revoke (Questra) or delete (TextQL). A key already gone is not an error."""

    def close(self) -> None: ...


def as_json(value: Any) -> Any:
    """An attribute value as JSON holds it (tuples as lists, recursively): a provider may give a
    tuple where the journal, the state and the API's JSON have a list, and the two must compare equal."""
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    return value


class ClockCheckSkipped(Exception):
    """Raised by a provider's `clock_offset()` that gave up reading the clock in a way the user
    should hear of (a plug-in's call that did not return in time: `ForeignProvider.clock_offset`);
    its text, one line naming the instance, becomes the plan's and the reports' note."""


def clock_offset(provider: object) -> float | None:
    """What `provider.clock_offset()` says, when it has one (optional: the built-in providers'
    `HttpClient` keeps it; a plug-in may offer it too); None when it does not, or says no number."""
    return clock_reading(provider)[0]


def clock_reading(provider: object) -> tuple[float | None, str | None]:
    """(`clock_offset(provider)`, the note saying why there is none when the check was skipped:
    `ClockCheckSkipped`'s text; None otherwise)."""
    fn = getattr(provider, "clock_offset", None)
    if not callable(fn):
        return None, None
    try:
        value = fn()
    except ClockCheckSkipped as exc:
        return None, str(exc)
    except Exception:  # an optional figure: a plug-in that fails to give it gives none
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None, None
    return float(max(-_MAX_OFFSET, min(_MAX_OFFSET, value))), None


SKEW_NOTED = 60.0  # seconds: a plan says so when an API's clock is at least this far from keyform's
_MAX_OFFSET = 10 * 366 * 86400.0  # a Date ten years off is as good as any: it only ever delays a verdict
