"""QuestraProvider against the real emulator over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from keyform.durations import format_time, utcnow
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError, SourceLoc
from keyform.model import EnvRef, ProviderConfig
from keyform.providers import QuestraProvider, TextQLProvider, open_provider
from keyform.remote import CreateRequest
from tests.openapi_schemas import QUESTRA, validate
from tests.recording import RecordingTransport

ORG = "org_123"
MakeEmulator = Callable[..., Emulator]


@pytest.fixture
def recorder() -> Iterator[RecordingTransport]:
    transport = RecordingTransport()
    yield transport
    transport.close()


def provider_for(emu: Emulator, *, token: str = "tok_ci", org: str = ORG, sleeps: list[float] | None = None,
                 transport: RecordingTransport | None = None, max_retries: int = 5) -> QuestraProvider:
    return QuestraProvider("questra-prod", emu.url, token, org, transport=transport, max_retries=max_retries,
                           sleep=(sleeps if sleeps is not None else []).append)


def request(name: str = "CI bot", expires_at: str | None = None) -> CreateRequest:
    return CreateRequest(address="ci-bot", attrs={"name": name}, expires_at=expires_at)


def test_create_returns_the_secret_once_and_list_shows_the_key_without_it(
        emulator: Emulator, emu_control: EmulatorControl) -> None:
    provider = provider_for(emulator)
    expires = format_time(utcnow() + timedelta(days=90))
    result = provider.create(request(expires_at=expires))
    stored = emu_control.questra_keys(ORG)
    assert [k["id"] for k in stored] == [result.key.id]
    assert result.secret is not None and result.secret == stored[0]["secret"]
    assert result.secret not in repr(result)
    assert result.key.attrs == {"name": "CI bot"} and result.key.expires_at == expires
    assert result.key.created_at is not None and not result.key.revoked
    listed = provider.list()
    assert listed == [result.key]
    provider.close()


@pytest.mark.parametrize("shape", ["array", "data"])
def test_list_reads_both_response_shapes(make_emulator: MakeEmulator, shape: str) -> None:
    emu = make_emulator(questra_list_shape=shape)
    provider = provider_for(emu)
    created = [provider.create(request(f"key {i}")).key for i in range(3)]
    assert provider.list() == created
    provider.close()


def test_list_without_a_list_endpoint_is_none(make_emulator: MakeEmulator) -> None:
    provider = provider_for(make_emulator(questra_list_shape="none"))
    assert provider.list() is None
    provider.close()


def test_keys_are_per_organisation(emulator: Emulator) -> None:
    a, b = provider_for(emulator, org="org_a"), provider_for(emulator, org="org_b")
    key = a.create(request()).key
    assert a.list() == [key] and b.list() == []
    a.close()
    b.close()


def test_revoked_key_stays_listed_and_revoking_twice_or_a_missing_key_is_fine(
        emulator: Emulator, emu_control: EmulatorControl) -> None:
    provider = provider_for(emulator)
    key = provider.create(request()).key
    provider.delete(key.id)
    provider.delete(key.id)
    listed = provider.list()
    assert listed is not None and [(k.id, k.revoked) for k in listed] == [(key.id, True)]
    emu_control.delete_questra(ORG, key.id)
    provider.delete(key.id)  # gone entirely: not an error
    provider.delete("ak_never_existed")
    assert emu_control.requests()["questra.revoke"] == 4
    provider.close()


def test_expired_key_is_reported_expired(emulator: Emulator, emu_control: EmulatorControl) -> None:
    provider = provider_for(emulator)
    key = provider.create(request()).key
    emu_control.expire_questra(ORG, key.id)
    listed = provider.list()
    assert listed is not None and listed[0].expired and listed[0].expires_at is not None


def test_rejected_token_is_one_clear_line(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(tokens=frozenset({"the-good-token"}))
    provider = provider_for(emu, token="tok_wrong_value")
    with pytest.raises(ProviderError) as info:
        provider.create(request())
    assert str(info.value) == 'questra-prod: create "CI bot": 401 the bearer token was rejected'
    assert info.value.status == 401 and not info.value.ambiguous
    assert "tok_wrong_value" not in str(info.value)
    with pytest.raises(ProviderError, match=r"^questra-prod: list: 401 "):
        provider.list()
    provider.close()


def test_past_expiry_is_refused_with_the_servers_reason(emulator: Emulator) -> None:
    provider = provider_for(emulator)
    with pytest.raises(ProviderError) as info:
        provider.create(request(expires_at="2020-01-01T00:00:00Z"))
    assert str(info.value) == ('questra-prod: create "CI bot": 400 expires_at must be an RFC 3339 date-time '
                               "with a zone, in the future")
    assert info.value.status == 400


def test_every_request_matches_the_vendor_schema_and_carries_auth_and_org(
        emulator: Emulator, recorder: RecordingTransport) -> None:
    provider = provider_for(emulator, transport=recorder)
    key = provider.create(request()).key
    provider.create(request("expiring", format_time(utcnow() + timedelta(days=1))))
    provider.list()
    provider.delete(key.id)
    creates = recorder.to("/api-keys")
    assert [s.method for s in creates] == ["POST", "POST", "GET"]
    for sent in creates:
        if sent.method == "POST":
            validate(QUESTRA, "CreateApiKeyRequest", sent.body)
    assert creates[0].body == {"name": "CI bot"}
    assert recorder.to(f"/api-keys/{key.id}/revoke")[0].body is None
    assert len(recorder.sent) == 4
    for sent in recorder.sent:
        assert sent.headers["authorization"] == "Bearer tok_ci" and sent.headers["x-org-id"] == ORG
    provider.close()


def test_create_whose_response_is_lost_is_ambiguous_and_not_retried(
        make_emulator: MakeEmulator) -> None:
    emu = make_emulator(drop_after_commit_rate=1.0)
    sleeps: list[float] = []
    provider = provider_for(emu, sleeps=sleeps)
    with pytest.raises(ProviderError) as info:
        provider.create(request())
    assert info.value.ambiguous and info.value.status is None
    assert str(info.value) == ('questra-prod: create "CI bot": no response (connection closed after the request '
                               "was sent); the key may exist remotely")
    with EmulatorControl(emu.url) as control:
        assert len(control.questra_keys(ORG)) == 1
        assert control.requests()["questra.create"] == 1
    assert sleeps == []
    provider.close()


def test_list_rides_out_injected_503s(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(error_rate=0.5, seed=42)
    sleeps: list[float] = []
    provider = provider_for(emu, sleeps=sleeps, max_retries=10)
    for _ in range(5):
        assert provider.list() == []
    with EmulatorControl(emu.url) as control:
        state = control.state()
    assert state["faults"]["injected"]["unavailable"] == len(sleeps) > 0
    assert state["requests"]["questra.list"] == 5 + len(sleeps)
    provider.close()


def test_create_retries_503_because_nothing_happened(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(error_rate=0.5, seed=3)
    sleeps: list[float] = []
    provider = provider_for(emu, sleeps=sleeps, max_retries=10)
    made = [provider.create(request(f"k{i}")).key.id for i in range(4)]
    with EmulatorControl(emu.url) as control:
        assert sorted(k["id"] for k in control.questra_keys(ORG)) == sorted(made)
    assert len(sleeps) > 0
    provider.close()


def test_rate_limit_waits_exactly_retry_after(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(rate_limit_rate=1.0, retry_after=0.25)
    sleeps: list[float] = []
    provider = provider_for(emu, sleeps=sleeps, max_retries=3)
    with pytest.raises(ProviderError) as info:
        provider.list()
    assert sleeps == [0.25] * 20  # rate refusals have their own budget (RetryPolicy.max_throttled), not max_retries
    assert info.value.status == 429 and info.value.retry_after == 0.25
    # (a review: the bare `429 too many requests` hid 21 attempts)
    assert str(info.value) == ("questra-prod: list: 429 too many requests (injected); rate-limited: still 429 after "
                               "21 attempts: the most a call makes against refusals for the rate (20 retries)")
    provider.close()


def test_connection_refused(emulator: Emulator) -> None:
    url = emulator.url
    emulator.stop()
    provider = QuestraProvider("questra-prod", url, "tok", ORG, max_retries=1, sleep=lambda s: None)
    with pytest.raises(ProviderError) as info:
        provider.list()
    assert str(info.value) == f"questra-prod: list: cannot connect to {url} (connection refused)"


@pytest.mark.parametrize(("body", "content_type", "said"), [
    (b"<html><body>maintenance</body></html>", "text/html; charset=utf-8",
     "the body is not JSON (Content-Type: text/html; charset=utf-8, 37 bytes)"),
    (b'[{"id": "ak_1", "na', "application/json", "the body is not JSON (Content-Type: application/json, 19 bytes)"),
    (b"", "application/json", "the body is empty"),
])
def test_a_success_whose_body_is_not_json_says_so(body: bytes, content_type: str, said: str) -> None:
    """A 200 with an HTML page or a cut-off JSON body was 'expected an array or {"data": [...]},
    got NoneType': the reader could not tell the body was not JSON at all."""
    from tests.hostile import Reply, hostile

    with hostile() as api:
        api.script = lambda seen: Reply(200, body, {"Content-Type": content_type})
        provider = QuestraProvider("questra-prod", api.url, "tok", ORG, max_retries=0, sleep=lambda s: None)
        with pytest.raises(ProviderError) as info:
            provider.list()
    assert str(info.value) == f"questra-prod: list: unexpected response shape ({said})"


def test_update_is_refused() -> None:
    provider = QuestraProvider("questra-prod", "http://127.0.0.1:1", "tok", ORG)
    with pytest.raises(ProviderError, match="cannot be changed in place"):
        provider.update("ak_1", {"name": "x"}, None)


def test_open_provider_picks_the_class_by_type() -> None:
    def config(type_: str) -> ProviderConfig:
        return ProviderConfig(type_, type_, "http://127.0.0.1:1", EnvRef("T"), None, SourceLoc("k.yaml", 1))

    questra, textql = open_provider(config("questra"), "t", "org"), open_provider(config("textql"), "t", None)
    assert isinstance(questra, QuestraProvider) and isinstance(textql, TextQLProvider)
    assert questra.name == "questra"
    with pytest.raises(ProviderError, match="unknown provider type 'nope'"):
        open_provider(config("nope"), "t", None)
    questra.close()
    textql.close()
