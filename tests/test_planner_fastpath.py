"""Property: the planner's shortcut for a key that agrees with its record and its listing
(`planner._quiet`) never changes a plan. For one key near that common shape, each field of its
spec, state record and listing perturbed or not, and the clock anywhere around its expiry and age,
the plan made with the shortcut equals the plan made by `_decide` alone, and the shortcut is taken
only where `_decide` finds nothing at all."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyform import planner
from keyform.durations import format_time
from keyform.errors import KeyformError
from keyform.kinds import kind
from keyform.model import EnvRef, Expiry, KeySpec, Rotation, SecretOfRef, SecretRef, SinkTarget
from keyform.plan import Action, Plan
from keyform.planner import UNKNOWN_FINGERPRINT, PlanInputs, _decide, _Kind, _quiet, plan
from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot
from keyform.state import DeposedKey, KeyState, secret_of_fingerprint
from tests.factories import T0, expires_in, questra_key, recorded, state_with, textql_key, workspace

FP = "hmac-sha256:" + "ab" * 32


EDITS = ("attrs", "expiry_spec", "prevent_destroy", "rotation_requested", "sink", "fingerprints", "provider_type",
         "secret_in_sink", "expires_at", "expires_at_passed", "expires_at_other_form", "expires_at_bad",
         "created_at", "spec_attrs")
LISTINGS = ("same", "gone", "unlisted", "revoked", "expired", "attrs", "extra", "expires_none", "expires_soon",
            "expires_other_form")
EXPIRIES = ("never", "in", "at")
ROTATIONS = ((None, None), (timedelta(days=7), None), (None, timedelta(days=10)), (timedelta(days=7), timedelta(days=10)))
INPUTS = ("recorded", "changed", "unreadable")


def scenario(questra: bool, exp: str, rotation: tuple[timedelta | None, timedelta | None], edits: Sequence[str],
             listed: str, fingerprint: str, readable: bool, missing: bool, now: datetime) -> tuple[Any, ...]:
    """One key as recorded and listed, then `edits` made to its record (or its spec: `spec_attrs`)
    and its listing changed as `listed` says."""
    expiry = {"never": Expiry("never"), "in": expires_in(30),
              "at": Expiry("at", at=T0 + timedelta(days=20), text="2026-01-21T00:00:00Z")}[exp]
    rot = Rotation(before_expiry=rotation[0], max_age=rotation[1])
    if questra:
        spec = questra_key("k", expiry=expiry, rotation=rot)
    else:
        spec = dataclasses.replace(textql_key("k", auth=EnvRef("AUTH"), expiry=expiry), rotation=rot)
    ks = recorded(spec, "id-1", fingerprints={} if questra else {"auth_value": FP})
    if exp == "at":
        ks = dataclasses.replace(ks, expires_at="2026-01-21T00:00:00Z")
    changes: dict[str, Any] = {}
    for edit in edits:
        if edit == "spec_attrs":  # the manifests edited
            spec = dataclasses.replace(spec, attrs={**spec.attrs, ("name" if questra else "hosts"): ["x"]})
            continue
        name = edit if not edit.startswith("expires_at") else "expires_at"
        changes[name] = {
            "attrs": {**ks.attrs, ("name" if questra else "description"): "edited"},
            "expiry_spec": "in:60d", "prevent_destroy": not ks.prevent_destroy, "rotation_requested": True,
            "sink": SinkTarget("env", "OTHER") if ks.sink else SinkTarget("env", "NEW"),
            "fingerprints": {}, "provider_type": "textql" if questra else "questra", "secret_in_sink": False,
            "expires_at": None, "expires_at_passed": "2026-01-05T00:00:00Z",
            "expires_at_other_form": "2026-01-25T00:00:00+00:00", "expires_at_bad": "bad",
            "created_at": "2025-12-01T00:00:00Z",
        }[edit]
    ks = dataclasses.replace(ks, **changes)
    rk = RemoteKey(ks.remote_id, dict(ks.remote), created_at=ks.created_at, expires_at=ks.expires_at)
    rk = {"revoked": dataclasses.replace(rk, revoked=True), "expired": dataclasses.replace(rk, expired=True),
          "attrs": dataclasses.replace(rk, attrs={**rk.attrs, ("name" if questra else "hosts"): "other"}),
          "extra": dataclasses.replace(rk, attrs={**rk.attrs, "unknown_field": 1}),
          "expires_none": dataclasses.replace(rk, expires_at=None),
          "expires_soon": dataclasses.replace(rk, expires_at="2026-01-03T00:00:00Z"),
          "expires_other_form": dataclasses.replace(rk, expires_at="2026-01-31T00:00:00.000Z")}.get(listed, rk)
    keys = None if listed == "unlisted" else ({} if listed == "gone" else {rk.id: rk})
    snapshot = RemoteSnapshot({spec.provider: InstanceSnapshot(keys)}, refreshed=True)
    fp = {"recorded": FP, "changed": "hmac-sha256:other", "unreadable": None}[fingerprint]
    inputs = PlanInputs({} if questra else {"k": {"auth_value": fp}},
                        readable_sinks=frozenset({"env"}) if readable else frozenset(),
                        missing_secrets=frozenset({"k"}) if missing else frozenset())
    return spec, ks, snapshot, inputs, now


def _check(spec: KeySpec, ks: KeyState, snapshot: RemoteSnapshot, inputs: PlanInputs, now: datetime) -> bool:
    """The plan with the shortcut is the plan without it; True if the shortcut was taken."""
    ws, state = workspace(spec), state_with(ks)
    kd = _Kind.of(kind(spec.provider_type))
    try:
        quiet = _quiet(spec, ks, snapshot, now, inputs, kd)
    except ValueError:
        quiet = False  # (an unreadable time: `_decide` must raise the same, compared below)
    if quiet:  # taken only where `_decide` finds nothing at all
        assert _decide(spec, state, snapshot, now, inputs, kd, ws.sinks) == planner._Decision(Action.NOOP)
    fast = _plan_or_error(ws, state, snapshot, now, inputs=inputs)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(planner, "_quiet_changes", lambda *a: {})
        slow = _plan_or_error(ws, state, snapshot, now, inputs=inputs)
    assert fast == slow
    assert planner._Decision(Action.NOOP) == planner._QUIET  # (shared: never changed)
    return quiet


NOWS = [T0 + timedelta(days=d, microseconds=1) for d in (0, 1, 6, 14, 24, 31)] + [
    T0 + timedelta(days=23), T0 + timedelta(days=20)]  # (exactly at a before_expiry bound, at expires_at)


def test_each_single_difference_is_seen_as_the_full_decision_sees_it() -> None:
    taken = 0
    for questra, exp, rotation in itertools.product((True, False), EXPIRIES, ROTATIONS):
        for edit in (None, *EDITS):
            for listed in LISTINGS if edit is None else ("same",):
                for now in NOWS if edit is None or edit.startswith(("expires_at", "created_at")) else NOWS[1:5:3]:
                    taken += _check(*scenario(questra, exp, rotation, () if edit is None else (edit,), listed,
                                              "recorded", True, False, now))
        for fingerprint, readable, missing in (("changed", True, False), ("unreadable", True, False),
                                               ("recorded", False, False), ("recorded", True, True)):
            taken += _check(*scenario(questra, exp, rotation, (), "same", fingerprint, readable, missing, NOWS[1]))
    assert taken > 100  # (the shortcut is taken, where nothing differs)


@settings(max_examples=150, deadline=None)
@given(st.booleans(), st.sampled_from(EXPIRIES), st.sampled_from(ROTATIONS),
       st.lists(st.sampled_from(EDITS), max_size=2, unique=True), st.sampled_from(LISTINGS), st.sampled_from(INPUTS),
       st.booleans(), st.booleans(), st.integers(min_value=0, max_value=40 * 24))
def test_differences_combined_are_seen_as_the_full_decision_sees_them(
        questra: bool, exp: str, rotation: tuple[timedelta | None, timedelta | None], edits: list[str], listed: str,
        fingerprint: str, readable: bool, missing: bool, hours: int) -> None:
    _check(*scenario(questra, exp, rotation, edits, listed, fingerprint, readable, missing,
                     T0 + timedelta(hours=hours)))


def _plan_or_error(*args: Any, **kwargs: Any) -> Plan | str:
    try:
        return plan(*args, **kwargs)
    except (KeyformError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def test_the_shortcut_is_taken_for_a_key_as_recorded_and_listed() -> None:
    spec = questra_key("k", expiry=expires_in(30), rotation=Rotation(before_expiry=timedelta(days=7)))
    ks: KeyState = recorded(spec, "id-1")
    rk = RemoteKey(ks.remote_id, dict(ks.remote), created_at=ks.created_at, expires_at=ks.expires_at)
    snapshot = RemoteSnapshot({"qp": InstanceSnapshot({rk.id: rk})}, refreshed=True)
    kd = _Kind.of(kind("questra"))
    assert _quiet(spec, ks, snapshot, T0 + timedelta(days=1), PlanInputs(), kd)
    assert not _quiet(spec, ks, snapshot, T0 + timedelta(days=24), PlanInputs(), kd)  # within before_expiry


def _workspace_plan_args(seed: int) -> tuple[Any, ...]:
    """A random workspace of a few keys (sources, `secret_of` consumers, env-fed keys), each
    recorded as applied or not and one field of its record or listing perhaps changed; deposed keys
    feeding on sources; a random clock and `--replace`, `--target`, `--destroy`, `--revoke-old`."""
    r = random.Random(seed)
    specs: list[KeySpec] = []
    sources = [f"q{i}" for i in range(r.randint(1, 3))]
    for name in sources:
        exp = r.choice([Expiry("never"), expires_in(30),
                        Expiry("at", at=T0 + timedelta(days=20), text="2026-01-21T00:00:00Z")])
        rot = r.choice([Rotation(), Rotation(max_age=timedelta(days=10))]
                       + ([Rotation(before_expiry=timedelta(days=7))] if exp.kind == "in" else []))
        specs.append(questra_key(name, expiry=exp, rotation=rot, prevent_destroy=r.random() < 0.1))
    for i in range(r.randint(0, 3)):
        auth = SecretOfRef(r.choice(sources)) if r.random() < 0.7 else EnvRef("A")
        header: dict[str, SecretRef] | None = {"X-K": SecretOfRef(r.choice(sources))} if r.random() < 0.4 else None
        specs.append(textql_key(f"t{i}", auth=auth, secret_headers=header))
    specs += [textql_key(f"e{i}", auth=EnvRef("E")) for i in range(r.randint(0, 2))]
    ids = {s.address: f"id-{s.address}" for s in specs}
    records: list[KeyState] = []
    listed: dict[str, dict[str, RemoteKey]] = {}
    for s in specs:
        if r.random() < 0.2:
            continue  # not applied yet
        fps = {p: secret_of_fingerprint(ref.address, ids[ref.address]) if isinstance(ref, SecretOfRef) else FP
               for p, ref in s.secret_inputs.items()}
        ks = recorded(s, ids[s.address], fingerprints=fps)
        if s.expiry.kind == "at":
            ks = dataclasses.replace(ks, expires_at="2026-01-21T00:00:00Z")
        edit = r.randrange(8)
        edits: list[dict[str, Any]] = [{}, {}, {"rotation_requested": True}, {"secret_in_sink": False},
                                       {"fingerprints": {p: UNKNOWN_FINGERPRINT for p in fps}},
                                       {"attrs": {**ks.attrs, "x": 1}},
                                       {"sink": SinkTarget("env", "OTHER") if ks.sink else None},
                                       {"created_at": "2025-12-01T00:00:00Z"}]
        ks = dataclasses.replace(ks, **edits[edit])
        records.append(ks)
        live = RemoteKey(ks.remote_id, dict(ks.remote), created_at=ks.created_at, expires_at=ks.expires_at)
        listing = listed.setdefault(s.provider, {})
        rk = [live, live, live, dataclasses.replace(live, revoked=True), dataclasses.replace(live, expired=True), None,
              dataclasses.replace(live, expires_at="2026-01-03T00:00:00Z")][r.randrange(7)]
        if rk is not None:
            listing[rk.id] = rk
    if r.random() < 0.3:
        records.append(recorded(questra_key("zz"), "id-zz"))  # no longer declared
    state = state_with(*records)
    for ks in list(state.keys.values()):
        if r.random() < 0.2:
            state.deposed.append(DeposedKey(
                ks.address, ks.provider, ks.provider_type, f"old-{ks.address}", format_time(T0),
                format_time(T0 + timedelta(days=r.choice([0, 2, 9]))),
                fed_by=tuple(secret_of_fingerprint(q, ids[q]) for q in sources if r.random() < 0.3)))
    snapshot = RemoteSnapshot({p: InstanceSnapshot(None if r.random() < 0.1 else keys) for p, keys in listed.items()},
                              refreshed=True)
    inputs = PlanInputs(
        {s.address: {p: r.choice([FP] * 8 + [None, "hmac-sha256:other"]) for p, ref in s.secret_inputs.items()
                     if not isinstance(ref, SecretOfRef)} for s in specs},
        readable_sinks=frozenset({"env"}) if r.random() < 0.6 else frozenset(),
        missing_secrets=frozenset(a for a in ids if r.random() < 0.1))
    now = T0 + timedelta(days=r.choice([1, 5, 14, 21, 25, 31]), seconds=r.choice([0, 1]))
    both = [a for a in ids if a in state.keys]
    options: dict[str, Any] = {}
    if both and r.random() < 0.3:
        options["replace"] = r.sample(both, r.randint(1, len(both)))
    if r.random() < 0.2:
        options["targets"] = [r.choice(list(ids))]
    if r.random() < 0.1:
        options["destroy"] = True
    elif both and r.random() < 0.15:
        options["revoke_old"] = [r.choice(both)]
    return workspace(*specs), state, snapshot, now, inputs, options


def test_a_workspace_of_sources_and_consumers_plans_as_the_full_decisions_plan_it() -> None:
    """Keys `_quiet` passes share one decision (`_QUIET`) that `_propagate` replaces by the key's own
    before changing it (a quiet source whose consumer is re-issued and needs its secret), and the
    passes after it look only at the others: for workspaces of several keys with `secret_of`
    edges, held and deposed keys, and each of --replace, --target, --destroy and --revoke-old, the
    plan is the plan made by `_decide` for every key, and the shared decision is never changed."""
    for seed in range(500):
        ws, state, snapshot, now, inputs, options = _workspace_plan_args(seed)
        fast = _plan_or_error(ws, state, snapshot, now, inputs=inputs, **options)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(planner, "_quiet_changes", lambda *a: {})
            slow = _plan_or_error(ws, state, snapshot, now, inputs=inputs, **options)
        assert fast == slow, seed
        assert planner._Decision(Action.NOOP) == planner._QUIET, seed


@pytest.mark.parametrize("targets", [(), ("k2", "k3", "k4")])
@pytest.mark.parametrize("gone", [False, True])
@pytest.mark.parametrize("rest", ["update", "new", "replace"])
def test_many_keys_some_quiet_plan_as_without_the_shortcut(targets: tuple[str, ...], gone: bool, rest: str) -> None:
    """Keys passed by the shortcut (`_quiet_changes`) and keys `_decide` looks at, interleaved in
    the plan's order (an update only, so the quiet keys' changes are the ones the shortcut made;
    or a new key or a `--replace` too, so all are made again after `_propagate`), with or without
    a key the manifests dropped: the same plan, change for change and in the same order, as made
    without the shortcut."""
    specs = [textql_key(f"k{i}", description=f"key {i}") for i in range(6)]
    records = [recorded(s, f"id-{i}") for i, s in enumerate(specs)]
    specs[2] = dataclasses.replace(specs[2], attrs={**specs[2].attrs, "description": "edited"})  # an update
    dropped = [recorded(textql_key("k9"), "id-9")] if gone else []  # in the state only: deleted
    listing = {r.remote_id: RemoteKey(r.remote_id, dict(r.remote), created_at=r.created_at)
               for r in [*records, *dropped]}
    snapshot = RemoteSnapshot({"tq": InstanceSnapshot(listing)}, refreshed=True)
    ws = workspace(*specs, *([textql_key("k7")] if rest == "new" else []))
    state = state_with(*records, *dropped)
    replace = ["k4"] if rest == "replace" else []
    targets = (*targets, "k9") if targets and gone else targets
    fast = plan(ws, state, snapshot, T0 + timedelta(days=1), targets=targets, replace=replace)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(planner, "_quiet_changes", lambda *a: {})
        slow = plan(ws, state, snapshot, T0 + timedelta(days=1), targets=targets, replace=replace)
    assert fast == slow
    assert [c.action for c in fast.changes if c.address == "k2"] == [Action.UPDATE]
    assert [c.action for c in fast.changes if c.address == "k9"] == ([Action.DELETE] if gone else [])
