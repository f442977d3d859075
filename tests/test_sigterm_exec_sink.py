"""Found by an adversarial crash campaign (stop 36): an `exec` sink's program outlived a `keyform
apply` killed by SIGTERM (a CI job cancelled): keyform starts it in its own session (`sinks/procs.py: run`, `start_new_session=True`) and
nothing ties its life to keyform's. The next apply revokes the killed apply's orphan and writes the
new key's secret; then the old program finishes and writes the REVOKED secret over it. keyform's
state and its next plan ("No changes") say the store holds the live key's secret; it holds a revoked
one, so every consumer fails.

SIGTERM is now handled as one Ctrl-C (as Terraform does): the running change, its write included,
finishes and is recorded. (SIGKILL cannot be handled: that case is open, see the closing note.)
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
    process = EmulatorProcess(latency_ms=50)
    try:
        yield process
    finally:
        process.stop()


def test_exec_sink_write_of_a_terminated_apply_does_not_land_after_recovery(tmp_path: Path,
                                                                          emulator: EmulatorProcess) -> None:
    sig = signal.SIGTERM
    store = tmp_path / "store"
    store.mkdir()
    # the first write is slow (a vault call stuck in a network retry), later ones are quick
    command = (f'n=$(ls {store}/.calls* 2>/dev/null | wc -l); touch {store}/.calls$n; '
               f'if [ "$n" = 0 ]; then sleep 3; fi; cat > "{store}/$KEYFORM_SINK_NAME"')
    project = Project(tmp_path / "proj", emulator.url)
    project.write(f"""
        version: 1
        providers:
          qp: {{type: questra, base_url: "{{url}}", token: {{env: QUESTRA_TOKEN}}, org_id: {{org}}}}
        sinks:
          vault:
            type: exec
            command: [sh, -c, '{command}']
            read_command: [sh, -c, 'cat "{store}/$KEYFORM_SINK_NAME"']
            remove_command: [sh, -c, 'rm -f "{store}/$KEYFORM_SINK_NAME"']
        defaults: {{sink: vault}}
        keys:
          q0: {{provider: qp, name: q0}}
        """)
    proc = project.spawn("apply", "--auto-approve")
    deadline = time.monotonic() + 30
    while not (store / ".calls0").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert (store / ".calls0").exists(), proc.communicate()
    time.sleep(0.2)
    os.kill(proc.pid, sig)  # the sink's program is running: keyform stops as after one Ctrl-C
    out, err = proc.communicate(timeout=30)
    assert "Interrupted" in err and "q0: created" in out + err, out + err

    recovered = project.run_process("apply", "--auto-approve")
    assert recovered.exit_code == 0, recovered.tail()
    time.sleep(4)  # the killed apply's program has finished by now

    live = project.remote_id("q0")
    with EmulatorControl(emulator.url) as control:
        keys = {k["id"]: k for k in control.questra_keys(ORG)}
    assert not keys[live]["revoked"]
    held = (store / "Q0").read_text().strip()
    revoked = {k["secret"] for k in keys.values() if k["revoked"]}
    plan = project.run_process("plan", "--detailed-exitcode")
    assert held == keys[live]["secret"], (
        f"the store holds {'a revoked key' if held in revoked else 'another'}'s secret, not the live q0's; "
        f"the next plan says: {plan.tail(200)!r} (exit {plan.exit_code})")
