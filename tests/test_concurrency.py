"""Two applies at once (issue 6): one takes the state lock; the other waits `--lock-timeout` and then
exits 1 naming the holder (pid, operation, lock ID), or — given a long enough timeout — runs after it
and finds nothing to do. Either way every key is created exactly once."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.generator import ManifestSpec
from harness.invariants import check_invariants
from harness.project import COMMAND_TIMEOUT, ORG, Project, wait_for
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

SPEC = ManifestSpec.initial(4, 2)
N_KEYS = len(SPEC.addresses)
# 600 ms per request and one change at a time: the winner holds the lock for ~4 s (a list round + 6
# creates), far longer than the loser's 1 s lock timeout
LATENCY_MS = 600
APPLY = ("apply", "--auto-approve", "--parallelism", "1")


def _lock_holder(project: Project, procs: list[subprocess.Popen[str]]) -> dict[str, Any]:
    """The lock file's record, read while a process holds it (polled until complete)."""
    holder: dict[str, Any] = {}

    def read() -> bool:
        try:
            holder.update(json.loads(project.lock_path.read_text()))
        except (OSError, ValueError):
            return False
        return True

    assert wait_for(lambda: read() or all(p.poll() is not None for p in procs), COMMAND_TIMEOUT)
    assert holder, "neither apply took the lock"
    return holder


def _finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str, float]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=COMMAND_TIMEOUT)
        out.append((p.returncode, stdout, stderr, time.monotonic()))
    return out


def _creates(control: EmulatorControl) -> int:
    requests = control.requests()
    return requests.get("questra.create", 0) + requests.get("textql.create", 0)


def test_second_apply_waits_lock_timeout_then_exits_1_naming_the_holder(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(latency_ms=LATENCY_MS)
    project = Project(tmp_path, emulator.url)
    project.write(SPEC)
    started = time.monotonic()
    procs = [project.spawn(*APPLY, "--lock-timeout", "1s") for _ in range(2)]
    holder = _lock_holder(project, procs)
    results = _finish(procs)

    by_pid = {p.pid: r for p, r in zip(procs, results)}
    assert holder["pid"] in by_pid and holder["operation"] == "apply"
    winner = by_pid[holder["pid"]]
    loser = next(r for pid, r in by_pid.items() if pid != holder["pid"])
    assert winner[0] == 0, winner[1] + winner[2]
    assert loser[0] == 1, loser[1] + loser[2]
    message = loser[2]
    for part in (f"pid {holder['pid']}", 'operation "apply"', f"lock ID {holder['id']}", "Wait for it to finish"):
        assert part in message, message
    assert "force-unlock" not in message  # a live holder on this host cannot be force-unlocked
    assert "no longer running" not in message and "Traceback" not in message
    assert loser[3] - started >= 1.0  # it waited the lock timeout
    assert loser[1] == ""  # it did nothing: no plan, no progress

    with EmulatorControl(emulator.url) as control:
        assert _creates(control) == N_KEYS
        assert len(control.questra_keys(ORG)) == len(SPEC.questra)
        assert check_invariants(project, control, SPEC) == []
    assert project.run_process("plan", "--detailed-exitcode").exit_code == 0


def test_second_apply_with_a_long_lock_timeout_runs_after_the_first_and_creates_nothing(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(latency_ms=LATENCY_MS)
    project = Project(tmp_path, emulator.url)
    project.write(SPEC)
    procs = [project.spawn(*APPLY, "--lock-timeout", "60s") for _ in range(2)]
    holder = _lock_holder(project, procs)
    results = _finish(procs)

    assert [r[0] for r in results] == [0, 0], [r[1] + r[2] for r in results]
    first = next(r for p, r in zip(procs, results) if p.pid == holder["pid"])
    second = next(r for p, r in zip(procs, results) if p.pid != holder["pid"])
    assert f"Apply complete: {N_KEYS} created" in first[1]
    assert "No changes." in second[1] and "created" not in second[1]
    with EmulatorControl(emulator.url) as control:
        assert _creates(control) == N_KEYS
        assert check_invariants(project, control, SPEC) == []


def test_plan_waits_for_a_running_apply_too(tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    """Every command that may write (plan recovers and may save) takes the same lock."""
    emulator = make_emulator(latency_ms=LATENCY_MS)
    project = Project(tmp_path, emulator.url)
    project.write(SPEC)
    apply = project.spawn(*APPLY)
    holder = _lock_holder(project, [apply])
    plan = project.run_process("plan", "--lock-timeout", "0s")
    apply.communicate(timeout=COMMAND_TIMEOUT)
    assert apply.returncode == 0
    assert plan.exit_code == 1 and f"lock ID {holder['id']}" in plan.stderr, plan.tail()
    with EmulatorControl(emulator.url) as control:
        assert _creates(control) == N_KEYS
