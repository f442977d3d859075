"""Found in stop 43 (a new user's first hour): with the API gone mid-apply (stopped, or a wrong
address with `--no-refresh`), every remaining change retried its own connection for its whole
budget: 30 creates at --parallelism 4 took 30 / 4 x the retries, each failure alike. The
instance's breaker, which already stopped sending to an API that refuses everything for its rate,
now also stops once BREAK_AFTER calls in a row could not reach the API at all: the other changes
end at once, unsent, saying why. Any answer from the API resets the count. Real HTTP: the keyform
CLI against a port on 127.0.0.1 where nothing listens."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from harness.project import Project
from keyform.providers.ratelimit import BREAK_AFTER, Limiter, NotAdmitted, broken_words


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_creates_against_an_api_no_call_can_reach_end_unsent_after_three(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    project = Project(tmp_path, url)
    project.questra("".join(f"k{i:02d}:\n  provider: qp\n" for i in range(30)))
    project.manifest.write_text(project.manifest.read_text().replace(
        "    org_id: org_e2e\n", "    org_id: org_e2e\n    deadline: 2s\n"))
    res = project.run_process("apply", "--auto-approve", "--no-refresh", "--parallelism", "4",
                              "--format", "json", timeout=120)
    assert res.exit_code == 1, res.tail()
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    failed = [e["message"] for e in events if e.get("type") == "apply_errored"]
    assert len(failed) == 30, res.tail()
    tried = [m for m in failed if "cannot connect to" in m and "connection refused" in m]
    unsent = [m for m in failed if "not sent: the last 3 calls could not reach the API, each after all its "
              "attempts (connection refused), so keyform sends it nothing more in this run; check the "
              "provider's `base_url`, its proxy if it has one, and the network" in m]
    # old code: all 30 tried, each for its own 2 s of retries
    assert len(tried) + len(unsent) == 30 and len(unsent) >= 20, failed
    summary = next(e for e in events if e.get("type") == "change_summary")
    assert all(not r["stopped_sending"] for r in summary["rate_limits"])  # not a rate limit
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    assert not project.state_path.exists() or json.loads(project.state_path.read_text())["keys"] == {}


def test_any_answer_resets_the_run_of_unreachable_calls() -> None:
    limiter = Limiter("qp")
    for _ in range(BREAK_AFTER - 1):
        limiter.unreachable("connection refused")
    limiter.ended(False)  # the API answered a call in between: it is there
    for _ in range(BREAK_AFTER - 1):
        limiter.unreachable("connection refused")
    limiter.before_attempt(0.0, 5.0)  # still admitted
    limiter.sent()
    limiter.unreachable("connection refused")
    with pytest.raises(NotAdmitted) as stopped:
        limiter.before_attempt(0.0, 5.0)
    assert stopped.value.cause == "broken" and stopped.value.status is None
    assert "(last:" not in broken_words(stopped.value)
    assert limiter.stats().broken is False  # the rate summary's "stopped sending" is about refusals


def test_a_call_whose_lost_attempt_may_have_been_done_is_not_called_unsent_by_the_breaker() -> None:
    """Review of stop 43: the API going down mid-apply drops the calls in flight (sent, answer
    lost) and refuses the next ones. A revoke whose first attempt was sent and lost waits for its
    retry; meanwhile BREAK_AFTER other calls cannot connect and the breaker trips. The revoke may
    have been done, so its error must not say "not sent" (as a Ctrl-C there already does not)."""
    import random

    import httpx

    from keyform.errors import NotSentError, ProviderError
    from keyform.providers.http import HttpClient, RetryPolicy

    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    def others_cannot_connect(seconds: float) -> None:  # the wait before the revoke's retry
        for _ in range(BREAK_AFTER):
            client.limiter.unreachable("connection refused")

    client = HttpClient("qp", "http://api.test", {}, transport=httpx.MockTransport(lost),
                        retry=RetryPolicy(max_retries=3), sleep=others_cannot_connect, rng=random.Random(0))
    client.limiter.configure(4, stopping=lambda: False)
    with pytest.raises(ProviderError) as err:
        client.call("DELETE", "/v1/keys/ak_1", "revoke 'ak_1'")
    message = str(err.value)
    assert not isinstance(err.value, NotSentError), message
    assert "not sent" not in message, message  # old: "qp: revoke 'ak_1': not sent: the last 3 calls ..."
    assert "no answer" in message and "could not reach the API" in message, message


def test_a_call_that_reached_the_api_before_it_could_not_connect_is_not_unreachable() -> None:
    """Review of stop 43: the breaker counts calls "each of whose attempts failed to connect". A
    call whose first attempt was sent (its answer lost: an API too busy to answer in time) and
    whose retries then could not connect did reach the API: BREAK_AFTER of them must not stop
    the instance, and the call after them is still sent."""
    import random

    import httpx

    from keyform.errors import ProviderError
    from keyform.providers.http import HttpClient, RetryPolicy

    attempts: list[str] = []

    def busy(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        if attempts.count(request.url.path) == 1:  # sent, no answer in time
            raise httpx.ReadTimeout("timed out", request=request)
        if request.url.path == "/v1/keys/last":
            return httpx.Response(204, request=request)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = HttpClient("qp", "http://api.test", {}, transport=httpx.MockTransport(busy),
                        retry=RetryPolicy(max_retries=1), sleep=lambda s: None, rng=random.Random(0))
    for i in range(BREAK_AFTER):
        with pytest.raises(ProviderError, match="cannot connect"):
            client.call("DELETE", f"/v1/keys/k{i}", f"revoke 'k{i}'")
    # old: "not sent: the last 3 calls could not reach the API", with no attempt of it sent
    assert client.call("DELETE", "/v1/keys/last", "revoke 'last'").status_code == 204
    assert attempts.count("/v1/keys/last") == 2
