"""Providers: one class per remote API type, behind the four-call `keyform.remote.Provider` seam.

Each type is described by a `ProviderType` (`questra_type.py`, `textql_type.py`, or a plug-in) found
through `keyform.typeregistry`. Importing this package imports nothing heavy; `QuestraProvider` and
`TextQLProvider` (and httpx) are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keyform.errors import PLUGIN_FAILURES, KeyformError, ProviderError
from keyform.model import ProviderConfig
from keyform.remote import Provider
from keyform.typeregistry import TypeLoadError, find_provider_type

if TYPE_CHECKING:
    from keyform.providers.questra import QuestraProvider
    from keyform.providers.textql import TextQLProvider

__all__ = ["QuestraProvider", "TextQLProvider", "open_provider"]


def __getattr__(name: str) -> Any:
    if name == "QuestraProvider":
        from keyform.providers.questra import QuestraProvider

        return QuestraProvider
    if name == "TextQLProvider":
        from keyform.providers.textql import TextQLProvider

        return TextQLProvider
    raise AttributeError(name)


def open_provider(config: ProviderConfig, token: str, org_id: str | None, *, timeout: float = 30.0,
                  transport: Any = None, max_retries: int = 5) -> Provider:
    """A provider for `config`, opened by its type's factory; `token` and `org_id` are already
    resolved by the caller."""
    try:
        ptype = find_provider_type(config.type)
    except TypeLoadError as exc:
        raise ProviderError(f"{config.name}: {exc}") from None
    if ptype is None:
        raise ProviderError(f"{config.name}: unknown provider type {config.type!r}")
    if ptype.origin == "built-in":
        return ptype.open(config, token, org_id, timeout=timeout, transport=transport, max_retries=max_retries)
    # a plug-in or a definition: paced by its instance's limiter, its exceptions said in one line
    from keyform.providers.foreign import ForeignProvider, failure
    from keyform.providers.ratelimit import Limiter, offering

    limiter = Limiter(config.name, config.rate_limit)
    with offering(limiter) as offer:
        try:
            provider = ptype.open(config, token, org_id, timeout=timeout, transport=transport,
                                  max_retries=max_retries)
        except KeyformError:
            raise
        except PLUGIN_FAILURES as exc:
            raise failure(config.name, "open", ptype, exc) from None
    if provider is None or not all(callable(getattr(provider, call, None))
                                   for call in ("list", "create", "update", "delete", "close")):
        got = "None" if provider is None else f"a {type(provider).__name__}"
        raise ProviderError(f"{config.name}: open: the provider type {ptype.name!r} ({ptype.origin}) broke the "
                            f"provider interface: its open() returned {got}, not a provider with list, create, "
                            "update, delete and close (docs/providers.md)")
    own = getattr(provider, "limiter", None)
    if isinstance(own, Limiter):  # its HttpClient's, made by the type (a definition's: from `rate_limit`)
        return ForeignProvider(provider, ptype, own, per_call=False, deadline=config.deadline)
    return ForeignProvider(provider, ptype, limiter, per_call=not offer.taken, deadline=config.deadline)
