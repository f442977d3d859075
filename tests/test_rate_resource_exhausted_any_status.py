"""A Connect `resource_exhausted` sent with a status other than 429 (Connect maps the code to 429).
Left open in stop 36 as "half-handled": any such answer paused the whole instance as a rate refusal,
but was not retried. A first fix (this stop) retried it whatever its status; an adversarial review
then showed why that is wrong: gRPC uses the code for quotas too (a 400 "too many keys" was retried
~20 times, pausing the instance each time, and tripped the breaker), and a server that committed a
create may still fail with it (a 500 made the create "not ambiguous": retried, a second key made,
the first live and tracked by nothing).

Now only a 503 with `resource_exhausted` joins 429 as a rate refusal (both refuse before acting);
any other status is taken by its status: a 4xx is a plain error that neither pauses nor retries, a
500 to a create is ambiguous. Real HTTP on 127.0.0.1 (a hostile proxy in front of the emulator)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import AmbiguousProviderError, ProviderError
from keyform.providers.textql import TextQLProvider
from keyform.remote import CreateRequest
from tests.hostile import Reply, Seen, hostile


def _request() -> CreateRequest:
    return CreateRequest("k", {"description": "k", "hosts": ["api.example.com"], "auth_type": "bearer"}, None,
                         {"auth_value": "v"})


def _exhausted(status: int) -> Reply:
    return Reply(status, json.dumps({"code": "resource_exhausted", "message": "slow down"}).encode(),
                 {"Content-Type": "application/json", "Retry-After": "0"})


def _create(emulator: Emulator, refusals: int, status: int) -> tuple[list[Seen], TextQLProvider, object]:
    creates: list[Seen] = []

    def script(seen: Seen) -> Reply | None:
        if seen.path == "/v1/api-keys/create":
            creates.append(seen)
            if len(creates) <= refusals:
                return _exhausted(status)
        return None

    with hostile(upstream=emulator.url) as server:
        server.script = script
        provider = TextQLProvider("tq", server.url, "tok_tq", max_retries=0)
        try:
            outcome: object = provider.create(_request())
        except ProviderError as exc:
            outcome = exc
        finally:
            provider.close()
    return creates, provider, outcome


def test_a_503_resource_exhausted_is_a_rate_refusal_waited_out_and_retried(emulator: Emulator) -> None:
    creates, provider, outcome = _create(emulator, 2, 503)
    assert len(creates) == 3 and not isinstance(outcome, ProviderError), outcome
    assert provider.limiter.stats().throttled == 2


def test_a_4xx_resource_exhausted_is_a_plain_error_no_pause_no_retry(emulator: Emulator) -> None:
    """A quota ("too many keys"): retrying it, pausing the instance, would only delay the failure."""
    creates, provider, outcome = _create(emulator, 99, 400)
    assert len(creates) == 1 and isinstance(outcome, ProviderError) and not outcome.ambiguous
    assert "resource_exhausted" in str(outcome) and provider.limiter.stats().throttled == 0


def test_a_500_resource_exhausted_to_a_create_stays_ambiguous(emulator: Emulator) -> None:
    creates, _, outcome = _create(emulator, 99, 500)
    assert len(creates) == 1 and isinstance(outcome, AmbiguousProviderError), outcome


def test_a_create_committed_then_answered_500_resource_exhausted_is_found_by_recovery(
        tmp_path: Path, emulator: Emulator) -> None:
    """The adversarial review's case, end to end: the proxy lets the first create reach the emulator
    (which commits the key), then answers 500 + resource_exhausted."""
    creates: list[int] = []

    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":
            creates.append(1)
            if len(creates) == 1:
                server.script = lambda s: None  # from now on, behave
                server.default(seen)  # forwarded: the emulator commits the key (and mints its secret)
                return Reply(500, b'{"code":"resource_exhausted","message":"commit hook: resource exhausted"}',
                             {"Content-Type": "application/json", "Retry-After": "0"})
        return None

    with hostile(upstream=emulator.url) as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("k1:\n  provider: qp\n")
        first = project.run_process("apply", "--auto-approve")
        again = project.run_process("apply", "--auto-approve")  # recovery finds the first key
    assert first.exit_code == 1 and "may exist" in first.output, first.tail()
    with EmulatorControl(emulator.url) as control:
        live = [k for k in control.questra_keys(ORG) if not k.get("revoked")]
    tracked = project.state()["keys"]["k1"]["remote_id"]
    assert [k["id"] for k in live] == [tracked], (live, again.tail())


@pytest.mark.parametrize("status", [400, 500])
def test_rate_refusal_is_429_or_a_503_resource_exhausted_only(status: int) -> None:
    import httpx

    from keyform.providers.http import rate_refusal

    def reply(code: int) -> httpx.Response:
        return httpx.Response(code, json={"code": "resource_exhausted"})

    assert rate_refusal(httpx.Response(429)) and rate_refusal(reply(503)) and not rate_refusal(reply(status))
