"""What the planner needs to know about each provider type: its `ProviderType` (no I/O, no httpx).

`updatable` attributes can change in place; every other attribute (and, where `expiry_updatable`
is false, the expiry) is create-only, so a change means replace. The data lives in each type's
module (keyform.typeregistry); this module is the planner's short name for it.
"""

from __future__ import annotations

from keyform.typeregistry import ProviderType, provider_type

ProviderKind = ProviderType


def kind(provider_type_name: str) -> ProviderType:
    return provider_type(provider_type_name)
