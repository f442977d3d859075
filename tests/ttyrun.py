"""Run keyform with a terminal as its stdin, stdout and stderr, and act once its prompt shows: for
the tests of its questions (`apply`, `destroy`, `force-unlock`)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.project import COMMAND_TIMEOUT


def as_in_a_terminal() -> None:
    """SIGINT as a shell in a terminal leaves it: a test run started in the background (`cmd &` in
    a script, as CI runners may) passes SIGINT on ignored, and a keyform started so never gets a
    Ctrl-C (Python installs no KeyboardInterrupt for an ignored SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def on_a_tty(argv: Sequence[str], cwd: Path, env: dict[str, str],
             at_prompt: Callable[[int, subprocess.Popen[bytes]], None],
             prompt: bytes = b"Enter a value:") -> tuple[int, str]:
    """Run `argv` on a new terminal; once `prompt` shows, call `at_prompt(terminal, process)` (write
    an answer, end the input, send a signal), once. Returns the exit code and all it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=as_in_a_terminal)
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
                if not answered and prompt in output:
                    at_prompt(master, proc)
                    answered = True
            elif proc.poll() is not None:
                break
        proc.wait(timeout=COMMAND_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, output.decode("utf-8", "replace")
