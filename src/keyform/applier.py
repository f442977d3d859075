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

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from keyform.durations import format_time, parse_time
from keyform.errors import Diagnostic, KeyformError, SinkError
from keyform.journal import Journal
from keyform.kinds import kind
from keyform.model import KeySpec, SecretOfRef, Workspace
from keyform.plan import Action, Change, Plan
from keyform.planner import EXPIRY, PREVENT_DESTROY, SINK, secret_of_fingerprint
from keyform.refresh import ProviderPool, strip_headers
from keyform.remote import CreateRequest, RemoteKey
from keyform.resolve import read_ref, unresolved_inputs
from keyform.sinks import Sink
from keyform.state import DeposedKey, KeyState, State


@dataclass(frozen=True)
class ApplyEvent:
    """Progress: `start`, `done`, `failed` or `skipped` for one change."""

    kind: str
    change: Change
    elapsed: float = 0.0
    message: str = ""


class SinkPool:
    """Opens each configured sink once."""

    def __init__(self, workspace: Workspace, opener: Callable[[Any], Sink] | None = None) -> None:
        self._workspace = workspace
        self._opener = opener
        self._open: dict[str, Sink] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Sink:
        with self._lock:
            if name not in self._open:
                if name not in self._workspace.sinks:
                    raise SinkError(f"sink {name!r} is no longer in the manifests")
                opener = self._opener
                if opener is None:
                    from keyform.sinks.registry import open_sink

                    opener = open_sink
                self._open[name] = opener(self._workspace.sinks[name])
            return self._open[name]

    def readable(self) -> frozenset[str]:
        """Names of the sinks that can give a secret back (without opening anything remote)."""
        from keyform.sinks.registry import is_readable

        return frozenset(n for n, cfg in self._workspace.sinks.items() if is_readable(cfg))


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


@dataclass
class ApplyReport:
    done: dict[str, int] = field(default_factory=dict)  # action → count
    failed: list[tuple[Change, str]] = field(default_factory=list)
    skipped: list[tuple[Change, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


def preflight(plan: Plan, ctx: ApplyContext) -> None:
    """Everything apply needs that can be checked before the first remote call: provider tokens
    and every env/file input of the keys it will create, replace or update."""
    problems: list[Diagnostic] = []
    instances = {c.provider for c in plan.changes if c.action is not Action.NOOP}
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


def apply_plan(plan: Plan, ctx: ApplyContext) -> ApplyReport:
    report = ApplyReport()
    preflight(plan, ctx)
    first = [c for c in plan.changes if c.action in (Action.CREATE, Action.REPLACE, Action.UPDATE)]
    _run(first, ctx, report)
    second = [c for c in plan.changes if c.action is Action.DELETE]
    planned = {c.remote_id for c in second if c.deposed}
    now = ctx.clock()
    for dep in list(ctx.state.deposed):
        if dep.remote_id not in planned and parse_time(dep.revoke_after) <= now and _deposed_in_this_run(dep, first):
            second.append(Change(address=dep.address, action=Action.DELETE, provider=dep.provider,
                                 provider_type=dep.provider_type, remote_id=dep.remote_id, deposed=True,
                                 reasons=("replaced in this apply; no grace period",)))
    _run(second, ctx, report)
    return report


def _deposed_in_this_run(dep: DeposedKey, first: list[Change]) -> bool:
    return any(c.address == dep.address and c.remote_id == dep.remote_id for c in first)


def _run(changes: list[Change], ctx: ApplyContext, report: ApplyReport) -> None:
    """Run changes in dependency order (edges among these changes only), in parallel."""
    by_key = {c.key: c for c in changes}
    addresses = {c.address for c in changes if not c.deposed}
    waiting = {c.key: [d for d in c.depends_on if d in addresses and d != c.address] for c in changes}
    state_of: dict[str, str] = {}  # key → ok | failed | skipped
    running: dict[Future[None], tuple[Change, float]] = {}
    with ThreadPoolExecutor(max_workers=max(1, ctx.parallelism)) as pool:
        while waiting or running:
            for key in sorted(waiting):
                deps = waiting[key]
                blocked = [d for d in deps if state_of.get(d) in ("failed", "skipped")]
                if blocked:
                    change = by_key[key]
                    msg = f"skipped: {blocked[0]} failed"
                    report.skipped.append((change, msg))
                    state_of[key] = "skipped"
                    ctx.on_event(ApplyEvent("skipped", change, 0.0, msg))
                    del waiting[key]
                elif all(state_of.get(d) == "ok" for d in deps):
                    change = by_key[key]
                    del waiting[key]
                    ctx.on_event(ApplyEvent("start", change))
                    running[pool.submit(_execute, change, ctx)] = (change, time.monotonic())
            if not running:
                if waiting:  # unreachable: every wait is on a change in this run
                    raise KeyformError("apply: dependency deadlock: " + ", ".join(sorted(waiting)))
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                change, started = running.pop(fut)
                elapsed = time.monotonic() - started
                exc = fut.exception()
                if exc is None:
                    state_of[change.key] = "ok"
                    report.done[change.action.value] = report.done.get(change.action.value, 0) + 1
                    ctx.on_event(ApplyEvent("done", change, elapsed))
                else:
                    msg = str(exc) if isinstance(exc, KeyformError) else f"{type(exc).__name__}: {exc}"
                    state_of[change.key] = "failed"
                    report.failed.append((change, msg))
                    ctx.on_event(ApplyEvent("failed", change, elapsed, msg))


def _execute(change: Change, ctx: ApplyContext) -> None:
    if change.action is Action.DELETE:
        if change.deposed:
            _revoke_deposed(change, ctx)
        else:
            _delete(change, ctx)
    elif change.action is Action.UPDATE:
        _update(change, ctx)
    else:
        _issue(change, ctx)


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
    value = ctx.sinks.get(ks.sink["sink"]).read(ks.sink["as"])
    if value is None:
        raise KeyformError(f"the secret of {source} is missing from sink {ks.sink['sink']}:{ks.sink['as']}")
    return value


def _issue(change: Change, ctx: ApplyContext) -> None:
    """Create (or replace: create-before-destroy) a key, sink its secret, record it."""
    spec = ctx.workspace.keys[change.address]
    k = kind(spec.provider_type)
    provider = ctx.providers.get(spec.provider)
    values, fps = _resolve_inputs(spec, ctx)
    now = ctx.clock()
    expires = spec.expiry.resolve(now)
    expires_at = format_time(expires) if expires else None
    if expires is not None and expires <= now:
        raise KeyformError(f"{spec.loc}: {spec.address}: expires_at {expires_at} is in the past")
    match = {n: spec.attrs.get(n) for n in sorted(k.remote_attributes) if n != "headers"}
    seq = ctx.journal.intent("create", spec.address, spec.provider, label=_label(spec), at=format_time(now),
                             replaces=change.remote_id, match=match)
    try:
        result = provider.create(CreateRequest(spec.address, dict(spec.attrs), expires_at, values))
    except KeyformError as exc:
        if not getattr(exc, "ambiguous", False):
            ctx.journal.failed(seq, str(exc))
        raise
    ctx.journal.created(seq, result.key.id)
    if k.returns_secret:
        _sink_new_secret(spec, result.key.id, result.secret, seq, ctx)
    ks = KeyState(
        address=spec.address, provider=spec.provider, provider_type=spec.provider_type,
        remote_id=result.key.id, attrs=dict(spec.attrs), remote=_visible(result.key, fps),
        expiry_spec=spec.expiry.spec, expires_at=result.key.expires_at or expires_at,
        created_at=result.key.created_at or format_time(now),
        sink={"sink": spec.sink.sink, "as": spec.sink.name} if (k.returns_secret and spec.sink) else None,
        fingerprints=fps, prevent_destroy=spec.prevent_destroy,
    )
    with ctx.lock:
        old = ctx.state.keys.get(spec.address)
        deposed = None
        if change.action is Action.REPLACE and old is not None:
            deposed = DeposedKey(address=old.address, provider=old.provider, provider_type=old.provider_type,
                                 remote_id=old.remote_id, deposed_at=format_time(now),
                                 revoke_after=format_time(now + spec.rotation.grace))
            ctx.state.deposed.append(deposed)
        ctx.state.keys[spec.address] = ks
        ctx.journal.done(seq, key=ks, deposed=deposed)
    if old is not None and old.sink and ks.sink and old.sink != ks.sink and old.secret_in_sink:
        _remove_entry(old, ctx)


def _sink_new_secret(spec: KeySpec, remote_id: str, secret: str | None, seq: str, ctx: ApplyContext) -> None:
    """Make the new secret durable; if that fails, revoke the new key (no live key without its secret)."""
    assert spec.sink is not None  # the loader guarantees a sink for secret-issuing keys
    try:
        if not secret:
            raise SinkError(f"{spec.provider}: create {_label(spec)!r} returned no secret")
        ctx.sinks.get(spec.sink.sink).write(spec.address, spec.sink.name, secret)
    except Exception as exc:
        msg = str(exc) if isinstance(exc, KeyformError) else f"{type(exc).__name__}"
        try:
            ctx.providers.get(spec.provider).delete(remote_id)
            ctx.journal.failed(seq, f"sink failed; new key {remote_id} revoked")
            outcome = f"the new key {remote_id} was revoked"
        except KeyformError as rexc:
            outcome = f"revoking the new key {remote_id} also failed ({rexc}); the next run will retry"
        raise SinkError(f"{spec.address}: cannot store the new secret in sink {spec.sink}: {msg}; {outcome}") \
            from None
    with ctx.lock:
        ctx.issued[spec.address] = secret
    ctx.journal.sunk(seq)


def _update(change: Change, ctx: ApplyContext) -> None:
    spec = ctx.workspace.keys[change.address]
    k = kind(spec.provider_type)
    with ctx.lock:
        ks = ctx.state.keys[change.address]
    changed = {a.name for a in change.attrs}
    now = ctx.clock()
    expires_at = ks.expires_at
    remote_attrs = dict(ks.remote)
    fps = dict(ks.fingerprints)
    # write-only inputs other than headers cannot change in place: an update naming them only
    # records their fingerprint (an imported key's first apply)
    recorded = {n for n in changed if n in spec.secret_inputs and not n.startswith("headers.")}
    if recorded:
        fps.update(_resolve_inputs(spec, ctx, only=recorded)[1])
    remote_changes = changed - {SINK, PREVENT_DESTROY} - recorded
    if remote_changes:
        header_inputs = {p for p in spec.secret_inputs if p.startswith("headers.")}
        values, new_fps = _resolve_inputs(spec, ctx, only=header_inputs)
        fps.update(new_fps)
        for gone in [p for p in fps if p.startswith("headers.") and p not in spec.secret_inputs]:
            del fps[gone]
        attrs = {n: spec.attrs.get(n) for n in k.updatable}
        if "headers" in attrs:
            attrs["headers"] = {**dict(spec.attrs.get("headers") or {}),
                                **{p.split(".", 1)[1]: v for p, v in values.items()}}
        if EXPIRY in changed:
            exp = spec.expiry.resolve(now)
            expires_at = format_time(exp) if exp else None
        seq = ctx.journal.intent("update", spec.address, spec.provider, remote_id=ks.remote_id)
        remote = ctx.providers.get(spec.provider).update(ks.remote_id, attrs, expires_at)
        remote_attrs = _visible(remote, fps)
    else:
        seq = ctx.journal.intent("update", spec.address, spec.provider, remote_id=ks.remote_id)
    sink = ks.sink
    if SINK in changed and spec.sink is not None and ks.sink is not None:
        secret = ctx.sinks.get(ks.sink["sink"]).read(ks.sink["as"])
        if secret is None:
            raise SinkError(f"{spec.address}: the secret is missing from sink {ks.sink['sink']}:{ks.sink['as']}")
        ctx.sinks.get(spec.sink.sink).write(spec.address, spec.sink.name, secret)
        _remove_entry(ks, ctx)
        sink = {"sink": spec.sink.sink, "as": spec.sink.name}
    new = KeyState(
        address=ks.address, provider=ks.provider, provider_type=ks.provider_type, remote_id=ks.remote_id,
        attrs=dict(spec.attrs), remote=remote_attrs, expiry_spec=spec.expiry.spec, expires_at=expires_at,
        created_at=ks.created_at, sink=sink, fingerprints=fps, prevent_destroy=spec.prevent_destroy,
        secret_in_sink=ks.secret_in_sink, rotation_requested=ks.rotation_requested,
    )
    with ctx.lock:
        ctx.state.keys[ks.address] = new
        ctx.journal.done(seq, key=new)


def _visible(key: RemoteKey, fingerprints: Mapping[str, str]) -> dict[str, Any]:
    """The remote attributes worth recording: without the values of secret headers."""
    hidden = {p.split(".", 1)[1] for p in fingerprints if p.startswith("headers.")}
    return dict(strip_headers(key, hidden).attrs)


def _remove_entry(ks: KeyState, ctx: ApplyContext) -> None:
    if ks.sink is None:
        return
    try:
        ctx.sinks.get(ks.sink["sink"]).remove(ks.sink["as"])
    except SinkError:
        if ks.sink["sink"] in ctx.workspace.sinks:
            raise
        # the sink itself was removed from the manifests: nothing of ours to clean


def _delete(change: Change, ctx: ApplyContext) -> None:
    with ctx.lock:
        ks = ctx.state.keys[change.address]
    seq = ctx.journal.intent("delete", ks.address, ks.provider, remote_id=ks.remote_id)
    ctx.providers.get(ks.provider).delete(ks.remote_id)
    if ks.secret_in_sink:
        _remove_entry(ks, ctx)
    with ctx.lock:
        ctx.state.keys.pop(ks.address, None)
        ctx.journal.done(seq, forget=ks.address)


def _revoke_deposed(change: Change, ctx: ApplyContext) -> None:
    assert change.remote_id is not None
    seq = ctx.journal.intent("revoke-deposed", change.address, change.provider, remote_id=change.remote_id)
    try:
        ctx.providers.get(change.provider).delete(change.remote_id)
    except KeyformError as exc:
        with ctx.lock:
            for dep in ctx.state.deposed:
                if dep.remote_id == change.remote_id:
                    dep.last_error = str(exc)
        ctx.journal.failed(seq, str(exc))
        raise
    with ctx.lock:
        ctx.state.deposed = [d for d in ctx.state.deposed if d.remote_id != change.remote_id]
        ctx.journal.done(seq, revoked_deposed=change.remote_id)
