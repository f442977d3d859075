"""A key's life over months against the emulator, as a pipeline lives it: keyform's clock
(`operations.Options.clock`) and the emulated APIs' clock (the `clock_offset` knob) moved together,
never a sleep. Built-in providers and the same APIs as `type: rest` (examples/providers/)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from harness.project import Project
from keyform import operations
from keyform.durations import parse_time
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError
from keyform.model import ProviderConfig
from keyform.plan import Action, Plan
from keyform.providers import open_provider
from keyform.remote import CreateRequest, CreateResult, Provider
from tests.movedclock import MovedClock, converge, options, plan_only


def changes(plan: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.address, c.action.value, c.reasons) for c in plan.actionable]


@pytest.fixture(params=["builtin", "rest"])
def project(request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url, env={"ANA_TOKEN": "ana-credential"}, rest=request.param == "rest")


def textql_key(project: Project, expires_in: str) -> None:
    project.write(f"""
        version: 1
        providers:
          tq: {{type: textql, base_url: "{{url}}", token: {{env: TEXTQL_TOKEN}}}}
        keys:
          t:
            provider: tq
            description: Ana's access
            hosts: [api.questra.ai]
            api_provider: questra
            auth_value: {{env: ANA_TOKEN}}
            expires_in: {expires_in}
            rotation: {{before_expiry: 3d}}
        """)


def test_a_changed_expires_in_counts_from_the_key_s_creation_not_from_the_update(
        project: Project, emu_control: EmulatorControl) -> None:
    """The plan says `90d after creation → 60d after creation`; the update used to set 60 days
    from the apply instead, so a key 50 days old told `expires_in: 30d` lived 80 days, longer
    than the 60 it had. Now the update sets the creation + 60d, and a span already past replaces the key."""
    clock = MovedClock(emu_control)
    textql_key(project, "90d")
    converge(project, clock)
    first = project.remote_id("t")
    created = parse_time(project.state()["keys"]["t"]["created_at"])

    clock.move(days=20)
    textql_key(project, "60d")
    plan = plan_only(project, clock)
    [(_, action, reasons)] = changes(plan)
    assert action == "update" and reasons[0].startswith("expiry changed (to ")
    converge(project, clock)
    [listed] = [k for k in emu_control.textql_keys() if k["id"] == first]
    assert parse_time(listed["expiresAt"]) == created + timedelta(days=60)
    assert parse_time(project.state()["keys"]["t"]["expires_at"]) == created + timedelta(days=60)
    assert not plan_only(project, clock).has_changes

    # 50 days old, told 30d: its expiry would be 20 days ago; it is replaced, not extended
    clock.move(days=50)
    textql_key(project, "30d")
    [change] = plan_only(project, clock).actionable
    assert change.action is Action.REPLACE, change
    assert change.reasons == (f"expiry changed, and 30d after its creation "
                              f"({(created + timedelta(days=30)).strftime('%Y-%m-%dT%H:%M:%SZ')}) has passed",)
    converge(project, clock)
    new = project.remote_id("t")
    assert new != first and [k["id"] for k in emu_control.textql_keys()] == [new]
    expires = parse_time(project.state()["keys"]["t"]["expires_at"])
    assert abs(expires - (clock() + timedelta(days=30))) < timedelta(seconds=5)
    assert not plan_only(project, clock).has_changes


def test_an_updated_expiry_inside_before_expiry_replaces_the_key_at_once(
        project: Project, emu_control: EmulatorControl) -> None:
    """Updated to a time within `before_expiry`, the key was due the next plan: one apply updated
    it and the next replaced it. The rule is measured against the expiry the update would set."""
    clock = MovedClock(emu_control)
    textql_key(project, "90d")
    converge(project, clock)
    clock.move(days=28)
    textql_key(project, "30d")  # 2 days left, before_expiry 3d
    [change] = plan_only(project, clock).actionable
    assert change.action is Action.REPLACE and change.reasons[0].startswith("expiry changed (to "), change
    assert change.reasons[1] == "expires in 2d (< before_expiry 3d)", change.reasons


@pytest.mark.parametrize("rotation, waits", [
    ("{before_expiry: 7d, grace: 10d}", "will be revoked after {grace_end} (grace ends in 8d)"),
    ("{before_expiry: 7d, grace: 10d, unused_for: 1h, on_grace_end: keep}",
     "revoked once unused for 1h (by {by}, grace ends {grace_end}, then kept while in use (on_grace_end: keep))"),
])
def test_an_old_key_that_expires_before_its_grace_ends_is_said_so(
        project: Project, emu_control: EmulatorControl, rotation: str, waits: str) -> None:
    """Rotated 7 days before it expires, with a grace of 10 days, the old key expires 3 days before
    its grace ends: the plan said it lived until the grace's end (or, kept while in use, for as long
    as a consumer used it), and a consumer still on the old secret broke 3 days before any plan said."""
    clock = MovedClock(emu_control)
    project.questra(f"k:\n  provider: qp\n  expires_in: 30d\n  rotation: {rotation}\n")
    converge(project, clock)
    old = project.remote_id("k")
    old_expiry = project.state()["keys"]["k"]["expires_at"]
    clock.move(days=24)
    converge(project, clock)
    [dep] = project.state()["deposed"]
    assert dep["remote_id"] == old

    clock.move(days=26)
    used = clock() - timedelta(minutes=10)  # a consumer still on the old secret
    emu_control.use_questra("org_e2e", old, used)
    plan = plan_only(project, clock)
    assert not plan.has_changes
    [note] = [n for n in plan.notes if f"(deposed {old})" in n]
    by = (used + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert waits.format(grace_end=dep["revoke_after"], by=by) in note, note
    assert note.endswith(f"; it expires {old_expiry} (in 4d), before its grace ends: whatever still uses it "
                         "stops working then"), note

    clock.move(days=31)  # expired: dropped, nothing left to wait for
    [change] = plan_only(project, clock).actionable
    assert change.deposed and change.remote_id == old and change.reasons == ("already expired",)


def test_an_api_clock_behind_is_allowed_for_with_a_rest_definition_too(
        project: Project, emu_control: EmulatorControl) -> None:
    """The API's clock two hours behind keyform's, as docs/lifecycle.md promises for every type
    with `clock_offset`. A `type: rest` definition's provider is run wrapped (`ForeignProvider`),
    and the wrapper had no `clock_offset`: no note, and an old key used 35 minutes ago (read as
    2 h 35 min ago) was revoked as unused for 1h. (Rotated 65 minutes ago; the plan on the
    machine's own clock.)"""
    clock = MovedClock(emu_control)
    clock.base -= timedelta(minutes=65)
    clock.move(seconds=0)  # the API's clock on keyform's, both 65 minutes back
    project.questra("k:\n  provider: qp\n  name: first\n  rotation: {grace: 7d, unused_for: 1h}\n")
    converge(project, clock)
    old = project.remote_id("k")
    project.questra("k:\n  provider: qp\n  name: second\n  rotation: {grace: 7d, unused_for: 1h}\n")
    converge(project, clock)
    emu_control.faults(clock_offset=-2 * 3600.0)  # now, two hours behind
    emu_control.use_questra("org_e2e", old, clock() + timedelta(minutes=30, hours=-2))  # on the API's clock
    with operations.session(operations.Options(files=[str(project.manifest)], env=project.env), "plan") as sess:
        plan = operations.plan(sess)
    assert not [c for c in plan.actionable if c.deposed], [c.reasons for c in plan.actionable]
    assert any(n.startswith("qp: its clock is 2h behind keyform's") for n in plan.notes), plan.notes
    assert any(f"old key {old} last used 3" in n for n in plan.notes), plan.notes


def test_a_source_key_that_expired_while_nobody_ran_keyform_is_revoked_as_planned(
        project: Project, emu_control: EmulatorControl) -> None:
    """`src` feeds `t` (`secret_of`) and expires while the pipeline does not run. The plan replaces
    both and says the expired `src` "is revoked in this apply"; the apply then held that revoke back
    because `t`'s old key, deposed through its grace, still sends its secret, failed (exit 1), and
    every later plan kept the expired key "in use". An expired (or revoked) key authenticates
    nobody: holding it back protects no consumer."""
    clock = MovedClock(emu_control)
    project.write("""
        version: 1
        providers:
          qp: {type: questra, base_url: "{url}", token: {env: QUESTRA_TOKEN}, org_id: {org}}
          tq: {type: textql, base_url: "{url}", token: {env: TEXTQL_TOKEN}}
        sinks:
          env: {type: dotenv, path: .secrets/keys.env}
        defaults: {sink: env}
        keys:
          src: {provider: qp, expires_in: 30d, rotation: {grace: 3d}}
          t:
            provider: tq
            description: Questra access
            hosts: [api.questra.ai]
            api_provider: questra
            auth_value: {secret_of: src}
            rotation: {grace: 2d}
        """)
    converge(project, clock)
    src = project.remote_id("src")
    clock.move(days=90)
    plan = plan_only(project, clock)
    assert [(c.address, c.action.value, c.dead) for c in plan.actionable] == [
        ("src", "replace", True), ("t", "replace", False)], plan.actionable
    converge(project, clock)  # asserts the apply is ok
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys("org_e2e")}[src] is True
    assert [d["address"] for d in project.state()["deposed"]] == ["t"]
    plan = plan_only(project, clock)
    assert not plan.has_changes and not any(src in n for n in plan.notes), plan.notes


def _fed(project: Project, source: str, source_grace: str, grace: str = "3d") -> None:
    project.write(f"""
        version: 1
        providers:
          qp: {{type: questra, base_url: "{{url}}", token: {{env: QUESTRA_TOKEN}}, org_id: {{org}}}}
          tq: {{type: textql, base_url: "{{url}}", token: {{env: TEXTQL_TOKEN}}}}
        sinks:
          env: {{type: dotenv, path: .secrets/keys.env}}
        defaults: {{sink: env}}
        keys:
          {source}: {{provider: qp, name: src, rotation: {{grace: {source_grace}}}, sink: {{use: env, as: SRC}}}}
          t:
            provider: tq
            description: Questra access
            hosts: [api.questra.ai]
            api_provider: questra
            auth_value: {{secret_of: {source}}}
            rotation: {{grace: {grace}}}
        """)


def test_state_mv_of_a_source_keeps_its_old_key_for_the_old_consumer_it_feeds(
        project: Project, emu_control: EmulatorControl) -> None:
    """`src` and its consumer `t` rotated together; `t`'s old key lives 3 days, sending the old
    `src` secret, so that old key is kept as long (`fed_by`). `state mv src src2` rewrote the
    current consumer's edge but not the old one's: the old source key was revoked after its own
    day while the old consumer still sent its secret."""
    clock = MovedClock(emu_control)
    _fed(project, "src", "1d")
    converge(project, clock)
    with operations.session(options(project, clock), "apply") as sess:
        assert operations.apply(sess, operations.plan(sess, replace=("src",))).ok
    [old_src] = [d["remote_id"] for d in project.state()["deposed"] if d["address"] == "src"]
    moved = project.run("state", "mv", "src", "src2", "-f", str(project.manifest))
    assert moved.exit_code == 0, moved.output
    _fed(project, "src2", "1d")
    clock.move(days=1, hours=1)
    plan = plan_only(project, clock)
    assert not plan.has_changes, [(c.key, c.reasons) for c in plan.actionable]
    assert any(n.startswith(f"src2 (deposed {old_src}) is kept: key 't (deposed ") for n in plan.notes), plan.notes
    clock.move(days=3, hours=1)
    assert sorted(c.address for c in plan_only(project, clock).actionable) == ["src2", "t"]


def _failing_t(cfg: ProviderConfig, token: str, org: str | None) -> Provider:
    """Providers as keyform opens them, but every create of `t` fails with a 503 (an outage)."""
    real = open_provider(cfg, token, org)

    class Failing:
        name = real.name

        def __getattr__(self, attr: str) -> Any:
            return getattr(real, attr)

        def create(self, request: CreateRequest) -> CreateResult:
            if request.address == "t":
                raise ProviderError(f"{cfg.name}: create: 503 service unavailable", status=503)
            return real.create(request)

    return cast(Provider, Failing())


def test_a_source_renamed_in_the_manifests_is_kept_while_a_consumer_whose_reissue_failed_uses_it(
        project: Project, emu_control: EmulatorControl) -> None:
    """`src` renamed `src2` in the manifests (no `state mv`): `src` is deleted and `t` re-issued
    with `src2`'s secret. `t`'s re-issue failed (an outage), and `src` was revoked all the same: `t`
    was left sending a revoked secret. A deposed source key was kept in that case; a deleted one
    now is too, and goes with the apply that re-feeds `t`."""
    clock = MovedClock(emu_control)
    _fed(project, "src", "0s", "0s")
    converge(project, clock)
    src = project.remote_id("src")
    _fed(project, "src2", "0s", "0s")

    with operations.session(options(project, clock, provider_factory=_failing_t), "apply") as sess:
        report = operations.apply(sess, operations.plan(sess))
    assert [c.address for c, _ in report.failed] == ["t"]
    [(held, why)] = report.skipped
    assert held.address == "src" and why == (f"skipped: src ({src}) is kept: key 't' still uses its secret (a re-issue "
                                            "that failed or was not applied); it is revoked once no key does "
                                            "(`keyform destroy --target src` revokes it now)"), why
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys("org_e2e")}[src] is False
    assert "src" in project.state()["keys"]
    converge(project, clock)  # re-feeds t, then deletes src
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys("org_e2e")}[src] is True
    assert sorted(project.state()["keys"]) == ["src2", "t"]
    assert not plan_only(project, clock).has_changes


def test_a_source_renamed_in_the_manifests_is_kept_while_the_old_consumer_lives_out_its_grace(
        project: Project, emu_control: EmulatorControl) -> None:
    """The same rename, `t` with a grace of 3d: its old key lives 3 days sending `src`'s secret,
    and `src` was revoked in the same apply, so that grace kept alive a key that could do nothing."""
    clock = MovedClock(emu_control)
    _fed(project, "src", "0s")
    converge(project, clock)
    src = project.remote_id("src")
    _fed(project, "src2", "0s")
    with operations.session(options(project, clock), "apply") as sess:
        report = operations.apply(sess, operations.plan(sess))
    assert [c.address for c, _ in report.skipped] == ["src"] and not report.failed, report
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys("org_e2e")}[src] is False
    clock.move(days=2)
    plan = plan_only(project, clock)
    assert not plan.has_changes, [(c.key, c.reasons) for c in plan.actionable]
    assert any(n.startswith(f"src ({src}) is kept: key 't (deposed ") for n in plan.notes), plan.notes
    clock.move(days=3, hours=1)
    assert sorted(c.key.split(" ")[0] for c in plan_only(project, clock).actionable) == ["src", "t"]
    converge(project, clock)
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys("org_e2e")}[src] is True
    assert not plan_only(project, clock).has_changes



def test_a_source_removed_from_the_manifests_that_leaked_is_revoked_by_destroy_target(
        project: Project, emu_control: EmulatorControl) -> None:
    """`src` dropped from the manifests (it leaked; `t` now fed by `src2`) is kept while `t`'s old
    key lives out its 3d grace. The plan's note said it would be revoked "once no key does", and
    gave no way to revoke it sooner: `destroy --target src` planned nothing (the same note), so a
    leaked key stayed live for the grace. Now the note names that destroy, and it revokes `src`,
    its plan saying plainly what stops working."""
    clock = MovedClock(emu_control)
    _fed(project, "src", "0s")
    converge(project, clock)
    src = project.remote_id("src")
    _fed(project, "src2", "0s")
    with operations.session(options(project, clock), "apply") as sess:
        report = operations.apply(sess, operations.plan(sess))
    [(held, why)] = report.skipped
    assert held.address == "src"
    with operations.session(options(project, clock), "destroy") as sess:
        plan = operations.plan(sess, targets=("src",), destroy=True)
        assert [(c.address, c.deposed) for c in plan.actionable] == [("src", False)], plan.notes
        assert any(n.startswith(f"src ({src}) is destroyed although key 't (deposed ") and
                   n.endswith("still uses its secret: it stops working") for n in plan.notes), plan.notes
        report = operations.apply(sess, plan)
    assert not report.skipped and not report.failed, report
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys("org_e2e")}[src] is True
    assert sorted(project.state()["keys"]) == ["src2", "t"]
    assert why.endswith("it is revoked once no key does (`keyform destroy --target src` revokes it now)"), why


def test_destroy_target_of_a_dropped_source_a_failed_reissue_still_uses_does_what_its_plan_says(
        project: Project, emu_control: EmulatorControl) -> None:
    """The same, `t`'s re-issue failed (no old key in the state): `destroy --target src` planned the
    delete and its apply skipped it (`kept: key 't' still uses its secret`), plan and apply at odds."""
    clock = MovedClock(emu_control)
    _fed(project, "src", "0s", "0s")
    converge(project, clock)
    src = project.remote_id("src")
    _fed(project, "src2", "0s", "0s")

    with operations.session(options(project, clock, provider_factory=_failing_t), "apply") as sess:
        operations.apply(sess, operations.plan(sess))
    assert "src" in project.state()["keys"]
    with operations.session(options(project, clock), "destroy") as sess:
        plan = operations.plan(sess, targets=("src",), destroy=True)
        assert [c.address for c in plan.actionable] == ["src"]
        report = operations.apply(sess, plan)
    assert not report.skipped and not report.failed, report
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys("org_e2e")}[src] is True
    assert f"src ({src}) is destroyed although key 't' still uses its secret: it stops working" in plan.notes
