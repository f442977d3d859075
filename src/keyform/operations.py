"""The library's entry points for each command: load, lock, recover, refresh, plan, apply, save.

The CLI only parses arguments, calls these, and renders. Tests call them directly too.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from keyform.applier import ApplyContext, ApplyEvent, ApplyReport, SinkPool, apply_plan
from keyform.backends import StateBackend, open_backend
from keyform.durations import utcnow
from keyform.errors import KeyformError
from keyform.journal import Journal
from keyform.model import SecretOfRef, Workspace
from keyform.plan import Plan
from keyform.planner import PlanInputs
from keyform.planner import plan as make_plan
from keyform.recovery import begin_record, recover
from keyform.refresh import ProviderFactory, ProviderPool, instances_in_use, refresh
from keyform.remote import RemoteSnapshot
from keyform.resolve import input_fingerprints
from keyform.state import State


@dataclass
class Options:
    files: Sequence[str] = ()
    state_path: str | None = None
    lock_timeout: float = 0.0
    clock: Callable[[], datetime] = utcnow
    env: Mapping[str, str] | None = None
    provider_factory: ProviderFactory | None = None
    cwd: Path | None = None


@dataclass
class Session:
    """A loaded workspace with its state, locked for the duration of one command."""

    workspace: Workspace
    state: State
    store: StateBackend
    providers: ProviderPool
    sinks: SinkPool
    options: Options
    notes: list[str] = field(default_factory=list)
    new_state: bool = False  # no state file yet: a plan made now records no lineage


def load(options: Options) -> Workspace:
    from keyform.manifest import load_workspace

    return load_workspace(list(options.files), now=options.clock(), cwd=options.cwd)


@contextmanager
def session(options: Options, operation: str) -> Iterator[Session]:
    """Load manifests, lock the state, load it, recover an interrupted apply; unlock at the end."""
    workspace = load(options)
    store = open_backend(workspace, options.state_path, env=options.env)
    try:
        with store.lock(operation, timeout=options.lock_timeout):
            loaded = store.load()
            state = loaded or State.new()
            pool = ProviderPool(workspace, options.provider_factory, options.env)
            sess = Session(workspace, state, store, pool, SinkPool(workspace), options, new_state=loaded is None)
            try:
                _recover(sess)
                yield sess
            finally:
                pool.close()
    finally:
        store.close()


def _recover(sess: Session) -> None:
    store = sess.store
    records = store.read_journal()
    if not records:
        return
    rec = recover(sess.state, records, sess.providers)
    sess.notes.extend(rec.notes)
    if rec.state_changed:
        store.save(sess.state)
        sess.new_state = False  # a state exists now: plans made from here on record its lineage
    _rewrite_journal(sess, rec.records)


def _rewrite_journal(sess: Session, keep: list[dict[str, object]]) -> None:
    """Leave only `keep` (unresolved creates) in the journal, in one atomic swap: a crash here
    must never lose an intent that recovery still has to resolve."""
    sess.store.replace_journal([begin_record(sess.state), *keep] if keep else [])


def plan(sess: Session, *, targets: Sequence[str] = (), refresh_remote: bool = True,
         destroy: bool = False, replace: Sequence[str] = ()) -> Plan:
    ws, state = sess.workspace, sess.state
    if refresh_remote:
        snapshot = refresh(ws, state, sess.providers, instances_in_use(ws, state))
    else:
        snapshot = RemoteSnapshot()
    readable = sess.sinks.readable()
    inputs = PlanInputs(input_fingerprints(ws, state, env=sess.options.env), readable,
                        missing_secrets(sess, readable))
    result = make_plan(ws, state, snapshot, sess.options.clock(), inputs=inputs, targets=targets,
                       destroy=destroy, replace=replace)
    if sess.notes:
        result = dataclasses.replace(result, notes=tuple(sess.notes) + result.notes)
    if sess.new_state:
        result = dataclasses.replace(result, lineage=None)
    return result


def missing_secrets(sess: Session, readable: frozenset[str]) -> frozenset[str]:
    """`secret_of` sources whose secret should be in a readable sink but is not there (checked by
    reading the entry; the value is dropped at once)."""
    sources = {r.address for spec in sess.workspace.keys.values() for r in spec.secret_inputs.values()
               if isinstance(r, SecretOfRef)}
    missing = set()
    for address in sorted(sources):
        ks = sess.state.keys.get(address)
        if ks is None or ks.sink is None or not ks.secret_in_sink or ks.sink["sink"] not in readable:
            continue
        try:
            present = sess.sinks.get(ks.sink["sink"]).read(ks.sink["as"]) is not None
        except KeyformError:
            present = False
        if not present:
            missing.add(address)
    return frozenset(missing)


def check_saved_plan(sess: Session, saved: Plan) -> None:
    """Refuse a saved plan made against another state or other manifests (Terraform's stale plan)."""
    problems = []
    if saved.lineage is None:
        if not sess.new_state:
            problems.append("it was made before the state existed, and a state has been written since")
    elif saved.lineage != sess.state.lineage:
        problems.append("it was made for a different state (lineage differs)")
    elif saved.serial != sess.state.serial:
        problems.append(f"the state changed since it was made (serial {saved.serial} → {sess.state.serial})")
    if saved.manifest_digest != sess.workspace.digest:
        problems.append("the manifests changed since it was made")
    if problems:
        raise KeyformError("Saved plan is stale: " + "; ".join(problems) + ". Run `keyform plan` again.")


def apply(sess: Session, the_plan: Plan, *, parallelism: int = 10,
          on_event: Callable[[ApplyEvent], None] | None = None,
          on_rate: Callable[[Any], None] | None = None) -> ApplyReport:
    """Execute the plan; the state is written once at the end (and the journal compacted), also when
    some changes failed. Each provider instance starts at `parallelism` calls at once and adapts
    to its API's rate limit (`on_rate` gets each `providers.ratelimit.RateEvent`); the report's
    `rate` holds what each instance's limiter saw."""
    store = sess.store
    sess.providers.configure_rate(parallelism, on_rate)
    fh = store.journal_open()
    fh.append(begin_record(sess.state))
    journal = Journal(fh, uuid.uuid4().hex[:8])
    ctx = ApplyContext(workspace=sess.workspace, state=sess.state, providers=sess.providers, sinks=sess.sinks,
                       journal=journal, clock=sess.options.clock, parallelism=parallelism,
                       on_event=on_event or (lambda e: None), env=sess.options.env)
    try:
        report = apply_plan(the_plan, ctx)
        report.rate = [r for r in sess.providers.rate_stats() if r.throttled or r.configured]
    finally:
        fh.close()
        records = store.read_journal()
        if any(r.get("op") == "done" for r in records):
            store.save(sess.state)
        _compact(sess, records)
    return report


def _compact(sess: Session, records: list[dict[str, object]]) -> None:
    """After the state is saved, keep only the journal records of changes still unresolved."""
    from keyform.journal import replay

    open_ = replay(None, records)
    keep_seqs = {it.seq for it in open_ if it.action == "create"}
    _rewrite_journal(sess, [r for r in records if str(r.get("seq")) in keep_seqs])
