"""Crash recovery: read what an interrupted apply left in its journal, without acting on it.

`assess` folds the journal's finished changes into the in-memory State (`journal.replay`; nothing
is written) and works out what each interrupted *create* left behind. That is the dangerous case:
the remote key may exist while its secret never reached a sink and state never heard of it.
Recovery revokes only keys keyform provably created:

- the remote id arrived (journaled `created`): that key, if no state tracks it; unless its secret
  provably reached the sink (the `created` record carries the key record its `done` would have,
  with the secret's fingerprint, and the entry read back holds that secret): then the create is
  finished instead (`_roll_forward`), as a consumer may have read the secret already;
- the reply carried an id that holds a secret, and the revoke that followed failed (journaled
  `abandoned` with the id's fingerprint, never the id): the untracked key whose id has that
  fingerprint under the state's salt or key. Its id is never shown, journaled or recorded: the
  plan names it by a placeholder (`pending.withheld_id`), and only the revoke call sees it;
- the reply was lost: the untracked keys with the create's attributes whose server-side
  `created_at` lies inside the window `intent time - CLOCK_SKEW ... abandonment + CLOCK_SKEW`
  (abandonment: the last record that run journaled, or the `abandoned` record written when the
  reply was lost; a create keyform stopped waiting for while it ran, `abandoned` with `running`:
  that record + LATE_CREATE, and until that window ends one with no key of its own found yet,
  uncertain or left over, stays journaled to look again).
  Interrupted creates with the same attributes are taken together; when the
  window holds no more candidates than there are such creates, every candidate is an orphan.
  Otherwise (another workspace made a key of the same name meanwhile, say) nothing is revoked:
  the plan names the candidates and the `keyform import` command to adopt each.

The results (`Orphan`, `Uncertain`) go into the plan as changes and notes; `apply` carries them
out (`commit` rewrites the journal once the plan was approved). `plan` writes nothing.
Interrupted updates, deletes and revocations need nothing: the key is still in state and the plan
repeats them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import field, replace
from datetime import datetime, timedelta
from typing import Any

from keyform import redact
from keyform.durations import format_time, maybe_time, parse_time, utcnow
from keyform.errors import PLUGIN_FAILURES, JournalError, KeyformError, SinkError
from keyform.journal import Abandoned, Begin, Created, Done, Intent, Interrupted, Record, problem, replay, unresolved
from keyform.kinds import ProviderKind, kind, matched_attributes
from keyform.model import SinkTarget
from keyform.pending import Orphan, Uncertain
from keyform.providers.pool import ProviderPool
from keyform.records import record
from keyform.remote import RemoteKey, as_json, clock_offset
from keyform.state import KeyState, State

CLOCK_SKEW = timedelta(minutes=5)
# how long after keyform stopped waiting for a create that still ran (`Abandoned.running`: a plug-in's
# call past its bound, a second Ctrl-C) its key may yet be made: the end of that create's window, and
# (with the window's margin) how long a recovery that finds no key of its own keeps the create
# journaled to look again
LATE_CREATE = timedelta(hours=1)


@record(frozen=False)
class Recovery:
    notes: list[str] = field(default_factory=list)
    state_changed: bool = False  # finished changes were folded into the (in-memory) state
    orphans: list[Orphan] = field(default_factory=list)  # to revoke (by apply)
    uncertain: list[Uncertain] = field(default_factory=list)  # reported, never revoked
    unresolved: list[Interrupted] = field(default_factory=list)  # could not be checked now; retried
    records: list[Record] = field(default_factory=list)  # the journal as read
    # (sink, entry) that interrupted creates and sink moves may have written: keyform's own
    entries: set[SinkTarget] = field(default_factory=set)

    @property
    def pending(self) -> bool:
        """Whether the journal holds anything `commit` would change."""
        return bool(self.records)


def journal_digest(records: Sequence[Record]) -> str:
    """A digest of the journal as read ("" for none): a saved plan records the one it was made with."""
    if not records:
        return ""
    text = json.dumps([r.to_json() for r in records], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fold(state: State, records: list[Record]) -> tuple[list[Interrupted], bool]:
    """Fold `records` into `state` (in memory) where they are newer than it; return the interrupted
    changes and whether the state changed."""
    if not records:
        return [], False
    found = problem(records)
    if found is not None:
        # each record valid on its own, the journal not (a hand edit, a merge, two journals joined)
        raise JournalError(
            f"the apply journal left by an interrupted apply does not hold together: this record {found[1]}, so "
            "keyform will not act on it (it was left untouched): restore it from a copy, or move it aside once you "
            "have checked the keys it records", found[0])
    begin = records[0] if isinstance(records[0], Begin) else None
    if begin is None:
        # every journal keyform writes starts with the state its apply began from: one that does not
        # (its first line cut off or moved) cannot be checked against this state, and its creates'
        # keys are no orphans keyform could prove its own
        raise JournalError(
            "the apply journal left by an interrupted apply does not start with the state it belongs to (its "
            f"first record is a {records[0].op}, not a begin), so keyform will not act on it: revoking its keys "
            "as orphans could revoke keys this workspace never made. Restore it from a copy, or move it aside "
            "once you have checked the keys it records", 0)
    if _never_saved(state) and begin.serial == 0:
        # the interrupted apply was the first one: its state was never written, and this command made
        # a new one (another lineage). The journal is the only record of what it did: adopt its identity.
        state.lineage = begin.lineage
        if begin.salt is not None:
            state.salt = begin.salt
        if begin.key_check is not None and begin.key_check != state.key_check:
            from keyform.fingerprintkey import adopt_journaled_key_check

            adopt_journaled_key_check(state, begin.key_check)
    if begin.lineage != state.lineage:
        # another state's journal (a state restored or pushed over the one that apply ran against):
        # its creates are no orphans of this state's keys, and its changes are not this state's
        raise JournalError(
            f"the apply journal left by an interrupted apply belongs to another state (lineage {begin.lineage}; "
            f"the state's is {state.lineage}), so keyform will not act on it: revoking its keys as orphans could "
            "revoke keys this workspace never made. If the state replaced the one that apply ran against, "
            "restore that one and run plan; else move the journal aside once you have checked the keys it "
            "records", 0)
    if begin.serial > state.serial:
        # the journal was written against a newer state than this one: an older state restored or
        # committed over it. What it records as finished is not here, and its creates' keys may be
        # keys that newer state tracks (revoked as orphans) or adopted since
        raise JournalError(
            f"the apply journal left by an interrupted apply was written against serial {begin.serial} of the "
            f"state, newer than the state's (serial {state.serial}): an older copy of the state replaced the one "
            "that apply ran against, so keyform will not act on it (its keys would be taken for orphans, and the "
            "newer state's keys forgotten). Restore the newer state and run plan; else move the journal aside "
            "once you have checked the keys it records", 0)
    if begin.serial == state.serial:
        before = state.dumps()
        interrupted = replay(state, records)
        return interrupted, state.dumps() != before
    return unresolved(records), False  # the state was saved after these records


def assess(state: State, records: list[Record], pool: ProviderPool,
           provider_types: Mapping[str, str], targets: Mapping[str, SinkTarget] | None = None,
           entry_id: Callable[[SinkTarget], Hashable] | None = None,
           folded: Callable[[], None] = lambda: None,
           read_entry: Callable[[SinkTarget, str], str | None] | None = None,
           now: datetime | None = None) -> Recovery:
    """What the journal `records` leave to do. Mutates only the in-memory `state` (the fold, a create
    rolled forward, and a rotation request for a key whose sink entry an orphan may have
    overwritten); lists remote keys where a lost reply must be matched, and reads back the sink
    entry of a create cut off after its sink write (`read_entry`: the secret in an entry, None when
    absent, given the fingerprint of the secret it should hold; raises `EntryUnreadable` when that
    sink cannot be read back, or the read's error; None: no entry is read, no create rolled forward); never
    changes anything remotely or on disk. `targets` (address -> its sink entry in the manifests)
    stands in for the entry of a create journaled before intents recorded it; `entry_id` says which
    entries are one (`Workspace.entry_id`). `folded` runs once the journal is folded in (a
    never-saved state has taken the journal's salt), before any listed id is fingerprinted: the
    session gives the state its fingerprint key there. `now` (keyform's clock; the machine's by
    default) tells whether a create keyform stopped waiting for may still make its key (`LATE_CREATE`)."""
    out = Recovery(records=list(records))
    if not records:
        return out
    interrupted, out.state_changed = fold(state, records)
    folded()
    moved = {a: t for a, t in (targets or {}).items()  # where the manifests put an entry the state does not record
             if (ks := state.keys.get(a)) is None or ks.sink != t}
    out.entries = written_entries(interrupted, moved)
    out.notes.extend(_rotate_written_over(state, records, interrupted, moved, entry_id or (lambda t: t)))
    if out.state_changed:
        out.notes.append("an interrupted apply finished some changes that the state does not record yet; "
                         "the next apply records them (from its journal)")
    tracked = {k.remote_id for k in state.keys.values()} | {d.remote_id for d in state.deposed}
    creates = []
    for it in (it for it in interrupted if it.action == "create"):
        ptype = provider_types.get(it.provider, "")
        try:
            k = kind(ptype) if ptype else None
        except KeyformError:  # (not available: its instance cannot be listed either, and the create waits)
            k = None
        if k is not None and it.remote_id not in tracked and (unproven := _unproven(it, k)) is not None:
            out.unresolved.append(it)  # (a hand-edited journal?) kept, said on every plan: no key is its orphan
            out.notes.append(unproven)
            continue
        if k is not None:  # (a copy of the intent's details: the journal is not changed)
            it.details["match"] = _sent(it.details.get("match") or {}, k)
        creates.append(it)
    # a secret's fingerprint two creates' records carry: a forger's copy of one a `created` record
    # of this journal carries (`_roll_forward`); no create issues a secret another one did
    carried = Counter(it.key.secret_fingerprint for it in creates if it.key is not None and it.key.secret_fingerprint)
    shared = {fp for fp, n in carried.items() if n > 1}
    bounds = _bounds(records)
    groups: dict[tuple[str, str], list[Interrupted]] = {}
    # each instance is listed once, and a listing that failed is not asked for again (with its
    # retries) by each journaled create of that instance
    listings: dict[str, list[RemoteKey] | KeyformError | None] = {}

    def listed_keys(provider: str) -> list[RemoteKey] | None:  # None: the instance cannot list keys
        if provider not in listings:
            try:
                listings[provider] = pool.get(provider).list()
            except KeyformError as exc:
                listings[provider] = exc
        found = listings[provider]
        if isinstance(found, KeyformError):
            raise found
        return found

    def listing(provider: str) -> list[RemoteKey]:
        listed = listed_keys(provider)
        if listed is None:
            raise KeyformError(f"{provider} cannot list keys, so the interrupted create cannot be checked")
        return listed

    # first: a listed key recognised by its fingerprint is no candidate of any other create below
    recognised: set[str] = set()  # (their ids hold a secret: no other create's candidates, whatever they are)
    blind = _withheld([it for it in creates if it.remote_id is None and it.id_fingerprint is not None],
                      state, tracked, listing, provider_types, out, recognised)
    for it in creates:
        ptype = provider_types.get(it.provider, "")
        if it.remote_id is None and it.id_fingerprint is not None:
            continue  # (`_withheld`)
        if it.remote_id is not None:
            if it.remote_id in tracked:
                continue  # recorded after all (a later run adopted it): nothing to do
            if (contradicted := _listed_unlike(it, listed_keys)) is not None:  # (a hand-edited journal?)
                out.unresolved.append(it)  # kept journaled, said on every plan, never revoked
                out.notes.append(contradicted)
                continue
            rolled = _roll_forward(it, state, ptype, listed_keys, read_entry, shared)
            if isinstance(rolled, _Held):  # (a hand-edited journal? an entry unreadable now) kept, not revoked
                out.unresolved.append(it)
                out.notes.append(rolled.why)
                continue
            if rolled is not None:  # finished, as its `done` would have: the key is tracked from now on
                out.state_changed = True
                out.notes.append(rolled)
                tracked.add(it.remote_id)
                continue
            where = "its secret reached the sink but state never recorded it" if it.sunk else \
                "its secret may not have reached a sink"
            out.orphans.append(Orphan(it.address, it.provider, ptype, it.remote_id, it.seq,
                                      f"created by an interrupted apply ({where})"))
            if _rotate_overwritten(state, it, records):
                held = "holds" if it.sunk else "may hold"  # `sunk`: an earlier keyform's record of the write
                out.notes.append(f"{it.address}: its sink entry {held} the secret of the orphan {it.remote_id}, "
                                 f"not of {state.keys[it.address].remote_id}; {it.address} is marked for rotation")
            continue
        match = it.details.get("match") or {}
        groups.setdefault((it.provider, json.dumps(match, sort_keys=True, default=str)), []).append(it)
    for (provider, _), group in sorted(groups.items()):
        try:
            if provider in blind:
                raise KeyformError(blind[provider])
            listed = listing(provider)
        except KeyformError as exc:
            for it in group:
                out.unresolved.append(it)
                out.notes.append(f"{it.address}: cannot check what an interrupted create left yet ({exc}); "
                                 "the next plan tries again")
            continue
        # a key the journal names (another create's, already an orphan) is no candidate for a lost
        # reply: after a crash during recovery it was taken for one, and revoked twice or left two
        # candidates where one was the answer
        known = tracked | recognised | {o.remote_id for o in out.orphans}
        offset = clock_offset(pool.get(provider))
        _match_group(group, listed, known, _on_api_clock(bounds, group, offset), provider_types.get(provider, ""),
                     out, now or utcnow())
    entries = {it.seq: _entry_of(it, moved) for it in creates}
    out.orphans = [replace(o, entry=entries.get(o.seq)) for o in out.orphans]
    return out


class EntryUnreadable(SinkError):
    """From `assess`'s `read_entry`: the entry's sink cannot give a secret back at all (an `exec`
    sink without `read_command`, an encrypted sink without its key, a sink gone from the
    manifests). The interrupted create that wrote it is not finished: its key is an orphan, as
    before. Any other failure of the read (a sealed vault, a network error, a `read_command` that
    exits non-zero, a plug-in's error) may pass: the create is kept for the next plan."""


@record
class _Held:
    """Why an interrupted create is neither finished nor revoked now: its journal cannot have been
    written by keyform, or its sink entry could not be read back this time. Kept journaled, said on
    every plan (`Recovery.unresolved`)."""

    why: str


def _roll_forward(it: Interrupted, state: State, ptype: str,
                  listed_keys: Callable[[str], list[RemoteKey] | None],
                  read_entry: Callable[[SinkTarget, str], str | None] | None,
                  shared: Collection[str] = ()) -> str | _Held | None:
    """Finish the interrupted create `it` (its reply arrived, its key untracked) if it was cut off
    after its secret reached the sink and before its `done`: fold into `state` what that `done`
    would have recorded (its `created` record's `key`, and the key it `deposed`, revoked after its
    grace as the finished apply would have: `revoke_after` was counted from the create), so that a
    consumer that read the entry meanwhile keeps a live key. Returns the plan's note saying so.

    Only when every part of it is proven: the `created` record carries that key (a keyform that
    journals it; never for a secret too short to be fingerprinted), recorded for this create's
    address, provider, sink entry and attributes (`match`); the API lists the key live with those
    attributes (`_listed_unlike` already compared them; a provider that cannot list keys proves
    nothing); the address still holds the key the create replaced, or none when it replaced none;
    and the entry, read back now, holds a secret with the journaled fingerprint (`State.
    secret_fingerprint`, an HMAC under the state's salt or key). Otherwise None: the key is an
    orphan, revoked as before (an entry absent or different, a sink that cannot be read back:
    `EntryUnreadable`; an older journal). A fingerprint the state records for one of its keys is
    no new create's (a forged journal naming another key with the secret an entry holds already),
    nor is one that another interrupted create's record of this journal carries too (`shared`: a
    forged create copying the fingerprint of a create killed after its sink write), and a read of
    a readable sink that fails now proves nothing either way (revoking the key then is what this
    prevents: the entry may hold its secret, in use): `_Held`, kept journaled, said on every plan,
    nothing adopted or revoked."""
    key, deposed = it.key, it.deposed
    if key is None or key.secret_fingerprint is None or key.sink is None or read_entry is None:
        return None
    try:
        k = kind(ptype)
    except KeyformError:
        return None
    recorded = {ks.secret_fingerprint for ks in state.keys.values()} | {d.secret_fingerprint for d in state.deposed}
    if key.secret_fingerprint in recorded:
        return _Held(f"{it.address}: the apply journal says an interrupted create made the key {it.remote_id} "
                       "and issued it a secret that the state records for another key, which no create issues: "
                       "keyform neither records nor revokes that key: if the journal was edited, restore it from a "
                       "copy")
    if key.secret_fingerprint in shared:
        return _Held(f"{it.address}: the apply journal says an interrupted create made the key {it.remote_id} and "
                     "issued it a secret that another interrupted create of that journal says it issued, which no "
                     "two creates do: keyform neither records nor revokes either key: if the journal was edited, "
                     "restore it from a copy")
    entry = SinkTarget.from_json(it.details.get("entry"))
    sent = it.details.get("match") or {}
    if (key.remote_id != it.remote_id or key.address != it.address or key.provider != it.provider
            or key.provider_type != ptype or not k.returns_secret or entry != key.sink
            or _unlike(sent, {n: key.attrs.get(n) for n in matched_attributes(k)})):
        return None
    current = state.keys.get(it.address)
    replaces = it.details.get("replaces")
    if (current.remote_id if current is not None else None) != replaces:
        return None  # the address moved on since (a key imported or forgotten there): not this create's to finish
    if current is not None and (deposed is None or deposed.provider != current.provider
                                or deposed.provider_type != current.provider_type):
        return None
    try:
        listed = listed_keys(it.provider)
    except KeyformError:
        return None
    live = next((x for x in listed or () if x.id == it.remote_id), None)
    if live is None or live.revoked:
        return None
    try:
        value = read_entry(key.sink, key.secret_fingerprint)
    except EntryUnreadable:  # no secret can be read back from that sink: an orphan, as before
        return None
    except PLUGIN_FAILURES as exc:  # (a sink plug-in's own failure too, its sys.exit() included)
        why = str(exc) if isinstance(exc, KeyformError) else type(exc).__name__
        # its error may quote what the entry holds (an exec sink's stderr): the secret this process
        # never held, recognised by the journaled fingerprint, and scrubbed from this and later output
        redact.recognise(why, state.fingerprinter(), [key.secret_fingerprint])
        why = redact.scrub(why, ())
        return _Held(f"{it.address}: an interrupted apply created the key {it.remote_id} and may have written its "
                     f"secret to {key.sink}, which cannot be read back now ({why}): keyform neither records nor "
                     "revokes that key (a consumer may be using its secret) until it can tell; the next plan reads "
                     "the entry again")
    found = state.secret_fingerprint(value)
    if found is None or not hmac.compare_digest(found, key.secret_fingerprint):
        return None
    replay(state, [Done(it.seq, key=key, deposed=deposed)])
    then = ""
    if deposed is not None:
        then = (f", and deposes {deposed.remote_id}, revoked after its grace ({deposed.revoke_after}) as the "
                "finished apply would have")
    return (f"{it.address}: an interrupted apply created the key {it.remote_id} and wrote its secret to {key.sink}, "
            f"which holds it, but was stopped before recording it: keyform finishes that create instead of revoking "
            f"a key whose secret may be in use; the next apply records {it.remote_id} as {it.address}{then}")


def _unproven(it: Interrupted, k: ProviderKind) -> str | None:
    """Why no listed key can be taken for the orphan of interrupted create `it`: its intent's
    `match` names none of the attributes a create of its provider type `k` journals (`kinds.
    matched_attributes`: Questra's name, TextQL's description, hosts, ...). Every create keyform
    journals names each of them, and both ways of finding its key compare what `match` names (the
    key a `created` record or an `id_fingerprint` names, `_listed_unlike`, `_withheld`; a lost
    reply's candidates, `_match_group`): without them, a forged `created` had any key revoked, and a
    forged lost reply the only untracked key in its window. None when it names one, or when the
    type reports none back."""
    expected = matched_attributes(k)
    match = it.details.get("match")
    if not expected or (isinstance(match, dict) and any(n in match for n in expected)):
        return None
    return (f"{it.address}: the apply journal records an interrupted create of {it.address} whose intent names "
            f"none of the attributes a create of a {k.name} key sends ({', '.join(expected)}), so keyform takes no "
            "listed key for its orphan and revokes nothing: if the journal was edited, restore it from a copy")


def _sent(match: Mapping[str, Any], k: ProviderKind) -> dict[str, Any]:
    """What a create journaled with `match` sent of each attribute its key is told by: `match`, and,
    for an attribute of type `k` it does not name, the type's default (what a create that never
    set it makes: `ProviderType.attribute_defaults`; None for one without). Every create journals
    them all, so this changes nothing for a journal keyform wrote (one of a keyform whose type
    reported an attribute fewer: that attribute's default); a forged one naming TextQL's
    `auth_type` alone no longer passes for a key with another description."""
    return {**{n: k.attribute_defaults.get(n) for n in matched_attributes(k)}, **match}


def _unlike(match: Mapping[str, Any], attrs: Mapping[str, Any]) -> list[str]:
    """The attributes of a create's `match` that a listed key's `attrs` hold otherwise."""
    return sorted(n for n, v in match.items() if not _same(attrs.get(n), v))


def _agrees(match: Mapping[str, Any], attrs: Mapping[str, Any]) -> bool:
    """Whether a listed key's `attrs` hold every attribute of a create's `match` as it was sent."""
    return all(_same(attrs.get(n), v) for n, v in match.items())


def _same(listed: Any, sent: Any) -> bool:
    """A listed attribute's value is the one a create sent (as journaled): lists and tuples alike
    (`remote.as_json`: a plug-in may list a tuple where the journal holds a list, as the conformance
    kit allows). The one comparison of both ways of finding a create's key."""
    return listed == sent or as_json(listed) == as_json(sent)


def _listed_unlike(it: Interrupted, listing: Callable[[str], list[RemoteKey] | None]) -> str | None:
    """Why the key the journal says interrupted create `it` made (`it.remote_id`) cannot be taken
    for its orphan: the API lists it with other attributes than the create sent (`match`: its name,
    its description). keyform sent them moments before and nothing of its own renames a key, so
    such a journal names a key that create never made (a hand edit, a forged pull request: another
    workspace's key named there was revoked as this one's orphan). None when it agrees, when the
    key is not listed (revoked or gone: its revoke then changes nothing), when the instance cannot
    list keys at all (the `created` record is all there is, as before), or when the create recorded
    no attributes. A listing that fails is said the same way (checked again next plan)."""
    match = it.details.get("match") or {}
    if not match:
        return None
    try:
        keys = listing(it.provider)
    except KeyformError as exc:
        return (f"{it.address}: cannot check the key {it.remote_id} an interrupted create left ({exc}); it is "
                "not revoked yet, the next plan tries again")
    listed = next((k for k in keys if k.id == it.remote_id), None) if keys is not None else None
    if listed is None:
        return None
    unlike = _unlike(match, listed.attrs)
    if not unlike:
        return None
    from shlex import quote  # (only for this message: not at every start-up)

    return (f"{it.address}: the apply journal says an interrupted create made the key {it.remote_id}, but "
            f"the API lists that key with another {', '.join(unlike)} than that create sent, so keyform does not "
            "take it for its orphan and revokes nothing: if the journal was edited, restore it from a copy; if "
            f"the key is this workspace's after all, `keyform import {quote(it.address)} "
            f"{quote(it.remote_id or '')}` adopts it")


def _withheld(creates: list[Interrupted], state: State, tracked: set[str],
              listing: Callable[[str], list[RemoteKey]], provider_types: Mapping[str, str],
              out: Recovery, recognised: set[str]) -> dict[str, str]:
    """Interrupted creates answered with an id that holds a secret, whose revoke failed (the journal
    has the id's fingerprint, `Abandoned.id_fingerprint`): the untracked listed key whose id has
    that fingerprint is their orphan, `withheld` (the plan names it by a placeholder; its id is
    remembered by `redact`, so any message that quotes it is scrubbed). No such key listed, or
    only a revoked one: nothing is left to do. Where the listing's ids cannot be fingerprinted as
    the journal's were (a keyed state without its key, or the fingerprint mode changed), the
    create stays unresolved, and so do the other creates of that provider instance whose replies
    were lost: the key could not be told from their candidates, whose ids a plan shows. Returns
    those instances, each with why; every key recognised by a fingerprint goes into `recognised`
    (no other create's candidate, also when it is listed with other attributes and not revoked)."""
    blind: dict[str, str] = {}
    if not creates:
        return blind
    fingerprint = state.fingerprinter()
    for it in creates:
        recorded = it.id_fingerprint or ""
        try:
            if fingerprint("").rpartition(":")[0] != recorded.rpartition(":")[0]:
                raise KeyformError("its id's fingerprint was made under another fingerprint mode than the "
                                   "state's now")
            listed = listing(it.provider)
            found = [k for k in listed if hmac.compare_digest(fingerprint(k.id), recorded)]
        except KeyformError as exc:
            blind.setdefault(it.provider, f"the key {it.address}'s interrupted create left, whose id holds a "
                                          "secret, cannot be told apart from the others yet")
            out.unresolved.append(it)
            out.notes.append(f"{it.address}: cannot check yet for the key an interrupted create left, whose id "
                             f"holds a secret ({exc}); the next plan tries again")
            continue
        redact.remember(*(k.id for k in found))  # quoted by an error from here on: scrubbed
        recognised.update(k.id for k in found)
        if any(k.id in tracked for k in found):
            continue  # a state records it after all (imported): not an orphan
        live = [k for k in found if not k.revoked]
        if not live:
            out.notes.append(f"{it.address}: the key an interrupted create left, whose id holds a secret, is "
                             "revoked or gone")
            continue
        if unlike := _unlike(it.details.get("match") or {}, live[0].attrs):  # (a fingerprint forged with the salt)
            out.unresolved.append(it)  # kept journaled, said on every plan, never revoked; its id never shown
            out.notes.append(f"{it.address}: the key an interrupted create left, whose id holds a secret, is listed "
                             f"with another {', '.join(unlike)} than that create sent, so keyform does not take it "
                             "for its orphan and revokes nothing: if the journal was edited, restore it from a copy")
            continue
        out.orphans.append(Orphan(it.address, it.provider, provider_types.get(it.provider, ""), live[0].id, it.seq,
                                  "its create was answered with an id that holds a secret, and revoking it failed; "
                                  "found by that id's fingerprint, which the journal kept instead of the id",
                                  withheld=True))
    return blind


def withheld_matcher(state: State, records: Sequence[Record]) -> Callable[[str, str], bool] | None:
    """For a command that lists keys without recovering the journal (`keyform report --unmanaged`):
    whether a listed key (provider instance, id) may be one an interrupted create left with an id
    that holds a secret (`Abandoned.id_fingerprint`), so its id must not be shown. Where the ids of
    an instance cannot be fingerprinted as the journal's were (a keyed state without its key), every
    key of it may be. None when the journal has no such create."""
    pending: dict[str, set[str]] = {}
    for it in unresolved(records):
        if it.action == "create" and it.remote_id is None and it.id_fingerprint is not None:
            pending.setdefault(it.provider, set()).add(it.id_fingerprint)
    if not pending:
        return None
    fingerprint = state.fingerprinter()

    def withheld(instance: str, key_id: str) -> bool:
        recorded = pending.get(instance)
        if not recorded:
            return False
        try:
            return fingerprint(key_id) in recorded
        except KeyformError:
            return True  # not told apart: not shown either

    return withheld


def _match_group(group: list[Interrupted], listed: list[RemoteKey], tracked: set[str],
                 bounds: Mapping[str, Window], ptype: str, out: Recovery, now: datetime) -> None:
    """Interrupted creates with the same provider and attributes, whose replies were lost: find the
    untracked keys they may have made, and decide. `now`: keyform's clock, against which a create
    that still ran when keyform stopped waiting (`Window.until`) may make its key yet."""
    windows = [bounds.get(it.seq, Window(None, None, False)) for it in group]
    lows = [w.low for w in windows]
    highs = [w.high for w in windows]
    tight = all(w.tight for w in windows)
    low = None if any(lo is None for lo in lows) else min(lo for lo in lows if lo is not None)
    high = None if any(hi is None for hi in highs) else max(hi for hi in highs if hi is not None)
    match = group[0].details.get("match") or {}
    candidates: list[RemoteKey] = []
    outside: list[RemoteKey] = []  # untracked live keys with these attributes made outside the window
    undated = False
    for key in listed:
        if key.id in tracked or key.revoked or not _agrees(match, key.attrs):
            continue
        created = _time(key.created_at)
        if created is None:
            undated = True  # cannot be placed in the window: the match is uncertain
            candidates.append(key)
        elif (low is None or created >= low) and (high is None or created <= high):
            candidates.append(key)
        else:
            outside.append(key)
    window = f"between {format_time(low) if low else 'any time'} and {format_time(high) if high else 'now'}"
    addresses = sorted({it.address for it in group})
    if outside and not tight:
        # an estimated window, on a clock that may be off or have moved since: the key this create
        # made may be one just outside it (and another's inside), so those are named too (below:
        # uncertain, never revoked), never dropped unseen
        candidates, window = [*candidates, *outside], f"{window}, {len(outside)} of them made outside it"
    def no_key(it: Interrupted) -> None:
        w = bounds.get(it.seq, Window(None, None, False))
        if w.until is not None and now < w.until:
            # keyform stopped waiting for this create while it ran: its key may be made yet. Kept
            # journaled (every plan looks again) until its window ends, never dropped unseen
            out.unresolved.append(it)
            out.notes.append(f"{it.address}: keyform stopped waiting for its create while it still ran, and no "
                             "key it may have made is listed yet; the journal keeps it, and each plan looks "
                             f"for that key again until {format_time(w.until)}")
        else:
            out.notes.append(f"{it.address}: an interrupted create left no key behind")

    if not candidates:
        for it in group:
            no_key(it)
        return
    if undated or low is None or high is None or len(candidates) > len(group) or (outside and not tight):
        # an open window (a journal without times) proves nothing either. Nor does a window whose
        # end is only estimated (the apply was killed, its request may have gone out late) when
        # someone else evidently makes keys with these attributes: another workspace's key may
        # be the only one in the window while this create never reached the server
        for it, w in zip(group, windows, strict=True):
            out.uncertain.append(Uncertain(it.address, it.provider, it.seq,
                                           tuple(sorted(k.id for k in candidates)), window))
            if w.until is not None and now < w.until:
                # keyform stopped waiting for this create while it ran: its own key may be made yet
                # (none of these candidates need be it). Kept journaled until its window ends, so
                # the plan that lists that key names it too; never revoked on this evidence
                out.unresolved.append(it)
                out.notes.append(f"{it.address}: keyform stopped waiting for its create while it still ran, so "
                                 "the key it may make is not necessarily listed yet; the journal keeps it, and each "
                                 f"plan names the candidates again until {format_time(w.until)}")
        return
    # no more candidates than interrupted creates of exactly these attributes, all inside their
    # window and tracked by no state: keyform made them. Pair them up in time order.
    ordered = sorted(group, key=lambda it: str(it.details.get("at") or ""))
    for it, key in zip(ordered, sorted(candidates, key=lambda k: (k.created_at or "", k.id)), strict=False):
        out.orphans.append(Orphan(it.address, it.provider, ptype, key.id, it.seq,
                                  f"the reply to its create was lost; the only untracked key with its attributes "
                                  f"created {window}" if len(group) == 1 else
                                  f"the replies to {len(group)} creates of {', '.join(addresses)} were lost; "
                                  f"{len(candidates)} untracked key(s) with their attributes were created {window}"))
    for it in ordered[len(candidates):]:  # (one still running may make its key yet: kept, see above)
        no_key(it)


def would_take(records: Sequence[Record], ks: KeyState) -> str | None:
    """The address of an interrupted create journaled in `records` whose lost reply would take the
    key `ks` for its orphan once no state tracks it (`state rm` is about to forget it): a create at
    its provider instance with neither a remote id nor an id fingerprint (its reply lost), whose
    attributes the key's recorded ones agree with (`_match_group`), and whose window holds the
    key's recorded `created_at`, that window widened by CLOCK_SKEW on both sides (no API clock is
    read here); a key whose creation time the state does not record may be anywhere. None when no
    such create is journaled. The key of a create keyform stopped waiting for (`Abandoned.running`)
    may be made up to an hour after it, and a later apply's key of the same name with it: forgotten
    within that window, it was the only candidate left and revoked as that create's orphan."""
    creates = [it for it in unresolved(records)
               if it.action == "create" and it.provider == ks.provider and it.remote_id is None
               and it.id_fingerprint is None]
    if not creates:
        return None
    try:
        k = kind(ks.provider_type)
    except KeyformError:
        return None
    bounds = _bounds(list(records))
    created = _time(ks.created_at)
    for it in creates:
        if not _agrees(_sent(it.details.get("match") or {}, k), ks.remote):
            continue
        w = bounds.get(it.seq, Window(None, None, False))
        if created is None or ((w.low is None or created >= w.low - CLOCK_SKEW)
                               and (w.high is None or created <= w.high + CLOCK_SKEW)):
            return it.address
    return None


def _on_api_clock(bounds: Mapping[str, Window], group: list[Interrupted],
                  offset: float | None) -> Mapping[str, Window]:
    """`bounds`, the uncalibrated windows of `group` moved onto the API's clock by `offset` (its
    listing's `Date` less keyform's clock, `remote.clock_offset`): an API ten minutes behind made
    the key of an interrupted create fall outside keyform's ±CLOCK_SKEW, and recovery said it
    "left no key behind"; the key stayed live and untracked. A calibrated window is on the API's
    clock already."""
    if not offset:
        return bounds
    shift = timedelta(seconds=offset)
    out = dict(bounds)
    for it in group:
        w = bounds.get(it.seq)
        if w is not None and not w.calibrated:
            out[it.seq] = replace(w, low=None if w.low is None else w.low + shift,
                                  high=None if w.high is None else w.high + shift)
    return out


@record
class Window:
    """When the server may have made an interrupted create's key (its clock); None: unbounded.
    `tight`: both ends are measured (calibrated, and the apply lived to record the lost reply)."""

    low: datetime | None
    high: datetime | None
    tight: bool
    calibrated: bool = False  # measured against the server's own `created_at` of the same run
    # a create keyform stopped waiting for while it ran (`Abandoned.running`): until when (keyform's
    # clock) it may make its key yet; `high` is that time on the API's clock
    until: datetime | None = None


def _bounds(records: list[Record]) -> dict[str, Window]:
    """Per create intent, the window (in the provider's clock) in which the server may have made
    its key.

    Without calibration: from the intent time minus CLOCK_SKEW to the moment the apply abandoned
    it (an `abandoned` record, else the last record its run wrote) plus CLOCK_SKEW.

    Calibrated: every create of the same run that got its reply tells, by the server's `created_at`
    between the local times of its intent and of its `created` record, the offset between the
    provider's clock and keyform's to about a second. With that offset the lower bound is the
    intent time itself, and for a reply lost while keyform lived (an `abandoned` record) the upper
    bound is the abandonment itself. (After a kill the upper bound keeps CLOCK_SKEW: the request
    may have gone out well after the run's last record.)

    A create keyform stopped waiting for while it still ran (`Abandoned.running`: a plug-in's call
    past its bound, a second Ctrl-C) may make its key well after its `abandoned` record (a slow
    server, an API that creates asynchronously): its window ends LATE_CREATE after that record, not
    measured (never `tight`). None where the journal does not say."""
    last: dict[str, datetime] = {}  # run id → its last record's time
    abandoned: dict[str, datetime] = {}
    running: set[str] = set()  # seqs keyform stopped waiting for while their create ran
    intents: dict[str, datetime | None] = {}
    replied: dict[str, tuple[datetime, datetime]] = {}  # seq → (local time of `created`, server created_at)
    for r in records:
        if isinstance(r, Begin):
            continue
        seq = r.seq
        at = _time(r.at)
        run = seq.rsplit(".", 1)[0] if "." in seq else None
        if at is not None and run is not None and (run not in last or at > last[run]):
            last[run] = at
        if isinstance(r, Intent):
            if r.action == "create":
                intents[seq] = at
        elif isinstance(r, Abandoned):
            if at is not None:
                abandoned[seq] = at
            if r.running:
                running.add(seq)
        elif isinstance(r, Created) and at is not None:
            server = _time(r.created_at)
            if server is not None:
                replied[seq] = (at, server)
    one = timedelta(seconds=1)  # journal and server times have second precision
    offsets: dict[str, tuple[timedelta, timedelta]] = {}  # run → (lowest, highest) server - local offset
    for seq, (local, server) in replied.items():
        sent = intents.get(seq)
        if sent is None:
            continue
        run = seq.rsplit(".", 1)[0]
        lo, hi = server - local - one, server - sent + one
        if run in offsets:
            lo, hi = max(lo, offsets[run][0]), min(hi, offsets[run][1])
        offsets[run] = (lo, hi)
    out: dict[str, Window] = {}
    for seq, at in intents.items():
        run = seq.rsplit(".", 1)[0]
        end = abandoned.get(seq) or last.get(run)
        offset = offsets.get(run)
        if offset is not None and offset[0] > offset[1]:
            offset = None  # inconsistent (the clock jumped): do not trust it
        if at is None:
            low = None
        elif offset is not None:
            low = at + offset[0] - one
        else:
            low = at - CLOCK_SKEW - one
        late = seq in running
        if end is None:
            high = None
        elif late:
            high = end + (offset[1] if offset is not None else CLOCK_SKEW) + LATE_CREATE + one
        elif offset is not None and seq in abandoned:
            high = end + offset[1] + one
        else:
            high = end + CLOCK_SKEW + one
        # kept journaled until no key made since can be inside the window any more: `high` on
        # keyform's clock (without a measured offset its CLOCK_SKEW margin too; before, the create
        # was let go at the abandonment + LATE_CREATE, and a key made in the window's last minutes
        # was found by no plan)
        until = end + LATE_CREATE + (CLOCK_SKEW if offset is None else timedelta(0)) + one \
            if late and end is not None else None
        out[seq] = Window(low, high, offset is not None and seq in abandoned and at is not None and not late,
                          calibrated=offset is not None, until=until)
    return out


def _placed_after(ks: KeyState, seq: str, records: list[Record]) -> bool:
    """Whether the journal records `ks` (its remote id at its address) done after the intent `seq`."""
    after = False
    for r in records:
        if isinstance(r, Intent) and r.seq == seq:
            after = True
        elif after and isinstance(r, Done) and r.key is not None and r.key.address == ks.address \
                and r.key.remote_id == ks.remote_id:
            return True
    return False


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _entry_of(it: Interrupted, targets: Mapping[str, SinkTarget] | None) -> SinkTarget | None:
    """The sink entry an interrupted create or update may have written (see `written_entries`)."""
    entry = SinkTarget.from_json(it.details.get("entry"))
    if entry is None and "entry" not in it.details and it.action in ("create", "update") and targets:
        entry = targets.get(it.address)
    return entry


def _rotate_written_over(state: State, records: list[Record], interrupted: Collection[Interrupted],
                         moved: Mapping[str, SinkTarget], entry_id: Callable[[SinkTarget], Hashable]) -> list[str]:
    """The journal's creates and sink moves (finished or not) each wrote, or may have written, their
    key's secret to an entry. A key the state still records at such an entry, after the fold, and
    placed there before that write (two keys swapping `as:` with one move done and the other cut
    off, or neither done; a new key taking a moved key's name) may so have lost its secret from the
    sink: the other key's secret had been read into the killed process only, and a retried move
    would read the wrong one back without an error. Rotate it, saying why. A key placed there after
    the write (its `applied_at` later than the intent's `at`: an entry taken over by a later apply,
    while an old create stays journaled until its orphan is resolved) is its own. Entries compare
    by `entry_id` (two sink names for one file are one entry); `_rotate_overwritten` handles a key's
    own replacement."""
    writes = {(r.address, entry, r.at) for r in records if isinstance(r, Intent) and r.action in ("create", "update")
              and (entry := SinkTarget.from_json(r.details.get("entry"))) is not None}
    writes |= {(it.address, entry, it.details.get("at")) for it in interrupted
               if (entry := _entry_of(it, moved)) is not None and "entry" not in it.details}
    at: dict[Hashable, list[KeyState]] = {}
    for ks in state.keys.values():
        if ks.sink is not None and ks.secret_in_sink:
            at.setdefault(entry_id(ks.sink), []).append(ks)
    notes = []
    for writer, entry, written in sorted(writes, key=lambda w: (w[0], str(w[1]), str(w[2]))):
        when = maybe_time(written) if isinstance(written, str) else None
        for ks in at.get(entry_id(entry), ()):
            placed = maybe_time(ks.applied_at)
            if ks.address == writer or (when is not None and placed is not None and placed > when):
                continue
            why = (f"{ks.address}: its sink entry {ks.sink} may hold the secret of {writer} (an interrupted apply "
                   "wrote it there)")
            if not kind(ks.provider_type).returns_secret:
                notes.append(f"{why}; keyform cannot issue {ks.address} a new secret: check that entry")
                continue
            ks.rotation_requested = True
            notes.append(f"{why}, not its own; {ks.address} is marked for rotation")
    return notes


def written_entries(interrupted: Collection[Interrupted],
                    targets: Mapping[str, SinkTarget] | None = None) -> set[SinkTarget]:
    """The sink entries interrupted changes may have written (a sink write is durable before the
    journal says so): keyform's own, to be kept in `State.written` once the journal lets them go.
    An intent journaled by an older keyform names no entry: `targets` (where the manifests put an
    entry the state does not record) stands in."""
    return {entry for it in interrupted if (entry := _entry_of(it, targets)) is not None}


def pending_seqs(rec: Recovery, *, keep_uncertain: bool = True, resolved: Collection[str] = ()) -> set[str]:
    """The changes (intent seqs) of `rec`'s journal that must stay journaled: the interrupted creates
    still to be revoked or checked (and the uncertain ones unless they were reported and let go)."""
    keep = {o.seq for o in rec.orphans} | {it.seq for it in rec.unresolved}
    if keep_uncertain:
        keep |= {u.seq for u in rec.uncertain}
    return keep - set(resolved)


def _never_saved(state: State) -> bool:
    """A State made by `State.new()` for a missing state file (every save bumps the serial to >= 1)."""
    return state.serial == 0 and not state.keys and not state.deposed


def _rotate_overwritten(state: State, it: Interrupted, records: list[Record]) -> bool:
    """An interrupted replacement got its new key (and so may have written the new secret over the
    sink entry of the key still in state: the write is durable before the journal says `done`), and
    that new key is an orphan to revoke. The live key's secret may be gone from the sink: rotate it.
    Not a key a later record of the journal placed there (a recovery apply that replaced it and
    was killed before the orphan's revoke was journaled): its own secret is in the entry."""
    ks = state.keys.get(it.address)
    if ks is None or ks.remote_id == it.remote_id:
        return False
    if not kind(ks.provider_type).returns_secret:
        return False
    if ks.secret_in_sink and _placed_after(ks, it.seq, records):
        return False
    if ks.rotation_requested:
        return True
    ks.rotation_requested = True
    return True
