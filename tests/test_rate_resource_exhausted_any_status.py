"""A Connect `resource_exhausted` answered with a status other than 429 (Connect maps the code to
429, but a gateway or a server may send it as 400 or 503): keyform paused the instance for it, as a
rate refusal, but then did not retry the call, so a create failed at the first refusal where a 429
would have been waited out. Left open in stop 36 as "half-handled". A rate refusal is now retried
whatever its status (it proves nothing was done, so a create is retried too), on the refusals' own
budget. Real HTTP on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from keyform.emulator import Emulator
from keyform.errors import ProviderError
from keyform.providers.textql import TextQLProvider
from keyform.remote import CreateRequest
from tests.hostile import Reply, Seen, hostile


def _request() -> CreateRequest:
    return CreateRequest("k", {"description": "k", "hosts": ["api.example.com"], "auth_type": "bearer"}, None,
                         {"auth_value": "v"})


@pytest.mark.parametrize("status", [400, 503, 500])
def test_a_resource_exhausted_of_any_status_is_waited_out_and_retried(status: int, emulator: Emulator) -> None:
    creates: list[Seen] = []

    def script(seen: Seen) -> Reply | None:
        if seen.path == "/v1/api-keys/create":
            creates.append(seen)
            if len(creates) <= 2:
                return Reply(status, json.dumps({"code": "resource_exhausted", "message": "slow down"}).encode(),
                             {"Content-Type": "application/json", "Retry-After": "0"})
        return None

    with hostile(upstream=emulator.url) as server:
        server.script = script
        provider = TextQLProvider("tq", server.url, "tok_tq", max_retries=0)
        try:
            result = provider.create(_request())
        finally:
            provider.close()
    assert len(creates) == 3 and result.key.id
    assert provider.limiter.stats().throttled == 2


def test_a_create_refused_for_its_rate_to_the_end_is_not_ambiguous(emulator: Emulator) -> None:
    """A `resource_exhausted` with a 500, every time: the create ends on the refusals' budget, and
    what it reports is a refusal, never "the key may exist" (which sends recovery looking for a key
    that was never made)."""
    def script(seen: Seen) -> Reply | None:
        if seen.path == "/v1/api-keys/create":
            return Reply(500, json.dumps({"code": "resource_exhausted", "message": "slow down"}).encode(),
                         {"Content-Type": "application/json", "Retry-After": "0"})
        return None

    with hostile(upstream=emulator.url) as server:
        server.script = script
        provider = TextQLProvider("tq", server.url, "tok_tq", max_retries=0)
        try:
            with pytest.raises(ProviderError) as err:
                provider.create(_request())
        finally:
            provider.close()
    assert not err.value.ambiguous and "may exist" not in str(err.value), str(err.value)
    assert "resource_exhausted" in str(err.value)
