"""The dotenv sink never overwrites a variable keyform did not write (issue 14, item 7).

A `.env` holds other people's variables too (`OTHER_VAR=keepme`). A key declared `as: OTHER_VAR`
is refused at plan time, before any remote call, naming the key's `file:line` and the variable's
`file:line`; a saved plan is checked again at apply. Entries keyform wrote stay its own: those a
key records, those an interrupted apply may have written (its journal, then `written_entries` in
the state once recovery lets the journal go), and those of a key removed with `state rm`.
Through the CLI against the emulator over real HTTP on 127.0.0.1, plus the pure planner check.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError, SourceLoc, StateError
from keyform.journal import JournalRecordError, decode
from keyform.model import KeySpec, SinkConfig, SinkTarget, Workspace
from keyform.planner import PlanInputs, plan
from keyform.remote import RemoteSnapshot
from keyform.sinkscan import SinkSnapshot, scan
from keyform.state import KeyState, State, parse_state

ENV = ".secrets/keys.env"


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def _write_env(project: Project, text: str) -> Path:
    path = project.root / ENV
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _live(control: EmulatorControl) -> list[dict[str, object]]:
    return [k for k in control.questra_keys(ORG) if not k.get("revoked")]


def _interrupted(project: Project, intent: dict[str, Any]) -> Path:
    """The journal an apply killed after its intent (and its sink write) leaves: begin + `intent`."""
    state = project.state()
    journal = project.root / "keyform.state.json.journal"
    begin = {"op": "begin", "lineage": state["lineage"], "serial": state["serial"], "salt": state["fingerprint_salt"]}
    records = [begin, {"op": "intent", "seq": "r1.1", "provider": "qp", **intent}]
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    return journal


@pytest.mark.parametrize("command", [("plan",), ("apply", "--auto-approve")])
def test_a_variable_keyform_did_not_write_is_refused_before_any_remote_call(
        project: Project, emu_control: EmulatorControl, command: tuple[str, ...]) -> None:
    env = _write_env(project, "# mine\nOTHER_VAR=keepme\nexport PATH_X=1\n")
    before = env.read_bytes()
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: OTHER_VAR}\n")
    res = project.run(*command)
    assert res.exit_code == 1, res.output
    manifest_line = project.manifest.read_text().splitlines().index("  ci-bot:") + 1
    assert f"{project.manifest}:{manifest_line}: key 'ci-bot': sink env already holds OTHER_VAR" in res.stderr
    assert "keys.env:2), which keyform did not write" in res.stderr
    assert "Traceback" not in res.output
    assert env.read_bytes() == before  # the variable is kept, byte for byte
    assert _live(emu_control) == []  # no key was created
    assert not project.state_path.exists()


def test_an_exported_variable_is_named_at_its_line(project: Project) -> None:
    _write_env(project, "A=1\n\nB='multi\nline'\nexport TOKEN=x\n")
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: TOKEN}\n")
    res = project.run("plan")
    assert res.exit_code == 1
    assert "keys.env:5), which keyform did not write" in res.stderr


def test_every_offending_key_is_listed_at_once(project: Project) -> None:
    _write_env(project, "ONE=1\nTWO=2\n")
    project.questra("a:\n  provider: qp\n  sink: {use: env, as: ONE}\n"
                    "b:\n  provider: qp\n  sink: {use: env, as: TWO}\n"
                    "c:\n  provider: qp\n  sink: {use: env, as: THREE}\n")
    res = project.run("plan")
    assert res.exit_code == 1
    assert "already holds ONE" in res.stderr and "already holds TWO" in res.stderr
    assert "THREE" not in res.stderr


def test_keyforms_own_entries_are_rotated_and_others_kept(project: Project,
                                                           emu_control: EmulatorControl) -> None:
    _write_env(project, "OTHER_VAR=keepme\n")
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    first = project.sink()["CI_BOT"]
    res = project.run("apply", "--auto-approve", "--replace", "ci-bot")
    assert res.exit_code == 0, res.output
    assert project.sink()["OTHER_VAR"] == "keepme"
    assert project.sink()["CI_BOT"] != first
    assert "written_entries" not in project.state()


def test_a_saved_plan_is_checked_again_at_apply(project: Project, emu_control: EmulatorControl) -> None:
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    out = project.root / "p.plan"
    assert project.run("plan", "--out", str(out)).exit_code == 0
    assert out.exists()
    _write_env(project, "CI_BOT=someone-elses\n")  # appears between plan and apply
    res = project.run("apply", "--auto-approve", str(out))
    assert res.exit_code == 1, res.output
    assert "already holds CI_BOT" in res.stderr
    assert project.sink() == {"CI_BOT": "someone-elses"}
    assert _live(emu_control) == []


def test_an_entry_written_by_an_interrupted_create_stays_keyforms(project: Project,
                                                                  emu_control: EmulatorControl) -> None:
    """The kill -9 case: a create wrote CI_BOT, then died before `done`; recovery revokes the orphan
    and lets the journal go. The entry is still keyform's, in the plan and after the journal is gone."""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    # now a second key, whose create is "interrupted" after its sink write: forge that journal
    _interrupted(project, {"action": "create", "address": "web", "label": "web", "at": "2026-01-01T00:00:00Z",
                           "replaces": None, "match": {"name": "web"}, "entry": {"sink": "env", "as": "WEB"}})
    env = project.root / ENV
    env.write_text(env.read_text() + "WEB=orphaned-secret\n")
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n"
                    "web:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
    assert project.run("plan").exit_code in (0, 2)  # the journal's entry is keyform's: no refusal
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink()["WEB"] != "orphaned-secret"
    assert "written_entries" not in project.state()  # the key that took WEB over records it now


def test_the_entry_of_a_key_state_rm_forgot_is_not_overwritten_by_another_key(
        project: Project, emu_control: EmulatorControl) -> None:
    """`state rm b` forgets a key that stays live, and its secret stays in the file. The entry was
    kept as keyform's own, so a key `c` given `as: B` was planned as a plain create and its apply
    replaced the only copy of b's secret: b live and unusable, and no note. (Also two workspaces
    sharing a .env: one that let a key go to the other overwrote that key's secret.)"""
    project.questra("b:\n  provider: qp\n  sink: {use: env, as: B}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    secret = project.sink()["B"]
    assert project.run("state", "rm", "b", "-f", str(project.manifest)).exit_code == 0
    project.questra("c:\n  provider: qp\n  sink: {use: env, as: B}\n")
    for command in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*command)
        assert res.exit_code == 1, res.output
        assert (f"key 'c': sink env already holds B ({project.root / ENV}:1), which keyform did not write, or "
                "wrote for a key `state rm` forgot") in res.stderr, res.stderr
    assert project.sink() == {"B": secret}
    assert [k["name"] for k in _live(emu_control)] == ["b"]


def test_revoking_an_orphan_removes_the_entry_its_create_wrote_when_no_key_holds_it(
        project: Project, emu_control: EmulatorControl) -> None:
    """A create killed after its sink write left WEB=<the orphan's secret>; then `web` left the
    manifests. Recovery revoked the orphan but the line stayed for good: a revoked secret in the
    .env that nothing would ever remove (the state kept it as keyform's own). Revoking the orphan
    now removes that entry too, and the plan says so."""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    orphan = emu_control.bulk_questra(ORG, 1, prefix="web-")[0]  # the key the killed create made
    # (its match is what that create sent: the name the key is listed with; recovery checks it)
    journal = _interrupted(project, {"action": "create", "address": "web", "label": "web", "at": orphan["created_at"],
                                     "replaces": None, "match": {"name": orphan["name"]},
                                     "entry": {"sink": "env", "as": "WEB"}})
    with journal.open("a") as fh:
        fh.write(json.dumps({"op": "created", "seq": "r1.1", "remote_id": orphan["id"]}) + "\n")
    env = project.root / ENV
    env.write_text(env.read_text() + f"WEB={orphan['secret']}\n")
    kept = project.sink()["CI_BOT"]
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "secret = (sink entry env:WEB is removed)" in planned.stdout
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink() == {"CI_BOT": kept}  # the revoked secret's line is gone, the rest kept
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys(ORG)}[orphan["id"]] is True
    assert "written_entries" not in project.state()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def _secrets(control: EmulatorControl) -> dict[str, str]:
    return {str(k["id"]): str(k["secret"]) for k in control.questra_keys(ORG) if not k.get("revoked")}


def test_a_swap_cut_off_after_one_move_was_journaled_done_rotates_the_other_key(
        project: Project, emu_control: EmulatorControl) -> None:
    """a: A → B finished (journaled done: the fold records a at B); b: B → A cut off before its
    write. B held b's secret before a's move wrote over it: b's is gone, and a retried move read
    a's secret back as b's. Recovery checks the entries of finished moves too."""
    project.questra("a:\n  provider: qp\n  sink: {use: env, as: A}\nb:\n  provider: qp\n  sink: {use: env, as: B}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    st = project.state()
    ida, idb = st["keys"]["a"]["remote_id"], st["keys"]["b"]["remote_id"]
    project.questra("a:\n  provider: qp\n  sink: {use: env, as: B}\nb:\n  provider: qp\n  sink: {use: env, as: A}\n")
    ka = {**st["keys"]["a"], "sink": {"sink": "env", "as": "B"}}
    journal = _interrupted(project, {"action": "update", "address": "a", "remote_id": ida,
                                     "entry": {"sink": "env", "as": "B"}})
    with journal.open("a") as fh:
        for rec in ({"op": "done", "seq": "r1.1", "address": "a", "key": ka},
                    {"op": "intent", "seq": "r1.2", "provider": "qp", "action": "update", "address": "b",
                     "remote_id": idb, "entry": {"sink": "env", "as": "A"}}):
            fh.write(json.dumps(rec) + "\n")
    env = project.root / ENV
    secrets = _secrets(emu_control)
    env.write_text(env.read_text().replace(secrets[idb], secrets[ida]))  # a's move wrote B
    planned = project.run("plan")
    assert "b: its sink entry env:B may hold the secret of a" in planned.stdout, planned.output
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    st, secrets = project.state(), _secrets(emu_control)
    assert st["keys"]["b"]["remote_id"] != idb  # rotated
    assert project.sink() == {"A": secrets[st["keys"]["b"]["remote_id"]], "B": secrets[st["keys"]["a"]["remote_id"]]}


@pytest.mark.parametrize("parallelism", ["1", "10"])
def test_an_orphan_s_entry_is_kept_when_a_key_writes_it_through_another_name_of_the_file(
        project: Project, emu_control: EmulatorControl, parallelism: str) -> None:
    """Sinks `env` and `env2` name one file (exact aliases). An orphan's create journaled entry
    env:WEB; `web` now writes WEB through env2. The orphan's revoke must not remove web's secret."""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    alias = "sinks:\n  env2:\n    type: dotenv\n    path: " + ENV + "\n"
    project.manifest.write_text(project.manifest.read_text().replace("sinks:\n", alias))
    assert project.run("apply", "--auto-approve").exit_code == 0
    orphan = emu_control.bulk_questra(ORG, 1, prefix="web-")[0]
    # (its match is what that create sent: the name the key is listed with; recovery checks it)
    journal = _interrupted(project, {"action": "create", "address": "web", "label": "web", "at": orphan["created_at"],
                                     "replaces": None, "match": {"name": orphan["name"]},
                                     "entry": {"sink": "env", "as": "WEB"}})
    with journal.open("a") as fh:
        fh.write(json.dumps({"op": "created", "seq": "r1.1", "remote_id": orphan["id"]}) + "\n")
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n"
                    "web:\n  provider: qp\n  sink: {use: env2, as: WEB}\n")
    project.manifest.write_text(project.manifest.read_text().replace("sinks:\n", alias))
    planned = project.run("plan")
    assert "sink entry env:WEB is removed" not in planned.stdout, planned.output
    res = project.run("apply", "--auto-approve", "--parallelism", parallelism)
    assert res.exit_code == 0, res.output
    st = project.state()
    assert project.sink()["WEB"] == _secrets(emu_control)[st["keys"]["web"]["remote_id"]]


def test_a_rename_keeping_its_entry_through_another_name_of_the_file_is_not_refused(
        project: Project, emu_control: EmulatorControl) -> None:
    """Sinks `env` and `env2` name one file. Renaming `old` (env:WEB) to `new` (env2:WEB) was refused:
    keyform's own entries compared by sink name, so WEB read as a variable keyform did not write.
    They compare by file now (`Workspace.entry_id`): new's secret replaces old's, old is revoked."""
    alias = "sinks:\n  env2:\n    type: dotenv\n    path: " + ENV + "\n"
    project.questra("old:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
    project.manifest.write_text(project.manifest.read_text().replace("sinks:\n", alias))
    assert project.run("apply", "--auto-approve").exit_code == 0
    old_id = project.state()["keys"]["old"]["remote_id"]
    project.questra("new:\n  provider: qp\n  sink: {use: env2, as: WEB}\n")
    project.manifest.write_text(project.manifest.read_text().replace("sinks:\n", alias))
    planned = project.run("plan")
    assert planned.exit_code == 0, planned.output
    assert "its sink entry env:WEB stays: key 'new' writes it in this apply" in planned.stdout
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    st = project.state()
    assert list(st["keys"]) == ["new"]
    assert project.sink()["WEB"] == _secrets(emu_control)[st["keys"]["new"]["remote_id"]]
    assert old_id not in {k["id"] for k in _live(emu_control)}
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_key_that_took_over_an_old_orphan_s_entry_later_is_not_rotated_again_and_again(
        project: Project, emu_control: EmulatorControl) -> None:
    """An old create of `web` stays journaled until its orphan is resolved (here: out of --target).
    `api` took its entry WEB in a later apply. That create's write came before api was placed
    there: api's secret is its own, and rotating it on every apply would be wrong."""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    orphan = emu_control.bulk_questra(ORG, 1, prefix="web-")[0]
    journal = _interrupted(project, {"action": "create", "address": "web", "label": "web",
                                     "at": "2026-01-01T00:00:00Z", "replaces": None, "match": {"name": "web"},
                                     "entry": {"sink": "env", "as": "WEB"}})
    with journal.open("a") as fh:
        fh.write(json.dumps({"op": "created", "seq": "r1.1", "remote_id": orphan["id"]}) + "\n")
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n"
                    "api:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
    ids = []
    for _ in range(3):
        res = project.run("apply", "--auto-approve", "--target", "api")
        assert res.exit_code == 0, res.output
        assert "marked for rotation" not in res.output
        ids.append(project.state()["keys"]["api"]["remote_id"])
    assert len(set(ids)) == 1, ids
    assert project.sink()["WEB"] == _secrets(emu_control)[ids[0]]


def test_a_lost_reply_orphan_s_entry_is_removed_before_it_is_revoked(project: Project,
                                                                     emu_control: EmulatorControl) -> None:
    """An orphan found by listing (its create's reply was lost) is not listed once revoked. Its
    entry used to be removed after the revoke: when that removal failed (or a kill came between),
    the next apply no longer found the orphan and the revoked secret stayed in the file for good.
    The entry goes first now; the revoke waits until it is gone."""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    orphan = emu_control.bulk_questra(ORG, 1, prefix="web")[0]  # named like the create's `match`
    _interrupted(project, {"action": "create", "address": "web", "label": "web0", "at": orphan["created_at"],
                           "replaces": None, "match": {"name": "web0"}, "entry": {"sink": "env", "as": "WEB"}})
    env = project.root / ENV
    good = env.read_bytes() + f"WEB={orphan['secret']}\n".encode()
    env.write_bytes(good + b"BROKEN=\xff\n")  # the removal fails: not UTF-8
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 2 and "sink entry env:WEB is removed" in planned.stdout, planned.output
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 1 and "could not be removed, so the orphan was not revoked yet" in res.stderr, res.output
    assert orphan["secret"] not in res.output
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys(ORG)}[orphan["id"]] is False
    env.write_bytes(good)  # fixed: the next apply finds the orphan again, removes its entry, revokes it
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert "WEB" not in project.sink()
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys(ORG)}[orphan["id"]] is True


def test_apply_keeps_an_interrupted_moves_entry_after_the_journal_goes(project: Project) -> None:
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    journal = _interrupted(project, {"action": "update", "address": "ci-bot", "remote_id": project.remote_id("ci-bot"),
                                     "entry": {"sink": "env", "as": "MOVED"}})
    env = project.root / ENV
    env.write_text(env.read_text() + "MOVED=x\n")
    # the manifests went back to CI_BOT meanwhile: apply commits the recovery and drops the journal
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.state()["written_entries"] == {"env": ["MOVED"]}
    assert not journal.exists() or journal.read_text().strip() == ""
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: MOVED}\n")
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert "written_entries" not in project.state()  # the key records MOVED now


# --- the pure check, and the scan -------------------------------------------------------------

LOC = SourceLoc("keys.yaml", 7)


def _workspace(as_: str) -> Workspace:
    spec = KeySpec(address="ci-bot", provider="qp", provider_type="questra", attrs={"name": "ci-bot"},
                   sink=SinkTarget("env", as_), loc=LOC)
    return Workspace(files=("keys.yaml",), digest="d", state_path="s.json", providers={}, keys={"ci-bot": spec},
                     sinks={"env": SinkConfig("env", "dotenv", {"path": "x.env"}, LOC)})


def _snapshot(**lines: int) -> SinkSnapshot:
    return SinkSnapshot({"env": frozenset(lines)}, {"env": lines}, {"env": "x.env"})


NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_planner_refuses_a_foreign_entry_with_both_locations() -> None:
    with pytest.raises(KeyformError) as err:
        plan(_workspace("OTHER"), State.new(), RemoteSnapshot(), NOW, inputs=PlanInputs(sinks=_snapshot(OTHER=3)))
    assert str(err.value).startswith("keys.yaml:7: key 'ci-bot': sink env already holds OTHER (x.env:3)")


@pytest.mark.parametrize("how", ["key", "written", "interrupted"])
def test_planner_lets_keyform_overwrite_its_own_entry(how: str) -> None:
    state = State.new()
    interrupted: frozenset[SinkTarget] = frozenset()
    if how == "key":
        state.keys["old"] = KeyState("old", "qp", "questra", "k1", {}, {}, "never", None, "2026-01-01T00:00:00Z",
                                     sink=SinkTarget("env", "OTHER"))
    elif how == "written":
        state.written = {"env": {"OTHER"}}
    else:
        interrupted = frozenset({SinkTarget("env", "OTHER")})
    result = plan(_workspace("OTHER"), state, RemoteSnapshot(), NOW,
                  inputs=PlanInputs(sinks=_snapshot(OTHER=1), interrupted_entries=interrupted))
    assert [c.address for c in result.changes if c.address == "ci-bot"]


def test_written_entries_round_trip_and_drop_what_a_key_records() -> None:
    state = State.new()
    state.written = {"env": {"B", "A"}, "empty": set()}
    doc = json.loads(state.dumps())
    assert doc["written_entries"] == {"env": ["A", "B"]}
    assert State.from_json(doc).written == {"env": {"A", "B"}}
    state.keys["k"] = KeyState("k", "qp", "questra", "k1", {}, {}, "never", None, "2026-01-01T00:00:00Z",
                               sink=SinkTarget("env", "A"))
    assert json.loads(state.dumps())["written_entries"] == {"env": ["B"]}


def test_scan_gives_each_variable_its_first_line(tmp_path: Path) -> None:
    env = tmp_path / "x.env"
    env.write_bytes("\ufeffA=1\r\n# c\r\nB=\"two\nlines\"\nA=again\nexport C=3\n".encode())
    snap = scan({"env": SinkConfig("env", "dotenv", {"path": str(env)}, LOC)}, {"env"})
    assert snap.lines["env"] == {"A": 1, "B": 3, "C": 6}
    assert snap.where("env", "C") == f"{env}:6"
    assert snap.where("env", "D") is None


def _within(seconds: float, fn: Callable[[], Any]) -> Any:
    """fn() in a daemon thread; fails the test if it has not returned within `seconds` (a hang)."""
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still blocked after {seconds} s"
    return box[0]


def test_a_fifo_planted_at_the_dotenv_path_never_blocks_plan_or_apply(project: Project,
                                                                      emu_control: EmulatorControl) -> None:
    """Reading the .env (the plan's scan, the sink's read-modify-write) opened a FIFO and waited for a
    writer forever. Now it is refused as not a regular file, by plan and by apply before any create
    (tests/test_sink_unreadable.py)."""
    fifo = project.root / ENV
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    project.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
    for command in (("plan",), ("apply", "--auto-approve")):
        res = _within(30, lambda: project.run(*command))  # noqa: B023 (called at once)
        assert res.exit_code == 1, res.output
        assert "is not a regular file" in res.stderr and "Traceback" not in res.output
    assert emu_control.questra_keys(ORG) == []  # no key was created


def _two_keys(project: Project, a_as: str, b_as: str) -> None:
    project.questra(f"a:\n  provider: qp\n  sink: {{use: env, as: {a_as}}}\n"
                    f"b:\n  provider: qp\n  sink: {{use: env, as: {b_as}}}\n")


def test_two_keys_swapping_their_names_each_keep_their_secret(project: Project) -> None:
    """Both moves ran in parallel: one wrote its new entry (the other's old one) before the other
    read it, so both entries ended with the same secret and the other key's secret was lost."""
    _write_env(project, "OTHER_VAR=keepme\n")
    _two_keys(project, "A", "B")
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = project.sink()
    _two_keys(project, "B", "A")
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    after = project.sink()
    assert (after["A"], after["B"], after["OTHER_VAR"]) == (before["B"], before["A"], "keepme")
    assert project.run("plan").exit_code == 0  # and nothing left to do


def test_half_a_swap_under_target_is_refused_before_it_overwrites_the_other_keys_secret(
        project: Project, emu_control: EmulatorControl) -> None:
    """`--target a` of a swap (a: A → B, b: B → A) ran a's move alone: it wrote a's secret over B,
    which held b's only copy (Questra shows a secret once), and the next apply moved "b's" secret,
    a's, to A: both variables a's, b's consumers on a's key. The plan now refuses, naming b; with
    both keys targeted the swap runs."""
    _two_keys(project, "A", "B")
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = project.sink()
    _two_keys(project, "B", "A")
    for command in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*command, "--target", "a")
        assert res.exit_code == 1, res.output
        assert ("key 'a': its secret would go to sink entry env:B, which holds the secret of key 'b' (the state "
                "records it there), and this plan leaves 'b' out (--target)") in res.stderr, res.output
        assert "Traceback" not in res.output
    assert project.sink() == before and len(_secrets(emu_control)) == 2
    res = project.run("apply", "--auto-approve", "--target", "a", "--target", "b")
    assert res.exit_code == 0, res.output
    after = project.sink()
    assert (after["A"], after["B"]) == (before["B"], before["A"])
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_new_key_taking_a_moved_keys_name_does_not_take_its_secret(project: Project) -> None:
    project.questra("a:\n  provider: qp\n  sink: {use: env, as: A}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    secret = project.sink()["A"]
    _two_keys(project, "B", "A")  # a moves to B; the new key b takes A
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert project.sink()["B"] == secret and project.sink()["A"] != secret


def test_state_mv_with_a_new_sink_name_keeps_the_old_entry_keyforms(project: Project) -> None:
    """`state mv --sink-name` re-pointed the record and forgot the entry keyform had written: a key
    taking that name then was refused as overwriting a variable keyform did not write."""
    project.questra("a:\n  provider: qp\n  sink: {use: env, as: A}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    res = project.run("state", "mv", "a", "a2", "--sink-name", "A2", "-f", str(project.manifest))
    assert res.exit_code == 0, res.output
    assert project.state()["written_entries"] == {"env": ["A"]}
    _write_env(project, "A2=" + project.sink()["A"] + "\n" + (project.root / ENV).read_text())
    project.questra("a2:\n  provider: qp\n  sink: {use: env, as: A2}\nb:\n  provider: qp\n  sink: {use: env, as: A}\n")
    res = project.run("plan")
    assert res.exit_code in (0, 2), res.output
    assert "already holds" not in res.stderr


def test_a_renamed_sink_is_named_in_the_refusal(project: Project, emu_control: EmulatorControl) -> None:
    """Renaming a sink (same file) made every key's entry read as a variable 'keyform did not
    write'. keyform cannot know the old sink's file, so it still refuses, but says what happened
    and how to go on."""
    project.questra("a:\n  provider: qp\n  sink: {use: env, as: A}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    secret = project.sink()["A"]
    text = project.manifest.read_text()
    project.manifest.write_text(text.replace("  env:\n", "  dev:\n").replace("sink: env", "sink: dev")
                                .replace("use: env", "use: dev"))
    res = project.run("plan")
    assert res.exit_code == 1, res.output
    assert "the state records this key's secret as A in sink env, which the manifests no longer declare" in res.stderr
    assert "If sink dev is sink env renamed, keep its old name (env)" in res.stderr
    assert "did not write" not in res.stderr and "Traceback" not in res.output
    project.manifest.write_text(text)  # the advice: the old name back
    assert project.run("plan").exit_code == 0
    assert project.sink()["A"] == secret


@pytest.mark.parametrize(("written", "field"), [
    ({"env": [5]}, "written_entries.env[0]"), ({"env": "WEB"}, "written_entries.env"),
    ({"env": [""]}, "written_entries.env[0]"), (["env"], "written_entries"),
])
def test_a_hand_edited_written_entries_is_refused_naming_the_field(written: object, field: str) -> None:
    doc = json.loads(State.new().dumps())
    doc["written_entries"] = written
    with pytest.raises(StateError) as err:
        parse_state(json.dumps(doc).encode(), "keyform.state.json", "it was not changed")
    assert f'field "{field}"' in str(err.value) and "Traceback" not in str(err.value)


def test_odd_but_well_formed_written_entries_load_and_stay_inert() -> None:
    """Names keyform could never write (a newline, 10,000 of them) only widen what plan lets it overwrite."""
    doc = json.loads(State.new().dumps())
    doc["written_entries"] = {"env": ["A\nB", *(f"V{i}" for i in range(10_000))]}
    state = parse_state(json.dumps(doc).encode(), "keyform.state.json", "it was not changed")
    assert SinkTarget("env", "A\nB") in state.owned_entries() and len(state.written["env"]) == 10_001


@pytest.mark.parametrize("entry", [{"sink": 5, "as": "X"}, {"sink": "env"}, "env:X", {"sink": "env", "as": ""}])
def test_a_journal_intent_with_a_malformed_entry_is_refused(entry: object) -> None:
    record = {"op": "intent", "seq": "r.1", "action": "create", "address": "k", "provider": "qp", "entry": entry}
    with pytest.raises(JournalRecordError) as err:  # the backend names the journal's file and line
        decode(json.dumps(record))
    assert "entry" in str(err.value)


def _recorded(address: str, sink: SinkTarget, applied_at: str = "2026-01-01T00:00:00Z") -> KeyState:
    return KeyState(address=address, provider="qp", provider_type="questra", remote_id=f"ak_{address}", attrs={},
                    remote={}, expiry_spec="never", expires_at=None, created_at=applied_at, sink=sink,
                    applied_at=applied_at)


def test_an_interrupted_move_through_one_name_of_a_file_rotates_a_key_recorded_through_the_other() -> None:
    """Entries compare by file (`Workspace.entry_id`): a move that wrote env:B over a key recorded
    at env2:B, the same file under another sink name, lost that key's secret just the same."""
    from keyform.journal import Intent
    from keyform.recovery import _rotate_written_over

    state = State.new()
    state.keys["q1"] = _recorded("q1", SinkTarget("env2", "B"))
    state.keys["q2"] = _recorded("q2", SinkTarget("other", "B"))  # another file: untouched
    state.keys["q3"] = _recorded("q3", SinkTarget("env", "B"), applied_at="2026-06-01T00:00:00Z")  # placed later
    move = Intent("r1.1", "update", "q0", "qp", {"remote_id": "ak_q0", "entry": {"sink": "env", "as": "B"},
                                                "at": "2026-03-01T00:00:00Z"})
    same_file = {"env": "f", "env2": "f"}
    notes = _rotate_written_over(state, [move], [], {}, lambda t: (same_file.get(t.sink, t.sink), t.name))
    assert [k for k, ks in state.keys.items() if ks.rotation_requested] == ["q1"]
    assert notes == ["q1: its sink entry env2:B may hold the secret of q0 (an interrupted apply wrote it there), "
                     "not its own; q1 is marked for rotation"]


def test_a_variable_that_appears_while_the_apply_runs_is_not_overwritten(project: Project,
                                                                         emu_control: EmulatorControl) -> None:
    """The plan found WEB absent; while the create was in flight someone (another workspace
    sharing the file, a person) wrote WEB=theirs; the write replaced it. The sink now refuses a
    variable keyform did not write, the new key is revoked, theirs stays."""
    from tests.hostile import Seen, hostile

    with hostile(upstream=project.url) as api:
        proxied = Project(project.root, api.url)
        proxied.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n")
        assert proxied.run("apply", "--auto-approve").exit_code == 0
        proxied.questra("ci-bot:\n  provider: qp\n  sink: {use: env, as: CI_BOT}\n"
                        "web:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
        env = project.root / ENV

        def meanwhile(seen: Seen) -> None:
            if seen.method == "POST" and seen.path == "/api-keys":
                with env.open("a") as fh:
                    fh.write("WEB=theirs\n")
            return None

        api.script = meanwhile
        res = proxied.run("apply", "--auto-approve")
    assert res.exit_code == 1, res.output
    assert f"{env}: WEB appeared in the file after the plan, and keyform did not write it; not overwritten" \
        in res.stderr, res.output
    assert "was revoked" in res.stderr
    assert env.read_text().count("WEB=theirs\n") == 1 and "CI_BOT=" in env.read_text()
    assert len(_live(emu_control)) == 1  # ci-bot; web's new key revoked


@pytest.mark.parametrize("parallelism", ["1", "8"])
def test_a_swap_through_two_names_of_one_file_keeps_both_secrets(project: Project, emu_control: EmulatorControl,
                                                                  parallelism: str) -> None:
    """Sinks env and env2 name one file; x (WEB) and b (B) swap entries, x through env2. Once
    entries compared by file at plan time, the apply still compared them by sink name: b's move
    removed B, which x had just written through env2, and its own move could read x's secret."""
    sinks = "sinks:\n  env2:\n    type: dotenv\n    path: " + ENV + "\n"
    project.questra("x:\n  provider: qp\n  sink: {use: env, as: WEB}\nb:\n  provider: qp\n  sink: {use: env, as: B}\n")
    project.manifest.write_text(project.manifest.read_text().replace("sinks:\n", sinks))
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.questra("x:\n  provider: qp\n  sink: {use: env2, as: B}\nb:\n  provider: qp\n  sink: {use: env, as: WEB}\n")
    project.manifest.write_text(project.manifest.read_text().replace("sinks:\n", sinks))
    res = project.run("apply", "--auto-approve", "--parallelism", parallelism)
    assert res.exit_code == 0, res.output
    secrets, st = _secrets(emu_control), project.state()
    assert project.sink() == {"B": secrets[st["keys"]["x"]["remote_id"]], "WEB": secrets[st["keys"]["b"]["remote_id"]]}
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_deleting_an_imported_key_says_its_entry_stays(project: Project, emu_control: EmulatorControl) -> None:
    """An imported key's entry was never keyform's, so a destroy leaves it; the plan said only
    "destroy requested", and the next key given that `as:` was then refused with no warning before."""
    project.questra("a:\n  provider: qp\n  sink: {use: env, as: A}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    remote_id = project.remote_id("a")
    assert project.run("state", "rm", "a", "-f", str(project.manifest)).exit_code == 0
    assert project.run("import", "a", remote_id).exit_code == 0
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert "its sink entry env:A is left as it is: keyform did not write it (an imported key)" in res.stdout, res.stdout
    assert "A" in project.sink() and _live(emu_control) == []
