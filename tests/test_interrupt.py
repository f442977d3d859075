"""Issue 14 item 7: Ctrl-C during `keyform apply` (a real subprocess, SIGINT, the emulator with
latency so that changes are in flight).

- Once: no new change starts; every change that finished is reported (and saved), and a summary
  names what was not started. The next apply does the rest.
- Twice: keyform stops waiting, names the creates in flight and says the next apply revokes what
  they made; that apply converges with no untracked live key.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.emulator import EmulatorProcess
from harness.generator import ManifestSpec
from harness.invariants import check_invariants
from harness.project import COMMAND_TIMEOUT, ORG, Project, wait_for
from keyform.emulator.client import EmulatorControl


@pytest.fixture
def slow_emulator() -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(latency_ms=300)
    try:
        yield process
    finally:
        process.stop()


def _ops(project: Project, op: str) -> list[str]:
    return [str(r.get("seq")) for r in project.journal_records() if r.get("op") == op]


def _converge(project: Project, control: EmulatorControl, spec: ManifestSpec) -> None:
    applied = project.run_process("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.tail()
    planned = project.run_process("plan", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.tail()
    assert check_invariants(project, control, spec) == []


def test_one_ctrl_c_reports_what_finished_and_what_was_not_started(tmp_path: Path,
                                                                   slow_emulator: EmulatorProcess) -> None:
    project = Project(tmp_path, slow_emulator.url)
    spec = ManifestSpec.initial(12, 0)
    project.write(spec)
    proc = project.spawn("apply", "--auto-approve", "--parallelism", "2")
    assert wait_for(lambda: len(_ops(project, "done")) >= 3 or proc.poll() is not None, COMMAND_TIMEOUT)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
    assert proc.returncode == 1, out + err
    state = project.state()
    assert state is not None
    finished = set(state["keys"])
    assert 3 <= len(finished) < 12
    for address in finished:  # every finished change is reported, and recorded
        assert f"{address}: created after" in out
    reported = {line.split(":")[0] for line in out.splitlines() if ": created after" in line}
    assert reported == finished
    left = 12 - len(finished)
    assert f"Interrupted: {left} change(s) not started ({left} create): " in err
    assert "Traceback" not in err
    assert not project.journal_path.exists() and not project.lock_path.exists()
    with EmulatorControl(slow_emulator.url) as control:
        _converge(project, control, spec)


def test_two_ctrl_c_name_the_creates_in_flight_and_the_next_apply_revokes_them(
        tmp_path: Path, slow_emulator: EmulatorProcess) -> None:
    project = Project(tmp_path, slow_emulator.url)
    spec = ManifestSpec.initial(8, 0)
    project.write(spec)
    with EmulatorControl(slow_emulator.url) as control:
        control.faults(latency_ms=1500)  # the creates stay in flight while the signals land
        proc = project.spawn("apply", "--auto-approve", "--parallelism", "2")
        assert wait_for(lambda: len(_ops(project, "intent")) >= 2 or proc.poll() is not None, COMMAND_TIMEOUT)
        time.sleep(0.3)  # the requests are sent (not a synchronisation: either way a create is in flight)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
        assert proc.returncode == 1, out + err
        assert "Interrupted twice: stopped waiting for the changes in flight:" in err
        in_flight = [line.split(":")[0].strip() for line in err.splitlines() if "create in flight" in line]
        assert 2 <= len(in_flight) <= 4, err  # up to 2N changes run at once (N hold a remote slot)
        assert "the next `keyform apply` revokes it (as the orphan of an interrupted create)" in err
        assert "Traceback" not in err
        assert not project.lock_path.exists()
        control.faults(latency_ms=0)
        time.sleep(1.6)  # let the server finish the abandoned creates, so the next apply finds them
        _converge(project, control, spec)
        keys = control.questra_keys(ORG)
        assert len(keys) > 8  # the abandoned creates did make keys, and they were revoked
