"""The `questra` provider type: what keyform knows about Questra, as data, and its factory.

Light on purpose (no httpx): `validate` reads this; the HTTP client in `questra.py` is imported
only when a provider instance is opened.
"""

from __future__ import annotations

from typing import Any

from keyform.model import ProviderConfig
from keyform.remote import Provider
from keyform.typeregistry import ProviderType


def _open(config: ProviderConfig, token: str, org_id: str | None, *, timeout: float = 30.0,
          transport: Any = None, max_retries: int = 5) -> Provider:
    from keyform.providers.questra import QuestraProvider
    from keyform.providers.ratelimit import Limiter

    return QuestraProvider(config.name, config.base_url, token, org_id, timeout=timeout,
                           transport=transport, max_retries=max_retries, deadline=config.deadline,
                           max_body=config.max_response_bytes,
                           limiter=Limiter(config.name, config.rate_limit))


TYPE = ProviderType(
    name="questra",
    open=_open,
    returns_secret=True,
    attributes=("name",),
    updatable=frozenset(),
    expiry_updatable=False,
    remote_attributes=frozenset({"name"}),
    default_base_url="https://api.questra.ai",
    reports_usage=True,  # each listed key's last_used_at
    description="Questra API keys (create returns the secret once; revoke keeps the key listed)",
)
