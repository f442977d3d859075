"""The local state lock is an OS lock (issue 14, item 1): a dead holder's lock frees itself,
`force-unlock` refuses a live holder and asks on a terminal, and an apply that loses its lock
(its lock file removed under it, another command running beside it) never reports success."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.generator import ManifestSpec
from harness.invariants import check_invariants
from harness.project import COMMAND_TIMEOUT, KEYFORM, Project, wait_for
from keyform.backends.local import LocalBackend
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError
from tests.ttyrun import on_a_tty

SPEC = ManifestSpec.initial(4, 2)


def _done_records(project: Project) -> int:
    try:
        return sum(1 for r in project.journal_records() if r.get("op") == "done")
    except KeyformError:  # a journal being rewritten: try again
        return 0


def test_force_unlock_of_a_running_apply_is_refused_and_an_apply_that_loses_its_lock_exits_1(
        tmp_path: Path, make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = make_emulator(latency_ms=800)  # ~6 s of apply: room for two commands beside it on a busy machine
    project = Project(tmp_path, emulator.url)
    project.write(SPEC)
    apply = project.spawn("apply", "--auto-approve", "--parallelism", "1")
    try:
        assert wait_for(lambda: _done_records(project) >= 1 or apply.poll() is not None, COMMAND_TIMEOUT)
        assert apply.poll() is None, "the apply finished before the test could intervene"
        holder = json.loads(project.lock_path.read_text())

        # on this host, a live holder is refused, named, and keeps its lock
        refused = project.run_process("force-unlock", holder["id"], "--force")
        assert refused.exit_code == 1, refused.tail()
        assert (f'refusing to force-unlock: pid {apply.pid} on {socket.gethostname()} (operation "apply"'
                in refused.stderr), refused.stderr
        assert "is still running" in refused.stderr and "Traceback" not in refused.stderr
        assert json.loads(project.lock_path.read_text())["id"] == holder["id"]

        # from another machine on a shared filesystem, liveness cannot be told: the lock file goes
        assert apply.poll() is None, "the apply finished before the test could take its lock away"
        with monkeypatch.context() as m:
            m.setattr(socket, "gethostname", lambda: "another-host")
            LocalBackend(project.state_path).force_unlock(holder["id"])
        assert not project.lock_path.exists()
        # ... and a second command runs beside the apply: it takes the lock and recovers its journal
        beside = project.run_process("plan")
        assert beside.exit_code == 0, beside.tail()
        out, err = apply.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        if apply.poll() is None:
            apply.kill()
            apply.communicate()
    assert apply.returncode == 1, out + err
    assert "Apply complete" not in out + err, out + err
    assert f"the state lock (lock ID {holder['id']}) was lost" in err, err
    assert "The apply stopped without saving the state" in err and "Traceback" not in err
    assert "internal error" not in err

    # nothing is lost: the next apply converges, and every key is in state exactly once
    converged = project.run_process("apply", "--auto-approve")
    assert converged.exit_code == 0, converged.tail()
    assert project.run_process("plan", "--detailed-exitcode").exit_code == 0
    with EmulatorControl(emulator.url) as control:
        assert check_invariants(project, control, SPEC) == []


def test_a_killed_apply_needs_no_force_unlock(tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(latency_ms=200)
    project = Project(tmp_path, emulator.url)
    project.write(SPEC)
    apply = project.spawn("apply", "--auto-approve", "--parallelism", "1")
    assert wait_for(lambda: project.journal_path.exists() or apply.poll() is not None, COMMAND_TIMEOUT)
    apply.kill()
    apply.communicate(timeout=COMMAND_TIMEOUT)
    assert json.loads(project.lock_path.read_text())["pid"] == apply.pid  # the file stays...
    again = project.run_process("apply", "--auto-approve", "--lock-timeout", "0s")  # ...and is taken over silently
    assert again.exit_code == 0, again.tail()
    assert "locked" not in again.stderr and "force-unlock" not in again.stdout + again.stderr
    assert not project.lock_path.exists()
    with EmulatorControl(emulator.url) as control:
        assert check_invariants(project, control, SPEC) == []


def _force_unlock_on_a_tty(project: Project, lock_id: str, answer: str) -> tuple[int, str]:
    """Run `keyform force-unlock LOCK_ID --state FILE` with a terminal as stdin, answer its question."""

    def at_prompt(terminal: int, _: object) -> None:
        os.write(terminal, answer.encode() + b"\n")

    return on_a_tty([*KEYFORM, "force-unlock", lock_id, "--state", str(project.state_path)], project.root,
                    project.process_env(), at_prompt, prompt=b"Enter a value")


def test_force_unlock_asks_on_a_terminal(tmp_path: Path) -> None:
    project = Project(tmp_path, "http://127.0.0.1:9")
    lock_id = "0000aaaa-0000-4000-8000-000000000001"
    record = {"id": lock_id, "pid": 999_999_999, "host": "another-host",
              "operation": "apply", "created_at": "2026-01-01T00:00:00Z", "version": "0.1.0"}
    project.lock_path.write_text(json.dumps(record))
    code, text = _force_unlock_on_a_tty(project, lock_id, "no")
    assert code == 1 and "Do you really want to force-unlock" in text and "force-unlock cancelled" in text, text
    assert project.lock_path.exists()
    code, text = _force_unlock_on_a_tty(project, lock_id, "yes")
    assert code == 0 and "has been unlocked" in text, text
    assert not project.lock_path.exists()
    # --force skips the question
    project.lock_path.write_text(json.dumps(record))
    forced = project.run_process("force-unlock", lock_id, "--force", "--state", str(project.state_path))
    assert forced.exit_code == 0 and "Do you really" not in forced.stdout, forced.tail()
