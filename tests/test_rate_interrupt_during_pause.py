"""One Ctrl-C while a provider instance is paused by a long Retry-After: every call of the instance
waits in its limiter (the pause) or before its retry, so nothing is in flight. They used to wait
the pause out (30 s here, up to the call's deadline) and then send again; now they end at once,
unsent: a change that sent nothing is not started, one refused before the Ctrl-C failed, saying so."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from harness.project import Project
from keyform.model import RateLimit
from keyform.providers.ratelimit import Limiter, NotAdmitted
from tests.hostile import Reply, Seen, hostile


def test_one_ctrl_c_during_a_long_pause_ends_the_waits_at_once(tmp_path: Path) -> None:
    posts: list[float] = []

    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST":
            posts.append(time.monotonic())
            return Reply(429, b'{"error":{"code":"rate_limited","message":"slow down"}}',
                         {"Content-Type": "application/json", "Retry-After": "30"})
        return None

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("".join(f"k{i:02d}:\n  provider: qp\n" for i in range(6)))
        code, output, after = project.interrupt_when("rate-limited", "apply", "--auto-approve",
                                                     "--parallelism", "2", settle=0.5)
        signalled = time.monotonic() - after
    assert code == 1, output
    assert after < 5, f"keyform waited {after:.1f}s after one Ctrl-C for a pause to end"
    assert not [t for t in posts if t > signalled], "a create was sent after the Ctrl-C"
    assert "interrupted before the retry" in output  # the one refused before the Ctrl-C
    assert "not started" in output.lower() or "not start" in output.lower(), output
    state = project.state() if project.state_path.exists() else {"keys": {}}
    assert state["keys"] == {}  # nothing was created: nothing recorded
    assert "Traceback" not in output


def test_the_limiter_ends_a_pause_and_a_turn_once_stopping() -> None:
    stop = threading.Event()
    paused = Limiter("qp")
    paused.configure(4, stopping=stop.is_set)
    paused.throttled(paused.before_attempt(), 30.0, 0.0)  # the whole instance paused 30 s
    paced = Limiter("qp", RateLimit(0.05, 1))  # one call every 20 s
    paced.configure(4, stopping=stop.is_set)
    paced.before_attempt(first=True)
    outcomes: list[str] = []

    def attempt(lim: Limiter) -> None:
        try:
            lim.before_attempt(timeout=60.0, first=True)
            outcomes.append("sent")
        except NotAdmitted as exc:
            outcomes.append(exc.cause)

    threads = [threading.Thread(target=attempt, args=(lim,)) for lim in (paused, paced)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    assert outcomes == []  # both wait: the pause, the turn
    started = time.monotonic()
    stop.set()
    for t in threads:
        t.join(5)
    assert time.monotonic() - started < 1.0
    assert outcomes == ["stopped", "stopped"]
    with pytest.raises(NotAdmitted, match="stopped"):
        paused.before_attempt()


def test_a_call_whose_lost_attempt_may_have_been_done_is_not_called_unsent() -> None:
    """A revoke sent and its answer lost, then a Ctrl-C during the wait before its retry: it may
    have been done, so it is a failure, not "not sent" (which reports the change not started)."""
    from keyform.errors import NotSentError, ProviderError
    from keyform.providers.questra import QuestraProvider

    stop = threading.Event()

    def script(seen: Seen) -> Reply | None:
        if seen.path.endswith("/revoke"):
            stop.set()  # the Ctrl-C comes while the lost attempt waits for its retry
            return Reply(drop=True)
        return None

    with hostile() as server:
        server.script = script
        provider = QuestraProvider("qp", server.url, "qk_token_for_test", "org_e2e", max_retries=3)
        provider.limiter.configure(4, stopping=stop.is_set)
        try:
            with pytest.raises(ProviderError) as err:
                provider.delete("ak_1")
        finally:
            provider.close()
    assert not isinstance(err.value, NotSentError), str(err.value)
    assert "interrupted before the retry" in str(err.value)
