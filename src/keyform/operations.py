"""The library's entry points for each command: load, lock, recover, refresh, plan, apply, save.

The CLI only parses arguments, calls these, and renders. Tests call them directly too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from keyform import fastexit, redact
from keyform.backends import StateBackend, open_backend
from keyform.durations import utcnow
from keyform.envsettings import settings_digests, stale_settings
from keyform.errors import (
    Diagnostic,
    Diagnostics,
    JournalError,
    KeyformError,
    LockLostError,
    LockUnwritableError,
    SinkError,
    StateError,
    warning,
    warnings,
)
from keyform.gcpause import paused
from keyform.journal import Abandoned, Begin, Done, Journal, Record, compacted, unresolved
from keyform.model import SecretOfRef, SinkTarget, Workspace
from keyform.plan import Action, AttrChange, Change, Plan
from keyform.planner import (
    REPLACE_REQUESTED,
    REVOKE_OLD_REQUESTED,
    PlanInputs,
    foreign_entries,
    inputs_digest,
    leading_warnings,
    past_expiry,
    unreadable_sinks,
)
from keyform.planner import plan as make_plan
from keyform.providers.pool import ProviderFactory, ProviderPool
from keyform.records import record
from keyform.recovery import (
    EntryUnreadable,
    Recovery,
    assess,
    fold,
    journal_digest,
    pending_seqs,
    withheld_matcher,
    would_take,
    written_entries,
)
from keyform.refresh import instances_in_use, refresh
from keyform.remote import SKEW_NOTED, RemoteSnapshot
from keyform.render.safe import one_line
from keyform.resolve import input_fingerprints, remember_inputs, unresolved_inputs
from keyform.sinks.pool import SinkPool
from keyform.sinkscan import SinkSnapshot
from keyform.state import State

if TYPE_CHECKING:  # applier, policy and usage: imported where used (a plan needs little of them)
    from keyform.applier import ApplyEvent, ApplyReport
    from keyform.fingerprintkey import RekeyReport
    from keyform.model import EnvRef, FileRef
    from keyform.policy import Policy
    from keyform.providers.ratelimit import RateEvent, RateWait
    from keyform.report import Collected
    from keyform.state import KeyState
    from keyform.usage import UsageReport

log = logging.getLogger("keyform.operations")


@record(frozen=False)
class Options:
    files: Sequence[str] = ()
    state_path: str | None = None
    lock_timeout: float = 0.0
    clock: Callable[[], datetime] = utcnow
    env: Mapping[str, str] | None = None
    provider_factory: ProviderFactory | None = None
    cwd: Path | None = None
    policy_files: Sequence[str] = ()  # --policy FILE: org-wide policies from outside the manifests
    # hears of a long rate-limit wait outside an apply's changes (a plan's listing): `ProviderPool`
    on_wait: Callable[[RateWait], None] | None = None


@record(frozen=False)
class Session:
    """A loaded workspace with its state, locked for the duration of one command."""

    workspace: Workspace
    state: State
    store: StateBackend
    providers: ProviderPool
    sinks: SinkPool
    options: Options
    # warnings for the user, collected on the way (policies, recovery): a plan carries them as notes
    warnings: Diagnostics = field(default_factory=list)
    new_state: bool = False  # no state file yet: a plan made now records no lineage
    recovery: Recovery = field(default_factory=Recovery)  # what an interrupted apply left (not acted on)
    policies: tuple[Policy, ...] = ()
    unrecovered: bool = False  # a read_session's state has an interrupted apply's journal beside it
    # a read_session's: whether a listed key (instance, id) may hold a secret in its id, left by an
    # interrupted create that journaled the id's fingerprint (`recovery.withheld_matcher`); never shown
    withheld: Callable[[str, str], bool] | None = None
    # the env/file inputs of keys the last plan covered that could not be read: that plan could not
    # tell whether they changed, so apply stops on them (`_unreadable_inputs`)
    unreadable_inputs: Diagnostics = field(default_factory=list)


def load(options: Options) -> Workspace:
    from keyform.manifest import load_workspace

    return load_workspace(list(options.files), now=options.clock(), cwd=options.cwd,
                          state_override=options.state_path or None)


POLICY_OPERATIONS = ("plan", "apply")  # destroy and import check only what a plan does (forbid_actions)


def check_policies(workspace: Workspace, policies: Sequence[Policy], options: Options) -> Diagnostics:
    """The manifest-phase policy rules: raise every error (exit 1); return the warnings."""
    if not policies:
        return []
    from keyform.policy import check_manifest, enforce

    return warnings(enforce(check_manifest(policies, workspace, options.clock())))


def policies_of(workspace: Workspace, options: Options) -> tuple[Policy, ...]:
    """The manifests' policies and those of `--policy` files (keyform.policy is imported only when
    there are any)."""
    if not workspace.policies and not options.policy_files:
        return ()
    from keyform.policy import workspace_policies

    return workspace_policies(workspace, options.policy_files, options.cwd)


def check_plan_policies(sess: Session, the_plan: Plan, snapshot: RemoteSnapshot | None = None) -> list[str]:
    """The plan-phase policy rules over `the_plan`: raise every error; return the warnings as notes."""
    if not sess.policies:
        return []
    from keyform.policy import check_plan, enforce

    notes = enforce(check_plan(sess.policies, sess.workspace, the_plan, sess.options.clock(), sess.state, snapshot))
    if snapshot is None:  # `--no-refresh`: no usage data, so no key can be found idle; say it went unjudged
        notes += [f"policy {name!r}: max_idle was not checked: a key's last use is known only from a listing, "
                  "and this plan ran with --no-refresh" for name in sorted(
                      {p.name for p in sess.policies for r in p.rules if r.word.word == "max_idle"})]
    return notes


def run_validate(options: Options) -> tuple[Workspace, Diagnostics]:
    """`keyform validate`: the manifests loaded and their policies checked (no state, no remote);
    raises every error, returns the workspace and the policies' warnings."""
    workspace = load(options)
    return workspace, check_policies(workspace, policies_of(workspace, options), options) + \
        passed_expiries(workspace, options.clock())


def passed_expiries(workspace: Workspace, now: datetime) -> Diagnostics:
    """`validate`'s warning for each key whose fixed `expires_at` has passed: the manifest is not
    wrong (the plan of every other key goes on), but no key will be created or replaced with it."""
    return [warning(f"key {a!r}: expires_at {s.expiry.spec[3:]} has passed: keyform will not create or replace "
                    "this key with it (a key made with it is left as it is); set a later expires_at, or use "
                    "expires_in", s.loc)
            for a, s in sorted(workspace.keys.items()) if s.expiry.at is not None and s.expiry.at <= now]


@contextmanager
def session(options: Options, operation: str, *, fingerprint_key: bool = True,
            for_new_state: bool = False, saved: Plan | None = None) -> Iterator[Session]:
    """Load manifests, lock the state, load it, read what an interrupted apply left (folded into the
    in-memory state only: `commit_recovery` writes it, and only apply and the state-writing
    commands call that); unlock at the end. The state then fingerprints inputs as
    `state.fingerprint_key` says (keyform.fingerprintkey), unless `fingerprint_key` is False
    (`state rekey`, which changes the mode itself). `for_new_state`: a `plan --out` for a
    `--state FILE` that does not exist yet (its apply starts the state there), said in a note.
    `saved`: the plan `apply FILE` applies, refused at once if made from other manifests or other
    provider settings (`refuse_stale_settings`): recovery may call the providers."""
    workspace = load(options)
    if saved is not None:
        refuse_stale_settings(workspace, saved, options.env)
    refuse_missing = NEEDS_NAMED_STATE.get(operation) if not for_new_state else None
    policies = policies_of(workspace, options)
    notes = check_policies(workspace, policies, options) if operation in POLICY_OPERATIONS else []
    store = open_backend(workspace, options.state_path, env=options.env)
    try:
        if refuse_missing and _named_state_missing(options):  # before the lock makes its file
            _refuse_missing_named_state(options, None, store, refuse_missing)
        log.debug("lock: taking the %s lock on %s (timeout %gs)", operation, store.describe(), options.lock_timeout)
        started = time.monotonic()
        with ExitStack() as held:
            try:
                held.enter_context(store.lock(operation, timeout=options.lock_timeout))
            except LockUnwritableError as exc:
                if operation != "plan":  # only a plan, which writes nothing, goes on without the lock
                    raise
                notes.append(warning(
                    f"{exc}: planning without the state lock (its file cannot be made or opened here: a "
                    "read-only directory, or another user's lock file); an apply running meanwhile from "
                    "elsewhere would not be waited for"))
            log.debug("lock: held after %.0f ms", (time.monotonic() - started) * 1000)
            with paused():  # bulk, acyclic data (keyform.gcpause)
                loaded = store.load()
            log.debug("state: %s", f"serial {loaded.serial}, {len(loaded.keys)} keys" if loaded else "none yet")
            if loaded is None and options.state_path and _named_state_missing(options):  # gone since
                if refuse_missing:
                    _refuse_missing_named_state(options, None, store, refuse_missing)
                starts = "saved plan's apply starts" if operation == "plan" else f"{operation} starts"
                notes.append(warning(f"--state {options.state_path}: {store.describe()} does not exist yet; this "
                                     f"{starts} a new state there (check the path if you meant an existing one)"))
            state = loaded or State.new()
            pool = ProviderPool(workspace, options.provider_factory, options.env, on_wait=options.on_wait)
            sess = Session(workspace, state, store, pool, SinkPool(workspace), options, new_state=loaded is None)
            sess.policies = policies
            sess.warnings.extend(notes)
            try:
                with paused():
                    keyed = _attach_once(sess) if fingerprint_key else (lambda: None)
                    _recover(sess, keyed)  # (attaches the key once the journal is folded in)
                    keyed()
                    watch_secrets(sess.state)  # after recovery folded the journal in, under the state's key
                yield sess
            finally:
                pool.close()
        log.debug("lock: released")
    finally:
        store.close()


# Session operations that never create a state, so a missing `--state FILE` can only be a mistake
# (operation → who says so); apply and import start a new state there (Terraform's `-state`).
NEEDS_NAMED_STATE = {"plan": "a read-only command", "destroy": "destroy"}


def _named_state_missing(options: Options) -> bool:
    """`--state FILE` names neither a state file nor the journal of an apply interrupted before its
    first save (which `plan` shows and `apply` recovers)."""
    if not options.state_path:
        return False
    path = Path(options.state_path)
    return not (os.path.lexists(path) or os.path.lexists(path.with_name(path.name + ".journal")))


def watch_secrets(state: State, also: Sequence[str] = ()) -> None:
    """Let every mask of what an API sent (plans, reports, the state) recognise the secrets this
    state's keys were issued (`KeyState.secret_fingerprint`, `redact.watch`): a process that never
    held them can still keep one an API echoes into a name out of a plan posted on a pull request.
    `also`: more fingerprints under the state's salt or key (an interrupted create's)."""
    recorded = [ks.secret_fingerprint for ks in state.keys.values() if ks.secret_fingerprint]
    recorded += [d.secret_fingerprint for d in state.deposed if d.secret_fingerprint]  # alive through the grace
    recorded += also
    if recorded:
        redact.watch(state.fingerprinter(), recorded)


def _attach_once(sess: Session) -> Callable[[], None]:
    """`fingerprintkey.attach` for the session's state, made at its first call (later ones do
    nothing): after recovery folded the journal in (a never-saved state takes the journal's salt),
    and before recovery fingerprints listed ids (`recovery._withheld`)."""
    attached = False

    def attach_key() -> None:
        nonlocal attached
        if not attached:
            attached = True
            from keyform.fingerprintkey import attach

            attach(sess.workspace, sess.state, sess.options.env, new_state=sess.new_state)

    return attach_key


def _recover(sess: Session, folded: Callable[[], None] = lambda: None) -> None:
    """Read the journal and assess it (remote reads only). Nothing is written: `plan` stays read-only.
    `folded` runs once the journal is folded into the state (`recovery.assess`)."""
    records = sess.store.read_journal()
    if not records:
        return
    log.debug("journal: %d records left by an interrupted apply; assessing them", len(records))
    types = {name: p.type for name, p in sess.workspace.providers.items()}
    targets = {a: k.sink for a, k in sess.workspace.keys.items() if k.sink is not None}
    try:
        sess.recovery = assess(sess.state, records, sess.providers, types, targets, sess.workspace.entry_id,
                               folded, read_entry=lambda entry, fingerprint: _read_entry(sess, entry, fingerprint),
                               now=sess.options.clock())
    except JournalError as exc:  # one that does not hold together, or of another state (`recovery.fold`)
        raise StateError(f"{sess.store.journal_place(exc.record)}: {exc}") from None
    except StateError as exc:
        raise StateError(f"{sess.store.describe()}: {exc}") from None
    sess.warnings.extend(warnings(sess.recovery.notes))


def _read_entry(sess: Session, entry: SinkTarget, fingerprint: str) -> str | None:
    """The secret in `entry` (None: absent), for recovery to check an interrupted create's write of
    the secret with `fingerprint`; `EntryUnreadable` when its sink is gone from the manifests or
    cannot be read back at all; the read's own error when it failed (SinkError for a plug-in's read
    that returned no text). The secret is remembered (scrubbed from any later message), compared by
    fingerprint, and dropped. That secret is watched for meanwhile (`redact.watch`, till the session
    watches its state's): a failed read's error may quote the entry, whole only before it is cut
    to a message's length (an `exec` sink's stderr)."""
    if entry.sink not in sess.workspace.sinks or entry.sink not in sess.sinks.readable():
        raise EntryUnreadable(f"sink {entry.sink} cannot be read back")
    watch_secrets(sess.state, also=(fingerprint,))
    value = sess.sinks.get(entry.sink).read(entry.name)
    if value is not None and not isinstance(value, str):  # (a plug-in's: never remembered, never compared)
        raise SinkError(f"sink {entry.sink}: reading {entry.name} returned a {type(value).__name__}, not text")
    redact.remember(value)
    return value


def commit_recovery(sess: Session, *, resolved: Sequence[str] = ()) -> Diagnostics:
    """Make the recovery durable before a command writes anything else: save the state with the
    journal's finished changes folded in, and leave in the journal only the interrupted creates
    still to act on (orphans the plan revokes, creates that could not be checked). Uncertain ones
    were reported in the plan and are let go (`resolved`: intents settled by this command).
    Returns warnings to print (the uncertain candidates, once more)."""
    rec = sess.recovery
    if not rec.pending:
        return []
    # the entries interrupted changes wrote stay keyform's own once the journal lets them go
    if sess.state.note_written(rec.entries) or rec.state_changed:
        sess.store.save(sess.state)
        sess.new_state = False
    sess.store.replace_journal(compacted(sess.state, rec.records,
                                         pending_seqs(rec, keep_uncertain=False, resolved=resolved)))
    advice = [warning(u.advice()) for u in rec.uncertain if u.seq not in resolved]
    sess.recovery = Recovery(orphans=rec.orphans, unresolved=rec.unresolved)  # committed: nothing pending
    return advice


def fold_journal(store: StateBackend, state: State) -> tuple[list[Record], set[str]] | None:
    """For a command that edits the state without providers (`state rm|mv`): fold the journal's
    finished changes into `state` (in memory) and return its records with the seqs of the interrupted
    creates, which must stay journaled once the state is saved (`keep_journal`); None without a journal."""
    records = store.read_journal()
    if not records:
        return None
    try:
        interrupted, _ = fold(state, records)
    except JournalError as exc:
        raise StateError(f"{store.journal_place(exc.record)}: {exc}") from None
    state.note_written(written_entries(interrupted))
    return records, {it.seq for it in interrupted if it.action == "create"}


def keep_journal(store: StateBackend, state: State, keep: tuple[list[Record], set[str]] | None) -> None:
    """After the state was saved: the journal keeps only the interrupted creates (see `fold_journal`),
    in one atomic swap: a crash here must never lose an intent that recovery still has to resolve."""
    if keep is not None:
        store.replace_journal(compacted(state, *keep))


def plan(sess: Session, *, targets: Sequence[str] = (), refresh_remote: bool = True,
         destroy: bool = False, replace: Sequence[str] = (), revoke_old: Sequence[str] = ()) -> Plan:
    """The plan of the session's workspace against its state and (unless `refresh_remote` is
    False) the remote listings; the cyclic collector is paused meanwhile (keyform.gcpause)."""
    with paused():
        return _plan(sess, targets, refresh_remote, destroy, replace, revoke_old)


def _plan(sess: Session, targets: Sequence[str], refresh_remote: bool, destroy: bool,
          replace: Sequence[str], revoke_old: Sequence[str] = ()) -> Plan:
    ws, state = sess.workspace, sess.state
    if refresh_remote:
        snapshot = refresh(ws, state, sess.providers, instances_in_use(ws, state))
    else:
        snapshot = RemoteSnapshot()
    readable = sess.sinks.readable()
    rec = sess.recovery
    sinks = scan_sinks(sess, readable)
    fingerprints = input_fingerprints(ws, state, env=sess.options.env)
    inputs = PlanInputs(fingerprints, readable,
                        missing_secrets(sess, readable, sinks), orphans=tuple(rec.orphans),
                        uncertain=tuple(rec.uncertain), sinks=sinks, interrupted_entries=frozenset(rec.entries))
    result = make_plan(ws, state, snapshot, sess.options.clock(), inputs=inputs, targets=targets,
                       destroy=destroy, replace=replace, revoke_old=revoke_old)
    sess.unreadable_inputs = [] if destroy else _unreadable_inputs(sess, result, fingerprints)
    if sess.unreadable_inputs:
        result = dataclasses.replace(result, notes=result.notes + tuple(
            f"{d}: this plan cannot tell whether it changed, and apply stops until it can be read"
            for d in sess.unreadable_inputs), unchecked=tuple(sorted(_unchecked(result, fingerprints))))
    policy_notes = check_plan_policies(sess, result, snapshot if refresh_remote else None)
    if policy_notes:
        result = dataclasses.replace(result, notes=result.notes + tuple(policy_notes))
    result = _masked(result)
    if sess.warnings:  # after the none-listed warnings: they come first whatever else is said
        first = leading_warnings(result.notes)
        result = dataclasses.replace(result, notes=result.notes[:first] + tuple(str(w) for w in sess.warnings)
                                     + result.notes[first:])
    if sess.new_state:  # (its salt is made by the apply that writes it: no input digest can be compared)
        result = dataclasses.replace(result, lineage=None, inputs={})
    if rec.records:
        result = dataclasses.replace(result, journal=journal_digest(rec.records), unsaved=rec.state_changed)
    settings = settings_digests(ws, sess.options.env)
    if settings:  # (a `base_url: {env: NAME}`: `apply FILE` must open the provider at the same host)
        result = dataclasses.replace(result, settings=settings)
    return result


def _unchecked(plan: Plan, fingerprints: Mapping[str, Mapping[str, str | None]]) -> set[str]:
    """The keys of `plan` (as `_unreadable_inputs` counts them) with an input it could not read."""
    unread = [a for a, fps in fingerprints.items() if None in fps.values()]
    if not unread:  # every input read (most plans): no set of the plan's keys
        return set()
    planned = {c.address for c in plan.changes if not c.deposed and c.action is not Action.DELETE}
    return {a for a in unread if a in planned}


def _unreadable_inputs(sess: Session, plan: Plan, fingerprints: Mapping[str, Mapping[str, str | None]]) -> Diagnostics:
    """The env/file inputs of the plan's keys that cannot be read now (`input_fingerprints` gave
    None), each with its located reason. The planner passes them over (a plan may be made where a
    secret is not at hand), so for a key that stays it cannot see a changed input: the plan says
    so, and apply refuses to go on (`run_apply`, `applier.preflight`)."""
    out: Diagnostics = []
    for address in sorted(_unchecked(plan, fingerprints)):
        out.extend(unresolved_inputs(sess.workspace.keys[address], sess.options.env))
    return out


def _masked(plan: Plan) -> Plan:
    """`plan` without any secret this process remembered (resolved tokens and inputs, secrets read
    back) in the values it shows: an attribute's before/after may be what an API reported, and a
    hostile or careless API may echo a credential it was given into a description or a name. The
    plan is shown, saved and posted on pull requests; the applier never reads these values. A
    no-change plan has no attribute to look at."""
    changes = list(plan.changes)
    masked = False  # (whether a change was: no second pass over them to tell)
    for i, change in enumerate(changes):
        if not change.attrs:
            continue
        attrs = tuple(_masked_attr(a) for a in change.attrs)
        if any(a is not b for a, b in zip(attrs, change.attrs)):
            changes[i] = dataclasses.replace(change, attrs=attrs)
            masked = True
    notes = tuple(redact.mask(n) for n in plan.notes)
    if not masked and all(a is b for a, b in zip(notes, plan.notes)):
        return plan
    return dataclasses.replace(plan, changes=tuple(changes), notes=notes)


def _masked_attr(attr: AttrChange) -> AttrChange:
    """`attr` with its values masked (`redact.mask`), itself when nothing changed or it is a
    reference (`sensitive`: never a value)."""
    if attr.sensitive:
        return attr
    before, after = redact.mask(attr.before), redact.mask(attr.after)
    return attr if before is attr.before and after is attr.after else dataclasses.replace(attr, before=before,
                                                                                            after=after)


def scan_sinks(sess: Session, readable: frozenset[str]) -> SinkSnapshot:
    """The plain-file sinks' entries, each file read once (`keyform.sinkscan`): the readable sinks
    that hold a recorded secret (for `missing_secrets`), and every sink a key of the manifests
    writes to (for `planner.foreign_entries`)."""
    from keyform.sinkscan import scan

    wanted = {ks.sink.sink for ks in sess.state.keys.values()
              if ks.sink is not None and ks.secret_in_sink and ks.sink.sink in readable}
    wanted.update(spec.sink.sink for spec in sess.workspace.keys.values() if spec.sink is not None)
    return scan(sess.workspace.sinks, wanted)


def missing_secrets(sess: Session, readable: frozenset[str], snapshot: SinkSnapshot) -> frozenset[str]:
    """Keys whose secret should be in a readable sink but is not there. The plain-file sinks were
    scanned once each for the entry names they hold (`snapshot`); in other readable sinks only
    `secret_of` sources are checked, by reading the entry (the value is dropped at once)."""
    sources = {r.address for spec in sess.workspace.keys.values() for r in spec.secret_inputs.values()
               if isinstance(r, SecretOfRef)}
    missing = set()
    unreadable: list[Diagnostic] = []
    declared, scanned = sess.workspace.keys, snapshot.entries  # (`SinkSnapshot.holds`, inline below)
    for address, held in sess.state.keys.items():
        target = held.sink
        if target is None or not held.secret_in_sink or address not in declared:
            continue
        names = scanned.get(target.sink)
        if names is not None and target.name not in names:
            missing.add(address)
    for address in sorted(sources):
        ks = sess.state.keys.get(address)
        if ks is None or ks.sink is None or not ks.secret_in_sink or ks.sink.sink not in readable:
            continue
        if ks.sink.sink in snapshot.entries:
            continue
        try:
            value = sess.sinks.get(ks.sink.sink).read(ks.sink.name)
            present = value is not None and bool(value.strip())  # (a blanked entry: no secret keyform wrote)
            del value
        except KeyformError as exc:
            # not "missing": a sealed vault or a network error must not plan a replacement
            readers = sorted(a for a, spec in sess.workspace.keys.items() for r in spec.secret_inputs.values()
                             if isinstance(r, SecretOfRef) and r.address == address)
            unreadable.append(Diagnostic(
                f"key {address!r}: cannot check that its secret is still in sink {ks.sink.sink} ({ks.sink.name}), "
                f"which {', '.join(map(repr, readers))} read{'s' if len(readers) == 1 else ''} with secret_of: "
                f"{exc}; nothing was planned"))
            continue
        if not present:
            missing.add(address)
    if unreadable:
        raise KeyformError(unreadable)
    return frozenset(missing)


def foreign_plan_problems(saved: Plan, workspace: Workspace, state: State | None) -> list[str]:
    """Why `saved` was not made from these manifests (`Workspace.digest`: the manifest files and
    the REST definition files they use) and a state of this lineage (`state`: None when there is
    none yet); [] when it was. What `apply FILE` checks first and `graph --plan` checks alone: a
    plan of another workspace must never be taken for one of this workspace."""
    problems = []
    if saved.lineage is None:
        if state is not None:
            problems.append("it was made before the state existed, and a state has been written since")
    elif state is None or saved.lineage != state.lineage:
        problems.append("it was made for a different state (lineage differs)")
    if saved.manifest_digest != workspace.digest:
        problems.append("the manifests (or a REST definition file they use) changed since it was made")
    return problems


def refuse_stale_settings(workspace: Workspace, saved: Plan, env: Mapping[str, str] | None) -> None:
    """Refuse a saved plan made from other manifests, or with other provider settings from the
    environment (a `base_url: {env: NAME}` that names another host now: `keyform.envsettings`),
    before anything calls a provider: recovery lists at the instances, and `check_saved_plan`
    plans again. Neither may send a token to a host the plan was not made for. The settings'
    digests are keyed by the manifest digest, so they are compared only for the same manifests."""
    if saved.manifest_digest != workspace.digest:
        problems = ["the manifests (or a REST definition file they use) changed since it was made"]
    else:
        problems = stale_settings(workspace, saved.settings, env)
    if problems:
        raise KeyformError("Saved plan is stale: " + "; ".join(problems) + ". Run `keyform plan` again.")


def check_saved_plan(sess: Session, saved: Plan) -> None:
    """Refuse a saved plan made against another state or other manifests (Terraform's stale plan).
    Its manifests and provider settings were checked as the session opened (`refuse_stale_settings`)."""
    state = None if sess.new_state else sess.state
    problems = foreign_plan_problems(saved, sess.workspace, state)
    if state is not None and saved.lineage == state.lineage and saved.serial != state.serial:
        problems.insert(0, f"the state changed since it was made (serial {saved.serial} → {state.serial})")
    if saved.journal != journal_digest(sess.recovery.records):
        # an apply of it (or another) was interrupted since, or its journal recovered: what it did is
        # not in the plan (its creates would be made twice, the first keys left live and untracked)
        problems.append("an interrupted apply changed what the state records since it was made"
                        if sess.recovery.records else "the interrupted apply it was made after has been recovered")
    if problems:
        raise KeyformError("Saved plan is stale: " + "; ".join(problems) + ". Run `keyform plan` again.")
    edited = _unplannable(sess, saved)
    if edited:
        raise KeyformError([Diagnostic(f"Saved plan: {e}; no plan of these manifests and this state says so "
                                       "(was the file edited?). Run `keyform plan` again.") for e in edited])
    passed = _passed_expiries(sess, saved)
    if passed:
        raise KeyformError(passed)
    # an input that cannot be read now: as for a plan made now (`run_apply`), no change on a guess
    keys = sess.workspace.keys
    planned = [c.address for c in saved.changes if c.address in keys and not c.deposed]
    fps = input_fingerprints(sess.workspace, sess.state, planned, env=sess.options.env)
    unreadable = _unreadable_inputs(sess, saved, fps)
    if unreadable:
        raise KeyformError(unreadable)
    if saved.unchecked:  # its "no change" for them was never established (their inputs were unreadable)
        raise KeyformError("Saved plan: it could not check " + ", ".join(f"key {a!r}" for a in saved.unchecked)
                           + " (an env or file input could not be read where it was made); make the plan where "
                             "they can be read. Run `keyform plan` again.")
    changed = sorted(a for a, digest in saved.inputs.items() if inputs_digest(fps.get(a) or {}) != digest)
    if changed:  # the plan would send (or record) values nobody reviewed; Terraform keeps planned values
        raise KeyformError("Saved plan is stale: the value of an env or file input of " + ", ".join(
            f"key {a!r}" for a in changed) + " changed since it was made. Run `keyform plan` again.")
    # the sink files may have changed since the plan was made: check again, before any remote call
    sinks = scan_sinks(sess, sess.sinks.readable())
    inputs = PlanInputs(sinks=sinks, interrupted_entries=frozenset(sess.recovery.entries))
    refused = foreign_entries(sess.workspace, sess.state, saved.changes, inputs) \
        + unreadable_sinks(sess.workspace, sess.state, saved.changes, inputs)
    if refused:
        raise KeyformError(refused)
    unlike = _unlike_a_plan_now(sess, saved)
    if unlike:
        raise KeyformError([Diagnostic(f"Saved plan: {u}. It was edited, or the keys changed since it was made "
                                       "(refreshed now); run `keyform plan` again.") for u in unlike])
    check_plan_policies(sess, saved)


def _passed_expiries(sess: Session, saved: Plan) -> Diagnostics:
    """The saved plan's creates and replacements of keys whose fixed `expires_at` has passed since
    it was made (`planner.past_expiry`, as a plan made now would refuse them), each said as the
    other refusals of a saved plan are: the plan's own `Nothing is planned` would not fit it."""
    now, keys = sess.options.clock(), sess.workspace.keys
    out: Diagnostics = []
    for c in saved.changes:
        spec = keys.get(c.address)
        if spec is None or c.stale or c.deposed or c.orphan or c.action not in (Action.CREATE, Action.REPLACE):
            continue
        problem = past_expiry(spec, c.action, c.reasons, now, then="The plan was made before that time: run "
                              "`keyform plan` again (`--target` other keys to go on without this one)")
        if problem is not None:
            out.append(Diagnostic(f"Saved plan: {problem}"))
    return out


def _unplannable(sess: Session, saved: Plan) -> list[str]:
    """What in `saved` no plan of the session's manifests and state could hold (its digest and
    serial match, so a plan keyform wrote passes): a plan file is JSON, and whoever can change it
    between review and apply could otherwise revoke any key the state records, or another key."""
    ws, state = sess.workspace, sess.state
    deposed = {d.remote_id for d in state.deposed}
    orphans = {o.shown_id for o in sess.recovery.orphans}
    out: list[str] = []
    for c in saved.changes:
        if c.stale or c.action is Action.NOOP:
            continue
        ks, spec = state.keys.get(c.address), ws.keys.get(c.address)
        if (c.orphan or c.deposed) and c.action is not Action.DELETE:  # (the applier would issue a key)
            out.append(f"{c.address}: it marks a {c.action.value} as the revocation of "
                       f"{'an orphan' if c.orphan else 'a deposed key'}")
        elif c.orphan:
            if c.remote_id not in orphans:
                out.append(f"{c.address}: it revokes {c.remote_id} as an orphan, which recovery did not find")
        elif c.deposed:
            if c.remote_id not in deposed and not (
                    ks is not None and c.remote_id == ks.remote_id and REVOKE_OLD_REQUESTED in c.reasons
                    and any(r.address == c.address and r.action is Action.REPLACE and r.primary
                            for r in saved.changes)):  # (`--replace A --revoke-old A`: the key it replaces)
                out.append(f"{c.address}: it revokes {c.remote_id} as a deposed key, which the state does not hold")
        elif c.action is Action.DELETE and spec is not None and not saved.destroy:
            out.append(f"{c.address}: it deletes a key the manifests declare")
        elif c.action is not Action.CREATE and ks is None:
            out.append(f"{c.address}: it changes a key the state does not record")
        elif c.action is not Action.CREATE and ks is not None and (
                c.remote_id != ks.remote_id or c.provider not in (ks.provider, spec.provider if spec else None)):
            # (a replacement moving the key to another instance names the manifests' one)
            out.append(f"{c.address}: it names {c.provider} {c.remote_id}; the state records {ks.provider} "
                       f"{ks.remote_id}")
        elif c.action is Action.CREATE and spec is not None and c.provider != spec.provider:
            out.append(f"{c.address}: it creates the key at {c.provider}; the manifests say {spec.provider}")
    return out


def _unlike_a_plan_now(sess: Session, saved: Plan) -> list[str]:
    """Where `saved` differs from the plan made now, listings refreshed, for its keys: the action,
    the remote id, the sink and every attribute line it shows. The apply takes a key's values
    from the manifests and acts on what `saved` says, so a plan file edited to hide or change what
    a reviewer reads (a `name = "totally benign"`, a `hosts` line deleted or marked sensitive, the
    sink set to null, a no-op made a create that left the recorded key live) was shown one way
    and applied another. A plan whose keys changed remotely since it was made is refused the same
    way: what it shows is no longer what would happen. Reasons are not compared (they name times).
    The provider instance is: an old key's revocation edited to name another instance of its type
    revoked the id there (a 404, taken for a key already gone) and dropped the old key's record,
    leaving it live and recorded nowhere."""
    from keyform.render.lines import verb

    requested = sorted({c.address for c in saved.changes if REPLACE_REQUESTED in c.reasons})
    revoking = sorted({c.address for c in saved.changes if c.deposed and REVOKE_OLD_REQUESTED in c.reasons})
    now = plan(sess, targets=saved.targets, destroy=saved.destroy, replace=requested, revoke_old=revoking)
    made_now = {c.key: c for c in now.changes}
    out = []
    for c in saved.changes:
        if c.action is Action.NOOP:  # the apply does nothing to it, whatever a plan now says
            continue
        fresh = made_now.get(c.key)
        if fresh is None:
            out.append(f"{c.key}: it says {verb(c)}; a plan made now has no such change")
        elif fresh.action != c.action or fresh.provider_type != c.provider_type:
            out.append(f"{c.key}: it says {verb(c)}; a plan made now: {verb(fresh)}")
        elif fresh.provider != c.provider:  # (a deposed key's or an orphan's revoke goes where the change says)
            out.append(f"{c.key}: it names {c.provider}; a plan made now: {fresh.provider}")
        elif sorted(fresh.depends_on) != sorted(c.depends_on):  # (the order the applier runs changes in)
            out.append(f"{c.key}: it runs after {', '.join(sorted(c.depends_on)) or 'no key'}; a plan made now: "
                       f"after {', '.join(sorted(fresh.depends_on)) or 'no key'}")
        elif fresh.remote_id != c.remote_id:
            out.append(f"{c.key}: it names the key {c.remote_id}; a plan made now: {fresh.remote_id}")
        elif fresh.dead != c.dead:
            out.append(f"{c.key}: it {'marks' if c.dead else 'does not mark'} the old key dead (revoked in this "
                       f"apply, no grace); a plan made now {'does not' if c.dead else 'does'}")
        elif fresh.sink != c.sink:
            out.append(f"{c.key}: it shows the secret going to {c.sink or 'no sink'}; a plan made now: "
                       f"{fresh.sink or 'no sink'}")
        elif (shown := _lines(c)) != (expected := _lines(fresh)):
            extra = sorted(shown - expected)
            out.append(f"{c.key}: it shows {_line_text(extra[0]) if extra else 'fewer lines'}; a plan made now "
                       f"shows {_line_text(sorted(expected - shown)[0]) if expected - shown else 'no such line'}")
    return out


def _lines(change: Change) -> set[tuple[str, str, str, bool, bool]]:
    return {(a.name, json.dumps(a.before, sort_keys=True), json.dumps(a.after, sort_keys=True), a.sensitive,
             a.forces_replacement) for a in change.attrs}


def _line_text(line: tuple[str, str, str, bool, bool]) -> str:
    from keyform.render.safe import cut

    name, before, after, sensitive, _ = line
    value = "(sensitive)" if sensitive else cut(one_line(after), 80)
    if before == "null":
        return f"{one_line(name)} = {value}"
    return f"{one_line(name)} = {cut(one_line(before), 80)} → {value}"


def run_graph(options: Options, plan_file: str | None) -> tuple[Workspace, Plan | None]:
    """`keyform graph [--plan FILE]`: the manifests, and the saved plan to colour their keys by.
    A plan not made from these manifests and this state (`foreign_plan_problems`, and the state's
    serial) is refused, as `apply FILE` refuses it: drawn here, another workspace's deletes and
    replaces would read as this workspace's, and a stale plan's as what would change now. The
    state is only read (no lock, no recovery), and only for a plan."""
    workspace = load(options)
    if plan_file is None:
        return workspace, None
    from keyform.planfile import read_plan

    saved = read_plan(plan_file)
    store = open_backend(workspace, options.state_path, env=options.env)
    try:
        with paused():  # bulk, acyclic data (keyform.gcpause)
            state = store.load()
        _refuse_missing_named_state(options, state, store, "graph --plan")  # (a typo: not "lineage differs")
    finally:
        store.close()
    problems = foreign_plan_problems(saved, workspace, state)
    if not problems and state is not None and saved.serial != state.serial:
        # (found by a review: drawn here, refused by `apply FILE`: what it shows is not what would change)
        problems.append(f"the state changed since it was made (serial {saved.serial} → {state.serial}), so "
                        "`apply` would refuse it")
    if problems:
        raise KeyformError(f"{one_line(plan_file)}: not a plan of these manifests and this state: "
                           + "; ".join(problems) + ". Its actions would be drawn on keys they are not for; make "
                           "one here with `keyform plan --out FILE`.")
    return workspace, saved


def apply(sess: Session, the_plan: Plan, *, parallelism: int = 10,
          on_event: Callable[[ApplyEvent], None] | None = None,
          on_rate: Callable[[Any], None] | None = None) -> ApplyReport:
    """Execute the plan; the state is written once at the end (and the journal compacted), also when
    some changes failed. Each provider instance starts at `parallelism` calls at once and adapts
    to its API's rate limit (`on_rate` gets each `providers.ratelimit.RateEvent`); the report's
    `rate` holds what each instance's limiter saw."""
    from keyform.applier import ApplyAbandoned, ApplyContext, apply_plan

    store = sess.store
    commit_recovery(sess)
    fh = store.journal_open()
    fh.append(Begin.of(sess.state))
    journal = Journal(fh, uuid.uuid4().hex[:8], clock=sess.options.clock)
    ctx = ApplyContext(workspace=sess.workspace, state=sess.state, providers=sess.providers, sinks=sess.sinks,
                       journal=journal, clock=sess.options.clock, parallelism=parallelism,
                       on_event=on_event or (lambda e: None), env=sess.options.env,
                       orphan_seqs={o.shown_id: o.seq for o in sess.recovery.orphans},
                       orphan_entries={o.shown_id: o.entry for o in sess.recovery.orphans if o.entry is not None},
                       withheld_ids={o.shown_id: o.remote_id for o in sess.recovery.orphans if o.withheld})
    # after one Ctrl-C a call waiting in an instance's limiter (a pause, its turn) sends nothing
    sess.providers.configure_rate(parallelism, on_rate, stopping=lambda: ctx.stopping())
    report: ApplyReport | None = None
    try:
        report = apply_plan(the_plan, ctx)
    except ApplyAbandoned:
        # changes may still be running in worker threads: leave the state file alone and the
        # journal as it is (the next run folds and recovers it, as after a crash)
        raise
    except BaseException:
        _finish(sess, fh, report, journal.finished)
        raise
    report.rate = [r for r in sess.providers.rate_stats() if r.throttled or r.configured]
    _finish(sess, fh, report, journal.finished)
    if report.lost_lock is not None:  # a change hit the fence, and the saves above did not
        raise LockLostError(_lost_lock_message(LockLostError(report.lost_lock), report, journal.finished))
    return report


def _finish(sess: Session, fh: Any, report: ApplyReport | None, finished: int) -> None:
    """Save the state once (when anything finished) and compact the journal; a lost lock is said
    with what the apply did (`finished`: the `done` records this apply appended, which is all an
    apply that raised can say: it has no report). After the store failed mid-apply
    (`ApplyReport.store_failed`), failing again here (the database still down) is noted in the
    report (`store_unsaved`), which the apply then shows with that first error, once."""
    store = sess.store
    fh.close()
    saved = False
    try:
        with paused():  # the state's and journal's records, as JSON: bulk and acyclic (keyform.gcpause)
            records = store.read_journal()
            if sess.state.stale:  # aliases of one file too (State.prune_stale)
                sess.state.prune_stale(sess.workspace.entry_id)
            if any(isinstance(r, Done) for r in records) or (report is not None and (
                    report.entries_removed or report.stale_forgotten)):
                store.save(sess.state)
                saved = True
                log.debug("state: saved serial %d to %s", sess.state.serial, store.describe())
            _compact(sess, records)
        log.debug("journal: compacted (%d records read)", len(records))
    except StateError as exc:
        if report is not None and report.store_failed is not None:
            why = str(exc).removeprefix(f"{store.describe()}: ")
            report.store_unsaved = (f"the state was saved, but the apply journal was not compacted ({why})" if saved
                                    else f"the state was not saved ({why})")
            return
        if not isinstance(exc, LockLostError):
            raise
        if saved:
            raise LockLostError(f"{exc}. The state was saved ({finished} change(s) had finished); the apply journal "
                                "was not compacted: the keyform command that holds the lock now, or the next one, "
                                "reads it again.") from None
        raise LockLostError(_lost_lock_message(exc, report, finished)) from None


def _forget_unremovable_stale(sess: Session, the_plan: Plan) -> None:
    """An apply with nothing to change still stops tracking the stale copies its plan's notes said
    keyform cannot remove (`planner.unremovable_stale`; the applier does it after any other apply)."""
    from keyform.applier import forget_unremovable_stale

    if forget_unremovable_stale(sess.workspace, sess.state, the_plan):
        sess.store.save(sess.state)


def store_failed_message(report: ApplyReport, command: str = "apply") -> str:
    """What an apply whose state store failed (`ApplyReport.store_failed`: the database or the disk
    gone mid-apply) says once, after its summary: the store's error, that nothing more was started,
    whether the state was saved, and what the next run does. Never a success."""
    done = sum(report.done.values())
    if report.store_unsaved is None:
        after = f"the state was saved with them. Run `keyform {command}` again for the rest."
    else:
        after = (f"{report.store_unsaved}: what finished is in the apply journal, and the next `keyform plan` or "
                 f"`keyform {command}` recovers it once the state can be written again.")
    return (f"{report.store_failed}. The {command} stopped there: no change started after it (those already running "
            f"ran to their end). {done} change(s) had finished; {after}")


def _lost_lock_message(exc: LockLostError, report: ApplyReport | None, finished: int) -> str:
    """What an apply that lost its lock did, and what happens next: never a success."""
    left = ""
    if report is not None:
        failed = len(report.failed) + len(report.skipped)
        did = f"{sum(report.done.values())} change(s) had finished and {failed} failed or were not started"
        from keyform.applier import LOST_LOCK

        skipped = [c for c, why in report.skipped if why == LOST_LOCK]
        if skipped:  # one line for them all (the text view shows none of them on its own: 1,000 lines)
            left = f" Not started, the lock being lost: {_listed(skipped)}."
    else:  # the apply itself raised
        did = f"{finished} change(s) had finished and the others failed or were not started"
    return (f"{exc}. The apply stopped without saving the state: {did}. What finished is in the apply "
            f"journal: the keyform command that holds the lock now, or the next one, recovers it.{left}")


def _listed(changes: Sequence[Change], shown: int = 20) -> str:
    """`N change(s) (2 create, 1 revoke): k1, k2, k3`, at most `shown` addresses, then `and M more`."""
    counts: dict[str, int] = {}
    for c in changes:
        verb = "revoke" if c.deposed else "remove" if c.stale else c.action.value
        counts[verb] = counts.get(verb, 0) + 1
    kinds = ", ".join(f"{n} {verb}" for verb, n in sorted(counts.items()))
    keys = ", ".join(c.key for c in changes[:shown]) + (f", and {len(changes) - shown} more" if len(changes) > shown
                                                          else "")
    return f"{len(changes)} change(s) ({kinds}): {keys}"


def _compact(sess: Session, records: list[Record]) -> None:
    """After the state is saved, keep only the journal records of creates still unresolved."""
    keep = {it.seq for it in unresolved(records) if it.action == "create"}
    sess.store.replace_journal(compacted(sess.state, records, keep))


# ------------------------------------------------------------------------- plan, apply, destroy


def run_plan(options: Options, *, targets: Sequence[str] = (), refresh_remote: bool = True,
             destroy: bool = False, replace: Sequence[str] = (), revoke_old: Sequence[str] = (),
             saving: bool = False) -> Plan:
    """`keyform plan`: a locked session (recovery read, never written) and its plan. `saving`
    (`--out`): a `--state FILE` that does not exist yet is the new state the plan's apply starts."""
    with session(options, "plan", for_new_state=saving) as sess:
        made = plan(sess, targets=targets, refresh_remote=refresh_remote, destroy=destroy, replace=replace,
                    revoke_old=revoke_old)
        fastexit.keep((sess, made))  # (freed only by the process's end, which may skip it: keyform.fastexit)
        return made


class ApplyUI(Protocol):
    """What `run_apply` shows as it goes (keyform.render.views' TextView and JSONView are ones)."""

    def planned(self, plan: Plan) -> None: ...

    def applying_saved(self, plan: Plan) -> None: ...

    def diagnostics(self, diagnostics: Iterable[Diagnostic]) -> None: ...

    def event(self, event: ApplyEvent) -> None: ...

    def rate(self, event: RateEvent) -> None: ...

    def abandoned(self, in_flight: list[Change]) -> None: ...


@record
class ApplyRequest:
    """`keyform apply` (a saved `plan_file`, or planning options) or `keyform destroy` (`destroy`)."""

    plan_file: str | None = None
    targets: Sequence[str] = ()
    refresh_remote: bool = True
    replace: Sequence[str] = ()
    revoke_old: Sequence[str] = ()  # `--revoke-old`: these addresses' old keys revoked now (`planner.plan`)
    destroy: bool = False
    parallelism: int = 10


def run_apply(options: Options, request: ApplyRequest, ui: ApplyUI,
              confirm: Callable[[], None] = lambda: None) -> ApplyReport | None:
    """`keyform apply` and `keyform destroy`: on a locked session, check the saved plan (given to
    `ui.applying_saved`, not shown again) or make one (shown with `ui.planned`; `confirm` asks,
    raising to cancel, only when it has changes), commit recovery, apply. None when there was
    nothing to change (recovery still committed). A second Ctrl-C (ApplyAbandoned) is shown with
    `ui.abandoned`, then raised."""
    from keyform.applier import ApplyAbandoned

    saved = None
    if request.plan_file is not None:
        from keyform.planfile import read_plan

        saved = read_plan(request.plan_file)  # (its settings are checked before recovery calls a provider)
    with session(options, "destroy" if request.destroy else "apply", saved=saved) as sess:
        if saved is not None:
            the_plan = saved
            check_saved_plan(sess, the_plan)
            ui.applying_saved(the_plan)
        else:
            the_plan = plan(sess, targets=request.targets, refresh_remote=request.refresh_remote,
                            destroy=request.destroy, replace=request.replace, revoke_old=request.revoke_old)
            ui.planned(the_plan)
            if sess.unreadable_inputs:  # the plan could not check them: no change made on a guess
                raise KeyformError(sess.unreadable_inputs)
            if not the_plan.has_changes:
                ui.diagnostics(commit_recovery(sess))
                _forget_unremovable_stale(sess, the_plan)
                return None
            confirm()
        ui.diagnostics(commit_recovery(sess))
        try:
            return apply(sess, the_plan, parallelism=request.parallelism, on_event=ui.event, on_rate=ui.rate)
        except ApplyAbandoned as exc:  # said before the session closes its providers and lets go of the lock
            with contextlib.suppress(OSError):  # `keyform apply | tee log`, the tee killed by the same Ctrl-C
                ui.abandoned(exc.in_flight)
            raise


# ---------------------------------------------------------------------------------------- report


@contextmanager
def read_session(options: Options) -> Iterator[Session]:
    """The one read-only Session (`keyform report` in all its modes): no lock (a report never waits
    for, or blocks, an apply), no recovery, nothing written. An interrupted apply is only noticed
    (`Session.unrecovered`): what it did stays out of the state until the next `plan` or `apply`."""
    workspace = load(options)
    store = open_backend(workspace, options.state_path, env=options.env)
    try:
        with paused():  # bulk, acyclic data (keyform.gcpause)
            loaded = store.load()
        _refuse_missing_named_state(options, loaded, store)
        pool = ProviderPool(workspace, options.provider_factory, options.env, on_wait=options.on_wait)
        records = store.read_journal()
        sess = Session(workspace, loaded or State.new(), store, pool, SinkPool(workspace), options,
                       new_state=loaded is None, unrecovered=bool(records))
        # ids that hold a secret, journaled by their fingerprint only (`Abandoned.id_fingerprint`), made
        # under the state's salt, or the journal's for a first apply that never saved one
        withheld = any(isinstance(r, Abandoned) and r.id_fingerprint for r in records)
        keyed = loaded if loaded is not None else _begun(records) if withheld else None
        if keyed is not None and (withheld or any(ks.secret_fingerprint for ks in keyed.keys.values())
                                  or any(d.secret_fingerprint for d in keyed.deposed)):
            try:  # keyed fingerprints need the key (a report needs it for nothing else)
                from keyform.fingerprintkey import attach

                attach(workspace, keyed, options.env, new_state=False)
            except KeyformError as exc:
                sess.warnings.append(warning(f"{exc}; without it, a secret an API echoes into a name cannot "
                                             "be recognised, and this report may show one"))
            watch_secrets(keyed)
        if withheld:  # never shown by `report --unmanaged` (`usage_report`)
            sess.withheld = withheld_matcher(keyed or sess.state, records)
        try:
            yield sess
        finally:
            pool.close()
    finally:
        store.close()


def _begun(records: Sequence[Record]) -> State | None:
    """The state an apply began from, as its journal's `Begin` records it (its fingerprint salt and
    key check, no keys): for a journal beside no state (a first apply that never saved one)."""
    begin = records[0] if records and isinstance(records[0], Begin) else None
    if begin is None or begin.salt is None:
        return None
    return State(lineage=begin.lineage, serial=begin.serial, salt=begin.salt, key_check=begin.key_check)


def unrecovered_note(shown: str = "this command") -> str:
    """What a command that reads the state without recovering the journal beside it (`report`,
    `state list|show`: `Session.unrecovered`) says: what it shows lacks what that apply did."""
    # (the journal of an apply still running reads the same: this command takes no lock to tell)
    return (f"an apply is running, or was interrupted and left a journal (the next plan or apply recovers it); "
            f"{shown} shows the state before that apply")


def run_report(options: Options, *, refresh_remote: bool = True,
               clock: Callable[[], datetime] | None = None) -> Collected:
    """`keyform report`: the state read-only (`read_session`), the remote keys listed unless told
    not to, and the report built (keyform.report)."""
    from keyform.report import Collected, build_report

    with read_session(options) as sess, paused():  # the listings and the report: bulk, acyclic
        ws, state = sess.workspace, sess.state
        now = (clock or options.clock)()
        notes: list[str] = [str(w) for w in sess.warnings]
        if sess.unrecovered:
            notes.append(unrecovered_note("this report"))
        snapshot = RemoteSnapshot()
        if refresh_remote:
            remember_inputs(ws, sess.options.env)  # a listed name or description may echo one (`_name`)
            snapshot = refresh(ws, state, sess.providers, instances_in_use(ws, state))
            for name in sorted(snapshot.instances):
                snap = snapshot.instances[name]
                if snap.keys is None:
                    notes.append(f"{name}: {snap.note or 'keys could not be listed'}; its keys show no live status")
                elif snap.clock_note:  # (a plug-in's clock check that did not return)
                    notes.append(snap.clock_note)
                # the last-use times shown are the API's: say how far its clock is off, as plan does
                # (keyform.usage imported only for a clock SKEW_NOTED or more off: most reports, none)
                elif name in ws.providers and (offset := snapshot.clock_offset(name)) is not None \
                        and abs(offset) >= SKEW_NOTED:
                    from keyform.usage import skew_note

                    if note := skew_note(name, ws.providers[name].type, offset):
                        notes.append(note)
        else:
            notes.append("refresh disabled: the report shows the state alone (no live status)")
        got = Collected(build_report(ws, state, snapshot, now, notes=notes), now)
        fastexit.keep((sess, snapshot, got))  # as run_plan: freed only at the end, which may skip it
        return got


def run_usage_report(options: Options, *, idle: timedelta | None = None, unmanaged: bool = False,
                     refresh_remote: bool = True) -> UsageReport:
    """`keyform report --idle/--unmanaged`: `usage_report` on the read-only session."""
    with read_session(options) as sess, paused():
        return usage_report(sess, idle=idle, unmanaged=unmanaged, refresh_remote=refresh_remote)


def usage_report(sess: Session, *, idle: timedelta | None = None, unmanaged: bool = False,
                 refresh_remote: bool = True) -> UsageReport:
    """`keyform report --idle/--unmanaged`: refresh (every provider instance of the manifests when
    looking for unmanaged keys), read the other workspaces' states the backend sees, and build the
    report (keyform.usage). Changes nothing remotely or in the state."""
    from keyform.usage import build_report

    ws, state = sess.workspace, sess.state
    instances = set(ws.providers) if unmanaged else instances_in_use(ws, state)
    if refresh_remote:
        remember_inputs(ws, sess.options.env)  # a listed name or description may echo one (`_label`)
    snapshot = refresh(ws, state, sess.providers, instances) if refresh_remote else RemoteSnapshot()
    others = sess.store.other_workspace_states() if unmanaged else {}
    notes = [str(w) for w in sess.warnings]
    if sess.unrecovered:
        notes.append("an interrupted apply has not been recovered yet (the next plan or apply does it); "
                     "keys it created may show as unmanaged")
    if unmanaged and not refresh_remote:
        notes.append("refresh disabled: unmanaged keys cannot be found without listing the providers")
    return build_report(state, snapshot, sess.options.clock(), idle=idle, unmanaged=unmanaged and refresh_remote,
                        provider_types={n: p.type for n, p in ws.providers.items()},
                        other_states=others.values(), taken=ws.keys, files=sess.options.files, notes=notes,
                        state_path=sess.options.state_path, withheld=sess.withheld,
                        declared=_declared_names(ws, state) if unmanaged else None)


def _declared_names(ws: Workspace, state: State) -> dict[tuple[str, str], str]:
    """(provider instance, name or description) → address, for the declared keys no state holds yet:
    an unmanaged remote key of that instance and name is the one to import into that address."""
    out: dict[tuple[str, str], str] = {}
    for address, spec in ws.keys.items():
        label = spec.attrs.get("name") or spec.attrs.get("description")
        if address not in state.keys and isinstance(label, str):
            out.setdefault((spec.provider, label), address)
    return out


# ------------------------------------------------------------------ state commands (no providers)


@contextmanager
def backend(options: Options) -> Iterator[StateBackend]:
    """The state backend (`--state FILE`, or the manifests' `state:`, which are then loaded),
    closed afterwards. Nothing is locked or read."""
    workspace = None if options.state_path else load(options)
    store = open_backend(workspace, options.state_path, env=options.env)
    try:
        yield store
    finally:
        store.close()


def read_state(options: Options, warn: Callable[[Diagnostics], None] = lambda _: None) -> State:
    """`state list|show`: the state as stored (empty when there is none), without a lock or recovery;
    `warn` gets the `unrecovered_note` when an interrupted apply left its journal beside it."""
    with backend(options) as store:
        loaded = store.load()
        _refuse_missing_named_state(options, loaded, store)
        if store.read_journal():
            warn([warning(unrecovered_note())])
        return loaded or State.new()


def _refuse_missing_named_state(options: Options, loaded: State | None, store: StateBackend,
                                who: str = "a read-only command") -> None:
    """A command that never creates a state (the read-only ones, `plan`, `destroy`) given
    `--state FILE` that does not exist: a mistyped or moved path read as 'no keys' made a nightly
    `report --due-within` pass for ever, and `plan` show every key as to be created. (Without
    `--state`, no state yet is a new workspace; `apply` and `import` given a new `--state FILE` start
    a state there, as Terraform's `-state` does, the plan saying so: `_new_named_state`.)"""
    if loaded is None and options.state_path and _named_state_missing(options):  # (a journal alone: not missing)
        raise KeyformError(f"--state {one_line(str(options.state_path))}: {one_line(store.describe())} does not "
                           "exist (check the path; "
                           f"{who} does not treat a missing state as an empty one)")


def pull_state(options: Options) -> State:
    """`state pull`: the stored state, which must exist."""
    with backend(options) as store:
        st = store.load()
        if st is None:
            raise KeyformError(f"{store.describe()}: there is no state yet")
        return st


@record(frozen=False)
class StateEdit:
    """A locked state being edited by hand (`state rm|mv`): save it with `save_edit`."""

    store: StateBackend
    state: State
    keep: tuple[list[Record], set[str]] | None  # the journal to keep once it is saved (fold_journal)


@contextmanager
def edit_state(options: Options, operation: str) -> Iterator[StateEdit]:
    """The state backend, locked, with its loaded state (which must exist), the journal of an
    interrupted apply folded in first (and what of it must stay journaled: `save_edit`)."""
    with backend(options) as store, store.lock(operation, timeout=options.lock_timeout):
        st = store.load()
        keep = fold_journal(store, st) if st is not None else None
        if st is None:
            if store.read_journal():
                raise KeyformError(f"{store.describe()}: there is no state yet, but an interrupted apply left "
                                   "its journal; run `keyform apply` to recover it first")
            raise KeyformError(f"{store.describe()}: {store.no_state}")
        yield StateEdit(store, st, keep)


def save_edit(edit: StateEdit) -> None:
    """Save an edited state; the journal it was folded from then keeps only the interrupted creates
    (which the next plan shows and apply resolves)."""
    edit.store.save(edit.state)
    keep_journal(edit.store, edit.state, edit.keep)


def state_rm(options: Options, address: str) -> KeyState:
    """`state rm`: forget a key (the remote key is not touched); returns its record."""
    from keyform.statecmds import state_rm as rm

    with edit_state(options, "state rm") as edit:
        current = edit.state.keys.get(address)
        taker = would_take(edit.keep[0], current) if edit.keep is not None and current is not None else None
        if taker is not None and current is not None:
            raise KeyformError(
                f"state rm: {address}'s key {current.remote_id} has the attributes of a key an interrupted create of "
                f"{taker} may have made, and was made while that create may have made it: no longer tracked, it "
                "would be taken for that create's orphan and revoked by the next apply. The journal keeps that "
                "create until a plan finds its key or its window ends (up to an hour after keyform stopped waiting "
                "for it); run `keyform apply` until the plan no longer names it, then `state rm` again. Nothing "
                "was changed")
        ks = rm(edit.state, address)
        save_edit(edit)
    return ks


def state_mv(options: Options, old: str, new: str, sink_name: str | None = None) -> KeyState:
    """`state mv`: rename a key's address (and optionally its sink entry name, which must be one
    its sink's type can hold when the manifests declare the sink: see `_entry_rule`)."""
    from keyform.statecmds import state_mv as mv

    rule = _entry_rule(options) if sink_name is not None else None
    with edit_state(options, "state mv") as edit:
        ks = mv(edit.state, old, new, sink_name, rule)
        save_edit(edit)
    return ks


def _entry_rule(options: Options) -> Callable[[str, str], str | None] | None:
    """Why an entry name cannot be one of a sink's (sink name, entry name → problem or None), by
    the type the manifests give that sink: `state mv --sink-name MY-VAR` into a dotenv sink wrote a
    name no apply could ever remove, and every apply after failed on it. None with `--state FILE`
    and manifests that do not load (state surgery needs none); without `--state` they must load."""
    from keyform.sinks.registry import entry_name_problem

    try:
        sinks = load(options).sinks
    except KeyformError:
        if options.state_path:
            return None
        raise
    return lambda sink, name: entry_name_problem(sinks[sink], name) if sink in sinks else None


@record(frozen=False)
class Pushed:
    state: State  # as pushed (its serial is the new one)
    where: str  # the backend it went to
    warnings: Diagnostics  # what --force overrode


def push_state(options: Options, file: str, *, force: bool = False) -> Pushed:
    """`state push FILE`: write a local state file into the backend as its next version, under the
    lock (keyform.statecmds.push_state says what is refused without `force`)."""
    from keyform.backends.local import LocalBackend
    from keyform.statecmds import push_state as push

    pushed = _read_pushed(file)
    source = LocalBackend(Path(file))
    if file != "-" and source.read_journal() and not force:
        shown = one_line(str(file))
        raise KeyformError(f"{shown}: an interrupted apply left {one_line(str(source.journal_path))}; run "
                           f"`keyform apply --state {shown}` to recover it first (or push anyway with --force)")
    with backend(options) as store, store.lock("state push", timeout=options.lock_timeout):
        warned = push(store, pushed, force=force)
        return Pushed(pushed, store.describe(), warned)


def _read_pushed(file: str) -> State:
    """The state `state push FILE` pushes: FILE only read, so through a link too, or a pipe
    (`<(keyform state pull)`); `-` is stdin, as in `terraform state push -`."""
    from keyform.backends.local import MAX_STATE_BYTES
    from keyform.fsio import FifoTimeoutError, NotAFileError, TooLargeError, read_capped
    from keyform.state import parse_state

    shown = "-" if file == "-" else one_line(str(file))
    try:
        raw = read_capped("/dev/stdin" if file == "-" else file, MAX_STATE_BYTES, fifo=True)[0]
    except FileNotFoundError:
        raise KeyformError(f"{shown}: no such state file") from None
    except NotAFileError as exc:
        if exc.terminal:
            raise KeyformError(f"{shown}: is a terminal; pipe a state into it, e.g. `keyform state push - < "
                               "keyform.state.json`") from None
        raise KeyformError(f"{shown}: not a state file: {exc.strerror}") from None
    except TooLargeError as exc:
        raise KeyformError(f"{shown}: {exc.strerror}, more than any keyform state; nothing was pushed") from None
    except FifoTimeoutError as exc:
        raise KeyformError(f"{shown}: {exc.strerror}; nothing was pushed") from None
    except OSError as exc:
        raise KeyformError(f"{shown}: cannot read the state to push: {exc.strerror or exc}") from None
    if not raw.strip():
        raise KeyformError(f"{shown}: empty; nothing was pushed")
    return parse_state(raw, shown, "nothing was pushed")


def force_unlock(options: Options, lock_id: str, confirm: Callable[[], None] = lambda: None) -> None:
    """`force-unlock`: break the lock `lock_id` once `confirm` returns (it raises to cancel)."""
    with backend(options) as store:
        confirm()
        store.force_unlock(lock_id)


# ------------------------------------------------------------ state commands (with a session)


def import_key(options: Options, address: str, remote_id: str,
               warn: Callable[[Diagnostics], None]) -> tuple[KeyState, Diagnostics]:
    """`import`: adopt the remote key `remote_id` as `address` (keyform.statecmds.import_key), on a
    locked session whose recovery is committed first; adopting a candidate of a create whose reply
    was lost settles that create, and so does adopting the key recovery found as a create's orphan
    (once adopted: the journal no longer keeps that create, whose window, still open for a create
    left running, would take another key with its attributes for the orphan). `warn` gets recovery's
    warnings as they arise; the import's own are returned with the record."""
    from keyform.statecmds import check_address
    from keyform.statecmds import import_key as adopt

    check_address("import", address)  # before the session: committing its recovery writes the state
    with session(options, "import") as sess:
        spec = sess.workspace.keys.get(address)
        at = spec.provider if spec is not None else None  # (two instances may use the same ids)
        settled = {o.seq for o in sess.recovery.orphans
                   if not o.withheld and o.remote_id == remote_id and o.provider == at}
        warn(commit_recovery(sess, resolved=[u.seq for u in sess.recovery.uncertain
                                             if u.provider == at and remote_id in u.candidates]))
        adopted = adopt(sess, address, remote_id)
        if settled:  # (only now: an import refused leaves the orphan to the next apply, as before)
            records = sess.store.read_journal()
            keep = {it.seq for it in unresolved(records) if it.action == "create"} - settled
            sess.store.replace_journal(compacted(sess.state, records, keep))
        return adopted


def rekey_state(options: Options, old_key: EnvRef | FileRef | None,
                warn: Callable[[Diagnostics], None]) -> RekeyReport:
    """`state rekey`: re-make the input fingerprints in the manifests' mode (keyform.fingerprintkey),
    after what an interrupted apply finished is saved in the old mode."""
    from keyform.fingerprintkey import rekey

    with session(options, "state rekey", fingerprint_key=False) as sess:
        if sess.new_state:
            raise KeyformError(f"{sess.store.describe()}: there is no state yet; nothing to rekey")
        if any(o.withheld for o in sess.recovery.orphans) or any(it.id_fingerprint for it in sess.recovery.unresolved):
            # its journal record knows that key by a fingerprint under the state's mode and key now
            raise KeyformError("an interrupted apply left a key whose id holds a secret, which the journal knows by "
                               "its fingerprint under the state's current fingerprint mode; after a rekey it could "
                               "no longer be recognised. Run `keyform apply` first (it revokes that key), then rekey")
        if any(it.key is not None and it.key.secret_fingerprint for it in sess.recovery.unresolved):
            # (`recovery._roll_forward`: its entry could not be read back) no read after a rekey matches it
            raise KeyformError("an interrupted apply left a create that keyform could not check yet, and the journal "
                               "keeps the fingerprint of the secret it issued under the state's current fingerprint "
                               "mode; after a rekey that secret could no longer be recognised in its sink entry, and "
                               "its key would be revoked as an orphan. Run `keyform plan` until it no longer says it "
                               "cannot check that create (`keyform apply` then finishes or revokes it), then rekey")
        warn(commit_recovery(sess))
        before = sess.state.to_json()
        report = rekey(sess.workspace, sess.state, sess.options.env, old_key=old_key)
        if sess.state.to_json() == before:  # (a new serial would make every saved plan stale for nothing)
            report.written = False
        else:
            sess.store.save(sess.state)
    return report
