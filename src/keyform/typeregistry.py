"""Provider and sink types by name: the one registry, lazy, extended by plug-ins.

Each provider type is one `ProviderType` object and each sink type one `SinkType` object, defined in
its own module as `TYPE`. Built-in types are listed below as *module path strings*: a module is
imported the first time its type is asked for, so `keyform --version` imports none and `validate`
imports only the (light) modules of the types a manifest uses. Built-in provider type modules hold
no HTTP code; their factory imports the client (and httpx) when a provider is opened.

Third-party packages add types through the entry-point groups `keyform.providers` and
`keyform.sinks` (name = type name, value = `module:OBJECT` of a ProviderType/SinkType). Entry
points are read only when a name is not built in, or when `keyform providers` lists everything;
a plug-in never replaces a built-in name. See docs/providers.md (the interface, version 1).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field, replace
from typing import TYPE_CHECKING, Any, Literal

from keyform.records import record

if TYPE_CHECKING:
    from keyform.model import SinkConfig
    from keyform.remote import Provider
    from keyform.sinks import Sink

# The provider/sink interface version this keyform implements (docs/providers.md). A type declares
# the version it was written for; a type written for another version is refused with a message.
INTERFACE_VERSION = 1

PROVIDER_GROUP = "keyform.providers"
SINK_GROUP = "keyform.sinks"
# the fields every key has, whatever its provider type: no type may name an attribute so (keyform
# reads the field itself, so the attribute could not be set, and would be sent the field's value)
COMMON_KEY_FIELDS = ("provider", "expires_in", "expires_at", "rotation", "sink", "lifecycle")
# and no type may name an attribute like the lines a plan shows for every key (`planner.EXPIRY`,
# `planner.PREVENT_DESTROY`): two `expiry` lines in one change read as one
RESERVED_ATTRIBUTES = (*COMMON_KEY_FIELDS, "expiry", "prevent_destroy")

# Adding a built-in type: one module defining TYPE, and one line here.
BUILTIN_PROVIDERS: Mapping[str, str] = {
    "questra": "keyform.providers.questra_type",
    "textql": "keyform.providers.textql_type",
}
BUILTIN_SINKS: Mapping[str, str] = {
    "dotenv": "keyform.sinks.dotenv",
    "json": "keyform.sinks.jsonfile",
    "file": "keyform.sinks.file",
    "sops": "keyform.sinks.sops",
    "exec": "keyform.sinks.exec",
    "k8s-secret": "keyform.sinks.k8s",
}

OptionProblems = list[tuple[tuple[str, ...], str]]
# (config, resolved token, resolved org_id, timeout=, transport=, max_retries=) -> Provider
ProviderFactory = Callable[..., "Provider"]


@record
class ProviderType:
    """Everything keyform knows about one provider type, as data plus one factory.

    `attributes` are the key's non-secret attributes in display order; `updatable` the ones an
    update call can change in place (every other one forces a replace); `secret_inputs` write-only
    inputs (fingerprinted, never stored); `remote_attributes` the ones a list call reports back.
    `options_schema` is a JSON Schema of the provider's own options beyond the ones every provider
    takes (type, token, base_url, deadline, max_response_bytes) — None for the built-ins, whose
    options are part of schemas/manifest.schema.json. `key_schema` likewise maps each key attribute
    to its JSON Schema (None: the built-in manifest schema)."""

    name: str
    open: ProviderFactory
    returns_secret: bool  # the create call hands out a secret (which keyform must sink)
    attributes: tuple[str, ...]
    updatable: frozenset[str] = frozenset()
    expiry_updatable: bool = False
    secret_inputs: tuple[str, ...] = ()
    remote_attributes: frozenset[str] = frozenset()
    attribute_defaults: Mapping[str, Any] = field(default_factory=dict)
    default_base_url: str | None = None
    options_schema: Mapping[str, Any] | None = None
    key_schema: Mapping[str, Any] | None = None
    reports_usage: bool = False  # the list call reports when a key was last used
    name_attribute: str = "name"  # the attribute that names a key (policy `name_pattern`, `keyform report`)
    interface: int = INTERFACE_VERSION
    description: str = ""
    origin: str = "built-in"  # set by the registry: built-in, "package version", or a definition file

    @property
    def type(self) -> str:  # the planner's word for it (keyform.kinds)
        return self.name


class ScannedEntries(dict[str, int]):
    """What a `SinkType.scan` may return: entry name → its 1-based line (0 where the format has
    none), and `blank`: the entries whose value is empty or only whitespace. keyform never writes
    such a secret (an issued one is refused), so a blanked entry (`CI_BOT=`) is taken as missing:
    the plan replaces the key, as for a deleted line. `unusable`: entry name → why the sink can
    neither read nor write it (a `file` sink's entry that is a symbolic link or a directory); the
    plan refuses a change that would write there. A plain mapping (a plug-in's) has neither."""

    def __init__(self, lines: Mapping[str, int] | None = None, blank: Iterable[str] = (),
                 unusable: Mapping[str, str] | None = None) -> None:
        super().__init__(lines or {})
        self.blank = frozenset(blank)
        self.unusable: Mapping[str, str] = unusable or {}


@record
class SinkType:
    """One sink type: its required option, a factory (constructors do no I/O), the semantic option
    checks beyond the JSON Schema, and the entry-name rule. Readability is the opened sink's own
    `readable` (decided once, by the sink). `path_options` hold filesystem paths made absolute
    against the declaring manifest."""

    name: str
    required: str
    open: Callable[[SinkConfig], Sink]
    check: Callable[[Mapping[str, Any]], OptionProblems] | None = None
    entry_name_problem: Callable[[SinkConfig, str], str | None] | None = None
    options_schema: Mapping[str, Any] | None = None  # plug-ins: JSON Schema of the options besides `type`
    path_options: tuple[str, ...] = ()
    # every entry the sink holds now, read at once for planning (`keyform.sinkscan`): entry name ->
    # its 1-based line where the format has lines, else 0 (a `ScannedEntries` also says which are
    # blank); {} when the file is missing; raises
    # OSError, ValueError or KeyformError when it cannot be read (or could not be written back).
    # None: the type is not scanned; a call's None: this sink is not (an encrypted k8s-secret)
    scan: Callable[[SinkConfig], Mapping[str, int] | None] | None = None
    # the sink's file holds entries others wrote too (a .env file): plan refuses to overwrite an
    # entry keyform did not write (`planner.foreign_entries`); needs `scan`
    guards_entries: bool = False
    interface: int = INTERFACE_VERSION
    description: str = ""
    origin: str = "built-in"


Kind = Literal["provider", "sink"]


@record
class Available:
    """One row of `keyform providers`: a type, where it comes from, and why it cannot be used (if so)."""

    kind: Kind
    name: str
    origin: str
    description: str = ""
    problem: str | None = None


class TypeLoadError(Exception):
    """A plug-in type that cannot be loaded; the message names the package and the entry point."""


@record(frozen=False)
class _Registry:
    # re-entrant: a plug-in module may ask for another type (a built-in it wraps) while it loads
    lock: threading.RLock = field(default_factory=threading.RLock)
    providers: dict[str, ProviderType] = field(default_factory=dict)
    sinks: dict[str, SinkType] = field(default_factory=dict)
    plugins_read: bool = False
    plugin_providers: dict[str, tuple[Any, str]] = field(default_factory=dict)  # name -> (entry point, origin)
    plugin_sinks: dict[str, tuple[Any, str]] = field(default_factory=dict)
    problems: dict[tuple[Kind, str], str] = field(default_factory=dict)


_REG = _Registry()


def provider_type(name: str) -> ProviderType:
    """The provider type called `name`; KeyError if there is none (built in or installed)."""
    found: ProviderType = _get("provider", name, _REG.providers, BUILTIN_PROVIDERS, ProviderType)
    return found


def sink_type(name: str) -> SinkType:
    """The sink type called `name`; KeyError if there is none (built in or installed)."""
    found: SinkType = _get("sink", name, _REG.sinks, BUILTIN_SINKS, SinkType)
    return found


def _get(kind: Kind, name: str, table: dict[str, Any], builtin: Mapping[str, str], cls: type[Any]) -> Any:
    found = table.get(name)
    if found is not None:
        return found
    if name not in builtin:
        _read_plugins()
    with _REG.lock:
        if name not in table:
            if name in builtin:
                table[name] = _load_builtin(builtin[name], name, cls)
            else:
                table[name] = _load_plugin(kind, name, cls)
        return table[name]


def find_provider_type(name: str) -> ProviderType | None:
    """`provider_type`, or None when no such type exists; TypeLoadError when a plug-in is broken."""
    try:
        return provider_type(name)
    except KeyError:
        return None


def find_sink_type(name: str) -> SinkType | None:
    try:
        return sink_type(name)
    except KeyError:
        return None


def provider_names() -> tuple[str, ...]:
    """Every provider type name (reads the entry points)."""
    _read_plugins()
    return tuple(sorted({*BUILTIN_PROVIDERS, *_REG.plugin_providers}))


def sink_names() -> tuple[str, ...]:
    _read_plugins()
    return tuple(sorted({*BUILTIN_SINKS, *_REG.plugin_sinks}))


def available() -> list[Available]:
    """Every provider and sink type, loaded (a broken plug-in is listed with its problem)."""
    _read_plugins()
    rows: list[Available] = []
    kinds: tuple[tuple[Kind, tuple[str, ...], Callable[[str], ProviderType | SinkType]], ...] = (
        ("provider", provider_names(), provider_type), ("sink", sink_names(), sink_type))
    for kind, names, get in kinds:
        for name in names:
            try:
                t = get(name)
                rows.append(Available(kind, name, t.origin, t.description))
            except TypeLoadError as exc:
                rows.append(Available(kind, name, _plugin_origin(kind, name), problem=str(exc)))
    for (kind, name), problem in sorted(_REG.problems.items()):
        rows.append(Available(kind, name, _plugin_origin(kind, name, shadowed=True), problem=problem))
    return rows


def register(t: ProviderType | SinkType, origin: str) -> None:
    """Add a type at run time (tests, and definitions loaded from files): `origin` says where it
    came from. A name already taken is refused."""
    with _REG.lock:
        table: dict[str, Any] = _REG.providers if isinstance(t, ProviderType) else _REG.sinks
        builtin = BUILTIN_PROVIDERS if isinstance(t, ProviderType) else BUILTIN_SINKS
        if t.name in table or t.name in builtin:
            raise ValueError(f"a type named {t.name!r} already exists")
        table[t.name] = replace(t, origin=origin)


def register_loaded(t: ProviderType, origin: str) -> None:
    """Add or refresh a provider type made from a file at load time (a `type: rest` definition,
    named `rest:NAME`): loading the same manifests again in one process replaces it. It may not
    take a built-in or plug-in name."""
    if t.name in BUILTIN_PROVIDERS or not t.name.startswith("rest:"):
        raise ValueError(f"a definition cannot be the type {t.name!r}")
    with _REG.lock:
        _REG.providers[t.name] = replace(t, origin=origin)


def unregister(t: ProviderType | SinkType) -> None:
    with _REG.lock:
        table: dict[str, Any] = _REG.providers if isinstance(t, ProviderType) else _REG.sinks
        table.pop(t.name, None)


# --- loading -------------------------------------------------------------------------------------


def _load_builtin(module: str, name: str, cls: type[Any]) -> Any:
    t = importlib.import_module(module).TYPE
    assert isinstance(t, cls) and t.name == name, f"{module}.TYPE is not the {cls.__name__} {name!r}"
    return t


def _read_plugins() -> None:
    if _REG.plugins_read:
        return
    with _REG.lock:
        if _REG.plugins_read:  # another thread read them meanwhile
            return  # type: ignore[unreachable]
        groups: tuple[tuple[str, Kind, Mapping[str, str], dict[str, tuple[Any, str]]], ...] = (
            (PROVIDER_GROUP, "provider", BUILTIN_PROVIDERS, _REG.plugin_providers),
            (SINK_GROUP, "sink", BUILTIN_SINKS, _REG.plugin_sinks))
        every = _entry_points()
        for group, kind, builtin, table in groups:
            claims: dict[str, list[tuple[Any, str]]] = {}
            for ep in every:
                if ep.group == group:
                    claims.setdefault(ep.name, []).append((ep, _dist_origin(ep)))
            for name, claimants in claims.items():
                origins = sorted(origin for _, origin in claimants)
                if name in builtin:
                    _REG.problems[(kind, name)] = (f"{' and '.join(origins)} registers {kind} type {name!r}, which is "
                                                   "built in; the built-in type is used")
                elif kind == "provider" and (name == "rest" or name.startswith("rest:")):
                    _REG.problems[(kind, name)] = (f"{' and '.join(origins)} registers provider type {name!r}; "
                                                   "`rest` and `rest:NAME` belong to `type: rest` definition "
                                                   "files, so it is not used")
                elif len(claimants) > 1:  # neither wins: a package cannot take a name by install order
                    _REG.problems[(kind, name)] = (f"{' and '.join(origins)} all register {kind} type {name!r}; "
                                                   "none is used (uninstall all but one)")
                else:
                    table[name] = claimants[0]
        _REG.plugins_read = True


def _entry_points() -> list[Any]:
    """Every installed distribution's entry points, read one distribution at a time: one package's
    malformed `entry_points.txt` (any package, any group) made `importlib.metadata.entry_points()`
    raise, and every command that looked for a plug-in ended in an internal error. Such a package is
    skipped, and `keyform providers` names it."""
    from importlib.metadata import distributions  # only when a non-built-in name is asked for

    found: list[Any] = []
    for dist in distributions():
        try:
            found.extend(dist.entry_points)
        except Exception as exc:  # a broken package is its problem, said in one line
            try:
                name = f"{dist.metadata['Name']} {dist.version}"
            except Exception:
                name = "an installed package"
            _REG.problems[("provider", f"({name})")] = (f"{name} has an entry_points.txt keyform cannot read "
                                                       f"({type(exc).__name__}); its plug-ins are not used")
    return found


def _dist_origin(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return f"entry point {ep.value}"
    return f"{dist.metadata['Name']} {dist.version}"


def _plugin_origin(kind: Kind, name: str, shadowed: bool = False) -> str:
    table = _REG.plugin_providers if kind == "provider" else _REG.plugin_sinks
    if name in table and not shadowed:
        return table[name][1]
    if shadowed:
        return "(refused)"
    return "built-in"


def _load_plugin(kind: Kind, name: str, cls: type[Any]) -> Any:
    """Load the entry point for `name` (the entry points are read already)."""
    table = _REG.plugin_providers if kind == "provider" else _REG.plugin_sinks
    if name not in table:
        raise KeyError(name)
    ep, origin = table[name]
    try:
        obj = ep.load()
    except (Exception, SystemExit) as exc:  # a plug-in's import failure is its problem, reported in one line
        raise TypeLoadError(f"{kind} type {name!r} from {origin} failed to load: "
                            f"{type(exc).__name__}: {_first_line(exc)}") from None
    if callable(obj) and not isinstance(obj, cls):
        try:
            obj = obj()
        except (Exception, SystemExit) as exc:
            raise TypeLoadError(f"{kind} type {name!r} from {origin} failed to load: "
                                f"{type(exc).__name__}: {_first_line(exc)}") from None
    if not isinstance(obj, cls):
        raise TypeLoadError(f"{kind} type {name!r} from {origin}: entry point {ep.value} is not a "
                            f"keyform.typeregistry.{cls.__name__}")
    if obj.name != name:
        raise TypeLoadError(f"{kind} type {name!r} from {origin}: the object is named {obj.name!r}")
    if obj.interface != INTERFACE_VERSION:
        raise TypeLoadError(f"{kind} type {name!r} from {origin} implements interface version "
                            f"{obj.interface}; this keyform implements version {INTERFACE_VERSION}")
    if isinstance(obj, ProviderType) and (field_name := key_field_attribute(obj)) is not None:
        raise TypeLoadError(f"{kind} type {name!r} from {origin} declares the key attribute {field_name!r}, "
                            "a field every key has (or a line every plan shows); the plug-in must name it otherwise")
    return replace(obj, origin=origin)


def key_field_attribute(t: ProviderType) -> str | None:
    """The first attribute, secret input or `key_schema` property of `t` named like a field every
    key has (`sink`, `provider`, ...), or None."""
    own = (*t.attributes, *t.secret_inputs, *((t.key_schema or {}).get("properties") or {}))
    return next((n for n in own if n in RESERVED_ATTRIBUTES), None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
