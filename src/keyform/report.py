"""`keyform report`: one typed row per managed key and per deposed key, sorted by urgency.

`build_report` is pure (workspace, state, remote snapshot, now → Report), like the planner; the
renderers (`keyform.render.report`) only format its rows. `keyform.operations.run_report` is the
command flow: the read-only session (no lock: the state file is always replaced atomically), the
remote keys listed unless `--no-refresh`, build.

Extending it with a column: add a field to `ReportRow` (with a default), fill it in `_row`, add it
to `COLUMNS` and to `schemas/report.schema.json`. `last_used` / `usage_reported` come from the
remote snapshot for provider types that report usage (`kinds.ProviderKind.reports_usage`); the
`--idle` and `--unmanaged` modes are `keyform.usage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache
from operator import attrgetter
from typing import Any, TypeVar

from keyform import redact
from keyform.durations import format_duration, format_time, formatted, maybe_time, parse_time
from keyform.kinds import name_attribute
from keyform.model import KeySpec, Workspace
from keyform.records import record
from keyform.remote import RemoteKey, RemoteSnapshot
from keyform.state import DeposedKey, KeyState, State

FORMAT_VERSION = "1"

# Live status of a key. Only a refreshed report knows the remote side.
ACTIVE, REVOKED, EXPIRED, MISSING = "active", "revoked", "expired", "missing"
NOT_REFRESHED, NOT_LISTED, NOT_CREATED, DEPOSED = "not refreshed", "not listed", "not created", "deposed"
# A key in one of these states needs a person (or the next apply) now, whatever its dates say.
NEEDS_ACTION = frozenset({REVOKED, EXPIRED, MISSING})


@record(dict_init=True)  # one per key
class ReportRow:
    """One managed key (`kind` "key") or one deposed key awaiting revocation (`kind` "deposed").

    Times are RFC 3339 strings (UTC); day counts are whole days rounded toward zero, as the text
    report says them (`2d ago` is -2, `in 89d` is 89; a key that expired 30 s ago, or expires in
    23 h, has 0: its `expires_at` and `status` say which side of now it is on)."""

    address: str
    kind: str  # "key" | "deposed"
    provider: str
    provider_type: str
    status: str  # one of the status constants above
    remote_id: str | None = None
    name: str | None = None
    created_at: str | None = None
    age_days: int | None = None
    expires_at: str | None = None
    expires_in_days: int | None = None
    rotation_due_at: str | None = None  # the next rotation keyform's rules will make
    rotation_due_in_days: int | None = None
    rotation_rule: str | None = None  # the rule that causes it: `before_expiry 14d`, `max_age 60d`, `grace 1h`
    sink: str | None = None
    sink_entry: str | None = None
    applied_at: str | None = None  # when keyform last created, updated or imported it
    in_manifests: bool = True  # False: in the state only (the next plan deletes it)
    last_used: str | None = None  # when the provider reports it (issue 20's usage data)
    usage_reported: bool = False  # the listing carried usage: last_used None then means "never used"

    @property  # (a cached_property's first read, the only one the sort makes, costs more: a lock on 3.11)
    def due_at(self) -> str | None:
        """The earlier of expiry and the next rotation (RFC 3339 strings in UTC sort as times)."""
        expires, rotation = self.expires_at, self.rotation_due_at
        if expires and rotation:
            return min(expires, rotation)
        return expires or rotation or None

    def to_json(self) -> dict[str, Any]:
        return dict(zip(ROW_FIELDS, row_values(self)))


ROW_FIELDS: tuple[str, ...] = (
    "address", "kind", "provider", "provider_type", "remote_id", "name", "created_at", "age_days",
    "expires_at", "expires_in_days", "rotation_due_at", "rotation_due_in_days", "rotation_rule", "sink",
    "sink_entry", "applied_at", "status", "in_manifests", "last_used", "usage_reported",
)
row_values = attrgetter(*ROW_FIELDS)  # a row's values in ROW_FIELDS order, in one C call


@record
class Report:
    generated_at: str
    refreshed: bool
    rows: tuple[ReportRow, ...]
    notes: tuple[str, ...] = ()

    def due_within(self, window: timedelta, now: datetime) -> list[ReportRow]:
        """Managed keys that expire or are due for rotation within `window` of `now` (overdue
        included), or that are revoked, expired or missing remotely. Deposed keys are revoked by
        the next apply on their own and do not count."""
        limit = format_time(now + window)
        return [r for r in self.rows if r.kind == "key" and r.status != NOT_CREATED and r.in_manifests
                and (r.status in NEEDS_ACTION or (r.due_at is not None and _utc(r.due_at) <= limit))]

    def to_json(self, *, window: timedelta | None = None, now: datetime | None = None) -> dict[str, Any]:
        doc = self.head_json(window=window, now=now)
        doc["keys"] = [r.to_json() for r in self.rows]
        return doc

    def head_json(self, *, window: timedelta | None = None, now: datetime | None = None) -> dict[str, Any]:
        """`to_json` without its `keys` (the rows): what comes before them."""
        doc: dict[str, Any] = {"format_version": FORMAT_VERSION, "generated_at": self.generated_at,
                               "refreshed": self.refreshed, "notes": list(self.notes)}
        if window is not None and now is not None:
            doc["due_within"] = {"window": format_duration(window),
                                 "due": [r.address for r in self.due_within(window, now)]}
        return doc


def _utc(text: str) -> str:
    """A stored timestamp in the one form that sorts as time (`...Z`, second precision)."""
    if formatted(text):  # already that form (every time a row built here holds): nothing to redo
        return text
    try:
        return format_time(parse_time(text))
    except ValueError:
        return text


_time = maybe_time  # None for a missing or unreadable time


def _shown(text: str | None, when: datetime | None) -> str | None:
    """`when` formatted, reusing `text` (what `when` was parsed from) when it has that form already."""
    if when is None:
        return None
    return text if text is not None and formatted(text) else format_time(when)


_DAY = timedelta(days=1)

_Seen = tuple[datetime | None, str | None, int | None, int | None]
_UNSEEN: _Seen = (None, None, None, None)


_K = TypeVar("_K")
_V = TypeVar("_V")


class _Memo(dict[_K, _V]):
    """`of(key)` for each key asked, worked out once per `build_report` (the keys one apply made
    share their times: at 10,000 keys a few hundred distinct ones)."""

    def __init__(self, of: Callable[[_K], _V]) -> None:
        super().__init__()
        self.of = of

    def __missing__(self, key: _K) -> _V:
        self[key] = value = self.of(key)
        return value


class _Times(_Memo[Any, _Seen]):
    """One `build_report`'s stored times by their text: the time (`_time`), its shown form
    (`_shown`), whole days since it and until it (`_days`)."""

    def __init__(self, now: datetime) -> None:
        def of(text: Any) -> _Seen:
            when = _time(text)
            if when is None:
                return _UNSEEN
            return when, _shown(text, when), _days(now - when), _days(when - now)

        super().__init__(of)

    def get_seen(self, text: Any) -> _Seen:
        try:
            return self[text]
        except TypeError:  # not hashable (a plug-in's listing: no time then)
            return self.of(text)


def _days(delta: timedelta) -> int:
    """Whole days in `delta`, rounded toward zero: a key that expired 30 s ago is 0 days past its
    expiry, not 1 (rounding down made it `1d ago`)."""
    return delta // _DAY if delta >= timedelta(0) else -(-delta // _DAY)


def build_report(workspace: Workspace, state: State, snapshot: RemoteSnapshot, now: datetime, *,
                 notes: Sequence[str] = ()) -> Report:
    """Every managed key (state), every declared key not created yet, every deposed key; most
    urgent first. Pure."""
    rows: list[ReportRow] = []
    times = _Times(now)
    # each next rotation time's text and whole days until it; each provider type's naming attribute
    dues: _Memo[datetime, tuple[str, int]] = _Memo(lambda due: (format_time(due), _days(due - now)))
    named: _Memo[str, str] = _Memo(name_attribute)
    for address, ks in state.keys.items():
        spec = workspace.keys.get(address)
        known, rk = snapshot.lookup(ks.provider, ks.remote_id)
        rows.append(_row(ks, spec, rk, known, snapshot.refreshed, now, times, dues, named))
    for address, spec in workspace.keys.items():
        if address not in state.keys:
            rows.append(ReportRow(address=address, kind="key", provider=spec.provider,
                                  provider_type=spec.provider_type, status=NOT_CREATED,
                                  name=_name(spec.provider_type, spec.attrs),
                                  sink=spec.sink.sink if spec.sink else None,
                                  sink_entry=spec.sink.name if spec.sink else None))
    rows = _with_inherited_rotations(rows, workspace, state, now)
    rows.extend(_deposed_row(d, snapshot, now) for d in state.deposed)
    rows.sort(key=urgency)
    return Report(generated_at=format_time(now), refreshed=snapshot.refreshed, rows=tuple(rows),
                  notes=tuple(notes))


def _with_inherited_rotations(rows: list[ReportRow], workspace: Workspace, state: State,
                              now: datetime) -> list[ReportRow]:
    """The rows, each key's next rotation made the earliest of its own and its sources': a key fed
    by `auth_value: {secret_of: src}` is replaced whenever `src` is (the planner's `_propagate`),
    and a mass rotation's lead must see the consumers that will be re-issued, and re-deployed,
    that day (`--due-within` counts them). Its rule then says why: `depends on src (max_age 20d)`.
    The manifests refuse a `secret_of` cycle; sources are settled before their consumers
    (`graph.topological_order`, no recursion: a chain of 1,000 keys declared consumer first ended
    the report in a RecursionError). A key held past its fixed expires_at inherits nothing: the
    planner leaves it as it is when its source is replaced (`planner.held_past_expiry`)."""
    if not any(spec.secret_inputs and spec.dependencies() for spec in workspace.keys.values()):
        return rows  # most workspaces: no dependency at all
    by_address = {r.address: r for r in rows if r.kind == "key"}
    from keyform.graph import topological_order
    from keyform.planner import held_past_expiry

    deps = {a: [s for s in spec.dependencies() if s in by_address]
            if (spec := workspace.keys.get(a)) and not held_past_expiry(a, workspace.keys, state, now) else []
            for a in by_address}
    due: dict[str, tuple[str | None, int | None, str | None]] = {}
    for address in topological_order(deps):
        row = by_address[address]
        best = (row.rotation_due_at, row.rotation_due_in_days, row.rotation_rule)
        for src in deps[address]:
            at, days, rule = due[src]
            if at is not None and (best[0] is None or parse_time(at) < parse_time(best[0])):
                best = (at, days, f"depends on {src}, which {rule}" if rule and rule.startswith("depends on ")
                        else f"depends on {src} ({rule})")
        due[address] = best

    out = []
    for row in rows:
        if row.address in by_address and by_address[row.address] is row:
            at, days, rule = due[row.address]
            if at != row.rotation_due_at:
                row = replace(row, rotation_due_at=at, rotation_due_in_days=days, rotation_rule=rule)
        out.append(row)
    return out


def urgency(row: ReportRow) -> tuple[int, str, str, str]:
    """Sort key: keys needing action now; then by the earliest due date; then undated keys, keys
    not created yet and deposed keys; ties by address."""
    due = row.due_at
    if row.kind == "key" and row.status in NEEDS_ACTION:
        tier = 0
    elif row.kind == "key" and due is not None:
        tier = 1
    elif row.kind == "key" and row.status != NOT_CREATED:
        tier = 2
    elif row.kind == "key":
        tier = 3
    else:
        tier = 4
    return (tier, _utc(due) if due else "", row.address, row.remote_id or "")


def _name(provider_type: str, attrs: Mapping[str, Any]) -> str | None:
    """The key's name as the API lists it (else as recorded), without a secret keyform knows
    (`redact.mask`: an API may echo one into a name)."""
    return _named(attrs.get(name_attribute(provider_type)))


def _named(value: Any) -> str | None:
    """A name attribute's value as `_name` shows it: text without a known secret, else None."""
    return redact.mask(value) if isinstance(value, str) and value else None


def _row(ks: KeyState, spec: KeySpec | None, rk: RemoteKey | None, known: bool, refreshed: bool,
         now: datetime, times: _Times, dues: _Memo[datetime, tuple[str, int]],
         named: _Memo[str, str]) -> ReportRow:
    created, created_shown, age, _ = times.get_seen(ks.created_at)
    expires_text = rk.expires_at if rk is not None and rk.expires_at else ks.expires_at
    expires, expires_shown, _, expires_in = times.get_seen(expires_text)
    if not refreshed:
        status = NOT_REFRESHED
    elif not known:
        status = NOT_LISTED
    elif rk is None:
        status = MISSING
    elif rk.revoked:
        status = REVOKED
    elif rk.expired or (expires is not None and expires <= now):
        status = EXPIRED
    else:
        status = ACTIVE
    due, rule = next_rotation(spec, ks, expires, created, now)
    due_at, due_in = dues[due] if due else (None, None)
    attrs = rk.attrs if rk is not None else (ks.remote or ks.attrs)
    field = named[ks.provider_type]
    return ReportRow(
        address=ks.address, kind="key", provider=ks.provider, provider_type=ks.provider_type, status=status,
        remote_id=ks.remote_id, name=_named(attrs.get(field)) or _named(ks.attrs.get(field)),
        created_at=created_shown if created else ks.created_at, age_days=age,
        expires_at=expires_shown, expires_in_days=expires_in,
        rotation_due_at=due_at, rotation_due_in_days=due_in, rotation_rule=rule,
        sink=ks.sink.sink if ks.sink else None, sink_entry=ks.sink.name if ks.sink else None,
        applied_at=ks.applied_at, in_manifests=spec is not None,
        last_used=_last_used(rk), usage_reported=rk is not None and rk.usage_reported,
    )


def _last_used(rk: RemoteKey | None) -> str | None:
    """When the provider says the key was last used, if the remote snapshot carries it."""
    value = rk.last_used_at if rk is not None else None
    return value if isinstance(value, str) and value else None


def next_rotation(spec: KeySpec | None, ks: KeyState, expires: datetime | None, created: datetime | None,
                  now: datetime) -> tuple[datetime | None, str | None]:
    """When the manifests' rotation rules will next replace the key, and which rule: the same rules
    the planner applies (`before_expiry`, `max_age`, a requested rotation), earliest first."""
    if spec is None:
        return None, None
    if (at := spec.expiry.at) is not None and at <= now and ks.expiry_spec == spec.expiry.spec:
        return None, None  # made with this fixed expires_at, passed: the planner leaves it (`planner.expired_note`)
    candidates: list[tuple[datetime, str]] = []
    if ks.rotation_requested:
        candidates.append((now, "rotation requested"))
    rot = spec.rotation
    if rot.before_expiry is not None and expires is not None:
        candidates.append((expires - rot.before_expiry, _rule("before_expiry", rot.before_expiry)))
    if rot.max_age is not None and created is not None:
        candidates.append((created + rot.max_age, _rule("max_age", rot.max_age)))
    if not candidates:
        return None, None
    return min(candidates, key=lambda c: c[0])


@cache
def _rule(name: str, period: timedelta) -> str:
    """`before_expiry 14d`: a rotation rule as the report names it (a workspace has a few distinct
    ones, shared by thousands of keys)."""
    return f"{name} {format_duration(period)}"


def _deposed_row(d: DeposedKey, snapshot: RemoteSnapshot, now: datetime) -> ReportRow:
    known, rk = snapshot.lookup(d.provider, d.remote_id)
    due = _time(d.revoke_after)
    rule = "revoked after grace"
    if d.revoke_requested:  # an apply with --revoke-old did not finish it: the next apply revokes it, whatever
        from keyform.planner import REVOKE_OLD_REQUESTED  # its grace (the report said `in 5h`)

        due, rule = (min(due, now) if due else now), REVOKE_OLD_REQUESTED
    if not snapshot.refreshed or not known:
        status = DEPOSED
    elif rk is None:
        status = MISSING
    elif rk.revoked:
        status = REVOKED
    else:
        status = DEPOSED
    created = _time(rk.created_at) if rk is not None else None
    expires = _time(rk.expires_at) if rk is not None else None
    return ReportRow(
        address=d.address, kind="deposed", provider=d.provider, provider_type=d.provider_type, status=status,
        remote_id=d.remote_id, name=_name(d.provider_type, rk.attrs) if rk is not None else None,
        created_at=format_time(created) if created else None, age_days=_days(now - created) if created else None,
        expires_at=format_time(expires) if expires else None,
        expires_in_days=_days(expires - now) if expires else None,
        rotation_due_at=format_time(due) if due else d.revoke_after,
        rotation_due_in_days=_days(due - now) if due else None, rotation_rule=rule,
        applied_at=d.deposed_at, last_used=_last_used(rk), usage_reported=rk is not None and rk.usage_reported,
    )


# ---------------------------------------------------------------------------------- command flow


@record(frozen=False)
class Collected:
    report: Report
    now: datetime
