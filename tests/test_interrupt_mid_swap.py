"""Found by an adversarial crash sweep (stop 36): one Ctrl-C (SIGINT) during an apply that swaps two keys' sink entries leaves one key's entry
holding the OTHER key's secret, and every later plan says "No changes" (found by the kill-point sweep
a kill-point sweep, SIGINT at journal lines 1-3).

q0 writes env:A and q1 writes env:B; the manifests swap them (q0 -> B, q1 -> A). The apply moves q0
first: it writes q0's secret to B (over q1's secret) and is interrupted before q1's move starts. One
Ctrl-C saves the finished change (q0 at B) into the state and clears the journal. The next apply
plans q1's move "fd:B -> A": it reads B, which now holds q0's secret, and writes THAT to A. Now
both A and B hold q0's secret; q1's own secret is gone; the state says q1's secret is at A; a
TextQL key fed by `secret_of: q1` gets q0's secret too; `plan` says "No changes".

After a SIGKILL at the same point the journal tells the next plan that B was overwritten and q1 is
rotated (docs/recovery.md, docs/sinks.md "A move whose old entry another change of the same apply
writes ... reads its secret before that apply writes anything"): the graceful interrupt path loses
exactly that information.

Expected: after the interrupt, the next apply either rotates q1 (its secret existed only in the
interrupted process) or never reads a moved entry that the interrupted apply overwrote; in every
case entry A holds q1's live secret.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.emulator import EmulatorProcess
from harness.project import COMMAND_TIMEOUT, ORG, Project, Result, wait_for
from keyform.emulator.client import EmulatorControl
from keyform.sinks.dotenv import DotenvSink


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(latency_ms=300)
    try:
        yield process
    finally:
        process.stop()


def _converged(project: Project, emulator: EmulatorProcess) -> tuple[Result, dict[str, str], dict[str, Any],
                                                                     DotenvSink]:
    """The apply after the interrupt (it must succeed), then a plan: (the plan, live id -> secret at
    the emulator, the state, the sink)."""
    again = project.run_process("apply", "--auto-approve")
    assert again.exit_code == 0, again.tail()
    planned = project.run_process("plan", "--detailed-exitcode")
    with EmulatorControl(emulator.url) as control:
        secrets = {k["id"]: k["secret"] for k in control.questra_keys(ORG) if not k["revoked"]}
    return planned, secrets, project.state(), DotenvSink(project.sink_path)


BEFORE = """
q0: {provider: qp, name: q0, sink: {use: env, as: A}}
q1: {provider: qp, name: q1, sink: {use: env, as: B}}
"""
SWAPPED = """
q0: {provider: qp, name: q0, sink: {use: env, as: B}}
q0b: {provider: qp, name: q0b}
q1: {provider: qp, name: q1, sink: {use: env, as: A}}
"""


def test_one_ctrl_c_after_the_first_move_of_a_swap_keeps_each_key_its_own_secret(
        tmp_path: Path, emulator: EmulatorProcess) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(BEFORE)
    assert project.run_process("apply", "--auto-approve").exit_code == 0

    q0_secret = DotenvSink(project.sink_path).read("A")
    project.questra(SWAPPED)
    proc = project.spawn("apply", "--auto-approve", "--parallelism", "1")
    # q0's move is done (B holds q0's secret) while q0b's create (300 ms) runs; q1's move comes next
    assert wait_for(lambda: DotenvSink(project.sink_path).read("B") == q0_secret or proc.poll() is not None,
                    COMMAND_TIMEOUT)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
    assert "Interrupted" in err, "precondition: the apply was interrupted part way: " + (out + err)[-800:]

    planned, secrets, state, sink = _converged(project, emulator)
    q0, q1 = (secrets[state["keys"][a]["remote_id"]] for a in ("q0", "q1"))
    assert sink.read("B") == q0
    assert sink.read("A") == q1, (
        f"env:A (q1's entry) holds {'q0' if sink.read('A') == q0 else 'another'}'s secret, not q1's; "
        f"the next plan says {planned.tail(120)!r} (exit {planned.exit_code})")


BEFORE_ONE = """
q0: {provider: qp, name: q0, sink: {use: env, as: A}}
"""
NEW_KEY_TAKES_A = """
a9: {provider: qp, name: a9, sink: {use: env, as: A}}
q0: {provider: qp, name: q0, sink: {use: env, as: B}}
"""


def test_one_ctrl_c_after_a_new_key_took_a_moved_keys_entry_keeps_the_moved_keys_secret(
        tmp_path: Path, emulator: EmulatorProcess) -> None:
    """Same root cause: a new key a9 takes env:A, which q0 leaves for env:B. a9 (first in order) is
    created and written to A, over q0's secret; Ctrl-C; q0's move never starts. The next apply moves
    "q0's secret" from A to B: it copies a9's secret. q0's own secret is nowhere; plan: No changes."""
    project = Project(tmp_path, emulator.url)
    project.questra(BEFORE_ONE)
    assert project.run_process("apply", "--auto-approve").exit_code == 0
    q0_secret = DotenvSink(project.sink_path).read("A")

    project.questra(NEW_KEY_TAKES_A)
    proc = project.spawn("apply", "--auto-approve", "--parallelism", "1")
    assert wait_for(lambda: (project.journal_path.exists() and b"a9" in project.journal_path.read_bytes())
                    or proc.poll() is not None, COMMAND_TIMEOUT)
    time.sleep(0.1)  # the intent is journaled just before the call is sent: let it go out (300 ms of latency)
    proc.send_signal(signal.SIGINT)  # a9's create is in flight; it finishes, q0's move does not start
    out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
    assert "Interrupted: 1 change(s) not started (1 update): q0" in err, (out + err)[-800:]

    planned, secrets, state, sink = _converged(project, emulator)
    live_q0 = secrets[state["keys"]["q0"]["remote_id"]]
    assert sink.read("B") == live_q0, (
        f"env:B (q0's entry) holds {'a9' if sink.read('B') == sink.read('A') else 'another key'}'s secret, "
        f"not q0's (q0's secret {'is' if q0_secret and q0_secret in sink.path.read_text() else 'is nowhere'} in the sink); "
        f"the next plan says {planned.tail(120)!r} (exit {planned.exit_code})")
