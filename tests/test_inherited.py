"""`keyform.inherited`: the state lock's descriptors passed to sink programs, and the lock left to
them when an apply is abandoned. Found by adversarial reviews of stop 38's postgres change:
- a program a worker thread started after the second Ctrl-C had been seen ran without the lock
  (the lock was released, or the program got no copy), while the message said the lock was kept;
- starting programs one at a time under a mutex made every sink write wait for the slowest exec,
  and could hold up the exit after a second Ctrl-C for as long;
- the lock was kept for any failure while any program ran, even one of another workspace in the
  same process, and then never released."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from keyform import inherited
from keyform.backends.local import LocalBackend
from keyform.errors import KeyformError
from keyform.sinks import procs


def test_a_program_gets_copies_of_the_descriptors_and_a_slow_start_holds_up_nothing(tmp_path: Path) -> None:
    held = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT)
    inherited.keep(held)
    seen: list[tuple[int, ...]] = []

    def slow_exec(fds: tuple[int, ...]) -> None:  # a program on a stalled mount
        seen.append(fds)
        time.sleep(1.0)

    def fast_exec(fds: tuple[int, ...]) -> int:
        seen.append(fds)
        return os.fstat(fds[0]).st_ino

    slow = threading.Thread(target=inherited.start, args=(slow_exec,))
    try:
        slow.start()
        time.sleep(0.1)  # the slow one is starting now
        started = time.monotonic()
        fast = inherited.start(fast_exec)
        inherited.drop(held)  # and the owner may drop and close its descriptor meanwhile
        os.close(held)
        assert time.monotonic() - started < 0.5 and inherited.running() == 2
        assert fast == os.stat(tmp_path / "lock").st_ino
        assert all(held not in fds for fds in seen)  # copies, never the owner's number
    finally:
        slow.join()
        inherited.ended()
        inherited.ended()
    assert inherited.running() == 0


def test_an_ordinary_failure_releases_the_lock_while_another_program_runs(tmp_path: Path) -> None:
    store = LocalBackend(tmp_path / "a.json")
    other = threading.Thread(target=procs.run, args=(["sleep", "1"],), kwargs={"stdin": None, "timeout": 10})
    other.start()
    time.sleep(0.2)
    try:
        try:
            with store.lock("plan"):
                raise KeyformError("a bad manifest input")
        except KeyformError:
            pass
        with store.lock("plan"):  # released: taken again at once, while the program still runs
            assert other.is_alive()
    finally:
        other.join()


ABANDONED = """
import os, sys, threading, time
from pathlib import Path
from keyform.applier import ApplyAbandoned, _abandon
from keyform.backends.local import LocalBackend
from keyform.sinks import procs

store = LocalBackend(Path(sys.argv[1]) / "s.json")
writing = threading.Thread(target=procs.run, args=(["sleep", "3"],), kwargs={"stdin": None, "timeout": 10})
try:
    with store.lock("apply"):
        writing.start()
        time.sleep(0.3)
        raise _abandon([])  # the second Ctrl-C: seals, then unwinds the lock
except ApplyAbandoned as exc:
    print("helpers", exc.helpers, flush=True)
try:
    procs.run(["true"], stdin=None, timeout=10)
except OSError as exc:
    print("refused", exc.errno, flush=True)
os._exit(1)  # as keyform does after a second Ctrl-C
"""


def test_an_abandoned_apply_leaves_the_lock_to_its_programs_and_starts_no_more(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(ABANDONED), str(tmp_path)], capture_output=True,
                         text=True, timeout=30)
    assert "helpers 1" in out.stdout and f"refused {errno.ECANCELED}" in out.stdout, out.stdout + out.stderr
    started = time.monotonic()
    try:  # `sleep 3` holds the lock now: the next command finds it locked by a program the dead one started
        LocalBackend(tmp_path / "s.json").acquire_lock("plan")
    except KeyformError as exc:
        assert "has exited, but a program it started" in str(exc) and "sleep" in str(exc), str(exc)
    else:
        raise AssertionError("the lock was released under the running program")
    store = LocalBackend(tmp_path / "s.json")
    store.release_lock(store.acquire_lock("apply", timeout=10))
    assert time.monotonic() - started > 1.5  # once `sleep 3` ended
