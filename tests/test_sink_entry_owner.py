"""A deleted or moved key never removes a sink entry that another key of the manifests now writes:
renaming a key while keeping its `as:` (old goes, new takes the same variable) leaves the new key's
secret in the sink. Two sinks that name one file (exact aliases) share its entries: two keys may not
write one entry through the two names, and a key replaced into the other name of its file does not
remove the entry its new secret was just written to. A delete removes its key's entry unless a key
takes it over in the same apply (`--target` and `destroy` apply no other key; a failed create takes
nothing over), and the plan says which. Through the CLI against the emulator over real HTTP on
127.0.0.1, and one case with fake providers in-process."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.applier import ApplyContext, ApplyReport, apply_plan
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError
from keyform.journal import Journal
from keyform.model import KeySpec, SinkTarget
from keyform.planner import PlanInputs, plan
from keyform.providers.pool import ProviderPool
from keyform.providers.questra import QuestraProvider
from keyform.refresh import instances_in_use, refresh
from keyform.sinks.pool import SinkPool
from keyform.sinkscan import SinkSnapshot
from keyform.state import State
from tests.factories import T0, questra_key, workspace
from tests.fakes import FakeProvider, MemorySink
from tests.test_lifecycle import make_remote_questra_key

ALIAS = "sinks:\n  env2:\n    type: dotenv\n    path: ./sub/../.secrets/keys.env\n"


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def _live(control: EmulatorControl) -> dict[str, str]:
    return {str(k["id"]): str(k["secret"]) for k in control.questra_keys(ORG) if not k.get("revoked")}


def _keys(project: Project, body: str) -> None:
    """The project's keys, and a second sink `env2` naming the file of its sink `env`."""
    project.questra(body)
    project.manifest.write_text(project.manifest.read_text().replace("sinks:\n", ALIAS, 1))


def test_renaming_a_key_that_keeps_its_variable_leaves_the_new_secret(project: Project,
                                                                      emu_control: EmulatorControl) -> None:
    project.questra("old:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.questra("new:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")  # old goes, new takes SHARED
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    live = {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG) if not k.get("revoked")}
    assert project.sink() == {"SHARED": live[project.remote_id("new")]}


def test_a_rename_plans_the_variable_as_kept_not_removed(project: Project) -> None:
    """The plan a reviewer reads says what the apply does: `old`'s entry is taken over by `new`."""
    project.questra("old:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.questra("new:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    res = project.run("plan")
    assert res.exit_code == 0, res.output
    assert "is removed" not in res.stdout, res.stdout
    assert "its sink entry env:SHARED stays: key 'new' writes it in this apply" in res.stdout, res.stdout


def test_a_targeted_delete_of_a_renamed_key_removes_its_variable(project: Project,
                                                                 emu_control: EmulatorControl) -> None:
    """`old` renamed to `new` with the same `as:`, then `apply --target old`: only `old` is deleted,
    `new` is not created. The plan said the entry is removed, and it is: it held only the revoked
    key's secret. (It was kept, untracked: the next apply refused to write `new` there, saying
    keyform did not write that line.)"""
    project.questra("old:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.questra("new:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    planned = project.run("plan", "--target", "old")
    assert "secret = (sink entry env:SHARED is removed)" in planned.stdout, planned.output
    res = project.run("apply", "--auto-approve", "--target", "old")
    assert res.exit_code == 0, res.output
    assert project.sink() == {}
    assert _live(emu_control) == {}
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink() == {"SHARED": _live(emu_control)[project.remote_id("new")]}
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_destroy_after_a_rename_removes_the_variable(project: Project, emu_control: EmulatorControl) -> None:
    """`destroy` while the manifests already name the key `new`: the plan said the entry is removed,
    and it is (it was left holding the revoked secret, and the state forgot it)."""
    project.questra("old:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.questra("new:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    planned = project.run("plan", "--destroy")
    assert "secret = (sink entry env:SHARED is removed)" in planned.stdout, planned.output
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink() == {}
    assert _live(emu_control) == {}
    assert project.state()["keys"] == {}


def test_a_key_replaced_into_another_name_of_its_file_keeps_its_new_secret(project: Project,
                                                                          emu_control: EmulatorControl) -> None:
    """`a`'s secret went missing from env:A and its sink is now env2:A, the same entry: the replace
    writes the new secret there, and then removed "the old entry" env:A by its sink name, which
    was that very line: the only live key's secret gone, the old one revoked."""
    _keys(project, "a:\n  provider: qp\n  sink: {use: env, as: A}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.sink_path.write_text("OTHER=x\n")
    _keys(project, "a:\n  provider: qp\n  sink: {use: env2, as: A}\n")
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 2 and "secret missing from sink env" in planned.stdout, planned.output
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink() == {"OTHER": "x", "A": _live(emu_control)[project.remote_id("a")]}
    assert "stale_entries" not in project.state()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_key_moved_to_another_name_of_its_file_keeps_its_only_secret(project: Project,
                                                                        emu_control: EmulatorControl) -> None:
    """The key's secret is in env:A; its sink becomes env2:A, the same line of the same file. The
    update "moved" the secret (wrote it to env2:A), then removed the old entry env:A by its sink
    name: that very line. The live key's only copy of its secret was gone (an emptied file), and
    the next plan replaced the key."""
    _keys(project, "a:\n  provider: qp\n  sink: {use: env, as: A}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    secret = project.sink()["A"]
    _keys(project, "a:\n  provider: qp\n  sink: {use: env2, as: A}\n")
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "sink renamed: env:A and env2:A are one entry of one file; the secret stays where it is" in planned.stdout
    assert "moves to sink" not in planned.stdout
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink() == {"A": secret} and _live(emu_control) == {project.remote_id("a"): secret}
    assert project.state()["keys"]["a"]["sink"] == {"sink": "env2", "as": "A"}
    assert "stale_entries" not in project.state()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_two_keys_cannot_write_one_entry_through_two_names_of_its_file(project: Project,
                                                                        emu_control: EmulatorControl) -> None:
    """Each apply would put one key's secret over the other's: refused at load, before any call."""
    _keys(project, "a:\n  provider: qp\n  sink: {use: env, as: A}\nb:\n  provider: qp\n  sink: {use: env2, as: A}\n")
    res = project.run("plan")
    assert res.exit_code == 1
    assert ("keys.b: sink entry env2:A is the entry env:A (sinks env and env2 name one file) of key 'a'"
            in res.stderr), res.output
    assert "Traceback" not in res.output
    assert _live(emu_control) == {}


def test_a_rename_whose_create_fails_leaves_no_revoked_secret_in_the_variable() -> None:
    """`old` renamed to `new` with the same `as:`, and `new`'s create fails: the deletes run after
    the creates, and `old`'s entry is removed, since no key holds it now (it held the revoked
    secret, and was kept untracked: the next apply refused to write `new` over it). The next
    apply creates `new` into it. With fake providers, in-process."""
    world = _World()
    old = replace(questra_key("old"), sink=SinkTarget("env", "SHARED"))
    new = replace(questra_key("new"), sink=SinkTarget("env", "SHARED"))
    assert world.apply(old).ok
    first = world.provider.keys[world.state.keys["old"].remote_id]
    world.provider.fail_on.add("create")
    report = world.apply(new)
    assert [c.address for c, _ in report.failed] == ["new"]
    assert world.provider.keys[first.id].revoked and world.sink.entries == {}
    assert world.state.keys == {}
    world.provider.fail_on.clear()
    assert world.apply(new).ok
    assert world.sink.entries == {"SHARED": f"sk_fake_{world.state.keys['new'].remote_id}"}


class _World:
    def __init__(self) -> None:
        self.provider = FakeProvider("qp", "questra", lambda: T0)
        self.sink = MemorySink()
        self.state = State.new()

    def apply(self, *keys: KeySpec) -> ApplyReport:
        ws = workspace(*keys)
        pool = ProviderPool(ws, lambda cfg, token, org: self.provider, {"QT": "t"})
        sinks = SinkPool(ws, lambda cfg: self.sink)
        snapshot = refresh(ws, self.state, pool, instances_in_use(ws, self.state))
        held = list(self.sink.entries)  # as a scan of the sink's file finds them: the foreign-entry guard sees them
        scan = SinkSnapshot(entries={"env": frozenset(held)}, lines={"env": {n: i + 1 for i, n in enumerate(held)}},
                            files={"env": "keys.env"})
        p = plan(ws, self.state, snapshot, T0, inputs=PlanInputs(readable_sinks=frozenset({"env"}), sinks=scan))
        return apply_plan(p, ApplyContext(ws, self.state, pool, sinks, Journal(None, "t"), lambda: T0))


def _imported(project: Project, emulator: Emulator, address: str, name: str, entry: str) -> None:
    """`address`: a key made outside keyform and imported, its entry `entry` (its secret not there)."""
    rid = make_remote_questra_key(emulator.url, name)
    project.questra(f"{address}:\n  provider: qp\n  name: {name}\n  sink: {{use: env, as: {entry}}}\n")
    res = project.run("import", address, rid)
    assert res.exit_code == 0, res.output


def test_destroy_removes_an_entry_an_imported_key_also_names(project: Project, emulator: Emulator,
                                                            emu_control: EmulatorControl) -> None:
    """k1's secret is in WEB; k2 was imported with `as: WEB` (its secret is not there). Destroy: the
    plan said WEB is removed, and the apply kept it (k2 was counted as holding it until its own
    delete, run after k1's), leaving the revoked secret untracked."""
    project.questra("k1:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    _imported(project, emulator, "k2", "K2", "WEB")
    planned = project.run("plan", "--destroy")
    assert "secret = (sink entry env:WEB is removed)" in planned.stdout, planned.output
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink() == {} and _live(emu_control) == {}


def test_a_key_that_moves_away_in_the_apply_does_not_keep_a_deleted_keys_entry(
        project: Project, emulator: Emulator, emu_control: EmulatorControl) -> None:
    """k1 is removed; k2, recorded at the same entry, is replaced into another one in the same
    apply. The plan said WEB "stays: key 'k2' records it"; the apply removed it (rightly)."""
    project.questra("k1:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    _imported(project, emulator, "k2", "K2", "WEB")
    project.questra("k2:\n  provider: qp\n  name: K2\n  sink: {use: env, as: OTHER}\n")
    planned = project.run("plan", "--replace", "k2")
    assert "secret = (sink entry env:WEB is removed)" in planned.stdout, planned.output
    res = project.run("apply", "--auto-approve", "--replace", "k2")
    assert res.exit_code == 0, res.output
    assert project.sink() == {"OTHER": _live(emu_control)[project.remote_id("k2")]}


def test_an_imported_key_does_not_hold_the_entry_it_names(project: Project, emulator: Emulator,
                                                          emu_control: EmulatorControl) -> None:
    """An imported key's secret was never in its entry: a new key may take that name (no --target,
    nothing to protect), as before the refusal of half a swap."""
    _imported(project, emulator, "legacy", "Legacy key", "WEB")
    project.questra("legacy:\n  provider: qp\n  name: Legacy key\n  sink: {use: env, as: OTHER}\n"
                    "web:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink() == {"WEB": _live(emu_control)[project.remote_id("web")]}


def _revokes_fail(monkeypatch: pytest.MonkeyPatch, ids: set[str]) -> None:
    """Revoking a key whose id is in `ids` (as it is at the time) fails, as an API error would."""
    real = QuestraProvider.delete

    def delete(self: QuestraProvider, remote_id: str) -> None:
        if remote_id in ids:
            raise ProviderError(f"{self.name}: revoke {remote_id}: 503 unavailable", status=503)
        real(self, remote_id)

    monkeypatch.setattr(QuestraProvider, "delete", delete)


def _renamed_while_old_could_not_be_revoked(project: Project, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """`old` renamed to `new` with the same `as:`, and old's revoke failing: SHARED holds new's
    secret, and the state records both keys there. The ids whose revoke fails (now none)."""
    failing: set[str] = set()
    _revokes_fail(monkeypatch, failing)
    project.questra("old:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    failing.add(project.remote_id("old"))
    project.questra("new:\n  provider: qp\n  sink: {use: env, as: SHARED}\n")
    assert project.run("apply", "--auto-approve").exit_code == 1
    assert set(project.state()["keys"]) == {"old", "new"}
    failing.clear()
    return failing


def test_a_key_may_rewrite_its_own_entry_that_a_key_it_replaced_is_still_recorded_at(
        project: Project, emu_control: EmulatorControl, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--target new --replace new` was refused: "SHARED holds the secret of key 'old'", which it
    does not (new's create wrote over it)."""
    _renamed_while_old_could_not_be_revoked(project, monkeypatch)
    res = project.run("apply", "--auto-approve", "--target", "new", "--replace", "new")
    assert res.exit_code == 0, res.output
    assert project.sink() == {"SHARED": _live(emu_control)[project.remote_id("new")]}


def test_destroy_keeps_the_entry_of_a_key_whose_revoke_fails(project: Project, emu_control: EmulatorControl,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Both keys recorded at SHARED are destroyed and new's revoke fails: old's delete removed the
    entry, so new, still live, lost its secret. The entry goes once every key recorded there is
    revoked."""
    failing = _renamed_while_old_could_not_be_revoked(project, monkeypatch)
    new = project.remote_id("new")
    failing.add(new)
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 1 and "503 unavailable" in res.output, res.output
    assert set(project.state()["keys"]) == {"new"}
    assert project.sink() == {"SHARED": _live(emu_control)[new]}
    failing.clear()
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink() == {} and _live(emu_control) == {}


def _web(project: Project, web: str, more: str = "") -> None:
    project.write(
        "version: 1\n"
        "providers:\n  qp: {type: questra, base_url: {url}, token: {env: QUESTRA_TOKEN}, org_id: {org}}\n"
        "  tq: {type: textql, base_url: {url}, token: {env: TEXTQL_TOKEN}}\n"
        "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\n"
        "defaults: {sink: env}\n"
        f"keys:\n  web: {web}\n{more}")


TQ_WEB = "{provider: tq, description: Web, hosts: [], api_provider: questra, auth_type: token, auth_value: {env: TOK}}"


def test_a_key_replaced_by_one_that_issues_no_secret_removes_its_entry(project: Project,
                                                                        emu_control: EmulatorControl) -> None:
    """`web` moves from Questra (a secret in env:WEB) to TextQL (no secret). The old key was
    revoked, its secret stayed in the file, tracked by nothing, and a later key at WEB was
    refused as "keyform did not write" it."""
    _web(project, "{provider: qp, name: Web}")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old_secret = project.sink()["WEB"]
    _web(project, TQ_WEB)
    env = {"TOK": "tq-input-value"}
    planned = project.run("plan", "--detailed-exitcode", env=env)
    assert planned.exit_code == 2, planned.output
    assert "its sink entry env:WEB is removed: textql issues no secret to store" in planned.stdout
    res = project.run("apply", "--auto-approve", env=env)
    assert res.exit_code == 0, res.output
    assert "WEB" not in project.sink() and old_secret not in project.sink_path.read_text()
    state = project.state()
    assert "stale_entries" not in state and "WEB" not in json.dumps(state.get("written_entries", []))
    assert project.run("plan", "--detailed-exitcode", env=env).exit_code == 0
    # the entry is free again: a new key may take it
    _web(project, TQ_WEB, "  c: {provider: qp, name: C, sink: {use: env, as: WEB}}\n")
    res = project.run("apply", "--auto-approve", env=env)
    assert res.exit_code == 0, res.output
    assert project.sink()["WEB"] == _live(emu_control)[project.remote_id("c")]


def test_a_key_replaced_by_one_that_issues_no_secret_frees_its_entry_for_a_key_in_the_same_apply(
        project: Project, emu_control: EmulatorControl) -> None:
    """The new key `c` takes WEB in the same change: not refused (no `--target` was given, yet the
    message said "this plan leaves 'web' out (--target)"), and its secret is what stays."""
    _web(project, "{provider: qp, name: Web}")
    assert project.run("apply", "--auto-approve").exit_code == 0
    _web(project, TQ_WEB, "  c: {provider: qp, name: C, sink: {use: env, as: WEB}}\n")
    env = {"TOK": "tq-input-value"}
    res = project.run("apply", "--auto-approve", env=env)
    assert res.exit_code == 0, res.output
    assert project.sink() == {"WEB": _live(emu_control)[project.remote_id("c")]}
    assert project.run("plan", "--detailed-exitcode", env=env).exit_code == 0
