"""`rotation: {grace, unused_for, on_grace_end}` against the emulator with a moved clock: the old key
of a rotation is revoked at the first apply where it has been unused for `unused_for` (from the
later of its last use and the replacement), never later than `grace`, unless `on_grace_end: keep`."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.project import ORG, Project
from keyform import operations
from keyform.durations import format_duration, format_time, parse_time, utcnow
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.plan import Plan
from tests.conftest import loopback_client


class Clock:
    def __init__(self) -> None:
        self.base = utcnow().replace(microsecond=0)
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return self.base + self.offset

    def at(self, minutes: float) -> str:
        return format_time(self.base + timedelta(minutes=minutes))


def _opts(project: Project, clock: Clock) -> Any:
    return operations.Options(files=[str(project.manifest)], clock=clock, env=project.env)


def converge(project: Project, clock: Clock, replace: tuple[str, ...] = ()) -> Plan:
    with operations.session(_opts(project, clock), "apply") as sess:
        plan = operations.plan(sess, replace=replace)
        report = operations.apply(sess, plan)
        assert report.ok, report.failed
        return plan


def plan_only(project: Project, clock: Clock, refresh: bool = True) -> Plan:
    with operations.session(_opts(project, clock), "plan") as sess:
        return operations.plan(sess, refresh_remote=refresh)


def revoked(control: EmulatorControl, key_id: str) -> bool:
    return bool({k["id"]: k["revoked"] for k in control.questra_keys(ORG)}[key_id])


def mark_used(control: EmulatorControl, key_id: str, at: str) -> None:
    control.use_questra(ORG, key_id, at)


def rotated(project: Project, clock: Clock, rotation: str) -> tuple[str, str]:
    """Create `k`, then replace it at clock +0; returns (old id, new id)."""
    project.questra(f"k:\n  provider: qp\n  rotation: {rotation}\n")
    converge(project, clock)
    old = project.remote_id("k")
    converge(project, clock, replace=("k",))
    return old, project.remote_id("k")


def deposed_deletes(plan: Plan) -> list[Any]:
    return [c for c in plan.actionable if c.deposed]


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def test_old_key_used_5m_after_the_replacement_survives_30m_and_is_revoked_after_65m(
        project: Project, emu_control: EmulatorControl) -> None:
    clock = Clock()
    old, new = rotated(project, clock, "{grace: 7d, unused_for: 1h}")
    assert old != new
    deposed = project.state()["deposed"]
    assert deposed == [{**deposed[0], "unused_for": "1h", "on_grace_end": "revoke"}]
    import json

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "state.schema.json").read_text())
    jsonschema.validate(project.state(), schema)
    mark_used(emu_control, old, clock.at(5))

    clock.offset = timedelta(minutes=30)
    plan = plan_only(project, clock)
    assert not plan.has_changes
    assert f"k (deposed {old}): old key {old} last used 25m ago; revoked once unused for 1h " \
           f"(by {clock.at(65)}, at the latest {format_time(clock.base + timedelta(days=7))})" in plan.notes
    converge(project, clock)
    assert not revoked(emu_control, old)

    clock.offset = timedelta(minutes=64, seconds=59)
    converge(project, clock)
    assert not revoked(emu_control, old)

    clock.offset = timedelta(minutes=65)
    [change] = deposed_deletes(plan_only(project, clock))
    assert change.remote_id == old and change.reasons == ("unused for 1h (unused_for 1h): last used 1h ago",)
    converge(project, clock)
    assert revoked(emu_control, old) and not revoked(emu_control, new)
    assert project.state()["deposed"] == []
    assert not plan_only(project, clock).has_changes


def test_old_key_never_used_after_the_replacement_is_revoked_at_1h(
        project: Project, emu_control: EmulatorControl) -> None:
    clock = Clock()
    old, _ = rotated(project, clock, "{grace: 7d, unused_for: 1h}")
    mark_used(emu_control, old, clock.at(-10))  # used before the replacement only

    clock.offset = timedelta(minutes=59)
    plan = plan_only(project, clock)
    assert not deposed_deletes(plan)
    assert any("not used since the replacement 59m ago; revoked once unused for 1h" in n for n in plan.notes)
    converge(project, clock)
    assert not revoked(emu_control, old)

    clock.offset = timedelta(hours=1)
    [change] = deposed_deletes(plan_only(project, clock))
    assert change.reasons == ("unused for 1h (unused_for 1h): not used since the replacement 1h ago",)
    converge(project, clock)
    assert revoked(emu_control, old)


def test_grace_caps_it_with_a_loud_warning_when_the_old_key_is_still_in_use(
        project: Project, emu_control: EmulatorControl) -> None:
    clock = Clock()
    old, _ = rotated(project, clock, "{grace: 2h, unused_for: 1h}")
    mark_used(emu_control, old, clock.at(90))
    clock.offset = timedelta(minutes=100)
    plan = plan_only(project, clock)
    assert not deposed_deletes(plan)
    assert any(f"revoked once unused for 1h (by {clock.at(150)}, at the latest {clock.at(120)})" in n
               for n in plan.notes), plan.notes

    mark_used(emu_control, old, clock.at(118))
    clock.offset = timedelta(minutes=120)
    plan = plan_only(project, clock)
    [change] = deposed_deletes(plan)
    assert change.reasons == ("grace ended just now",
                              "still in use 2m ago: a consumer has not moved to the new secret")
    warning = f"WARNING: k (deposed {old}): revoked at the end of its grace although still in use 2m ago: " \
              "a consumer has not moved to the new secret"
    assert warning in plan.notes
    from keyform.render.markdown import render_markdown
    from keyform.render.text import render_text

    assert "\nWarning: k (deposed " in "\n" + render_text(plan) and "Note: WARNING" not in render_text(plan)
    assert f"> **Warning:** `k (deposed {old}): revoked at the end of its grace" in render_markdown(plan)
    converge(project, clock)
    assert revoked(emu_control, old)


def test_on_grace_end_keep_keeps_the_old_key_in_use_and_warns_on_every_plan(
        project: Project, emu_control: EmulatorControl) -> None:
    clock = Clock()
    old, _ = rotated(project, clock, "{grace: 2h, unused_for: 1h, on_grace_end: keep}")
    mark_used(emu_control, old, clock.at(115))
    for minutes in (120, 150, 174):
        clock.offset = timedelta(minutes=minutes)
        plan = plan_only(project, clock)
        assert not deposed_deletes(plan)
        [warning] = [n for n in plan.notes if n.startswith("WARNING: ")]
        assert f"the old key is still in use {minutes - 115}m ago: a consumer has not moved to the new secret; " \
               f"kept (on_grace_end: keep), revoked once unused for 1h (by {clock.at(175)}" in warning
        converge(project, clock)
        assert not revoked(emu_control, old)
    clock.offset = timedelta(minutes=175)
    [change] = deposed_deletes(plan_only(project, clock))
    assert change.reasons == ("unused for 1h (unused_for 1h): last used 1h ago",)
    converge(project, clock)
    assert revoked(emu_control, old)


def test_a_consumer_calling_with_the_old_secret_keeps_it_alive_then_is_refused_after_revocation(
        project: Project, emulator: Emulator, emu_control: EmulatorControl) -> None:
    """No control call: the consumer's own request (authenticated with the old secret) is the use.
    keyform's clock starts a minute behind the emulator's, so that use is 1 min after the replacement."""
    clock = Clock()
    clock.base -= timedelta(minutes=1)
    project.questra("k:\n  provider: qp\n  rotation: {grace: 1d, unused_for: 1h}\n")
    converge(project, clock)
    old, old_secret = project.remote_id("k"), project.sink()["K"]
    converge(project, clock, replace=("k",))

    def consumer(secret: str) -> httpx.Response:
        with loopback_client(emulator.url, {"Authorization": f"Bearer {secret}", "X-Org-Id": ORG}) as http:
            return http.get("/api-keys")

    assert consumer(old_secret).status_code == 200  # a consumer that has not moved yet
    used = parse_time(next(k["last_used_at"] for k in emu_control.questra_keys(ORG) if k["id"] == old))
    used = used.replace(microsecond=0)  # keyform reads listed times to the second
    clock.offset = timedelta(minutes=30)
    # the use was 29 min before keyform's now, less the seconds the converges took after the clock
    # was read (whole seconds: 28m59s reads "28m"), so the note is worded from the recorded time
    assert timedelta(minutes=28) < clock() - used <= timedelta(minutes=29)
    plan = plan_only(project, clock)
    ago = f"last used {format_duration(clock() - used)} ago"
    assert not deposed_deletes(plan) and any(ago in n for n in plan.notes), plan.notes
    clock.offset = timedelta(minutes=62)
    converge(project, clock)
    assert revoked(emu_control, old)
    refused = consumer(old_secret)
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    assert consumer(project.sink()["K"]).status_code == 200  # the new secret works


def test_without_usage_data_it_falls_back_to_the_grace(project: Project, emu_control: EmulatorControl) -> None:
    clock = Clock()
    old, _ = rotated(project, clock, "{grace: 2h, unused_for: 1h}")
    clock.offset = timedelta(hours=1, minutes=30)
    plan = plan_only(project, clock, refresh=False)
    assert not deposed_deletes(plan)
    assert any(f"k (deposed {old}): usage unknown (refresh disabled); will be revoked after {clock.at(120)}" in n
               for n in plan.notes), plan.notes
    clock.offset = timedelta(hours=2)
    [change] = deposed_deletes(plan_only(project, clock, refresh=False))
    assert change.reasons == ("grace ended just now", "usage unknown (refresh disabled)")


def test_the_manifests_current_rule_wins_so_keep_can_be_turned_off(
        project: Project, emu_control: EmulatorControl) -> None:
    clock = Clock()
    old, _ = rotated(project, clock, "{grace: 2h, unused_for: 1h, on_grace_end: keep}")
    mark_used(emu_control, old, clock.at(119))
    clock.offset = timedelta(minutes=121)
    assert not deposed_deletes(plan_only(project, clock))
    project.questra("k:\n  provider: qp\n  rotation: {grace: 2h, unused_for: 1h}\n")
    [change] = deposed_deletes(plan_only(project, clock))
    assert change.reasons[1].startswith("still in use 2m ago")
    # with the key gone from the manifests, the rule recorded at deposition applies (keep)
    project.questra("other:\n  provider: qp\n")
    plan = plan_only(project, clock)
    assert not deposed_deletes(plan) and any(n.startswith("WARNING: ") for n in plan.notes)


@pytest.mark.parametrize(("keys", "message"), [
    ("k:\n  provider: qp\n  rotation: {unused_for: 1h}\n",
     "keys.k.rotation.unused_for: 1h must be shorter than grace (not set)"),
    ("k:\n  provider: qp\n  rotation: {grace: 1h, unused_for: 1h}\n",
     "keys.k.rotation.unused_for: 1h must be shorter than grace (1h)"),
    ("k:\n  provider: qp\n  rotation: {grace: 1h, unused_for: 0s}\n",
     "keys.k.rotation.unused_for: must be longer than 0"),
    ("k:\n  provider: qp\n  rotation: {grace: 1d, on_grace_end: keep}\n",
     "keys.k.rotation.on_grace_end: keep needs unused_for"),
    ("k:\n  provider: qp\n  rotation: {grace: 1d, unused_for: 1h, on_grace_end: forever}\n",
     "on_grace_end"),
])
def test_bad_usage_rules_are_file_line_errors(project: Project, keys: str, message: str) -> None:
    project.questra(keys)
    result = project.run("validate")
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert "keyform.yaml:" in result.stderr and "Traceback" not in result.output


def test_unused_for_on_a_provider_without_usage_data_is_refused(project: Project) -> None:
    project.write("""\
        version: 1
        providers:
          tq: {type: textql, base_url: "{url}", token: {env: TEXTQL_TOKEN}}
        keys:
          t:
            provider: tq
            hosts: [api.example.com]
            api_provider: questra
            auth_value: {env: T}
            rotation: {grace: 1d, unused_for: 1h}
        """)
    result = project.run("validate")
    assert result.exit_code == 1
    assert "keyform.yaml:10: keys.t.rotation.unused_for: textql does not report when a key was last used" \
        in result.stderr, result.stderr


@pytest.mark.parametrize(("field", "value", "message"), [
    # worded by the state schema check (keyform.statecheck): the field is named, the value quoted
    ("unused_for", "soon", 'field "deposed[0].unused_for": \'soon\' does not match'),
    ("on_grace_end", "never", 'field "deposed[0].on_grace_end": \'never\' is not one of'),
    ("unused_for", "99999999999999w", 'field "deposed[0].unused_for": "99999999999999w" is not a duration keyform can use'),
    ("unused_for", 3600, 'field "deposed[0].unused_for": 3600 is not of type'),
    ("deposed_at", "yesterday", 'field "deposed[0].deposed_at": \'yesterday\' does not match'),
])
def test_a_state_with_a_bad_usage_rule_is_refused_and_left_intact(
        project: Project, field: str, value: object, message: str) -> None:
    import json

    clock = Clock()
    rotated(project, clock, "{grace: 7d, unused_for: 1h}")
    doc = project.state()
    doc["deposed"][0][field] = value
    text = json.dumps(doc)
    project.state_path.write_text(text)
    result = project.run("plan")
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output
    assert project.state_path.read_text() == text
