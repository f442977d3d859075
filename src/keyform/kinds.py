"""What the planner needs to know about each provider type, as plain data (no I/O, no httpx).

`updatable` attributes can change in place; every other attribute (and, where `expiry_updatable`
is false, the expiry) is create-only, so a change means replace.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderKind:
    type: str
    returns_secret: bool  # the create call hands out a secret (which keyform must sink)
    attributes: tuple[str, ...]  # non-secret attributes, in display order
    updatable: frozenset[str]
    expiry_updatable: bool
    secret_inputs: tuple[str, ...] = ()  # write-only inputs (fingerprinted, never stored)
    remote_attributes: frozenset[str] = frozenset()  # attributes a list call reports back
    reports_usage: bool = False  # a listing says when each key was last used (`last_used_at`)


KINDS: dict[str, ProviderKind] = {
    "questra": ProviderKind(
        type="questra",
        returns_secret=True,
        attributes=("name",),
        updatable=frozenset(),
        expiry_updatable=False,
        remote_attributes=frozenset({"name"}),
        reports_usage=True,
    ),
    "textql": ProviderKind(
        type="textql",
        returns_secret=False,
        attributes=("description", "hosts", "headers", "query_params", "api_provider", "auth_type",
                    "is_private"),
        updatable=frozenset({"description", "hosts", "headers", "query_params", "auth_type"}),
        expiry_updatable=True,
        secret_inputs=("auth_value", "auth_value_extra"),
        remote_attributes=frozenset({"description", "hosts", "headers", "query_params", "api_provider",
                                     "auth_type"}),
    ),
}


def kind(provider_type: str) -> ProviderKind:
    return KINDS[provider_type]


def register(k: ProviderKind) -> None:
    """Add a kind known only at load time (a `rest` definition's, as `rest:NAME`)."""
    KINDS[k.type] = k
