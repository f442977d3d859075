"""Measuring a keyform command: wall time and peak RSS of the child process, and the emulator's
request counters around it (read through `keyform.emulator.client.EmulatorControl`)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
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


def run(argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float = 900) -> Run:
    """Run `argv` as a child process; wall time from fork to reap, peak RSS and CPU from wait4's
    rusage. The reaping thread blocks in wait4 (no polling: the emulator shares this process)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        reaped: list[tuple[int, int, Any]] = []
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        reaper = threading.Thread(target=lambda: reaped.append(os.wait4(proc.pid, 0)), daemon=True)
        reaper.start()
        reaper.join(timeout)
        if reaper.is_alive():
            proc.kill()
            reaper.join()
        wall = time.perf_counter() - start
        _, status, usage = reaped[0]
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Run(list(argv), proc.returncode, wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime,
                   out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def median_run(make: Callable[[], Run], repeat: int) -> tuple[float, float, float]:
    """(median wall, median CPU, max RSS) over `repeat` runs (after one unmeasured warm-up run)."""
    make()
    runs = [make() for _ in range(repeat)]
    return (statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs),
            max(r.rss_mb for r in runs))


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Per-route request counts made between two snapshots (routes with none left out)."""
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(after) if after.get(k, 0) != before.get(k, 0)}
