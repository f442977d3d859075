"""The applier: executes a Plan through providers and sinks, journaling every step.

Order: creates, replaces and updates first, in `secret_of` dependency order (independent changes in
parallel, up to `parallelism`); then deletions and the revocation of deposed keys whose grace has
passed, so an old key is revoked only after everything that consumed it was re-pointed.

For a key that issues a secret: create → write the secret to its sink durably → record it. If the
sink write fails, the new key is revoked at once: no live key is ever left without its secret.
The State object is mutated in memory under a lock and each finished change is journaled; the
caller writes the state once at the end (and a crash is recovered from the journal).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from keyform import inherited, redact
from keyform.durations import exact_duration, format_time, parse_time
from keyform.errors import (
    PLUGIN_FAILURES,
    AmbiguousProviderError,
    Diagnostic,
    KeyformError,
    LockLostError,
    NotSentError,
    Overdue,
    ProviderError,
    SinkError,
    StateError,
    StateWriteError,
)
from keyform.journal import Journal
from keyform.kinds import kind, matched_attributes
from keyform.model import KeySpec, SecretOfRef, SinkTarget, Workspace, header_of
from keyform.plan import Action, Change, Plan
from keyform.planner import (
    EXPIRY,
    PREVENT_DESTROY,
    REVOKE_OLD_REQUESTED,
    SINK,
    dead_key,
    held_entry_ids,
    held_past_expiry,
    kept_for,
    unremovable_stale,
    updated_expiry,
)
from keyform.providers.pool import ProviderPool
from keyform.records import record
from keyform.refresh import strip_headers
from keyform.remote import MAX_SECRET, CreateRequest, CreateResult, Provider, RemoteKey
from keyform.resolve import read_ref, unresolved_inputs
from keyform.scheduler import Abandon, Callbacks, Scheduler, abandon
from keyform.sinks import Sink
from keyform.sinks.pool import SinkPool
from keyform.state import DeposedKey, KeyState, State, secret_of_edge, secret_of_fingerprint

log = logging.getLogger("keyform.applier")

# set while a worker revokes the key its change just made (`_BoundedProvider.revoke_new`); a context
# variable, so a plug-in's call run in a thread of its own (`keyform.bounded`) sees it too
_REVOKING_NEW: contextvars.ContextVar[bool] = contextvars.ContextVar("keyform_revoking_new", default=False)


# why a change ended without being sent (`_run`'s `held_back`)
INTERRUPTED = "the apply was interrupted"
STORE_FAILED = "the apply journal could not be written"
LOST_LOCK = "skipped: the state lock was lost"


@record
class ApplyEvent:
    """Progress: `start`, `done`, `failed` or `skipped` for one change. `remote_id`, on `done` of a
    create or replace, is the id of the key it issued."""

    kind: str
    change: Change
    elapsed: float = 0.0
    message: str = ""
    remote_id: str | None = None


@dataclass
class ApplyContext:
    workspace: Workspace
    state: State
    providers: ProviderPool
    sinks: SinkPool
    journal: Journal
    clock: Callable[[], datetime]
    parallelism: int = 10
    on_event: Callable[[ApplyEvent], None] = lambda e: None
    env: Mapping[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: dict[str, str] = field(default_factory=dict, repr=False)  # secrets issued in this apply
    # deposed keys by (provider instance, remote id), and those revoked so far: the revocation phase
    # touches each in O(1) and drops the revoked from `state.deposed` in one pass at its end (not one
    # pass per key). By instance too: two instances of one type may use the same ids (both count from 1)
    deposed_by_id: dict[tuple[str, str], DeposedKey] = field(default_factory=dict, repr=False)
    revoked: set[tuple[str, str]] = field(default_factory=set, repr=False)
    # deposed keys whose revoke failed in a way that may have been done (ambiguous, past its bound)
    maybe_revoked: set[tuple[str, str]] = field(default_factory=set, repr=False)
    # orphans of interrupted creates this plan revokes: remote id → the journal intent each resolves
    orphan_seqs: dict[str, str] = field(default_factory=dict, repr=False)
    # remote id of an orphan -> the sink entry its interrupted create may have written (`Orphan.entry`)
    orphan_entries: dict[str, SinkTarget] = field(default_factory=dict, repr=False)
    # the placeholder the plan names an orphan by whose id holds a secret (`Orphan.shown_id`) -> that id,
    # for its revoke call alone: journal, events and messages keep the placeholder
    withheld_ids: dict[str, str] = field(default_factory=dict, repr=False)
    remote_slots: threading.Semaphore = field(init=False, repr=False)
    sink_slots: threading.Semaphore = field(init=False, repr=False)
    # (sink, entry) → the key of the manifests that writes it: a deleted or moved key never removes
    # an entry another key now holds (a key renamed with the same `as:`)
    # stored entry (`Workspace.entry_id`: the names of one file are one) -> the key that writes it
    entry_owner: dict[tuple[str, str], str] = field(init=False, repr=False)
    # the keys this apply deletes (`_apply_phases`), and the stored entries (`Workspace.entry_id`)
    # where the state keeps the secret of a key it does not delete, taken when the first delete runs
    # (every create and move has finished by then): a deleted key's entry goes unless it is one (`_delete`)
    deleting: frozenset[str] = field(default=frozenset(), init=False, repr=False)
    # (address, remote id) of each current key this plan replaces and revokes in its second phase
    # (`--replace A --revoke-old A`): deposed with no grace (`_issue`), so an apply killed before the
    # revoke leaves an old key the next apply revokes, not one living through a grace
    revoking_replaced: frozenset[tuple[str, str]] = field(default=frozenset(), init=False, repr=False)
    # (address, remote id) of each old key this plan revokes because `--revoke-old` asked, in its second
    # phase: the failed re-issue of a consumer that still sends one's secret says so (`_broken_by_revoke`)
    revoke_old_asked: tuple[tuple[str, str], ...] = field(default=(), init=False, repr=False)
    kept_entries: set[tuple[str, str]] | None = field(default=None, init=False, repr=False)
    # of the keys this apply deletes, how many record their secret at each entry and are not revoked yet
    doomed_entries: Counter[tuple[str, str]] = field(default_factory=Counter, init=False, repr=False)
    # address → the secret of a sink move, read before this apply wrote anything: its old entry is
    # another key's new one (two keys swapping `as:`, a new key taking a moved key's name), which
    # may be written before the move reads it (`_hold_moving_secrets`)
    held: dict[str, str] = field(default_factory=dict, repr=False)
    # (provider type, remote id) -> the key that holds it, built at the first create (`_holder_of`)
    held_ids: dict[tuple[str, str], str] | None = field(default=None, init=False, repr=False)
    # intent seq -> address of each plug-in create in flight (sent: not one still waiting for a
    # slot, which is never sent): a second Ctrl-C journals them as abandoned while running
    # (`_left_running`), as a create past its bound is
    creating: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    # whether a Ctrl-C (or SIGTERM) came: a remote call still queued then is not sent (`_run` sets it)
    stopping: Callable[[], bool] = field(default=lambda: False, repr=False)

    def __post_init__(self) -> None:
        self.remote_slots = threading.Semaphore(max(1, self.parallelism))
        self.sink_slots = threading.Semaphore(max(1, self.parallelism))
        self.entry_owner = {self.workspace.entry_id(s.sink): a for a, s in self.workspace.keys.items()
                            if s.sink is not None and kind(s.provider_type).returns_secret}

    def provider(self, name: str) -> _BoundedProvider:
        """The provider instance, its calls bounded by --parallelism (see `_run`)."""
        return _BoundedProvider(self.providers.get(name), self.remote_slots, self.stopping)

    def sink(self, name: str) -> Sink:
        """The sink, its calls bounded by --parallelism (see `_run`)."""
        return _BoundedSink(self.sinks.get(name), self.sink_slots, name)


class _BoundedProvider:
    """A provider whose calls each hold one of `slots` (at most --parallelism remote calls at once).
    A provider with a `limiter` (providers/ratelimit.py) takes the slot per attempt, once the attempt
    may be sent: calls waiting on one rate-limited instance hold no slot another instance could use."""

    def __init__(self, provider: Provider, slots: threading.Semaphore,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self._p, self.name = provider, provider.name
        limiter = getattr(provider, "limiter", None)
        self._slot: Callable[[], AbstractContextManager[Any]] = (
            (lambda: limiter.call(gate=slots)) if limiter is not None else (lambda: slots))
        self._stopping = stopping

    def _unless_stopping(self, what: str) -> None:
        """A call that waited in the instance's concurrency window while Ctrl-C came (or the state's
        store failed, or the lock was lost: `_run`) is not sent: nothing of it reached the API (20
        queued changes kept sending for 24 s after the Ctrl-C)."""
        if self._stopping():
            raise NotSentError(f"{self.name}: {what}: not sent: the apply was interrupted while it waited")

    def revoke_new(self, remote_id: str) -> None:
        """Revoke the key this change has just made and cannot record or store: sent even once the
        state's store failed or the lock was lost (which hold back every other call), as no record
        of the key may survive the apply (a Ctrl-C still holds it back: its `created` record, when
        written, lets the next apply revoke it)."""
        token = _REVOKING_NEW.set(True)
        try:
            self.delete(remote_id)
        finally:
            _REVOKING_NEW.reset(token)

    def list(self) -> list[RemoteKey] | None:
        with self._slot():
            return self._p.list()

    def create(self, request: CreateRequest, sent: Callable[[], None] | None = None) -> CreateResult:
        """`sent`: called once the call goes out (not for one held back while it waited for a slot)."""
        with self._slot():
            self._unless_stopping(f'create "{request.address}"')
            if sent is not None:
                sent()
            return self._p.create(request)

    @property
    def runs_plugin_code(self) -> bool:
        """Whether its calls are a plug-in's own code (`ForeignProvider.runs_plugin_code`)."""
        return bool(getattr(self._p, "runs_plugin_code", False))

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        with self._slot():
            self._unless_stopping(f'update "{remote_id}"')
            return self._p.update(remote_id, attrs, expires_at)

    def delete(self, remote_id: str) -> None:
        with self._slot():
            self._unless_stopping(f'revoke "{remote_id}"')
            self._p.delete(remote_id)

    def close(self) -> None:
        self._p.close()


class _BoundedSink:
    """A sink whose calls each hold one of `slots` (at most --parallelism sink operations at once)."""

    def __init__(self, sink: Sink, slots: threading.Semaphore, label: str = "") -> None:
        self._s, self._slots, self.readable, self._label = sink, slots, sink.readable, label

    def write(self, address: str, name: str, secret: str) -> None:
        redact.remember(secret)  # scrubbed from any later error text, whichever call echoes it
        with self._slots:
            self._s.write(address, name, secret)
        log.debug("sink %s: wrote entry %s for %s", self._label, name, address)  # never the secret

    def read(self, name: str) -> str | None:
        with self._slots:
            value = self._s.read(name)
        redact.remember(value)
        log.debug("sink %s: read entry %s (%s)", self._label, name, "present" if value is not None else "absent")
        return value

    def remove(self, name: str) -> None:
        with self._slots:
            self._s.remove(name)
        log.debug("sink %s: removed entry %s", self._label, name)


@record(frozen=False)
class ApplyReport:
    done: dict[str, int] = field(default_factory=dict)  # action → count
    failed: list[tuple[Change, str]] = field(default_factory=list)
    skipped: list[tuple[Change, str]] = field(default_factory=list)
    lost_lock: str | None = None  # the state lock was lost mid-apply (LockLostError): nothing more started
    # the state's store failed to write the apply journal (its error, the first): nothing more started,
    # as after a Ctrl-C (the rest is in `not_started`); and, when saving at the end failed too, why
    # (`operations._finish`)
    store_failed: str | None = None
    store_unsaved: str | None = None
    not_started: list[Change] = field(default_factory=list)  # left undone by an interrupt (Ctrl-C) or store_failed
    interrupted: bool = False
    # revocations of keys replaced in this apply with no grace: part of their replace, not deletions
    # the plan announced (so plan and apply totals agree); counted under done["revoke-replaced"]
    implicit: set[str] = field(default_factory=set)
    rate: list[Any] = field(default_factory=list)  # providers.ratelimit.RateStats per instance
    # stale copies removed (`Change.stale`), and those keyform stopped tracking because it cannot
    # remove them (the plan's note said so): the state changed with no journal record (`operations._finish`)
    entries_removed: list[str] = field(default_factory=list)
    stale_forgotten: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.interrupted and self.store_failed is None


class ApplyAbandoned(KeyformError):
    """A second Ctrl-C: the apply stopped waiting for the changes in flight. `in_flight` are the
    changes that were running; their outcome is in the journal only, and the next apply recovers
    them (a create that made a key is revoked as an orphan). Raised as the process gives up
    (`_abandon`): `helpers` is how many sink programs were still running when `keyform.inherited`
    was sealed (no program starts after that); those keep the state lock until they end."""

    def __init__(self, in_flight: list[Change], helpers: int = 0) -> None:
        super().__init__("apply interrupted twice: stopped without waiting for the changes in flight")
        self.in_flight = in_flight
        self.helpers = helpers


def _abandon(in_flight: list[Change]) -> ApplyAbandoned:
    """The second Ctrl-C's exception, after sealing `keyform.inherited`: from now on no sink program
    starts in this process, and those running keep the state lock (`backends.base.hold`)."""
    return ApplyAbandoned(in_flight, inherited.seal())


@record(frozen=False)
class _Interrupts:
    """SIGINT (or SIGTERM) while changes run: the first stops starting new ones (those running
    finish and are reported), the second abandons the ones in flight (`scheduler.abandon`: once the
    change the scheduler is handing off is listed in flight or ended; a third, at once)."""

    count: int = 0

    def handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count >= 2:
            abandon(at_once=self.count >= 3)


@contextmanager
def _catch_sigint(interrupts: _Interrupts) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:  # SIGTERM (a CI job cancelled, `kill`) as Ctrl-C, as Terraform does: the running changes
        # finish (a sink helper's write included) rather than dying mid-change with no report
        previous = {sig: signal.signal(sig, interrupts.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def preflight(plan: Plan, ctx: ApplyContext) -> None:
    """Everything apply needs that can be checked before the first remote call: provider tokens
    and every env/file input of the keys it will create, replace or update."""
    problems: list[Diagnostic] = []
    # the instances the plan calls (removing a stale copy of a secret calls none)
    instances = {c.provider for c in plan.changes if c.action is not Action.NOOP and not c.stale}
    for name in sorted(instances):
        try:
            ctx.providers.check_credentials([name])
        except KeyformError as exc:
            problems.extend(exc.diagnostics)
    for c in plan.changes:
        if c.action in (Action.CREATE, Action.REPLACE, Action.UPDATE) and not c.deposed:
            spec = ctx.workspace.keys.get(c.address)
            if spec is None:
                problems.append(Diagnostic(f"{c.address}: the plan changes a key that is not in the manifests"))
                continue
            problems.extend(unresolved_inputs(spec, ctx.env))
    if problems:
        raise KeyformError(problems)


def _guard_entries(ctx: ApplyContext) -> None:
    """Tell each sink that keeps other people's entries (`SinkType.guards_entries`: a .env) which
    of its entries are keyform's, as the state records them (through any name of the file): it
    then refuses to overwrite any other that appears while the apply runs (`DotenvSink.guard`).
    The plan refused the ones there when it was made (`planner.foreign_entries`)."""
    from keyform.typeregistry import sink_type

    owned = {ctx.workspace.entry_id(t) for t in ctx.state.owned_entries()}
    for name, config in ctx.workspace.sinks.items():
        try:
            if not sink_type(config.type).guards_entries:
                continue
        except KeyError:
            continue
        guard = getattr(ctx.sinks.get(name), "guard", None)
        if guard is not None:
            place = ctx.workspace.entry_id(SinkTarget(name, ""))[0]
            guard(entry for where, entry in owned if where == place)


def apply_plan(plan: Plan, ctx: ApplyContext) -> ApplyReport:
    """Run the plan. Ctrl-C once: no new change starts, the running ones finish and are reported,
    the rest is listed in `report.not_started`. Twice: ApplyAbandoned names the changes in flight."""
    report = ApplyReport()
    preflight(plan, ctx)
    _guard_entries(ctx)
    interrupts = _Interrupts()
    with _catch_sigint(interrupts):
        try:
            _apply_phases(plan, ctx, report, interrupts)
        except Abandon:  # the second Ctrl-C came between the phases: nothing was in flight
            raise _abandon([]) from None
    _forget_unremovable(plan, ctx, report)
    return report


def _forget_unremovable(plan: Plan, ctx: ApplyContext, report: ApplyReport) -> None:
    with ctx.lock:
        report.stale_forgotten.extend(forget_unremovable_stale(ctx.workspace, ctx.state, plan))


def forget_unremovable_stale(workspace: Workspace, state: State, plan: Plan) -> list[str]:
    """Stop tracking the stale copies keyform cannot remove (`planner.unremovable_stale`: the plan's
    notes named each), after any apply of `plan`; the entries no longer tracked."""
    gone = unremovable_stale(workspace, state, plan)
    for entry in gone:
        state.unmark_stale(entry)
    return [str(entry) for entry in gone]


def _apply_phases(plan: Plan, ctx: ApplyContext, report: ApplyReport, interrupts: _Interrupts) -> None:
    first = [c for c in plan.changes if c.action in (Action.CREATE, Action.REPLACE, Action.UPDATE)]
    replacing = {(c.address, c.remote_id) for c in first if c.action is Action.REPLACE}
    ctx.revoking_replaced = frozenset(
        (c.address, c.remote_id) for c in plan.changes
        if c.action is Action.DELETE and c.deposed and not c.orphan and c.remote_id is not None
        and REVOKE_OLD_REQUESTED in c.reasons and (c.address, c.remote_id) in replacing)
    ctx.revoke_old_asked = tuple((c.address, c.remote_id) for c in plan.changes if c.action is Action.DELETE
                                 and c.deposed and c.remote_id is not None and REVOKE_OLD_REQUESTED in c.reasons)
    _hold_moving_secrets(first, ctx)
    try:
        _run(first, ctx, report, interrupts)
    finally:
        _rotate_unmoved(report, ctx)
    second = [c for c in plan.changes if c.action is Action.DELETE]
    ctx.deleting = frozenset(c.address for c in second if not (c.deposed or c.orphan or c.stale))
    if report.lost_lock is not None:  # the revocations are not started either: say so
        for change in second:
            report.skipped.append((change, LOST_LOCK))
            ctx.on_event(ApplyEvent("skipped", change, 0.0, LOST_LOCK))
        return
    if interrupts.count or report.store_failed is not None:
        report.not_started.extend(second)
        return
    planned = {c.remote_id for c in second if c.deposed}
    now = ctx.clock()
    replaced_now = {(c.address, c.remote_id): c.dead for c in first}
    for dep in list(ctx.state.deposed):
        if (dep.remote_id not in planned and parse_time(dep.revoke_after) <= now
                and (dep.address, dep.remote_id) in replaced_now):
            # a key the API listed as revoked or expired (`dead`) says so: no key it feeds holds it back
            dead = replaced_now[(dep.address, dep.remote_id)]
            revoke = Change(address=dep.address, action=Action.DELETE, provider=dep.provider,
                            provider_type=dep.provider_type, remote_id=dep.remote_id, deposed=True,
                            reasons=(f"{DEAD_REPLACED}; no grace period",) if dead else
                            ("replaced in this apply; no grace period",))
            second.append(revoke)
            report.implicit.add(revoke.key)
    second = _held_back(second, ctx, report, destroy=plan.destroy)
    with ctx.lock:
        ctx.deposed_by_id = {(d.provider, d.remote_id): d for d in ctx.state.deposed}
    try:
        _request_revocations(second, ctx)
    except LockLostError as exc:  # nothing revoked: said as for the revocations after a lost lock
        report.lost_lock = str(exc)
        for change in second:
            report.skipped.append((change, LOST_LOCK))
            ctx.on_event(ApplyEvent("skipped", change, 0.0, LOST_LOCK))
        return
    except StateWriteError:  # the store failed: no revocation starts (as `_run` after such a failure)
        report.store_failed = ctx.journal.failure
        report.not_started.extend(second)
        return
    revoked: set[tuple[str, str]] = set()
    maybe: set[tuple[str, str]] = set()
    try:
        _run(second, ctx, report, interrupts)
    finally:
        with ctx.lock:
            maybe, ctx.maybe_revoked = ctx.maybe_revoked, set()
            if ctx.revoked:
                revoked = set(ctx.revoked)
                ctx.state.deposed = [d for d in ctx.state.deposed if (d.provider, d.remote_id) not in ctx.revoked]
                ctx.revoked.clear()
    _broken_by_revoke(second, revoked, ctx, report, maybe)


def _broken_by_revoke(revocations: list[Change], revoked: set[tuple[str, str]], ctx: ApplyContext,
                      report: ApplyReport, maybe: set[tuple[str, str]]) -> None:
    """Say in the failure of a consumer's re-issue what became of each old source key whose secret
    it still sends (its re-issue failed, so its key still has that secret) that a `--revoke-old` of
    this apply asked to revoke: revoked, it stops working until an apply re-issues it; not revoked
    (that revoke failed too, or never ran), it works on, and the next apply re-issues it before
    revoking the key as asked (`_request_revocations` journaled the request); `maybe`, a revoke that
    failed in a way that may have been done (ambiguous, or past its bound: `_revoke_deposed`), may
    have broken it, and is said so (before, such a key was "not revoked" and the consumer "works
    on", found by an adversarial review: the revoke had landed). A revocation asked for
    is never held back (`_held_back`), and the plan's note said this could happen
    (`planner.reissued_under`); before, the failure said only the API's error, and nothing said the
    consumer was now broken. (Its progress line, before the revoke, says what a revoke would do:
    `_to_be_revoked`.)"""
    asked = [(c.address, c.remote_id, c.provider) for c in revocations
             if c.deposed and c.remote_id is not None and REVOKE_OLD_REQUESTED in c.reasons]
    if not asked or not report.failed:
        return
    gone = [(address, remote_id) for address, remote_id, provider in asked if (provider, remote_id) in revoked]
    unsure = [(address, remote_id) for address, remote_id, provider in asked
              if (provider, remote_id) not in revoked and (provider, remote_id) in maybe]
    kept = [(address, remote_id) for address, remote_id, provider in asked
            if (provider, remote_id) not in revoked and (provider, remote_id) not in maybe]
    with ctx.lock:
        fed_by = ctx.state.fed_by()
    for i, (change, message) in enumerate(report.failed):
        clause = (_still_sends(change, gone, fed_by, REVOKED) + _still_sends(change, unsure, fed_by, MAYBE_REVOKED)
                  + _still_sends(change, kept, fed_by, NOT_REVOKED))
        if clause:
            report.failed[i] = (change, message + clause)


# how the failure of a consumer's re-issue ends (`_still_sends`) when it still sends the secret of an
# old key `--revoke-old` asked to revoke: before the revoke (its progress line), and once the apply
# revoked it, or did not
TO_BE_REVOKED = "which --revoke-old asks this apply to revoke: once revoked, it stops working until `keyform apply` " \
                "re-issues it"
REVOKED = "revoked by --revoke-old in this apply: it stops working until `keyform apply` re-issues it"
MAYBE_REVOKED = "which --revoke-old asked to revoke, and whose revoke may have been done: if it was, it stops " \
                "working until `keyform apply` re-issues it"
NOT_REVOKED = "which --revoke-old asked to revoke, not revoked in this apply: it works on, and the next " \
              "`keyform apply` re-issues it before revoking that key as asked"


def _to_be_revoked(change: Change, ctx: ApplyContext) -> str:
    """The clause the progress line (text and JSON event) of a consumer's failed re-issue ends with when
    it still sends the secret of an old key this apply's `--revoke-old` is to revoke after it. It is
    said before the revoke, which may fail in its turn: it says what a revoke would do (`TO_BE_REVOKED`),
    and the final error what the apply did (`_broken_by_revoke`). Before, only that error said it,
    once the apply had ended; then the line said the key was "to be revoked", and its revoke could fail."""
    if not ctx.revoke_old_asked:
        return ""
    with ctx.lock:
        fed_by = ctx.state.fed_by()
    return _still_sends(change, ctx.revoke_old_asked, fed_by, TO_BE_REVOKED)


def _still_sends(change: Change, asked: Sequence[tuple[str, str]], fed_by: Mapping[tuple[str, str], Sequence[str]],
                 what: str) -> str:
    """`; ADDRESS still sends the secret of SOURCE's old key ID, WHAT` for the old keys of `asked`
    (address, remote id) whose secret `change`'s key still sends, or ""."""
    if change.deposed or change.orphan or change.stale:
        return ""
    sources = [(address, remote_id) for address, remote_id in asked
               if change.address in fed_by.get((address, remote_id), ())]
    if not sources:
        return ""
    said = ", ".join(f"{address}'s old key {remote_id}" for address, remote_id in sources)
    return f"; {change.address} still sends the secret of {said}, {what}"


def _request_revocations(changes: list[Change], ctx: ApplyContext) -> None:
    """Before the first revocation of the second phase: make `--revoke-old` durable. Each old key
    it revokes (`REVOKE_OLD_REQUESTED`) is marked `revoke_requested` in the journal (an `end-grace`
    intent and its `done`) and the state: an apply killed between revocations, or whose revoke of
    one fails, leaves the rest to the next plain apply, which revokes them as the flag would. Before,
    they kept their grace, and the user had to remember to repeat the flag. The key a `--replace`
    of this apply deposed is marked already (`_issue`)."""
    for change in changes:
        if not change.deposed or change.orphan or change.stale or change.remote_id is None \
                or REVOKE_OLD_REQUESTED not in change.reasons:
            continue
        with ctx.lock:
            dep = ctx.deposed_by_id.get((change.provider, change.remote_id))
        if dep is None or dep.revoke_requested or dep.address != change.address:
            continue
        seq = ctx.journal.intent("end-grace", change.address, change.provider, remote_id=change.remote_id)
        ctx.journal.done(seq, revoke_requested=change.remote_id)
        with ctx.lock:
            dep.revoke_requested = True


# the implicit revocation of an old key its replacement found revoked or expired (`Change.dead`)
DEAD_REPLACED = "replaced in this apply, and revoked or expired already"


def _dead(change: Change) -> bool:
    """Whether a deposed key's revocation is of a key the API listed as revoked or expired: its
    secret authenticates nobody, so a key it still feeds (an old consumer in its grace) does not
    hold it back; before, the apply that replaced an expired source skipped its revoke and failed."""
    return dead_key(change) or (bool(change.reasons) and change.reasons[0].startswith(DEAD_REPLACED))


def _held_back(changes: list[Change], ctx: ApplyContext, report: ApplyReport, *,
               destroy: bool = False) -> list[Change]:
    """`changes` (the second phase) without the revocations that the first phase's outcome makes
    wrong, each reported as skipped.

    - An old key whose secret a key still uses: a consumer (`auth_value: {secret_of: src}`) whose
      re-issue failed in this apply, or was left out of it (`--target src`), still sends the old
      source key's secret, and revoking that key broke it. It stays deposed; the plan keeps it
      until no key uses it (`planner`). Not an old key revoked on request (`--revoke-old`): a human
      asked, and the plan warned of those users.
    - The key a `--revoke-old` plan revokes once its replacement is live, when that replacement did
      not finish: it is still the address's key.
    - An orphan whose secret may be the one in a sink entry (an apply killed after writing it) that
      the entry's key was to write over in this apply, when that write did not happen: revoked,
      it left the entry a dead secret, and the key the state records none. It stays in the journal
      for the next apply, which replaces that key first.

    A destroy deletes the consumers in the same apply (`ctx.deleting`: not counted as users), so
    it revokes everything; a destroy plan cut down to a source's old key alone does not. A key a
    destroy names is revoked whatever still uses it, as its plan said (`planner.destroyed_under`)."""
    unfinished = {c.address for c, _ in (*report.failed, *report.skipped)} | {c.address for c in report.not_started}
    with ctx.lock:
        fed_by = ctx.state.fed_by() if ctx.state.deposed or any(not c.deposed for c in changes) else {}
    revoking = {c.key for c in changes}  # (a deposed consumer revoked in this phase too: no longer a user)
    out = []
    for change in changes:
        why = None
        current = ctx.state.keys.get(change.address) if change.deposed and not change.orphan else None
        if current is not None and current.remote_id == change.remote_id:
            # the key a `--revoke-old` plan revokes once its replacement is live, still the address's
            # key: that replacement failed, or did not run, and revoked it left the address no key
            why = (f"skipped: {change.remote_id} is still the key of {change.address}, whose replacement did not "
                   "finish; it is revoked by `--revoke-old` once it is replaced")
        elif change.orphan and change.sink is None and change.address in unfinished and change.remote_id is not None \
                and ctx.orphan_entries.get(change.remote_id) is not None:
            why = (f"skipped: its secret may be the one in the sink entry {ctx.orphan_entries[change.remote_id]}, "
                   f"which the replacement of {change.address} was to write over and did not; revoked once it has")
        elif (not change.orphan and not change.stale and change.remote_id is not None and not _dead(change)
              and REVOKE_OLD_REQUESTED not in change.reasons  # (asked for: the plan warned of its users)
              and (change.deposed or not destroy)):  # (a destroy names the key: revoked, its users told)
            # an old key, or the key of an address the manifests no longer declare (a source renamed
            # without `state mv`: its consumer re-issued with the new one's secret, or not)
            users = [u for u in fed_by.get((change.address, change.remote_id), ())
                     if u not in ctx.deleting and u not in revoking]
            if users:  # (a consumer held past its fixed expires_at, expired, is no user: `held_past_expiry`)
                now = ctx.clock()
                users = [u for u in users if not held_past_expiry(u, ctx.workspace.keys, ctx.state, now)]
            why = "skipped: " + kept_for(change.address, change.remote_id, users, deposed=change.deposed) \
                if users else None
        if why is None:
            out.append(change)
            continue
        report.skipped.append((change, why))
        report.implicit.discard(change.key)
        ctx.on_event(ApplyEvent("skipped", change, 0.0, why))
    return out


def _hold_moving_secrets(changes: list[Change], ctx: ApplyContext) -> None:
    """Read, before any change runs, the secret of each sink move whose old entry another change of
    this apply writes: run in parallel, that change could overwrite the entry before the move read
    it, and the moved key's secret would be lost (both entries holding the other key's secret)."""
    entry_id = ctx.workspace.entry_id  # the names of one file are one entry
    written = {entry_id(spec.sink) for c in changes
               if (spec := ctx.workspace.keys.get(c.address)) is not None and spec.sink is not None}
    for c in changes:
        spec = ctx.workspace.keys.get(c.address)
        ks = ctx.state.keys.get(c.address)
        if (c.action is not Action.UPDATE or SINK not in {a.name for a in c.attrs} or spec is None
                or spec.sink is None or ks is None or ks.sink is None):
            continue
        if entry_id(ks.sink) in written and entry_id(ks.sink) != entry_id(spec.sink):
            try:
                secret = ctx.sink(ks.sink.sink).read(ks.sink.name)
            except SinkError:
                continue  # the move itself reports it
            if secret is not None:
                ctx.held[c.address] = secret


def _rotate_unmoved(report: ApplyReport, ctx: ApplyContext) -> None:
    """A sink move whose secret was held (`_hold_moving_secrets`) and that did not finish (Ctrl-C,
    a failure) while another change wrote over its old entry: its secret was only in this process.
    The key is marked for rotation, or the next apply would move the other key's secret (both
    entries holding one secret, the plan 'No changes'). A crash leaves the journal to say the same."""
    if not ctx.held:
        return
    unfinished = {c.address for c in report.not_started}
    unfinished |= {c.address for c, _ in report.failed} | {c.address for c, _ in report.skipped}
    for address in sorted(unfinished & ctx.held.keys()):
        with ctx.lock:
            ks = ctx.state.keys.get(address)
        if ks is None or ks.sink is None:
            continue
        try:
            intact = ctx.sinks.get(ks.sink.sink).read(ks.sink.name) == ctx.held[address]
        except Exception:  # unreadable now: rotate (this runs in a `finally`, so never raises)
            intact = False
        if not intact:
            with ctx.lock:
                ctx.state.keys[address] = replace(ks, rotation_requested=True)
            log.warning("%s: its sink entry %s now holds another key's secret and its move did not run; "
                        "the next apply rotates it", address, ks.sink)


def _run(changes: list[Change], ctx: ApplyContext, report: ApplyReport,
         interrupts: _Interrupts | None = None) -> None:
    """Run changes in dependency order, in parallel (`scheduler.Scheduler`), and report each outcome.

    `--parallelism N` bounds the remote calls (and, separately, the sink operations) in flight: N
    at once each, through `ctx.provider` / `ctx.sink`. Up to 2N changes run at once, so that while
    N of them wait on the network the others do their local, durable bookkeeping (journal fsyncs,
    the sink write): with N changes each holding its slot through that bookkeeping too, an apply
    ran at 1.6x N x RTT instead of near it (docs/performance.md). `--parallelism 1` stays strictly
    serial: one change after another. Once the state lock is lost nothing more starts; after a
    Ctrl-C nothing more starts and the rest is reported as not started, and so it is once the
    state's store failed to write the journal (`Journal.failure`: the database or the disk is
    gone; the changes in flight finish, and journal what they still can). Those changes' own calls
    are not held back (the Ctrl-C's `stopping`): a create whose record failed must still revoke
    the key it made."""
    stop = interrupts or _Interrupts()
    journal = ctx.journal

    def held_back() -> str | None:
        """Why a call not sent yet must not be sent now, or None: a Ctrl-C; the state's store failed
        or the lock was lost, for any call but the revoke of a key its change just made
        (`_BoundedProvider.revoke_new`). Read before each attempt, and by every limiter wait."""
        if stop.count:
            return INTERRUPTED
        if _REVOKING_NEW.get():
            return None
        if report.lost_lock is not None:
            return LOST_LOCK
        if journal.failure is not None:
            return STORE_FAILED
        return None

    ctx.stopping = lambda: held_back() is not None

    def start(change: Change) -> None:
        ctx.on_event(ApplyEvent("start", change))

    def done(change: Change, elapsed: float, kept: str | None) -> None:
        # `kept`: why the change did less than planned (`_execute`), only ever a stale removal's
        if change.stale:  # a copy of a secret, not a key: counted apart from the key deletions
            bucket = "stale-kept" if kept is not None else "stale"
            if kept is None and change.sink is not None:
                report.entries_removed.append(change.sink)
        else:
            bucket = "revoke-replaced" if change.key in report.implicit else change.action.value
        report.done[bucket] = report.done.get(bucket, 0) + 1
        ctx.on_event(ApplyEvent("done", change, elapsed, message=kept or "", remote_id=_issued_id(change, ctx)))

    def failed(change: Change, exc: BaseException, elapsed: float) -> None:
        if isinstance(exc, NotSentError):  # waiting when the Ctrl-C came (or the store failed): nothing was sent
            why = held_back() or INTERRUPTED
            if why is LOST_LOCK:
                report.skipped.append((change, LOST_LOCK))
                ctx.on_event(ApplyEvent("skipped", change, elapsed, LOST_LOCK))
                return
            report.not_started.append(change)
            # its start was shown (`Creating...`, `apply_start`): every started change ends with an event
            ctx.on_event(ApplyEvent("skipped", change, elapsed, f"not sent: {why} while it waited"))
            return
        if isinstance(exc, StateWriteError) and exc.nothing_sent:  # its intent was not journaled: nothing was done
            report.not_started.append(change)
            ctx.on_event(ApplyEvent("skipped", change, elapsed, "not started: the apply journal could not be written"))
            return
        # a bug's text may quote what it was handling (a token, a secret): scrubbed as an API's error is
        msg = str(exc) if isinstance(exc, KeyformError) else redact.scrub(f"{type(exc).__name__}: {exc}", ())
        if isinstance(exc, LockLostError) and report.lost_lock is None:
            report.lost_lock = msg
        report.failed.append((change, msg))
        ctx.on_event(ApplyEvent("failed", change, elapsed, msg + _to_be_revoked(change, ctx)))

    def skipped(change: Change, msg: str) -> None:
        report.skipped.append((change, msg))
        ctx.on_event(ApplyEvent("skipped", change, 0.0, msg))

    scheduler = Scheduler(
        changes, lambda change: _execute(change, ctx), ctx.parallelism, Callbacks(start, done, failed, skipped),
        halted=lambda: None if report.lost_lock is None else LOST_LOCK,
        stopping=lambda: bool(stop.count) or journal.failure is not None)
    try:
        not_started = scheduler.run()
    except Abandon as exc:
        _left_running(ctx)
        raise _abandon(exc.in_flight) from None
    if journal.failure is not None and report.store_failed is None:
        report.store_failed = journal.failure
    if stop.count:
        report.interrupted = True
    if stop.count or report.store_failed is not None:
        report.not_started.extend(not_started)


def _left_running(ctx: ApplyContext) -> None:
    """A second Ctrl-C: the plug-in creates in flight (`ctx.creating`) are left running, as a create
    past its bound is (`_issue`, `Overdue`), and journaled so: the key one makes after keyform left
    (an API that creates asynchronously) is looked for by recovery for `recovery.LATE_CREATE`, not
    only until 5 minutes after the run's last record. A built-in's request ends with the process.
    Nothing is written once the store failed (it may hang), and a third Ctrl-C stops the writing."""
    if ctx.journal.failure is not None:
        return
    with ctx.lock:
        seqs = list(ctx.creating)
    try:
        for seq in seqs:
            with contextlib.suppress(StateError):
                ctx.journal.abandoned(seq, running=True)
    except Abandon:  # a third Ctrl-C: leave at once
        pass


def _issued_id(change: Change, ctx: ApplyContext) -> str | None:
    """The id of the key a finished create or replace issued (None for other changes)."""
    if change.deposed or change.action not in (Action.CREATE, Action.REPLACE):
        return None
    with ctx.lock:
        ks = ctx.state.keys.get(change.address)
    return ks.remote_id if ks is not None else None


def _execute(change: Change, ctx: ApplyContext) -> str | None:
    """Run one change; None, or why it did less than planned (a stale copy found held or gone)."""
    if change.action is Action.DELETE:
        if change.stale:
            return _remove_stale_copy(change, ctx)
        if change.orphan:
            _revoke_orphan(change, ctx)
        elif change.deposed:
            _revoke_deposed(change, ctx)
        else:
            _delete(change, ctx)
    elif change.action is Action.UPDATE:
        _update(change, ctx)
    else:
        _issue(change, ctx)
    return None


def _label(spec: KeySpec) -> str:
    name = spec.attrs.get("name")
    return str(name) if name else spec.address


def _resolve_inputs(spec: KeySpec, ctx: ApplyContext, only: set[str] | None = None
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """(values, fingerprints) of the key's secret inputs. Values stay in memory."""
    values: dict[str, str] = {}
    fps: dict[str, str] = {}
    for path, ref in sorted(spec.secret_inputs.items()):
        if only is not None and path not in only:
            continue
        if isinstance(ref, SecretOfRef):
            values[path] = _secret_of(ref.address, ctx)
            with ctx.lock:
                src = ctx.state.keys[ref.address]
            fps[path] = secret_of_fingerprint(ref.address, src.remote_id)
        else:
            values[path] = read_ref(ref, f"keys.{spec.address}.{path}", ctx.env)
            fps[path] = ctx.state.fingerprint(values[path])
    return values, fps


def _secret_of(source: str, ctx: ApplyContext) -> str:
    """The current secret of a managed key: issued in this apply, or read back from its sink."""
    with ctx.lock:
        if source in ctx.issued:
            return ctx.issued[source]
        ks = ctx.state.keys.get(source)
    if ks is None or ks.sink is None or not ks.secret_in_sink:
        raise KeyformError(f"the secret of {source} is not available: it is in no sink keyform can read")
    value = ctx.sink(ks.sink.sink).read(ks.sink.name)
    if value is None:
        raise KeyformError(f"the secret of {source} is missing from sink {ks.sink}")
    return value


def _issue(change: Change, ctx: ApplyContext) -> None:
    """Create (or replace: create-before-destroy) a key, sink its secret, record it."""
    spec = ctx.workspace.keys[change.address]
    k = kind(spec.provider_type)
    provider = ctx.provider(spec.provider)
    values, fps = _resolve_inputs(spec, ctx)
    now = ctx.clock()
    expires = spec.expiry.resolve(now)
    expires_at = format_time(expires) if expires else None
    if expires is not None and expires <= now:
        # the plan refuses such a key (`planner.past_expiry`): a saved plan applied after the time
        raise KeyformError(f"{spec.loc}: key {spec.address!r}: expires_at {expires_at} has passed, so no key was "
                           "created (the plan was made before it): set a later expires_at, or use expires_in")
    revoke_after = format_time(now + spec.rotation.grace)  # all that can fail, before the remote call
    match = {n: spec.attrs.get(n) for n in matched_attributes(k)}
    entry = {"entry": spec.sink.to_json()} if (k.returns_secret and spec.sink) else {}
    seq = ctx.journal.intent("create", spec.address, spec.provider, label=_label(spec), at=format_time(now),
                             replaces=change.remote_id, match=match, **entry)
    plugin = provider.runs_plugin_code

    def sending() -> None:  # (only once it goes out: one still waiting for a slot is never sent)
        with ctx.lock:
            ctx.creating[seq] = spec.address

    try:
        result = provider.create(CreateRequest(spec.address, dict(spec.attrs), expires_at, values),
                                 sent=sending if plugin else None)
    except Overdue:  # possibly done, and maybe only later: the call still runs. Journaled as such, so
        # recovery keeps looking for its key past this record (`recovery.LATE_CREATE`); a record the
        # journal cannot take leaves the intent alone, recovered as a kill's (a shorter window)
        with contextlib.suppress(StateError):
            ctx.journal.abandoned(seq, running=True)
        raise
    except KeyformError as exc:
        if isinstance(exc, NotSentError):  # held back (a Ctrl-C, the store failed, the lock lost): not
            # started, said as such; a record the journal cannot take leaves an intent recovery resolves
            with contextlib.suppress(StateError):
                ctx.journal.failed(seq, str(exc))
        elif not isinstance(exc, AmbiguousProviderError):
            ctx.journal.failed(seq, str(exc))
        else:  # the key may exist: recovery resolves it, in the window this record closes
            withheld = None
            if exc.remote_id and not redact.holds_whole(exc.remote_id, values.values()):
                ctx.journal.created(seq, exc.remote_id)
            elif exc.remote_id:  # an id holding a secret input: known by its fingerprint only
                withheld = ctx.state.fingerprint(exc.remote_id)
            ctx.journal.abandoned(seq, id_fingerprint=withheld)
        raise
    finally:
        if plugin:
            with ctx.lock:
                ctx.creating.pop(seq, None)
    if redact.holds_whole(result.key.id, (result.secret, *values.values())):
        raise _refuse_secret_id(spec, provider, result.key.id, seq, ctx)
    holder = _holder_of(result.key.id, spec, ctx)
    if holder is not None:  # an id another key holds: recording it would make two keys one (a revoke of
        # either revokes both); never revoked here, for the same reason
        message = (f"{spec.provider}: create {_label(spec)!r}: the API answered with the id "
                   f"{result.key.id}, which {holder} already holds; not recorded, and nothing revoked")
        ctx.journal.failed(seq, message)
        raise KeyformError(message)
    ks = KeyState.of(spec, result.key.id, remote=_visible(result.key, fps),
                     expires_at=result.key.expires_at or expires_at,
                     created_at=result.key.created_at or format_time(now),
                     sink=spec.sink if k.returns_secret else None, fingerprints=fps, applied_at=format_time(now),
                     secret_fingerprint=ctx.state.secret_fingerprint(result.secret) if k.returns_secret else None)
    with ctx.lock:
        old = ctx.state.keys.get(spec.address)
    deposed = None
    if change.action is Action.REPLACE and old is not None:
        # a key the API lists as revoked or expired (`dead`) is revoked in this apply, with no
        # grace: a no-op remotely, or a TextQL record deleted (an edited plan's mark: the same)
        deposed = DeposedKey(address=old.address, provider=old.provider, provider_type=old.provider_type,
                             remote_id=old.remote_id, deposed_at=format_time(now),
                             revoke_after=format_time(now) if change.dead or (
                                 (old.address, old.remote_id) in ctx.revoking_replaced) else revoke_after,
                             unused_for=(exact_duration(spec.rotation.unused_for)
                                         if spec.rotation.unused_for else None),
                             on_grace_end=spec.rotation.on_grace_end,
                             secret_fingerprint=old.secret_fingerprint,
                             fed_by=tuple(sorted(fp for fp in old.fingerprints.values()
                                                 if secret_of_edge(fp) is not None)),
                             # `--replace A --revoke-old A`: a kill before its revoke leaves it to
                             # the next apply, revoked as the flag would, whatever still uses it
                             revoke_requested=(old.address, old.remote_id) in ctx.revoking_replaced)
    # a secret its sink will hold: the `created` record carries what `done` will record, so that an
    # apply killed between the sink write and `done` is finished by recovery (`recovery._roll_forward`)
    # rather than the key revoked under a consumer that read the entry. A secret too short to be
    # fingerprinted (`State.secret_fingerprint`) cannot be recognised in the sink: not carried
    ahead = ks.secret_fingerprint is not None and ks.sink is not None
    try:
        ctx.journal.created(seq, result.key.id, created_at=result.key.created_at,
                            key=ks if ahead else None, deposed=deposed if ahead else None)
    except KeyformError as exc:  # e.g. the lock was lost: a key no journal may know of must not stay live
        try:
            provider.revoke_new(result.key.id)
            outcome = f"the new key {result.key.id} was revoked"
        except KeyformError as rexc:
            outcome = f"revoking the new key {result.key.id} also failed ({rexc})"
        raise type(exc)(f"{exc}; {outcome}") from None
    if k.returns_secret:
        _sink_new_secret(spec, result.key.id, result.secret, seq, ctx)
    with ctx.lock:
        if deposed is not None:
            ctx.state.deposed.append(deposed)
        ctx.state.keys[spec.address] = ks
        if ctx.held_ids is not None:
            ctx.held_ids[(ks.provider_type, ks.remote_id)] = spec.address
        # the old secret's entry, where the manifests no longer put it: a copy until removed (a
        # crash or a failed removal leaves it for the next plan, `State.stale`). Compared by stored
        # entry: under another name of the same file, the new secret was just written over it
        left = old.sink if (old is not None and old.sink is not None and old.secret_in_sink
                            and (ks.sink is None or ctx.workspace.entry_id(old.sink) != ctx.workspace.entry_id(ks.sink))
                            ) else None
        if old is not None and left is not None:
            ctx.state.note_stale(left, old.address)
    ctx.journal.done(seq, key=ks, deposed=deposed)  # fsynced: outside the lock, so other changes go on
    if old is not None and left is not None:
        _remove_entry(old, ctx)


def _refuse_secret_id(spec: KeySpec, provider: _BoundedProvider, remote_id: str, seq: str,
                      ctx: ApplyContext) -> KeyformError:
    """A create answered with an id that holds a secret it issued or was sent. An id is recorded in
    the state and journal and printed in every plan and progress line (secrets are masked in
    attributes and messages, never in ids), so this one is never journaled, recorded or shown. The
    key is revoked at once, while this process still knows the secret and masks it in any message.
    If that revoke fails, the journal keeps the create open with the id's fingerprint under the
    state's salt or key (`State.fingerprint`), never the id: the next run's recovery recognises the
    key in its provider's listing by that fingerprint alone (not by its attributes, which would show
    the id), plans its revocation under a placeholder id, and the apply revokes it
    (`recovery._withheld`)."""
    what = f"{spec.provider}: create {_label(spec)!r}: the API answered with an id that holds a secret"
    try:
        provider.revoke_new(remote_id)
    except KeyformError as exc:
        ctx.journal.abandoned(seq, id_fingerprint=ctx.state.fingerprint(remote_id))
        return AmbiguousProviderError(redact.scrub(
            f"{what}; not recorded, and revoking the new key failed ({exc}): the key may exist remotely, "
            "and the next apply revokes it as an orphan", ()))
    message = f"{what}; not recorded, and the new key was revoked"
    ctx.journal.failed(seq, message)
    return KeyformError(message)


def _holder_of(remote_id: str, spec: KeySpec, ctx: ApplyContext) -> str | None:
    """Which key of the state (or deposed key) of `spec`'s provider type holds `remote_id` (the
    address's own current key included: a replacement answered with it would depose itself)."""
    with ctx.lock:
        if ctx.held_ids is None:
            ctx.held_ids = ctx.state.holders()
        return ctx.held_ids.get((spec.provider_type, remote_id))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unusable_secret(secret: str | None) -> str | None:
    """What makes an issued secret unusable (`returned ...`), or None for one keyform stores: none at
    all, one of whitespace only (no credential: a sink would hold a blank value), or one longer than
    `MAX_SECRET` (no API key is; a state recording it could not be read again)."""
    if not secret:
        return "no secret"
    if len(secret) > MAX_SECRET:
        return f"a secret of {len(secret)} characters, more than the {MAX_SECRET} keyform accepts"
    if secret.isspace():
        return "a secret with no visible characters"
    return None


def _sink_new_secret(spec: KeySpec, remote_id: str, secret: str | None, seq: str, ctx: ApplyContext) -> None:
    """Make the new secret durable; if that fails, revoke the new key (no live key without its secret)."""
    assert spec.sink is not None  # the loader guarantees a sink for secret-issuing keys
    try:
        unusable = _unusable_secret(secret)
        if unusable is not None or secret is None:
            raise SinkError(f"{spec.provider}: create {_label(spec)!r} returned {unusable or 'no secret'}")
        ctx.sink(spec.sink.sink).write(spec.address, spec.sink.name, secret)
    except Overdue:  # the write may land yet: not revoked; the next run recovers the create (`recovery`)
        raise
    except PLUGIN_FAILURES as exc:  # (a sink plug-in's sys.exit() too: the new key must not stay live)
        msg = str(exc) if isinstance(exc, KeyformError) else (
            "it holds text that is not valid Unicode (a lone surrogate: an API sent a \\ud800 escape), which no "
            "file or program can be given" if isinstance(exc, UnicodeError) and secret and not _encodable(secret)
            else f"{type(exc).__name__}")
        try:
            ctx.provider(spec.provider).revoke_new(remote_id)
        except KeyformError as rexc:
            outcome = f"revoking the new key {remote_id} also failed ({rexc}); the next run will retry"
        else:
            outcome = f"the new key {remote_id} was revoked"
            # revoked: a record the journal could not take (its store failed) leaves the create open
            # with its id, which the next run finds revoked (`recovery`), and the apply stops anyway
            with contextlib.suppress(StateWriteError):
                ctx.journal.failed(seq, f"sink failed; new key {remote_id} revoked")
        raise SinkError(f"cannot store the new secret in sink {spec.sink}: {msg}; {outcome}") \
            from None
    with ctx.lock:
        ctx.issued[spec.address] = secret
    # no `sunk` record: the change's `done` follows at once, with nothing between that touches a
    # disk or the API (one fsynced append fewer per create); recovery of a change cut off before
    # `done` reads the entry back: holding the secret its `created` record fingerprinted, the
    # create is finished (`recovery._roll_forward`); otherwise its key is revoked as an orphan


def _update(change: Change, ctx: ApplyContext) -> None:
    """Update a key in place: its remote attributes (or only the recorded fingerprints), then its
    secret's sink entry if that moved, then its record; the old entry goes once the journal has it."""
    spec = ctx.workspace.keys[change.address]
    with ctx.lock:
        ks = ctx.state.keys[change.address]
    changed = {a.name for a in change.attrs}
    now = ctx.clock()
    seq, remote_attrs, fps, expires_at = _update_remote(spec, ks, changed, now, ctx)
    sink = ks.sink
    moved = SINK in changed and spec.sink is not None and ks.sink is not None
    if moved and spec.sink is not None and ks.sink is not None and ctx.workspace.entry_id(spec.sink) == \
            ctx.workspace.entry_id(ks.sink):
        # another name of the same file and variable: the secret is there already, and removing
        # the old name's entry would remove it (the planner says "sink renamed")
        moved, sink = False, spec.sink
    if moved:
        sink = _move_secret(spec, ks, ctx)
    # an attribute the update does not name stays as applied: a prevent_destroy-only update sends
    # nothing (a key held past its fixed expires_at, `planner._decide`), and a key waiting for a held
    # source (`planner._Decision.wait_for`) is updated without the changes its replacement makes
    # (is_private, an expiry set only by a new key); recorded as the manifests say, they were never
    # planned again
    new = KeyState.of(spec, ks.remote_id, remote=remote_attrs, expires_at=expires_at, created_at=ks.created_at,
                      attrs=_as_updated(spec, ks, changed),
                      expiry_spec=None if EXPIRY in changed else ks.expiry_spec,
                      sink=sink, fingerprints=fps, applied_at=format_time(now), secret_in_sink=ks.secret_in_sink,
                      rotation_requested=ks.rotation_requested, secret_fingerprint=ks.secret_fingerprint)
    with ctx.lock:
        ctx.state.keys[ks.address] = new
        if moved and ks.sink is not None:  # a copy of the secret until removed (a failed removal leaves it, as a crash)
            ctx.state.note_stale(ks.sink, ks.address)
    ctx.journal.done(seq, key=new)
    if moved:  # the old entry is removed only once the journal records the new one
        _remove_entry(ks, ctx)


def _as_updated(spec: KeySpec, ks: KeyState, changed: set[str]) -> dict[str, Any] | None:
    """The attributes to record after an in-place update naming `changed`: the manifests' (None)
    when it names every attribute that differs, else each one it does not name as applied."""
    names = kind(spec.provider_type).attributes
    left = [n for n in names if n not in changed and spec.attrs.get(n) != ks.attrs.get(n)]
    if not left:
        return None
    attrs = {n: v for n, v in spec.attrs.items() if n not in left}
    attrs.update((n, ks.attrs[n]) for n in left if n in ks.attrs)
    return attrs


def _update_remote(spec: KeySpec, ks: KeyState, changed: set[str], now: datetime, ctx: ApplyContext
                   ) -> tuple[str, dict[str, Any], dict[str, str], str | None]:
    """Journal the update's intent and, if an attribute the API holds changed, update the remote
    key (secret headers resolved and sent with it). Returns (intent seq, remote attributes to
    record, fingerprints, expires_at)."""
    k = kind(spec.provider_type)
    expires_at = ks.expires_at
    fps = dict(ks.fingerprints)
    # write-only inputs other than headers cannot change in place: an update naming them only
    # records their fingerprint (an imported key's first apply)
    recorded = {n for n in changed if n in spec.secret_inputs and header_of(n) is None}
    if recorded:
        fps.update(_resolve_inputs(spec, ctx, only=recorded)[1])
    remote_changes = changed - {SINK, PREVENT_DESTROY} - recorded
    # a sink move journals the entry it writes: recovery keeps it as keyform's own (`State.written`)
    moving = SINK in changed and spec.sink is not None and ks.sink is not None
    entry = {"entry": spec.sink.to_json()} if (moving and spec.sink) else {}
    if not remote_changes:
        seq = ctx.journal.intent("update", spec.address, spec.provider, remote_id=ks.remote_id, **entry)
        return seq, dict(ks.remote), fps, expires_at
    header_inputs = {p for p in spec.secret_inputs if header_of(p) is not None}
    values, new_fps = _resolve_inputs(spec, ctx, only=header_inputs)
    fps.update(new_fps)
    for gone in [p for p in fps if header_of(p) is not None and p not in spec.secret_inputs]:
        del fps[gone]
    attrs = {n: spec.attrs.get(n) for n in k.updatable}
    if "headers" in attrs:
        attrs["headers"] = {**dict(spec.attrs.get("headers") or {}),
                            **{h: v for p, v in values.items() if (h := header_of(p)) is not None}}
    if EXPIRY in changed:
        exp = updated_expiry(spec, ks, now)
        expires_at = format_time(exp) if exp else None
    seq = ctx.journal.intent("update", spec.address, spec.provider, remote_id=ks.remote_id, **entry)
    remote = ctx.provider(spec.provider).update(ks.remote_id, attrs, expires_at)
    return seq, _visible(remote, fps), fps, expires_at


def _move_secret(spec: KeySpec, ks: KeyState, ctx: ApplyContext) -> SinkTarget:
    """Copy the secret from the key's recorded sink entry to its new one; the new entry's place."""
    assert spec.sink is not None and ks.sink is not None
    with ctx.lock:
        held = ctx.held.pop(spec.address, None)
    secret = held if held is not None else ctx.sink(ks.sink.sink).read(ks.sink.name)
    if secret is None:  # a move cut off after the old entry was removed: the new one has it
        secret = ctx.sink(spec.sink.sink).read(spec.sink.name)
    if secret is None:
        raise SinkError(f"the secret is missing from sink {ks.sink}")
    ctx.sink(spec.sink.sink).write(spec.address, spec.sink.name, secret)
    return spec.sink


def _visible(key: RemoteKey, fingerprints: Mapping[str, str]) -> dict[str, Any]:
    """The remote attributes worth recording: without the values of secret headers."""
    hidden = {h for p in fingerprints if (h := header_of(p)) is not None}
    return dict(strip_headers(key, hidden).attrs)


def _remove_entry(ks: KeyState, ctx: ApplyContext) -> None:
    """Remove the entry a replace or a sink move left behind, unless another key of the manifests
    writes it now (two keys swapping `as:`, run in parallel)."""
    if ks.sink is None:
        return
    if ctx.entry_owner.get(ctx.workspace.entry_id(ks.sink), ks.address) != ks.address:
        return  # another key of the manifests writes this entry now, by any name of its file: not ours to remove
    _drop_entry(ks.sink, ctx)


def _drop_entry(entry: SinkTarget, ctx: ApplyContext) -> None:
    try:
        ctx.sink(entry.sink).remove(entry.name)
        with ctx.lock:  # gone from the sink: no longer an entry of keyform's to keep track of
            ctx.state.forget_entry(entry)
    except SinkError:
        if entry.sink in ctx.workspace.sinks:
            raise
        # the sink itself was removed from the manifests: nothing of ours to clean, nor to track
        with ctx.lock:
            ctx.state.unmark_stale(entry)


def _kept_by_another(entry: SinkTarget, ctx: ApplyContext) -> bool:
    """Whether `entry` (aliases of one file included) stays after the delete that just revoked
    its key: the state keeps the secret of a key this apply does not delete there, or of a key it
    deletes that is not revoked yet (a key renamed with the same `as:` whose old one's revoke
    failed records one entry twice; its revoke may fail too). Deletes run after every create and
    move (`_apply_phases`), so a key that took the entry over in this apply records it by now, and
    one that moved away does not; a key of the manifests that this apply did not write
    (`--target`, `destroy`, a failed create) does not either, and the entry, holding only revoked
    secrets, goes. The plan decides the same way (`planner._entry_keepers`)."""
    with ctx.lock:
        if ctx.kept_entries is None:
            ctx.kept_entries = set()
            for a, k in ctx.state.keys.items():
                if k.sink is not None and k.secret_in_sink:
                    here = ctx.workspace.entry_id(k.sink)
                    if a in ctx.deleting:
                        ctx.doomed_entries[here] += 1
                    else:
                        ctx.kept_entries.add(here)
        here = ctx.workspace.entry_id(entry)
        ctx.doomed_entries[here] -= 1  # this key's, revoked now
        return here in ctx.kept_entries or ctx.doomed_entries[here] > 0


def _delete(change: Change, ctx: ApplyContext) -> None:
    with ctx.lock:
        ks = ctx.state.keys[change.address]
    seq = ctx.journal.intent("delete", ks.address, ks.provider, remote_id=ks.remote_id)
    ctx.provider(ks.provider).delete(ks.remote_id)
    left: SinkError | None = None
    if ks.secret_in_sink and ks.sink is not None and not _kept_by_another(ks.sink, ctx):
        try:
            _drop_entry(ks.sink, ctx)
        except SinkError as exc:  # the key is revoked all the same: the state must say so
            left = exc
    with ctx.lock:
        ctx.state.keys.pop(ks.address, None)
        if left is not None and ks.sink is not None:  # it holds a revoked secret: keyform's to overwrite
            ctx.state.note_written([ks.sink])
    ctx.journal.done(seq, forget=ks.address)
    if left is not None:
        raise SinkError(f"{ks.remote_id} is revoked, but its sink entry {ks.sink} (the revoked secret) could not "
                        f"be removed: {left}; remove it by hand") from None


def _revoke_orphan(change: Change, ctx: ApplyContext) -> None:
    """Revoke a key an interrupted create left behind; the journal then closes that create's intent.
    An orphan whose id holds a secret is named by its placeholder (`Orphan.shown_id`) everywhere
    but in the revoke call itself, and an error quoting that id is scrubbed of it."""
    assert change.remote_id is not None
    resolves = ctx.orphan_seqs.get(change.remote_id)
    seq = ctx.journal.intent("revoke-orphan", change.address, change.provider, remote_id=change.remote_id,
                             resolves=resolves)
    entry = ctx.orphan_entries.get(change.remote_id)
    if change.sink is not None and entry is not None and str(entry) == change.sink:
        # before the revoke: a revoked orphan may no longer be listed, so a kill or a failed removal
        # after it would leave the entry for good; this way the next apply finds the orphan again
        _remove_orphan_entry(change, entry, ctx)
    withheld = ctx.withheld_ids.get(change.remote_id)
    if withheld is None:
        ctx.provider(change.provider).delete(change.remote_id)
    else:
        try:
            ctx.provider(change.provider).delete(withheld)
        except KeyformError as exc:  # (NotSentError included: its text names the id too)
            raise _scrubbed(exc, withheld) from None
    ctx.journal.done(seq, resolves=resolves)


def _scrubbed(exc: KeyformError, secret: str) -> KeyformError:
    """`exc`, of the same type (and HTTP status), its text without `secret`."""
    text = redact.scrub(str(exc), (secret,))
    if isinstance(exc, ProviderError):
        return type(exc)(text, status=exc.status, code=exc.code, retry_after=exc.retry_after)
    return type(exc)(text)


def _remove_orphan_entry(change: Change, entry: SinkTarget, ctx: ApplyContext) -> None:
    """Remove the entry an orphan's create may have written (the plan said it goes: no key of the
    manifests writes it, the state records none there), checked again now, aliases included."""
    _remove_unheld(entry, ctx, lambda why: (
        f"the sink entry {entry} of the orphan {change.remote_id} (its secret) could not be removed, so the "
        f"orphan was not revoked yet: {why}; the next apply tries again"))


def _remove_stale_copy(change: Change, ctx: ApplyContext) -> str | None:
    """Remove the copy of a key's secret its sink move left behind (`State.stale`; the plan said it
    goes), checked again now: None once removed, else why nothing was removed. No journal
    record: a removal is idempotent, and one cut off is planned again from the state."""
    with ctx.lock:
        entry = next((e for e, a in ctx.state.stale_copies() if str(e) == change.sink and a == change.address), None)
    if entry is None:  # a key records it now, or another change removed it: either way not a copy to remove
        return f"nothing to remove: {change.sink} is no longer a stale copy of the secret of {change.address}"
    return _remove_unheld(entry, ctx, lambda why: (
        f"the sink entry {entry}, a stale copy of the secret of {change.address}, could not be removed: "
        f"{why}; the next apply tries again"))


def _remove_unheld(entry: SinkTarget, ctx: ApplyContext, refused: Callable[[str], str]) -> str | None:
    """Remove `entry` unless a key of the manifests writes it or the state records a key there now
    (aliases of one file included: that key's write replaces it): None once removed, else why it
    was left. `refused` words a failed removal."""
    with ctx.lock:
        held = ctx.workspace.entry_id(entry) in held_entry_ids(ctx.workspace, ctx.state)
    if held:
        return f"left in place: a key's secret is written to {entry} now"
    try:
        ctx.sink(entry.sink).remove(entry.name)
    except SinkError as exc:
        raise SinkError(refused(str(exc))) from None
    with ctx.lock:  # gone from the sink: neither keyform's to track nor a stale copy
        ctx.state.forget_entry(entry)
    return None


def _revoke_deposed(change: Change, ctx: ApplyContext) -> None:
    assert change.remote_id is not None
    seq = ctx.journal.intent("revoke-deposed", change.address, change.provider, remote_id=change.remote_id)
    try:
        ctx.provider(change.provider).delete(change.remote_id)
    except Overdue:  # possibly done: no record after the intent; the next plan sees what it did
        with ctx.lock:
            ctx.maybe_revoked.add((change.provider, change.remote_id))
        raise
    except KeyformError as exc:
        if isinstance(exc, AmbiguousProviderError):  # sent, and its answer lost: it may have been done
            with ctx.lock:
                ctx.maybe_revoked.add((change.provider, change.remote_id))
        with ctx.lock:
            dep = ctx.deposed_by_id.get((change.provider, change.remote_id))
            if dep is not None and not isinstance(exc, NotSentError):
                dep.last_error = str(exc)
        if isinstance(exc, NotSentError):  # held back: not started (as `_issue`)
            with contextlib.suppress(StateError):
                ctx.journal.failed(seq, str(exc))
            raise
        ctx.journal.failed(seq, str(exc))
        raise
    with ctx.lock:
        ctx.revoked.add((change.provider, change.remote_id))  # dropped from state.deposed when the phase ends
    ctx.journal.done(seq, revoked_deposed=change.remote_id)
