"""The emulator's TextQL API keeps SPEC §1.2 and textql-api-access-key-v1.openapi.yaml (Connect, JSON)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from keyform.emulator import Emulator
from keyform.emulator.client import ControlError, EmulatorControl
from tests.conftest import loopback_client
from tests.openapi_schemas import TEXTQL, validate, validate_request, validate_response

CONNECT = {"Authorization": "Bearer tok", "Connect-Protocol-Version": "1"}
FUTURE = "2099-06-01T00:00:00Z"
SECRET_FIELDS = {"authValue", "authValueExtra", "isPrivate"}
FULL_CREATE = {
    "hosts": ["api.questra.ai"],
    "headers": {"X-Org-Id": "org_123"},
    "queryParams": {"region": "eu"},
    "description": "Questra access for Ana",
    "expiresAt": FUTURE,
    "isPrivate": True,
    "provider": "questra",
    "authValue": "sk_live_secret_value",
    "authValueExtra": "ana@example.com",
    "authType": "token",
}
UPDATABLE = {
    "hosts": ["api2.questra.ai"],
    "headers": {"X-Org-Id": "org_456"},
    "queryParams": {},
    "description": "changed",
    "expiresAt": "2098-01-01T00:00:00Z",
    "authType": "oauth_u2m",
}


@pytest.fixture
def textql(emulator: Emulator) -> Iterator[httpx.Client]:
    with loopback_client(emulator.url, CONNECT) as http:
        yield http


def call(http: httpx.Client, procedure: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    """POST a Connect call, check the status and that the answer fits the spec's response schema."""
    path = f"/v1/api-keys{procedure}"
    response = http.post(path, json=body)
    assert response.status_code == status, response.text
    validate_response(TEXTQL, path, "post", status, response.json())
    return response.json()


def create(http: httpx.Client, **body: Any) -> dict[str, Any]:
    validate_request(TEXTQL, "/v1/api-keys/create", "post", body)
    key: dict[str, Any] = call(http, "/create", body)["apiAccessKey"]
    return key


def assert_connect_error(response: httpx.Response, code: str, status: int) -> str:
    """``response`` is a Connect error ``{"code", "message"}`` with the status ``code`` maps to."""
    assert response.status_code == status, response.text
    body = response.json()
    validate(TEXTQL, "connect.error", body)
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return str(body["message"])


# ------------------------------------------------------------------------------------------ create


def test_create_echoes_every_response_field_and_hides_the_auth_value(
    textql: httpx.Client, emu_control: EmulatorControl
) -> None:
    key = create(textql, **FULL_CREATE)
    validate(TEXTQL, "ApiAccessKey", key)
    assert not SECRET_FIELDS & set(key)
    assert "sk_live_secret_value" not in str(key)
    for name in ("hosts", "headers", "queryParams", "description", "expiresAt", "provider", "authType"):
        assert key[name] == FULL_CREATE[name]
    assert key["orgId"] == "org_emulator" and key["memberId"] and key["id"]
    assert key["createdAt"] == key["updatedAt"]
    assert key["memberOauthAuthenticated"] is False
    [stored] = emu_control.textql_keys()
    assert {name: stored[name] for name in SECRET_FIELDS} == {
        "authValue": "sk_live_secret_value",
        "authValueExtra": "ana@example.com",
        "isPrivate": True,
    }


def test_create_with_an_empty_body_fills_defaults_and_omits_expiry(textql: httpx.Client) -> None:
    key = create(textql)
    assert (key["hosts"], key["headers"], key["queryParams"], key["description"]) == ([], {}, {}, "")
    assert (key["provider"], key["authType"]) == ("", "token")
    assert "expiresAt" not in key


def test_create_normalises_expiry_to_utc(textql: httpx.Client) -> None:
    assert create(textql, expiresAt="2099-06-01T02:00:00.5+02:00")["expiresAt"] == "2099-06-01T00:00:00.5Z"


@pytest.mark.parametrize(
    "body",
    [
        {"expiresAt": "2020-01-01T00:00:00Z"},
        {"expiresAt": "2099-01-01T00:00:00"},
        {"expiresAt": "2099-01-01"},
        {"expiresAt": "soon"},
        {"expiresAt": None},
        {"hosts": "api.questra.ai"},
        {"hosts": [1]},
        {"headers": {"X-Org-Id": 1}},
        {"headers": ["X-Org-Id"]},
        {"queryParams": "a=b"},
        {"isPrivate": "yes"},
        {"description": 5},
        {"authValue": None},
        {"provider": ["questra"]},
        {"authType": True},
        {"name": "not in the schema"},
        {"id": "ids are assigned"},
    ],
    ids=repr,
)
def test_create_rejects_what_the_request_schema_forbids(textql: httpx.Client, body: dict[str, Any]) -> None:
    assert_connect_error(textql.post("/v1/api-keys/create", json=body), "invalid_argument", 400)
    assert call(textql, "", {})["apiAccessKeys"] == []


def test_unknown_field_is_named_in_the_error(textql: httpx.Client) -> None:
    message = assert_connect_error(textql.post("/v1/api-keys/create", json={"scopes": []}), "invalid_argument", 400)
    assert "scopes" in message


def test_a_body_that_is_not_a_json_object_is_invalid_argument(textql: httpx.Client) -> None:
    for content in (b"{", b"[]", b'"x"'):
        response = textql.post("/v1/api-keys/create", content=content)
        assert_connect_error(response, "invalid_argument", 400)


# -------------------------------------------------------------------------------- Connect headers

PROCEDURES = ["", "/create", "/update", "/delete"]


@pytest.mark.parametrize("procedure", PROCEDURES)
@pytest.mark.parametrize("version", [None, "2", ""])
def test_every_call_needs_connect_protocol_version_1(emulator: Emulator, procedure: str, version: str | None) -> None:
    headers = {"Authorization": "Bearer tok"}
    if version is not None:
        headers["Connect-Protocol-Version"] = version
    with loopback_client(emulator.url, headers) as http:
        response = http.post(f"/v1/api-keys{procedure}", json={})
        assert_connect_error(response, "invalid_argument", 400)


@pytest.mark.parametrize("procedure", PROCEDURES)
@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Token tok"])
def test_every_call_needs_a_bearer_token(emulator: Emulator, procedure: str, authorization: str | None) -> None:
    headers = {"Connect-Protocol-Version": "1"}
    if authorization is not None:
        headers["Authorization"] = authorization
    with loopback_client(emulator.url, headers) as http:
        assert_connect_error(http.post(f"/v1/api-keys{procedure}", json={}), "unauthenticated", 401)


def test_configured_tokens_reject_every_other_token(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(tokens=frozenset({"good"}))
    bad_headers = {**CONNECT, "Authorization": "Bearer bad"}
    good_headers = {**CONNECT, "Authorization": "Bearer good"}
    with loopback_client(emulator.url, bad_headers) as bad, loopback_client(emulator.url, good_headers) as good:
        assert_connect_error(bad.post("/v1/api-keys/create", json={}), "unauthenticated", 401)
        assert create(good)


def test_keys_are_visible_whatever_the_token(emulator: Emulator) -> None:
    with loopback_client(emulator.url, CONNECT) as one:
        key = create(one, description="shared")
    with loopback_client(emulator.url, {**CONNECT, "Authorization": "Bearer other"}) as two:
        assert [k["id"] for k in call(two, "", {})["apiAccessKeys"]] == [key["id"]]


def test_only_post_is_allowed(textql: httpx.Client) -> None:
    response = textql.get("/v1/api-keys")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["code"] == "unimplemented"


def test_an_unknown_procedure_is_404(textql: httpx.Client) -> None:
    response = textql.post("/v1/api-keys/rotate", json={})
    assert response.status_code == 404 and response.json()["code"] == "unimplemented"


# ------------------------------------------------------------------------------------------- list


def test_list_returns_every_key_in_creation_order_without_auth_values(textql: httpx.Client) -> None:
    made = [create(textql, **FULL_CREATE), create(textql, description="second")]
    keys = call(textql, "", {})["apiAccessKeys"]
    assert keys == made
    assert all(not SECRET_FIELDS & set(k) for k in keys)


def test_list_accepts_an_empty_body_and_rejects_any_field(textql: httpx.Client) -> None:
    assert textql.post("/v1/api-keys", content=b"").json() == {"apiAccessKeys": []}
    assert_connect_error(textql.post("/v1/api-keys", json={"pageSize": 10}), "invalid_argument", 400)


def test_list_of_many_keys_fits_the_schema(textql: httpx.Client, emu_control: EmulatorControl) -> None:
    emu_control.bulk_textql(2_000)
    assert len(call(textql, "", {})["apiAccessKeys"]) == 2_000


# ----------------------------------------------------------------------------------------- update


def test_update_changes_only_the_given_fields(textql: httpx.Client, emu_control: EmulatorControl) -> None:
    key = create(textql, **FULL_CREATE)
    body = {"id": key["id"], "description": "changed"}
    validate_request(TEXTQL, "/v1/api-keys/update", "post", body)
    updated = call(textql, "/update", body)["apiAccessKey"]
    assert updated == {**key, "description": "changed", "updatedAt": updated["updatedAt"]}
    assert updated["updatedAt"] >= key["updatedAt"]
    [stored] = emu_control.textql_keys()
    assert stored["authValue"] == "sk_live_secret_value"


def test_update_can_change_every_updatable_field(textql: httpx.Client) -> None:
    key = create(textql, **FULL_CREATE)
    body = {"id": key["id"], **UPDATABLE}
    validate_request(TEXTQL, "/v1/api-keys/update", "post", body)
    updated = call(textql, "/update", body)["apiAccessKey"]
    assert {name: updated[name] for name in UPDATABLE} == UPDATABLE
    assert call(textql, "", {})["apiAccessKeys"] == [updated]


@pytest.mark.parametrize("field", ["authValue", "authValueExtra", "isPrivate", "provider", "orgId", "createdAt"])
def test_update_rejects_create_only_and_output_fields(textql: httpx.Client, field: str) -> None:
    key = create(textql, **FULL_CREATE)
    value = FULL_CREATE.get(field, "x")
    response = textql.post("/v1/api-keys/update", json={"id": key["id"], field: value})
    assert field in assert_connect_error(response, "invalid_argument", 400)
    assert call(textql, "", {})["apiAccessKeys"] == [key]


@pytest.mark.parametrize(
    "change", [{"expiresAt": "2020-01-01T00:00:00Z"}, {"expiresAt": None}, {"hosts": "x"}], ids=repr
)
def test_update_rejects_invalid_values_and_changes_nothing(textql: httpx.Client, change: dict[str, Any]) -> None:
    key = create(textql, **FULL_CREATE)
    response = textql.post("/v1/api-keys/update", json={"id": key["id"], **change})
    assert_connect_error(response, "invalid_argument", 400)
    assert call(textql, "", {})["apiAccessKeys"] == [key]


def test_update_needs_an_id(textql: httpx.Client) -> None:
    for body in ({"description": "x"}, {"id": ""}, {"id": 5}):
        assert_connect_error(textql.post("/v1/api-keys/update", json=body), "invalid_argument", 400)


def test_update_of_an_unknown_key_is_not_found(textql: httpx.Client) -> None:
    response = textql.post("/v1/api-keys/update", json={"id": "missing", "description": "x"})
    assert_connect_error(response, "not_found", 404)


# ----------------------------------------------------------------------------------------- delete


def test_delete_answers_an_empty_object_and_forgets_the_key(textql: httpx.Client) -> None:
    keep, gone = create(textql, description="keep"), create(textql, description="gone")
    validate_request(TEXTQL, "/v1/api-keys/delete", "post", {"id": gone["id"]})
    assert call(textql, "/delete", {"id": gone["id"]}) == {}
    assert call(textql, "", {})["apiAccessKeys"] == [keep]
    assert_connect_error(textql.post("/v1/api-keys/delete", json={"id": gone["id"]}), "not_found", 404)


def test_delete_rejects_unknown_fields_and_a_missing_id(textql: httpx.Client) -> None:
    key = create(textql)
    assert_connect_error(
        textql.post("/v1/api-keys/delete", json={"id": key["id"], "force": True}), "invalid_argument", 400
    )
    assert_connect_error(textql.post("/v1/api-keys/delete", json={}), "invalid_argument", 400)
    assert len(call(textql, "", {})["apiAccessKeys"]) == 1


# ------------------------------------------------------------------------------------ control API


def test_control_api_patches_a_key_out_of_band(textql: httpx.Client, emu_control: EmulatorControl) -> None:
    key = create(textql, **FULL_CREATE)
    stored = emu_control.patch_textql(key["id"], hosts=["evil.example"], expiresAt="2020-01-01T00:00:00Z")
    assert stored["authValue"] == "sk_live_secret_value"
    [listed] = call(textql, "", {})["apiAccessKeys"]
    assert (listed["hosts"], listed["expiresAt"]) == (["evil.example"], "2020-01-01T00:00:00Z")
    assert listed["updatedAt"] >= key["updatedAt"]


def test_control_api_can_change_internal_fields(textql: httpx.Client, emu_control: EmulatorControl) -> None:
    key = create(textql, authValue="old")
    emu_control.patch_textql(key["id"], authValue="new", isPrivate=True)
    [stored] = emu_control.textql_keys()
    assert (stored["authValue"], stored["isPrivate"]) == ("new", True)


def test_control_api_refuses_bad_patches_and_unknown_keys(textql: httpx.Client, emu_control: EmulatorControl) -> None:
    key = create(textql)
    for key_id, fields, status in ((key["id"], {"bogus": 1}, 400), (key["id"], {"hosts": 1}, 400), ("nope", {}, 404)):
        with pytest.raises(ControlError) as refused:
            emu_control.patch_textql(key_id, **fields)
        assert refused.value.status == status


def test_control_api_deletes_a_key_out_of_band(textql: httpx.Client, emu_control: EmulatorControl) -> None:
    key = create(textql)
    emu_control.delete_textql(key["id"])
    assert call(textql, "", {})["apiAccessKeys"] == []
    with pytest.raises(ControlError) as missing:
        emu_control.delete_textql(key["id"])
    assert missing.value.status == 404


def test_requests_are_counted_per_procedure(textql: httpx.Client, emu_control: EmulatorControl) -> None:
    key = create(textql)
    call(textql, "/update", {"id": key["id"], "description": "x"})
    call(textql, "", {})
    call(textql, "/delete", {"id": key["id"]})
    textql.post("/v1/api-keys/delete", json={"id": key["id"]})
    expected = {"textql.create": 1, "textql.update": 1, "textql.list": 1, "textql.delete": 2}
    assert emu_control.requests() == expected


def test_seed_example_request_is_accepted(textql: httpx.Client) -> None:
    """TextQL's documented example create request body, with a future expiry."""
    body = {
        "hosts": ["<string>"],
        "headers": {},
        "queryParams": {},
        "description": "<string>",
        "expiresAt": FUTURE,
        "isPrivate": True,
        "provider": "<string>",
        "authValue": "<string>",
        "authValueExtra": "<string>",
        "authType": "<string>",
    }
    key = create(textql, **body)
    assert key["authType"] == "<string>" and not SECRET_FIELDS & set(key)
