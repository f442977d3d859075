"""Measuring a keyform command: its wall time, CPU and peak RSS (started through a small wrapper
process, so the benchmark's own memory is not counted as the command's), and the emulator's
request counters around it (read through `keyform.emulator.client.EmulatorControl`)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def keyform_command() -> list[str]:
    """The `keyform` console script next to this interpreter (what a user runs), else `-m keyform`."""
    script = Path(sys.executable).with_name("keyform")
    if script.exists():
        return [str(script)]
    found = shutil.which("keyform")
    return [found] if found else [sys.executable, "-m", "keyform"]


@dataclass
class Run:
    argv: list[str]
    code: int
    wall: float  # seconds
    rss_mb: float  # peak resident set size of the child, MiB
    cpu: float  # user + system CPU seconds of the child (all its threads)
    stdout: str
    stderr: str

    def check(self, *expected: int) -> Run:
        if self.code not in expected:
            raise RuntimeError(f"{' '.join(self.argv)} exited {self.code} (expected {expected}):\n"
                               f"{self.stderr[-3000:]}\n{self.stdout[-3000:]}")
        return self


# The measured command is started by this small process, not by the benchmark itself: a child
# started straight from the benchmark (vfork and exec, as subprocess does) reports as its peak RSS
# the benchmark's own peak (Linux keeps the larger of the exec'd-over memory's high-water mark and
# the program's), ~120 MB once the in-process emulator holds 10,000 keys, whatever the command used.
# The wrapper (python -I -S: a few MB) starts the command with posix_spawn (vfork-like: ~1 ms, and
# SIGPIPE and SIGXFSZ back to their defaults, which Python ignores), reaps it, and writes its wall
# time (spawn to reap) and rusage to the pipe whose fd it is given (closed in the command). Both
# stay in the benchmark's process group, so a Ctrl-C reaches the command (the wrapper ignores it
# and reaps the command); SIGTERM to the wrapper (the timeout) kills the command, whose figures are
# still reported. The wrapper exits with the command's code, 128 + N for a signal N, 127 when the
# command cannot be started (its reason on stderr).
_SPAWNER = """
import contextlib, json, os, signal, sys, time
fd, argv = int(sys.argv[1]), sys.argv[2:]
start = time.perf_counter()
try:
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_CLOSE, fd)],
                          setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
except OSError as exc:
    os.write(2, f"{argv[0]}: {exc.strerror}\\n".encode())
    os._exit(127)

def stop(*_):
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)

signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, stop)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
os.write(fd, json.dumps([wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime]).encode())
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""


def run(argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float = 900) -> Run:
    """Run `argv` through the wrapper (see `_SPAWNER`): its wall time from spawn to reap, its peak
    RSS and CPU (with its own children's) from wait4's rusage, its exit code (128 + N if a signal N
    ended it, as on a timeout; 127 if it could not be started). The reaping thread blocks in wait4
    (no polling: the emulator shares this process)."""
    read_end, write_end = os.pipe()
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            reaped: list[tuple[int, int, Any]] = []
            try:
                proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _SPAWNER, str(write_end), *argv],
                                        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        pass_fds=(write_end,))
            finally:
                os.close(write_end)
            reaper = threading.Thread(target=lambda: reaped.append(os.wait4(proc.pid, 0)), daemon=True)
            reaper.start()
            reaper.join(timeout)
            if reaper.is_alive():
                proc.terminate()  # the wrapper kills the command, reaps it and reports
                reaper.join()
            report = b""
            while chunk := os.read(read_end, 4096):
                report += chunk
            _, status, _ = reaped[0]
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
            wall, maxrss_kb, cpu = json.loads(report) if report else (float("nan"), 0, float("nan"))
            out.seek(0)
            err.seek(0)
            return Run(list(argv), proc.returncode, wall, maxrss_kb / 1024, cpu,
                       out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))
    finally:
        os.close(read_end)


def median_run(make: Callable[[], Run], repeat: int) -> tuple[float, float, float]:
    """(median wall, median CPU, max RSS) over `repeat` runs (after one unmeasured warm-up run)."""
    make()
    runs = [make() for _ in range(repeat)]
    return (statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs),
            max(r.rss_mb for r in runs))


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Per-route request counts made between two snapshots (routes with none left out)."""
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(after) if after.get(k, 0) != before.get(k, 0)}
