"""What the planner needs to know about each provider type: its `ProviderType` (no I/O, no httpx).

`updatable` attributes can change in place; every other attribute (and, where `expiry_updatable`
is false, the expiry) is create-only, so a change means replace. The data lives in each type's
module (keyform.typeregistry); this module is the planner's short name for it.
"""

from __future__ import annotations

from keyform.errors import KeyformError
from keyform.typeregistry import ProviderType, TypeLoadError, find_provider_type, provider_type

ProviderKind = ProviderType


def kind(provider_type_name: str) -> ProviderType:
    """The type's capabilities. A type the state names but no installed package provides any more
    (an uninstalled plug-in) is a KeyformError saying so, not a KeyError."""
    try:
        return provider_type(provider_type_name)
    except KeyError:
        raise KeyformError(f"provider type {provider_type_name!r} is not available: neither built in nor "
                           "installed (`keyform providers` lists the types; reinstall its plug-in package)") from None
    except TypeLoadError as exc:
        raise KeyformError(str(exc)) from None


def name_attribute(provider_type_name: str) -> str:
    """The attribute that names a key of this type (`ProviderType.name_attribute`); "name" for a
    type that is not available, so a policy or a report over an old state still reads."""
    try:
        found = find_provider_type(provider_type_name)
    except TypeLoadError:
        return "name"
    return found.name_attribute if found is not None else "name"


def matched_attributes(k: ProviderType) -> list[str]:
    """The attributes a create journals as its `match` (what it sent of each), by which recovery
    tells the key it made: every one a list call reports back, but `headers` (a value may be a
    secret). A journaled create that names none of them is none keyform wrote (`recovery`)."""
    return sorted(n for n in k.remote_attributes if n != "headers")
