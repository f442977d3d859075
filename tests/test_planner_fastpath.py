"""Property: the planner's shortcut for a key that agrees with its record and its listing
(`planner._quiet`) never changes a plan. For one key near that common shape, each field of its
spec, state record and listing perturbed or not, and the clock anywhere around its expiry and age,
the plan made with the shortcut equals the plan made by `_decide` alone, and the shortcut is taken
only where `_decide` finds nothing at all."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyform import planner
from keyform.errors import KeyformError
from keyform.kinds import kind
from keyform.model import EnvRef, Expiry, KeySpec, Rotation, SinkTarget
from keyform.plan import Action, Plan
from keyform.planner import PlanInputs, _decide, _Kind, _quiet, plan
from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot
from keyform.state import KeyState
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
        mp.setattr(planner, "_quiet", lambda *a: False)
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
