"""Crash recovery: finish what an interrupted apply left in its journal.

Finished changes are folded into the state (`journal.replay`). An interrupted *create* is the
dangerous case: the remote key may exist while its secret never reached a sink and state never
heard of it. Recovery finds it (by the remote id if the response arrived, otherwise by listing
and matching the attributes and creation time the intent recorded) and revokes/deletes it, so
the next plan simply creates the key again. Interrupted updates, deletes and revocations need
nothing: the key is still in state and the plan repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from keyform.durations import parse_time
from keyform.errors import KeyformError
from keyform.journal import Interrupted, replay
from keyform.refresh import ProviderPool
from keyform.remote import RemoteKey
from keyform.state import State

CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class Recovery:
    notes: list[str] = field(default_factory=list)
    state_changed: bool = False
    unresolved: list[Interrupted] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # what still must stay journaled


def begin_record(state: State) -> dict[str, Any]:
    return {"op": "begin", "lineage": state.lineage, "serial": state.serial}


def recover(state: State, records: list[dict[str, Any]], pool: ProviderPool) -> Recovery:
    """Fold `records` into `state` where they are newer than it; resolve interrupted creates."""
    out = Recovery()
    if not records:
        return out
    begin = records[0] if records[0].get("op") == "begin" else {}
    current = begin.get("lineage") == state.lineage and begin.get("serial") == state.serial
    if current:
        before = state.dumps()
        interrupted = replay(state, records)
        out.state_changed = state.dumps() != before
        if out.state_changed:
            out.notes.append("recovered the outcome of an interrupted apply from its journal")
    else:  # the state was saved after these records: only the interrupted changes matter
        interrupted = replay(State.from_json(state.to_json()), records)
    for it in interrupted:
        if it.action != "create":
            continue
        try:
            note = _resolve_create(state, it, pool)
        except KeyformError as exc:
            out.unresolved.append(it)
            out.notes.append(f"{it.address}: could not resolve an interrupted create yet ({exc}); will retry")
            continue
        out.notes.append(note)
    kept = {it.seq for it in out.unresolved}
    out.records = [r for r in records if str(r.get("seq")) in kept]
    return out


def _resolve_create(state: State, it: Interrupted, pool: ProviderPool) -> str:
    provider = pool.get(it.provider)
    tracked = {k.remote_id for k in state.keys.values()} | {d.remote_id for d in state.deposed}
    if it.remote_id is not None:
        if it.remote_id in tracked:
            return f"{it.address}: interrupted create of {it.remote_id} was already recorded"
        provider.delete(it.remote_id)
        where = "its secret reached the sink but state never recorded it" if it.sunk else \
            "its secret never reached a sink"
        return f"{it.address}: an interrupted apply left key {it.remote_id} active ({where}); revoked it"
    listed = provider.list()
    if listed is None:
        raise KeyformError(f"{it.provider} cannot list keys, so the interrupted create cannot be checked")
    orphans = [k for k in listed if k.id not in tracked and _matches(k, it)]
    for k in orphans:
        provider.delete(k.id)
    if not orphans:
        return f"{it.address}: an interrupted create left no key behind"
    ids = ", ".join(k.id for k in orphans)
    return f"{it.address}: an interrupted create left {ids} active with no secret in any sink; revoked it"


def _matches(key: RemoteKey, it: Interrupted) -> bool:
    if key.revoked:
        return False
    match = it.details.get("match") or {}
    if any(key.attrs.get(n) != v for n, v in match.items()):
        return False
    at = it.details.get("at")
    if at and key.created_at:
        try:
            return parse_time(key.created_at) >= parse_time(at) - CLOCK_SKEW
        except ValueError:
            return True
    return True
