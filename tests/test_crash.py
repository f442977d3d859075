"""Crash safety (issue 6): `kill -9` of `keyform apply` at random moments, then convergence and the
invariants of `harness/invariants.py`; and exact replays of the crash points that once broke them.

The random trials are the quick CI version of `bench/crash.py`: small manifests (6 keys: 4 Questra
keys sunk to a dotenv file, 2 TextQL keys fed by their secrets), 30 ms of emulator latency,
parallelism 2–4, at least 50 kills that landed while keyform ran. `pytest -s` prints the figures.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.crash import LaneConfig, run_trials
from harness.emulator import EmulatorProcess
from harness.generator import ManifestSpec, QuestraSpec
from harness.invariants import check_invariants
from harness.project import COMMAND_TIMEOUT, ORG, Project
from keyform.backends.local import LocalBackend
from keyform.emulator.client import EmulatorControl
from keyform.journal import Begin, Journal, Sunk
from keyform.model import SinkTarget
from keyform.sinks.dotenv import DotenvSink
from keyform.state import KeyState, State


def test_kill9_trials_converge_with_every_invariant_intact(tmp_path: Path) -> None:
    config = LaneConfig(n_keys=6, latency_ms=30, parallelism=(2, 4), keep_failures=tmp_path / "failures")
    summary = run_trials(50, lanes=3, seed=2026, config=config, workdir=tmp_path / "lanes", min_kills=50,
                         max_trials=75)
    print("\n" + summary.report())
    assert summary.violations == []
    assert summary.kills >= 50, summary.report()
    # no human step: the dead apply's lock frees itself (issue 14)
    assert sum(r.force_unlocks + r.lock_files_deleted for r in summary.results) == 0
    assert all(r.applies <= 2 for r in summary.results)


# ------------------------------------------------------------------ exact replays of crash points


def _converge(project: Project) -> None:
    applied = project.run_process("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.tail()
    planned = project.run_process("plan", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.tail()


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    """Here the emulator runs as its own process (as in the trials), not in a thread; stopped after."""
    process = EmulatorProcess()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def control(emulator: EmulatorProcess) -> Iterator[EmulatorControl]:
    with EmulatorControl(emulator.url) as client:
        yield client


def _store(project: Project) -> LocalBackend:
    store = LocalBackend(project.state_path)
    store.load()
    return store


def test_first_apply_killed_after_a_finished_create_keeps_that_key(tmp_path: Path, emulator: EmulatorProcess,
                                                                   control: EmulatorControl) -> None:
    """The very first apply dies before it ever saves the state: its journal is the only record of
    the keys it finished. The next run must adopt them, not create them a second time."""
    project = Project(tmp_path, emulator.url)
    spec = ManifestSpec.initial(2, 1)
    project.write(spec)
    _converge(project)
    finished = _store(project).load()
    assert finished is not None
    # what the killed first apply left: no state file, a journal whose creates of q0 and t0 are
    # done, and whose create of q1 was cut off right after the remote call was sent
    first = State(lineage=finished.lineage, serial=0, salt=finished.salt)
    project.state_path.unlink()
    project.backup_path.unlink(missing_ok=True)
    store = LocalBackend(project.state_path)
    fh = store.journal_open()
    fh.append(Begin.of(first))
    journal = Journal(fh, "killed")
    for address in ("q0", "t0"):
        ks: KeyState = finished.keys[address]
        seq = journal.intent("create", address, ks.provider, label=address, at=ks.created_at, match={})
        journal.created(seq, ks.remote_id)
        if ks.provider_type == "questra":
            fh.append(Sunk(seq))  # as earlier keyform versions journaled it
        journal.done(seq, key=ks)
    journal.intent("create", "q1", "qp", label="q1", at=finished.keys["q1"].created_at,
                   match={"name": "q1"})
    fh.close()

    _converge(project)
    state = project.state()
    assert state is not None
    assert state["keys"]["q0"]["remote_id"] == finished.keys["q0"].remote_id
    assert state["keys"]["t0"]["remote_id"] == finished.keys["t0"].remote_id
    assert state["lineage"] == finished.lineage
    orphan = finished.keys["q1"].remote_id  # found by list-and-match, revoked, created anew
    assert {k["id"]: k["revoked"] for k in control.questra_keys(ORG)}[orphan] is True
    assert state["keys"]["q1"]["remote_id"] != orphan
    assert check_invariants(project, control, spec) == []


@pytest.mark.parametrize("journaled_sunk", [True, False], ids=["sunk-journaled", "sunk-not-yet-journaled"])
def test_replacement_killed_after_its_secret_was_sunk_rotates_the_key(tmp_path: Path, journaled_sunk: bool,
                                                                      emulator: EmulatorProcess,
                                                                      control: EmulatorControl) -> None:
    """`apply --replace q0` dies after writing the new secret over q0's sink entry but before
    recording the new key (before or after journaling `sunk`). Recovery revokes the new key; the key
    still in state has lost its secret from the sink, so it must be rotated (a plain `apply` would
    otherwise find nothing to do)."""
    project = Project(tmp_path, emulator.url)
    spec = ManifestSpec.initial(2, 1)
    project.write(spec)
    _converge(project)
    store = LocalBackend(project.state_path)
    state = store.load()
    assert state is not None
    old = state.keys["q0"].remote_id
    new = control.bulk_questra(ORG, 1, prefix="q0-new-")[0]  # the key the killed apply created
    DotenvSink(project.sink_path).write("q0", "Q0", new["secret"])
    fh = store.journal_open()
    fh.append(Begin.of(state))
    journal = Journal(fh, "killed")
    # (its match is what that create sent: the name the key is listed with; recovery checks it)
    seq = journal.intent("create", "q0", "qp", label="q0", at=new["created_at"], replaces=old,
                         match={"name": new["name"]})
    journal.created(seq, new["id"])
    if journaled_sunk:
        fh.append(Sunk(seq))  # a journal written by an earlier keyform
    fh.close()

    _converge(project)
    after = project.state()
    assert after is not None
    assert after["keys"]["q0"]["remote_id"] not in (old, new["id"])
    revoked = {k["id"]: k["revoked"] for k in control.questra_keys(ORG)}
    assert revoked[old] and revoked[new["id"]]
    assert check_invariants(project, control, spec) == []
    assert json.loads(project.state_path.read_text())["keys"]["q0"]["rotation_requested"] is False


def test_sink_move_killed_after_the_old_entry_was_removed_converges(tmp_path: Path, emulator: EmulatorProcess,
                                                                   control: EmulatorControl) -> None:
    """The manifest moves q0's secret to another dotenv entry (an in-place update: the secret is read
    back and written again). The apply dies after writing the new entry and removing the old one, but
    before journaling the update: state still names the old entry. The next apply must still find
    the secret (it is in the new entry) instead of failing on every run."""
    project = Project(tmp_path, emulator.url)
    spec = ManifestSpec.initial(2, 1)
    project.write(spec)
    _converge(project)
    moved = ManifestSpec((QuestraSpec("q0", "q0", "Q0_MOVED"), *spec.questra[1:]), spec.textql)
    project.write(moved)
    store = LocalBackend(project.state_path)
    state = store.load()
    assert state is not None
    sink = DotenvSink(project.sink_path)
    sink.write("q0", "Q0_MOVED", sink.read("Q0") or "")
    sink.remove("Q0")
    fh = store.journal_open()
    fh.append(Begin.of(state))
    Journal(fh, "killed").intent("update", "q0", "qp", remote_id=state.keys["q0"].remote_id)
    fh.close()

    _converge(project)
    after = project.state()
    assert after is not None
    assert after["keys"]["q0"]["sink"] == {"sink": "env", "as": "Q0_MOVED"}
    assert check_invariants(project, control, moved) == []


def _move_killed_before_the_old_entry_went(project: Project) -> tuple[ManifestSpec, ManifestSpec, str, KeyState, str]:
    """Converge a project, then leave what an apply moving q0's secret from its entry to Q0_MOVED
    leaves when killed after journaling the move done and before removing the old entry; the moved
    manifests are written. Returns (spec, moved, old entry, q0's state before, its secret)."""
    spec = ManifestSpec.initial(2, 1)
    project.write(spec)
    _converge(project)
    q0 = spec.questra[0]
    old = q0.entry or q0.address.upper()
    moved = ManifestSpec((QuestraSpec(q0.address, q0.name, "Q0_MOVED"), *spec.questra[1:]), spec.textql)
    store = LocalBackend(project.state_path)
    state = store.load()
    assert state is not None
    sink = DotenvSink(project.sink_path)
    secret = sink.read(old)
    assert secret
    sink.write(q0.address, "Q0_MOVED", secret)
    ks = state.keys[q0.address]
    fh = store.journal_open()
    fh.append(Begin.of(state))
    journal = Journal(fh, "killed")
    seq = journal.intent("update", q0.address, "qp", remote_id=ks.remote_id, entry={"sink": "env", "as": "Q0_MOVED"})
    journal.done(seq, key=replace(ks, sink=SinkTarget("env", "Q0_MOVED")))  # killed here: the old entry stays
    fh.close()
    project.write(moved)
    return spec, moved, old, ks, secret


def test_sink_move_killed_before_the_old_entry_was_removed_leaves_it_as_keyforms_own(
        tmp_path: Path, emulator: EmulatorProcess, control: EmulatorControl) -> None:
    """q0's secret moves from Q0 to Q0_MOVED. The apply dies after journaling the move done and
    before removing Q0 (the old entry goes only once the journal has the new one). Recovery folded
    the move, and nothing recorded Q0 any more: when the manifests later put a key at Q0 again,
    every apply refused it as a variable keyform did not write (found by the kill -9 trials). The
    entry a finished move left is now keyform's own (`State.written`)."""
    project = Project(tmp_path, emulator.url)
    spec, _, old, _, _ = _move_killed_before_the_old_entry_went(project)
    q0 = spec.questra[0]
    _converge(project)
    assert project.state()["keys"][q0.address]["sink"] == {"sink": "env", "as": "Q0_MOVED"}
    project.write(spec)  # and back: Q0 is keyform's own, not a variable it must leave alone
    _converge(project)
    assert project.state()["keys"][q0.address]["sink"] == {"sink": "env", "as": old}
    assert check_invariants(project, control, spec) == []


def test_sink_move_killed_before_the_old_entry_was_removed_plans_the_stale_copy_away(
        tmp_path: Path, emulator: EmulatorProcess, control: EmulatorControl) -> None:
    """The same kill as above, with the manifests left as they are: Q0 still held q0's live
    secret after recovery, recorded only as keyform's own, and no later plan or apply removed it
    (a copy of a live secret where the manifests no longer put it). The fold now records it as a
    stale copy (`State.stale`); the plan shows its removal, the apply removes it, and the next plan
    has nothing to do. No output carries the secret."""
    project = Project(tmp_path, emulator.url)
    spec, moved, old, ks, secret = _move_killed_before_the_old_entry_went(project)
    q0 = spec.questra[0]
    sink = DotenvSink(project.sink_path)

    planned = project.run_process("plan", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.tail()  # a change: the stale copy goes
    assert f"{q0.address} (stale copy at env:{old}) will be removed" in planned.stdout, planned.tail()
    assert f"secret = (sink entry env:{old} is removed)" in planned.stdout, planned.tail()
    shown = json.loads(project.run_process("plan", "--format", "json").stdout)
    stale = [c for c in shown["changes"] if c.get("stale")]
    assert [(c["address"], c["action"], c["sink"], c["remote_id"]) for c in stale] == \
        [(q0.address, "delete", f"env:{old}", ks.remote_id)], shown["changes"]
    applied = project.run_process("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.tail()
    assert f"{q0.address} (stale copy at env:{old}): removed" in applied.stdout, applied.tail()
    assert "0 created, 0 updated, 0 replaced, 0 deleted, 1 stale secret copy removed, 0 failed" in applied.stdout, applied.tail()
    assert sink.read(old) is None and sink.read("Q0_MOVED") == secret
    after = project.state()
    assert "stale_entries" not in after and after["keys"][q0.address]["remote_id"] == ks.remote_id
    again = project.run_process("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.tail()
    for out in (planned, applied, again):
        assert secret not in out.stdout + out.stderr
    assert check_invariants(project, control, moved) == []


def test_swap_killed_after_one_move_rotates_the_key_whose_entry_it_overwrote(
        tmp_path: Path, emulator: EmulatorProcess, control: EmulatorControl) -> None:
    """Two keys swap their `as:` (q0: Q0 → Q1, q1: Q1 → Q0). The apply dies after q0's move wrote its
    secret over Q1 and before anything was journaled done: q1's secret is gone from the sink, and
    the state still says Q1 holds it. The retried swap read Q1 as q1's secret and left both entries
    holding q0's, with no error. Recovery now sees that the interrupted move may have written over
    another key's entry and rotates that key."""
    project = Project(tmp_path, emulator.url)
    spec = ManifestSpec.initial(2, 1)
    project.write(spec)
    _converge(project)
    q0, q1 = spec.questra[0], spec.questra[1]
    e0, e1 = q0.entry or q0.address.upper(), q1.entry or q1.address.upper()
    swapped = ManifestSpec((QuestraSpec(q0.address, q0.name, e1), QuestraSpec(q1.address, q1.name, e0),
                            *spec.questra[2:]), spec.textql)
    project.write(swapped)
    store = LocalBackend(project.state_path)
    state = store.load()
    assert state is not None
    sink = DotenvSink(project.sink_path)
    old_q1 = state.keys[q1.address].remote_id
    sink.write(q0.address, e1, sink.read(e0) or "")  # q0's move, cut off here
    fh = store.journal_open()
    fh.append(Begin.of(state))
    Journal(fh, "killed").intent("update", q0.address, "qp", remote_id=state.keys[q0.address].remote_id,
                                 entry={"sink": "env", "as": e1})
    fh.close()

    note = (f"{q1.address}: its sink entry env:{e1} may hold the secret of {q0.address} (an interrupted apply "
            f"wrote it there), not its own; {q1.address} is marked for rotation")
    planned = project.run_process("plan")
    assert note in planned.stdout, planned.tail()
    # the note states what recovery did, never what the plan does not: a destroy plan deletes q1, a
    # plan for q0 alone leaves it marked (the next apply that includes it rotates it)
    for scope in (["--destroy"], ["--target", q0.address]):
        scoped = project.run_process("plan", "--format", "json", *scope)
        assert scoped.exit_code == 0, scoped.tail()
        shown = json.loads(scoped.stdout)
        assert note in shown["notes"] and not any("will be rotated" in n for n in shown["notes"]), shown["notes"]
        actions = {c["address"]: c["action"] for c in shown["changes"]}
        assert actions.get(q1.address) == ("delete" if scope == ["--destroy"] else None), actions
    _converge(project)
    after = project.state()
    assert after["keys"][q1.address]["remote_id"] != old_q1  # rotated: its old secret was lost
    assert after["keys"][q0.address]["sink"] == {"sink": "env", "as": e1}
    assert check_invariants(project, control, swapped) == []  # each entry holds its own key's secret


def test_emulator_ignores_a_request_whose_client_died_before_sending_the_body(emulator: EmulatorProcess) -> None:
    """A keyform killed between sending a create's headers and its body must not make the emulator
    create a key from an empty body (it did: an empty TextQL key appeared, breaking invariant (a))."""
    host, port = emulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=COMMAND_TIMEOUT) as conn:
        conn.sendall(b"POST /v1/api-keys/create HTTP/1.1\r\nHost: emulator\r\nAuthorization: Bearer t\r\n"
                     b"Connect-Protocol-Version: 1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 120\r\n\r\n")
        conn.shutdown(socket.SHUT_WR)  # the body never comes
        answer = conn.recv(65536)  # returns once the server has handled the request (or dropped it)
    with EmulatorControl(emulator.url) as control:
        assert control.textql_keys() == []
    assert answer == b""
