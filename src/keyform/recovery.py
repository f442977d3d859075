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
from keyform.kinds import kind
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
    # the salt lets recovery rebuild a state that was never saved (a first apply killed mid-way) with
    # the fingerprints its journaled records were computed under; the state file holds it anyway
    begin = {"op": "begin", "lineage": state.lineage, "serial": state.serial, "salt": state.salt}
    if state.key_check is not None:  # keyed fingerprints: the rebuilt state must stay keyed
        begin["key_check"] = state.key_check
    return begin


def recover(state: State, records: list[dict[str, Any]], pool: ProviderPool) -> Recovery:
    """Fold `records` into `state` where they are newer than it; resolve interrupted creates."""
    out = Recovery()
    if not records:
        return out
    begin = records[0] if records[0].get("op") == "begin" else {}
    if _never_saved(state) and begin.get("serial") == 0 and isinstance(begin.get("lineage"), str):
        # the interrupted apply was the first one: its state was never written, and this command made
        # a new one (another lineage). The journal is the only record of what it did: adopt its identity.
        state.lineage = begin["lineage"]
        if isinstance(begin.get("salt"), str):
            state.salt = begin["salt"]
        if isinstance(begin.get("key_check"), str) and begin["key_check"] != state.key_check:
            from keyform.fingerprintkey import adopt_journaled_key_check

            adopt_journaled_key_check(state, begin["key_check"])
    current = begin.get("lineage") == state.lineage and begin.get("serial") == state.serial
    if current:
        before = state.dumps()
        interrupted = replay(state, records)
        out.state_changed = state.dumps() != before
        if out.state_changed:
            out.notes.append("recovered the outcome of an interrupted apply from its journal")
    else:  # the state was saved after these records: only the interrupted changes matter
        interrupted = replay(None, records)
    for it in interrupted:
        if it.action != "create":
            continue
        try:
            note, revoked = _resolve_create(state, it, pool)
        except KeyformError as exc:
            out.unresolved.append(it)
            out.notes.append(f"{it.address}: could not resolve an interrupted create yet ({exc}); will retry")
            continue
        out.notes.append(note)
        if revoked and it.remote_id is not None and _rotate_overwritten(state, it):
            out.state_changed = True
            held = "holds" if it.sunk else "may hold"  # the sink write is durable before `sunk` is journaled
            out.notes.append(f"{it.address}: its sink entry {held} the secret of that revoked key, not of "
                             f"{state.keys[it.address].remote_id}; {it.address} will be rotated")
    kept = {it.seq for it in out.unresolved}
    out.records = [r for r in records if str(r.get("seq")) in kept]
    return out


def _never_saved(state: State) -> bool:
    """A State made by `State.new()` for a missing state file (every save bumps the serial to >= 1)."""
    return state.serial == 0 and not state.keys and not state.deposed


def _rotate_overwritten(state: State, it: Interrupted) -> bool:
    """An interrupted replacement got its new key (and so may have written the new secret over the
    sink entry of the key still in state: the write is durable before the journal says `sunk`), and
    that new key was just revoked. The live key's secret may be gone from the sink: rotate it."""
    ks = state.keys.get(it.address)
    if ks is None or ks.remote_id == it.remote_id or ks.rotation_requested:
        return False
    if not kind(ks.provider_type).returns_secret:
        return False
    ks.rotation_requested = True
    return True


def _resolve_create(state: State, it: Interrupted, pool: ProviderPool) -> tuple[str, bool]:
    """(a note for the plan, whether a key was revoked)."""
    provider = pool.get(it.provider)
    tracked = {k.remote_id for k in state.keys.values()} | {d.remote_id for d in state.deposed}
    if it.remote_id is not None:
        if it.remote_id in tracked:
            return f"{it.address}: interrupted create of {it.remote_id} was already recorded", False
        provider.delete(it.remote_id)
        where = "its secret reached the sink but state never recorded it" if it.sunk else \
            "its secret never reached a sink"
        return f"{it.address}: an interrupted apply left key {it.remote_id} active ({where}); revoked it", True
    listed = provider.list()
    if listed is None:
        raise KeyformError(f"{it.provider} cannot list keys, so the interrupted create cannot be checked")
    orphans = [k for k in listed if k.id not in tracked and _matches(k, it)]
    for k in orphans:
        provider.delete(k.id)
    if not orphans:
        return f"{it.address}: an interrupted create left no key behind", False
    ids = ", ".join(k.id for k in orphans)
    return f"{it.address}: an interrupted create left {ids} active with no secret in any sink; revoked it", True


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
