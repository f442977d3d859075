"""Ctrl-C or Ctrl-D (end of input) at a confirmation prompt is a "no": the same message as any
other answer but 'yes', exit 1, nothing changed. It used to be `Error: internal error (Abort)`."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.project import COMMAND_TIMEOUT, KEYFORM, Project
from keyform.emulator import Emulator

EOF = "EOF"  # Ctrl-D on the terminal: the line discipline ends the input
CTRL_C = "Ctrl-C"  # SIGINT while the prompt waits

HOW = [EOF, CTRL_C]


def _as_in_a_terminal() -> None:
    """SIGINT as a shell in a terminal leaves it: a test run started in the background (`cmd &` in
    a script, as CI runners may) passes SIGINT on ignored, and a keyform started so never gets the
    Ctrl-C (Python installs no KeyboardInterrupt for an ignored SIGINT): the prompt waited forever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _on_a_tty(project: Project, args: list[str], how: str) -> tuple[int, str]:
    """Run `keyform ARGS` with a terminal as stdin/stdout/stderr; at its prompt, end the input or
    interrupt it. Returns the exit code and everything it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*KEYFORM, *args], cwd=project.root, env=project.process_env(),
                            stdin=slave, stdout=slave, stderr=slave, preexec_fn=_as_in_a_terminal)
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + COMMAND_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if not answered and b"Enter a value:" in output:
                    time.sleep(0.2)  # the prompt is written just before the read starts
                    if how == EOF:
                        os.write(master, b"\x04")
                    else:
                        proc.send_signal(signal.SIGINT)
                    answered = True
            elif proc.poll() is not None:
                break
        proc.wait(timeout=COMMAND_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, output.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    p = Project(tmp_path, emulator.url)
    p.questra("ci-bot:\n  provider: qp\n")
    assert p.run("apply", "--auto-approve").exit_code == 0
    p.env["NO_COLOR"] = "1"
    return p


def _check_cancelled(code: int, text: str, message: str) -> None:
    assert code == 1, text
    assert f"Enter a value: \nError: {message}\n" in text, text
    assert "internal error" not in text and "Traceback" not in text and "Abort" not in text, text


@pytest.mark.parametrize("how", HOW)
def test_apply_prompt(project: Project, how: str) -> None:
    before = project.state_path.read_bytes()
    code, text = _on_a_tty(project, ["apply", "--replace", "ci-bot", "-f", str(project.manifest)], how)
    _check_cancelled(code, text, "Apply cancelled.")
    assert project.state_path.read_bytes() == before


@pytest.mark.parametrize("how", HOW)
def test_destroy_prompt(project: Project, how: str) -> None:
    before = project.state_path.read_bytes()
    code, text = _on_a_tty(project, ["destroy", "-f", str(project.manifest)], how)
    _check_cancelled(code, text, "Destroy cancelled.")
    assert project.state_path.read_bytes() == before


@pytest.mark.parametrize("how", HOW)
def test_force_unlock_prompt(project: Project, how: str) -> None:
    lock_id = "0000aaaa-0000-4000-8000-000000000001"
    record = {"id": lock_id, "pid": 999_999_999, "host": "another-host",
              "operation": "apply", "created_at": "2026-01-01T00:00:00Z", "version": "0.1.0"}
    project.lock_path.write_text(json.dumps(record))
    code, text = _on_a_tty(project, ["force-unlock", lock_id, "--state", str(project.state_path)], how)
    _check_cancelled(code, text, "force-unlock cancelled.")
    assert json.loads(project.lock_path.read_text()) == record
