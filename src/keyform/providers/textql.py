"""The TextQL ApiAccessKeyService wire format (SPEC §1.2, docs/api/textql-api-access-key-v1.openapi.yaml).

Connect protocol over HTTP/1.1 + JSON: every call is a POST with a JSON body; errors are non-2xx
with `{"code", "message"}`. Manifest naming ↔ wire naming is the table below. Responses follow
proto3 JSON (default values may be omitted), so an absent field reads as its default.

`RemoteKey.attrs["headers"]` holds every header the API reports, including those whose values are
secret inputs (`headers.<Name>`): the provider cannot tell them apart; refresh strips them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any

import httpx

from keyform import __version__
from keyform.errors import ProviderError, is_failure
from keyform.model import header_of
from keyform.providers.http import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY,
    HttpClient,
    RetryPolicy,
    ShapeError,
    id_problem,
    json_body,
    may_have_landed,
    shape_error,
    status_error,
    usable_id,
    utc_time,
    wire_time,
)
from keyform.providers.omitted import not_a_listing, not_empty, null_list
from keyform.providers.ratelimit import Limiter
from keyform.providers.salvage import salvage_id
from keyform.providers.textql_type import UPDATABLE  # UpdateApiAccessKeyRequest
from keyform.remote import CreateRequest, CreateResult, RemoteKey

# manifest attribute → wire field, with the proto3 default an absent field stands for
WIRE: dict[str, tuple[str, Any]] = {
    "description": ("description", ""),
    "hosts": ("hosts", []),
    "headers": ("headers", {}),
    "query_params": ("queryParams", {}),
    "api_provider": ("provider", ""),
    "auth_type": ("authType", ""),
}
SECRET_WIRE = {"auth_value": "authValue", "auth_value_extra": "authValueExtra"}


def error_detail(response: httpx.Response) -> tuple[str, str | None]:
    """(`invalid_argument: hosts must not be empty`, code) from a Connect error body."""
    body = json_body(response)
    code = body.get("code") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    code = code if isinstance(code, str) and code else None
    message = message.strip() if isinstance(message, str) and message.strip() else None
    if code:
        return f"{code}: {message}" if message else code, code
    return f"{response.status_code} {message or response.reason_phrase}".strip(), None


def _check(value: Any, default: Any, where: str, key_id: str, field: str) -> Any:
    """The field's value (a copy), or ShapeError naming `where (key_id) field` (built only then)."""
    if value is None:
        return type(default)()
    if isinstance(default, str) and isinstance(value, str):
        return value
    if isinstance(default, list) and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(default, dict) and isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return dict(value)
    raise ShapeError(f"{where} ({key_id}) {field} is not a {type(default).__name__} of strings")


def _time(value: Any, where: str, key_id: str, field: str) -> str | None:
    """`wire_time`; the `where (key_id) field` of its message is built only for a bad value."""
    expiry = field == "expiresAt"
    try:
        return wire_time(value, "", expiry=expiry, unset_before=expiry)
    except ShapeError:  # raises again, naming the field
        return wire_time(value, f"{where} ({key_id}) {field}", expiry=expiry, unset_before=expiry)


def _fast_attrs(item: dict[str, Any]) -> dict[str, Any] | None:
    """The attributes of an item whose every field is present with its usual type (what `_check`
    gives for it, copies of its lists and dicts), or None: then `_check` decides, field by field."""
    hosts, headers, params = item.get("hosts"), item.get("headers"), item.get("queryParams")
    description, provider, auth_type = item.get("description"), item.get("provider"), item.get("authType")
    if not (type(description) is str and type(provider) is str and type(auth_type) is str
            and type(hosts) is list and type(headers) is dict and type(params) is dict):
        return None
    for value in (*hosts, *headers, *headers.values(), *params, *params.values()):
        if type(value) is not str:
            return None
    return {"description": description, "hosts": list(hosts), "headers": dict(headers),
            "query_params": dict(params), "api_provider": provider, "auth_type": auth_type}


def parse_key(item: Any, where: str) -> RemoteKey:
    """One ApiAccessKey object → RemoteKey in manifest naming. Raises ShapeError naming what is wrong."""
    if not isinstance(item, dict):
        raise ShapeError(f"{where} is a {type(item).__name__}, not an object")
    key_id = item.get("id")
    if not usable_id(key_id):
        raise ShapeError(f"{where} {id_problem(key_id)}")
    attrs = _fast_attrs(item)
    if attrs is None:  # a missing or unusual field: the general check, which names what is wrong
        attrs = {attr: _check(item.get(field), default, where, key_id, field)
                 for attr, (field, default) in WIRE.items()}
    return RemoteKey(id=key_id, attrs=attrs, created_at=_time(item.get("createdAt"), where, key_id, "createdAt"),
                     expires_at=_time(item.get("expiresAt"), where, key_id, "expiresAt"))


# the fields `_fast_key` reads in one call: an item lacking one (proto3 leaves out a default value)
# is read by `parse_key`
_USUAL = itemgetter("id", "description", "hosts", "headers", "queryParams", "provider", "authType")


def _fast_key(item: dict[str, Any]) -> RemoteKey | None:
    """`parse_key`'s answer for the usual item: a string `id`, every attribute present with its usual
    type (what `_fast_attrs` takes), each timestamp absent, null or UTC (`utc_time`); None for any
    other item, which `parse_key` then reads (and names what is wrong). The item's fields are read
    in one call, its strings tested in plain loops (no tuple of them per item), and no call per
    timestamp: a listing holds thousands of items. The item's lists and dicts are taken, not
    copied (`parse_list`)."""
    try:
        key_id, description, hosts, headers, params, provider, auth_type = _USUAL(item)
    except KeyError:
        return None
    if not (type(description) is str and type(provider) is str and type(auth_type) is str
            and type(hosts) is list and type(headers) is dict and type(params) is dict and usable_id(key_id)):
        return None
    for host in hosts:
        if type(host) is not str:
            return None
    for name, value in headers.items():
        if type(name) is not str or type(value) is not str:
            return None
    for name, value in params.items():
        if type(name) is not str or type(value) is not str:
            return None
    created, expires = item.get("createdAt"), item.get("expiresAt")
    if created is not None and (created := utc_time(created)) is None:
        return None
    if expires is not None and (expires := utc_time(expires)) is None:
        return None
    return RemoteKey(key_id, {"description": description, "hosts": hosts, "headers": headers, "query_params": params,
                              "api_provider": provider, "auth_type": auth_type}, created, expires)


def _one_key(body: Any) -> RemoteKey:
    """The `apiAccessKey` of a create/update response."""
    if not isinstance(body, dict):
        raise ShapeError("expected an object with 'apiAccessKey'")
    return parse_key(body.get("apiAccessKey"), "apiAccessKey")


_LEFT_OUT: Any = object()


def parse_list(body: Any) -> list[RemoteKey]:
    """`{"apiAccessKeys": [...]}` (an empty list may be omitted, proto3 style, in a reply of nothing
    else a failed request's reply holds: `keyform.providers.omitted`). The keys hold the
    items' own `hosts`, `headers` and `queryParams`, not copies: `body` is a reply's decoded JSON,
    read once (copying 5,000 of each, then freeing the originals, was ~1 µs a key)."""
    if not isinstance(body, dict):
        raise ShapeError(f"expected an object with 'apiAccessKeys', got {type(body).__name__}")
    items = body.get("apiAccessKeys", _LEFT_OUT)
    if items is _LEFT_OUT or items is None:  # left out when empty, in a reply of nothing a failed request's holds
        odd = not_a_listing(body, ("apiAccessKeys",), frozenset())
        if odd:  # `{"message": "Internal error"}` with a 200 was read as no keys: every key looked deleted
            raise ShapeError(not_empty(("apiAccessKeys",), body, odd))
        if items is None:  # the vendor schema's apiAccessKeys is an array, never null: not proof of no keys
            raise ShapeError(null_list(("apiAccessKeys",), ("apiAccessKeys",)))
        items = []
    if not isinstance(items, list):
        raise ShapeError("'apiAccessKeys' is not an array")
    keys = []
    for i, item in enumerate(items):
        key = _fast_key(item) if type(item) is dict else None
        keys.append(parse_key(item, f"item {i}") if key is None else key)
    return keys


def create_body(request: CreateRequest) -> dict[str, Any]:
    """CreateApiAccessKeyRequest from a CreateRequest: attributes, expiry and the secret inputs."""
    attrs = request.attrs
    headers = {str(k): str(v) for k, v in (attrs.get("headers") or {}).items()}
    body: dict[str, Any] = {}
    for path, value in request.secret_inputs.items():
        if path in SECRET_WIRE:
            body[SECRET_WIRE[path]] = value
        elif header := header_of(path):
            headers[header] = value
        else:
            raise ValueError(f"unsupported TextQL secret input {path!r}")
    body.update(hosts=[str(h) for h in attrs.get("hosts") or []], headers=headers,
                queryParams={str(k): str(v) for k, v in (attrs.get("query_params") or {}).items()},
                description=str(attrs.get("description") or ""))
    if attrs.get("auth_type"):
        body["authType"] = str(attrs["auth_type"])
    if attrs.get("api_provider"):
        body["provider"] = str(attrs["api_provider"])
    if attrs.get("is_private") is not None:
        body["isPrivate"] = bool(attrs["is_private"])
    if request.expires_at is not None:
        body["expiresAt"] = request.expires_at
    return body


def update_body(remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> dict[str, Any]:
    """UpdateApiAccessKeyRequest: the updatable attributes present in `attrs` (None → the empty value;
    `auth_type` None → left unchanged) and `expiresAt` when set. The vendor schema allows no `null`,
    so None leaves the remote expiry as it is: removing an expiry cannot be done in place."""
    body: dict[str, Any] = {"id": remote_id}
    for attr in UPDATABLE:
        if attr not in attrs:
            continue
        field, default = WIRE[attr]
        value = attrs[attr]
        if attr == "auth_type":
            if value is not None:
                body[field] = str(value)
        elif isinstance(default, list):
            body[field] = [str(v) for v in value or []]
        elif isinstance(default, dict):
            body[field] = {str(k): str(v) for k, v in (value or {}).items()}
        else:
            body[field] = str(value or "")
    if expires_at is not None:
        body["expiresAt"] = expires_at
    return body


class TextQLProvider:
    """One TextQL organisation reached with one token."""

    def __init__(self, name: str, base_url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, max_retries: int = 5,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 deadline: float = DEFAULT_DEADLINE, max_body: int = DEFAULT_MAX_BODY,
                 limiter: Limiter | None = None) -> None:
        self.name = name
        headers = {"Authorization": f"Bearer {token}", "Connect-Protocol-Version": "1",
                   "Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": f"keyform/{__version__}"}
        self._http = HttpClient(name, base_url, headers, timeout=timeout, transport=transport,
                                retry=RetryPolicy(max_retries=max_retries), sleep=sleep, rng=rng, secrets=(token,),
                                deadline=deadline, max_body=max_body, limiter=limiter)
        self.limiter = self._http.limiter

    def __repr__(self) -> str:
        return f"TextQLProvider({self.name!r}, {self._http.base_url!r})"

    def _error(self, what: str, response: httpx.Response, secrets: tuple[str, ...] = (), *,
               create: bool = False) -> ProviderError:
        detail, code = error_detail(response)
        lost = create and may_have_landed(response)
        if lost:
            detail += "; the key may exist remotely"
        return status_error(self._http, what, response, detail, code=code, ambiguous=lost, secrets=secrets)

    def list(self) -> list[RemoteKey] | None:
        response = self._http.call("POST", "/v1/api-keys", "list", body={})
        if response.status_code != 200:
            raise self._error("list", response)
        try:
            return parse_list(json_body(response))
        except ShapeError as exc:
            raise shape_error(self._http, "list", response, exc) from None

    def create(self, request: CreateRequest) -> CreateResult:
        what = f'create "{request.address}"'
        secrets = tuple(request.secret_inputs.values())
        try:
            body = create_body(request)
        except ValueError as exc:
            raise ProviderError(f"{self.name}: {what}: {exc}") from None
        response = self._http.call("POST", "/v1/api-keys/create", what, body=body, idempotent=False,
                                   secrets=secrets)
        if response.status_code != 200:
            raise self._error(what, response, secrets, create=True)
        try:
            return CreateResult(key=_one_key(json_body(response)))
        except ShapeError as exc:
            err = shape_error(self._http, what, response, exc, ambiguous=True, secrets=secrets)
            err.remote_id = salvage_id(response.content, secrets)
            raise err from None

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        what = f'update "{remote_id}"'
        secrets = tuple(str(v) for v in (attrs.get("headers") or {}).values())  # may hold secret headers
        response = self._http.call("POST", "/v1/api-keys/update", what,
                                   body=update_body(remote_id, attrs, expires_at), secrets=secrets)
        if response.status_code != 200:
            raise self._error(what, response, secrets)
        try:
            return _one_key(json_body(response))
        except ShapeError as exc:
            raise shape_error(self._http, what, response, exc, secrets=secrets) from None

    def delete(self, remote_id: str) -> None:
        """Delete the key. One that is already gone is not an error when the API says so: its own
        Connect error `not_found`, unless the answer's status is a failure (`errors.is_failure`): a
        500, 401 or 503 whose body says `not_found` (a failing server or a gateway) leaves the key
        live, and keyform must not forget it. A 404 without a Connect code (a gateway's HTML page,
        an empty body) says nothing of the key either: an error."""
        what = f'delete "{remote_id}"'
        response = self._http.call("POST", "/v1/api-keys/delete", what, body={"id": remote_id})
        if response.status_code == 200:
            return
        _, code = error_detail(response)
        if code == "not_found" and not is_failure(response.status_code):
            return
        raise self._error(what, response)

    def clock_offset(self) -> float | None:
        return self._http.clock_offset()

    def close(self) -> None:
        self._http.close()
