"""An API whose clock is off keyform's (`InstanceSnapshot.clock_offset`, from the `Date` header of
its listing): its last-use times are read on keyform's clock when it is behind, so `unused_for`,
`report --idle` and `max_idle` never find a key unused longer than it is; a plan says when the lag
is a minute or more. Against the emulator with its `clock_offset` knob, as a real server on
127.0.0.1."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.project import ORG, Project
from keyform import operations
from keyform.durations import format_time, parse_time, utcnow
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.providers.http import HttpClient
from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot, clock_offset
from keyform.usage import SKEW_NOISE, key_idle_for, on_our_clock
from tests.rawserver import RawServer, ok
from tests.test_usage_rotation import Clock, converge, deposed_deletes, plan_only, revoked, rotated

BEHIND = -2 * 3600.0  # the API's clock, two hours behind keyform's


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def _server_time(clock: Clock, minutes: float, offset: float) -> str:
    """keyform's time `minutes` after its clock's base, as the API's clock (`offset` off) reads it."""
    return format_time(clock.base + timedelta(minutes=minutes, seconds=offset))


def test_an_old_key_in_use_is_not_revoked_early_when_the_api_clock_is_behind(
        project: Project, emu_control: EmulatorControl) -> None:
    """Used 30 min after its replacement, at 65 min it has been unused for 35 min, not 1 h. Read on
    the API's clock (two hours behind), the use looked older than the replacement, and keyform
    revoked a key its consumers still used."""
    clock = Clock()
    old, new = rotated(project, clock, "{grace: 7d, unused_for: 1h}")
    emu_control.faults(clock_offset=BEHIND)
    emu_control.use_questra(ORG, old, _server_time(clock, 30, BEHIND))

    clock.offset = timedelta(minutes=65)
    plan = plan_only(project, clock)
    assert not deposed_deletes(plan), plan.actionable
    assert ("qp: its clock is 2h behind keyform's (the Date of its listing): keyform reads its last-use "
            "times 2h later, so no key looks unused longer than it is") in plan.notes
    # (35 min, less the second or so by which a Date header reads behind: the lag is a little more than 2 h)
    assert any(re.search(f"old key {old} last used 3[45]m ago; revoked once unused for 1h", n) for n in plan.notes), \
        plan.notes
    converge(project, clock)
    assert not revoked(emu_control, old)

    clock.offset = timedelta(minutes=91)  # 61 min after that use
    [change] = deposed_deletes(plan_only(project, clock))
    assert change.remote_id == old and change.reasons == ("unused for 1h (unused_for 1h): last used 1h ago",)
    converge(project, clock)
    assert revoked(emu_control, old) and not revoked(emu_control, new)


def test_an_api_clock_ahead_is_said_and_never_makes_a_key_look_unused_longer(
        project: Project, emu_control: EmulatorControl) -> None:
    clock = Clock()
    old, _ = rotated(project, clock, "{grace: 7d, unused_for: 1h}")
    ahead = 3 * 3600.0
    emu_control.faults(clock_offset=ahead)
    emu_control.use_questra(ORG, old, _server_time(clock, 10, ahead))
    clock.offset = timedelta(minutes=65)  # 55 min after the use: read on its clock, "in the future"
    plan = plan_only(project, clock)
    assert not deposed_deletes(plan)
    assert any(n.startswith("qp: its clock is 3h ahead of keyform's") for n in plan.notes), plan.notes


def test_a_clock_in_step_is_neither_corrected_nor_noted(project: Project, emu_control: EmulatorControl) -> None:
    clock = Clock()
    old, _ = rotated(project, clock, "{grace: 7d, unused_for: 1h}")
    emu_control.use_questra(ORG, old, clock.at(5))
    clock.offset = timedelta(minutes=30)
    with operations.session(operations.Options(files=[str(project.manifest)], clock=clock, env=project.env),
                            "plan") as sess:
        plan = operations.plan(sess)
        offset = sess.providers.get("qp").clock_offset()  # type: ignore[attr-defined]
    assert offset is not None and -SKEW_NOISE < offset <= 1.0
    assert not [n for n in plan.notes if "its clock is" in n]
    assert any("last used 25m ago" in n for n in plan.notes), plan.notes


@pytest.fixture
def behind(tmp_path: Path, make_emulator: Callable[..., Emulator]) -> tuple[Project, EmulatorControl]:
    """A project against an emulator whose clock is two hours behind from the start (its keys'
    `created_at` too), and that emulator's control client."""
    emulator = make_emulator(clock_offset=BEHIND)
    return Project(tmp_path, emulator.url), EmulatorControl(emulator.url)


def _used_10_minutes_ago(project: Project, control: EmulatorControl) -> None:
    """Apply key `k`, created just now (on the API's clock: two hours ago); it is used ten minutes ago."""
    assert project.run("apply", "--auto-approve").exit_code == 0
    control.use_questra(ORG, project.remote_id("k"), format_time(utcnow() + timedelta(minutes=-10, seconds=BEHIND)))


def test_report_idle_reads_the_api_times_on_keyforms_clock(behind: tuple[Project, EmulatorControl]) -> None:
    """`keyform report --idle 1h` (exit 2 when a key is idle): a key used ten minutes ago on an API
    two hours behind is not idle, and the report says why its times moved."""
    project, control = behind
    project.questra("k:\n  provider: qp\n")
    _used_10_minutes_ago(project, control)
    res = project.run("report", "-f", str(project.manifest), "--idle", "1h", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["idle"]["keys"] == []
    assert any(n.startswith("qp: its clock is 2h behind keyform's") for n in doc["notes"]), doc["notes"]


def test_policy_max_idle_reads_the_api_times_on_keyforms_clock(behind: tuple[Project, EmulatorControl]) -> None:
    project, control = behind
    project.questra("k:\n  provider: qp\n", extra="policies:\n  no-idle:\n    require: {max_idle: 1h}\n")
    _used_10_minutes_ago(project, control)
    res = project.run("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.output
    assert "its clock is 2h behind keyform's" in res.output


# ----------------------------------------------------------------------------- the pieces, alone


def _client(date: str | None) -> HttpClient:
    headers = {"Date": date} if date is not None else {}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=[], headers=headers))
    return HttpClient("qp", "http://127.0.0.1:9", {}, transport=transport)


@pytest.mark.parametrize("date", [
    None, "", "yesterday", "Mon, 99999999999999999999 Jan 2020 00:00:00 GMT", "Mon, 01 Jan 10000 00:00:00 GMT",
    "Thu, 01 Jan 1970 00:00:00 +9999", "\x00",
])
def test_a_missing_or_unreadable_date_header_gives_no_offset(date: str | None) -> None:
    client = _client(date)
    assert client.call("GET", "/api-keys", "list").status_code == 200
    assert client.clock_offset() is None and clock_offset(client) is None


@pytest.mark.parametrize("date", [
    "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "Tue, 15 Nov 1994 08:12:31 GMT" * 200,
])
def test_an_absurd_date_header_is_a_bounded_offset_that_only_delays_a_verdict(date: str) -> None:
    client = _client(date)
    client.call("GET", "/api-keys", "list")
    offset = clock_offset(client)
    assert offset is not None and abs(offset) <= 10 * 366 * 86400.0
    used = parse_time("9999-12-31T00:00:00Z")  # an API's time at the edge, read later still: no overflow
    assert on_our_clock(used, offset) >= used  # type: ignore[operator]


@pytest.mark.parametrize("date", [b"Mon, 99999999999999999999 Jan 2020 00:00:00 GMT", b"\xff\xfe not a date",
                                  b"Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_listing_with_a_hostile_date_over_a_real_socket_plans_as_usual(tmp_path: Path, date: bytes) -> None:
    """A server on 127.0.0.1 that answers its listing with an unreadable or absurd Date: the plan
    is made as usual, with no traceback; an absurd but readable Date is at most ten years off."""
    listing = json.dumps([{"id": "ak_1", "name": "k", "created_at": "2026-01-01T00:00:00Z",
                           "expires_at": None, "revoked": False, "last_used_at": None}]).encode()
    server = RawServer(lambda n, request: ok(listing, b"Date: " + date + b"\r\n"))
    try:
        project = Project(tmp_path, server.url)
        project.questra("k:\n  provider: qp\n  rotation: {grace: 7d, unused_for: 1h}\n")
        res = project.run("plan")
        assert res.exit_code == 0, res.output
        assert "Traceback" not in res.output and "internal error" not in res.output
        if date.startswith(b"Fri, 31 Dec 9999"):
            assert "qp: its clock is 3660d ahead of keyform's" in res.stdout  # (clamped: ten years)
        else:
            assert "its clock is" not in res.stdout
    finally:
        server.close()


def test_a_date_header_gives_the_api_clock_minus_ours() -> None:
    when = datetime.now(timezone.utc) - timedelta(hours=2)
    client = _client(when.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert client.clock_offset() is None  # no reply yet
    client.call("GET", "/api-keys", "list")
    offset = client.clock_offset()
    assert offset is not None and -7202 < offset < -7198


class _PluginProvider:
    def __init__(self, value: Any) -> None:
        self.value = value

    def clock_offset(self) -> Any:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("-7200", None), (True, None), (float("nan"), None), (RuntimeError("boom"), None),
    (float("-inf"), None), (float("inf"), None), (-7200, -7200.0), (1e300, 10 * 366 * 86400.0),
])
def test_a_plugins_clock_offset_is_optional_and_checked(value: Any, expected: float | None) -> None:
    assert clock_offset(_PluginProvider(value)) == expected
    assert clock_offset(object()) is None


def test_on_our_clock_moves_only_a_lagging_apis_times() -> None:
    t = parse_time("2026-01-01T12:00:00Z")
    assert on_our_clock(t, None) == t and on_our_clock(None, -7200) is None
    assert on_our_clock(t, 3600) == t  # ahead: as it is
    assert on_our_clock(t, -(SKEW_NOISE - 1)) == t  # within the Date header's own imprecision
    assert on_our_clock(t, -7200) == t + timedelta(hours=2)
    assert on_our_clock(datetime.max.replace(tzinfo=timezone.utc), -7200) == datetime.max.replace(tzinfo=timezone.utc)


def test_idle_and_usage_rows_use_the_instances_offset() -> None:
    now = parse_time("2026-01-01T12:00:00Z")
    used = "2026-01-01T09:50:00Z"  # on an API clock two hours behind: ten minutes ago
    rk = RemoteKey("id1", {"name": "k"}, created_at="2025-01-01T00:00:00Z", last_used_at=used, usage_reported=True)
    assert key_idle_for(rk, "questra", now) == timedelta(hours=2, minutes=10)
    assert key_idle_for(rk, "questra", now, offset=BEHIND) == timedelta(minutes=10)
    snapshot = RemoteSnapshot({"qp": InstanceSnapshot({"id1": rk}, clock_offset=BEHIND)}, refreshed=True)
    assert snapshot.clock_offset("qp") == BEHIND and snapshot.clock_offset("other") is None


@pytest.mark.parametrize("value", ["-7200", 1e12, True, None])
def test_the_emulators_clock_offset_knob_refuses_what_is_no_offset(emu_control: EmulatorControl, value: Any) -> None:
    from keyform.emulator.client import ControlError

    with pytest.raises(ControlError, match="400 bad_request: clock_offset must be"):
        emu_control.faults(clock_offset=value)
    assert emu_control.faults()["clock_offset"] == 0


def test_the_inventory_report_says_the_api_clock_is_off(behind: tuple[Project, EmulatorControl]) -> None:
    """Noticed by review 110: `keyform report` shows the API's own last-use times, and said nothing
    of a clock two hours off, which `plan` and `report --idle` note."""
    project, control = behind
    project.questra("k:\n  provider: qp\n")
    _used_10_minutes_ago(project, control)
    res = project.run("report", "-f", str(project.manifest))
    assert res.exit_code == 0, res.output
    assert "qp: its clock is 2h behind keyform's (the Date of its listing)" in res.stdout, res.stdout
