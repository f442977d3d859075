"""Usage data end to end: the emulator records when a key is used (a control call, or a request
authenticated with the key's own secret) and QuestraProvider reads `last_used_at` from the listing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError
from keyform.providers import QuestraProvider
from keyform.remote import CreateRequest
from tests.conftest import loopback_client

ORG = "org_use"
MakeEmulator = Callable[..., Emulator]


def provider_for(emu: Emulator, token: str = "admin-token", org: str = ORG) -> QuestraProvider:
    return QuestraProvider("qp", emu.url, token, org, sleep=lambda _s: None)


def mint(provider: QuestraProvider, name: str = "svc") -> tuple[str, str]:
    result = provider.create(CreateRequest(address=name, attrs={"name": name}, expires_at=None))
    assert result.secret is not None
    return result.key.id, result.secret


def use(control: EmulatorControl, key_id: str, at: str | None = None, org: str = ORG) -> dict[str, Any]:
    """The control call that marks a key used (now, or at `at`)."""
    return control.use_questra(org, key_id, at or None)


def consumer_call(emu: Emulator, secret: str, org: str = ORG) -> httpx.Response:
    """What a consumer of the key does: a Questra request authenticated with the key's own secret."""
    with loopback_client(emu.url, {"Authorization": f"Bearer {secret}", "X-Org-Id": org}) as http:
        return http.get("/api-keys")


def listed(provider: QuestraProvider, key_id: str) -> Any:
    keys = provider.list()
    assert keys is not None
    return next(k for k in keys if k.id == key_id)


def test_a_new_key_reports_usage_and_was_never_used(emulator: Emulator) -> None:
    provider = provider_for(emulator)
    key_id, _ = mint(provider)
    key = listed(provider, key_id)
    assert (key.usage_reported, key.last_used_at) == (True, None)


def test_the_use_control_call_sets_last_used_at_to_a_given_instant_or_now(
        emulator: Emulator, emu_control: EmulatorControl) -> None:
    provider = provider_for(emulator)
    key_id, secret = mint(provider)
    body = use(emu_control, key_id, at="2031-05-04T03:02:01+02:00")
    assert body["last_used_at"] == "2031-05-04T01:02:01Z"
    assert listed(provider, key_id).last_used_at == "2031-05-04T01:02:01Z"
    assert secret not in str(listed(provider, key_id))
    now_body = use(emu_control, key_id)
    assert now_body["last_used_at"] != "2031-05-04T01:02:01Z" and now_body["last_used_at"].endswith("Z")


@pytest.mark.parametrize("at", ["yesterday", "2031-05-04T03:02:01", 17, ""])
def test_the_use_control_call_refuses_a_bad_instant(emulator: Emulator, emu_control: EmulatorControl,
                                                    at: Any) -> None:
    key_id, _ = mint(provider_for(emulator))
    response = emu_control.request("POST", f"/questra/{ORG}/{key_id}/use", {"at": at})
    assert response.status == 400 and "RFC 3339" in response.body["message"]
    assert emu_control.questra_keys(ORG)[0]["last_used_at"] is None
    assert emu_control.request("POST", f"/questra/{ORG}/ak_nope/use").status == 404


def test_a_request_with_the_keys_own_secret_marks_it_used(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(tokens=frozenset({"admin-token"}))  # only the admin token, and key secrets
    provider = provider_for(emu)
    used_id, secret = mint(provider, "used")
    idle_id, _ = mint(provider, "idle")
    response = consumer_call(emu, secret)
    assert response.status_code == 200 and isinstance(response.json(), list)
    used = listed(provider, used_id)
    assert used.last_used_at is not None and listed(provider, idle_id).last_used_at is None
    assert consumer_call(emu, "sk_live_not_a_key").status_code == 401


def test_a_revoked_keys_secret_is_refused_and_leaves_last_used_at_alone(emulator: Emulator) -> None:
    provider = provider_for(emulator)
    key_id, secret = mint(provider)
    provider.delete(key_id)  # revoke
    response = consumer_call(emulator, secret)
    assert response.status_code == 401 and "revoked" in response.json()["message"]
    assert secret not in response.text
    assert listed(provider, key_id).last_used_at is None


def test_a_keys_secret_does_not_authenticate_in_another_organisation(emulator: Emulator) -> None:
    provider = provider_for(emulator)
    key_id, secret = mint(provider)
    assert consumer_call(emulator, secret, org="org_other").status_code == 401
    assert listed(provider, key_id).last_used_at is None


def test_a_listing_without_last_used_at_is_usage_not_reported(make_emulator: MakeEmulator) -> None:
    """A Questra-compatible API that omits the field: keyform must not read that as "never used"."""
    from keyform.providers.questra import parse_key

    key = parse_key({"id": "ak_1", "name": "n", "created_at": "2026-01-01T00:00:00Z", "expires_at": None,
                     "revoked": False, "expired": False}, "item 0")
    assert (key.usage_reported, key.last_used_at) == (False, None)


def test_a_malformed_last_used_at_is_one_clear_error() -> None:
    from keyform.providers.http import ShapeError
    from keyform.providers.questra import parse_key

    with pytest.raises(ShapeError, match=r"item 3 \(ak_1\) last_used_at is not an RFC 3339 timestamp"):
        parse_key({"id": "ak_1", "name": "n", "last_used_at": "last tuesday"}, "item 3")


def test_a_malformed_last_used_at_in_a_listing_fails_the_list_naming_the_api() -> None:
    """A real HTTP server on 127.0.0.1 answering with a bad `last_used_at` (and a canary secret-like
    value): one clear ProviderError naming the field, never the value's tail."""
    import json

    from tests.loopback import LoopbackServer, QuietHandler, serving

    body = json.dumps([{"id": "ak_1", "name": "n", "created_at": "2026-01-01T00:00:00Z", "expires_at": None,
                        "revoked": False, "expired": False,
                        "last_used_at": "not-a-time-" + "x" * 200 + "CANARY"}]).encode()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(LoopbackServer(Handler)) as server:
        provider = QuestraProvider("qp", server.url, "admin-token", ORG, sleep=lambda _s: None)
        with pytest.raises(ProviderError) as caught:
            provider.list()
        provider.close()
    message = str(caught.value)
    assert "last_used_at is not an RFC 3339 timestamp" in message and "qp" in message
    assert "CANARY" not in message
