"""The state model: what keyform created, as plain data, and its JSON form.

State holds remote ids, non-secret attributes (as last applied and as last seen), the resolved
expiry, where each secret was sunk, and HMAC fingerprints of write-only inputs. Never a secret.
`parse_state` reads a stored state document, refusing anything malformed; storing it (atomically,
under a lock) is a backend's job (`keyform.backends`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import field
from operator import itemgetter
from typing import Any

from keyform import checkcache, redact
from keyform.errors import KeyformError, StateError
from keyform.model import KeySpec, SinkTarget
from keyform.records import record
from keyform.remote import MAX_SECRET
from keyform.statecheck import state_problem
from keyform.strictjson import DuplicateKey, unique_keys

# The state file format this keyform writes. 2 (stop 37) added `secret_fingerprint` to a key; a
# keyform that reads only 1 refuses such a state as "written by a newer keyform" (upgrade), never
# as a damaged file. Every format in READS is read.
FORMAT_VERSION = 2
READS = (1, 2)
_READ_WORDS = " and ".join(map(str, READS))
# the shortest issued secret recorded by fingerprint: under it, a secret could be guessed from its
# fingerprint by whoever reads the state (an 8-digit code: 10^8 HMACs), and short windows match too much
MIN_WATCHED = 20


_SECRET_OF = "secret_of:"


def secret_of_fingerprint(source: str, source_remote_id: str) -> str:
    """The state's record of a `secret_of` input: which issued key fed it, `secret_of:SOURCE@ID`
    (no secret involved; a new key issued for the source changes it)."""
    return f"{_SECRET_OF}{source}@{source_remote_id}"


def secret_of_edge(fingerprint: str) -> tuple[str, str] | None:
    """(source address, source remote id) of a fingerprint made by `secret_of_fingerprint`; None
    for any other fingerprint."""
    if not fingerprint.startswith(_SECRET_OF):
        return None
    source, at, remote_id = fingerprint[len(_SECRET_OF):].partition("@")
    return (source, remote_id) if at else None


@record(frozen=False)
class KeyState:
    address: str
    provider: str  # provider instance name
    provider_type: str
    remote_id: str
    attrs: dict[str, Any]  # non-secret attributes as last applied
    remote: dict[str, Any]  # non-secret attributes as last seen remotely
    expiry_spec: str  # `never` | `in:90d` | `at:...` (see model.Expiry.spec)
    expires_at: str | None
    created_at: str
    sink: SinkTarget | None = None  # where the secret was written; its JSON form is {"sink": name, "as": entry}
    fingerprints: dict[str, str] = field(default_factory=dict)  # write-only input -> HMAC / edge id
    prevent_destroy: bool = False
    secret_in_sink: bool = True  # False for imported keys whose secret keyform never saw
    rotation_requested: bool = False  # set by `keyform import`-style flows to force a rotation
    applied_at: str | None = None  # when keyform last created, updated or imported it (None: before 0.1 records)
    # `<visible length>:<fingerprint>` of the secret the create issued (`State.secret_fingerprint`):
    # lets any later plan recognise that secret echoed in an attribute (`redact.watch`); never the secret
    secret_fingerprint: str | None = None

    @classmethod
    def of(cls, spec: KeySpec, remote_id: str, *, remote: dict[str, Any], expires_at: str | None,
           created_at: str, sink: SinkTarget | None, fingerprints: dict[str, str], applied_at: str | None,
           attrs: dict[str, Any] | None = None, expiry_spec: str | None = None, secret_in_sink: bool = True,
           rotation_requested: bool = False, secret_fingerprint: str | None = None) -> KeyState:
        """The record of `spec`'s key `remote_id`, as created, updated or imported: address, provider,
        attributes (unless given), expiry spec (unless given) and prevent_destroy are the spec's.
        What the API reported (`remote`, and `attrs` when given: an import's) is recorded without
        any secret this process remembered (`redact.mask`): the state may be committed."""
        return cls(
            address=spec.address, provider=spec.provider, provider_type=spec.provider_type, remote_id=remote_id,
            attrs=dict(spec.attrs) if attrs is None else redact.mask(attrs),
            # most replies echo what the manifests asked for: nothing of the API's own to mask (and
            # no scrub patterns built for the secret a create just issued, a lock every worker shares)
            remote=remote if _asked_for(remote, spec.attrs) else redact.mask(remote),
            expiry_spec=spec.expiry.spec if expiry_spec is None else expiry_spec, expires_at=expires_at,
            created_at=created_at, sink=sink, fingerprints=fingerprints, prevent_destroy=spec.prevent_destroy,
            secret_in_sink=secret_in_sink, rotation_requested=rotation_requested, applied_at=applied_at,
            secret_fingerprint=secret_fingerprint,
        )

    def to_json(self) -> dict[str, Any]:
        out = {
            "provider": self.provider,
            "provider_type": self.provider_type,
            "remote_id": self.remote_id,
            "attributes": self.attrs,
            "remote_attributes": self.remote,
            "expiry_spec": self.expiry_spec,
            "expires_at": self.expires_at,
            "created_at": self.created_at,
            "sink": None if self.sink is None else self.sink.to_json(),
            "fingerprints": dict(sorted(self.fingerprints.items())),
            "prevent_destroy": self.prevent_destroy,
            "secret_in_sink": self.secret_in_sink,
            "rotation_requested": self.rotation_requested,
        }
        if self.applied_at is not None:
            out["applied_at"] = self.applied_at
        if self.secret_fingerprint is not None:
            out["secret_fingerprint"] = self.secret_fingerprint
        return out

    @classmethod
    def from_json(cls, address: str, d: dict[str, Any]) -> KeyState:
        """The record of `d`, a state document's `keys.ADDRESS` (or a journal record's `key`) that
        the schema check passed (`statecheck`: `schemas/state.schema.json#/$defs/key`). Every
        path here checks it first: `parse_state` (a local file, PostgreSQL, `state push`) and the
        journal's `decode`; `decode_own` reads back lines `to_json` wrote. The record takes `d`'s
        attribute and fingerprint objects as they are (no copy: the caller hands over a document
        it has just decoded and then drops).

        Called once per key of the state: the schema's required fields (all but `applied_at` and
        `secret_fingerprint`, in field order) are read in one `itemgetter` call, and the values
        are taken as they are: the schema proved their types (objects, strings, booleans; `sink`
        an object with string `sink` and `as`, or null), so the defaults and `bool()`s the
        earlier reading applied could never change one (~0.5 µs a key less). A `d` that is not
        such an object raises KeyError or TypeError, as before."""
        return _key_states({address: d})[address]


# `KeyState.from_json`: the fields `schemas/state.schema.json#/$defs/key` requires, in field order
_KEY_FIELDS = itemgetter("provider", "provider_type", "remote_id", "attributes", "remote_attributes", "expiry_spec",
                         "expires_at", "created_at", "sink", "fingerprints", "prevent_destroy", "secret_in_sink",
                         "rotation_requested")


def _key_states(keys: dict[str, dict[str, Any]]) -> dict[str, KeyState]:
    """`KeyState.from_json` of each of a state document's `keys` (address -> object), in their
    order: one loop, no call per key but the record's own (a state reads thousands of keys:
    `State.from_json` of the 10,000-key bench 8.9 -> 8.3 ms)."""
    out: dict[str, KeyState] = {}
    fields, key_state, target = _KEY_FIELDS, KeyState, SinkTarget
    for address, d in keys.items():
        (provider, provider_type, remote_id, attrs, remote, expiry_spec, expires_at, created_at, sink,
         fingerprints, prevent_destroy, secret_in_sink, rotation_requested) = fields(d)
        get = d.get
        out[address] = key_state(address, provider, provider_type, remote_id, attrs, remote, expiry_spec, expires_at,
                                 created_at, None if sink is None else target(sink["sink"], sink["as"]), fingerprints,
                                 prevent_destroy, secret_in_sink, rotation_requested, get("applied_at"),
                                 get("secret_fingerprint"))
    return out


def _asked_for(remote: Mapping[str, Any], asked: Mapping[str, Any]) -> bool:
    """Whether every attribute the API reported is the value the manifests asked for."""
    return all(asked.get(name, _ABSENT) == value for name, value in remote.items())


_ABSENT = object()


@record(frozen=False)
class DeposedKey:
    """An old key replaced by a rotation, kept alive until `revoke_after`, then revoked."""

    address: str
    provider: str
    provider_type: str
    remote_id: str
    deposed_at: str
    revoke_after: str
    last_error: str | None = None
    # the usage rule at deposition (rotation.unused_for as a duration, on_grace_end); the manifest's
    # current rule for the address wins while it is declared (keyform.usage.retirement_rule)
    unused_for: str | None = None
    on_grace_end: str = "revoke"
    # the old key's issued secret, as `KeyState.secret_fingerprint`: it still works through the grace
    secret_fingerprint: str | None = None
    # the `secret_of` inputs it was issued with (`secret_of_fingerprint`): live through its grace, it
    # still sends those source keys' secrets, so they are not revoked before it is (`State.fed_by`)
    fed_by: tuple[str, ...] = ()
    # `--revoke-old` set out to revoke it now (its grace, usage and users notwithstanding) and did not
    # finish (a kill, a failed revoke): the next apply revokes it as the flag would (`planner.plan`)
    revoke_requested: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "address": self.address,
            "provider": self.provider,
            "provider_type": self.provider_type,
            "remote_id": self.remote_id,
            "deposed_at": self.deposed_at,
            "revoke_after": self.revoke_after,
            "last_error": self.last_error,
            "unused_for": self.unused_for,
            "on_grace_end": self.on_grace_end,
        }
        if self.secret_fingerprint is not None:
            out["secret_fingerprint"] = self.secret_fingerprint
        if self.fed_by:
            out["fed_by"] = list(self.fed_by)
        if self.revoke_requested:
            out["revoke_requested"] = True
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DeposedKey:
        return cls(address=d["address"], provider=d["provider"], provider_type=d["provider_type"],
                   remote_id=d["remote_id"], deposed_at=d["deposed_at"], revoke_after=d["revoke_after"],
                   last_error=d.get("last_error"), unused_for=d.get("unused_for"),
                   on_grace_end=d.get("on_grace_end") or "revoke", secret_fingerprint=d.get("secret_fingerprint"),
                   fed_by=tuple(d.get("fed_by") or ()), revoke_requested=d.get("revoke_requested") is True)


@record(frozen=False)
class State:
    lineage: str
    serial: int
    salt: str  # hex; keys the HMAC fingerprints of write-only inputs
    keys: dict[str, KeyState] = field(default_factory=dict)
    deposed: list[DeposedKey] = field(default_factory=list)
    # keyed fingerprint mode (keyform.fingerprintkey): the check value of the key; None: salted mode
    key_check: str | None = None
    # the HMAC key in keyed mode, derived from the external key and the salt; never stored
    mac_key: bytes | None = field(default=None, repr=False, compare=False)
    # sink name -> entries keyform wrote there that no key records (a create or a sink move cut
    # short by a crash, a key `state rm`-ed): keyform's own, so plan may overwrite them; any other
    # entry of a guarded sink (a .env variable) it refuses to overwrite (`planner.foreign_entries`)
    written: dict[str, set[str]] = field(default_factory=dict)
    # sink name -> entry -> the key whose secret it may still hold: the old entry of a sink move
    # whose removal a crash or a sink error cut off (a copy of a live secret where the manifests no
    # longer put it). Also in `written`. The next plan removes each that no key writes or records
    # (`State.stale_copies`, `planner.plan`); never those of a key `state rm`-ed, which keyform only forgets.
    stale: dict[str, dict[str, str]] = field(default_factory=dict)

    def _recorded_entries(self) -> set[SinkTarget]:
        return {ks.sink for ks in self.keys.values() if ks.sink is not None}

    def owned_entries(self) -> set[SinkTarget]:
        """Every entry keyform wrote and has not removed: the keys' and `written`."""
        return self._recorded_entries() | {SinkTarget(sink, name) for sink, names in self.written.items()
                                           for name in names}

    def note_written(self, entries: Iterable[SinkTarget]) -> bool:
        """Record entries keyform wrote outside any key's record; True if that added one."""
        added = False
        for entry in entries:
            names = self.written.setdefault(entry.sink, set())
            if entry.name not in names:
                names.add(entry.name)
                added = True
        return added

    def note_stale(self, entry: SinkTarget, address: str) -> None:
        """Record `entry` as a copy of `address`'s secret left behind by its sink move (and as
        keyform's own, `note_written`)."""
        self.note_written([entry])
        self.stale.setdefault(entry.sink, {})[entry.name] = address

    def forget_entry(self, entry: SinkTarget) -> None:
        """`entry` is gone from its sink: neither keyform's to track nor a stale copy any more."""
        self.written.get(entry.sink, set()).discard(entry.name)
        self.unmark_stale(entry)

    def unmark_stale(self, entry: SinkTarget) -> None:
        """`entry` is no longer a stale copy to remove (it stays keyform's own, `written`)."""
        self.stale.get(entry.sink, {}).pop(entry.name, None)

    def prune_stale(self, same: Callable[[SinkTarget], Hashable] | None = None) -> None:
        """Drop the stale marks of entries a key records now (`same`: which entries are one, e.g.
        `Workspace.entry_id` for aliases of one file; exact by default). That key owns the entry:
        were it forgotten later (`state rm`), its entry must not come back as a copy to remove."""
        if not any(self.stale.values()):
            return
        ident = same or (lambda t: t)
        recorded = {ident(t) for t in self._recorded_entries()}
        for sink, names in self.stale.items():
            for name in [n for n in names if ident(SinkTarget(sink, n)) in recorded]:
                del names[name]

    def readdress_stale(self, old: str, new: str | None) -> None:
        """The stale copies of `old`'s secret now belong to `new` (`state mv`), or to no key (`state
        rm`: keyform forgets the key and leaves its entries as they are, still its own in `written`)."""
        for names in self.stale.values():
            for name, address in list(names.items()):
                if address == old:
                    if new is None:
                        del names[name]
                    else:
                        names[name] = new

    def fed_by(self) -> dict[tuple[str, str], list[str]]:
        """(source address, source remote id) → the keys (sorted) whose `secret_of` input that key
        fed: while one is fed by it, a key's secret is in use and it is not revoked (an old source
        key revoked before a consumer was re-issued left the consumer a dead secret). A deposed
        consumer counts too, as `ADDRESS (deposed ID)` (`Change.key`'s form): live through its
        grace, it still sends the old source secret. One pass; look keys up in it."""
        out: dict[tuple[str, str], list[str]] = {}
        for address in sorted(self.keys):
            for fp in self.keys[address].fingerprints.values():
                if (edge := secret_of_edge(fp)) is not None:
                    out.setdefault(edge, []).append(address)
        for dep in self.deposed:
            for fp in dep.fed_by:
                if (edge := secret_of_edge(fp)) is not None:
                    out.setdefault(edge, []).append(f"{dep.address} (deposed {dep.remote_id})")
        return out

    def stale_copies(self) -> list[tuple[SinkTarget, str]]:
        """(entry, address) of each stale copy (`stale`) that no key records now, sorted."""
        if not any(self.stale.values()):  # most states: no pass over the keys
            return []
        recorded = self._recorded_entries()
        return sorted(((t, a) for sink, names in self.stale.items() for name, a in names.items()
                       if (t := SinkTarget(sink, name)) not in recorded), key=lambda x: (str(x[0]), x[1]))

    def _written_json(self) -> dict[str, list[str]]:
        """`written`, less what a key records now (that key owns it) and empty sinks."""
        if not self.written:
            return {}
        by_keys = self._recorded_entries()
        out = {sink: sorted(n for n in names if SinkTarget(sink, n) not in by_keys)
               for sink, names in self.written.items()}
        return {sink: names for sink, names in sorted(out.items()) if names}

    @classmethod
    def new(cls) -> State:
        return cls(lineage=str(uuid.uuid4()), serial=0, salt=os.urandom(16).hex())  # (secrets.token_hex, unimported)

    def fingerprint(self, value: str) -> str:
        """HMAC-SHA256 of a write-only input: under this state's salt (salted mode), or under a key
        that is never stored (keyed mode, `hmac-sha256-keyed:`; keyform.fingerprintkey)."""
        mac, prefix = self._keyed_mac()
        mac.update(value.encode("utf-8"))
        return prefix + mac.hexdigest()

    def secret_fingerprint(self, secret: str | None) -> str | None:
        """`<n>:<fingerprint>` of an issued secret's visible characters (whitespace removed, as
        `redact` compares): recorded in the key's state so that any later process can recognise the
        secret where an API echoes it (`redact.watch`). None for no secret, one under
        `MIN_WATCHED` visible characters, one over `MAX_SECRET` characters (the applier refuses such a
        secret; its length would not fit the state schema's 5 digits), or when this state cannot
        fingerprint now (a keyed state without its key)."""
        if not secret or len(secret) > MAX_SECRET:
            return None
        visible = "".join(secret.split())
        if len(visible) < MIN_WATCHED:
            return None
        try:
            return f"{len(visible)}:{self.fingerprint(visible)}"
        except (KeyformError, ValueError, TypeError):
            return None

    def fingerprinter(self) -> Callable[[str], str]:
        """`fingerprint`, for many values: the HMAC is keyed once here and copied per value (a copy
        of a keyed HMAC costs a third of keying a new one). Under the state's mode and key as
        they are now; where `fingerprint` would raise, the function returned is `fingerprint`
        itself, so it raises the same error when called."""
        try:
            keyed, prefix = self._keyed_mac()
        except (KeyformError, ValueError, TypeError):  # no key, or a salt that is not hex (or not a string)
            return self.fingerprint

        def fingerprint(value: str) -> str:
            mac = keyed.copy()
            mac.update(value.encode("utf-8"))
            return prefix + mac.hexdigest()

        return fingerprint

    def _keyed_mac(self) -> tuple[hmac.HMAC, str]:
        """The HMAC keyed for this state's mode, and the prefix its fingerprints carry."""
        if self.key_check is not None:
            if self.mac_key is None:
                raise KeyformError("the state's fingerprints are keyed: state.fingerprint_key is needed "
                                   "to compute them")
            return hmac.new(self.mac_key, digestmod=hashlib.sha256), "hmac-sha256-keyed:"
        return hmac.new(bytes.fromhex(self.salt), digestmod=hashlib.sha256), "hmac-sha256:"

    def holders(self) -> dict[tuple[str, str], str]:
        """(provider type, remote id) -> the address that holds it (`ADDRESS (deposed)` for the old
        key of a rotation): one remote key is managed by one address."""
        out = {(d.provider_type, d.remote_id): f"{d.address} (deposed)" for d in self.deposed}
        out.update(((k.provider_type, k.remote_id), a) for a, k in self.keys.items())
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "lineage": self.lineage,
            "serial": self.serial,
            "fingerprint_salt": self.salt,
            **({"fingerprint_key_check": self.key_check} if self.key_check is not None else {}),
            "keys": {a: self.keys[a].to_json() for a in sorted(self.keys)},
            "deposed": [d.to_json() for d in sorted(self.deposed, key=lambda d: (d.address, d.remote_id))],
            **({"written_entries": written} if (written := self._written_json()) else {}),
            **({"stale_entries": stale} if (stale := self._stale_json()) else {}),
        }

    def _stale_json(self) -> dict[str, dict[str, str]]:
        """`stale`, less what a key records now and empty sinks (sorted)."""
        out: dict[str, dict[str, str]] = {}
        for entry, address in self.stale_copies():
            out.setdefault(entry.sink, {})[entry.name] = address
        return out

    def dumps(self) -> str:
        """The state file's text: a JSON object with one line per field, per key and per deposed
        key (addresses sorted, fields in a fixed order). Readable and diff-friendly (a changed key
        is one changed line), and 5x faster to write than `indent=2`, which makes json fall back
        to its pure-Python encoder: 0.6 s for 10,000 keys (docs/performance.md)."""
        lines = []
        for name, value in self.to_json().items():
            if isinstance(value, dict) and value:
                rows = [f"    {_compact(k)}: {_compact(v)}" for k, v in value.items()]
            elif isinstance(value, list) and value:
                rows = [f"    {_compact(v)}" for v in value]
            else:
                lines.append(f"  {_compact(name)}: {_compact(value)}")
                continue
            opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
            lines.append(f"  {_compact(name)}: {opening}\n" + ",\n".join(rows) + f"\n  {closing}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> State:
        return cls(
            lineage=d["lineage"],
            serial=int(d["serial"]),
            salt=d["fingerprint_salt"],
            keys=_key_states(d.get("keys") or {}),
            deposed=[DeposedKey.from_json(x) for x in d.get("deposed") or []],
            key_check=d.get("fingerprint_key_check"),
            written={sink: set(names) for sink, names in (d.get("written_entries") or {}).items()},
            stale={sink: dict(names) for sink, names in (d.get("stale_entries") or {}).items()},
        )


def parse_state(raw: bytes, name: str, untouched: str, what: str = "state file") -> State:
    """The State in `raw` (a state document's UTF-8 JSON), or StateError `<name>: <what> <problem>;
    <untouched>` for anything unreadable, malformed or from a newer keyform. Every backend reads its
    state with it."""
    # bytes that passed the check before (checkcache) are read as they are; any others are read
    # refusing a key twice in one object, which json.loads would settle silently for the last one
    # (a second record of one address: the first key, live, untracked): ~1.4x the parse, once
    known = checkcache.passed("state", raw)
    try:
        doc = json.loads(raw) if known else json.loads(raw, object_pairs_hook=unique_keys)
    except DuplicateKey as exc:
        raise StateError(f"{name}: {what} has the key {exc.key!r} twice in one object (a hand edit or a merge?): "
                         f"keyform would keep only the last; {untouched}") from None
    except json.JSONDecodeError as exc:
        from keyform.manifest.loader import looks_like_manifest

        if looks_like_manifest(name, raw):  # `--state keyform.yaml`, meant as `-f keyform.yaml`
            raise StateError(f"{name}: this looks like a manifest, not a {what}: manifests are named with -f, "
                             f"a state file with --state; it was left untouched") from None
        raise StateError(f"{name}: {what} is not valid JSON (truncated?): line {exc.lineno} column "
                         f"{exc.colno}; {untouched}") from None
    except UnicodeDecodeError:
        raise StateError(f"{name}: {what} is not valid UTF-8; {untouched}") from None
    except RecursionError:
        raise StateError(f"{name}: {what} is nested too deeply to be a keyform state; {untouched}") from None
    if not isinstance(doc, dict):
        raise StateError(f"{name}: {what} does not hold a JSON object; {untouched}")
    version = doc.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise StateError(f"{name}: {what} was written by a newer keyform (format {version}; this "
                         f"keyform reads {_READ_WORDS}); upgrade keyform to use it")
    checked = False
    if "format_version" in doc and (version not in READS or isinstance(version, bool)):
        problem: str | None = f"unsupported format_version {version!r} (this keyform reads {_READ_WORDS}" + (
            ", a number)" if not isinstance(version, int) or isinstance(version, bool) else ")")
    elif known:  # these exact bytes passed the check before (checkcache)
        problem = None
    else:
        problem, checked = state_problem(doc), True
    if problem is None:
        try:
            state = State.from_json(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = f"malformed content ({type(exc).__name__})"
        else:
            if checked:
                checkcache.remember("state", raw)
            return state
    from keyform.plan import looks_like_saved_plan

    if looks_like_saved_plan(doc):  # `plan --state some.plan`: its format_version is no state's
        raise StateError(f"{name}: this looks like a keyform plan file (written by `keyform plan --out`), not a "
                         f"{what}: a saved plan is applied with `keyform apply PLANFILE` or shown with `keyform "
                         "show PLANFILE`; it was left untouched")
    raise StateError(f"{name}: {what} {problem}; {untouched}")


def _compact(value: Any) -> str:
    """One JSON value on one line (C encoder), `, ` and `: ` separators, non-ASCII kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
