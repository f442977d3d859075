"""The shared HTTP layer's promises: idempotent calls ride out flakiness, a create is never sent twice
when it may have landed, Retry-After is honoured, and no error ever shows a token or a secret.

These are transport-level behaviours, so most tests script responses with httpx.MockTransport; the
emulator-backed versions live in test_provider_questra.py / test_provider_textql.py.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from keyform.errors import ProviderError
from keyform.providers import QuestraProvider, TextQLProvider
from keyform.providers.http import RetryPolicy, retry_after
from keyform.remote import CreateRequest

TOKEN = "tok_super_secret_123"
KEY = {"id": "ak_1", "name": "CI bot", "created_at": "2026-01-01T00:00:00Z", "expires_at": None,
       "revoked": False, "expired": False, "last_used_at": None}

Step = Callable[[httpx.Request], httpx.Response]


def scripted(*steps: Step) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering the n-th request with the n-th step (the last one repeats)."""
    seen: list[httpx.Request] = []
    it: Iterator[Step] = iter(steps)
    current: list[Step] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = next(it, None)
        if step is not None:
            current[:] = [step]
        return current[0](request)

    return httpx.MockTransport(handler), seen


def status(code: int, body: object = None, headers: dict[str, str] | None = None) -> Step:
    return lambda request: httpx.Response(code, json=body if body is not None else {}, headers=headers)


def raises(exc_type: type[httpx.HTTPError], message: str = "boom") -> Step:
    def step(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)  # type: ignore[call-arg]
    return step


def questra(transport: httpx.BaseTransport, sleeps: list[float], max_retries: int = 5) -> QuestraProvider:
    return QuestraProvider("questra-prod", "https://api.questra.test", TOKEN, "org_1", transport=transport,
                           max_retries=max_retries, sleep=sleeps.append, rng=random.Random(7))


def create_req(name: str = "CI bot") -> CreateRequest:
    return CreateRequest(address="ci-bot", attrs={"name": name}, expires_at=None)


def test_backoff_is_full_jitter_capped_at_ten_seconds() -> None:
    policy, rng = RetryPolicy(), random.Random(1)
    for attempt in range(12):
        bound = min(10.0, 0.2 * 2 ** attempt)
        assert all(0.0 <= policy.backoff(attempt, rng) <= bound for _ in range(50))
    assert max(policy.backoff(20, rng) for _ in range(200)) > 5.0  # the cap, not a tiny range


def test_seeded_jitter_replays_the_same_delays() -> None:
    def delays() -> list[float]:
        transport, _ = scripted(status(503), status(503), status(200, [KEY]))
        sleeps: list[float] = []
        questra(transport, sleeps).list()
        return sleeps

    assert delays() == delays()
    assert len(delays()) == 2


def test_list_retries_5xx_and_429_then_succeeds() -> None:
    transport, seen = scripted(status(500), status(502), status(429), status(200, [KEY]))
    sleeps: list[float] = []
    keys = questra(transport, sleeps).list()
    assert keys is not None and [k.id for k in keys] == ["ak_1"]
    assert len(seen) == 4 and len(sleeps) == 3


def test_list_gives_up_after_max_retries_with_the_last_status() -> None:
    transport, seen = scripted(status(503, {"error": "service_unavailable", "message": "down for maintenance"}))
    sleeps: list[float] = []
    with pytest.raises(ProviderError) as info:
        questra(transport, sleeps, max_retries=3).list()
    assert len(seen) == 4 and len(sleeps) == 3
    assert str(info.value) == "questra-prod: list: 503 down for maintenance"
    assert info.value.status == 503 and not info.value.ambiguous


def test_idempotent_calls_retry_timeouts_and_dropped_connections() -> None:
    transport, seen = scripted(raises(httpx.ReadTimeout), raises(httpx.RemoteProtocolError),
                               status(200, {"success": True}))
    sleeps: list[float] = []
    questra(transport, sleeps).delete("ak_1")
    assert len(seen) == 3 and len(sleeps) == 2


def test_429_waits_for_retry_after_seconds() -> None:
    transport, _ = scripted(status(429, headers={"Retry-After": "2"}), status(503, headers={"Retry-After": "0.5"}),
                            status(200, [KEY]))
    sleeps: list[float] = []
    questra(transport, sleeps).list()
    assert sleeps == [2.0, 0.5]


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    response = httpx.Response(429, headers={"Retry-After": format_datetime(now + timedelta(seconds=30), usegmt=True)})
    assert retry_after(response, now=lambda: now) == 30.0
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None


@pytest.mark.parametrize("value", ["Mon, 99999999999999999999 Jan 2020 00:00:00 GMT",  # OverflowError escaped
                                   "Mon, 01 Jan 9999999999 00:00:00 GMT", "Mon, 01 Jan 2020 99999999999:00:00 GMT",
                                   "Mon, 01 Jan 2020 00:00:00 +99999999999", "inf", "nan", "1e999", "-inf",
                                   "\u0663", "1_0", "\u00b2"])  # Arabic-Indic 3, an underscore, a superscript 2
def test_a_hostile_retry_after_is_no_retry_after(value: str) -> None:
    assert retry_after(httpx.Response(429, headers=[(b"Retry-After", value.encode())])) is None  # (as UTF-8)
    assert retry_after(httpx.Response(429)) is None


def test_retry_after_too_long_is_reported_not_waited_for() -> None:
    transport, seen = scripted(status(429, {"message": "slow down"}, {"Retry-After": "3600"}))
    sleeps: list[float] = []
    with pytest.raises(ProviderError) as info:
        questra(transport, sleeps).list()
    assert sleeps == [] and len(seen) == 1
    assert info.value.retry_after == 3600.0 and info.value.status == 429
    assert str(info.value) == ("questra-prod: list: 429 slow down; the API asks to retry in 3600 s, longer than a "
                               "call waits (60 s: the provider option `deadline`, at least 60 s)")


@pytest.mark.parametrize(("exc", "reason"), [
    (httpx.ReadTimeout, "timed out after 30s waiting for the response"),
    (httpx.RemoteProtocolError, "connection closed after the request was sent"),
    (httpx.ReadError, "connection closed after the request was sent"),
])
def test_create_is_never_resent_once_it_may_have_landed(exc: type[httpx.HTTPError], reason: str) -> None:
    transport, seen = scripted(raises(exc), status(201, {**KEY, "secret": "sk_live_x"}))
    sleeps: list[float] = []
    with pytest.raises(ProviderError) as info:
        questra(transport, sleeps).create(create_req())
    assert len(seen) == 1 and sleeps == []
    assert info.value.ambiguous and info.value.status is None
    assert str(info.value) == f'questra-prod: create "CI bot": no response ({reason}); the key may exist remotely'


def test_create_retries_what_proves_nothing_happened() -> None:
    transport, seen = scripted(raises(httpx.ConnectError), raises(httpx.ConnectTimeout),
                               status(429, headers={"Retry-After": "1"}), status(503),
                               status(201, {**KEY, "secret": "sk_live_x"}))
    sleeps: list[float] = []
    result = questra(transport, sleeps).create(create_req())
    assert result.key.id == "ak_1" and result.secret == "sk_live_x"
    assert len(seen) == 5 and len(sleeps) == 4 and sleeps[2] == 1.0


@pytest.mark.parametrize("code", [500, 502, 504])
def test_create_5xx_is_not_retried_and_may_have_landed(code: int) -> None:
    transport, seen = scripted(status(code, {"message": "oops"}))
    with pytest.raises(ProviderError) as info:
        questra(transport, []).create(create_req())
    assert len(seen) == 1 and info.value.ambiguous and info.value.status == code
    assert str(info.value).endswith("the key may exist remotely")


def test_create_4xx_is_a_plain_refusal() -> None:
    transport, seen = scripted(status(401, {"error": "token rejected", "message": "the bearer token was rejected"}))
    with pytest.raises(ProviderError) as info:
        questra(transport, []).create(create_req())
    assert len(seen) == 1 and not info.value.ambiguous
    assert str(info.value) == 'questra-prod: create "CI bot": 401 the bearer token was rejected'


def test_connection_refused_names_the_url() -> None:
    sleeps: list[float] = []
    provider = QuestraProvider("questra-prod", "http://127.0.0.1:1", TOKEN, "org_1", max_retries=2,
                               sleep=sleeps.append)
    with pytest.raises(ProviderError) as info:
        provider.list()
    provider.close()
    assert str(info.value) == "questra-prod: list: cannot connect to http://127.0.0.1:1 (connection refused)"
    assert len(sleeps) == 2 and info.value.status is None and not info.value.ambiguous


def test_malformed_create_response_is_ambiguous() -> None:
    transport, _ = scripted(status(201, {"weird": True}))
    with pytest.raises(ProviderError) as info:
        questra(transport, []).create(create_req())
    assert info.value.ambiguous
    assert "unexpected response shape" in str(info.value)


def test_no_error_or_repr_shows_the_token_or_a_secret() -> None:
    auth_value = "av_very_secret_value"
    echo = f"bad authValue {auth_value} for token {TOKEN}"
    transport, seen = scripted(status(400, {"code": "invalid_argument", "message": echo}))
    provider = TextQLProvider("textql", "https://app.textql.test", TOKEN, transport=transport, sleep=lambda s: None)
    request = CreateRequest("ana", {"hosts": ["h"]}, None, {"auth_value": auth_value, "headers.X-Key": "hdr_secret_1"})
    with pytest.raises(ProviderError) as info:
        provider.create(request)
    text = str(info.value) + repr(info.value) + repr(provider) + repr(request)
    for secret in (TOKEN, auth_value, "hdr_secret_1"):
        assert secret not in text
    assert info.value.__cause__ is None
    assert str(info.value) == 'textql: create "ana": invalid_argument: bad authValue *** for token ***'
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent, just never shown


def test_transport_errors_do_not_chain_the_request() -> None:
    transport, _ = scripted(raises(httpx.ReadTimeout, f"read timeout Bearer {TOKEN}"))
    with pytest.raises(ProviderError) as info:
        questra(transport, []).create(create_req())
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert TOKEN not in str(info.value)
