"""Key lifecycle against the emulator: rotation by the clock, grace periods, import, destroy and
state surgery. Clock tests drive `keyform.operations` with a moved clock; the rest use the CLI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.project import ORG, TOKENS, Project
from keyform import operations
from keyform.durations import parse_time, utcnow
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError
from keyform.model import ProviderConfig
from keyform.providers import open_provider
from keyform.remote import Provider


class Clock:
    def __init__(self) -> None:
        self.base = utcnow()
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return self.base + self.offset


def converge(project: Project, clock: Clock, factory: Any = None) -> Any:
    """plan + apply through the library with the moved clock; returns the apply report."""
    opts = operations.Options(files=[str(project.manifest)], clock=clock, env=project.env, provider_factory=factory)
    with operations.session(opts, "apply") as sess:
        plan = operations.plan(sess)
        return plan, operations.apply(sess, plan)


def plan_only(project: Project, clock: Clock) -> Any:
    opts = operations.Options(files=[str(project.manifest)], clock=clock, env=project.env)
    with operations.session(opts, "plan") as sess:
        return operations.plan(sess)


def questra_status(control: EmulatorControl) -> dict[str, bool]:
    return {k["id"]: k["revoked"] for k in control.questra_keys(ORG)}


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def test_before_expiry_rotation_noop_on_day_22_replace_on_day_24(project: Project, emu_control: EmulatorControl) -> None:
    project.questra("k:\n  provider: qp\n  expires_in: 30d\n  rotation: {before_expiry: 7d}\n")
    clock = Clock()
    converge(project, clock)
    clock.offset = timedelta(days=22)
    assert not plan_only(project, clock).has_changes
    clock.offset = timedelta(days=24)
    [change] = plan_only(project, clock).actionable
    assert change.action.value == "replace" and change.reasons[0].startswith("expires in 5d")
    old = project.remote_id("k")
    converge(project, clock)
    assert project.remote_id("k") != old
    assert project.sink()["K"] == {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG)}[project.remote_id("k")]


def test_max_age_rotation_replaces_on_day_61(project: Project) -> None:
    project.questra("k:\n  provider: qp\n  rotation: {max_age: 60d}\n")
    clock = Clock()
    converge(project, clock)
    # the age counts from the API's created_at (whole seconds): the clock's base may lie just before
    # it, on the other side of a second boundary; count the days from the recorded creation
    clock.base = parse_time(project.state()["keys"]["k"]["created_at"])
    clock.offset = timedelta(days=59)
    assert not plan_only(project, clock).has_changes
    clock.offset = timedelta(days=61)
    [change] = plan_only(project, clock).actionable
    assert change.reasons == ("age 61d (>= max_age 60d)",)


def test_grace_keeps_old_key_alive_until_first_apply_after_24h(project: Project, emu_control: EmulatorControl) -> None:
    project.questra("k:\n  provider: qp\n  name: first\n  rotation: {grace: 24h}\n")
    clock = Clock()
    converge(project, clock)
    old = project.remote_id("k")
    project.questra("k:\n  provider: qp\n  name: second\n  rotation: {grace: 24h}\n")
    converge(project, clock)
    assert questra_status(emu_control)[old] is False, "old key must stay alive during its grace"
    assert [d["remote_id"] for d in project.state()["deposed"]] == [old]

    clock.offset = timedelta(hours=23)
    plan = plan_only(project, clock)
    assert not plan.has_changes, [(c.key, c.reasons) for c in plan.actionable]
    assert any(("grace ends in 1h" in n or "grace ends in 59m" in n) for n in plan.notes), plan.notes
    converge(project, clock)
    assert questra_status(emu_control)[old] is False

    clock.offset = timedelta(hours=25)
    plan, report = converge(project, clock)
    [change] = plan.actionable
    assert change.deposed and change.remote_id == old and change.reasons[0].startswith("grace ended ")
    assert report.ok and questra_status(emu_control)[old] is True
    assert project.state()["deposed"] == []


def failing_deletes(fail: dict[str, bool]) -> Callable[[ProviderConfig, str, str | None], Provider]:
    def factory(cfg: ProviderConfig, token: str, org: str | None) -> Provider:
        real = open_provider(cfg, token, org)

        class Flaky:
            name = real.name

            def __getattr__(self, attr: str) -> Any:
                return getattr(real, attr)

            def delete(self, remote_id: str) -> None:
                if fail["delete"]:
                    raise ProviderError(f"{cfg.name}: revoke {remote_id}: 503 service unavailable", status=503)
                real.delete(remote_id)

        return Flaky()

    return factory


def test_deposed_key_whose_revoke_failed_is_retried_next_apply(project: Project, emu_control: EmulatorControl) -> None:
    project.questra("k:\n  provider: qp\n  name: first\n")
    clock = Clock()
    converge(project, clock)
    old = project.remote_id("k")
    project.questra("k:\n  provider: qp\n  name: second\n")
    fail = {"delete": True}
    _, report = converge(project, clock, failing_deletes(fail))
    assert not report.ok and "503" in report.failed[0][1]
    [dep] = project.state()["deposed"]
    assert dep["remote_id"] == old and "503" in dep["last_error"]
    assert questra_status(emu_control)[old] is False

    fail["delete"] = False
    plan, report = converge(project, clock, failing_deletes(fail))
    assert report.ok and questra_status(emu_control)[old] is True
    assert any("last attempt failed" in r for r in plan.actionable[0].reasons)
    assert project.state()["deposed"] == []


def make_remote_questra_key(url: str, name: str) -> str:
    r = httpx.post(f"{url}/api-keys", json={"name": name},
                   headers={"Authorization": "Bearer x", "X-Org-Id": ORG})
    r.raise_for_status()
    return str(r.json()["id"])


def test_import_questra_key_plans_noop_and_warns_its_secret_is_in_no_sink(project: Project,
                                                                         emulator: Emulator) -> None:
    rid = make_remote_questra_key(emulator.url, "Legacy key")
    project.questra("legacy:\n  provider: qp\n  name: Legacy key\n")
    res = project.run("import", "legacy", rid)
    assert res.exit_code == 0, res.output
    assert "cannot be recovered" in res.stderr and "--replace legacy" in res.stderr
    assert project.state()["keys"]["legacy"]["secret_in_sink"] is False
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    # the user asks for a rotation: now the secret exists in the sink
    assert project.run("apply", "--auto-approve", "--replace", "legacy").exit_code == 0
    assert project.sink()["LEGACY"].startswith("sk_")


def test_import_with_differing_create_only_attribute_plans_replace_with_reason(project: Project,
                                                                             emulator: Emulator) -> None:
    rid = make_remote_questra_key(emulator.url, "Old name")
    project.questra("legacy:\n  provider: qp\n  name: New name\n")
    assert project.run("import", "legacy", rid).exit_code == 0
    plan = project.run("plan")
    assert "legacy must be replaced" in plan.stdout and "name cannot be changed in place" in plan.stdout


def test_import_refuses_unknown_id_and_undeclared_address(project: Project) -> None:
    project.questra("legacy:\n  provider: qp\n")
    assert "no key with id ak_nope" in project.run("import", "legacy", "ak_nope").stderr
    assert "no key 'ghost' in the manifests" in project.run("import", "ghost", "ak_1").stderr


def test_state_rm_then_plan_creates_and_leaves_old_key_untouched(project: Project,
                                                                 emu_control: EmulatorControl) -> None:
    project.questra("k:\n  provider: qp\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("k")
    secret = project.sink()["K"]
    res = project.run("state", "rm", "k", "-f", str(project.manifest))
    assert res.exit_code == 0 and "not touched" in res.stdout
    # the forgotten key's secret stays in K, and a new k would write over it: refused, not lost
    plan = project.run("plan")
    assert plan.exit_code == 1 and "already holds K" in plan.stderr and "`state rm` forgot" in plan.stderr, plan.output
    assert questra_status(emu_control) == {old: False} and project.sink() == {"K": secret}
    # adopted again, nothing changes; or, its line removed, a new k is created
    assert project.run("import", "k", old).exit_code == 0
    assert project.run("plan", "--detailed-exitcode").exit_code in (0, 2)
    assert project.run("state", "rm", "k", "-f", str(project.manifest)).exit_code == 0
    (project.root / ".secrets/keys.env").write_text("")
    plan = project.run("plan")
    assert plan.exit_code == 0 and "k will be created" in plan.stdout, plan.output
    assert questra_status(emu_control) == {old: False}


def test_state_rm_without_a_state_path_says_so_naming_it(project: Project) -> None:
    """The local backend says what it lacks (`no state file`; postgres: `there is no state yet`)."""
    project.questra("k:\n  provider: qp\n")
    res = project.run("state", "rm", "k", "-f", str(project.manifest))
    assert res.exit_code == 1 and f"{project.state_path}: no state file" in res.stderr, res.output
    assert "Traceback" not in res.output


def test_state_mv_then_plan_is_noop(project: Project) -> None:
    project.questra("old-name:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("state", "mv", "old-name", "new-name", "-f", str(project.manifest)).exit_code == 0
    project.questra("new-name:\n  provider: qp\n  name: old-name\n  sink: {use: env, as: SHARED}\n")
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    listed = project.run("state", "list", "-f", str(project.manifest)).stdout
    assert listed.startswith("new-name\tqp\t")
    shown = project.run("state", "show", "new-name", "-f", str(project.manifest)).stdout
    assert '"remote_id"' in shown and "sk_" not in shown


def test_destroy_revokes_everything_and_refuses_prevent_destroy(project: Project,
                                                                emu_control: EmulatorControl) -> None:
    project.questra("a:\n  provider: qp\nb:\n  provider: qp\n  lifecycle: {prevent_destroy: true}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    refused = project.run("destroy", "--auto-approve")
    assert refused.exit_code == 1 and "prevent_destroy" in refused.stderr
    assert not any(questra_status(emu_control).values())

    targeted = project.run("destroy", "--auto-approve", "--target", "a")
    assert targeted.exit_code == 0, targeted.output
    assert set(project.state()["keys"]) == {"b"}
    project.questra("a:\n  provider: qp\nb:\n  provider: qp\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    done = project.run("destroy", "--auto-approve")
    assert done.exit_code == 0, done.output
    assert project.state()["keys"] == {} and all(questra_status(emu_control).values())
    assert project.sink() == {}


def test_force_unlock_breaks_only_the_named_lock(project: Project) -> None:
    project.questra("k:\n  provider: qp\n")
    from keyform.backends.local import LocalBackend

    store = LocalBackend(project.state_path)
    lock = store.acquire_lock("apply")
    blocked = project.run("plan", "--lock-timeout", "0s")
    assert blocked.exit_code == 1 and lock.id in blocked.stderr
    wrong = project.run("force-unlock", "not-the-id", "-f", str(project.manifest))
    assert wrong.exit_code == 1
    alive = project.run("force-unlock", lock.id, "-f", str(project.manifest))  # its holder runs on this host
    assert alive.exit_code == 1 and "refusing to force-unlock" in alive.stderr, alive.output
    from keyform.backends import local

    held = local.held(lock.id)
    assert held is not None
    held.close()  # as if its process died: the OS lock is gone, the record stays
    ok = project.run("force-unlock", lock.id, "-f", str(project.manifest))
    assert ok.exit_code == 0, ok.output
    assert project.run("plan").exit_code == 0
    assert TOKENS["QUESTRA_TOKEN"] not in blocked.output
