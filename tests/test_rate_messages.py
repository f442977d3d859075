"""What keyform says about rate refusals, found by a review (the calls over real HTTP on 127.0.0.1):

- a call that spent its retries for rate refusals (`max_throttled`: with `Retry-After: 0` the 21
  attempts take ~41 s at the learned rate's floor) ended as a bare `429 slow down`;
- the summary said `3 × 429 received` for TextQL's 503 `resource_exhausted` refusals, and the JSON
  summary gave only their total;
- `Retry-After: 1e30` was printed in full (`waiting 1000000000000000019884624838656.0 s`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from keyform.emulator import Emulator
from keyform.model import RateLimit
from keyform.providers.http import HttpClient, RetryPolicy, status_error
from keyform.providers.ratelimit import Limiter, RateEvent
from keyform.render.progress import rate_event_text, rate_json, rate_lines
from tests.hostile import Reply, Seen, hostile
from tests.test_rate_resource_exhausted_any_status import _create

REFUSED = b'{"error":{"code":"rate_limited","message":"slow down"}}'


def _refusing(retry_after: str) -> Any:
    def script(seen: Seen) -> Reply | None:
        return Reply(429, REFUSED, {"Content-Type": "application/json", "Retry-After": retry_after})
    return script


def test_a_call_that_spent_its_retries_for_refusals_says_so() -> None:
    with hostile() as server:
        server.script = _refusing("0")
        client = HttpClient("qp", server.url, {}, retry=RetryPolicy(max_throttled=3), sleep=lambda s: None,
                            limiter=Limiter("qp", RateLimit(1000.0)))
        try:
            response = client.call("GET", "/api-keys", "list")
        finally:
            client.close()
    assert response.status_code == 429
    error = str(status_error(client, "list", response, "429 slow down"))
    # old code: `qp: list: 429 slow down`, nothing more
    assert error == ("qp: list: 429 slow down; rate-limited: still 429 after 4 attempts: the most a call makes "
                     "against refusals for the rate (3 retries)")


def test_the_summary_counts_refusals_by_status(emulator: Emulator) -> None:
    creates, provider, _ = _create(emulator, 3, 503)
    assert len(creates) == 4
    stats = provider.limiter.stats()
    lines = rate_lines(SimpleNamespace(rate=[stats]))  # type: ignore[arg-type]
    # old code: `tq: 3 × 429 received, ...`
    assert lines[1].startswith("  tq: 3 × 503 received, "), lines
    assert stats.by_status == ((503, 3),)
    # the JSON summary had only the total (`"throttled": 3`), not which status it was
    [doc] = rate_json(SimpleNamespace(rate=[stats]))  # type: ignore[arg-type]
    assert (doc["throttled"], doc["throttled_by_status"]) == (3, {"503": 3})


def test_a_huge_retry_after_is_said_readably() -> None:
    events: list[RateEvent] = []
    with hostile() as server:
        server.script = _refusing("1e30")
        client = HttpClient("qp", server.url, {}, sleep=lambda s: None)
        client.limiter.configure(4, on_event=events.append)
        try:
            response = client.call("GET", "/api-keys", "list")
        finally:
            client.close()
    error = str(status_error(client, "list", response, "429 slow down"))
    assert "the API asks to retry in a day or more, longer than a call waits" in error, error
    assert len(events) == 1 and events[0].wait == 86400.0
    # old code: `qp: rate-limited, waiting 1000000000000000019884624838656.0 s (concurrency 4 → 2)`
    assert rate_event_text(events[0]).startswith("qp: rate-limited, waiting a day or more (concurrency 4 → 2")
