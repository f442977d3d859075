"""Providers: one class per remote API type, behind the four-call `keyform.remote.Provider` seam.

Importing this package imports httpx; the CLI imports it lazily so `keyform --version` stays fast.
"""

from __future__ import annotations

import httpx

from keyform.errors import ProviderError
from keyform.model import ProviderConfig
from keyform.providers.questra import QuestraProvider
from keyform.providers.ratelimit import Limiter
from keyform.providers.textql import TextQLProvider
from keyform.remote import Provider

__all__ = ["QuestraProvider", "TextQLProvider", "open_provider"]


def open_provider(config: ProviderConfig, token: str, org_id: str | None, *, timeout: float = 30.0,
                  transport: httpx.BaseTransport | None = None, max_retries: int = 5) -> Provider:
    """A provider for `config`; `token` and `org_id` are already resolved by the caller. Its calls
    share one `Limiter`: the configured `rate_limit`, or one learned from the API's 429s."""
    limiter = Limiter(config.name, config.rate_limit)
    if config.type == "questra":
        return QuestraProvider(config.name, config.base_url, token, org_id, timeout=timeout,
                               transport=transport, max_retries=max_retries, deadline=config.deadline,
                               max_body=config.max_response_bytes, limiter=limiter)
    if config.type == "textql":
        return TextQLProvider(config.name, config.base_url, token, timeout=timeout, transport=transport,
                              max_retries=max_retries, deadline=config.deadline,
                              max_body=config.max_response_bytes, limiter=limiter)
    if config.type.startswith("rest:"):
        from keyform.manifest.restglue import resolve_options
        from keyform.providers.rest import RestProvider
        return RestProvider(config.name, config.definition, config.base_url, token, resolve_options(config),
                            timeout=timeout, transport=transport, max_retries=max_retries,
                            deadline=config.deadline, max_body=config.max_response_bytes, limiter=limiter)
    raise ProviderError(f"{config.name}: unknown provider type {config.type!r}")
