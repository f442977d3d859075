"""Found by an adversarial pass (stop 36): `keyform apply PLANFILE` killed with SIGKILL, then the same saved plan applied again (a CI job
re-run applies the same plan artifact). The killed apply never saved the state, so the plan's
serial still matches; the journal's finished creates are folded in, and then the saved plan creates
those keys a second time. The first keys stay live and untracked for ever (the journal is cleared,
the next plan says "No changes").

Expected: the second `apply PLANFILE` refuses the plan as stale (the journal changed what the state
holds), or carries it out without creating a key the journal says was already created; in every
case no live key is left that no state tracks.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.emulator import EmulatorProcess
from harness.project import ORG, Project
from keyform.emulator.client import EmulatorControl


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(latency_ms=150)
    try:
        yield process
    finally:
        process.stop()


KEYS = """
q0: {provider: qp, name: q0}
"""
MORE = """
q0: {provider: qp, name: q0}
q1: {provider: qp, name: q1}
q2: {provider: qp, name: q2}
q3: {provider: qp, name: q3}
"""


def test_reapplying_a_saved_plan_after_a_kill_leaves_no_untracked_live_key(tmp_path: Path,
                                                                        emulator: EmulatorProcess) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    assert project.run_process("apply", "--auto-approve").exit_code == 0  # a state exists (serial 1)
    project.questra(MORE)
    planned = project.run_process("plan", "--out", "p.plan")
    assert planned.exit_code == 0, planned.tail()

    # apply the saved plan one change at a time; kill -9 once the journal records a finished create
    proc = project.spawn("apply", "--parallelism", "1", "p.plan")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if project.journal_path.exists() and b'"op":"done"' in project.journal_path.read_bytes():
            break
        time.sleep(0.001)
    assert proc.poll() is None, "the apply finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert b'"op":"done"' in project.journal_path.read_bytes()

    # the same plan artifact applied again
    again = project.run_process("apply", "p.plan")
    assert again.exit_code == 1 and "Saved plan is stale" in again.output, again.tail()
    assert "an interrupted apply changed what the state records" in again.output
    # a plan made now, with the journal, is not stale: it carries what the journal did
    replanned = project.run_process("plan", "--out", "p2.plan")
    assert replanned.exit_code == 0, replanned.tail()
    applied = project.run_process("apply", "p2.plan")
    assert applied.exit_code == 0, applied.tail()
    assert not project.journal_path.exists() and project.run_process("plan", "--detailed-exitcode").exit_code == 0
    with EmulatorControl(emulator.url) as control:
        live = {k["id"]: k["name"] for k in control.questra_keys(ORG) if not k["revoked"]}
    state = project.state()
    tracked = {ks["remote_id"] for ks in state["keys"].values()} | {d["remote_id"] for d in state["deposed"]}
    untracked = {i: n for i, n in live.items() if i not in tracked}
    assert untracked == {}, f"live keys no state tracks: {untracked}"
    assert len(live) == 4, f"duplicated keys: {sorted(live.values())}"
