"""A key's fixed `expires_at` that has passed, against the emulator (keyform's clock moved with
`Options.clock`, the API's with its `clock_offset`, as tests/test_lifecycle_months.py does; no
sleep). Loading the manifests refused such a time (`keys.a.expires_at: ... is in the past`), so
from that date every plan and apply of the workspace failed and no other key was rotated, created
or revoked until someone edited that line. Now the planner judges it per key: a key made with it
is left as it is with a note, a key to create or replace with it is an error at that key."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from harness.project import Project
from keyform import operations
from keyform.applier import ApplyReport
from keyform.durations import format_time, utcnow
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError
from keyform.plan import Action
from keyform.planfile import read_plan
from tests.movedclock import MovedClock, converge, options, plan_only


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def keys(at: datetime, b_name: str = "b", extra: str = "") -> str:
    return (f"a:\n  provider: qp\n  name: a\n  expires_at: {format_time(at)}\n  rotation: {{max_age: 5d}}\n"
            f"b:\n  provider: qp\n  name: {b_name}\n  expires_in: 30d\n  rotation: {{before_expiry: 7d}}\n" + extra)


def line_of(project: Project, text: str) -> int:
    return [line.strip() for line in project.manifest.read_text().splitlines()].index(text) + 1


def test_a_key_whose_fixed_expires_at_passed_blocks_no_other_key(
        project: Project, emu_control: EmulatorControl) -> None:
    """`a` expires at a fixed time. 40 days on, `b` is due for rotation, was renamed, and a new key
    `c` was declared: each is planned and applied, `a` is left as it is (no create/replace loop,
    even though its max_age is due) and the plan says why, at `a`'s line."""
    clock = MovedClock(emu_control)
    at = clock() + timedelta(days=10)
    project.questra(keys(at))
    converge(project, clock)
    a_id, b_id = project.remote_id("a"), project.remote_id("b")

    clock.move(days=40)
    project.questra(keys(at, "b2", "c:\n  provider: qp\n  name: c\n"))
    plan = plan_only(project, clock)
    got = {c.address: c.action for c in plan.actionable if not c.deposed}
    assert got == {"b": Action.REPLACE, "c": Action.CREATE}, plan.actionable
    [note] = [n for n in plan.notes if n.startswith("a ")]
    # (the manifest's path is left out of the comparison: a secret an earlier test of this process
    # remembered may share 16 characters with a temporary path, which every message then masks)
    head, _, tail = note.partition(" (")
    assert head == "a" and tail.startswith(f"{a_id}) expired at {format_time(at)}, its fixed expires_at ("), note
    assert note.endswith(f"keyform.yaml:{line_of(project, 'keys:') + 1}): keyform will not replace it, a new key "
                         "would expire at the same time; move expires_at later, or use expires_in, to have it "
                         "replaced"), note
    converge(project, clock)
    assert project.remote_id("a") == a_id and project.remote_id("b") != b_id
    listed = {k["id"]: k for k in emu_control.questra_keys("org_e2e")}
    assert a_id in listed and {project.remote_id("b"), project.remote_id("c")} <= listed.keys()
    again = plan_only(project, clock)
    assert not again.has_changes and note in again.notes

    # gone from the API meanwhile (an API that purges expired keys): still left alone, not re-created
    emu_control.delete_questra("org_e2e", a_id)
    assert not plan_only(project, clock).has_changes

    # expires_at moved later: made again now (deleted above), with the new time
    later = clock() + timedelta(days=30)
    project.questra(keys(later, "b2", "c:\n  provider: qp\n  name: c\n"))
    [change] = plan_only(project, clock).actionable
    assert change.address == "a" and change.action is Action.CREATE, change
    converge(project, clock)
    assert project.remote_id("a") != a_id and project.state()["keys"]["a"]["expires_at"] == format_time(later)


def test_the_expired_key_is_said_at_its_line_and_plan_detailed_exitcode_is_0(
        project: Project, emu_control: EmulatorControl) -> None:
    """Through the CLI on the real clock: `a` was made 20 days ago to expire yesterday. `plan
    --detailed-exitcode` exits 0 with the note at `a`'s file:line (it exited 1: the manifests did not
    load), `validate` warns, `report` says expired with no rotation due, `report --idle` lists it."""
    now = utcnow().replace(microsecond=0)
    clock = MovedClock(emu_control, base=now - timedelta(days=20))
    at = now - timedelta(days=1)
    project.questra(keys(at))
    converge(project, clock)
    emu_control.faults(clock_offset=0.0)  # the API on the real clock again
    converge(project, MovedClock(emu_control))  # `b` as it stands now (not due)
    line = line_of(project, "keys:") + 1

    res = project.run("plan", "--detailed-exitcode", "--state", str(project.state_path))
    assert res.exit_code == 0, res.tail()
    assert f"expired at {format_time(at)}, its fixed expires_at (" in res.stdout, res.stdout  # (its path: above)
    assert f"keyform.yaml:{line}): keyform will not replace it" in res.stdout, res.stdout

    res = project.run("validate")
    assert res.exit_code == 0, res.tail()
    assert res.stderr.startswith("Warning: ")  # (no path compared: a remembered secret may mask a temporary one)
    assert f"keyform.yaml:{line}: key 'a': expires_at {format_time(at)} has passed" in res.stderr, res.stderr

    res = project.run("report", "--state", str(project.state_path), "-f", str(project.manifest), "--format", "json")
    assert res.exit_code == 0, res.tail()
    [row] = [r for r in json.loads(res.stdout)["keys"] if r["address"] == "a"]
    assert row["status"] == "expired" and row["rotation_due_at"] is None, row
    # (it had a max_age of 5d: no rotation is due, none will be made; it was due 15 days ago)
    res = project.run("report", "--idle", "1d", "--state", str(project.state_path), "-f", str(project.manifest))
    assert res.exit_code == 2 and project.remote_id("a") in res.stdout, res.tail()  # idle: unused, and unusable


def test_a_create_with_a_passed_expires_at_is_refused_at_that_key_only(
        project: Project, emu_control: EmulatorControl) -> None:
    """A new key `n` written with a time already past: the plan fails naming `n` at its line and
    saying what to do (as a plan error about one key does); `--target b` still plans and applies.
    An existing key's expires_at moved to another past time is refused the same way."""
    now = utcnow().replace(microsecond=0)
    project.questra(keys(now + timedelta(days=10)))
    assert project.run("apply", "--auto-approve").exit_code == 0
    past = now - timedelta(days=2)
    project.questra(keys(now + timedelta(days=10), "b2", f"n:\n  provider: qp\n  expires_at: {format_time(past)}\n"))
    line = line_of(project, "n:")

    res = project.run("plan")
    assert res.exit_code == 1, res.tail()
    assert res.stderr.startswith("Error: ") and (
        f"keyform.yaml:{line}: key 'n': expires_at {format_time(past)} has passed (2d ago), so keyform "
        "will not create it: the new key would be expired, or due for replacement, as soon as it is made. Set a "
        "later expires_at, or use expires_in") in res.stderr, res.stderr
    assert "Traceback" not in res.output

    res = project.run("apply", "--auto-approve", "--target", "b")
    assert res.exit_code == 0, res.tail()
    assert [k["name"] for k in emu_control.questra_keys("org_e2e") if k["id"] == project.remote_id("b")] == ["b2"]
    assert "n" not in project.state()["keys"]

    project.questra(keys(past, "b2"))  # `a` moved to a past time: a replacement (Questra) refused
    res = project.run("plan")
    assert res.exit_code == 1 and "key 'a': expires_at" in res.stderr and "will not replace it (expiry cannot be " \
        "changed in place)" in res.stderr, res.tail()


def test_a_saved_plan_made_before_the_date_and_applied_after_it(
        project: Project, emu_control: EmulatorControl, tmp_path: Path) -> None:
    """A plan creating `a` (to expire in a day) and `b`, applied two days later: refused before any
    remote call, naming `a` (its check plans again), not a traceback or a key born expired. And the
    applier's own guard, when the time passes between the check and the create: `a` fails with
    that message, `b` is applied."""
    clock = MovedClock(emu_control)
    project.questra(keys(clock() + timedelta(days=1)))
    out = tmp_path / "saved.plan"
    with operations.session(options(project, clock), "plan", for_new_state=True) as sess:
        plan = operations.plan(sess)
    out.write_text(plan.dumps())
    saved = read_plan(str(out))

    clock.move(days=2)
    with pytest.raises(KeyformError) as exc, operations.session(options(project, clock), "apply", saved=saved) as sess:
        operations.check_saved_plan(sess, saved)
    # said as every other refusal of a saved plan is (it had no `Saved plan:`, and the plan's own
    # "Nothing is planned until then"), once, at the key's line
    assert str(exc.value) == (
        f"Saved plan: {project.manifest}:{line_of(project, 'a:')}: key 'a': expires_at "
        f"{format_time(clock.base + timedelta(days=1))} has passed (1d ago), so keyform will not create it: the "
        "new key would be expired, or due for replacement, as soon as it is made. Set a later expires_at, or use "
        "expires_in (each new key then expires that long after it is made). The plan was made before that time: "
        "run `keyform plan` again (`--target` other keys to go on without this one)"), str(exc.value)
    assert emu_control.questra_keys("org_e2e") == []

    clock.move(days=0)
    with operations.session(options(project, clock), "apply") as sess:
        plan = operations.plan(sess)
        clock.move(days=2)
        report: ApplyReport = operations.apply(sess, plan)
    [(change, why)] = report.failed
    assert change.address == "a" and f"keyform.yaml:{line_of(project, 'a:')}: key 'a': expires_at " in why, why
    assert why.endswith("has passed, so no key was created (the plan was made before it): set a later "
                        "expires_at, or use expires_in"), why
    assert "b" in project.state()["keys"] and "a" not in project.state()["keys"]



def test_a_held_key_whose_prevent_destroy_is_unset_can_then_be_removed(
        project: Project, emu_control: EmulatorControl) -> None:
    """A key left as it is past its fixed expires_at still records a change of its
    lifecycle.prevent_destroy (state only, no remote call). Before, the held key planned nothing:
    prevent_destroy unset stayed recorded, and removing the key from the manifests was refused
    ('remove prevent_destroy (and apply) first') for ever, the apply it asked for doing nothing."""
    clock = MovedClock(emu_control)
    at = clock() + timedelta(days=10)
    held = f"a:\n  provider: qp\n  name: a\n  expires_at: {format_time(at)}\n"
    project.questra(held + "  lifecycle: {prevent_destroy: true}\n")
    converge(project, clock)
    a_id = project.remote_id("a")
    clock.move(days=40)
    project.questra(held.replace("name: a", "name: renamed"))  # (not sent: the key is left as it is)
    plan = plan_only(project, clock)
    [change] = plan.actionable
    assert change.address == "a" and change.action is Action.UPDATE, change
    assert [a.name for a in change.attrs] == ["prevent_destroy"], change.attrs
    # the rename is said, not dropped unseen (it was: the note said only that `a` is not replaced)
    [note] = [n for n in plan.notes if n.startswith(f"a ({a_id}) expired at")]
    assert note.endswith("to have it replaced; its edited name is not applied to it either, and the key made then "
                         "has it"), note
    converge(project, clock)
    recorded = project.state()["keys"]["a"]
    assert recorded.get("prevent_destroy", False) is False and recorded["attributes"]["name"] == "a", recorded
    assert project.remote_id("a") == a_id
    project.questra("")
    [gone] = plan_only(project, clock).actionable
    assert gone.address == "a" and gone.action is Action.DELETE, gone


def fed(at: datetime, src_rotation: str = "{max_age: 5d, grace: 1d}", t_expiry: str = "") -> str:
    """`src` (Questra) feeds `t` (TextQL, `secret_of`), `t` made with the fixed `at` (or `t_expiry`)."""
    return (f"src:\n  provider: qp\n  name: src\n  expires_in: 30d\n  rotation: {src_rotation}\n"
            "t:\n  provider: tq\n  description: Questra access\n  hosts: [api.questra.ai]\n"
            "  api_provider: questra\n  auth_value: {secret_of: src}\n  rotation: {grace: 2d}\n"
            + (t_expiry or f"  expires_at: {format_time(at)}\n"))


def fed_project(project: Project, keys_: str) -> None:
    project.write("version: 1\nproviders:\n"
                  "  qp: {type: questra, base_url: \"{url}\", token: {env: QUESTRA_TOKEN}, org_id: {org}}\n"
                  "  tq: {type: textql, base_url: \"{url}\", token: {env: TEXTQL_TOKEN}}\n"
                  "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\ndefaults: {sink: env}\nkeys:\n"
                  + "".join(f"  {line}\n" for line in keys_.splitlines()))


def test_a_held_consumer_blocks_not_its_source_rotation_nor_its_old_key_revocation(
        project: Project, emu_control: EmulatorControl) -> None:
    """`t` is fed by `src` (`secret_of`) and was made with a fixed expires_at, now passed. `src`'s
    max_age is due: the plan re-issued `t` with it (`depends on src, which is replaced`), which a
    passed expires_at refuses, so every plan failed and `src` was never rotated. Now `src` is
    replaced, `t` is left as it is (the same note), and `src`'s old key is revoked at the end of
    its grace: the expired `t` sends its secret to nobody, so it does not keep it alive for ever.
    `--replace src` the same; `report` shows `t` expired and `src` active."""
    clock = MovedClock(emu_control)
    at = clock() + timedelta(days=10)
    fed_project(project, fed(at))
    converge(project, clock)
    src, t = project.remote_id("src"), project.remote_id("t")

    clock.move(days=20)  # `t` expired 10 days ago; `src`'s max_age (5d) is due
    plan = plan_only(project, clock)
    assert [(c.address, c.action) for c in plan.actionable] == [("src", Action.REPLACE)], plan.actionable
    assert any(n.startswith(f"t ({t}) expired at {format_time(at)}") for n in plan.notes), plan.notes
    converge(project, clock)
    assert project.remote_id("t") == t and project.remote_id("src") != src
    assert [d["remote_id"] for d in project.state()["deposed"]] == [src]

    clock.move(days=21, hours=1)  # src's old key's grace (1d) ended: revoked, `t` no user
    plan = plan_only(project, clock)
    assert [(c.address, c.remote_id, c.deposed) for c in plan.actionable] == [("src", src, True)], \
        (plan.actionable, plan.notes)
    converge(project, clock)
    assert project.state().get("deposed", []) == []
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys("org_e2e")}[src] is True

    with operations.session(options(project, clock), "apply") as sess:  # asked for: the same
        plan = operations.plan(sess, replace=("src",))
        assert [(c.address, c.action) for c in plan.actionable] == [("src", Action.REPLACE)], plan.actionable
        assert operations.apply(sess, plan).ok
    assert project.remote_id("t") == t

    rows = {r.address: r for r in operations.run_report(options(project, clock)).report.rows if r.kind == "key"}
    assert rows["t"].status == "expired" and rows["t"].rotation_due_at is None, rows["t"]
    assert rows["src"].status == "active" and rows["src"].rotation_due_at is not None, rows["src"]


def test_a_held_source_whose_consumer_rotation_is_due(project: Project, emu_control: EmulatorControl) -> None:
    """The other way round: `src` is held past its fixed expires_at and its consumer `t`'s max_age
    is due. `t` is replaced, fed the (expired) secret its sink gives back, and nothing loops: the
    next plan is empty. With that secret gone from the sink, `src` could only be replaced to feed
    `t` (refused: a new `src` would be expired), which refused every plan; now `t` is left as it
    is too, saying why, and the other keys go on."""
    clock = MovedClock(emu_control)
    at = clock() + timedelta(days=10)
    src_keys = (f"src:\n  provider: qp\n  name: src\n  expires_at: {format_time(at)}\n"
                "t:\n  provider: tq\n  description: Questra access\n  hosts: [api.questra.ai]\n"
                "  api_provider: questra\n  auth_value: {secret_of: src}\n  rotation: {max_age: 5d, grace: 2d}\n"
                "  expires_in: 30d\n")
    fed_project(project, src_keys)
    converge(project, clock)
    src, t = project.remote_id("src"), project.remote_id("t")

    clock.move(days=20)
    plan = plan_only(project, clock)
    assert [(c.address, c.action) for c in plan.actionable] == [("t", Action.REPLACE)], plan.actionable
    assert any(n.startswith(f"src ({src}) expired at") for n in plan.notes), plan.notes
    converge(project, clock)
    assert project.remote_id("src") == src and project.remote_id("t") != t
    assert not plan_only(project, clock).has_changes

    clock.move(days=30)  # `t` due again, and `src`'s secret no longer in the sink
    env = project.root / ".secrets" / "keys.env"
    env.write_text("".join(line + "\n" for line in env.read_text().splitlines() if "SRC" not in line.upper()))
    # (and `t`'s description edited: TextQL updates it in place, with no secret, so the waiting `t`
    # still gets it; it was dropped with the rotation, from every plan while `t` waited)
    fed_project(project, src_keys.replace("Questra access", "Questra access (ops)") + "n:\n  provider: qp\n  name: n\n")
    plan = plan_only(project, clock)
    assert [(c.address, c.action) for c in plan.actionable if not c.deposed] == [
        ("n", Action.CREATE), ("t", Action.UPDATE)], (plan.actionable, plan.notes)
    assert f"{project.remote_id('t')}) is left as it is: it needs the secret of src, which no sink gives back" in \
        "\n".join(plan.notes), plan.notes
    converge(project, clock)
    assert [k["description"] for k in emu_control.textql_keys() if k["id"] == project.remote_id("t")] == [
        "Questra access (ops)"]
    assert not [c for c in plan_only(project, clock).actionable if not c.deposed]
    rows = {r.address: r for r in operations.run_report(options(project, clock)).report.rows if r.kind == "key"}
    assert rows["src"].status == "expired" and rows["src"].rotation_due_at is None, rows["src"]


def test_a_waiting_consumer_updated_in_place_keeps_its_unapplied_change_recorded_as_not_applied(
        project: Project, emu_control: EmulatorControl) -> None:
    """`t` reads the secret of `src` (held past its fixed expires_at, its secret gone from the
    sink). `t`'s manifest changes `is_private` (TextQL cannot change it in place: a replacement,
    which waits for `src`) and its description (updated in place, planned). The update recorded the
    manifests' every attribute as applied, `is_private` too: the next plan had nothing for `t`, no
    note either, and the key stayed public for good while the state said private."""
    clock = MovedClock(emu_control)
    at = clock() + timedelta(days=10)
    src_keys = (f"src:\n  provider: qp\n  name: src\n  expires_at: {format_time(at)}\n"
                "t:\n  provider: tq\n  description: Questra access\n  hosts: [api.questra.ai]\n"
                "  api_provider: questra\n  auth_value: {secret_of: src}\n  expires_in: 90d\n")
    fed_project(project, src_keys)
    converge(project, clock)
    t = project.remote_id("t")

    clock.move(days=20)
    env = project.root / ".secrets" / "keys.env"
    env.write_text("".join(line + "\n" for line in env.read_text().splitlines() if "SRC" not in line.upper()))
    fed_project(project, src_keys.replace("Questra access", "Questra access (ops)")
                .replace("  expires_in: 90d\n", "  expires_in: 90d\n  is_private: true\n"))
    plan = plan_only(project, clock)
    assert [(c.address, c.action) for c in plan.actionable] == [("t", Action.UPDATE)], plan.actionable
    waits = f"t ({t}) is left as it is: it needs the secret of src"
    assert any(n.startswith(waits) for n in plan.notes), plan.notes
    converge(project, clock)
    recorded = project.state()["keys"]["t"]
    assert recorded["attributes"]["description"] == "Questra access (ops)", recorded
    assert recorded["attributes"].get("is_private", False) is False, recorded
    plan = plan_only(project, clock)  # `t` still waits for its replacement, and says so
    assert not plan.actionable and any(n.startswith(waits) for n in plan.notes), (plan.actionable, plan.notes)
