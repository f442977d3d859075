"""The apply journal: a write-ahead log of intent, so a crash between a remote call and the state
write is recovered, never lost.

Before each remote mutation the applier appends an `intent`; after it, what happened (`created`
with the remote id, `sunk` once the secret is durable, `done` with the resulting state record).
Records are small JSON objects and never hold a secret. `replay` folds finished changes into a
State and returns the changes that were interrupted, for recovery to resolve.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from keyform.durations import format_time
from keyform.state import DeposedKey, KeyState, State

log = logging.getLogger("keyform.journal")
_LOGGED = ("seq", "action", "address", "remote_id", "forget", "revoked_deposed")


class JournalSink(Protocol):
    def append(self, record: dict[str, Any]) -> None: ...


class Journal:
    """Numbers and appends records; `append` must be durable (fsync) when it returns."""

    def __init__(self, sink: JournalSink | None, run_id: str, clock: Callable[[], datetime] | None = None) -> None:
        self._sink = sink
        self._run = run_id
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._clock = clock  # when set, every record after an intent carries `at`: recovery bounds
        # the time window of a create whose reply was lost by the last record its run wrote

    def _write(self, record: dict[str, Any]) -> None:
        if self._sink is not None:
            if self._clock is not None and "at" not in record:
                record["at"] = format_time(self._clock())
            self._sink.append(record)
            if log.isEnabledFor(logging.DEBUG):  # `-v`: the record's identifying fields only
                log.debug("journal: %s %s", record["op"],
                          " ".join(f"{k}={record[k]}" for k in _LOGGED if record.get(k) is not None))

    def intent(self, action: str, address: str, provider: str, **details: Any) -> str:
        with self._lock:
            seq = f"{self._run}.{next(self._seq)}"
        self._write({"op": "intent", "seq": seq, "action": action, "address": address,
                     "provider": provider, **details})
        return seq

    def created(self, seq: str, remote_id: str, created_at: str | None = None) -> None:
        rec: dict[str, Any] = {"op": "created", "seq": seq, "remote_id": remote_id}
        if created_at is not None:  # the server's clock: recovery calibrates its time windows with it
            rec["created_at"] = created_at
        self._write(rec)

    def sunk(self, seq: str) -> None:
        self._write({"op": "sunk", "seq": seq})

    def failed(self, seq: str, message: str) -> None:
        self._write({"op": "failed", "seq": seq, "message": message})

    def abandoned(self, seq: str) -> None:
        """The create's reply was lost: the key may exist. The intent stays open for recovery, and
        this record's time bounds the window in which the server may have made the key."""
        self._write({"op": "abandoned", "seq": seq})

    def resolved(self, seq: str, note: str) -> None:
        """An interrupted create of an earlier run (its intent `seq`) needs nothing more."""
        self._write({"op": "resolved", "seq": seq, "message": note})

    def done(self, seq: str, *, key: KeyState | None = None, forget: str | None = None,
             deposed: DeposedKey | None = None, revoked_deposed: str | None = None,
             resolves: str | None = None) -> None:
        rec: dict[str, Any] = {"op": "done", "seq": seq}
        if resolves is not None:  # the orphan of that interrupted create was revoked
            rec["resolves"] = resolves
        if key is not None:
            rec["address"] = key.address
            rec["key"] = key.to_json()
        if forget is not None:
            rec["forget"] = forget
        if deposed is not None:
            rec["deposed"] = deposed.to_json()
        if revoked_deposed is not None:
            rec["revoked_deposed"] = revoked_deposed
        self._write(rec)


@dataclass
class Interrupted:
    """A change whose outcome the journal does not record: the crash hit between intent and done."""

    seq: str
    action: str
    address: str
    provider: str
    details: dict[str, Any] = field(default_factory=dict)
    remote_id: str | None = None  # known when the create response arrived
    sunk: bool = False  # the secret reached its sink


def replay(state: State | None, records: Iterable[dict[str, Any]]) -> list[Interrupted]:
    """Apply every finished change in `records` to `state` (in order); return the unfinished ones.
    With `state` None, only find the unfinished ones (no State is built or copied)."""
    open_: dict[str, Interrupted] = {}
    fold = _Fold(state) if state is not None else None
    for rec in records:
        op, seq = rec.get("op"), str(rec.get("seq"))
        if op == "intent":
            details = {k: v for k, v in rec.items() if k not in ("op", "seq", "action", "address", "provider")}
            open_[seq] = Interrupted(seq, str(rec.get("action")), str(rec.get("address")),
                                     str(rec.get("provider")), details)
        elif op == "created" and seq in open_:
            open_[seq].remote_id = rec.get("remote_id")
        elif op == "sunk" and seq in open_:
            open_[seq].sunk = True
        elif op in ("failed", "resolved"):
            open_.pop(seq, None)
        elif op == "done":
            open_.pop(seq, None)
            if "resolves" in rec:
                open_.pop(str(rec["resolves"]), None)
            if fold is not None:
                fold.done(rec)
    if fold is not None:
        fold.finish()
    return list(open_.values())


class _Fold:
    """Folds `done` records into a State, O(1) per record: deposed keys are indexed by remote id,
    and the revoked ones leave `state.deposed` in one pass at the end."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.deposed = {d.remote_id for d in state.deposed}
        self.revoked: set[str] = set()

    def done(self, rec: dict[str, Any]) -> None:
        state = self.state
        if "key" in rec:
            ks = KeyState.from_json(rec["address"], rec["key"])
            state.keys[ks.address] = ks
        if "forget" in rec:
            state.keys.pop(rec["forget"], None)
        if "deposed" in rec:
            dep = DeposedKey.from_json(rec["deposed"])
            if dep.remote_id not in self.deposed:
                self.deposed.add(dep.remote_id)
                state.deposed.append(dep)
        if "revoked_deposed" in rec:
            self.revoked.add(rec["revoked_deposed"])

    def finish(self) -> None:
        if self.revoked:
            self.state.deposed = [d for d in self.state.deposed if d.remote_id not in self.revoked]
