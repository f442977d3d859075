"""TextQLProvider against the real emulator over HTTP on 127.0.0.1 (Connect protocol, JSON)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyform.durations import format_time, utcnow
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError
from keyform.providers import TextQLProvider
from keyform.remote import CreateRequest
from tests.hostile import Reply, Seen, hostile
from tests.openapi_schemas import TEXTQL, validate
from tests.recording import RecordingTransport

MakeEmulator = Callable[..., Emulator]
AUTH_VALUE = "sk_live_questra_secret_value"
ATTRS: dict[str, Any] = {
    "description": "Questra access for Ana",
    "hosts": ["api.questra.ai"],
    "headers": {"X-Org-Id": "org_123"},
    "query_params": {"region": "eu"},
    "api_provider": "questra",
    "auth_type": "token",
    "is_private": True,
}
SCHEMAS = {
    "/v1/api-keys/create": "CreateApiAccessKeyRequest",
    "/v1/api-keys/update": "UpdateApiAccessKeyRequest",
    "/v1/api-keys": "ListApiAccessKeysRequest",
    "/v1/api-keys/delete": "DeleteApiAccessKeyRequest",
}


def in_days(days: int) -> str:
    return format_time(utcnow() + timedelta(days=days))


@pytest.fixture
def recorder() -> Iterator[RecordingTransport]:
    transport = RecordingTransport()
    yield transport
    transport.close()


def provider_for(emu: Emulator, *, token: str = "tok_tq", sleeps: list[float] | None = None,
                 transport: RecordingTransport | None = None, max_retries: int = 5) -> TextQLProvider:
    return TextQLProvider("textql", emu.url, token, transport=transport, max_retries=max_retries,
                          sleep=(sleeps if sleeps is not None else []).append)


def request(attrs: dict[str, Any] | None = None, expires_at: str | None = None,
            secrets: dict[str, str] | None = None) -> CreateRequest:
    inputs = {"auth_value": AUTH_VALUE} if secrets is None else secrets
    return CreateRequest("ana-questra", ATTRS if attrs is None else attrs, expires_at, inputs)


def test_create_stores_the_credential_and_reports_manifest_named_attributes(
        emulator: Emulator, emu_control: EmulatorControl) -> None:
    provider = provider_for(emulator)
    expires = in_days(30)
    secrets = {"auth_value": AUTH_VALUE, "auth_value_extra": "ana@example.com", "headers.X-Api-Key": "hdr_secret"}
    result = provider.create(request(expires_at=expires, secrets=secrets))
    assert result.secret is None
    assert result.key.expires_at == expires and result.key.created_at is not None
    assert result.key.attrs == {
        "description": "Questra access for Ana", "hosts": ["api.questra.ai"],
        "headers": {"X-Org-Id": "org_123", "X-Api-Key": "hdr_secret"},  # refresh strips secret header names
        "query_params": {"region": "eu"}, "api_provider": "questra", "auth_type": "token",
    }
    [stored] = emu_control.textql_keys()
    assert stored["authValue"] == AUTH_VALUE and stored["authValueExtra"] == "ana@example.com"
    assert stored["isPrivate"] is True and stored["provider"] == "questra"
    assert provider.list() == [result.key]
    provider.close()


def test_minimal_key_reads_back_with_defaults(emulator: Emulator) -> None:
    provider = provider_for(emulator)
    key = provider.create(request({"hosts": ["h.example"]}, secrets={})).key
    assert key.expires_at is None
    assert key.attrs == {"description": "", "hosts": ["h.example"], "headers": {}, "query_params": {},
                         "api_provider": "", "auth_type": "token"}
    provider.close()


def test_update_changes_only_the_updatable_fields(emulator: Emulator, emu_control: EmulatorControl) -> None:
    provider = provider_for(emulator)
    key = provider.create(request(expires_at=in_days(30))).key
    new_expiry = in_days(60)
    attrs = {"description": "new", "hosts": ["a.example", "b.example"], "headers": {"X-Org-Id": "org_9"},
             "query_params": {}, "auth_type": "token"}
    updated = provider.update(key.id, attrs, new_expiry)
    assert updated.id == key.id and updated.expires_at == new_expiry
    assert updated.attrs["hosts"] == ["a.example", "b.example"] and updated.attrs["description"] == "new"
    assert updated.attrs["query_params"] == {} and updated.attrs["api_provider"] == "questra"
    [stored] = emu_control.textql_keys()
    assert stored["authValue"] == AUTH_VALUE and stored["isPrivate"] is True  # create-only, untouched
    assert provider.list() == [updated]
    provider.close()


def test_update_without_expiry_keeps_the_remote_one(emulator: Emulator) -> None:
    provider = provider_for(emulator)
    expires = in_days(30)
    key = provider.create(request(expires_at=expires)).key
    assert provider.update(key.id, {"description": "x"}, None).expires_at == expires
    provider.close()


def test_update_of_a_missing_key_names_the_connect_code(emulator: Emulator) -> None:
    provider = provider_for(emulator)
    with pytest.raises(ProviderError) as info:
        provider.update("no-such-id", {"description": "x"}, None)
    assert str(info.value) == "textql: update \"no-such-id\": not_found: api access key 'no-such-id' not found"
    assert info.value.status == 404 and info.value.code == "not_found"
    provider.close()


def test_delete_is_idempotent(emulator: Emulator, emu_control: EmulatorControl) -> None:
    provider = provider_for(emulator)
    key = provider.create(request()).key
    provider.delete(key.id)
    provider.delete(key.id)  # not_found: already gone
    assert provider.list() == [] and emu_control.textql_keys() == []
    provider.close()


def test_rejected_token_is_a_connect_error_line(make_emulator: MakeEmulator) -> None:
    provider = provider_for(make_emulator(tokens=frozenset({"good"})), token="tok_bad_value")
    with pytest.raises(ProviderError) as info:
        provider.create(request())
    assert str(info.value) == 'textql: create "ana-questra": unauthenticated: the bearer token was rejected'
    assert info.value.status == 401 and info.value.code == "unauthenticated" and not info.value.ambiguous
    provider.close()


def test_past_expiry_is_invalid_argument(emulator: Emulator) -> None:
    provider = provider_for(emulator)
    with pytest.raises(ProviderError) as info:
        provider.create(request(expires_at="2020-01-01T00:00:00Z"))
    assert str(info.value) == ('textql: create "ana-questra": invalid_argument: expiresAt must be an RFC 3339 '
                               "timestamp in the future")
    assert AUTH_VALUE not in str(info.value)
    provider.close()


def test_out_of_band_changes_show_in_the_listing(emulator: Emulator, emu_control: EmulatorControl) -> None:
    provider = provider_for(emulator)
    key = provider.create(request()).key
    emu_control.patch_textql(key.id, hosts=["evil.example"], expiresAt="2020-01-01T00:00:00Z")
    [listed] = provider.list() or []
    assert listed.attrs["hosts"] == ["evil.example"] and listed.expires_at == "2020-01-01T00:00:00Z"
    emu_control.delete_textql(key.id)
    assert provider.list() == []
    provider.close()


def test_every_request_body_matches_the_vendor_schema(emulator: Emulator, recorder: RecordingTransport) -> None:
    provider = provider_for(emulator, transport=recorder)
    full = provider.create(request(expires_at=in_days(10), secrets={
        "auth_value": AUTH_VALUE, "auth_value_extra": "x", "headers.X-Api-Key": "hdr_secret"})).key
    bare = provider.create(request({"hosts": ["h"], "api_provider": "", "auth_type": None}, secrets={})).key
    provider.list()
    provider.update(full.id, {n: ATTRS[n] for n in ("description", "hosts", "headers", "query_params",
                                                     "auth_type")}, in_days(20))
    provider.update(bare.id, {"description": None, "hosts": ["h2"], "headers": None, "query_params": None,
                              "auth_type": None}, None)
    provider.delete(full.id)
    provider.delete("already-gone")
    assert [s.path for s in recorder.sent].count("/v1/api-keys/update") == 2
    assert {s.path for s in recorder.sent} == set(SCHEMAS)
    for sent in recorder.sent:
        assert sent.method == "POST"
        validate(TEXTQL, SCHEMAS[sent.path], sent.body)
        assert sent.headers["connect-protocol-version"] == "1"
        assert sent.headers["content-type"] == "application/json"
        assert sent.headers["authorization"] == "Bearer tok_tq"
    create = recorder.to("/v1/api-keys/create")
    assert create[0].body["headers"] == {"X-Org-Id": "org_123", "X-Api-Key": "hdr_secret"}
    assert create[0].body["authValue"] == AUTH_VALUE and create[0].body["isPrivate"] is True
    assert "provider" not in create[1].body and "expiresAt" not in create[1].body
    assert "authType" not in create[1].body and "authValue" not in create[1].body
    update = recorder.to("/v1/api-keys/update")
    assert set(update[0].body) == {"id", "hosts", "headers", "queryParams", "description", "authType", "expiresAt"}
    assert update[1].body == {"id": bare.id, "hosts": ["h2"], "headers": {}, "queryParams": {}, "description": ""}
    assert recorder.to("/v1/api-keys")[0].body == {}
    provider.close()


def test_create_whose_response_is_lost_is_ambiguous_and_not_retried(make_emulator: MakeEmulator) -> None:
    emu = make_emulator(drop_after_commit_rate=1.0)
    sleeps: list[float] = []
    provider = provider_for(emu, sleeps=sleeps)
    with pytest.raises(ProviderError) as info:
        provider.create(request())
    assert info.value.ambiguous and sleeps == []
    assert str(info.value).endswith("the key may exist remotely")
    with EmulatorControl(emu.url) as control:
        assert len(control.textql_keys()) == 1 and control.requests()["textql.create"] == 1
    provider.close()


def test_update_and_list_ride_out_injected_faults(make_emulator: MakeEmulator) -> None:
    emu = make_emulator()
    sleeps: list[float] = []
    provider = provider_for(emu, sleeps=sleeps, max_retries=12)
    key = provider.create(request()).key
    with EmulatorControl(emu.url) as control:
        control.faults(error_rate=0.4, rate_limit_rate=0.2, retry_after=0.1, seed=11)
        for i in range(5):
            assert provider.update(key.id, {"description": f"v{i}"}, None).attrs["description"] == f"v{i}"
            assert len(provider.list() or []) == 1
        injected = control.state()["faults"]["injected"]
    assert sum(injected.values()) == len(sleeps) > 0
    assert sleeps.count(0.1) == injected.get("rate_limited", 0)
    provider.close()


# -- parse_key's fast path agrees with the field-by-field check --------------------------------------

_WIRE_VALUES = st.one_of(st.none(), st.text(max_size=3), st.integers(), st.booleans(),
                         st.lists(st.one_of(st.text(max_size=3), st.integers()), max_size=3),
                         st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.integers(),
                                                                         st.none()), max_size=3))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["description", "hosts", "headers", "queryParams", "provider",
                                        "authType", "isPrivate"]), _WIRE_VALUES))
def test_parse_key_fast_path_gives_what_the_general_check_gives(fields: dict[str, Any]) -> None:
    """An item the fast path takes gives the same attributes as `_check` field by field; any other
    item goes to `_check` (same attributes, or the same ShapeError)."""
    from keyform.providers import textql
    from keyform.providers.http import ShapeError

    item = {"id": "k1", **fields}

    def general() -> Any:
        try:
            return {attr: textql._check(item.get(field), default, "item 0", "k1", field)
                    for attr, (field, default) in textql.WIRE.items()}
        except ShapeError as exc:
            return str(exc)
    fast = textql._fast_attrs(item)
    if fast is not None:
        assert fast == general()
    try:
        parsed: Any = textql.parse_key(item, "item 0").attrs
    except ShapeError as exc:
        parsed = str(exc)
    assert parsed == general()


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503])
def test_a_failure_whose_body_says_not_found_is_no_delete(emulator: Emulator, emu_control: EmulatorControl,
                                                          status: int) -> None:
    """Review s41: a 500, 401 or 503 whose Connect body says `{"code": "not_found"}` (a failing
    server, a gateway) counted as "already gone": keyform dropped the key from the state while the
    TextQL key, holding a credential, stayed live. The status decides, as for a REST definition's
    `gone_codes`."""
    with hostile(upstream=emulator.url) as api:
        provider = TextQLProvider("textql", api.url, "tok_tq", max_retries=0, sleep=lambda s: None)
        key = provider.create(request()).key

        def refuse(seen: Seen) -> Reply | None:
            if seen.path != "/v1/api-keys/delete":
                return None
            return Reply(status, b'{"code": "not_found", "message": "no such key"}',
                         {"Content-Type": "application/json", "Retry-After": "0"})

        api.script = refuse
        with pytest.raises(ProviderError) as info:
            provider.delete(key.id)
        assert info.value.status == status and info.value.code == "not_found", info.value
        api.script = lambda seen: None
        provider.delete("no-such-id")  # the API's own not_found, a 404: already gone
        provider.close()
    assert [k["id"] for k in emu_control.textql_keys()] == [key.id]


def test_a_listing_imports_neither_the_rest_definitions_nor_yaml() -> None:
    """A plan's listings, whose manifests came from the parse cache, imported the REST definitions'
    module and with it yaml (~12 ms, through `keyform.providers.omitted`) for a rule they never used:
    that rule's helpers now live in the import-free `keyform.pointers`."""
    code = ("import sys\nfrom keyform.providers.textql import parse_list\n"
            "keys = parse_list({'apiAccessKeys': [{'id': 'k1', 'description': '', 'hosts': [], 'headers': {}, "
            "'queryParams': {}, 'provider': '', 'authType': ''}]})\n"
            "assert [k.id for k in keys] == ['k1']\n"
            "print(sorted(m for m in ('yaml', 'keyform.manifest.restdef') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
