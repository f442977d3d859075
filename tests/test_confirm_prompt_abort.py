"""Ctrl-C or Ctrl-D (end of input) at a confirmation prompt is a "no": the same message as any
other answer but 'yes', exit 1, nothing changed. It used to be `Error: internal error (Abort)`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.project import KEYFORM, Project
from keyform.emulator import Emulator
from tests.ttyrun import on_a_tty

EOF = "EOF"  # Ctrl-D on the terminal: the line discipline ends the input
CTRL_C = "Ctrl-C"  # SIGINT while the prompt waits

HOW = [EOF, CTRL_C]


def _on_a_tty(project: Project, args: list[str], how: str) -> tuple[int, str]:
    """Run `keyform ARGS` with a terminal as stdin/stdout/stderr; at its prompt, end the input or
    interrupt it. Returns the exit code and everything it wrote."""

    def at_prompt(terminal: int, proc: subprocess.Popen[bytes]) -> None:
        time.sleep(0.2)  # the prompt is written just before the read starts
        if how == EOF:
            os.write(terminal, b"\x04")
        else:
            proc.send_signal(signal.SIGINT)

    code, text = on_a_tty([*KEYFORM, *args], project.root, project.process_env(), at_prompt)
    return code, text.replace("\r\n", "\n")


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
