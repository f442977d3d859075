"""Usage-aware lifecycle, as pure functions over plain values (no I/O, no clock of its own).

Three things read a key's last use (`RemoteKey.last_used_at`, for provider types whose
`ProviderKind.reports_usage` is true; a listing that omits the field counts as "unknown", never
as "never used"):

- **retiring a deposed key** (`retirement_rule`, `deposed_verdict`): the planner asks whether the
  old half of a rotation may be revoked now, under `rotation: {grace, unused_for, on_grace_end}`;
- **idle keys** (`usage_rows`, `idle_rows`): every managed and deposed key with its last use, and
  those unused for at least a threshold (`keyform report --idle 90d`);
- **unmanaged keys** (`unmanaged_rows`): remote keys that no state tracks, oldest activity first,
  each with the `keyform import` command that adopts it (`keyform report --unmanaged`).

`idle_for` / `key_idle_for` are the building blocks for a `max_idle` policy rule: how long a key
has been unused, or None when that cannot be known.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from datetime import datetime, timedelta, timezone
from typing import Any

from keyform import redact
from keyform.durations import format_duration, format_time, maybe_time, parse_duration, parse_time
from keyform.model import KeySpec
from keyform.records import record
from keyform.remote import SKEW_NOTED, RemoteKey, RemoteSnapshot
from keyform.state import DeposedKey, State
from keyform.typeregistry import TypeLoadError, find_provider_type

WARNING = "WARNING: "  # the prefix of a plan note that renderers show as a warning

# ----------------------------------------------------------------------------------- the basics


def reports_usage(provider_type: str) -> bool:
    """Whether listings of this provider type say when each key was last used."""
    try:
        k = find_provider_type(provider_type)
    except TypeLoadError:
        return False
    return k is not None and k.reports_usage


_time = maybe_time  # None for a missing or unreadable time

SKEW_NOISE = 5.0  # seconds: a Date header is in whole seconds, sent before its reply arrived (and a busy
# client may read it seconds later): a lag under this is not corrected


def on_our_clock(when: datetime | None, offset: float | None) -> datetime | None:
    """An API's time on keyform's clock, when that API's clock is behind ours (`offset`, the API's
    clock minus ours, from `RemoteSnapshot.clock_offset`, below `-SKEW_NOISE`): later by the lag.
    Otherwise as it is: a clock ahead of ours makes a key look used more recently, never unused
    longer than it is. So no clock can make keyform revoke a key earlier than both clocks agree."""
    if when is None or offset is None or offset > -SKEW_NOISE:
        return when
    try:
        return when - timedelta(seconds=offset)
    except OverflowError:
        return datetime.max.replace(tzinfo=timezone.utc)


def skew_note(instance: str, provider_type: str, offset: float | None) -> str | None:
    """A plan (and report) note for an instance whose type reports usage and whose clock is
    `SKEW_NOTED` or more away from keyform's; None otherwise."""
    if offset is None or abs(offset) < SKEW_NOTED or not reports_usage(provider_type):
        return None
    lag = format_duration(timedelta(minutes=round(offset / 60)))  # (a Date reads ~1 s behind: 3h, not 2h)
    if offset < 0:
        return (f"{instance}: its clock is {lag} behind keyform's (the Date of its listing): keyform reads "
                f"its last-use times {lag} later, so no key looks unused longer than it is")
    return (f"{instance}: its clock is {lag} ahead of keyform's (the Date of its listing): its keys may "
            "look used more recently than they were, and an old key waits longer for `unused_for`")


def clock_note(snapshot: RemoteSnapshot, instance: str) -> str | None:
    """The note of an instance whose clock check was skipped (`InstanceSnapshot.clock_note`)."""
    snap = snapshot.instances.get(instance)
    return snap.clock_note if snap is not None else None


def idle_for(last_used: datetime | None, since: datetime | None, now: datetime) -> timedelta | None:
    """How long a key has gone unused at `now`: since its last use, or, never used, since `since`
    (its creation). None when neither is known. Never negative (a clock ahead of ours counts as now)."""
    start = max(last_used, since) if last_used is not None and since is not None else last_used or since
    if start is None:
        return None
    return max(now - start, timedelta(0))


def key_idle_for(remote: RemoteKey | None, provider_type: str, now: datetime,
                 created_at: str | None = None, offset: float | None = None) -> timedelta | None:
    """`idle_for` of a listed key, or None when its provider does not report usage, the listing did
    not carry the field, or the key was not listed. The rule word `max_idle: 90d` is
    `idle is not None and idle >= 90d`. `offset`: its API's clock (`on_our_clock`)."""
    if remote is None or not remote.usage_reported or not reports_usage(provider_type):
        return None
    return idle_for(on_our_clock(_time(remote.last_used_at), offset),
                    on_our_clock(_time(remote.created_at or created_at), offset), now)


def _ago(delta: timedelta) -> str:
    return "just now" if delta < timedelta(seconds=1) else f"{format_duration(delta)} ago"


# ------------------------------------------------------------------------- retiring deposed keys


@record
class RetirementRule:
    """When a deposed key may be revoked: at `grace_end` at the latest (unless `keep` and still in
    use), earlier once unused for `unused_for` (None: fixed grace, the rule before usage data)."""

    grace_end: datetime
    unused_for: timedelta | None = None
    keep: bool = False


@record
class DeposedVerdict:
    """Revoke now (with `reasons`), or wait; `notes` explain the wait or warn (prefix WARNING)."""

    revoke: bool
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def own_expiry(rk: RemoteKey | None, grace_end: datetime, now: datetime, *, keep: bool = False) -> str:
    """What a waiting deposed key's note adds about its own expiry (as its API lists it): it ends
    the key whatever its grace says, so a note that promised the grace's end (or, with
    `on_grace_end: keep`, as long as the key is in use) must say when it comes first. "" when the
    key does not expire, or only after all the note says it waits for."""
    expires = maybe_time(rk.expires_at) if rk is not None else None
    if expires is None or expires <= now:
        return ""
    if expires < grace_end:
        when = "before its grace ends"
    elif keep:
        when = "however long it is kept"
    else:
        return ""
    return (f"; it expires {format_time(expires)} (in {format_duration(expires - now)}), {when}: whatever still "
            "uses it stops working then")


def retirement_rule(dep: DeposedKey, spec: KeySpec | None) -> RetirementRule:
    """The manifest's current rotation rule for the address while it is declared on the same
    provider instance (so `on_grace_end: keep` → `revoke` takes effect at the next plan); else the
    rule recorded when the key was deposed. The grace cap is always the recorded `revoke_after`."""
    grace_end = parse_time(dep.revoke_after)
    if spec is not None and spec.provider == dep.provider:
        rot = spec.rotation
        return RetirementRule(grace_end, rot.unused_for, rot.unused_for is not None and rot.on_grace_end == "keep")
    unused_for = parse_duration(dep.unused_for) if dep.unused_for else None
    return RetirementRule(grace_end, unused_for, unused_for is not None and dep.on_grace_end == "keep")


def deposed_verdict(dep: DeposedKey, rule: RetirementRule, snapshot: RemoteSnapshot,
                    now: datetime) -> DeposedVerdict:
    """Decide a deposed key under a usage rule (`rule.unused_for` set).

    Revoke once it has been unused for `unused_for`, measured from the later of its last use and
    the replacement (`deposed_at`); at `grace_end` at the latest, with a loud warning when it is
    still in use then, unless `keep`: then keep it and warn on every plan until it is unused.
    Without usage data (refresh disabled, listing failed, field absent) this is the fixed grace."""
    assert rule.unused_for is not None
    unused_for = rule.unused_for
    label = f"{dep.address} (deposed {dep.remote_id})"
    # a key the listing leaves out (gone, or a capped or paginated listing) is judged like one whose
    # usage is unknown: the fixed grace, as without unused_for; its revoke at the grace's end finds
    # it gone or revokes it
    _, rk = snapshot.lookup(dep.provider, dep.remote_id)
    offset = snapshot.clock_offset(dep.provider)
    if rk is not None and (rk.revoked or rk.expired):
        return DeposedVerdict(True, ("already revoked remotely" if rk.revoked else "already expired",))
    grace_over = now >= rule.grace_end
    grace_text = f"grace ended {_ago(now - rule.grace_end)}" if grace_over else ""
    deposed_at = parse_time(dep.deposed_at)

    if rk is None or not rk.usage_reported or not reports_usage(dep.provider_type):
        why = _unknown_usage(dep, rk, snapshot)
        if not grace_over:
            return DeposedVerdict(False, notes=(
                f"{label}: usage unknown ({why}); will be revoked after {dep.revoke_after} "
                f"(grace ends in {format_duration(rule.grace_end - now)})"
                f"{own_expiry(rk, rule.grace_end, now, keep=rule.keep)}",))
        if rule.keep and (rk is not None or not snapshot.lookup(dep.provider, dep.remote_id)[0]):
            # (a key its instance's listing leaves out is not kept: it may be gone for good)
            return DeposedVerdict(False, notes=(
                f"{WARNING}{label}: {grace_text} and its usage is unknown ({why}); "
                f"kept (on_grace_end: keep) until keyform can see it unused"
                f"{own_expiry(rk, rule.grace_end, now, keep=True)}",))
        return DeposedVerdict(True, (grace_text, f"usage unknown ({why})"))

    last_used = on_our_clock(_time(rk.last_used_at), offset)  # deposed_at is on keyform's clock
    idle_since = max(deposed_at, last_used) if last_used is not None else deposed_at
    idle = max(now - idle_since, timedelta(0))
    if last_used is None:
        usage = "never used"
    elif last_used <= deposed_at:
        usage = f"not used since the replacement {_ago(now - deposed_at)}"
    else:
        usage = f"last used {_ago(max(now - last_used, timedelta(0)))}"
    limit = format_duration(unused_for)
    if idle >= unused_for:
        return DeposedVerdict(True, (f"unused for {format_duration(idle)} (unused_for {limit}): {usage}",))
    by = format_time(idle_since + unused_for)
    if not grace_over:
        latest = (f"grace ends {dep.revoke_after}, then kept while in use (on_grace_end: keep)" if rule.keep
                  else f"at the latest {dep.revoke_after}")
        return DeposedVerdict(False, notes=(
            f"{label}: old key {dep.remote_id} {usage}; revoked once unused for {limit} (by {by}, {latest})"
            f"{own_expiry(rk, rule.grace_end, now, keep=rule.keep)}",))
    if last_used is not None and last_used > deposed_at:
        in_use = f"still in use {_ago(max(now - last_used, timedelta(0)))}: a consumer has not moved to the new secret"
    else:
        in_use = f"not yet unused for {limit} ({usage})"
    if rule.keep:
        return DeposedVerdict(False, notes=(
            f"{WARNING}{label}: {grace_text} and the old key is {in_use}; kept (on_grace_end: keep), "
            f"revoked once unused for {limit} (by {by} at the earliest)"
            f"{own_expiry(rk, rule.grace_end, now, keep=True)}",))
    return DeposedVerdict(True, (grace_text, in_use), notes=(
        f"{WARNING}{label}: revoked at the end of its grace although {in_use}",))


def _unknown_usage(dep: DeposedKey, rk: RemoteKey | None, snapshot: RemoteSnapshot) -> str:
    if not snapshot.refreshed:
        return "refresh disabled"
    if not reports_usage(dep.provider_type):
        return f"{dep.provider_type} does not report usage"
    if rk is None:
        known, _ = snapshot.lookup(dep.provider, dep.remote_id)
        return f"{dep.provider} did not list it" if known else f"{dep.provider} could not be listed"
    return f"{dep.provider} did not report last_used_at"


# ---------------------------------------------------------------------------------- idle keys

NOT_REPORTED = "provider does not report usage"


@record
class UsageRow:
    """One managed (or deposed) key and its last use. `last_used` is the instant, None when never
    used or unknown; `usage` says which in words: `last used 3d ago`, `never used`,
    `provider does not report usage`, `unknown (…)`. `idle` is None when it cannot be known."""

    address: str
    provider: str
    provider_type: str
    remote_id: str
    name: str | None
    created_at: str | None
    last_used: str | None
    usage: str
    idle: timedelta | None
    deposed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "provider": self.provider, "provider_type": self.provider_type,
                "remote_id": self.remote_id, "name": self.name, "created_at": self.created_at,
                "last_used_at": self.last_used, "usage": self.usage,
                "idle_seconds": None if self.idle is None else int(self.idle.total_seconds()),
                "deposed": self.deposed}


def _usage_row(address: str, provider: str, provider_type: str, remote_id: str, created_at: str | None,
               snapshot: RemoteSnapshot, now: datetime, *, deposed: bool = False) -> UsageRow:
    known, rk = snapshot.lookup(provider, remote_id)
    name = _label(rk) if rk is not None else None
    created = (rk.created_at if rk is not None and rk.created_at else None) or created_at
    if not reports_usage(provider_type):
        usage, idle, last = NOT_REPORTED, None, None
    elif not snapshot.refreshed:
        usage, idle, last = "unknown (refresh disabled)", None, None
    elif not known:
        usage, idle, last = f"unknown ({provider} could not be listed)", None, None
    elif rk is None:
        usage, idle, last = "unknown (gone remotely)", None, None
    elif not rk.usage_reported:
        usage, idle, last = f"unknown ({provider} did not report last_used_at)", None, None
    else:
        last, offset = rk.last_used_at, snapshot.clock_offset(provider)
        idle = key_idle_for(rk, provider_type, now, created_at, offset)
        last_time = on_our_clock(_time(last), offset)
        usage = f"last used {_ago(max(now - last_time, timedelta(0)))}" if last_time is not None else "never used"
    return UsageRow(address, provider, provider_type, remote_id, name, created, last, usage, idle, deposed)


def usage_rows(state: State, snapshot: RemoteSnapshot, now: datetime) -> list[UsageRow]:
    """Every managed key, then every deposed key, with its last use (addresses sorted)."""
    rows = [_usage_row(a, ks.provider, ks.provider_type, ks.remote_id, ks.created_at, snapshot, now)
            for a, ks in sorted(state.keys.items())]
    rows += [_usage_row(d.address, d.provider, d.provider_type, d.remote_id, d.deposed_at, snapshot, now,
                        deposed=True) for d in sorted(state.deposed, key=lambda d: (d.address, d.remote_id))]
    return rows


def idle_rows(rows: Iterable[UsageRow], threshold: timedelta) -> list[UsageRow]:
    """The keys unused for at least `threshold`, longest idle first. Keys whose usage is not
    reported or unknown are never idle (they are listed apart by the renderers, not guessed)."""
    idle = [r for r in rows if r.idle is not None and r.idle >= threshold]
    return sorted(idle, key=lambda r: (-r.idle.total_seconds() if r.idle else 0.0, r.address, r.remote_id))


# ----------------------------------------------------------------------------- unmanaged keys


@record
class UnmanagedRow:
    """A remote key no state tracks: where it is, what it is, and how to adopt it."""

    provider: str
    provider_type: str
    remote_id: str
    name: str
    created_at: str | None
    last_used: str | None
    usage: str
    expires_at: str | None
    address: str  # a suggested address (unique, valid); declare it in the manifests first
    import_command: str
    declared: bool = False  # `address` is a key the manifests declare, of this instance and name, not in the state

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "provider_type": self.provider_type, "remote_id": self.remote_id,
                "name": self.name, "created_at": self.created_at, "last_used_at": self.last_used,
                "usage": self.usage, "expires_at": self.expires_at, "suggested_address": self.address,
                "import_command": self.import_command}


@record
class UnmanagedReport:
    """Per provider instance (sorted), its unmanaged keys, most likely forgotten first. `skipped`
    counts the revoked or expired keys left out (they cannot authenticate); `notes` name the
    instances that could not be listed."""

    rows: Mapping[str, tuple[UnmanagedRow, ...]] = field(default_factory=dict)
    skipped: int = 0
    notes: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())


_ADDRESS_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def suggest_address(name: str, taken: set[str], suffixes: dict[str, int] | None = None) -> str:
    """A valid, unused address from a remote label: `CI bot (old)` → `ci-bot-old`, `-2` on clashes.
    `suffixes` (base → the next number to try), shared across calls, makes N keys of one name cost
    N tries, not N²/2 (20,000 keys named `temp` took 104 s)."""
    base = _ADDRESS_BAD.sub("-", name.strip().lower()).strip("-._")[:60] or "imported"
    if not base[0].isalnum():
        base = "k" + base
    n = suffixes.get(base, 1) if suffixes is not None else 1  # 1: the bare base
    candidate = base if n == 1 else f"{base}-{n}"
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    if suffixes is not None:
        suffixes[base] = n + 1
    taken.add(candidate)
    return candidate


def unmanaged_rows(snapshot: RemoteSnapshot, provider_types: Mapping[str, str],
                   tracked: Iterable[tuple[str, str]], now: datetime, *, taken: Iterable[str] = (),
                   files: Iterable[str] = (), state_path: str | None = None,
                   withheld: Callable[[str, str], bool] | None = None,
                   declared: Mapping[tuple[str, str], str] | None = None,
                   tracked_at: Iterable[tuple[str, str]] = ()) -> UnmanagedReport:
    """The listed keys that no state tracks. `provider_types` maps each provider instance to its
    type; `tracked` holds (provider_type, remote_id) pairs from every state that counts (with the
    postgres backend: every workspace in the database), and `tracked_at` (instance, remote_id) pairs
    of this workspace's state (`tracked_at_instance`: a key recorded under the type its instance
    had before a switch, say to the same API under `type: rest`, is still this workspace's); `taken`
    are addresses already in use (for
    suggestions); `files` are the `-f` arguments repeated in the import command. Revoked and
    expired keys are skipped (counted). Most likely forgotten first: the oldest last activity (last
    use, or creation when never used or not reported), then the oldest creation. A key for which
    `withheld(instance, id)` is true has an id that holds a secret (`recovery.withheld_matcher`):
    counted in a note, never shown. `declared` maps (instance, name) to a key the manifests declare
    there that no state holds: the first remote key of that name is suggested under that address
    (the key to import it into), not under a new one, which would leave the declared key to be created."""
    tracked_set = set(tracked)
    unclaimed = dict(declared or {})
    at_instance = set(tracked_at)
    taken_set = set(taken)
    suffixes: dict[str, int] = {}
    file_args = "".join(f" -f {shlex.quote(f)}" for f in files)
    if state_path:  # the state it was judged against, or the import goes elsewhere
        file_args += f" --state {shlex.quote(state_path)}"
    out: dict[str, tuple[UnmanagedRow, ...]] = {}
    skipped = 0
    hidden = 0
    notes: list[str] = []
    for instance in sorted(provider_types):
        ptype = provider_types[instance]
        snap = snapshot.instances.get(instance)
        if snap is None or snap.keys is None:
            notes.append(f"{instance}: {snap.note if snap and snap.note else 'not listed'}; "
                         "its unmanaged keys are unknown")
            continue
        found: list[tuple[datetime, datetime, RemoteKey]] = []
        for rk in snap.keys.values():
            if (ptype, rk.id) in tracked_set or (instance, rk.id) in at_instance:
                continue
            if withheld is not None and withheld(instance, rk.id):
                hidden += 1
                continue
            if rk.revoked or rk.expired:
                skipped += 1
                continue
            created = _time(rk.created_at) or now
            used = _time(rk.last_used_at) if rk.usage_reported and reports_usage(ptype) else None
            found.append((max(used, created) if used else created, created, rk))
        found.sort(key=lambda t: (t[0], t[1], t[2].id))
        rows = []
        for _, _, rk in found:
            name = _label(rk)
            own = unclaimed.pop((instance, name), None)
            address = own or suggest_address(name, taken_set, suffixes)
            usage = _usage_row("", instance, ptype, rk.id, rk.created_at, snapshot, now).usage
            rows.append(UnmanagedRow(
                provider=instance, provider_type=ptype, remote_id=rk.id, name=name, created_at=rk.created_at,
                last_used=rk.last_used_at if rk.usage_reported else None, usage=usage, expires_at=rk.expires_at,
                address=address,
                import_command=f"keyform import {shlex.quote(address)} {shlex.quote(rk.id)}{file_args}",
                declared=own is not None))
        if rows:
            out[instance] = tuple(rows)
    if hidden:
        notes.append(f"{hidden} key{'s' if hidden != 1 else ''} not shown: an interrupted apply's create left "
                     f"{'them' if hidden != 1 else 'it'} behind, with an id that holds a secret; `keyform plan` says "
                     "what becomes of each (revoked as an orphan, shown by a placeholder for its id, or kept "
                     "journaled and said why)")
    return UnmanagedReport(out, skipped, tuple(notes))


def _label(rk: RemoteKey) -> str:
    """A listed key's name or description (without a secret keyform knows: `redact.mask`), else its id."""
    for attr in ("name", "description"):
        value = rk.attrs.get(attr)
        if isinstance(value, str) and value.strip():
            return str(redact.mask(value))
    return rk.id


def tracked_at_instance(state: State) -> set[tuple[str, str]]:
    """(provider instance, remote_id) of every key and deposed key `state` holds: instance names are
    this workspace's own (another workspace's states are compared by type, `tracked_ids`)."""
    out = {(k.provider, k.remote_id) for k in state.keys.values()}
    out.update((d.provider, d.remote_id) for d in state.deposed)
    return out


def tracked_ids(states: Iterable[State]) -> set[tuple[str, str]]:
    """(provider_type, remote_id) of every key and deposed key these states hold."""
    out: set[tuple[str, str]] = set()
    for st in states:
        out.update((k.provider_type, k.remote_id) for k in st.keys.values())
        out.update((d.provider_type, d.remote_id) for d in st.deposed)
    return out


# ------------------------------------------------------------------------------ the report value


@record
class UsageReport:
    """What `keyform report --idle/--unmanaged` shows: every managed key's usage, the idle ones
    (when a threshold is given), and the unmanaged keys (when asked)."""

    generated_at: str
    rows: tuple[UsageRow, ...]
    idle_threshold: timedelta | None = None
    idle: tuple[UsageRow, ...] = ()
    unmanaged: UnmanagedReport | None = None
    notes: tuple[str, ...] = ()

    @property
    def not_judged(self) -> tuple[UsageRow, ...]:
        """Keys whose idleness cannot be known (usage not reported, or unknown)."""
        return tuple(r for r in self.rows if r.idle is None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"generated_at": self.generated_at, "notes": list(self.notes),
                               "keys": [r.to_json() for r in self.rows]}
        if self.idle_threshold is not None:
            out["idle"] = {"threshold_seconds": int(self.idle_threshold.total_seconds()),
                           "keys": [r.to_json() for r in self.idle],
                           "not_judged": [r.to_json() for r in self.not_judged]}
        if self.unmanaged is not None:
            out["unmanaged"] = {"instances": {name: [r.to_json() for r in rows]
                                              for name, rows in self.unmanaged.rows.items()},
                                "count": self.unmanaged.count,
                                "revoked_or_expired_not_shown": self.unmanaged.skipped,
                                "notes": list(self.unmanaged.notes)}
        return out


def build_report(state: State, snapshot: RemoteSnapshot, now: datetime, *, idle: timedelta | None = None,
                 unmanaged: bool = False, provider_types: Mapping[str, str] | None = None,
                 other_states: Iterable[State] = (), taken: Iterable[str] = (), files: Iterable[str] = (),
                 notes: Iterable[str] = (), state_path: str | None = None,
                 withheld: Callable[[str, str], bool] | None = None,
                 declared: Mapping[tuple[str, str], str] | None = None) -> UsageReport:
    """The whole report from plain values: this workspace's state, a snapshot of the provider
    instances (every instance of the manifests, for `unmanaged`), and the other workspaces' states
    that count as tracking keys. `withheld`, `declared`: see `unmanaged_rows`."""
    rows = tuple(usage_rows(state, snapshot, now))
    idle_keys = tuple(idle_rows(rows, idle)) if idle is not None else ()
    report_unmanaged = None
    if unmanaged:
        tracked = tracked_ids([state, *other_states])
        report_unmanaged = unmanaged_rows(snapshot, provider_types or {}, tracked, now,
                                          taken=set(taken) | set(state.keys), files=files, state_path=state_path,
                                          withheld=withheld, declared=declared,
                                          tracked_at=tracked_at_instance(state))
    types = {r.provider: r.provider_type for r in rows} | dict(provider_types or {})
    skews = [note for name in sorted(types)
             if (note := clock_note(snapshot, name) or skew_note(name, types[name], snapshot.clock_offset(name)))]
    return UsageReport(format_time(now), rows, idle, idle_keys, report_unmanaged, (*notes, *skews))
