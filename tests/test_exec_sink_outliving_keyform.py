"""Found by an adversarial crash campaign (stop 36): an `exec` sink's program outlived a `keyform
apply` killed by SIGTERM (a CI job cancelled): keyform starts it in its own session (`sinks/procs.py: run`, `start_new_session=True`) and
nothing ties its life to keyform's. The next apply revokes the killed apply's orphan and writes the
new key's secret; then the old program finishes and writes the REVOKED secret over it. keyform's
state and its next plan ("No changes") say the store holds the live key's secret; it holds a revoked
one, so every consumer fails.

SIGTERM is now handled as one Ctrl-C (as Terraform does): the running change, its write included,
finishes and is recorded.

SIGKILL (stop 37) cannot be handled: the program holds the state lock's open file
(`keyform.inherited`), so the next command waits for it (`--lock-timeout`), or says that a program
the dead keyform started still holds the lock, instead of racing its late write. With the postgres
backend (stop 38) the program holds the lock's database session's socket, to the same effect.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness.emulator import EmulatorProcess
from harness.project import ORG, Project, wait_for
from keyform.emulator.client import EmulatorControl
from tests.pgcluster import PASSWORD


def _slow_vault(tmp_path: Path, url: str, pg_dsn: str | None = None) -> tuple[Project, Path]:
    """A project whose exec sink's first write is slow (a vault call stuck in a network retry);
    its state in a fresh postgres database with `pg_dsn`."""
    store = tmp_path / "store"
    store.mkdir()
    command = (f'n=$(ls {store}/.calls* 2>/dev/null | wc -l); touch {store}/.calls$n; '
               f'if [ "$n" = 0 ]; then sleep 3; fi; cat > "{store}/$KEYFORM_SINK_NAME"; touch {store}/.done$n')
    project = Project(tmp_path / "proj", url, env={"KF_TEST_DSN": pg_dsn} if pg_dsn else None)
    state = "state: {backend: postgres, dsn: {env: KF_TEST_DSN}}" if pg_dsn else ""
    project.exec_vault(f"sh, -c, '{command}'", store, extra=state)
    return project, store


def _writing(project: Project, store: Path, proc: subprocess.Popen[Any] | None = None) -> subprocess.Popen[Any]:
    """`keyform apply` (or `proc`, started by the caller) once its sink's slow first write runs."""
    proc = proc or project.spawn("apply", "--auto-approve")
    deadline = time.monotonic() + 30
    while not (store / ".calls0").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert (store / ".calls0").exists(), proc.communicate()
    time.sleep(0.2)
    return proc


def _first_program_done(store: Path) -> None:
    """Wait until the slow first write's program has written and finished (its late write, if any, landed)."""
    assert wait_for(lambda: (store / ".done0").exists(), 30, interval=0.02), "the first sink program never finished"


def _signal_during_the_write(project: Project, store: Path, sig: signal.Signals) -> tuple[str, str]:
    proc = _writing(project, store)
    os.kill(proc.pid, sig)  # the sink's program is running
    return proc.communicate(timeout=30)


def _holds_the_live_secret(project: Project, store: Path, url: str) -> None:
    with EmulatorControl(url) as control:
        keys = {k["id"]: k for k in control.questra_keys(ORG)}
    live, = (i for i, k in keys.items() if not k["revoked"])  # the one key the state records (local or postgres)
    assert json.loads(project.run_process("state", "pull").stdout)["keys"]["q0"]["remote_id"] == live
    held = (store / "Q0").read_text().strip()
    revoked = {k["secret"] for k in keys.values() if k["revoked"]}
    plan = project.run_process("plan", "--detailed-exitcode")
    assert held == keys[live]["secret"], (
        f"the store holds {'a revoked key' if held in revoked else 'another'}'s secret, not the live q0's; "
        f"the next plan says: {plan.tail(200)!r} (exit {plan.exit_code})")


def test_exec_sink_write_of_a_terminated_apply_does_not_land_after_recovery(tmp_path: Path,
                                                                          emulator_process: EmulatorProcess) -> None:
    project, store = _slow_vault(tmp_path, emulator_process.url)
    out, err = _signal_during_the_write(project, store, signal.SIGTERM)  # keyform stops as after one Ctrl-C
    assert "Interrupted" in err and "q0: created" in out + err, out + err
    recovered = project.run_process("apply", "--auto-approve")
    assert recovered.exit_code == 0, recovered.tail()
    _first_program_done(store)  # the killed apply's program has finished by now
    _holds_the_live_secret(project, store, emulator_process.url)


def test_a_sink_program_of_a_killed_apply_cannot_write_after_the_next_apply(tmp_path: Path,
                                                                            emulator_process: EmulatorProcess) -> None:
    """An `exec` sink's program outliving a `kill -9`ed apply (left open in stop 36; SIGTERM was fixed
then): keyform runs it in its own session, so it goes on after keyform dies. The next apply revoked
the killed apply's orphan and wrote the new key's secret; then the old program finished and wrote
the REVOKED secret over it, while the state and the next plan ("No changes") said the store holds
the live one.

The program now holds the state lock's open file (`keyform.inherited`): the next apply waits for it
(`--lock-timeout`), or says that a program the dead keyform started still holds the lock."""
    project, store = _slow_vault(tmp_path, emulator_process.url)
    _signal_during_the_write(project, store, signal.SIGKILL)  # the sink's program goes on
    # without waiting: one line saying what holds the lock, nothing changed
    locked = project.run_process("plan")
    assert locked.exit_code == 1 and "has exited, but a program it started" in locked.output, locked.tail()
    _recovers_after_the_program(project, store, emulator_process.url)


def test_with_the_postgres_backend_too(tmp_path: Path, emulator_process: EmulatorProcess, pg_dsn: str) -> None:
    """The postgres backend's lock is a database session's advisory lock (stop 37 left this open):
the session ended when the killed keyform's socket closed, though its program was still running, so
the next apply raced the program's late write. The program now holds that socket too."""
    project, store = _slow_vault(tmp_path, emulator_process.url, pg_dsn)
    _signal_during_the_write(project, store, signal.SIGKILL)
    locked = project.run_process("plan")
    assert locked.exit_code == 1, locked.tail()
    assert "has exited, but its database session" in locked.output, locked.tail()
    assert ": sh" in locked.output, locked.tail()  # the program holding the session, named
    assert pg_dsn not in locked.output and PASSWORD not in locked.output and "Traceback" not in locked.output
    _recovers_after_the_program(project, store, emulator_process.url)


def _recovers_after_the_program(project: Project, store: Path, url: str) -> None:
    recovered = project.run_process("apply", "--auto-approve", "--lock-timeout", "30s")
    assert recovered.exit_code == 0, recovered.tail()
    _first_program_done(store)
    _holds_the_live_secret(project, store, url)
    assert project.run_process("plan", "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("backend", ["local", "postgres"])
def test_an_apply_abandoned_at_a_second_sigterm_leaves_the_lock_to_its_sink_program(
        tmp_path: Path, emulator_process: EmulatorProcess, request: pytest.FixtureRequest, backend: str) -> None:
    """Found by an adversarial review (stop 38): a second Ctrl-C or SIGTERM abandons the apply
without waiting for its sink writes, and leaving the lock's block released the lock (the local
lock file removed; the postgres lock unlocked and its session ended) while the `exec` sink's
program still ran. The next apply then raced that program, which wrote a revoked secret over the
live one. Now the lock stays with the program, as after a `kill -9`."""
    dsn = request.getfixturevalue("pg_dsn") if backend == "postgres" else None
    project, store = _slow_vault(tmp_path, emulator_process.url, dsn)
    proc = _writing(project, store)
    os.kill(proc.pid, signal.SIGTERM)  # a CI job cancelled, then killed "gracefully" once more
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "interrupted twice" in err, out + err
    assert "1 sink program(s) it started still run and keep the state locked" in err, err
    locked = project.run_process("plan")
    assert locked.exit_code == 1 and "has exited, but" in locked.output, locked.tail()
    _recovers_after_the_program(project, store, emulator_process.url)


@pytest.mark.parametrize("verbose", [(), ("-v",)], ids=["plain", "verbose"])
def test_a_second_ctrl_c_with_the_output_pipe_gone_still_exits_at_once(
        tmp_path: Path, emulator_process: EmulatorProcess, verbose: tuple[str, ...]) -> None:
    """Found by the third review (stop 38): `keyform apply 2>&1 | tee log`, and the Ctrl-C kills the
    tee too. Saying "interrupted twice" then failed on the broken pipe; that error replaced the
    abandon, so keyform took the path of an internal error and waited for every change and sink
    program in flight: the second Ctrl-C no longer stopped waiting. With `-v` (the fourth review),
printing the traceback failed the same way, before the exit."""
    project, store = _slow_vault(tmp_path, emulator_process.url)
    proc = _writing(project, store, subprocess.Popen(
        project.argv(*verbose, "apply", "--auto-approve"), cwd=project.root, env=project.process_env(),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    assert proc.stdout is not None
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.stdout.close()  # the tee is gone
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    proc.wait(timeout=30)
    assert proc.returncode == 1 and time.monotonic() - started < 1.5, (proc.returncode, time.monotonic() - started)
    locked = project.run_process("plan")  # the program's `sleep 3` still holds the lock
    assert locked.exit_code == 1 and "has exited, but a program it started" in locked.output, locked.tail()
    _recovers_after_the_program(project, store, emulator_process.url)
