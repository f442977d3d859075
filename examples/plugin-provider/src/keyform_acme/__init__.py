"""keyform-acme: the `acme` provider type and the `acme-vault` sink type, as keyform plug-ins.

keyform loads `PROVIDER` / `SINK` through the entry points declared in pyproject.toml, only when a
manifest names the type (or `keyform providers` lists every type). This module is light: the HTTP
client is imported when a provider is opened.
"""

from __future__ import annotations

from typing import Any

from keyform.typeregistry import ProviderType, SinkType


def _open_provider(config: Any, token: str, org_id: str | None, *, timeout: float = 30.0, transport: Any = None,
                   max_retries: int = 5) -> Any:
    from keyform_acme.client import AcmeProvider

    return AcmeProvider(config.name, config.base_url, token, config.options["project"], timeout=timeout,
                        transport=transport, max_retries=max_retries, deadline=config.deadline,
                        max_body=config.max_response_bytes)


PROVIDER = ProviderType(
    name="acme",
    open=_open_provider,
    returns_secret=True,
    attributes=("name", "scopes"),
    updatable=frozenset({"scopes"}),
    expiry_updatable=False,
    remote_attributes=frozenset({"name", "scopes"}),
    attribute_defaults={"scopes": ()},
    default_base_url=None,  # no public default: base_url is required
    options_schema={
        "required": ["project"],
        "properties": {
            "project": {"description": "The Acme project the keys belong to.", "type": "string",
                        "pattern": "^[a-z][a-z0-9-]{0,62}$",
                        "errorMessage": "not a valid Acme project (lowercase letters, digits, '-')"},
        },
    },
    key_schema={
        "properties": {
            "name": {"description": "acme: the key's label. Default: the address.", "type": "string", "minLength": 1},
            "scopes": {"description": "acme: what the key may do (updatable in place).", "type": "array",
                       "items": {"enum": ["read", "write", "admin"]}},
        },
    },
    description="Acme API keys (example plug-in: paginated list, scopes updatable)",
)


def _open_sink(config: Any) -> Any:
    from keyform_acme.vault import VaultSink

    return VaultSink(config.options["dir"])


def _entry_name_problem(config: Any, name: str) -> str | None:
    from keyform_acme.vault import name_problem

    return name_problem(name)


SINK = SinkType(
    name="acme-vault",
    required="dir",
    open=_open_sink,
    entry_name_problem=_entry_name_problem,
    options_schema={"required": ["dir"],
                    "properties": {"dir": {"description": "The vault directory, relative to the manifest.",
                                           "type": "string", "minLength": 1}}},
    path_options=("dir",),
    description="an example sink plug-in: one 0600 file per secret under <dir>/<entry>.secret",
)
