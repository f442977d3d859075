"""The `textql` provider type: what keyform knows about TextQL, as data, and its factory.

Light on purpose (no httpx): `validate` reads this; the Connect client in `textql.py` is imported
only when a provider instance is opened.
"""

from __future__ import annotations

from typing import Any

from keyform.model import ProviderConfig
from keyform.remote import Provider
from keyform.typeregistry import ProviderType

# The attributes UpdateApiAccessKeyRequest changes, in wire order.
UPDATABLE = ("description", "hosts", "headers", "query_params", "auth_type")


def _open(config: ProviderConfig, token: str, org_id: str | None, *, timeout: float = 30.0,
          transport: Any = None, max_retries: int = 5) -> Provider:
    from keyform.providers.ratelimit import Limiter
    from keyform.providers.textql import TextQLProvider

    return TextQLProvider(config.name, config.base_url, token, timeout=timeout, transport=transport,
                          max_retries=max_retries, deadline=config.deadline, max_body=config.max_response_bytes,
                          limiter=Limiter(config.name, config.rate_limit))


TYPE = ProviderType(
    name="textql",
    open=_open,
    returns_secret=False,
    attributes=("description", "hosts", "headers", "query_params", "api_provider", "auth_type", "is_private"),
    updatable=frozenset(UPDATABLE),
    expiry_updatable=True,
    secret_inputs=("auth_value", "auth_value_extra"),
    remote_attributes=frozenset({"description", "hosts", "headers", "query_params", "api_provider", "auth_type"}),
    attribute_defaults={"description": "", "hosts": (), "headers": {}, "query_params": {}, "api_provider": "",
                        "auth_type": "token", "is_private": False},
    default_base_url="https://app.textql.com",
    name_attribute="description",
    description="TextQL API access keys (Connect protocol; stores a credential, issues no secret)",
)
