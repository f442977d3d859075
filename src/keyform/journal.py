"""The apply journal: a write-ahead log of intent, so a crash between a remote call and the state
write is recovered, never lost. This module owns the journal's format.

Before each remote mutation the applier appends an `Intent`; after it, what happened (`Created`
with the remote id, `Done` with the resulting state record (a create's secret is durable in its
sink before it; journals of earlier keyform versions also hold a `Sunk` there, still read),
`Failed`, `Abandoned` when a create's reply was lost (or its id holds a secret: then with the id's
fingerprint, never the id), `Resolved` when an earlier run's interrupted
create needs nothing more). Each apply's journal starts with a `Begin` naming the state it started
from. Records never hold a secret.

`encode` turns a record into its one-line JSON form (a line of `<state>.journal`, a row of the
postgres backend's `keyform_journal`); `decode` reads one back, validated against
`schemas/journal.schema.json` (`keyform.statecheck`). Both backends store and read records only
through these two, so the format is the same everywhere and older journals stay readable.
`replay` folds finished changes into a State and returns the changes that were interrupted
(`unresolved`: only those); `compacted` is the journal that keeps only some of them.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import field, replace
from datetime import datetime
from typing import Any, ClassVar, Protocol

from keyform.durations import format_time
from keyform.errors import LockLostError, StateError, StateWriteError
from keyform.records import record
from keyform.state import DeposedKey, KeyState, State

log = logging.getLogger("keyform.journal")
_LOGGED = ("seq", "action", "address", "remote_id", "forget", "revoked_deposed")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one, not one per json.dumps call


@record(frozen=False, slots=True)
class Begin:
    """The state an apply started from. The salt (and key check) let recovery rebuild a state that was
    never saved (a first apply killed mid-way) with the fingerprints its records were computed under."""

    op: ClassVar[str] = "begin"
    lineage: str
    serial: int
    salt: str | None = None
    key_check: str | None = None  # keyed fingerprints: the rebuilt state must stay keyed
    at: str | None = None

    @classmethod
    def of(cls, state: State) -> Begin:
        return cls(state.lineage, state.serial, state.salt, state.key_check)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": "begin", "lineage": self.lineage, "serial": self.serial}
        if self.salt is not None:
            out["salt"] = self.salt
        if self.key_check is not None:
            out["key_check"] = self.key_check
        if self.at is not None:
            out["at"] = self.at
        return out


@record(frozen=False, slots=True)
class Intent:
    """A remote mutation about to be made. `details` are the action's own fields (`label`, `at`: when
    a create was sent, `match`, `remote_id`, ...), kept in their order."""

    op: ClassVar[str] = "intent"
    seq: str
    action: str
    address: str
    provider: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def at(self) -> str | None:
        at = self.details.get("at")
        return at if isinstance(at, str) else None

    @at.setter
    def at(self, value: str | None) -> None:
        self.details["at"] = value

    def to_json(self) -> dict[str, Any]:
        return {"op": "intent", "seq": self.seq, "action": self.action, "address": self.address,
                "provider": self.provider, **self.details}


@record(frozen=False, slots=True)
class Created:
    """A create's reply arrived: the new key's id. For a key whose secret goes to a sink, also what
    the change's `done` will record (`key`, with the issued secret's `secret_fingerprint`, and the
    key it `deposes`), written before the sink write: an apply killed after that write and before
    its `done` is finished by recovery when the sink entry holds the secret with that fingerprint
    (`recovery._roll_forward`), rather than its key revoked under consumers that read it."""

    op: ClassVar[str] = "created"
    seq: str
    remote_id: str
    created_at: str | None = None  # the server's clock: recovery calibrates its time windows with it
    at: str | None = None
    key: KeyState | None = None  # the key record the change's `done` will carry
    deposed: DeposedKey | None = None  # the key it replaces, as that `done` will depose it

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": "created", "seq": self.seq, "remote_id": self.remote_id}
        if self.created_at is not None:
            out["created_at"] = self.created_at
        if self.key is not None:
            out["address"] = self.key.address
            out["key"] = self.key.to_json()
        if self.deposed is not None:
            out["deposed"] = self.deposed.to_json()
        if self.at is not None:
            out["at"] = self.at
        return out


@record(frozen=False, slots=True)
class Sunk:
    op: ClassVar[str] = "sunk"
    seq: str
    at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _with_at({"op": "sunk", "seq": self.seq}, self.at)


@record(frozen=False, slots=True)
class Failed:
    op: ClassVar[str] = "failed"
    seq: str
    message: str | None = None
    at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _with_message({"op": "failed", "seq": self.seq}, self.message, self.at)


@record(frozen=False, slots=True)
class Abandoned:
    """A create's reply was lost: the key may exist. The intent stays open for recovery, and this
    record's time bounds the window in which the server may have made the key.

    `id_fingerprint`: the create was answered with an id that holds a secret, and revoking that key
    failed (`applier._refuse_secret_id`). The id itself is never journaled; this is its fingerprint
    under the state's salt or fingerprint key (`State.fingerprint`), by which recovery recognises
    the key in a listing without ever showing its id (`recovery._withheld`).

    `running`: keyform stopped waiting for the create while it still ran (a plug-in's call past its
    bound, `Overdue`; a second Ctrl-C): it may make the key after this record, so this record does
    not end the window; recovery keeps looking for the key for `recovery.LATE_CREATE` after it."""

    op: ClassVar[str] = "abandoned"
    seq: str
    at: str | None = None
    id_fingerprint: str | None = None
    running: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": "abandoned", "seq": self.seq}
        if self.id_fingerprint is not None:
            out["id_fingerprint"] = self.id_fingerprint
        if self.running:
            out["running"] = True
        return _with_at(out, self.at)


@record(frozen=False, slots=True)
class Resolved:
    """An interrupted create of an earlier run (its intent `seq`) needs nothing more."""

    op: ClassVar[str] = "resolved"
    seq: str
    message: str | None = None
    at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _with_message({"op": "resolved", "seq": self.seq}, self.message, self.at)


@record(frozen=False, slots=True)
class Done:
    """A finished change and its effect on the state."""

    op: ClassVar[str] = "done"
    seq: str
    key: KeyState | None = None  # the key's new state record
    forget: str | None = None  # an address the state drops
    deposed: DeposedKey | None = None  # a key replaced by a rotation
    revoked_deposed: str | None = None  # the remote id of a deposed key now revoked
    resolves: str | None = None  # the seq of an interrupted create whose orphan this revoked
    at: str | None = None
    # the remote id of a deposed key `--revoke-old` is about to revoke (`end-grace`): marked so in the
    # state (`DeposedKey.revoke_requested`), the next apply revokes it if this one does not
    revoke_requested: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": "done", "seq": self.seq}
        if self.resolves is not None:
            out["resolves"] = self.resolves
        if self.key is not None:
            out["address"] = self.key.address
            out["key"] = self.key.to_json()
        if self.forget is not None:
            out["forget"] = self.forget
        if self.deposed is not None:
            out["deposed"] = self.deposed.to_json()
        if self.revoked_deposed is not None:
            out["revoked_deposed"] = self.revoked_deposed
        if self.revoke_requested is not None:
            out["revoke_requested"] = self.revoke_requested
        if self.at is not None:
            out["at"] = self.at
        return out


Record = Begin | Intent | Created | Sunk | Failed | Abandoned | Resolved | Done
Change = Intent | Created | Sunk | Failed | Abandoned | Resolved | Done  # the records of one change (a seq)


def _with_at(out: dict[str, Any], at: str | None) -> dict[str, Any]:
    if at is not None:
        out["at"] = at
    return out


def _with_message(out: dict[str, Any], message: str | None, at: str | None) -> dict[str, Any]:
    if message is not None:
        out["message"] = _storable(message)
    return _with_at(out, at)


def _storable(text: str) -> str:
    """`text` as UTF-8 can store it: an error message may quote an API's `\\ud800` escape, a lone
    surrogate no encoder takes (the record could not be written, and its change failed with a
    UnicodeEncodeError instead of the API's words); written as that escape's text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class JournalRecordError(ValueError):
    """A journal line or row that is not a valid record; `str()` is the problem, e.g. `is not a JSON
    object`, for the backend to prefix with where it is."""


def encode(record: Record) -> str:
    """The record's stored form: one line of compact JSON (no newline; non-ASCII kept as is)."""
    return _ENCODER.encode(record.to_json())


def decode(data: str | bytes) -> Record:
    """The record in one stored line or row, validated against the journal schema; JournalRecordError
    (`is not a JSON object`, or what is wrong with it) otherwise."""
    from keyform.statecheck import journal_problem

    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise JournalRecordError("is not a JSON object")
    problem = journal_problem(doc)
    if problem is not None:
        raise JournalRecordError(problem)
    try:
        return from_json(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise JournalRecordError(f"has malformed content ({type(exc).__name__})") from None


def decode_own(data: bytes) -> Record:
    """A line this process encoded and appended itself (`encode`, byte for byte): the record it holds,
    parsed without the schema check `decode` makes. For a backend reading back its own writes
    within one process only; any other line goes through `decode`, and so does every line of a
    journal read by a later process (recovery)."""
    return from_json(json.loads(data))


def from_json(d: dict[str, Any]) -> Record:
    """The typed record of a journal JSON object that matches the schema (see `decode`)."""
    op = d["op"]
    at = d.get("at")
    if op == "intent":
        details = {k: v for k, v in d.items() if k not in ("op", "seq", "action", "address", "provider")}
        return Intent(str(d["seq"]), str(d["action"]), str(d["address"]), str(d["provider"]), details)
    seq = str(d.get("seq"))
    if op == "done":
        key = KeyState.from_json(d["address"], d["key"]) if "key" in d else None
        deposed = DeposedKey.from_json(d["deposed"]) if "deposed" in d else None
        return Done(seq, key, d.get("forget"), deposed, d.get("revoked_deposed"),
                    str(d["resolves"]) if "resolves" in d else None, at, d.get("revoke_requested"))
    if op == "created":
        return Created(seq, d["remote_id"], d.get("created_at"), at,
                       KeyState.from_json(d["address"], d["key"]) if "key" in d else None,
                       DeposedKey.from_json(d["deposed"]) if "deposed" in d else None)
    if op == "sunk":
        return Sunk(seq, at)
    if op == "failed":
        return Failed(seq, d.get("message"), at)
    if op == "abandoned":
        return Abandoned(seq, at, d.get("id_fingerprint"), d.get("running") is True)
    if op == "resolved":
        return Resolved(seq, d.get("message"), at)
    if op == "begin":
        salt, key_check = d.get("salt"), d.get("key_check")
        return Begin(d["lineage"], d["serial"], salt if isinstance(salt, str) else None,
                     key_check if isinstance(key_check, str) else None, at)
    raise JournalRecordError(f'field "op": {op!r} is not a journal record type')


class JournalWriter(Protocol):
    """An open apply journal (a backend's `journal_open()`). `append` is durable when it returns;
    safe to call from many threads."""

    def append(self, record: Record) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> JournalWriter: ...

    def __exit__(self, *exc: object) -> None: ...


# what a change fails with when its record could not be appended (`Journal.failure` says why, once)
NOT_WRITTEN = "the apply journal could not be written (the state store's error is shown at the end)"


class Journal:
    """Numbers and appends an apply's records to a writer (None: numbers them only).

    When the writer fails (a StateError: the database is gone, the disk is full), `failure` keeps the
    first such error and the append raises StateWriteError(NOT_WRITTEN): the applier then starts no
    more changes (`applier._run`), and the store's error is said once, not by every change in flight.
    Each later append still tries (a change in flight journals as much as it can). A lost lock
    (LockLostError) is raised as it is: the applier has its own rule for it (`ApplyReport.lost_lock`)."""

    def __init__(self, sink: JournalWriter | None, run_id: str, clock: Callable[[], datetime] | None = None) -> None:
        self._sink = sink
        self._run = run_id
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._clock = clock  # when set, every record after an intent carries `at`: recovery bounds
        # the time window of a create whose reply was lost by the last record its run wrote
        self.finished = 0  # `done` records appended by this run (what a lost-lock message counts)
        self.failure: str | None = None  # the first error of the writer (see the class docstring)

    def _write(self, record: Change) -> None:
        if self._sink is not None:
            if self._clock is not None and record.at is None:
                record.at = format_time(self._clock())
            try:
                self._sink.append(record)
            except LockLostError:
                raise
            except StateError as exc:
                with self._lock:
                    if self.failure is None:
                        self.failure = str(exc)
                log.debug("journal: %s %s not written: %s", record.op, record.seq, exc)  # (scrubbed by the backend)
                raise StateWriteError(NOT_WRITTEN, nothing_sent=isinstance(record, Intent)) from None
            if log.isEnabledFor(logging.DEBUG):  # `-v`: the record's identifying fields only
                doc = record.to_json()
                log.debug("journal: %s %s", record.op,
                          " ".join(f"{k}={doc[k]}" for k in _LOGGED if doc.get(k) is not None))

    def intent(self, action: str, address: str, provider: str, **details: Any) -> str:
        with self._lock:
            seq = f"{self._run}.{next(self._seq)}"
        self._write(Intent(seq, action, address, provider, details))
        return seq

    def created(self, seq: str, remote_id: str, created_at: str | None = None, *, key: KeyState | None = None,
                deposed: DeposedKey | None = None) -> None:
        """The create `seq` made the key `remote_id`; `key` and `deposed`: what its `done` will record
        (see `Created`)."""
        self._write(Created(seq, remote_id, created_at, key=key, deposed=deposed))

    def failed(self, seq: str, message: str) -> None:
        self._write(Failed(seq, message))

    def abandoned(self, seq: str, id_fingerprint: str | None = None, *, running: bool = False) -> None:
        """The create's reply was lost, or its id holds a secret and is known by `id_fingerprint`
        only, or keyform stopped waiting for it while it ran (`running`; see `Abandoned`)."""
        self._write(Abandoned(seq, id_fingerprint=id_fingerprint, running=running))

    def resolved(self, seq: str, note: str) -> None:
        """An interrupted create of an earlier run (its intent `seq`) needs nothing more."""
        self._write(Resolved(seq, note))

    def done(self, seq: str, *, key: KeyState | None = None, forget: str | None = None,
             deposed: DeposedKey | None = None, revoked_deposed: str | None = None,
             resolves: str | None = None, revoke_requested: str | None = None) -> None:
        self._write(Done(seq, key, forget, deposed, revoked_deposed, resolves, revoke_requested=revoke_requested))
        with self._lock:
            self.finished += 1


@record(frozen=False)
class Interrupted:
    """A change whose outcome the journal does not record: the crash hit between intent and done."""

    seq: str
    action: str
    address: str
    provider: str
    details: dict[str, Any] = field(default_factory=dict)
    remote_id: str | None = None  # known when the create response arrived
    sunk: bool = False  # the secret reached its sink
    # what the create's `done` would have recorded (its `created` record's `key` and `deposed`)
    key: KeyState | None = None
    deposed: DeposedKey | None = None
    # a create answered with an id that holds a secret, whose revoke failed: that id's fingerprint
    # (`Abandoned.id_fingerprint`), never the id
    id_fingerprint: str | None = None


def problem(records: Sequence[Record]) -> tuple[int, str] | None:
    """The first record (its index in `records`) that no keyform apply could have written after the
    ones before it, and what is wrong with it; None when the journal holds together. Each line may
    be valid on its own while the journal is not (a hand edit, a merge, two journals concatenated),
    and recovery must never act on such a one: a forged `done` folds a stranger's key into the state
    (and the next plan deletes it) or drops a live one, a `created` names the key an orphan revoke
    hits. A record repeated as it was is fine (a write retried after a failed append)."""
    lineage: str | None = None
    intents: dict[str, Intent] = {}
    made: dict[str, str] = {}  # a create's seq → the id its `created` record names
    for index, rec in enumerate(records):
        if isinstance(rec, Begin):
            if lineage is not None and rec.lineage != lineage:
                return index, (f"begins an apply of another state (lineage {rec.lineage}; the journal's earlier "
                               f"records are of lineage {lineage}): two journals joined (a merge?)")
            lineage = rec.lineage
            continue
        if isinstance(rec, Intent):
            before = intents.get(rec.seq)
            if before is not None and before != rec:
                return index, f"reuses the seq {rec.seq!r} of an earlier intent for another change"
            intents[rec.seq] = rec
            continue
        intent = intents.get(rec.seq)
        if intent is None:
            return index, f"records the outcome of change {rec.seq!r}, which no earlier intent record starts"
        if isinstance(rec, Done):
            if rec.key is not None and (found := _key_problem(rec.key, rec.seq, intent,
                                                              made.get(rec.seq))) is not None:
                return index, found
            if rec.deposed is not None and (found := _deposed_problem(rec.deposed, rec.seq, intent)) is not None:
                return index, found
            if rec.forget is not None and (rec.forget != intent.address or intent.action != "delete"):
                return index, (f"forgets {rec.forget!r} for change {rec.seq!r}, which is not the delete of that key "
                               f"(its intent: {intent.action} {intent.address!r})")
            if rec.revoked_deposed is not None and (intent.action != "revoke-deposed"
                                                    or intent.details.get("remote_id") != rec.revoked_deposed):
                return index, (f"records deposed key {rec.revoked_deposed} revoked for change {rec.seq!r}, which "
                               f"is not its revoke (its intent: {intent.action} {intent.address!r})")
            if rec.revoke_requested is not None and (intent.action != "end-grace"
                                                     or intent.details.get("remote_id") != rec.revoke_requested):
                return index, (f"records the revocation of deposed key {rec.revoke_requested} requested for change "
                               f"{rec.seq!r}, which is not that request (its intent: {intent.action} "
                               f"{intent.address!r})")
            if rec.resolves is not None and (intent.action != "revoke-orphan"
                                             or intent.details.get("resolves") != rec.resolves):
                return index, (f"resolves {rec.resolves!r} for change {rec.seq!r}, which is not that orphan's "
                               f"revoke (its intent: {intent.action} {intent.address!r})")
        elif isinstance(rec, Created):
            if intent.action != "create":
                return index, f"records a key created by change {rec.seq!r}, whose intent is a {intent.action}"
            made[rec.seq] = rec.remote_id
            # what its `done` will record (recovery may fold it): the same rules as that `done`
            if rec.key is not None and (found := _key_problem(rec.key, rec.seq, intent, rec.remote_id)) is not None:
                return index, found
            if rec.deposed is not None and (found := _deposed_problem(rec.deposed, rec.seq, intent)) is not None:
                return index, found
    return None


def _deposed_problem(deposed: DeposedKey, seq: str, intent: Intent) -> str | None:
    """What is wrong with the key a `done` (or the `created` record announcing it) of the change
    `intent` started deposes: only a create deposes, and only the key its intent `replaces`."""
    if intent.action != "create" or deposed.address != intent.address \
            or deposed.remote_id != intent.details.get("replaces"):
        return (f"deposes key {deposed.remote_id} at {deposed.address!r} for change {seq!r}, which is not the key "
                f"it replaces (its intent: {intent.action} {intent.address!r}, replacing "
                f"{intent.details.get('replaces') or 'none'})")
    return None


def _key_problem(key: KeyState, seq: str, intent: Intent, made: str | None) -> str | None:
    """What is wrong with the key record `key` of a `done` (or of the `created` record announcing it)
    for the change `seq` that `intent` started (None: it is the one that change made or updated). A
    create's records the key its `created` record names, an update's the key its intent names; no
    other change records a key. Otherwise the fold put another key at the address (another
    workspace's: the next apply replaced it, revoking it as a deposed key) and forgot the address's
    own key, still live."""
    if key.address != intent.address:
        return f"records key {key.address!r} for change {seq!r}, whose intent is for {intent.address!r}"
    if intent.action == "create":
        if key.remote_id != made:
            return (f"records key {key.remote_id} at {key.address!r} for change {seq!r}, whose create made "
                    + (f"{made}" if made else "no key it recorded"))
    elif intent.action == "update":
        if key.remote_id != intent.details.get("remote_id"):
            return (f"records key {key.remote_id} at {key.address!r} for change {seq!r}, which updates "
                    f"{intent.details.get('remote_id')}")
    else:
        return f"records key {key.remote_id} at {key.address!r} for change {seq!r}, a {intent.action}"
    return None


def replay(state: State | None, records: Iterable[Record]) -> list[Interrupted]:
    """Apply every finished change in `records` to `state` (in order); return the unfinished ones.
    With `state` None, only find the unfinished ones (no State is built or copied): `unresolved`."""
    open_: dict[str, Interrupted] = {}
    fold = _Fold(state) if state is not None else None
    for rec in records:
        if isinstance(rec, Intent):
            open_[rec.seq] = Interrupted(rec.seq, rec.action, rec.address, rec.provider, dict(rec.details))
        elif isinstance(rec, Created):
            if rec.seq in open_:
                it = open_[rec.seq]
                it.remote_id, it.key, it.deposed = rec.remote_id, rec.key, rec.deposed
        elif isinstance(rec, Sunk):
            if rec.seq in open_:
                open_[rec.seq].sunk = True
        elif isinstance(rec, Abandoned):
            if rec.seq in open_ and rec.id_fingerprint is not None:
                open_[rec.seq].id_fingerprint = rec.id_fingerprint
        elif isinstance(rec, (Failed, Resolved)):
            open_.pop(rec.seq, None)
        elif isinstance(rec, Done):
            intent = open_.pop(rec.seq, None)
            if rec.resolves is not None:
                open_.pop(rec.resolves, None)
            if fold is not None:
                fold.done(rec, intent.provider if intent is not None else None)
    if fold is not None:
        fold.finish()
    return list(open_.values())


def unresolved(records: Iterable[Record]) -> list[Interrupted]:
    """The changes `records` started and did not finish (nothing is folded anywhere)."""
    return replay(None, records)


def compacted(state: State, records: Iterable[Record], seqs: Collection[str]) -> list[Record]:
    """The journal that keeps only the records of the changes `seqs`, after a `Begin` for `state`
    (the state they are pending against); [] when none is left."""
    kept: list[Record] = [r for r in records if not isinstance(r, Begin) and r.seq in seqs]
    return [Begin.of(state), *kept] if kept else []


class _Fold:
    """Folds `Done` records into a State, O(1) per record: deposed keys are indexed by provider
    instance and remote id, and the revoked ones leave `state.deposed` in one pass at the end."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.deposed = {(d.provider, d.remote_id) for d in state.deposed}
        # deposed keys revoked, and those `--revoke-old` set out to revoke (`end-grace`): by the
        # provider instance of their change's intent and remote id (two instances of one type may
        # use the same ids); an instance None (no intent: a journal older than its checks) any
        self.revoked: set[tuple[str | None, str]] = set()
        self.requested: set[tuple[str | None, str]] = set()

    def done(self, rec: Done, provider: str | None = None) -> None:
        state = self.state
        if rec.key is not None:  # a copy: the state's record must not be the journal record's
            ks = rec.key
            before = state.keys.get(ks.address)
            if before is not None and before.sink is not None and before.sink != ks.sink:
                # a finished sink move removes its old entry only after this record: a crash in
                # between leaves it, still keyform's own (`State.written`), never a stranger's,
                # and, if it held the key's secret, a copy the next plan removes (`State.stale`)
                if before.secret_in_sink:
                    state.note_stale(before.sink, ks.address)
                else:  # an imported key's entry: whatever is there is not keyform's to remove
                    state.note_written([before.sink])
            state.keys[ks.address] = replace(ks, attrs=dict(ks.attrs), remote=dict(ks.remote),
                                             fingerprints=dict(ks.fingerprints))
        if rec.forget is not None:
            state.keys.pop(rec.forget, None)
        if rec.deposed is not None:
            dep = rec.deposed
            if (dep.provider, dep.remote_id) not in self.deposed:
                self.deposed.add((dep.provider, dep.remote_id))
                state.deposed.append(replace(dep))
        if rec.revoked_deposed is not None:
            self.revoked.add((provider, rec.revoked_deposed))
        if rec.revoke_requested is not None:
            self.requested.add((provider, rec.revoke_requested))

    def finish(self) -> None:
        # a mark at an entry a key now records (a swap of two entries) is that key's: dropped
        # before anything saves the state (`state rm` of that key must not make it a copy to remove)
        self.state.prune_stale()
        def named(d: DeposedKey, ids: set[tuple[str | None, str]]) -> bool:
            return (d.provider, d.remote_id) in ids or (None, d.remote_id) in ids

        if self.requested:
            self.state.deposed = [replace(d, revoke_requested=True) if named(d, self.requested) else d
                                  for d in self.state.deposed]
        if self.revoked:
            self.state.deposed = [d for d in self.state.deposed if not named(d, self.revoked)]
