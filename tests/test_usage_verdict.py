"""`keyform.usage.deposed_verdict` as a table: the usage rule's edge cases without a server."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from keyform.durations import format_time
from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot
from keyform.state import DeposedKey
from keyform.usage import RetirementRule, deposed_verdict, retirement_rule

T0 = datetime(2027, 1, 1, tzinfo=timezone.utc)
H = timedelta(hours=1)


def dep(provider_type: str = "questra", **kw: object) -> DeposedKey:
    return DeposedKey(**{"address": "k", "provider": "qp", "provider_type": provider_type, "remote_id": "ak_old",
                         "deposed_at": format_time(T0), "revoke_after": format_time(T0 + 2 * H), **kw})  # type: ignore[arg-type]


def snap(key: RemoteKey | None, listed: bool = True, refreshed: bool = True) -> RemoteSnapshot:
    keys = ({key.id: key} if key else {}) if listed else None
    return RemoteSnapshot({"qp": InstanceSnapshot(keys, None if listed else "boom")}, refreshed=refreshed)


def used(minutes: float | None, reported: bool = True, **kw: object) -> RemoteKey:
    at = None if minutes is None else format_time(T0 + timedelta(minutes=minutes))
    return RemoteKey(id="ak_old", attrs={"name": "k"}, last_used_at=at, usage_reported=reported, **kw)  # type: ignore[arg-type]


RULE = RetirementRule(T0 + 2 * H, H)
KEEP = RetirementRule(T0 + 2 * H, H, keep=True)


@pytest.mark.parametrize(("key", "rule", "at", "revoke", "says"), [
    (used(None), RULE, 59, False, "never used; revoked once unused for 1h (by 2027-01-01T01:00:00Z"),
    (used(None), RULE, 60, True, "unused for 1h (unused_for 1h): never used"),
    (used(-30), RULE, 60, True, "not used since the replacement 1h ago"),
    (used(30), RULE, 89, False, "last used 59m ago"),
    (used(30), RULE, 90, True, "unused for 1h (unused_for 1h): last used 1h ago"),
    (used(500), RULE, 60, False, "last used just now"),  # a last use ahead of our clock: in use now
    (used(110, revoked=True), RULE, 111, True, "already revoked remotely"),
    # not listed (gone, or a capped listing): the fixed grace, not a revoke at once (found by an
    # adversarial pass: the plan said "only forgotten" and apply revoked a live key days early)
    (None, RULE, 1, False, "usage unknown (qp did not list it); will be revoked after 2027-01-01T02:00:00Z"),
    (None, RULE, 120, True, "usage unknown (qp did not list it)"),
    (None, KEEP, 120, True, "usage unknown (qp did not list it)"),
    (used(None, reported=False), RULE, 119, False, "usage unknown (qp did not report last_used_at)"),
    (used(None, reported=False), RULE, 120, True, "usage unknown (qp did not report last_used_at)"),
    (used(None, reported=False), KEEP, 120, False, "kept (on_grace_end: keep) until keyform can see it unused"),
    (used(119), RULE, 120, True, "still in use 1m ago: a consumer has not moved to the new secret"),
    (used(119), KEEP, 120, False, "still in use 1m ago: a consumer has not moved to the new secret; kept"),
    (used(119), KEEP, 178, False, "kept (on_grace_end: keep)"),
    (used(119), KEEP, 179.5, True, "unused for 1h (unused_for 1h)"),
])
def test_verdict(key: RemoteKey | None, rule: RetirementRule, at: float, revoke: bool, says: str) -> None:
    verdict = deposed_verdict(dep(), rule, snap(key), T0 + timedelta(minutes=at))
    assert verdict.revoke is revoke
    assert any(says in text for text in verdict.reasons + verdict.notes), verdict


def test_without_a_listing_or_refresh_it_is_the_fixed_grace() -> None:
    for snapshot, why in ((snap(None, listed=False), "qp could not be listed"),
                          (RemoteSnapshot(), "refresh disabled")):
        wait = deposed_verdict(dep(), RULE, snapshot, T0 + 90 * timedelta(minutes=1))
        assert not wait.revoke and f"usage unknown ({why}); will be revoked after 2027-01-01T02:00:00Z" in wait.notes[0]
        assert deposed_verdict(dep(), RULE, snapshot, T0 + 2 * H).reasons == ("grace ended just now",
                                                                            f"usage unknown ({why})")


def test_a_recorded_rule_applies_once_the_address_left_the_manifests() -> None:
    rule = retirement_rule(dep(unused_for="90m", on_grace_end="keep"), None)
    assert rule == RetirementRule(T0 + 2 * H, timedelta(minutes=90), keep=True)
    assert retirement_rule(dep(), None) == RetirementRule(T0 + 2 * H)  # deposed before the rule: fixed grace
