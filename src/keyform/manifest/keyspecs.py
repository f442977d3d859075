"""One `keys.ADDRESS` entry → `KeySpec`: provider, type-specific fields, expiry, rotation, sink.

The schema admits the union of every provider type's fields; which ones apply depends on the
provider the key names, so that check lives here. Cross-key checks (`secret_of`, cycles, two keys
writing one sink entry) are in `references`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from keyform.durations import MAX_YEAR, format_duration, format_time, parse_duration, parse_time
from keyform.errors import SourceLoc
from keyform.kinds import ProviderKind
from keyform.kinds import kind as provider_kind
from keyform.manifest.document import YamlDocument, YamlPath
from keyform.manifest.plugintypes import schema_types
from keyform.manifest.secretrefs import build_ref
from keyform.manifest.sources import Declaration, ManifestFile, Report, dotted, known_names
from keyform.model import (
    NEVER,
    Expiry,
    KeyLocator,
    KeySpec,
    ProviderConfig,
    Rotation,
    SecretOfRef,
    SecretRef,
    SinkConfig,
    SinkTarget,
    header_input,
)
from keyform.records import record
from keyform.sinks.registry import entry_name_rule
from keyform.typeregistry import COMMON_KEY_FIELDS

COMMON_FIELDS = COMMON_KEY_FIELDS


@record
class KeyContext:
    """What building a key needs from the rest of the workspace."""

    declared_providers: Mapping[str, Declaration]
    providers: Mapping[str, ProviderConfig]
    declared_sinks: Mapping[str, Declaration]
    sinks: Mapping[str, SinkConfig]
    default_sink: str | None
    now: datetime  # (no check reads it: an expires_at that has passed is the planner's to judge, per key)
    report: Report
    # per provider name: what every key of it shares, worked out for its first key (see `_facts`)
    provider_facts: dict[str, _ProviderFacts] = dataclasses.field(default_factory=dict, compare=False,
                                                                   repr=False)
    # per sink name: its type's entry-name rule (see `_entry_rule`)
    entry_rules: dict[str, Callable[[SinkConfig, str], str | None]] = dataclasses.field(
        default_factory=dict, compare=False, repr=False)


@record
class _ProviderFacts:
    """What building a key needs from its provider, the same for each of its keys: looked up once
    per provider name instead of once per key (10,000 keys name a dozen providers)."""

    provider: ProviderConfig
    kind: ProviderKind
    fields: frozenset[str]  # every field a key of the type takes
    # (attribute, default, how) in the type's order; `name`'s default (the address) is filled in
    # per key; how: _PLAIN, _NAME, _HEADERS or _ANY (see `_how`)
    defaults: tuple[tuple[str, Any, int], ...]


# Durations repeat across keys (`90d`, `14d`): parse each text once, and share the (frozen) values.
_duration = lru_cache(maxsize=256)(parse_duration)
_ZERO = timedelta(0)


@lru_cache(maxsize=256)
def _expires_in(text: str) -> Expiry:
    """`expires_in: TEXT` as an Expiry (ValueError for a text that is not a duration)."""
    return Expiry("in", duration=_duration(text), text=text)


# `expires_in` texts `_expiry` found clean (a duration longer than 0), with their Expiry: a key
# writing one of them (most keys: one team's `90d`) needs no call to check it again. At most 256.
_clean_expires_in: dict[str, Expiry] = {}


_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")  # compiled once: re.sub's cache lookup was half of each call


def upper_snake(address: str) -> str:
    """The default sink entry name: `ci-bot.v2` → `CI_BOT_V2`."""
    return _NOT_ALNUM.sub("_", address).upper()


def build_key(name: str, value: Any, source: ManifestFile, ctx: KeyContext) -> KeySpec | None:
    """The spec of key `name`, whose entry `source` declares as `value`, or None when it failed the
    schema or any check here (all reported). (No `Declaration` is made for a key built clean.)"""
    return build_keys(((source, {name: value}),), ctx).get(name)


def build_keys(groups: Iterable[tuple[ManifestFile, Mapping[str, Any]]], ctx: KeyContext,
               consumers: list[str] | None = None) -> dict[str, KeySpec]:
    """The specs of the keys of `groups` (each a file and the entries `{name: value}` it declares,
    as `Declarations.groups` gives them), by name, in their order: a key that failed the schema or
    any check here (all reported) is left out. `consumers`, when given, gets the address of each key
    built with a `secret_of` input, in the same order (`references.check_references` looks at
    those, found here as their inputs are made rather than by a pass over every key's inputs).

    One loop for all keys: what every key looks up (the report, the memos, its file's lines) is
    looked up once per loop or per file, and the common cases of `_sink_target` and `_rotation`
    are written inline (a call per key each was ~10 % of a 10,000-key build)."""
    keys: dict[str, KeySpec] = {}
    report = ctx.report
    diagnostics = report.diagnostics
    facts_of = ctx.provider_facts
    declared_sinks, sinks, entry_rules = ctx.declared_sinks, ctx.sinks, ctx.entry_rules
    clean_expires_in, rotations = _clean_expires_in, _rotations
    # the last rotation rule built clean, and what it was checked against: the next key's is most
    # often the same (one team's rule for a file of keys), and then needs no memo key made
    last_raw: Any = None
    last_expiry: Expiry | None = None
    last_kind: ProviderKind | None = None
    last_rotation = _NO_ROTATION
    rest_attributes: Callable[..., tuple[dict[str, Any], dict[str, SecretRef]]] | None = None  # (imported once)
    for source, entries in groups:
        doc = source.doc
        locator, key_field_loc = cast(SourceLoc, _FileKeys(doc)), source.key_field_loc  # (`KeySpec.loc` reads it)
        broken = bool(source.broken)
        for name, value in entries.items():
            if not isinstance(value, dict) or (broken and not source.valid(("keys", name))):  # `Declaration.valid`
                _broken_key(Declaration("keys", name, value, source), ctx)
                continue
            provider_name: str = value["provider"]
            facts = facts_of.get(provider_name)
            if facts is None:
                if provider_name not in ctx.declared_providers:
                    path = ("keys", name)
                    report.error(source, (*path, "provider"), f"{dotted(path)}.provider: unknown provider "
                                 f"{provider_name!r}{known_names(ctx.declared_providers, 'providers')}")
                    _unknown_sink(value, Declaration("keys", name, value, source), ctx)
                    continue
                provider = ctx.providers.get(provider_name)
                if provider is None:  # the provider itself is invalid and reported
                    continue
                facts = facts_of[provider_name] = _facts(provider)
            provider, kind = facts.provider, facts.kind
            errors_before = len(diagnostics)
            if not facts.fields.issuperset(value):  # most keys take no other field
                _check_fields(value, kind, source, ("keys", name), report)
            # most keys: an `expires_in` checked clean before (`_expiry` says why any other is wrong)
            text = value.get("expires_in")
            if "expires_at" in value:
                expiry = _expiry(value, source, ("keys", name), report)
            elif type(text) is str:
                expiry = clean_expires_in.get(text) or _expiry(value, source, ("keys", name), report)
            else:  # (no expiry written: as `_expiry` says, unless `expires_in` is there but no text)
                expiry = NEVER if "expires_in" not in value else _expiry(value, source, ("keys", name), report)
            # after a misspelt field (`expire_in`) or a bad expiry, the rotation's checks against the
            # expiry would only add a second message for the same mistake ("the key never expires")
            if expiry is None or len(diagnostics) != errors_before or not (raw_rotation := value.get("rotation")):
                rotation = _NO_ROTATION
            elif expiry is last_expiry and kind is last_kind and raw_rotation == last_raw:
                rotation = last_rotation  # (equal as the memo's items would be: the same rule)
            else:  # most rules: one checked clean before for the same expiry and type (`_rotation`)
                memo: tuple[Any, ...] | None = (tuple(raw_rotation.items()), expiry.kind, expiry.duration,
                                                expiry.text, kind.name, kind.reports_usage)
                try:
                    found = rotations.get(memo)  # type: ignore[arg-type]  # (not None here)
                except TypeError:  # a value the schema let through that is not hashable: no memo
                    found = memo = None
                if found is not None:
                    rotation = found
                else:
                    errors_now = len(diagnostics)
                    rotation = _rotation(raw_rotation, expiry, source, ("keys", name), report, kind, memo)
                    found = rotation if memo is not None and len(diagnostics) == errors_now else None
                if found is not None:
                    last_raw, last_expiry, last_kind, last_rotation = raw_rotation, expiry, kind, found
            # the sink: `_sink_target`'s common case (a sink declared, by name or `use`) inline
            raw = value.get("sink")
            if raw is None or not kind.returns_secret:
                sink = _sink_target(value, kind, name, source, ("keys", name), ctx) if raw is not None or \
                    kind.returns_secret else None
            else:
                if isinstance(raw, str):
                    sink_name, entry = raw, None
                else:
                    sink_name, entry = raw["use"], raw.get("as")
                if sink_name not in declared_sinks:
                    _report_unknown_sink(source, ("keys", name), sink_name, ctx)
                    sink = None
                else:
                    entry = entry or upper_snake(name)
                    config = sinks.get(sink_name)
                    if config is not None and (problem := (entry_rules.get(sink_name)
                                                           or _entry_rule(sink_name, config, ctx))(config, entry)):
                        path = ("keys", name)
                        report.error(source, (*path, "sink"), f"{dotted(path)}: sink entry {entry!r} cannot be "
                                     f"used in sink {sink_name!r} ({config.type}): {problem}; set sink.as")
                    sink = SinkTarget(sink_name, entry)
            if provider.definition is not None:
                if rest_attributes is None:
                    rest_attributes = _rest_attributes()
                attrs, secret_inputs = rest_attributes(value, provider.definition, name, source, ("keys", name),
                                                       report)
                consumes = SecretOfRef in map(type, secret_inputs.values())
            else:  # the attributes, with defaults filled in, and the write-only inputs by attribute path
                attrs = {}
                secret_inputs = {}
                consumes = False
                get = value.get
                for attr, default, how in facts.defaults:
                    if how == _PLAIN:  # (most attributes)
                        attrs[attr] = get(attr, default)
                    elif how == _NAME:
                        attrs[attr] = get(attr, name)
                    elif how == _HEADERS:
                        plain = attrs[attr] = {}
                        for header, ref in get(attr, default).items():
                            if isinstance(ref, str):
                                plain[header] = ref
                            elif isinstance(ref, dict):
                                made = secret_inputs[header_input(header)] = build_ref(ref, source)
                                consumes = consumes or type(made) is SecretOfRef
                    else:
                        raw = get(attr, name if how == _ANY_NAME else default)
                        if type(raw) is str:
                            attrs[attr] = raw
                        elif isinstance(raw, (list, tuple)):
                            attrs[attr] = list(raw)
                        elif isinstance(raw, dict):
                            attrs[attr] = dict(raw)
                        else:
                            attrs[attr] = raw
                for field in kind.secret_inputs:
                    if field in value:
                        made = secret_inputs[field] = build_ref(value[field], source)
                        consumes = consumes or type(made) is SecretOfRef
            if expiry is None or len(diagnostics) > errors_before:
                continue
            # positional, in the fields' order (address, provider, provider_type, attrs, loc, secret_inputs,
            # expiry, rotation, sink, prevent_destroy, entry, field_loc): twelve keywords cost twice the call
            keys[name] = KeySpec(name, provider_name, provider.type, attrs,
                                 locator, secret_inputs, expiry, rotation, sink,
                                 bool(value["lifecycle"].get("prevent_destroy", False)) if "lifecycle" in value
                                 else False, value, key_field_loc if secret_inputs else None)
            if consumes and consumers is not None:
                consumers.append(name)
    return keys


class _FileKeys(KeyLocator):
    """The `KeyLocator` of one file's keys: a key's own line, from the cached file's lines by name
    (`YamlDocument.key_lines`), else as `YamlDocument.loc` finds it."""

    __slots__ = ("doc", "lines")

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.lines = doc.key_lines()

    def locate(self, address: str) -> SourceLoc:
        line = self.lines.get(address)
        return SourceLoc(self.doc.file, line) if line is not None else self.doc.loc(("keys", address))


def _broken_key(decl: Declaration, ctx: KeyContext) -> None:
    """The mistakes of a key the schema refused that the schema cannot see, reported with its own
    (all problems at once: a misspelt `nmae` is not found only once `expires_in: 90days` is fixed):
    a field its provider's type does not know (the schema admits any field, as rest definitions
    declare their own) and a sink that is not declared."""
    value = decl.value
    if not isinstance(value, dict):
        return
    provider_name = value.get("provider")
    provider = ctx.providers.get(provider_name) if isinstance(provider_name, str) else None
    if provider is not None and provider.definition is None:  # a rest definition checks its own fields
        facts = ctx.provider_facts.get(provider.name)
        if facts is None:
            facts = ctx.provider_facts[provider.name] = _facts(provider)
        unknown = {f: v for f, v in value.items() if f not in facts.fields and f not in _schema_key_fields()}
        if unknown:
            _check_fields(unknown, facts.kind, decl.source, decl.path, ctx.report)
    _unknown_sink(value, decl, ctx)


_SINK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # the schema's `$defs/name` pattern


def _unknown_sink(value: Mapping[str, Any], decl: Declaration, ctx: KeyContext) -> None:
    """A key's `sink` that names no declared sink, for a key not built further (whose own checks,
    `_sink_target`, are not reached)."""
    raw = value.get("sink")
    sink_name = raw.get("use") if isinstance(raw, dict) else raw
    if (isinstance(sink_name, str) and sink_name not in ctx.declared_sinks
            and _SINK_NAME.fullmatch(sink_name)):  # (a name the schema refuses is reported as such, once)
        _report_unknown_sink(decl.source, decl.path, sink_name, ctx)


def _report_unknown_sink(source: ManifestFile, path: YamlPath, sink_name: str, ctx: KeyContext) -> None:
    ctx.report.error(source, (*path, "sink"), f"{dotted(path)}.sink: unknown sink "
                     f"{sink_name!r}{known_names(ctx.declared_sinks, 'sinks')}")


def _rest_attributes() -> Callable[..., tuple[dict[str, Any], dict[str, SecretRef]]]:
    """`restglue.rest_attributes`, imported when a workspace has a rest provider (once per
    `build_keys`, not per key: an import statement is ~1 µs)."""
    from keyform.manifest.restglue import rest_attributes

    return rest_attributes


def _facts(provider: ProviderConfig) -> _ProviderFacts:
    kind = provider_kind(provider.type)
    described = provider.type in schema_types()[0]  # (a plug-in's keys are checked by its own schema)
    defaults = tuple((attr, default, _how(attr, default, described)) for attr in kind.attributes
                     for default in (None if attr == "name" else kind.attribute_defaults.get(attr),))
    return _ProviderFacts(provider, kind, _fields_of(tuple(kind.attributes), tuple(kind.secret_inputs)), defaults)


# How `build_keys` takes an attribute from a key's entry: as written, or its default (_PLAIN: the
# manifest schema, which checks the keys of the types it describes, lets through a string or a
# boolean only, and the default is one too); as written, or the address (_NAME: a string too);
# `headers` (plain values are attributes, `{env: ...}` ones inputs); any other, its default the
# type's (_ANY) or the address (_ANY_NAME): a list or tuple becomes a new list, a mapping a new dict.
_PLAIN, _NAME, _HEADERS, _ANY, _ANY_NAME = range(5)
_SCALARS = (str, bool)


def _how(attr: str, default: Any, described: bool) -> int:
    if attr == "headers":
        return _HEADERS
    if not described or attr not in _scalar_key_fields():
        return _ANY_NAME if attr == "name" else _ANY
    return _NAME if attr == "name" else _PLAIN if default is None or type(default) in _SCALARS else _ANY


@lru_cache(maxsize=1)
def _scalar_key_fields() -> frozenset[str]:
    """The key fields the manifest schema takes as a string or a boolean only (`type`, or an `enum`
    of strings): a key that passed the schema holds no list or mapping there."""
    from keyform.manifest.schema import manifest_schema

    found = set()
    for name, rule in manifest_schema()["$defs"]["key"]["properties"].items():
        kind, enum = rule.get("type"), rule.get("enum")
        if kind in ("string", "boolean") or (isinstance(enum, list) and enum
                                             and all(type(v) in _SCALARS for v in enum)):
            found.add(name)
    return frozenset(found)


@lru_cache(maxsize=64)
def _fields_of(attributes: tuple[str, ...], secret_inputs: tuple[str, ...]) -> frozenset[str]:
    """Every field a key of a type with these attributes and secret inputs takes."""
    return frozenset((*COMMON_FIELDS, *attributes, *secret_inputs))


def _check_fields(value: Mapping[str, Any], kind: ProviderKind, source: ManifestFile, path: YamlPath,
                  report: Report) -> None:
    own = (*kind.attributes, *kind.secret_inputs)
    for field in value:
        if field not in COMMON_FIELDS and field not in own and field not in _schema_key_fields():
            # the schema admits any field (rest definitions declare their own): an unknown one is
            # reported here, as the schema did before
            allowed = [*COMMON_FIELDS, *own]
            close = difflib.get_close_matches(field, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (a {kind.type} key takes: {', '.join(allowed)})"
            report.error(source, (*path, field), f"{dotted(path)}: unknown field {field!r}{hint}")
        elif field not in COMMON_FIELDS and field not in own:
            report.error(source, (*path, field), f"{dotted(path)}: field {field!r} does not apply to "
                         f"{kind.type} keys ({kind.type} fields: {', '.join(own)})")


@lru_cache(maxsize=1)
def _schema_key_fields() -> frozenset[str]:
    from keyform.manifest.schema import manifest_schema

    return frozenset(manifest_schema()["$defs"]["key"]["properties"])


def _expiry(value: Mapping[str, Any], source: ManifestFile, path: YamlPath, report: Report) -> Expiry | None:
    """The key's expiry, or None when it is wrong (reported here; the rotation is then not checked
    against it, which would only add a message about an expiry the key does not have)."""
    if "expires_in" in value and "expires_at" in value:
        report.error(source, (*path, "expires_at"),
                     f"{dotted(path)}: set either expires_in or expires_at, not both")
        return None
    if "expires_in" in value:
        text: str = value["expires_in"]
        try:
            expiry = _expires_in(text)
        except ValueError as exc:
            report.error(source, (*path, "expires_in"), f"{dotted(path)}.expires_in: {exc}")
            return None
        if expiry.duration is not None and expiry.duration <= _ZERO:
            report.error(source, (*path, "expires_in"), f"{dotted(path)}.expires_in: must be longer than 0")
        elif len(_clean_expires_in) < 256:
            _clean_expires_in[text] = expiry
        return expiry
    if "expires_at" in value:
        text = value["expires_at"]
        where = (*path, "expires_at")
        try:
            at = parse_time(text)
        except ValueError as exc:
            report.error(source, where, f"{dotted(where)}: {exc}")
            return None
        # a time that has passed is no error here: a manifest does not go wrong as time passes (every
        # plan of the workspace would fail); the planner refuses to create a key with it, at that key
        if at.year > MAX_YEAR:  # the state could not hold it: every later command would refuse the state
            report.error(source, where, f"{dotted(where)}: {format_time(at)} is after {MAX_YEAR}, the last year "
                         "keyform can record; for a key that never expires, leave out expires_at")
            return None
        return Expiry("at", at=at, text=text)
    return NEVER


def _rotation(raw: Mapping[str, str], expiry: Expiry, source: ManifestFile, path: YamlPath,
              report: Report, kind: ProviderKind, memo: tuple[Any, ...] | None) -> Rotation:
    """The key's `rotation:` (`raw`, not empty), checked against its expiry; remembered under `memo`
    (the rule's items, and what the check reads of the expiry and the type: hashing those is
    cheaper than hashing an Expiry) when clean. `build_key` looks a remembered rule up first."""
    errors_before = len(report.diagnostics)
    rotation = _checked_rotation(raw, expiry, source, path, report, kind)
    if memo is not None and len(report.diagnostics) == errors_before and len(_rotations) < 256:
        _rotations[memo] = rotation
    return rotation


_NO_ROTATION = Rotation()
# Rotation rules repeat across keys (one team policy for hundreds of keys): a rule checked clean
# for the same expiry and provider type is the same (frozen) value. Per process, at most 256.
_rotations: dict[tuple[Any, ...], Rotation] = {}


def _checked_rotation(raw: Mapping[str, str], expiry: Expiry, source: ManifestFile, path: YamlPath,
                      report: Report, kind: ProviderKind) -> Rotation:
    parsed = {}
    durations = {field: text for field, text in raw.items() if field != "on_grace_end"}
    for field, text in durations.items():
        try:
            parsed[field] = _duration(text)
        except ValueError as exc:
            report.error(source, (*path, "rotation", field), f"{dotted(path)}.rotation.{field}: {exc}")
    if len(parsed) < len(durations):
        return Rotation()
    before, max_age = parsed.get("before_expiry"), parsed.get("max_age")
    where = (*path, "rotation")
    if before is not None and expiry.kind == "never":
        report.error(source, (*where, "before_expiry"), f"{dotted(where)}.before_expiry: has no effect "
                     "because the key never expires (set expires_in or expires_at)")
    elif before is not None and expiry.kind == "at":
        report.error(source, (*where, "before_expiry"), f"{dotted(where)}.before_expiry: cannot work with a fixed "
                     f"expires_at: each replacement would expire at the same {expiry.text}, so every plan within "
                     f"{format_duration(before)} of it would replace the key again; use expires_in (each new key "
                     "expires that long after it is made), or move expires_at yourself when the key is due")
    elif before is not None and expiry.duration is not None and before >= expiry.duration:
        report.error(source, (*where, "before_expiry"), f"{dotted(where)}.before_expiry: "
                     f"{format_duration(before)} must be shorter than expires_in ({expiry.text}), "
                     "or every plan would replace the key")
    if max_age is not None and max_age <= timedelta(0):
        report.error(source, (*where, "max_age"), f"{dotted(where)}.max_age: must be longer than 0")
    grace, unused_for = parsed.get("grace", timedelta(0)), parsed.get("unused_for")
    on_grace_end = raw.get("on_grace_end", "revoke")
    _check_unused_for(grace, unused_for, on_grace_end, kind, source, where, report)
    return Rotation(before_expiry=before, max_age=max_age, grace=grace, unused_for=unused_for,
                    on_grace_end=on_grace_end)


def _check_unused_for(grace: timedelta, unused_for: timedelta | None, on_grace_end: str, kind: ProviderKind,
                      source: ManifestFile, where: YamlPath, report: Report) -> None:
    """`unused_for` needs usage data and a longer `grace` (its cap); `on_grace_end: keep` needs
    `unused_for` (the old key is kept only while it is in use, and "in use" is measured by it)."""
    if unused_for is None:
        if on_grace_end == "keep":
            report.error(source, (*where, "on_grace_end"), f"{dotted(where)}.on_grace_end: keep needs unused_for "
                         "(the old key is kept only while it is still in use, and unused_for says when it is not)")
        return
    at = (*where, "unused_for")
    if not kind.reports_usage:
        report.error(source, at, f"{dotted(where)}.unused_for: {kind.type} does not report when a key was last "
                     "used, so keyform cannot tell when the old key is unused; use grace alone")
    elif unused_for <= timedelta(0):
        report.error(source, at, f"{dotted(where)}.unused_for: must be longer than 0")
    elif grace <= unused_for:
        report.error(source, at, f"{dotted(where)}.unused_for: {format_duration(unused_for)} must be shorter than "
                     f"grace ({format_duration(grace) if grace else 'not set'}), the longest the old key may live "
                     "after a replacement (e.g. grace: 7d, unused_for: 1h)")


def _sink_target(value: Mapping[str, Any], kind: ProviderKind, name: str, source: ManifestFile, path: YamlPath,
                 ctx: KeyContext) -> SinkTarget | None:
    report = ctx.report
    raw = value.get("sink")
    if not kind.returns_secret:
        if raw is not None:
            report.error(source, (*path, "sink"),
                         f"{dotted(path)}.sink: {kind.type} keys issue no secret; remove sink")
        return None
    entry: str | None = None
    if raw is None:
        if ctx.default_sink is None:
            report.error(source, path, f"no sink for the secret of key {name!r} "
                         "(set sink: or defaults.sink)")
            return None
        sink_name = ctx.default_sink  # an unknown defaults.sink is reported there
    elif isinstance(raw, str):
        sink_name = raw
    else:
        sink_name, entry = raw["use"], raw.get("as")
    if raw is not None and sink_name not in ctx.declared_sinks:
        _report_unknown_sink(source, path, sink_name, ctx)
        return None
    entry = entry or upper_snake(name)
    sink = ctx.sinks.get(sink_name)
    if sink is not None and (problem := (ctx.entry_rules.get(sink_name) or _entry_rule(sink_name, sink, ctx))(
            sink, entry)):
        where = path if raw is None else (*path, "sink")
        report.error(source, where, f"{dotted(path)}: sink entry {entry!r} cannot be used in sink "
                     f"{sink_name!r} ({sink.type}): {problem}; set sink.as")
    return SinkTarget(sink_name, entry)


def _entry_rule(sink_name: str, sink: SinkConfig, ctx: KeyContext) -> Callable[[SinkConfig, str], str | None]:
    """The sink's entry-name rule, looked up once per sink name (not once per key)."""
    rule = ctx.entry_rules.get(sink_name)
    if rule is None:
        rule = ctx.entry_rules[sink_name] = entry_name_rule(sink)
    return rule
