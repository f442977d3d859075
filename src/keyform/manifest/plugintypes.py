"""The schema pass for entries whose type the manifest schema does not describe: plug-in providers
and sinks (or a built-in type that brings its own schemas), and the keys of such providers.

`schemas/manifest.schema.json` knows only the built-in types. A provider or sink entry naming
another type is looked up in the type registry (which reads the `keyform.providers` /
`keyform.sinks` entry points only now, so a manifest of built-ins never touches them) and checked
against a schema made of the options every provider (or sink) takes plus the type's own
`options_schema`; a key of such a provider against the common key fields plus the type's
`key_schema`. The `$defs` of the manifest schema (`credentialRef`, `secretRef`, `duration`, ...)
can be referenced from a type's schemas. Problems come back as (path, message) for the caller to
place at `file:line`; a type that is unknown is left to the manifest schema (its `enum` message).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import field
from functools import lru_cache
from typing import Any

from keyform.manifest.document import YamlPath
from keyform.records import record
from keyform.typeregistry import (
    COMMON_KEY_FIELDS,
    ProviderType,
    SinkType,
    TypeLoadError,
    find_provider_type,
    find_sink_type,
)

# The options every provider takes, whatever its type (keyform reads them itself).
COMMON_PROVIDER_OPTIONS: Mapping[str, Any] = {
    "type": True,
    "token": {"$ref": "#/$defs/credentialRef"},
    "base_url": {"$ref": "#/$defs/baseUrlSetting"},
    "deadline": {"$ref": "#/$defs/duration"},
    "max_response_bytes": {"type": "integer"},
    "rate_limit": {"$ref": "#/$defs/rateLimit"},
}


@record(frozen=False)
class PluginEntries:
    """What the plug-in pass found in one document: the paths it checked (the manifest schema skips
    them) and the problems, as (path, message) to place at a line."""

    checked: set[YamlPath] = field(default_factory=set)
    problems: list[tuple[YamlPath, str]] = field(default_factory=list)
    jsonschema_problems: list[tuple[YamlPath, Any]] = field(default_factory=list)  # (prefix, ValidationError)


@lru_cache(maxsize=1)
def schema_types() -> tuple[frozenset[str], frozenset[str]]:
    """(provider types, sink types) that schemas/manifest.schema.json describes itself; every other
    type (a plug-in, or a built-in that brings its own `options_schema`) is checked here."""
    from keyform.manifest.schema import manifest_schema  # schema imports this module

    defs = manifest_schema()["$defs"]
    return (frozenset(defs["provider"]["properties"]["type"]["enum"]),
            frozenset(defs["sink"]["properties"]["type"]["enum"]))


def plugin_provider_names(value: Any) -> dict[str, str]:
    """{provider name: type} of the providers in a parsed document whose type the manifest schema
    does not describe."""
    found: dict[str, str] = {}
    providers = value.get("providers") if isinstance(value, dict) else None
    if isinstance(providers, dict):
        for name, entry in providers.items():
            ptype = entry.get("type") if isinstance(entry, dict) else None
            if isinstance(ptype, str) and ptype not in schema_types()[0]:
                found[str(name)] = entry["type"]
    return found


def check_plugin_entries(value: Any, manifest_schema: Mapping[str, Any],
                         plugin_providers: Mapping[str, str]) -> PluginEntries:
    """Check every plug-in entry of one document. `plugin_providers` names the plug-in providers of
    the whole workspace (a key may use a provider declared in another file)."""
    out = PluginEntries()
    if not isinstance(value, dict):
        return out
    defs = manifest_schema.get("$defs", {})
    for name, entry, type_name in _typed_entries(value, "providers", schema_types()[0]):
        path: YamlPath = ("providers", name)
        ptype = _find(find_provider_type, type_name, (*path, "type"), out)
        if ptype is not None:
            out.checked.add(path)
            _validate(entry, _provider_schema(ptype), defs, path, type_name, out)
    for name, entry, type_name in _typed_entries(value, "sinks", schema_types()[1]):
        path = ("sinks", name)
        stype = _find(find_sink_type, type_name, (*path, "type"), out)
        if stype is not None:
            out.checked.add(path)
            _validate(entry, _sink_schema(stype), defs, path, type_name, out)
    keys = value.get("keys")
    if isinstance(keys, dict):
        key_schema = defs.get("key", {})
        for name, entry in keys.items():
            provider = entry.get("provider") if isinstance(entry, dict) else None
            if not isinstance(provider, str) or provider not in plugin_providers:
                continue
            try:
                ptype = find_provider_type(plugin_providers[provider])
            except TypeLoadError:
                ptype = None  # reported at the provider
            out.checked.add(("keys", name))
            if ptype is not None:
                _validate(entry, _key_schema(ptype, key_schema), defs, ("keys", name), ptype.name, out)
    return out


def _typed_entries(value: Mapping[str, Any], section: str,
                   builtin: frozenset[str]) -> Iterator[tuple[str, dict[str, Any], str]]:
    entries = value.get(section)
    if not isinstance(entries, dict):
        return
    for name, entry in entries.items():
        if isinstance(entry, dict) and isinstance(entry.get("type"), str) and entry["type"] not in builtin:
            yield name, entry, entry["type"]


def _find(finder: Any, type_name: str, where: YamlPath, out: PluginEntries) -> Any:
    try:
        return finder(type_name)
    except TypeLoadError as exc:
        out.checked.add(where[:2])
        out.problems.append((where, f"{'.'.join(map(str, where))}: {exc}"))
        return None


def _provider_schema(ptype: ProviderType) -> dict[str, Any]:
    own = dict(ptype.options_schema or {})
    return {"title": f"{ptype.name} provider", "type": "object",
            "required": ["type", "token", *own.get("required", [])], "additionalProperties": False,
            "properties": {**COMMON_PROVIDER_OPTIONS, **own.get("properties", {})}}


def _sink_schema(stype: SinkType) -> dict[str, Any]:
    own = dict(stype.options_schema or {})
    return {"title": f"{stype.name} sink", "type": "object", "required": ["type", *own.get("required", [])],
            "additionalProperties": False, "properties": {"type": True, **own.get("properties", {})}}


def _key_schema(ptype: ProviderType, builtin_key: Mapping[str, Any]) -> dict[str, Any]:
    own = dict(ptype.key_schema or {})
    common = {f: builtin_key.get("properties", {}).get(f, True) for f in COMMON_KEY_FIELDS}
    attributes = own.get("properties", {name: True for name in (*ptype.attributes, *ptype.secret_inputs)})
    return {"title": f"{ptype.name} key", "type": "object", "required": ["provider", *own.get("required", [])],
            "additionalProperties": False, "properties": {**common, **attributes}}


def _validate(entry: Any, schema: dict[str, Any], defs: Mapping[str, Any], path: YamlPath, type_name: str,
              out: PluginEntries) -> None:
    """Validate `entry` (at `path`) with jsonschema, placing each error under `path`. `type_name`
    names the type whose schema it is (a key entry has no `type`: it names its provider)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    from keyform.manifest.fastcheck import ecma_validator_class

    # wrap the entry in the document's shape so error paths (and secret-field rules) read as usual
    section, name = path
    wrapped = {"$defs": dict(defs), "type": "object",
               "properties": {section: {"type": "object", "additionalProperties": schema}}}
    try:
        Draft202012Validator.check_schema(wrapped)
        errors = list(ecma_validator_class()(wrapped).iter_errors({section: {name: entry}}))
    except SchemaError as exc:
        out.problems.append((path, f"{section}.{name}: the {type_name} type's own schema is invalid: "
                                   f"{exc.message}"))
        return
    except Exception as exc:  # e.g. a $ref the type's schema cannot resolve
        out.problems.append((path, f"{section}.{name}: the {type_name} type's own schema cannot be "
                                   f"used: {type(exc).__name__}"))
        return
    for error in errors:
        out.jsonschema_problems.append((path, error))
