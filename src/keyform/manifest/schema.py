"""Validating a parsed manifest against `schemas/manifest.schema.json`, with `file:line` messages.

The schema is the single source of truth. A compiled fast checker (`fastcheck`) answers "valid?"
for the whole document; only when it says no does jsonschema run, on just the failing entries, and
each of its errors is rephrased for humans and placed at the line of the offending key. Messages
never echo a value at a secret position (provider tokens, auth values).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from keyform.errors import Diagnostic
from keyform.manifest.document import YamlDocument, YamlPath
from keyform.manifest.fastcheck import SCHEMA_DIR, Check, bundled_check, bundled_schema
from keyform.manifest.plugintypes import check_plugin_entries, plugin_provider_names, schema_types
from keyform.manifest.sources import dotted

if TYPE_CHECKING:  # jsonschema is imported only when a manifest is invalid
    from jsonschema import Draft202012Validator, ValidationError

SCHEMA_PATH = SCHEMA_DIR / "manifest.schema.json"
# Sections that map names to entries; a failing document is re-checked entry by entry.
ENTRY_SECTIONS = ("providers", "sinks", "keys")
# (section, field) of the values that must be secret references, never literals.
SECRET_FIELDS = frozenset({("providers", "token"), ("keys", "auth_value"), ("keys", "auth_value_extra"),
                           ("state", "dsn"), ("state", "fingerprint_key")})
# ...of which these take only {env} or {file} (no secret_of)
CREDENTIAL_FIELDS = frozenset({("providers", "token"), ("state", "dsn"), ("state", "fingerprint_key")})
# Values never echoed in a message: secrets, and URLs (which may embed credentials).
NO_ECHO_FIELDS = SECRET_FIELDS | {("providers", "base_url")}
_JSON_TYPES = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number", type(None): "null"}
_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "boolean": "a boolean",
               "integer": "an integer", "number": "a number", "null": "null"}


def manifest_schema() -> dict[str, Any]:
    return bundled_schema(SCHEMA_PATH.name)


def _fast_check() -> Check:
    return bundled_check(SCHEMA_PATH.name)


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    """jsonschema, for the diagnostics of a document the fast check refused. Imported and built only
    then: importing it and checking the schema against its metaschema costs ~0.3 s per run."""
    from jsonschema import Draft202012Validator

    from keyform.manifest.fastcheck import ecma_validator_class

    schema = manifest_schema()
    Draft202012Validator.check_schema(schema)
    return ecma_validator_class()(schema)


def schema_problems(doc: YamlDocument,
                    plugin_providers: Mapping[str, str] | None = None) -> list[tuple[YamlPath, Diagnostic]]:
    """Every schema violation in one document as (path, diagnostic), deduplicated, in line order.
    Entries of plug-in types (and keys of the workspace's `plugin_providers`) are checked by their
    type's own schema (`keyform.manifest.plugintypes`)."""
    value = doc.value
    found: dict[tuple[int, str], tuple[YamlPath, Diagnostic]] = {}
    if uses_plugins(value, plugin_providers):
        plugins = check_plugin_entries(value, manifest_schema(), {**plugin_provider_names(value),
                                                                  **(plugin_providers or {})})
        for path, message in plugins.problems:
            found.setdefault((doc.loc(path).line, message), (path, Diagnostic(message, doc.loc(path))))
        for path, message in describe_errors((e for _, e in plugins.jsonschema_problems), doc):
            loc = doc.loc(path)
            found.setdefault((loc.line, message), (path, Diagnostic(message, loc)))
        value = _without(value, plugins.checked)
    elif doc.schema_checked:  # a cached parse: it passed this schema when it was stored
        return []
    fast = _fast_check()
    if fast(value):
        return [found[k] for k in sorted(found)]
    validator = _validator()
    for path, message in describe_errors(validator.iter_errors(_failing_part(value, fast)), doc):
        loc = doc.loc(path)
        found.setdefault((loc.line, message), (path, Diagnostic(message, loc)))
    return [found[k] for k in sorted(found)]


def uses_plugins(value: Any, plugin_providers: Mapping[str, str] | None = None) -> bool:
    """True when part of the document is checked by a plug-in type's schema, not the built-in one."""
    return bool(plugin_providers or plugin_provider_names(value) or _foreign_sinks(value))


def _foreign_sinks(value: Any) -> bool:
    sinks = value.get("sinks") if isinstance(value, dict) else None
    return isinstance(sinks, dict) and any(isinstance(e, dict) and isinstance(e.get("type"), str)
                                           and e["type"] not in schema_types()[1] for e in sinks.values())


def _without(value: Any, paths: set[YamlPath]) -> Any:
    """The document without the entries at `paths` (section, name) that the plug-in pass checked."""
    if not paths or not isinstance(value, dict):
        return value
    out = dict(value)
    for section in {p[0] for p in paths}:
        if isinstance(out.get(section), dict):
            out[section] = {n: e for n, e in out[section].items() if (section, n) not in paths}
    return out


def _failing_part(value: Any, fast: Check) -> Any:
    """The document with only the entries of the big sections that fail on their own."""
    if not isinstance(value, dict):
        return value
    part = dict(value)
    for section in ENTRY_SECTIONS:
        entries = value.get(section)
        if isinstance(entries, dict) and len(entries) > 1:
            part[section] = {name: entry for name, entry in entries.items()
                             if not fast({"version": 1, section: {name: entry}})}
    return part


def describe_errors(errors: Iterable[ValidationError], doc: YamlDocument) -> Iterator[tuple[YamlPath, str]]:
    """(path to point at, message) for jsonschema's errors in `doc`: one message per mistake."""
    kept = _one_per_mistake(errors)
    stood_in_for = _stood_in_for(kept)
    for error in kept:
        yield from _describe(error, doc, stood_in_for)


def _one_per_mistake(errors: Iterable[ValidationError]) -> list[ValidationError]:
    """The errors, less those at a path whose value has the wrong type: `version: "1"` is "expected
    an integer, got a string", not that and "must be 1" too (one mistake, one message)."""
    errors = list(errors)
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    return [e for e in errors if e.validator == "type" or tuple(e.absolute_path) not in mistyped]


def _stood_in_for(errors: list[ValidationError]) -> set[tuple[YamlPath, str]]:
    """The missing required fields an unknown field of the same entry may stand for, which are not
    reported: `{type: file, path: x}` is one mistake (a field under the wrong name), not "unknown
    field 'path' (a file sink takes: dir)" and "missing required field 'dir'" too. An unknown field
    stands for the missing field it is close to ("did you mean 'name'?"); those close to no field
    stand for the rest when there are as many of them. A misspelt optional field stands for none."""
    extra = {tuple(e.absolute_path): (e.instance, sorted(e.schema.get("properties", {}))) for e in errors
             if e.validator == "additionalProperties" and isinstance(e.schema, dict)}
    out: set[tuple[YamlPath, str]] = set()
    for e in errors:
        path = tuple(e.absolute_path)
        if e.validator != "required" or path not in extra or not isinstance(e.instance, dict):
            continue
        missing = [n for n in e.validator_value if n not in e.instance] if isinstance(e.validator_value, list) else []
        instance, allowed = extra[path]
        closest = [difflib.get_close_matches(f, allowed, n=1) for f in _extra_fields(instance, allowed)]
        named = {c[0] for c in closest if c and c[0] in missing}
        rest = [n for n in missing if n not in named]
        out |= {(path, n) for n in named}
        if len([c for c in closest if not c]) >= len(rest):
            out |= {(path, n) for n in rest}
    return out


def _field_of(path: YamlPath) -> tuple[Any, Any] | None:
    """`("keys", "ci-bot", "auth_value")` → ("keys", "auth_value"): an entry's own field; a
    workspace-wide setting (`("state", "dsn")`) is its own field."""
    if len(path) == 2 and path[0] == "state":
        return (path[0], path[1])
    return (path[0], path[2]) if len(path) == 3 else None


def _show(value: Any, path: YamlPath, doc: YamlDocument | None = None) -> str:
    """A short rendering of a value for a message, a number as `doc` writes it (`0x1F`, not 31);
    never the value at a secret position (the env name or file path *inside* a reference is fine)."""
    if _field_of(path) in NO_ECHO_FIELDS:
        return "the value"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and doc is not None:
        text = doc.written(path, value)
    else:
        text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _prefix(path: YamlPath) -> str:
    return f"{dotted(path)}: " if path else ""


def _describe(error: ValidationError, doc: YamlDocument | None = None,
              stood_in_for: AbstractSet[tuple[YamlPath, str]] = frozenset()) -> Iterator[tuple[YamlPath, str]]:
    """(path to point at, human message) for one jsonschema error in `doc` (numbers are shown as it
    writes them), saying nothing of the missing fields an unknown field stood in for."""
    path: YamlPath = tuple(error.absolute_path)
    schema: Any = error.schema
    instance: Any = error.instance
    kind: Any = error.validator
    expected: Any = error.validator_value
    custom = schema.get("errorMessage") if isinstance(schema, dict) else None
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {})) if isinstance(schema, dict) else []
        for field in _extra_fields(instance, allowed):
            yield (*path, field), _unknown_field(path, field, allowed, schema)
    elif kind == "required":
        missing = [n for n in expected if n not in instance and (path, n) not in stood_in_for]
        for name in missing:
            if path:
                yield path, f"{dotted(path)}: missing required field {name!r}"
            else:
                yield path, f"missing required top-level field {name!r}" + (
                    " (add `version: 1`)" if name == "version" else "")
    elif kind == "type":
        yield path, _type_message(path, instance, expected, doc, schema)
    elif kind in ("pattern", "const", "minProperties", "maxProperties") and custom:
        # A bad *name* (propertyNames) is reported at the name's own line.
        where = (*path, instance) if "propertyNames" in error.absolute_schema_path else path
        yield where, _prefix(path) + _custom_message(custom, kind, _show(instance, where, doc))
    elif kind == "enum":
        options = ", ".join(str(o) for o in expected)
        yield path, f"{_prefix(path)}{_show(instance, path, doc)} is not one of: {options}"
    elif kind == "minLength":
        yield path, f"{_prefix(path)}must not be empty"
    elif kind == "false":
        yield path, f"{_prefix(path)}this field is not allowed here"
    else:  # a validator the schema gained later: fall back to jsonschema's own words
        yield path, f"{_prefix(path)}{_show(instance, path, doc)} is invalid ({kind})"


def _custom_message(custom: str, kind: str, shown: str) -> str:
    """A schema `errorMessage` in keyform's words. Editors (yaml-language-server) show the text
    as it is, so it names no placeholder: a pattern's message says what the value is not ("not a
    valid duration (…)") and keyform puts the value in front ("'90x' is not a valid duration (…)");
    other messages ("must be 1") read the same in both. A `{value}` still works, for older schemas."""
    if "{value}" in custom:
        return custom.replace("{value}", shown)
    return f"{shown} is {custom}" if kind == "pattern" else custom


def _extra_fields(instance: Any, allowed: list[str]) -> list[str]:
    return [k for k in instance if k not in allowed] if isinstance(instance, dict) else []


def _unknown_field(path: YamlPath, field: str, allowed: list[str], schema: Mapping[str, Any]) -> str:
    if not path:
        message = f"unknown top-level section {field!r}"
    else:
        message = f"{dotted(path)}: unknown field {field!r}"
    close = difflib.get_close_matches(field, allowed, n=1)
    if close:
        return f"{message} (did you mean {close[0]!r}?)"
    title = schema.get("title")
    names = ", ".join(a for a in allowed if a != "type")
    if title and names:
        return f"{message} (a {title} takes: {names})"
    return message


def _type_message(path: YamlPath, instance: Any, expected: Any, doc: YamlDocument | None = None,
                  schema: Any = None) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    # An empty section (null) is allowed but not worth suggesting.
    want = " or ".join(_TYPE_WORDS.get(n, n) for n in names if n != "null" or len(names) == 1)
    field = _field_of(path)
    if field in SECRET_FIELDS and isinstance(instance, (str, int, float)):
        refs = "{env: NAME} or {file: PATH}" if field in CREDENTIAL_FIELDS else \
            "{env: NAME}, {file: PATH} or {secret_of: ADDRESS}"
        return f"{dotted(path)}: a literal secret is not allowed here; use {refs}"
    if not path:
        return f"the top level must be a mapping of sections, not {_kind(instance)}"
    message = f"{dotted(path)}: expected {want}, got {_kind(instance)}"
    if ("string" in names and isinstance(instance, (int, float)) and not isinstance(instance, bool)
            and field not in NO_ECHO_FIELDS):
        # the text as written: `0123` is the integer 83, and quoting `83` would change the value
        written = doc.written(path, instance) if doc is not None else None
        pattern = schema.get("pattern") if isinstance(schema, dict) else None
        if written is not None and isinstance(pattern, str) and not _matches(pattern, written):
            # quoting would not help (`expires_in: 90` needs a unit): say what the value must be
            custom = schema.get("errorMessage")
            return f"{dotted(path)}: {_custom_message(custom, 'pattern', written)}" if isinstance(custom, str) \
                else message
        message += f" (quote it: '{written}')" if written is not None else " (quote it as written)"
    elif ("integer" in names and "string" not in names and isinstance(instance, str)
          and re.fullmatch(r"\s*[0-9]{1,9}\s*", instance) and field not in NO_ECHO_FIELDS):
        message += f" (write it without quotes: {instance.strip()})"  # `version: "1"`
    return message


def _matches(pattern: str, text: str) -> bool:
    """Whether `text` matches a schema `pattern` (an unusual one Python cannot read: assume it does)."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return True
