"""The emulator as a child process (the harness's lanes and the tests that kill keyform use it)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence


class EmulatorProcess:
    """`python -m keyform.emulator` on an ephemeral port, in its own process (so the emulator does
    not share this process's GIL, and its noise about connections reset by killed clients goes
    nowhere). `url` is read from its start-up line."""

    def __init__(self, *, latency_ms: float = 0, seed: int | None = None, extra: Sequence[str] = ()) -> None:
        argv = [sys.executable, "-m", "keyform.emulator", "--port", "0", "--latency-ms", str(latency_ms), *extra]
        if seed is not None:
            argv += ["--seed", str(seed)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the emulator announces itself (or dies)
        found = re.search(r"(http://\S+)", line)
        if not found:
            self.stop()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = found.group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
