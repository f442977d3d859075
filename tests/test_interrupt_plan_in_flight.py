"""One Ctrl-C during `plan` (or an apply's plan) while a list request is in flight.

Found by a review: a Ctrl-C reached the limiter's waits (`ProviderPool.interrupt`,
tests/test_rate_plan_interrupt.py), but not a list request already sent whose reply had not come
back: the main thread's KeyboardInterrupt joined the refresh's worker threads, so the plan went on
until that reply came or the read timed out (30 s per read; a server dripping its reply, up to the
provider's `deadline`, which may be an hour). A refresh writes nothing, so its workers are now
abandoned at the first Ctrl-C (daemon threads, never joined, not even at interpreter exit): the plan
says `Interrupted.` at once (exit 1, as for any Ctrl-C), the state is as it was and its lock released.
Questra (GET), TextQL (Connect POST) and a `type: rest` provider's second page, each against a
scripted API on 127.0.0.1 that holds the list reply for a minute, with `deadline: 1h`. A real
`keyform` process, SIGINT reset to its default in the child (the suite may run with it ignored)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.project import Project
from tests.hostile import HostileServer, Reply, Seen, hostile
from tests.test_rate_plan_interrupt import _default_sigint, paged_project, paged_reply

HOLD = 60.0  # seconds the scripted API holds a list reply (longer than the 30 s read timeout)
BOUND = 2.0  # seconds keyform may run after one SIGINT (it takes ~0.02 s; the old code: until the read timed out)



@contextlib.contextmanager
def _holding(server: HostileServer, held: Callable[[Seen], bool]) -> Iterator[threading.Event]:
    """While the block runs, every request `held` selects is held (up to HOLD s), then its connection
    closed unanswered; the event returned is set once one arrived. Released at the end of the block."""
    arrived, release = threading.Event(), threading.Event()
    default = server.script

    def script(seen: Seen) -> Reply | None:
        if held(seen):
            arrived.set()
            release.wait(HOLD)
            return Reply(drop=True)  # (keyform is gone: no write to a closed socket)
        return default(seen)

    server.script = script
    try:
        yield arrived
    finally:
        release.set()
        server.script = default


def _interrupt_in_flight(project: Project, arrived: threading.Event, *args: str) -> tuple[int, str, float]:
    """`keyform ARGS` with SIGINT at its default; one SIGINT 0.3 s after the held request reached the
    server. Returns the exit code (-999: still running 10 s after the SIGINT), the output and
    how long it ran after the SIGINT."""
    proc = subprocess.Popen(project.argv(*args), cwd=project.root, env=project.process_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    try:
        assert arrived.wait(30), "the list request never reached the server"
        time.sleep(0.3)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            return -999, "", time.monotonic() - signalled
        return proc.returncode, out + err, time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _assert_interrupted(project: Project, code: int, output: str, after: float, state_before: bytes | None) -> None:
    assert after < BOUND, f"keyform ran {after:.1f}s after one Ctrl-C (exit {code}): {output[-1500:]}"
    assert code == 1, output
    assert output.strip().endswith("Interrupted."), output
    assert "Traceback" not in output and "Exception" not in output, output
    assert not project.lock_path.exists(), "the state lock was not released"
    if state_before is None:
        assert not project.state_path.exists()
    else:
        assert project.state_path.read_bytes() == state_before
    assert not project.journal_path.exists()


@pytest.mark.parametrize("command", [("plan",), ("apply", "--auto-approve")], ids=["plan", "apply-plan-phase"])
def test_one_ctrl_c_ends_a_questra_listing_in_flight(tmp_path: Path, command: tuple[str, ...]) -> None:
    with hostile() as server:
        project = Project(tmp_path, server.url)
        project.questra("k0:\n  provider: qp\n")
        project.manifest.write_text(project.manifest.read_text().replace(
            "    org_id: org_e2e\n", "    org_id: org_e2e\n    deadline: 1h\n"))
        first = project.run_process("apply", "--auto-approve", "-f", str(project.manifest))
        assert first.exit_code == 0, first.tail()
        project.write(project.manifest.read_text() + "  k1:\n    provider: qp\n")  # one change to plan
        before = project.state_path.read_bytes()
        created = list(server.created)
        with _holding(server, lambda seen: seen.method == "GET" and seen.path.startswith("/api-keys")) as arrived:
            code, output, after = _interrupt_in_flight(project, arrived, *command, "-f", str(project.manifest))
        assert server.created == created  # the apply sent no change
    _assert_interrupted(project, code, output, after, before)
    # the lock is free: the next command runs at once
    again = project.run_process("plan", "--no-refresh", "-f", str(project.manifest), timeout=60)
    assert again.exit_code == 0, again.tail()


def test_one_ctrl_c_ends_a_textql_listing_in_flight(tmp_path: Path) -> None:
    with hostile() as server:
        project = Project(tmp_path, server.url)
        project.write(
            "version: 1\n"
            "providers:\n"
            f"  tq: {{type: textql, base_url: \"{server.url}\", token: {{env: TEXTQL_TOKEN}}, deadline: 1h}}\n"
            "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\n"
            "defaults:\n  sink: env\n"
            "keys:\n  t0: {provider: tq}\n")
        with _holding(server, lambda seen: seen.method == "POST" and seen.path == "/v1/api-keys") as arrived:
            code, output, after = _interrupt_in_flight(project, arrived, "plan", "-f", str(project.manifest))
    _assert_interrupted(project, code, output, after, None)


def test_one_ctrl_c_ends_a_rest_listing_with_its_second_page_in_flight(tmp_path: Path) -> None:
    def script(seen: Seen) -> Reply | None:
        return paged_reply(seen) if seen.method == "GET" and seen.path.startswith("/keys") else None

    with hostile() as server:
        server.script = script
        project = paged_project(tmp_path, server.url, "deadline: 1h")
        with _holding(server, lambda seen: "after=" in seen.path) as arrived:
            code, output, after = _interrupt_in_flight(project, arrived, "plan", "-f", str(project.manifest))
        pages = [seen.path for seen in server.seen]
    _assert_interrupted(project, code, output, after, None)
    assert len(pages) == 2 and "after=a1" in pages[1], pages  # the second page was in flight
