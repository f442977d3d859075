"""The desired model: what the manifests declare, after loading and validation.

Plain frozen dataclasses. Secrets appear here only as *references* (EnvRef, FileRef, SecretOfRef),
never as values; resolving a reference is the job of `keyform.resolve`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from keyform.durations import format_time
from keyform.errors import SourceLoc
from keyform.records import record

if TYPE_CHECKING:
    from keyform.policy import Policy


@record
class EnvRef:
    """`{env: NAME}`: the value of an environment variable, read when needed."""

    name: str

    def __str__(self) -> str:
        return f"env:{self.name}"


@record
class FileRef:
    """`{file: PATH}`: the (stripped) contents of a file; `path` is absolute after loading."""

    path: str

    def __str__(self) -> str:
        return f"file:{self.path}"


@record
class SecretOfRef:
    """`{secret_of: ADDRESS}`: the secret issued for another managed key."""

    address: str

    def __str__(self) -> str:
        return f"secret_of:{self.address}"


SecretRef = EnvRef | FileRef | SecretOfRef


@record
class RateLimit:
    """`rate_limit: 20/s` (or `{rate: 20/s, burst: 5}`) on a provider instance: at most
    `per_second` calls a second on average, `burst` of them back to back."""

    per_second: float
    burst: int = 1

    def __str__(self) -> str:
        return f"{self.per_second:g}/s" + (f" (burst {self.burst})" if self.burst > 1 else "")


@record
class ProviderConfig:
    name: str
    type: str  # a provider type name (keyform.typeregistry)
    base_url: str
    token: SecretRef
    org_id: str | EnvRef | None
    loc: SourceLoc
    deadline: float = 60.0  # seconds for one API call, retries included
    max_response_bytes: int = 32 * 1024 * 1024  # the largest response body read
    token_loc: SourceLoc | None = None  # the `token:` line (messages about the token point there)
    org_id_loc: SourceLoc | None = None
    # `base_url: {env: NAME}`: read when the provider is first used (base_url is "" until then)
    base_url_env: str | None = None
    base_url_loc: SourceLoc | None = None
    rate_limit: RateLimit | None = None  # None: learned from the API's 429s (providers/ratelimit.py)
    # `type: rest`: the loaded definition (keyform.manifest.restdef.RestDefinition); `options` are the
    # type's own options beyond the common ones (a rest definition's, as written: a literal, or an
    # EnvRef/FileRef for a secret or `{env: NAME}` option; a plug-in's, checked by its options schema)
    definition: Any = field(default=None, compare=False, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)


@record
class SinkConfig:
    name: str
    type: str  # a sink type name (keyform.typeregistry)
    options: Mapping[str, Any]  # path/dir made absolute by the loader
    loc: SourceLoc
    # the file (or directory) it writes, links resolved: two sinks the manifests allow to name one
    # file (exact aliases) have one; "" for a sink that writes no local file
    file_id: str = ""


@record(dict_init=True)  # one per key with a sink
class SinkTarget:
    """Where a key's secret goes: sink instance name and the entry name inside it."""

    sink: str
    name: str

    def __str__(self) -> str:
        return f"{self.sink}:{self.name}"

    def to_json(self) -> dict[str, str]:
        """The JSON form, in the state (`keys.*.sink`) and the journal (an intent's `entry`)."""
        return {"sink": self.sink, "as": self.name}

    @classmethod
    def from_json(cls, value: Any) -> SinkTarget | None:
        """`to_json`'s form read back; None for anything else (the schemas check what is stored)."""
        if isinstance(value, dict) and isinstance(value.get("sink"), str) and isinstance(value.get("as"), str):
            return cls(value["sink"], value["as"])
        return None


@record
class Rotation:
    before_expiry: timedelta | None = None
    max_age: timedelta | None = None
    grace: timedelta = timedelta(0)
    unused_for: timedelta | None = None  # revoke the old key earlier, once unused this long (grace caps it)
    on_grace_end: str = "revoke"  # "revoke" | "keep": what to do with an old key still in use when grace ends


@record
class Expiry:
    """The expiry *spec* as written: `in` a duration from creation, `at` an instant, or never."""

    kind: str  # "never" | "in" | "at"
    duration: timedelta | None = None
    at: datetime | None = None
    text: str = ""  # as written, for display (`90d`, `2027-06-01T00:00:00Z`)

    @cached_property  # read per key by every plan; an Expiry is shared by the keys writing the same text
    def spec(self) -> str:
        """Stable comparable form stored in state: `never`, `in:90d`, `at:2027-06-01T00:00:00Z`."""
        if self.kind == "in":
            return f"in:{self.text}"
        if self.kind == "at" and self.at is not None:
            return f"at:{format_time(self.at)}"
        return "never"

    def resolve(self, created: datetime) -> datetime | None:
        """The absolute expiry for a key created at `created`."""
        if self.kind == "in" and self.duration is not None:
            return created + self.duration
        if self.kind == "at":
            return self.at
        return None


# the references that name no other key (`KeySpec.dependencies` passes over a key with only these)
_PLAIN_REFS = frozenset((EnvRef, FileRef))
NEVER = Expiry("never")
_NO_ROTATION = Rotation()


@record(dict_init=True)  # a plan builds one per key
class KeySpec:
    """One declared key. `attrs` are the provider's non-secret attributes in manifest naming
    (questra: name; textql: description, hosts, headers, query_params, api_provider, auth_type,
    is_private). `secret_inputs` are write-only inputs by attribute path (`auth_value`,
    `auth_value_extra`, `headers.X-Api-Key`). The loader (`manifest.keyspecs.build_key`) passes the
    fields positionally: a field added or moved here is added or moved there too."""

    address: str
    provider: str
    provider_type: str
    attrs: Mapping[str, Any]
    loc: SourceLoc  # (the loader passes its file's KeyLocator: read, this is the key's SourceLoc)
    secret_inputs: Mapping[str, SecretRef] = field(default_factory=dict)
    expiry: Expiry = NEVER
    rotation: Rotation = _NO_ROTATION
    sink: SinkTarget | None = None
    prevent_destroy: bool = False
    entry: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # as written (policies' schema)
    # Where a field of the key's entry is written: (address, `("headers", "X-Key")`) → its file:line.
    # Set by the loader for a key with secret inputs (one function per manifest file, not one per
    # key); it looks the line up only when a message asks.
    field_loc: Callable[[str, tuple[str, ...]], SourceLoc] | None = field(default=None, compare=False, repr=False)

    def input_loc(self, path: str) -> SourceLoc:
        """Where write-only input `path` (`auth_value`, `headers.X-Api-Key`) is written: the line of
        its field (or the key's own line when that is not known)."""
        if self.field_loc is None:
            return self.loc
        header = header_of(path)
        return self.field_loc(self.address, ("headers", header) if header is not None else (path,))

    def dependencies(self) -> list[str]:
        """Addresses whose secrets this key consumes (`secret_of` edges), in a stable order."""
        inputs = self.secret_inputs
        if not inputs or _PLAIN_REFS.issuperset(map(type, inputs.values())):  # most keys: no set, no sort
            return []
        return sorted({r.address for r in inputs.values() if isinstance(r, SecretOfRef)})


class KeyLocator:
    """Where the keys of one manifest file are declared, looked up when asked: the loader builds a
    key with its file's locator as `loc` (one object per file), and `KeySpec.loc` asks it for that
    key's line on the first read (a message, a policy's violation). Most keys' `loc` is never read:
    10,000 keys made no 10,000 `SourceLoc`s for it (~5 % of building them)."""

    __slots__ = ()

    def locate(self, address: str) -> SourceLoc:
        raise NotImplementedError


class _Loc:
    """`KeySpec.loc` as read: the field's value, a `KeyLocator`'s answer once asked (then kept in
    its place). Reading, `replace`, `==`, `repr` and `hash` see a `SourceLoc`, as without it."""

    def __get__(self, spec: KeySpec | None, owner: type | None = None) -> Any:
        if spec is None:
            return self
        held = spec.__dict__
        loc = held.get("loc", _NO_LOC)
        if isinstance(loc, KeyLocator):
            loc = held["loc"] = loc.locate(held["address"])
        elif loc is _NO_LOC:
            raise AttributeError(f"{type(spec).__name__!r} object has no attribute 'loc'")
        return loc

    def __set__(self, spec: KeySpec, value: Any) -> None:  # (`object.__setattr__`: the frozen record refuses first)
        spec.__dict__["loc"] = value

    def __delete__(self, spec: KeySpec) -> None:
        if spec.__dict__.pop("loc", _NO_LOC) is _NO_LOC:
            raise AttributeError("loc")


_NO_LOC = object()
KeySpec.loc = _Loc()  # type: ignore[assignment]  # (after the record is made: the field has no default)


_HEADERS = "headers."


def header_input(name: str) -> str:
    """The secret-input path of HTTP header `name`: `headers.X-Api-Key`. A secret header is the one
    write-only input that can change in place, and its value is never kept from a listing."""
    return _HEADERS + name


def header_of(path: str) -> str | None:
    """The header name in a secret-input path `headers.NAME` (see `header_input`); None for any
    other input."""
    return path[len(_HEADERS):] if path.startswith(_HEADERS) else None


# a header value keyform can send exactly: visible ASCII, inner spaces or tabs allowed
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[ \t]*[\x21-\x7e])*")


def header_problem(value: str) -> str | None:
    """Why `value` cannot be sent as an HTTP header value unchanged, in words that never quote it
    (`keyform.resolve` checks credentials with it, the loader a literal `org_id`)."""
    if _HEADER_VALUE.fullmatch(value):
        return None
    if any(c in "\r\n" for c in value):
        return "a line break"
    if any(ord(c) > 0x7F for c in value):
        return "a non-ASCII character"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value if c != "\t"):
        return "a control character"
    return "leading or trailing whitespace"


def org_id_problem(provider: str, org_id: str) -> str | None:
    """The message for an `org_id` (sent as the `X-Org-Id` header) that cannot be a header value:
    the same from `validate` (a literal) and from `plan` (a literal, or the variable it names)."""
    problem = header_problem(org_id)
    return f"providers.{provider}.org_id holds a character a header cannot carry ({problem})" if problem else None


@record
class StateConfig:
    """`state:`: which backend holds the state. `local` is the file at `Workspace.state_path`;
    `postgres` is the row `workspace` in the database the DSN reference (never a literal) names."""

    backend: str = "local"  # "local" | "postgres"
    dsn: EnvRef | FileRef | None = None
    workspace: str = "default"
    loc: SourceLoc | None = None


def sink_place(config: SinkConfig | None, name: str) -> str:
    """Where sink `name` keeps its entries: the file it writes, which exact aliases share, else
    (a sink that writes no local file, or one the manifests no longer declare) its own name."""
    return config.file_id if config is not None and config.file_id else f"sink:{name}"


def entry_id(sinks: Mapping[str, SinkConfig], target: SinkTarget) -> tuple[str, str]:
    """Which stored entry `target` is, among `sinks`: one id for the same entry through two sink
    names that alias one file; a sink `sinks` does not declare is known by its name alone."""
    return (sink_place(sinks.get(target.sink), target.sink), target.name)


@record
class Workspace:
    """All manifest files merged into one desired configuration."""

    files: tuple[str, ...]
    # sha256 over the manifest files' bytes and the REST definition files they use, for saved-plan
    # staleness checks (`manifest.loader._digest`)
    digest: str
    state_path: str
    providers: Mapping[str, ProviderConfig]
    sinks: Mapping[str, SinkConfig]
    keys: Mapping[str, KeySpec]
    default_sink: str | None = None
    state_backend: StateConfig = StateConfig()
    # `state.fingerprint_key`: keys input fingerprints with a secret never stored (keyform.fingerprintkey)
    fingerprint_key: EnvRef | FileRef | None = None
    fingerprint_key_loc: SourceLoc | None = None
    policies: tuple[Policy, ...] = ()

    def entry_id(self, target: SinkTarget) -> tuple[str, str]:
        """`entry_id` among the manifests' sinks."""
        return entry_id(self.sinks, target)
