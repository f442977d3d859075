"""A call's deadline bounds its rate-limit waits too: against a server on 127.0.0.1 that keeps
answering 429, a list and a create end by the deadline (plus a small slack) with a ProviderError
carrying the 429 (never a bare timeout with status None), whether the 429s carry no Retry-After (the
limiter's backoff and learned or configured send rate), a Retry-After longer than what is left of
the deadline, or the instance is paused by an earlier call's 429 past the deadline. A 429 proves the
create did not happen: never ambiguous."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator

import pytest

from keyform.errors import ProviderError
from keyform.model import RateLimit
from keyform.providers.questra import QuestraProvider
from keyform.providers.ratelimit import Limiter
from keyform.remote import CreateRequest
from tests.hostile import HostileServer, Reply, Seen, hostile

DEADLINE = 3.0
SHORT = 1.5  # the deadline of the tests that only wait it out (it is the whole of their time)
SLACK = 0.5  # scheduling on a loaded 2-core machine; the code's own slack is 0.05 s
REFUSED = json.dumps({"error": "rate limited"}).encode()


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with hostile() as s:
        yield s


def _refuse(retry_after: str | None = None) -> Reply:
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Reply(429, REFUSED, headers)


def _provider(server: HostileServer, limiter: Limiter | None = None, deadline: float = DEADLINE) -> QuestraProvider:
    return QuestraProvider("qp", server.url, "tok-secret", "org_1", timeout=5.0, deadline=deadline,
                           rng=random.Random(7), limiter=limiter)


def _create(provider: QuestraProvider) -> None:
    provider.create(CreateRequest("ci-bot", {"description": "d"}, None, {}))


def _list(provider: QuestraProvider) -> None:
    provider.list()


CALLS = {"list": _list, "create": _create}


def _fails(provider: QuestraProvider, call: str) -> tuple[ProviderError, float]:
    started = time.monotonic()
    with pytest.raises(ProviderError) as failed:
        CALLS[call](provider)
    return failed.value, time.monotonic() - started


@pytest.mark.parametrize("call", ["list", "create"])
def test_429s_without_retry_after_end_at_the_deadline_with_the_429(server: HostileServer, call: str) -> None:
    server.script = lambda seen: _refuse()
    err, took = _fails(_provider(server), call)
    assert took <= DEADLINE + SLACK, took
    assert err.status == 429 and not err.ambiguous, err
    assert "rate-limited: still 429 after" in str(err) and "the call's 3s deadline" in str(err), err
    assert len(server.seen) >= 2  # it did retry
    assert f"after {len(server.seen)} attempt" in str(err), (err, len(server.seen))
    assert "tok-secret" not in str(err)


@pytest.mark.parametrize("call", ["list", "create"])
def test_a_send_rate_turn_past_the_deadline_ends_the_call_with_the_429(server: HostileServer, call: str) -> None:
    """One attempt every 2 s (a configured 0.5/s): the third turn comes at 4 s, past the 3 s
    deadline. The old code slept until then and reported a timeout with status None."""
    server.script = lambda seen: _refuse()
    limiter = Limiter("qp", RateLimit(0.5))
    err, took = _fails(_provider(server, limiter), call)
    assert took <= DEADLINE + SLACK, took
    assert len(server.seen) == 2
    assert err.status == 429 and not err.ambiguous, err
    assert "rate-limited: still 429 after 2 attempts within the call's 3s deadline" in str(err), err


@pytest.mark.parametrize("call", ["list", "create"])
def test_a_retry_after_past_the_deadline_is_not_waited_for(server: HostileServer, call: str) -> None:
    server.script = lambda seen: _refuse("30")
    err, took = _fails(_provider(server), call)
    assert took <= 1.0, took  # nothing can be sent before the deadline: it says so at once
    assert len(server.seen) == 1
    assert err.status == 429 and err.retry_after == 30.0 and not err.ambiguous, err
    assert "rate-limited: still 429 after 1 attempt within the call's 3s deadline" in str(err), err


@pytest.mark.parametrize("call", ["list", "create"])
def test_the_instance_pause_past_the_deadline_is_not_waited_for(server: HostileServer, call: str) -> None:
    """A 429 with Retry-After: 5 pauses the whole instance for 5 s; the next call, with 3 s of
    deadline, ends at once (the old code slept the 5 s first, then sent), nothing sent."""
    refused = [False]

    def once(seen: Seen) -> Reply | None:
        if refused[0]:
            return None  # then the API accepts
        refused[0] = True
        return _refuse("5")

    server.script = once
    provider = _provider(server)
    first, _ = _fails(provider, "list")
    assert first.status == 429
    err, took = _fails(provider, call)
    assert took <= 1.0, took
    assert len(server.seen) == 1  # the second call sent nothing
    assert err.status == 429 and not err.ambiguous, err
    assert err.retry_after is not None and 3.0 < err.retry_after <= 5.0, err
    assert "rate-limited: not sent, the instance is paused" in str(err), err
    assert "past the call's 3s deadline (provider option `deadline`)" in str(err), err


def test_5xx_to_a_list_until_the_deadline_end_it_with_the_5xx(server: HostileServer) -> None:
    """The same for a server error retried until the deadline (a budget too large to run out)."""
    server.script = lambda seen: Reply(503, json.dumps({"error": "overloaded"}).encode())
    provider = QuestraProvider("qp", server.url, "tok-secret", "org_1", timeout=5.0, deadline=SHORT,
                               rng=random.Random(7), max_retries=100)
    err, took = _fails(provider, "list")
    assert took <= SHORT + SLACK, took
    assert err.status == 503 and not err.ambiguous, err
    assert len(server.seen) >= 2  # it did retry
    assert f"; still 503 after {len(server.seen)} attempts within the call's 1.5s deadline" in str(err), err
    assert "rate-limited" not in str(err)


def test_a_pause_that_ends_within_the_deadline_is_waited_for(server: HostileServer) -> None:
    """Unchanged: a Retry-After the deadline can hold is waited out, then the call goes on."""
    refused = [False]

    def once(seen: Seen) -> Reply | None:
        if refused[0]:
            return None
        refused[0] = True
        return _refuse("1")

    server.script = once
    started = time.monotonic()
    assert _provider(server).list() == []
    assert 1.0 <= time.monotonic() - started <= DEADLINE
    assert len(server.seen) == 2


def _refused_then_silent(server: HostileServer) -> Callable[[Seen], Reply | None]:
    """The first attempt answered 429 (Retry-After 0), the next one left unanswered past the deadline."""
    def script(seen: Seen) -> Reply | None:
        if len(server.seen) == 1:
            return _refuse("0")
        time.sleep(SHORT + 1.0)
        return Reply(drop=True)
    return script


def test_a_reply_cut_by_the_deadline_after_429s_keeps_the_429_for_a_list(server: HostileServer) -> None:
    """A list refused, then left unanswered until the deadline: it reports the 429 it did get."""
    server.script = _refused_then_silent(server)
    err, took = _fails(_provider(server, deadline=SHORT), "list")
    assert took <= SHORT + SLACK, took
    assert err.status == 429 and not err.ambiguous, err
    assert "still 429 after 1 attempt, the next one unanswered, within the call's 1.5s deadline" in str(err), err


def test_a_create_cut_by_the_deadline_after_a_429_may_have_happened(server: HostileServer) -> None:
    """The ambiguity contract is kept: once a create's attempt was sent and its reply lost, the key
    may exist remotely, whatever an earlier attempt was answered."""
    server.script = _refused_then_silent(server)
    err, took = _fails(_provider(server, deadline=SHORT), "create")
    assert took <= SHORT + SLACK, took
    assert err.ambiguous and err.status is None, err
    assert "the key may exist remotely" in str(err), err
