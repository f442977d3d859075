"""The planner: a pure function of (desired workspace, state, remote snapshot, now) → Plan.

No I/O here: secret inputs arrive as fingerprints computed beforehand (`keyform.resolve`), the
remote as a snapshot (`keyform.refresh`), the clock as an argument. That makes every decision
table- and property-testable.

Decisions per managed key, strongest first: replace (create-only attribute changed, revoked or
expired remotely, rotation due, write-only input changed, a source key re-issued) > update (an
updatable attribute changed here or outside keyform) > noop. Keys removed from the manifests are
deleted; deposed keys (old halves of rotations) are revoked once their grace has passed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from keyform.durations import format_duration, format_time, maybe_time, parse_time
from keyform.errors import Diagnostic, KeyformError
from keyform.graph import closure, dependents, topological_order
from keyform.kinds import ProviderKind, kind
from keyform.model import KeySpec, SecretOfRef, SinkConfig, SinkTarget, Workspace, entry_id, header_of
from keyform.pending import Orphan, Uncertain
from keyform.plan import Action, AttrChange, Change, Plan
from keyform.records import record
from keyform.remote import SKEW_NOTED, RemoteKey, RemoteSnapshot
from keyform.render import plural
from keyform.render.safe import cut, one_line
from keyform.sinkscan import SinkSnapshot
from keyform.state import DeposedKey, KeyState, State, secret_of_edge, secret_of_fingerprint

EXPIRY = "expiry"
SINK = "sink"
PREVENT_DESTROY = "prevent_destroy"
UNKNOWN_FINGERPRINT = "unknown"  # an imported key's write-only input keyform has not seen yet
REPLACE_REQUESTED = "replacement requested (--replace)"  # the reason `plan --replace` gives
# the reason `plan --revoke-old` gives each old key it revokes now: whatever its grace, usage or
# users (`_still_fed` and `applier._held_back` hold none of them back; a plan note warns of users)
REVOKE_OLD_REQUESTED = "revocation requested (--revoke-old)"
# its second reason when an earlier apply's `--revoke-old` set out to revoke the key and did not
# finish (killed, or the revoke failed): `DeposedKey.revoke_requested`, durable before the revokes
REVOKE_OLD_UNFINISHED = "asked for by an earlier apply that did not finish it"
# the second reason of the revocation of the key a `--replace` (or any replacement) of the same
# run replaces, under `--revoke-old`: it is deposed by the replacement and revoked in the same apply
REVOKED_ON_REPLACE = "the key this apply replaces: revoked once its replacement's secret is in the sink, with no grace"
# the reasons of a deposed key's revocation when the API lists it as revoked or expired: its secret
# authenticates nobody, so no key it still feeds holds it back (`_still_fed`, `applier._held_back`)
ALREADY_DEAD = ("already revoked remotely", "already expired")
WARNING = "WARNING: "  # a plan note shown as a warning (as `keyform.usage.WARNING`, not imported here)


@record
class PlanInputs:
    """What the planner cannot compute itself without I/O.

    `fingerprints[address][input]` is the HMAC of an `{env}`/`{file}` secret input under the
    state's salt, or None when it cannot be resolved now (then it is not compared).
    `readable_sinks` names the sinks that can give a stored secret back; `missing_secrets` names
    the keys whose entry in such a sink was found absent (so it cannot be read back after all, and
    the key is replaced). `orphans` and `uncertain` are what an interrupted apply left
    (`keyform.recovery.assess`): orphans become revocations in the plan, uncertain ones notes."""

    fingerprints: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    readable_sinks: frozenset[str] = frozenset()
    missing_secrets: frozenset[str] = frozenset()
    orphans: tuple[Orphan, ...] = ()
    uncertain: tuple[Uncertain, ...] = ()
    # the sinks' entries as found now (`keyform.sinkscan`), and the (sink, entry) pairs an
    # interrupted apply may have written (`Recovery.entries`): see `foreign_entries`
    sinks: SinkSnapshot = field(default_factory=SinkSnapshot)
    interrupted_entries: frozenset[SinkTarget] = frozenset()


@record(frozen=False)
class _Decision:
    action: Action
    reasons: list[str] = field(default_factory=list)
    attrs: dict[str, AttrChange] = field(default_factory=dict)
    dead: bool = False  # the API lists the key as revoked or expired: a replacement revokes it at once (Change.dead)
    sink_stays: bool = False  # its sink is renamed to another name of the same entry: no secret moves
    held: bool = False  # its fixed expires_at, the one it was made with, has passed: left as it is (`expired_note`)
    stuck: str | None = None  # the held source whose secret it needs and no sink gives back: left as it is
    in_place: list[str] = field(default_factory=list)  # the reasons given for an update (`escalate`)
    # a stuck key's in-place changes that need the stuck source's secret too; a held key's edited attributes
    waits: tuple[str, ...] = ()
    dead_as: str = ""  # a stuck key's `dead`, as the API lists it ("revoked", "expired"): said in its note
    # a stuck key due for nothing but an in-place update (no create or replacement): its note says so
    only_update: bool = False

    def escalate(self, action: Action, reason: str) -> bool:
        """Raise the action to `action` (replace beats update beats noop); True if anything changed."""
        rank = {Action.NOOP: 0, Action.UPDATE: 1, Action.REPLACE: 2, Action.CREATE: 3}
        changed = False
        if rank[action] > rank[self.action]:
            self.action, changed = action, True
        if reason not in self.reasons:
            self.reasons.append(reason)
            changed = True
        if action is Action.UPDATE and reason not in self.in_place:
            self.in_place.append(reason)
        return changed

    def wait_for(self, src: str, spec: KeySpec, lacking: Callable[[str], bool]) -> None:
        """Left as it is (`stuck`) for want of `src`'s secret: its create or replacement is dropped,
        its in-place changes (a TextQL description, hosts) stay planned as an update, unless that
        update would send a secret header fed by a key whose secret cannot be had (`lacking`:
        `src`, or another such key; `applier._update_remote` resolves every secret header), or
        unless the API lists the key as revoked or expired (`dead`: nothing is sent to a dead key):
        then they wait too, named in its note (`waits`). Before, the whole decision was emptied and
        an edited description was dropped from every plan while the key waited."""
        kept = {n: a for n, a in self.attrs.items() if not a.forces_replacement}
        reasons = [r for r in self.in_place if any(n in r for n in kept)]  # (each names its attribute)
        needs_src = any(header_of(p) is not None and isinstance(ref, SecretOfRef) and lacking(ref.address)
                        for p, ref in spec.secret_inputs.items())
        # a key the API lists as revoked or expired (`dead`) is sent no update: it waits, with its
        # replacement (before, its description went to the dead key while the rotation waited)
        if (needs_src or self.dead) and kept.keys() - {PREVENT_DESTROY}:
            self.waits = tuple(n for n in kept if n != PREVENT_DESTROY)
            kept = {n: a for n, a in kept.items() if n == PREVENT_DESTROY}
            reasons = [r for r in reasons if PREVENT_DESTROY in r]
        if self.dead:
            self.dead_as = "revoked" if "revoked outside keyform" in self.reasons else "expired"
        self.only_update = self.action is Action.UPDATE
        self.action = Action.UPDATE if kept else Action.NOOP
        self.reasons, self.attrs, self.stuck = (reasons if kept else []), kept, src


def expiry_display(spec: str) -> str:
    """`in:90d` → `90d after creation`; `at:T` → `T`; `never` → `never`."""
    if spec.startswith("in:"):
        return f"{spec[3:]} after creation"
    if spec.startswith("at:"):
        return spec[3:]
    return "never"


def plan(workspace: Workspace, state: State, snapshot: RemoteSnapshot, now: datetime, *,
         inputs: PlanInputs | None = None, targets: Iterable[str] = (), destroy: bool = False,
         replace: Iterable[str] = (), revoke_old: Iterable[str] = (), created_at: str | None = None) -> Plan:
    """Compute the Plan. Raises KeyformError for plans that must not be made (prevent_destroy,
    unknown targets), listing every offending key.

    `revoke_old` (`--revoke-old`): every deposed key of these addresses is revoked in this apply,
    its grace and any usage hold or user notwithstanding, and so is the key this plan replaces an
    address's key from (`--replace` in the same run: the leak response), once the new one is live."""
    inputs = inputs or PlanInputs()
    desired = workspace.keys
    target_set = _target_scope(workspace, state, tuple(targets), destroy)
    forced = set(replace)
    unknown = sorted(a for a in forced if a not in state.keys or a not in desired)
    if unknown:
        raise KeyformError([Diagnostic(f"--replace {cut(one_line(a))}: only a key that is both in the manifests and in "
                                       "the state can be replaced") for a in unknown])
    revoking = set(revoke_old)
    if revoking and destroy:
        raise KeyformError("--revoke-old cannot be used with --destroy: a destroy revokes every old key already")

    def in_scope(address: str) -> bool:
        return target_set is None or address in target_set

    decisions: dict[str, _Decision] = {}
    # (`KeySpec.dependencies`, called only for a key with a secret input: most keys have none)
    deps = {a: s.dependencies() if s.secret_inputs else [] for a, s in desired.items()}
    order = topological_order(deps)
    kinds = _Kinds()
    stuck: list[str] = []  # keys left as they are, needing a held key's secret (`_propagate`)
    # the keys whose decision is their own (not `_QUIET`), in `decisions`' order: most plans' few
    looked: dict[str, _Decision] = {}
    # each key's Change in `order`: a quiet key's made at once, the others' (None here) once
    # `_propagate` has run; when it changes anything every Change is made again (`_changes`)
    slots: list[Change | None] = []
    pending: list[tuple[int, str]] = []  # the None slots
    settled = False  # every key of the state is quiet, so in the manifests: none is deleted
    if not destroy:
        scope = order if target_set is None else [a for a in order if a in target_set]
        # (most keys of most plans: `_decide` would find nothing, and build it piece by piece)
        quiet = _quiet_changes(scope, desired, state.keys, deps, forced, snapshot, now, inputs, kinds)
        settled = len(quiet) == len(state.keys)  # (each quiet key is one of the state's and the manifests')
        if len(quiet) == len(scope):  # every key quiet (most plans): in `scope`'s order already
            decisions = dict.fromkeys(quiet, _QUIET)
            slots.extend(quiet.values())
            scope = []
        quiet_get = quiet.get
        for address in scope:
            made = quiet_get(address)
            if made is not None:
                decisions[address] = _QUIET
                slots.append(made)
                continue
            wanted = desired[address]
            own = decisions[address] = looked[address] = _decide(wanted, state, snapshot, now, inputs,
                                                                 kinds[wanted.provider_type], workspace.sinks)
            if address in forced:
                own.escalate(Action.REPLACE, REPLACE_REQUESTED)
            pending.append((len(slots), address))
            slots.append(None)
        if any(d.held or d.action in (Action.CREATE, Action.REPLACE) for d in looked.values()):
            # (else no rule applies: nothing is (re)issued, nothing held)
            stuck = _propagate(decisions, desired, state, deps, order, inputs)
            looked = {a: d for a, d in decisions.items() if d is not _QUIET}
            slots = [None] * len(decisions)
            pending = list(enumerate(decisions))  # (in `order`, as made)

    errors = [problem for a, d in looked.items() if d.action in (Action.CREATE, Action.REPLACE)
              and desired[a].expiry.at is not None
              and (problem := past_expiry(desired[a], d.action, d.reasons, now)) is not None]
    acted: list[Change] = []  # the changes that are not bare no-ops (most plans: few)
    for i, address in pending:
        wanted, own = desired[address], decisions[address]
        if own is _QUIET and not deps[address]:  # `_change_for`'s first case
            slots[i] = made = Change(address, Action.NOOP, wanted.provider, wanted.provider_type,
                                     remote_id=state.keys[address].remote_id)  # (`_quiet` passes recorded keys)
        else:
            slots[i] = made = _change_for(wanted, state.keys.get(address), own, deps[address],
                                          kinds[wanted.provider_type])
        if made.action is not Action.NOOP or made.sink is not None:
            acted.append(made)
    changes = cast(list[Change], slots)  # (each made above)

    if any(d.action is Action.UPDATE for d in looked.values()):  # (it looks at updates only)
        errors += unsendable_updates(decisions, desired, state, inputs)
    errors += foreign_entries(workspace, state, acted, inputs) + unreadable_sinks(workspace, state, acted, inputs)
    # deleted: the state's keys the manifests no longer declare (all of them for destroy)
    deleted = [] if settled else [a for a in sorted(state.keys if destroy else state.keys.keys() - desired.keys())
                                  if in_scope(a)]
    writes, leaving = _writes(workspace, acted), set(deleted)
    # replaced by a key that writes no secret there (another provider type): its entry goes too
    dropping = {c.address for c in acted if c.action is Action.REPLACE and c.address not in writes
                and any(a.name == SINK for a in c.attrs)}
    # most plans write no entry and delete no key with one: no pass over the state's entries
    kept = _secrets_at(workspace, state, leaving | dropping, writes) if writes or dropping or any(
        (ks := state.keys[a]).sink is not None and ks.secret_in_sink for a in deleted) else {}
    keepers = _entry_keepers(writes, kept)
    errors += entries_held_by_others(workspace, state, writes, kept)
    first_deleted = len(changes)  # the deletes follow, checked for users with the deposed keys below
    for address in deleted:
        ks = state.keys[address]
        spec = desired.get(address)
        if spec.prevent_destroy if spec is not None else ks.prevent_destroy:
            loc = spec.loc if spec is not None else None
            errors.append(Diagnostic(
                f"key {address!r} has lifecycle.prevent_destroy set and would be deleted; "
                "remove prevent_destroy (and apply) first if you really mean to delete it", loc))
            continue
        changes.append(_delete_change(ks, snapshot, destroy, workspace, keepers))
    if revoking:
        errors += _revoke_old_problems(revoking, state, desired, decisions, in_scope)
    if errors:
        raise KeyformError(errors)

    notes = [expired_note(desired[a], state.keys[a], d.waits) for a, d in looked.items() if d.held]
    if stuck:
        notes.extend(stuck_note(a, state.keys.get(a), decisions[a].stuck or "", decisions[a].waits,
                                dead_as=decisions[a].dead_as, only_update=decisions[a].only_update) for a in stuck)
    if state.deposed:
        # only a state with deposed keys needs them
        from keyform.usage import deposed_verdict, own_expiry, retirement_rule
    for dep in sorted(state.deposed, key=lambda d: (d.address, d.remote_id)):
        if not in_scope(dep.address):
            continue
        if (dep.address in revoking or dep.revoke_requested) and not destroy \
                and not _listed_dead(snapshot, dep.provider, dep.remote_id):
            # asked for by a human (a leak), in this plan or by an apply cut off before it revoked
            # it: its grace, usage holds and users do not keep it
            changes.append(Change(address=dep.address, action=Action.DELETE, provider=dep.provider,
                                  provider_type=dep.provider_type, remote_id=dep.remote_id, deposed=True,
                                  reasons=(REVOKE_OLD_REQUESTED,)
                                  + (() if dep.address in revoking else (REVOKE_OLD_UNFINISHED,))
                                  + ((f"last attempt failed: {dep.last_error}",) if dep.last_error else ())))
            continue
        rule = retirement_rule(dep, desired.get(dep.address))
        if rule.unused_for is not None and not destroy:  # usage-aware: revoke once unused, grace caps it
            verdict = deposed_verdict(dep, rule, snapshot, now)
            if verdict.revoke:
                changes.append(Change(address=dep.address, action=Action.DELETE, provider=dep.provider,
                                      provider_type=dep.provider_type, remote_id=dep.remote_id, deposed=True,
                                      reasons=verdict.reasons + ((f"last attempt failed: {dep.last_error}",)
                                                                 if dep.last_error else ())))
            notes.extend(verdict.notes)
            continue
        due = parse_time(dep.revoke_after)
        label = f"{dep.address} (deposed {dep.remote_id})"
        known, listed = snapshot.lookup(dep.provider, dep.remote_id)
        if not destroy and listed is not None and (listed.revoked or listed.expired):
            # revoked or expired outside keyform, before its grace ended or since: nothing to wait
            # for (the revoke is a no-op that drops the record, as under unused_for)
            changes.append(Change(address=dep.address, action=Action.DELETE, provider=dep.provider,
                                  provider_type=dep.provider_type, remote_id=dep.remote_id, deposed=True,
                                  reasons=(ALREADY_DEAD[0] if listed.revoked else ALREADY_DEAD[1],)))
        elif destroy:  # destroy leaves nothing live, grace or not
            changes.append(Change(address=dep.address, action=Action.DELETE, provider=dep.provider,
                                  provider_type=dep.provider_type, remote_id=dep.remote_id, deposed=True,
                                  reasons=("destroy requested (revoked before its grace ends)",)
                                  if due > now else ("destroy requested",)))
        elif due <= now:
            ago = now - due
            reason = f"grace ended {format_duration(ago)} ago" if ago.total_seconds() >= 1 else "grace ended"
            changes.append(Change(address=dep.address, action=Action.DELETE, provider=dep.provider,
                                  provider_type=dep.provider_type, remote_id=dep.remote_id, deposed=True,
                                  reasons=(reason,) + ((f"last attempt failed: {dep.last_error}",)
                                                       if dep.last_error else ())))
        else:
            # (a key its listing leaves out may be gone, or left out by a capped listing: it is not
            # dropped on that alone, and its revoke at the grace's end finds it gone or revokes it)
            unlisted = (f"; {dep.provider} did not list it (deleted outside keyform?)"
                        if known and listed is None else "")
            notes.append(f"{label} will be revoked after {dep.revoke_after} "
                         f"(grace ends in {format_duration(due - now)}){unlisted}{own_expiry(listed, due, now)}")
    for address in sorted(revoking):
        # the key this plan replaces (`--replace` of the same run): deposed by its replacement in the
        # first phase, revoked in the second, with no grace (`applier`: never while it is current)
        current, d = state.keys.get(address), decisions.get(address)
        if current is not None and d is not None and d.action is Action.REPLACE:
            changes.append(Change(address=address, action=Action.DELETE, provider=current.provider,
                                  provider_type=current.provider_type, remote_id=current.remote_id, deposed=True,
                                  reasons=(REVOKE_OLD_REQUESTED, REVOKED_ON_REPLACE)))
    if state.deposed or revoking or deleted:
        # (a consumer this plan replaces keeps its old key, fed by the old source secret, for its
        # grace; not one whose old keys are revoked too, `--revoke-old` for it: that key goes now)
        graced = {c.address for c in acted if c.action is Action.REPLACE and not c.dead
                  and c.address not in revoking
                  and (spec := desired.get(c.address)) is not None and spec.rotation.grace > timedelta(0)
                  } if revoking or any(d.revoke_requested for d in state.deposed) else set()
        changes[first_deleted:] = _still_fed(
            changes[first_deleted:], acted, state, notes, graced, destroy=destroy,
            expired=lambda u: held_past_expiry(u, desired, state, now))
    if state.deposed and not destroy:
        notes.extend(_shortened_grace_notes(state.deposed, desired, changes[first_deleted:], revoking, in_scope, now))
    held_entries: set[tuple[str, str]] | None = None
    for orphan in inputs.orphans:
        if in_scope(orphan.address):
            gone = None
            if orphan.entry is not None and orphan.entry.sink in workspace.sinks:
                if held_entries is None:  # entries a key of the manifests writes or the state records
                    held_entries = held_entry_ids(workspace, state)
                if workspace.entry_id(orphan.entry) not in held_entries:  # else that key's write replaces it
                    gone = str(orphan.entry)
            changes.append(Change(address=orphan.address, action=Action.DELETE, provider=orphan.provider,
                                  provider_type=orphan.provider_type, remote_id=orphan.shown_id, deposed=True,
                                  orphan=True, sink=gone, reasons=(orphan.evidence,)))
    for entry, address in state.stale_copies():
        if not in_scope(address):
            continue
        if held_entries is None:
            held_entries = held_entry_ids(workspace, state)
        if workspace.entry_id(entry) in held_entries:
            continue  # a key writes or records it: that key's write replaces the copy
        change, note = _stale_copy(entry, address, workspace, state)
        if change is not None:
            changes.append(change)
        if note is not None:
            notes.append(note)
    notes.extend(u.advice() for u in inputs.uncertain if in_scope(u.address))
    acted += changes[first_deleted:]  # (the deletes, revocations and removals that follow the keys' changes)
    notes[:0] = _none_listed_warnings(state, snapshot, acted)  # first: the notes a Markdown plan cuts come last
    notes.extend(_refresh_notes(workspace, state, snapshot, target_set))
    notes.extend(_unreadable_sink_notes(state, inputs, in_scope))
    fps = inputs.fingerprints
    planned_inputs = {c.address: inputs_digest(f) for c in acted  # (a delete sends no input)
                      if c.action in (Action.CREATE, Action.REPLACE, Action.UPDATE) and c.primary
                      and (f := fps.get(c.address))}
    return Plan(changes=tuple(changes), notes=tuple(notes), lineage=state.lineage, serial=state.serial,
                manifest_digest=workspace.digest, created_at=created_at or format_time(now),
                destroy=destroy, targets=tuple(sorted(targets)), inputs=planned_inputs)


_NOTHING_PLANNED = "Nothing is planned until then (`--target` other keys to go on without this one)"


def _shortened_grace_notes(deposed: Iterable[DeposedKey], desired: Mapping[str, KeySpec], changes: Sequence[Change],
                           revoking: Collection[str], in_scope: Callable[[str], bool], now: datetime) -> list[str]:
    """A note for each old key this plan leaves waiting whose address's `rotation.grace` is now
    shorter than the grace recorded when it was deposed (`revoke_after` - `deposed_at`): the
    recorded end caps it (docs/lifecycle.md), so shortening the grace did not hurry it, and nothing
    said so. The note says until when it is kept and how to revoke it now."""
    revoked = {(c.provider, c.remote_id) for c in changes if c.deposed and c.action is Action.DELETE}
    notes = []
    for dep in sorted(deposed, key=lambda d: (d.address, d.remote_id)):
        spec = desired.get(dep.address)
        if (spec is None or spec.provider != dep.provider or dep.address in revoking or not in_scope(dep.address)
                or (dep.provider, dep.remote_id) in revoked):
            continue
        end, since = maybe_time(dep.revoke_after), maybe_time(dep.deposed_at)
        if end is None or since is None or end <= now or spec.rotation.grace >= end - since:
            continue
        # (under `on_grace_end: keep` the grace's end is no latest: a key still in use is kept past it)
        keep = spec.rotation.unused_for is not None and spec.rotation.on_grace_end == "keep"
        until = (f"its grace ends {dep.revoke_after}, and it is kept past it while in use (on_grace_end: keep)"
                 if keep else f"this old key stays until {dep.revoke_after} at the latest")
        notes.append(f"{dep.address} (deposed {dep.remote_id}): rotation.grace is now "
                     f"{format_duration(spec.rotation.grace)}, shorter than the {format_duration(end - since)} "
                     f"recorded when it was replaced: {until} "
                     "(a grace counts from the replacement it was set for); `keyform apply --revoke-old "
                     f"{dep.address}` revokes it now")
    return notes


def past_expiry(spec: KeySpec, action: Action, reasons: Sequence[str], now: datetime, *,
                then: str = _NOTHING_PLANNED) -> Diagnostic | None:
    """The error, at the key, of a create or replacement (`action`, for `reasons`) of a key whose
    fixed `expires_at` has passed, or falls within its `rotation.before_expiry`: the new key would
    be born expired (the API refuses it, or it authenticates nobody), or due for replacement at
    once. `then` ends it: what becomes of the plan (a saved plan's check says its own)."""
    at, window = spec.expiry.at, spec.rotation.before_expiry
    if at is None or at - (window or _NO_TIME) > now:
        return None
    verb = "create" if action is Action.CREATE else "replace"
    why = "" if action is Action.CREATE else f" ({'; '.join(reasons)})"
    when = (f"has passed ({format_duration(now - at)} ago)" if at <= now else
            f"is within rotation.before_expiry ({format_duration(window or _NO_TIME)}) of now")
    return Diagnostic(
        f"key {spec.address!r}: expires_at {format_time(at)} {when}, so keyform will not {verb} it{why}: "
        "the new key would be expired, or due for replacement, as soon as it is made. Set a later expires_at, "
        f"or use expires_in (each new key then expires that long after it is made). {then}", spec.loc)


def expired_note(spec: KeySpec, ks: KeyState, edited: Sequence[str] = ()) -> str:
    """What a plan says of a key left as it is because its fixed `expires_at` (the one the key was
    made with) has passed (`_Decision.held`): it is not replaced, every replacement expiring then too.
    `edited`: its attributes, sink and secret inputs the manifests changed (`_held_edits`), not
    applied to the expired key either."""
    one = len(edited) == 1
    also = (f"; its edited {', '.join(edited)} {'is' if one else 'are'} not applied to it either, and the key "
            f"made then has {'it' if one else 'them'}" if edited else "")
    return (f"{spec.address} ({ks.remote_id}) expired at {spec.expiry.spec[3:]}, "
            f"its fixed expires_at ({spec.loc}): keyform will not replace it, a new key would expire at the "
            f"same time; move expires_at later, or use expires_in, to have it replaced{also}")


def held_past_expiry(address: str, desired: Mapping[str, KeySpec], state: State, now: datetime) -> bool:
    """Whether `address` names a key the planner leaves as it is because its fixed `expires_at`,
    the one it was made with, has passed (`_Decision.held`): expired, it authenticates nobody, so
    as a `secret_of` consumer it uses its source's secret for nothing (no user: `_still_fed`,
    `applier._held_back`). Asked of a key's users only, never per key of a plan."""
    spec, ks = desired.get(address), state.keys.get(address)
    return (spec is not None and ks is not None and (at := spec.expiry.at) is not None and at <= now
            and ks.expiry_spec == spec.expiry.spec)


def stuck_note(address: str, ks: KeyState | None, src: str, waits: Sequence[str] = (), *, dead_as: str = "",
               only_update: bool = False) -> str:
    """What a plan says of a key left as it is (`_Decision.stuck`) though due for a create or a
    replacement: it needs the secret of `src`, which no sink gives back, and `src` cannot be
    replaced (held past its fixed expires_at, or left as it is for that reason itself). `waits`:
    its in-place changes that wait with it (they would send a secret header no sink gives back, or
    the API lists the key as `dead_as`, revoked or expired: nothing is sent to a dead key).

    `only_update`: the key was due for nothing but that in-place update, which would send `src`'s
    secret in a header; the note says so, and that once `src` is made again the key is re-issued
    with its new secret (`depends on SRC, which is replaced`), the update with it. Before, it said
    of such a key, due no replacement, "to have both made again" and that its update waited "with
    it"."""
    what = f"{address} ({ks.remote_id})" if ks is not None else address
    cannot = (f"{src} cannot be replaced (its fixed expires_at has passed, or it needs such a key's secret itself); "
              f"move {src}'s expires_at later, or use expires_in")
    if only_update:
        return (f"{what} is left as it is: its in-place update ({', '.join(waits)}) would send the secret of {src} "
                f"in a header, which no sink gives back, and {cannot}, to have {src} made again and {address} "
                "re-issued with its new secret, the update included")
    dead = f", though the API lists it as {dead_as}: it authenticates nobody until it is replaced;" \
        if dead_as and ks is not None else ":"
    why = f"nothing is sent to a key the API lists as {dead_as}" if dead_as and ks is not None else \
        "it would send such a secret in a header"
    also = f"; its in-place update ({', '.join(waits)}) waits with it, since {why}" if waits else ""
    return (f"{what} is left as it is{dead} it needs the secret of {src}, which no sink gives back, and {cannot}, "
            f"to have both made again{also}")


def _still_fed(revocations: list[Change], others: Sequence[Change], state: State, notes: list[str],
               graced: Collection[str] = (), *, destroy: bool = False,
               expired: Callable[[str], bool] | None = None) -> list[Change]:
    """`revocations` (of deposed keys, and deletes of keys the manifests no longer declare) without
    those of a key whose secret a key still uses, each noted instead (`kept_for`): a consumer whose
    re-issue failed or was not applied, or a deposed consumer living through its grace. A key this
    plan deletes, re-issues (re-fed the source's new key), or revokes (a deposed consumer) is no
    user: the applier checks again, after the first phase ran (`applier._held_back`). A key the API
    lists as revoked or expired is never kept: its secret works for no consumer. Nor is a key a
    `destroy` names (`destroyed_under`): the way to revoke now a source that leaked, whatever still
    uses it, said in the plan; before, such a destroy planned nothing while an old consumer lived
    out its grace, or (no deposed key in the state) planned the delete and the apply skipped it.

    A revocation asked for (`--revoke-old`) is never kept: its users are named in a warning and in
    its reasons, a consumer this plan replaces among them when its old key, deposed by this apply,
    lives on for its grace (`graced`) still sending the old secret. A consumer this plan re-issues
    with no such grace uses the old secret no more once re-issued, but should its re-issue fail the
    revocation goes ahead all the same: a note says so (`reissued_under`), and the applier's
    failure message of that re-issue says it then stopped working (`applier._broken_by_revoke`).

    A consumer `expired` says is held past its fixed expires_at (`held_past_expiry`) is no user
    either: before, it kept its source's old key alive for ever, never re-issued."""
    fed_by = state.fed_by()
    going = {c.address for c in others if c.action is not Action.NOOP} | {c.key for c in revocations}
    out = []
    for change in revocations:
        if change.stale or change.orphan or dead_key(change):
            out.append(change)
            continue
        users = [u for u in fed_by.get((change.address, change.remote_id or ""), ())
                 if u not in going and not (expired is not None and expired(u))]
        if REVOKE_OLD_REQUESTED in change.reasons:  # a human asked: revoked, users or not, and told
            fed = fed_by.get((change.address, change.remote_id or ""), ())
            users += [f"{u} ({state.keys[u].remote_id}, replaced in this apply and kept for its grace)"
                      for u in fed if u in graced]
            reissued = [u for u in fed if u in going and u not in graced and u in state.keys
                        and any(c.address == u and c.action in (Action.REPLACE, Action.UPDATE) for c in others)]
            if reissued:
                notes.append(reissued_under(change.address, change.remote_id or "", reissued))
            if users:
                notes.append(revoked_under(change.address, change.remote_id or "", users))
                who = ", ".join(f"key {u!r}" for u in users)
                change = dataclasses.replace(change, reasons=(
                    *change.reasons, f"still used by {who}: {'it stops' if len(users) == 1 else 'they stop'} working"))
            out.append(change)
        elif users and destroy and not change.deposed:
            notes.append(destroyed_under(change.address, change.remote_id or "", users))
            out.append(change)
        elif users:
            notes.append(kept_for(change.address, change.remote_id or "", users, deposed=change.deposed))
        else:
            out.append(change)
    return out


def destroyed_under(address: str, remote_id: str, users: Sequence[str]) -> str:
    """What a `destroy` of `address` says when `users` still use its key's secret: they stop working."""
    who = ", ".join(f"key {u!r}" for u in users)
    return (f"{address} ({remote_id}) is destroyed although {who} still {'uses' if len(users) == 1 else 'use'} "
            f"its secret: {'it stops' if len(users) == 1 else 'they stop'} working")


def revoked_under(address: str, remote_id: str, users: Sequence[str]) -> str:
    """The warning of a `--revoke-old` revocation of `address`'s old key `remote_id` that `users`
    still use the secret of: they stop authenticating when it is revoked."""
    who = ", ".join(f"key {u!r}" for u in users)
    return (f"{WARNING}{address} (deposed {remote_id}) is revoked now (--revoke-old) although {who} still "
            f"{'uses' if len(users) == 1 else 'use'} its secret: {'it stops' if len(users) == 1 else 'they stop'} "
            "working when it is revoked")


def reissued_under(address: str, remote_id: str, consumers: Sequence[str]) -> str:
    """The note of a `--revoke-old` revocation of `address`'s old key `remote_id` whose `consumers`
    this plan re-issues with its new secret, keeping no old key of theirs for a grace: the revoke
    follows their re-issue, and goes ahead if it fails, leaving such a consumer the revoked secret."""
    who = ", ".join(f"key {u!r}" for u in consumers)
    one = len(consumers) == 1
    return (f"{who} {'is' if one else 'are'} re-issued with the new secret of {address} before its old key "
            f"{remote_id} is revoked (--revoke-old); should {'that re-issue' if one else 'a re-issue'} fail, the "
            f"old key is revoked all the same, and {'that key' if one else 'each such key'} stops working (it still "
            f"sends the revoked secret) until `keyform apply` re-issues it")


def _listed_dead(snapshot: RemoteSnapshot, provider: str, remote_id: str) -> bool:
    listed = snapshot.lookup(provider, remote_id)[1]
    return listed is not None and (listed.revoked or listed.expired)


def _revoke_old_problems(revoking: set[str], state: State, desired: Mapping[str, KeySpec],
                         decisions: Mapping[str, _Decision], in_scope: Callable[[str], bool]) -> list[Diagnostic]:
    """`--revoke-old` addresses this plan cannot act on: unknown, left out by `--target`, or with no
    old key waiting and no replacement in this plan to make one."""
    waiting = {d.address for d in state.deposed}
    out = []
    for address in sorted(revoking):
        shown = cut(one_line(address))
        if address not in state.keys and address not in waiting:
            out.append(Diagnostic(f"--revoke-old {shown}: no key with that address in the state"))
        elif not in_scope(address):
            out.append(Diagnostic(f"--revoke-old {shown}: {shown} is not among the keys --target plans; target it "
                                  "too"))
        elif address not in waiting and not ((d := decisions.get(address)) is not None
                                             and d.action is Action.REPLACE):
            out.append(Diagnostic(f"--revoke-old {shown}: {shown} has no old keys waiting to be revoked (to "
                                  f"rotate it and revoke the key it replaces at once: --replace {shown} "
                                  f"--revoke-old {shown})"))
    return out


def dead_key(change: Change) -> bool:
    """Whether a revocation is of a key the API lists as revoked or expired (`ALREADY_DEAD`)."""
    return any(r in ALREADY_DEAD for r in change.reasons)


def kept_for(address: str, remote_id: str, users: Sequence[str], *, deposed: bool = True) -> str:
    """Why the old key `remote_id` of `address` (or, not `deposed`, the key of an address the
    manifests no longer declare) is not revoked: `users` still use its secret (a key whose re-issue
    failed or was not applied, or an old key living through its grace)."""
    who = ", ".join(f"key {u!r}" for u in users)
    why = "an old key in its grace" if all(" (deposed " in u for u in users) else \
        "a re-issue that failed or was not applied"
    # a key the manifests dropped may have leaked: say how to revoke it now
    now = "" if deposed else f" (`keyform destroy --target {address}` revokes it now)"
    return (f"{address} ({'deposed ' if deposed else ''}{remote_id}) is kept: {who} still "
            f"{'uses' if len(users) == 1 else 'use'} its secret ({why}); it is revoked once no key does{now}")


def inputs_digest(fingerprints: Mapping[str, str | None]) -> str:
    """One digest of a key's input fingerprints (HMACs already: nothing of a value can be read from
    it), for `Plan.inputs`: a saved plan is applied only with the values it was made with."""
    return hashlib.sha256(json.dumps(sorted(fingerprints.items())).encode()).hexdigest()


def _stale_copy(entry: SinkTarget, address: str, workspace: Workspace,
                state: State) -> tuple[Change | None, str | None]:
    """The removal of a copy of `address`'s secret that its sink move left at `entry` (`State.stale`),
    or the note saying why keyform cannot remove it."""
    owner = state.keys.get(address)
    if owner is None or entry.sink not in workspace.sinks:
        why = f"keyform no longer manages {address}" if owner is None else \
            f"sink {entry.sink} is no longer in the manifests"
        return None, (f"the sink entry {entry} may still hold a copy of the secret of {address} (a sink move left it "
                      f"there) and {why}: remove that entry by hand (the next apply stops tracking it)")
    return Change(address=address, action=Action.DELETE, provider=owner.provider, provider_type=owner.provider_type,
                  remote_id=owner.remote_id, stale=True, sink=str(entry),
                  reasons=("a copy of its secret, or of the key it replaced, that a sink move left here: its "
                           "removal was cut off (a crash or a sink error)",)), None


def unremovable_stale(workspace: Workspace, state: State, plan: Plan) -> list[SinkTarget]:
    """The stale copies in `plan`'s scope that keyform cannot remove (their key is no longer in the
    state, or their sink in the manifests) and the plan does not remove: its notes named each, and
    the apply stops tracking them (kept, every plan would repeat the note)."""
    planned = {c.sink for c in plan.changes if c.stale}
    scope = set(plan.targets)
    return [entry for entry, address in state.stale_copies()
            if str(entry) not in planned and (not scope or address in scope)
            and (address not in state.keys or entry.sink not in workspace.sinks)]


def foreign_entries(workspace: Workspace, state: State, changes: Iterable[Change],
                    inputs: PlanInputs) -> list[Diagnostic]:
    """The changes that would write a secret over an entry keyform did not write, in a sink whose
    file others write too (a .env's `OTHER_VAR=keepme`): one diagnostic each, at the key, naming
    the entry's `file:line`. keyform's own entries are those a key in the state records, those in
    `state.written`, and those an interrupted apply may have written."""
    out: list[Diagnostic] = []
    owned: set[tuple[str, str]] | None = None  # as stored entries: a sink's alias owns what it wrote
    for change in changes:
        if change.sink is None or change.action is Action.DELETE:  # most changes: nothing to look up
            continue
        spec = workspace.keys.get(change.address)
        if spec is None or spec.sink is None:
            continue
        target = spec.sink
        where = inputs.sinks.where(target.sink, target.name)
        if where is None:
            continue
        if owned is None:
            owned = {workspace.entry_id(t) for t in state.owned_entries() | inputs.interrupted_entries}
        if workspace.entry_id(target) not in owned:
            ks = state.keys.get(change.address)
            if ks is not None and ks.sink is not None and ks.sink.name == target.name \
                    and ks.sink.sink not in workspace.sinks:  # a sink renamed? keyform cannot tell its file
                out.append(Diagnostic(
                    f"key {change.address!r}: sink {target.sink} already holds {target.name} ({where}), and the state "
                    f"records this key's secret as {target.name} in sink {ks.sink.sink}, which the manifests no "
                    f"longer declare; keyform cannot tell whether that was this file, so it will not overwrite "
                    f"it. If sink {target.sink} is sink {ks.sink.sink} renamed, keep its old name "
                    f"({ks.sink.sink}); else give the key another `as:`", spec.loc))
                continue
            out.append(Diagnostic(
                f"key {change.address!r}: sink {target.sink} already holds {target.name} ({where}), which keyform "
                f"did not write, or wrote for a key `state rm` forgot (the state does not record it); it will not "
                f"overwrite it. Give the key another "
                "`as:`, or remove that line from the file if its value may go (if it holds the secret of a key "
                "keyform made, adopt that key with `keyform import`)", spec.loc))
    return out


def held_entry_ids(workspace: Workspace, state: State) -> set[tuple[str, str]]:
    """The stored entries (`Workspace.entry_id`: aliases of one file are one) that a key of the
    manifests writes or the state records at: none of them is an orphan's to remove."""
    targets = [t for s in workspace.keys.values() if (t := s.sink) is not None]
    targets += [t for k in state.keys.values() if (t := k.sink) is not None]
    return {workspace.entry_id(t) for t in targets}


def unreadable_sinks(workspace: Workspace, state: State, changes: Iterable[Change],
                     inputs: PlanInputs) -> list[Diagnostic]:
    """The changes that would write a secret into a sink whose file cannot be read now (not UTF-8,
    not JSON, a symlink, ...: `SinkSnapshot.problems`), or move one out of such a file: one
    diagnostic each, at the key. Applying them would create (or rotate, or update) the key and only
    then fail to store, or to read back, its secret."""
    out: list[Diagnostic] = []
    sinks = inputs.sinks
    if not sinks.problems and not sinks.entry_problems:
        return out
    for change in changes:
        if change.sink is None or change.action is Action.DELETE:  # most changes: nothing to look up
            continue
        spec = workspace.keys.get(change.address)
        if spec is None or spec.sink is None:
            continue
        problem = sinks.problem_at(spec.sink)
        if problem is not None:
            out.append(Diagnostic(
                f"key {change.address!r}: sink {spec.sink.sink} cannot take its secret: {problem}. Applying would "
                f"{change.action.value} the key and then fail to store the secret, so nothing is planned: fix or "
                "move that file, or point the sink at another path", spec.loc))
            continue
        ks = state.keys.get(change.address)
        old = ks.sink if ks is not None and ks.secret_in_sink else None
        if (change.action is Action.UPDATE and old is not None and old != spec.sink
                and (problem := sinks.problem_at(old)) is not None):
            out.append(Diagnostic(
                f"key {change.address!r}: its secret cannot be moved out of sink {old.sink}: {problem}. "
                "Applying would update the key and then fail to read the secret back, so nothing is planned: "
                "fix that file first", spec.loc))
    return out


def _unreadable_sink_notes(state: State, inputs: PlanInputs, in_scope: Callable[[str], bool]) -> list[str]:
    """A note per unreadable sink that the state says holds secrets: whether they are still there
    is unknown (plan cannot tell a lost secret from an unreadable file)."""
    holding: dict[str, int] = {}
    if not inputs.sinks.problems:  # every sink read (most plans)
        return []
    for address, ks in state.keys.items():
        if ks.sink is not None and ks.secret_in_sink and ks.sink.sink in inputs.sinks.problems and in_scope(address):
            holding[ks.sink.sink] = holding.get(ks.sink.sink, 0) + 1
    return [f"sink {name}: {inputs.sinks.problems[name]}; whether it still holds the secret of "
            f"{n} key{'s' if n != 1 else ''} is unknown" for name, n in sorted(holding.items())]


def _target_scope(workspace: Workspace, state: State, targets: tuple[str, ...],
                  destroy: bool = False) -> set[str] | None:
    """The keys `--target` puts in scope: the targets and what they depend on (a `secret_of`: it is
    applied first); for `destroy`, as Terraform's `destroy -target`, the targets and what depends
    on them (a key reading a revoked key's secret cannot stay), never what they depend on."""
    if not targets:
        return None
    unknown = [t for t in targets if t not in workspace.keys and t not in state.keys]
    if unknown:
        raise KeyformError([Diagnostic(f"--target {cut(one_line(t))}: no key with that address in the manifests or the "
                                       "state") for t in unknown])
    deps = {a: s.dependencies() for a, s in workspace.keys.items()}
    return closure(targets, dependents(deps) if destroy else deps)


class _Kind(NamedTuple):
    """A provider type's capabilities, with what `_decide` asks of every key worked out once."""

    type: ProviderKind
    remote_reported: frozenset[str]  # its attributes a list call reports back

    @classmethod
    def of(cls, k: ProviderKind) -> _Kind:
        # any iterable of names (a plug-in's `remote_attributes` may be a tuple or a list)
        return cls(k, frozenset(k.remote_attributes).intersection(k.attributes))


class _Kinds(dict[str, _Kind]):
    """Each provider type's `_Kind`, looked up once per plan (not twice per key)."""

    def __missing__(self, name: str) -> _Kind:
        found = self[name] = _Kind.of(kind(name))
        return found


# the decision of every key `_quiet` passes, shared: `_propagate` gives such a key its own (`_own`)
# before it changes it; `plan` counts every other one as `looked`
_QUIET = _Decision(Action.NOOP)


def _own(decisions: dict[str, _Decision], address: str) -> _Decision:
    """`address`'s decision, to be changed: its own, never the shared `_QUIET`."""
    d = decisions[address]
    if d is _QUIET:
        d = decisions[address] = _Decision(Action.NOOP)
    return d


def _quiet(spec: KeySpec, ks: KeyState, snapshot: RemoteSnapshot, now: datetime, inputs: PlanInputs,
           kd: _Kind) -> bool:
    """Whether `_decide` would find nothing at all for `spec`'s key `ks` (a bare no-op: no reason,
    attribute, note or flag): `_quiet_changes` for this one key (the key consumes no other key's
    secret, as `plan` asks of every key it passes there)."""
    address = spec.address
    return address in _quiet_changes([address], {address: spec}, {address: ks}, {address: []}, (), snapshot, now,
                                     inputs, {spec.provider_type: kd})


_ABSENT: Any = object()


def _quiet_changes(addresses: Iterable[str], desired: Mapping[str, KeySpec], recorded: Mapping[str, KeyState],
                   deps: Mapping[str, list[str]], forced: Collection[str], snapshot: RemoteSnapshot, now: datetime,
                   inputs: PlanInputs, kinds: dict[str, _Kind]) -> dict[str, Change]:
    """The no-op Change (`_change_for`'s first case) of each of `addresses` (in their order) whose
    key `_decide` would find nothing at all for (a bare no-op: no reason, attribute, note or flag):
    every check it makes, in one pass with nothing built, the plan's inputs read once for all keys
    (most keys of most plans). An address is left out when that is no verdict (`_decide` then
    looks, and may find nothing either): a key is in only when it is recorded, not `forced`
    (`--replace`), consumes no other key's secret (`deps`), and agrees with its record and its
    listing in the common shape (the same provider, attributes, expiry text, sink and
    fingerprints; listed, not revoked or expired; no rotation due). `kinds`: each provider type's
    `_Kind`, added to as met."""
    listed = {name: snap.keys for name, snap in snapshot.instances.items()}  # (`RemoteSnapshot.lookup`)
    listing_of, resolved_of, missing = listed.get, inputs.fingerprints.get, inputs.missing_secrets
    times: dict[str, datetime | None] = {}  # each time text's `_norm_time`, read once
    recorded_get, kind_of, noop = recorded.get, kinds.get, Action.NOOP
    no_inputs: Mapping[str, str | None] = {}
    out: dict[str, Change] = {}
    for address in addresses:
        ks = recorded_get(address)
        if ks is None or deps[address] or address in forced:
            continue
        spec = desired[address]
        provider, provider_type = spec.provider, spec.provider_type
        if (ks.provider != provider or ks.provider_type != provider_type
                or ks.prevent_destroy != spec.prevent_destroy or ks.rotation_requested):
            continue
        expiry = spec.expiry
        if ks.expiry_spec != expiry.spec or ((at := expiry.at) is not None and at <= now):
            continue  # (an expiry edited, or a fixed one passed: held)
        kd = kind_of(provider_type)
        if kd is None:
            kd = kinds[provider_type] = _Kind.of(kind(provider_type))
        applied: Mapping[str, Any] = ks.attrs
        keys = listing_of(provider, _ABSENT)
        if keys is _ABSENT or keys is None:  # (not listed at all, or could not be: planned from the state)
            rk = None
            if spec.attrs != applied:
                continue
            expires_text = ks.expires_at
        else:
            rk = keys.get(ks.remote_id)
            if rk is None or rk.revoked or rk.expired:
                continue  # (deleted, revoked or expired outside keyform)
            expires_text = rk.expires_at
            if expires_text != ks.expires_at and kd.type.expiry_updatable:
                continue
            seen = rk.attrs
            if spec.attrs != applied or not (seen is applied or (seen.keys() >= kd.remote_reported
                                                                 and seen.items() <= applied.items())):
                continue
        if spec.secret_inputs or ks.fingerprints:  # (`_diff_secret_inputs`' own shortcut)
            resolved = resolved_of(address, no_inputs)
            if resolved != ks.fingerprints or resolved.keys() != spec.secret_inputs.keys():
                continue
        if kd.type.returns_secret and ks.secret_in_sink:
            want, have = spec.sink, ks.sink
            if want is not have and (want is None or have is None or want.sink != have.sink
                                     or want.name != have.name):
                continue  # (`_diff_sink`: the same target, compared field by field)
            if address in missing:
                continue
        rot = spec.rotation
        if expires_text:
            expires = times.get(expires_text, _ABSENT)
            if expires is _ABSENT:
                expires = times[expires_text] = _norm_time(expires_text)
            if expires is not None and expires <= now:
                continue  # expired by the recorded (or listed) time
        else:
            expires = None
        if rot.before_expiry is not None:
            # `_rotation_due`'s expiry: the listed one, else (the API reports none) the state's
            due_by = expires if rk is None or expires_text else (_norm_time(ks.expires_at) if ks.expires_at else None)
            if due_by is not None and due_by - now < rot.before_expiry:
                continue
        if rot.max_age is not None and not now - parse_time(ks.created_at) < rot.max_age:
            continue
        out[address] = Change(address, noop, provider, provider_type, (), (), ks.remote_id)
    return out


def _decide(spec: KeySpec, state: State, snapshot: RemoteSnapshot, now: datetime,
            inputs: PlanInputs, kd: _Kind, sinks: Mapping[str, SinkConfig]) -> _Decision:
    """A key's own decision, before dependency propagation (`kd`: its provider type's `_Kind`)."""
    ks = state.keys.get(spec.address)
    k = kd.type
    if ks is None:
        return _Decision(Action.CREATE, ["new key"])
    d = _Decision(Action.NOOP)
    if ks.provider != spec.provider or ks.provider_type != spec.provider_type:
        d.escalate(Action.REPLACE, f"provider changed from {ks.provider} to {spec.provider}" if ks.provider !=
                   spec.provider else f"provider type changed from {ks.provider_type} to {spec.provider_type}")
        _entry_left(d, spec, ks, kd, sinks)
        return d
    if (at := spec.expiry.at) is not None and at <= now and ks.expiry_spec == spec.expiry.spec:
        # made with this fixed expires_at, which has passed: a replacement would expire at the same
        # time (refused), so the key is left as it is, whatever the API says of it (`expired_note`);
        # only a changed prevent_destroy is recorded (no remote call), else a key unprotected could
        # never be removed from the manifests ("remove prevent_destroy (and apply) first")
        held = _Decision(Action.NOOP, held=True)
        # its edited attributes, sink and secret inputs (`auth_value`, a secret header: a changed
        # value or `secret_of` source) are not applied either (it is made again with them once
        # expires_at moves later): said in its note, not dropped unseen (before, it named the
        # attributes only)
        edited = [n for n in k.attributes if spec.attrs.get(n) != ks.attrs.get(n)]
        held.waits = (*edited, *_held_edits(spec, ks, state, inputs, kd, sinks))
        if ks.prevent_destroy != spec.prevent_destroy:
            held.attrs[PREVENT_DESTROY] = AttrChange(PREVENT_DESTROY, ks.prevent_destroy, spec.prevent_destroy)
            held.escalate(Action.UPDATE, "lifecycle.prevent_destroy changed (recorded in state; no remote call)")
        return held

    known, rk = snapshot.lookup(ks.provider, ks.remote_id)
    if known and rk is None:
        return _Decision(Action.CREATE, ["deleted outside keyform"])
    if rk is not None and rk.revoked:
        d.escalate(Action.REPLACE, "revoked outside keyform")
        d.dead = True
    # the expiry in force: what the API reports, else what the state recorded (parsed once)
    expires = _norm_time(rk.expires_at if rk is not None else ks.expires_at)
    if (rk is not None and rk.expired) or (expires is not None and expires <= now):
        d.escalate(Action.REPLACE, "expired")
        # dead only by the API's own word: an expiry read off keyform's clock may be wrong (an API
        # clock behind ours, a record extended since), and a TextQL record has no expired flag
        d.dead = d.dead or (rk is not None and rk.expired)

    want_attrs, applied_attrs = spec.attrs, ks.attrs
    seen_attrs = rk.attrs if rk is not None else applied_attrs
    # most keys have every attribute as applied and as seen: two dict comparisons tell, no loop
    if not (want_attrs == applied_attrs and _seen_as_applied(seen_attrs, applied_attrs, kd.remote_reported)):
        _diff_attrs(d, k, want_attrs, applied_attrs, seen_attrs, ks, rk)

    updated: datetime | None = None  # the expiry an update of it sets
    if ks.expiry_spec != spec.expiry.spec:
        change = AttrChange(EXPIRY, expiry_display(ks.expiry_spec), expiry_display(spec.expiry.spec),
                            forces_replacement=not k.expiry_updatable)
        d.attrs[EXPIRY] = change
        if k.expiry_updatable and spec.expiry.kind == "never":
            # the update call cannot clear an expiry (expiresAt is a timestamp, never null)
            d.attrs[EXPIRY] = dataclasses.replace(change, forces_replacement=True)
            d.escalate(Action.REPLACE, "an expiry cannot be removed in place")
        elif k.expiry_updatable:
            # `expires_in` counts from the key's creation, as when it was created: an update moves
            # the expiry there (`updated_expiry`), never a new span from now
            updated = updated_expiry(spec, ks, now)
            if updated is not None and updated <= now:
                d.attrs[EXPIRY] = dataclasses.replace(change, forces_replacement=True)
                d.escalate(Action.REPLACE, f"expiry changed, and {spec.expiry.text} after its creation "
                                           f"({format_time(updated)}) has passed" if spec.expiry.kind == "in" else
                           f"expiry changed to {format_time(updated)}, which has passed")
            else:
                d.escalate(Action.UPDATE, "expiry changed" if updated is None else
                           f"expiry changed (to {format_time(updated)})")
        else:
            d.escalate(Action.REPLACE, "expiry cannot be changed in place")
    elif (k.expiry_updatable and rk is not None and rk.expires_at != ks.expires_at  # the same text: the same time
          and _norm_time(rk.expires_at) != _norm_time(ks.expires_at)):
        d.attrs[EXPIRY] = AttrChange(EXPIRY, rk.expires_at or "never", ks.expires_at or "never")
        d.escalate(Action.UPDATE, "expiry modified outside keyform")

    _diff_secret_inputs(d, spec, ks, state, inputs)
    if k.returns_secret and ks.secret_in_sink:
        _diff_sink(d, spec, ks, inputs, sinks)
        if ks.sink is not None and spec.address in inputs.missing_secrets:
            d.escalate(Action.REPLACE, f"secret missing from sink {ks.sink.sink} ({ks.sink.name})")
    if d.action is not Action.REPLACE:
        _rotation_due(d, spec, ks, rk, now, updated or (expires if rk is None or rk.expires_at
                                                          else _norm_time(ks.expires_at)))
    if ks.prevent_destroy != spec.prevent_destroy:
        d.attrs[PREVENT_DESTROY] = AttrChange(PREVENT_DESTROY, ks.prevent_destroy, spec.prevent_destroy)
        d.escalate(Action.UPDATE, "lifecycle.prevent_destroy changed (recorded in state; no remote call)")
    return d


def _held_edits(spec: KeySpec, ks: KeyState, state: State, inputs: PlanInputs, kd: _Kind,
                sinks: Mapping[str, SinkConfig]) -> tuple[str, ...]:
    """The sink and secret inputs of a key held past its fixed expires_at (`_Decision.held`) that
    differ from its record, as the plan of a key not held would name them (`_diff_sink`,
    `_diff_secret_inputs`): what its note says is not applied to it. No edit: an imported key's
    input whose fingerprint is only recorded (no remote call), or a `secret_of` input whose source
    was re-issued since (the same source: the held consumer is not re-issued with it). A `secret_of`
    input moved to a source this plan makes is an edit (`_diff_secret_inputs` leaves it to
    propagation, which re-issues no held key: it was dropped unseen)."""
    probe = _Decision(Action.NOOP)
    if kd.type.returns_secret and ks.secret_in_sink:
        _diff_sink(probe, spec, ks, inputs, sinks)
    _diff_secret_inputs(probe, spec, ks, state, inputs)

    def another_source(name: str) -> bool:
        ref, edge = spec.secret_inputs.get(name), secret_of_edge(ks.fingerprints.get(name, ""))
        return not (isinstance(ref, SecretOfRef) and edge is not None and edge[0] == ref.address)

    edits = [n for n, a in probe.attrs.items() if a.before != _NOT_YET_SEEN and another_source(n)]
    edits += [n for n, ref in spec.secret_inputs.items()  # (a source not in the state yet: made by this plan)
              if isinstance(ref, SecretOfRef) and ref.address not in state.keys and another_source(n)]
    return tuple(edits)


def _seen_as_applied(seen: Mapping[str, Any], applied: Mapping[str, Any], names: frozenset[str]) -> bool:
    """Whether the list call reports each of `names` as applied: trivially so without a remote key
    (`seen` is `applied`); else when `seen` has every one of them and nothing that differs from
    `applied` (two C-level view comparisons; False sends the caller to the per-attribute loop)."""
    return seen is applied or (seen.keys() >= names and seen.items() <= applied.items())


def _diff_attrs(d: _Decision, k: ProviderKind, want_attrs: Mapping[str, Any], applied_attrs: Mapping[str, Any],
                seen_attrs: Mapping[str, Any], ks: KeyState, rk: RemoteKey | None) -> None:
    for name in k.attributes:
        want, applied = want_attrs.get(name), applied_attrs.get(name)
        remote_reports = name in k.remote_attributes
        if want == applied and (not remote_reports or seen_attrs.get(name) == applied):
            continue  # the same as applied and as seen
        _diff_attr(d, name, want, ks, rk, updatable=name in k.updatable, remote_reports=remote_reports)


def _diff_attr(d: _Decision, name: str, want: Any, ks: KeyState, rk: RemoteKey | None, *,
               updatable: bool, remote_reports: bool) -> None:
    applied = ks.attrs.get(name)
    seen = rk.attrs.get(name) if (rk is not None and remote_reports) else applied
    if want == applied and seen == applied:
        return
    if want != applied:
        reason = f"{name} changed" if updatable else f"{name} cannot be changed in place"
    elif updatable:
        reason = f"{name} modified outside keyform"
    else:
        reason = f"{name} modified outside keyform and cannot be changed back in place"
    d.attrs[name] = AttrChange(name, seen, want, forces_replacement=not updatable)
    d.escalate(Action.UPDATE if updatable else Action.REPLACE, reason)


def _diff_secret_inputs(d: _Decision, spec: KeySpec, ks: KeyState, state: State, inputs: PlanInputs) -> None:
    if not spec.secret_inputs and not ks.fingerprints:
        return
    resolved = inputs.fingerprints.get(spec.address, {})
    if resolved == ks.fingerprints and resolved.keys() == spec.secret_inputs.keys():
        # every input has its recorded fingerprint (most keys); `fingerprints` holds env/file inputs
        # only (`resolve.input_fingerprints`), so none of these is a `secret_of` input
        return
    for path in sorted(set(spec.secret_inputs) | set(ks.fingerprints)):
        ref = spec.secret_inputs.get(path)
        old = ks.fingerprints.get(path)
        if ref is None:
            new: str | None = None
        elif isinstance(ref, SecretOfRef):
            src = state.keys.get(ref.address)
            new = secret_of_fingerprint(ref.address, src.remote_id) if src else None
            if src is None:
                continue  # the source is being created: propagation decides
        else:
            new = resolved.get(path)
            if new is None:
                continue  # cannot be resolved at plan time; apply checks it before any call
        if old == new:
            continue
        if old == UNKNOWN_FINGERPRINT and new is not None:
            d.attrs[path] = AttrChange(path, _NOT_YET_SEEN, str(ref), sensitive=True)
            d.escalate(Action.UPDATE, f"records the fingerprint of {path} (imported key; no remote call)")
            continue
        updatable = header_of(path) is not None
        shown_after = str(ref) if ref is not None else None
        d.attrs[path] = AttrChange(path, "(sensitive)" if old else None, shown_after,
                                   forces_replacement=not updatable, sensitive=True)
        if old is None:
            reason = f"{path} added"
        elif new is None:
            reason = f"{path} removed"
        elif isinstance(ref, SecretOfRef):
            reason = f"{path} changed ({ref.address} was re-issued)"
        else:
            reason = f"{path} changed (fingerprint)"
        d.escalate(Action.UPDATE if updatable else Action.REPLACE, reason)


_NOT_YET_SEEN = "(not yet seen)"  # the before of an imported key's input whose fingerprint is only recorded


def _entry_left(d: _Decision, spec: KeySpec, ks: KeyState, kd: _Kind, sinks: Mapping[str, SinkConfig]) -> None:
    """A key replaced by one of another provider: its old secret's entry, unless the new key's
    secret is written to that same entry, goes once the new key is made (as on a sink move)."""
    if ks.sink is None or not ks.secret_in_sink:
        return
    new = spec.sink if kd.type.returns_secret else None
    if new is not None and entry_id(sinks, new) == entry_id(sinks, ks.sink):
        return
    d.attrs[SINK] = AttrChange(SINK, str(ks.sink), str(new) if new is not None else None, forces_replacement=True)
    d.reasons.append(f"its sink entry {ks.sink} is removed" + (
        f": the secret moves to {new}" if new is not None else f": {spec.provider_type} issues no secret to store"))


def _diff_sink(d: _Decision, spec: KeySpec, ks: KeyState, inputs: PlanInputs,
               sinks: Mapping[str, SinkConfig]) -> None:
    if spec.sink == ks.sink:
        return  # the same target (most keys): no strings to build
    want = str(spec.sink) if spec.sink else None
    have = str(ks.sink) if ks.sink else None
    if want == have:
        return
    if spec.sink is not None and ks.sink is not None and entry_id(sinks, spec.sink) == entry_id(sinks, ks.sink):
        # another name of the same file, the same variable: the secret is already there (moving it
        # wrote it, then removed the old name's line, which was the same line: the only copy)
        d.attrs[SINK] = AttrChange(SINK, have, want)
        d.sink_stays = True
        d.escalate(Action.UPDATE, f"sink renamed: {have} and {want} are one entry of one file; the secret stays "
                                  "where it is")
        return
    old_sink = ks.sink.sink if ks.sink else None
    movable = old_sink is not None and old_sink in inputs.readable_sinks
    d.attrs[SINK] = AttrChange(SINK, have, want, forces_replacement=not movable)
    if movable:
        d.escalate(Action.UPDATE, f"sink changed: the secret moves from {have} to {want}")
    else:
        d.escalate(Action.REPLACE, f"sink changed and {old_sink or 'the old sink'} cannot give the secret back")


def _rotation_due(d: _Decision, spec: KeySpec, ks: KeyState, rk: RemoteKey | None, now: datetime,
                  expires: datetime | None) -> None:
    """`expires`: the remote expiry when the API reports one, else the state's (parsed)."""
    rot = spec.rotation
    if ks.rotation_requested:
        d.escalate(Action.REPLACE, "rotation requested")
    if rot.before_expiry is not None and expires is not None:
        left = expires - now
        if left < rot.before_expiry:
            d.escalate(Action.REPLACE, f"expires in {format_duration(left)} "
                                       f"(< before_expiry {format_duration(rot.before_expiry)})")
    if rot.max_age is not None:
        age = now - parse_time(ks.created_at)
        if age >= rot.max_age:
            d.escalate(Action.REPLACE, f"age {format_duration(age)} (>= max_age {format_duration(rot.max_age)})")


_norm_time = maybe_time  # None for a missing or unreadable time
_NO_TIME = timedelta(0)


def updated_expiry(spec: KeySpec, ks: KeyState, now: datetime) -> datetime | None:
    """The expiry an in-place update gives the recorded key `ks` for `spec`'s expiry: `expires_in`
    counts from the key's creation (its `created_at`; `now` if unreadable), `expires_at` is itself."""
    return spec.expiry.resolve(_norm_time(ks.created_at) or now)


def _propagate(decisions: dict[str, _Decision], desired: Mapping[str, KeySpec], state: State,
               deps: Mapping[str, list[str]], order: list[str], inputs: PlanInputs) -> list[str]:
    """Dependency rules, to a fixed point: a re-issued source re-issues its dependants; a dependant
    that must be (re)created needs its source's secret, so a source whose sink cannot give it
    back is replaced too.

    A key held past its fixed expires_at (`_Decision.held`) is neither: as a consumer it is left as
    it is (expired, it sends its source's secret nowhere), and as a source whose secret no sink
    gives back it cannot be replaced (the new key would be expired: `past_expiry`), so the consumer
    needing it is left as it is too (`_Decision.stuck`, `stuck_note`), as are the consumers of
    that one needing its secret. A consumer of the held key not in the state yet (declared
    since), or one a human asked to replace (`--replace`), is refused at the held key instead.
    Before, each of these refused every plan of the workspace. Returns the addresses left so
    (most plans: none).

    Which keys cannot be (re)issued is known before any rule runs (`_waiting`), so a key that must
    wait is never replaced first and taken back later: before, a key escalated for a consumer's
    sake (`r needs its secret`) and then found waiting had already re-issued its own consumers
    (`depends on m, which is replaced`), which stayed in the plan, a needless rotation, while the
    key they depended on was left as it is, and a consumer of it never due was noted as waiting."""
    issued = (Action.CREATE, Action.REPLACE)
    # most plans hold no key held past its fixed expires_at: then no key waits, nothing to look at
    held = any(d.held for d in decisions.values())
    waiting = _waiting(decisions, desired, state, deps, order, inputs) if held else {}
    stuck: list[str] = []

    def lacking(address: str) -> bool:  # a secret no sink gives back, of a key that cannot be made again
        sd = decisions.get(address)
        return ((address in waiting or (sd is not None and sd.held))
                and not _secret_readable(desired[address], state.keys.get(address), inputs))

    changed = True
    while changed:
        changed = False
        for address in order:
            d = decisions.get(address)
            if d is None:
                continue
            for src in deps[address]:
                sd = decisions.get(src)
                if (sd is not None and sd.action in issued and d.action not in issued and not d.held
                        and d.stuck is None):
                    # (a held consumer, expired, is left as it is: it sends its secret to nobody)
                    verb = "replaced" if sd.action is Action.REPLACE else "created"
                    d = _own(decisions, address)
                    changed |= d.escalate(Action.REPLACE, f"depends on {src}, which is {verb}")
            if d.action not in issued:
                continue
            if address in waiting:
                # it cannot be made: it waits, before any consumer of it is re-issued for it (a key
                # not made yet, the manifests' edit, or a `--replace` of it, needing a held source's
                # secret is not waiting: it is refused at that source, `past_expiry`)
                d.wait_for(waiting[address], desired[address], lacking)
                stuck.append(address)
                changed = True
                continue
            for src in deps[address]:
                sd = decisions.get(src)
                if sd is None or sd.action in issued:
                    continue
                if not _secret_readable(desired[src], state.keys.get(src), inputs):
                    changed |= _own(decisions, src).escalate(
                        Action.REPLACE, f"{address} needs its secret and no sink can give it back")
    if held:  # (a key waits only for a held key, or for one waiting itself)
        # a key due for nothing but an in-place update that sends a waiting or held source's secret
        # in a header: the update waits, as a waiting key's would (before, it was planned and its
        # apply failed every run, unable to read that secret)
        for address in order:
            d = decisions.get(address)
            if d is None or d.action is not Action.UPDATE or d.stuck is not None or d.held:
                continue
            needed = _header_sources(desired[address], d, lacking)
            if needed:
                d.wait_for(needed[0], desired[address], lacking)
                stuck.append(address)
    return stuck


def _header_sources(spec: KeySpec, d: _Decision, unreadable: Callable[[str], bool]) -> list[str]:
    """The `secret_of` sources, `unreadable` ones only, of the secret headers an update of `d`
    would send: `applier._update_remote` resolves every secret header of an update that changes
    anything the API holds (not a sink move, a prevent_destroy, a fingerprint recorded)."""
    headers = [ref.address for p, ref in spec.secret_inputs.items()
               if header_of(p) is not None and isinstance(ref, SecretOfRef)]
    if not headers or not any(n not in (SINK, PREVENT_DESTROY)
                              and not (n in spec.secret_inputs and header_of(n) is None) for n in d.attrs):
        return []
    return [src for src in dict.fromkeys(headers) if unreadable(src)]


def unsendable_updates(decisions: Mapping[str, _Decision], desired: Mapping[str, KeySpec], state: State,
                       inputs: PlanInputs) -> list[Diagnostic]:
    """The in-place updates that would send a secret header fed by a source whose secret this
    apply cannot have: not (re)issued in it, and no sink gives it back (an `exec` sink without
    `read_command`, an encrypted sink without its key here, an imported key's). Every apply of
    such a plan would fail at that update, so the plan is refused at the key, saying what to do.
    (A source waiting or held past its fixed expires_at makes the update wait instead:
    `_propagate`.) Most plans have no update with a secret header: nothing to look at."""
    out: list[Diagnostic] = []
    issued = (Action.CREATE, Action.REPLACE)

    def unreadable(src: str) -> bool:
        sd = decisions.get(src)
        return (sd is None or sd.action not in issued) and src in desired \
            and not _secret_readable(desired[src], state.keys.get(src), inputs)

    for address, d in decisions.items():
        if d.action is not Action.UPDATE:
            continue
        spec = desired[address]
        for src in _header_sources(spec, d, unreadable):
            ks = state.keys.get(src)
            headers = ", ".join(h for p, ref in sorted(spec.secret_inputs.items())
                                if (h := header_of(p)) is not None and isinstance(ref, SecretOfRef)
                                and ref.address == src)
            if ks is None or ks.sink is None or not ks.secret_in_sink:
                why = "keyform never held its secret (an imported key)"
            elif src in inputs.missing_secrets:
                why = f"its sink entry {ks.sink} is missing"
            else:
                why = (f"sink {ks.sink.sink} cannot give it back (an exec sink without read_command, or an "
                       "encrypted sink whose key is not here)")
            changed = ", ".join(n for n in d.attrs if n != PREVENT_DESTROY)
            out.append(Diagnostic(
                f"key {address!r}: its in-place update ({changed}) sends header {headers} again, the secret of "
                f"{src!r}, and {why}: the apply would fail reading it, so nothing is planned. Make that sink "
                f"readable (a read_command, the decryption key), or re-issue {src!r} in the same apply "
                f"(`--replace {src}`: this key is then made again with its new secret). {_NOTHING_PLANNED}",
                spec.loc))
    return out


def _waiting(decisions: Mapping[str, _Decision], desired: Mapping[str, KeySpec], state: State,
             deps: Mapping[str, list[str]], order: list[str], inputs: PlanInputs) -> dict[str, str]:
    """The keys that cannot be (re)issued in this plan, each with the source it waits for: the
    key needs that source's secret, no sink gives it back, and the source cannot be replaced to
    give it (held past its fixed expires_at, or waiting itself). A key waits for a held source
    only if it is in the state and no `--replace` names it (else the plan is refused at that
    source). Called only when some key is held (`_propagate`)."""
    out: dict[str, str] = {}
    for address in order:
        d = decisions.get(address)
        if d is None or d.held:
            continue
        for src in deps[address]:
            sd = decisions.get(src)
            if sd is None or not (sd.held or src in out) or _secret_readable(desired[src], state.keys.get(src), inputs):
                continue
            if src in out or (address in state.keys and REPLACE_REQUESTED not in d.reasons):
                out[address] = src
                break
    return out


def _secret_readable(spec: KeySpec, ks: KeyState | None, inputs: PlanInputs) -> bool:
    if ks is None or not ks.secret_in_sink or ks.sink is None or spec.address in inputs.missing_secrets:
        return False
    return ks.sink.sink in inputs.readable_sinks


def _change_for(spec: KeySpec, ks: KeyState | None, d: _Decision, depends_on: list[str], kd: _Kind) -> Change:
    """The key's Change; `depends_on` is its `spec.dependencies()`, computed once by `plan`."""
    if d.action is Action.NOOP and not d.attrs and not d.reasons and not depends_on:
        # most keys of most plans: every other field keeps its default (fewer arguments to pass)
        return Change(spec.address, Action.NOOP, spec.provider, spec.provider_type,
                      remote_id=ks.remote_id if ks else None)
    k = kd.type
    attrs: list[AttrChange]
    if d.action is Action.CREATE:
        attrs = [AttrChange(n, None, spec.attrs.get(n)) for n in k.attributes]
        attrs.append(AttrChange(EXPIRY, None, expiry_display(spec.expiry.spec)))
        attrs.extend(AttrChange(p, None, str(r), sensitive=True) for p, r in sorted(spec.secret_inputs.items()))
    else:
        attrs = list(d.attrs.values())
    issued = d.action in (Action.CREATE, Action.REPLACE)
    dead = d.dead and d.action is Action.REPLACE and ks is not None
    reasons = tuple(d.reasons) if not dead else (
        *d.reasons, f"the old key {ks.remote_id if ks else ''} is revoked in this apply, not kept for a grace: "
                    "the API says it cannot be used any more")
    return Change(
        address=spec.address, action=d.action, provider=spec.provider, provider_type=spec.provider_type,
        reasons=reasons, attrs=tuple(attrs), remote_id=ks.remote_id if ks else None,
        sink=str(spec.sink) if (k.returns_secret and spec.sink and (issued or (SINK in d.attrs and not d.sink_stays)))
        else None, depends_on=tuple(depends_on), dead=dead,
    )


def _writes(workspace: Workspace, changes: Iterable[Change]) -> dict[str, tuple[str, str]]:
    """Address -> the stored entry (`Workspace.entry_id`) each change of `changes` writes its key's
    secret to (a create, a replacement, a sink move)."""
    return {c.address: workspace.entry_id(spec.sink) for c in changes
            if c.sink is not None and c.action is not Action.DELETE
            and (spec := workspace.keys.get(c.address)) is not None and spec.sink is not None}


def _secrets_at(workspace: Workspace, state: State, deleted: Collection[str],
                writes: Mapping[str, tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
    """Stored entry (aliases of one file are one) -> the keys whose secret the state records there
    and that keep it through this plan: not deleted (`deleted`, a set), not moved or replaced into
    another entry (`writes`). An imported key's entry never held its secret (`secret_in_sink`)."""
    out: dict[tuple[str, str], list[str]] = {}
    for address, ks in state.keys.items():
        if ks.sink is not None and ks.secret_in_sink and address not in deleted:
            here = workspace.entry_id(ks.sink)
            if writes.get(address, here) == here:
                out.setdefault(here, []).append(address)
    return out


def _entry_keepers(writes: Mapping[str, tuple[str, str]],
                   kept: Mapping[tuple[str, str], list[str]]) -> dict[tuple[str, str], str]:
    """Stored entry -> why a deleted key's entry there stays: once this plan's creates,
    replacements and moves have run (the apply runs every delete after them), a key holds it,
    written there now (`writes`) or kept there (`kept`, `_secrets_at`). Any other entry of a
    deleted key goes with it: under `--target` or `destroy`, a key of the manifests this plan does
    not apply holds nothing. The apply decides the same way from the state as it is by then
    (`applier._delete`)."""
    out = {here: f"key {keys[0]!r} records it" for here, keys in kept.items()}
    for address, here in writes.items():
        out[here] = f"key {address!r} writes it in this apply"
    return out


def entries_held_by_others(workspace: Workspace, state: State, writes: Mapping[str, tuple[str, str]],
                           kept: Mapping[tuple[str, str], list[str]]) -> list[Diagnostic]:
    """The changes that would write a secret over the entry another key's secret is kept in
    (`_secrets_at`: the state records it there, and this plan neither moves that key away nor
    deletes it): one diagnostic each. Only `--target` can leave such a key out (two keys of the
    manifests writing one entry are refused at load): half of a swap would overwrite the other
    key's only copy of its secret. A key marked for rotation is not counted: recovery found that
    its entry may already hold another key's secret, and it gets a new one. Nor is any key when
    the writer's own secret is recorded there too: it rewrites its own entry, which it wrote over
    the other's (a key renamed with the same `as:`, the old one's revoke failed)."""
    out: list[Diagnostic] = []
    for address, here in writes.items():
        holders = kept.get(here, ())
        if address in holders:
            continue
        for holder in holders:
            if state.keys[holder].rotation_requested:
                continue
            spec = workspace.keys[address]
            out.append(Diagnostic(
                f"key {address!r}: its secret would go to sink entry {spec.sink}, which holds the secret of key "
                f"{holder!r} (the state records it there), and this plan leaves {holder!r} out (--target); it "
                f"will not overwrite it. Target {holder!r} too (its secret moves or goes in the same apply), or "
                f"give {address!r} another `as:`", spec.loc))
    return out


def _delete_change(ks: KeyState, snapshot: RemoteSnapshot, destroy: bool, workspace: Workspace,
                   keepers: Mapping[tuple[str, str], str]) -> Change:
    reasons = ["destroy requested" if destroy else "removed from the manifests"]
    known, rk = snapshot.lookup(ks.provider, ks.remote_id)
    if known and rk is None:
        reasons.append("already gone remotely: only forgotten")
    elif rk is not None and rk.revoked:
        reasons.append("already revoked remotely")
    sink = None
    if ks.sink is not None and not ks.secret_in_sink:
        reasons.append(f"its sink entry {ks.sink} is left as it is: keyform did not write it (an imported key)")
    elif ks.sink is not None:  # (an imported key's entry was never keyform's to remove)
        keeper = keepers.get(workspace.entry_id(ks.sink))
        if ks.sink.sink not in workspace.sinks:  # the apply cannot reach it (`applier._drop_entry`)
            reasons.append(f"its sink entry {ks.sink} is left as it is: sink {ks.sink.sink} is no longer in the "
                           "manifests")
        elif keeper is None:
            sink = str(ks.sink)
        else:
            reasons.append(f"its sink entry {ks.sink} stays: {keeper}")
    return Change(address=ks.address, action=Action.DELETE, provider=ks.provider,
                  provider_type=ks.provider_type, reasons=tuple(reasons), remote_id=ks.remote_id, sink=sink)


# what every none-listed warning says after its instance's name (`leading_warnings` finds them)
_NONE_LISTED = ": its listing shows none of the "


def leading_warnings(notes: Sequence[str]) -> int:
    """How many of a plan's first `notes` are none-listed warnings (`_none_listed_warnings`): the
    notes said before any other, the session's (manifest, recovery) included, so that a Markdown
    plan, which cuts the notes that come last, never cuts them."""
    n = 0
    while n < len(notes) and notes[n].startswith(WARNING) and _NONE_LISTED in notes[n]:
        n += 1
    return n


def _none_listed_warnings(state: State, snapshot: RemoteSnapshot, changes: Sequence[Change]) -> list[str]:
    """A warning for each instance whose listing shows none of the two or more keys the state
    records for it, when the plan creates any of them again or deletes any: a listing that came back
    empty by mistake (a reply misread, a wrong account or region behind the same token) makes every
    key look deleted outside keyform, and the plan creates each again while the originals stay live
    and untracked. A delete of a key the listing does not show still sends the delete call
    (`applier._delete`): the key is forgotten once the API answers it deleted, or already gone (its
    `gone` statuses, "already gone remotely: only forgotten"); only in that last case, the listing
    wrong, does it stay live and untracked. Nothing is refused (a whole account may be wiped on
    purpose): the plan says so, first. A single key deleted out of many is no such sign."""
    if not any(c.action is Action.CREATE or c.action is Action.DELETE for c in changes):
        return []  # (nothing created again or deleted: no instance is warned of; most plans)
    recorded: dict[str, list[KeyState]] = {}
    for ks in state.keys.values():
        recorded.setdefault(ks.provider, []).append(ks)
    out: list[str] = []
    for name in sorted(recorded):
        keys = recorded[name]
        snap = snapshot.instances.get(name)
        if len(keys) < 2 or snap is None or snap.keys is None or any(k.remote_id in snap.keys for k in keys):
            continue
        addresses = {k.address for k in keys}
        mine = [c for c in changes if c.address in addresses and c.primary]
        again = sum(1 for c in mine if c.action is Action.CREATE)
        deleted = sum(1 for c in mine if c.action is Action.DELETE)
        if not again and not deleted:
            continue
        does = " and ".join(part for part in (
            f"creates {plural(again, 'key')} again" if again else "",
            f"sends the delete call for {plural(deleted, 'key')} all the same" if deleted else "") if part)
        lost = []
        if again == len(keys):
            lost.append(f"the {len(keys)} keys it recorded stay live and untracked")
        elif again:
            lost.append(f"the {plural(again, 'key')} it recorded and creates again {'stays' if again == 1 else 'stay'} "
                        "live and untracked")
        if deleted:
            lost.append("a key whose delete the API answers is already gone is forgotten while it stays live and "
                        "untracked")
        out.append(f"{WARNING}{name}{_NONE_LISTED}{len(keys)} keys the state records for it; applying this plan "
                   f"{does}; if the API's listing is wrong, {', and '.join(lost)}: check the API's console before "
                   "applying")
    return out


_PROVIDER = operator.attrgetter("provider")


def _refresh_notes(workspace: Workspace, state: State, snapshot: RemoteSnapshot, scope: set[str] | None) -> list[str]:
    if scope is None:  # every key counts (most plans): no test per key
        used = set(map(_PROVIDER, workspace.keys.values())).union(map(_PROVIDER, state.keys.values()))
    else:
        used = {s.provider for a, s in workspace.keys.items() if a in scope}
        used |= {k.provider for a, k in state.keys.items() if a in scope}
    notes: list[str] = []
    if used and not snapshot.refreshed:
        return ["refresh disabled: planned from the state alone (remote drift is not detected)"]
    for name in sorted(used):
        snap = snapshot.instances.get(name)
        if snap is not None and snap.keys is None:
            notes.append(f"{name}: {snap.note or 'keys could not be listed'}; planned from the state alone")
        elif snap is not None and snap.clock_note:  # (a plug-in's clock check that did not return)
            notes.append(snap.clock_note)
        elif snap is not None and (note := _skew_note(workspace, name, snap.clock_offset)):
            notes.append(note)
    return notes


def _skew_note(workspace: Workspace, instance: str, offset: float | None) -> str | None:
    """`usage.skew_note`, imported only for a clock a minute or more off ours (most plans: none)."""
    config = workspace.providers.get(instance)
    if offset is None or abs(offset) < SKEW_NOTED or config is None:
        return None
    from keyform.usage import skew_note

    return skew_note(instance, config.type, offset)
