"""The TextQL ApiAccessKeyService (SPEC §1.2, ``docs/api/textql-api-access-key-v1.openapi.yaml``).

What holds: Connect protocol — every call is ``POST`` with a JSON object body, needs
``Authorization: Bearer <token>`` (else ``unauthenticated``/401) and ``Connect-Protocol-Version: 1``
(else ``invalid_argument``/400); errors are ``{"code", "message"}`` with the Connect status mapping.
Requests are checked against the published request schemas (``additionalProperties: false``).
Responses carry exactly the ``ApiAccessKey`` fields: ``authValue``, ``authValueExtra`` and
``isPrivate`` are stored but never returned. One store (org ``org_emulator``) shared by all tokens.
The caller (the server) holds the emulator lock while any method here runs.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .clock import Clock, format_timestamp, future_timestamp, parse_timestamp
from .faults import Fault, Faults
from .wire import BadJson, Request, Response, Route, bearer_token, format_retry_after, json_response, parse_json_object

ORG_ID = "org_emulator"
MEMBER_ID = "member_emulator"
PREFIX = "/v1/api-keys"

HTTP_STATUS = {
    "invalid_argument": 400,
    "failed_precondition": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "already_exists": 409,
    "resource_exhausted": 429,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
}

# Field kinds of the request schemas: str, bool, str_list, str_map, timestamp. OpenAPI 3.1 ignores the
# spec's `nullable: true`, so a null expiresAt is refused; only the control API may clear it with null.
CREATE_FIELDS = {
    "hosts": "str_list", "headers": "str_map", "queryParams": "str_map", "description": "str",
    "expiresAt": "timestamp", "isPrivate": "bool", "provider": "str", "authValue": "str",
    "authValueExtra": "str", "authType": "str",
}  # fmt: skip
UPDATE_FIELDS = {
    "id": "str", "hosts": "str_list", "headers": "str_map", "queryParams": "str_map",
    "description": "str", "expiresAt": "timestamp", "authType": "str",
}  # fmt: skip
DELETE_FIELDS = {"id": "str"}
LIST_FIELDS: dict[str, str] = {}
# Fields the control API may patch out of band: the response fields plus the internal ones.
PATCH_FIELDS = {
    **CREATE_FIELDS, "expiresAt": "timestamp_or_null", "orgId": "str", "memberId": "str",
    "createdAt": "timestamp", "updatedAt": "timestamp", "memberOauthAuthenticated": "bool",
    "memberOauthDisplayName": "str",
}  # fmt: skip
PUBLIC_FIELDS = (
    "id", "orgId", "memberId", "hosts", "headers", "queryParams", "description", "createdAt",
    "updatedAt", "expiresAt", "provider", "authType", "memberOauthAuthenticated", "memberOauthDisplayName",
)  # fmt: skip


class ConnectError(Exception):
    """A Connect error: ``code`` is one of :data:`HTTP_STATUS`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error(code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """A Connect error response with the status its code maps to."""
    return json_response(HTTP_STATUS[code], {"code": code, "message": message}, headers)


def _kind_ok(kind: str, value: Any) -> bool:
    """Whether ``value`` has the JSON type of field kind ``kind``."""
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "str_map":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "timestamp_or_null" and value is None:
        return True
    if kind in ("timestamp", "timestamp_or_null"):
        return isinstance(value, str) and parse_timestamp(value) is not None
    return isinstance(value, str)


def check_fields(body: Mapping[str, Any], allowed: Mapping[str, str], message_name: str) -> None:
    """Raise ``invalid_argument`` for an unknown field or a value of the wrong type."""
    for name, value in body.items():
        kind = allowed.get(name)
        if kind is None:
            raise ConnectError("invalid_argument", f"unknown field {name!r} in {message_name}")
        if not _kind_ok(kind, value):
            raise ConnectError("invalid_argument", f"invalid value for {message_name}.{name}")


def _set_expiry(record: dict[str, Any], value: Any, now: datetime, *, future: bool) -> None:
    """Set (string) or clear (null) ``expiresAt``; with ``future`` a past time is refused."""
    if value is None:
        record.pop("expiresAt", None)
        return
    moment = future_timestamp(value, now) if future else parse_timestamp(value)
    if moment is None:
        raise ConnectError("invalid_argument", "expiresAt must be an RFC 3339 timestamp in the future")
    record["expiresAt"] = format_timestamp(moment)


def _apply(record: dict[str, Any], changes: Mapping[str, Any], now: datetime, *, future: bool = True) -> None:
    """Copy ``changes`` into ``record`` (``id`` excepted); an empty ``authType`` means ``token``."""
    for name, value in changes.items():
        if name == "expiresAt":
            _set_expiry(record, value, now, future=future)
        elif name == "authType":
            record[name] = value or "token"
        elif name != "id":
            record[name] = value


class TextqlStore:
    """Access keys by id, in creation order; each record holds public and internal fields."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.keys: dict[str, dict[str, Any]] = {}

    def create(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new key from validated create fields; return its record."""
        moment = self.clock.now()
        now = format_timestamp(moment)
        record: dict[str, Any] = {
            "id": str(uuid.uuid4()), "orgId": ORG_ID, "memberId": MEMBER_ID, "hosts": [], "headers": {},
            "queryParams": {}, "description": "", "createdAt": now, "updatedAt": now, "provider": "",
            "authType": "token", "memberOauthAuthenticated": False,
            "authValue": "", "authValueExtra": "", "isPrivate": False,
        }  # fmt: skip
        _apply(record, fields, moment)
        self.keys[record["id"]] = record
        return record

    def update(self, key_id: str, changes: Mapping[str, Any], *, future: bool = True) -> dict[str, Any]:
        """Change the given fields of a key and bump ``updatedAt``; ``not_found`` if unknown."""
        record = self.keys.get(key_id)
        if record is None:
            raise ConnectError("not_found", f"api access key {key_id!r} not found")
        staged = dict(record)
        now = self.clock.now()
        _apply(staged, changes, now, future=future)
        if "updatedAt" not in changes:
            staged["updatedAt"] = format_timestamp(now)
        record.clear()
        record.update(staged)
        return record

    def delete(self, key_id: str) -> None:
        """Forget a key; ``not_found`` if unknown."""
        if self.keys.pop(key_id, None) is None:
            raise ConnectError("not_found", f"api access key {key_id!r} not found")

    def clear(self) -> None:
        """Forget every key."""
        self.keys.clear()

    def dump(self) -> list[dict[str, Any]]:
        """Every record with its internal fields (for ``GET /_emulator/state``)."""
        return [dict(record) for record in self.keys.values()]


def public(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ApiAccessKey`` response object: only schema fields, ``expiresAt`` omitted when unset."""
    return {name: record[name] for name in PUBLIC_FIELDS if name in record}


def _required_id(body: Mapping[str, Any]) -> str:
    key_id = body.get("id")
    if not isinstance(key_id, str) or not key_id:
        raise ConnectError("invalid_argument", "id is required")
    return key_id


class TextqlApi:
    """Routes and handlers of the TextQL Connect API over a :class:`TextqlStore`."""

    def __init__(self, store: TextqlStore, faults: Faults, tokens: frozenset[str] | None,
                 read_only_tokens: frozenset[str] = frozenset()) -> None:
        self.store = store
        self.faults = faults
        self.tokens = tokens
        self.read_only_tokens = read_only_tokens
        self.procedures: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
            PREFIX: ("textql.list", self._list),
            PREFIX + "/create": ("textql.create", self._create),
            PREFIX + "/update": ("textql.update", self._update),
            PREFIX + "/delete": ("textql.delete", self._delete),
        }

    def match(self, request: Request) -> Route | None:
        """The procedure addressed by ``request``; unknown ``/v1/`` paths get ``unimplemented``/404."""
        path = request.path.rstrip("/")
        if not path.startswith("/v1/"):
            return None
        if path not in self.procedures:
            refusal = json_response(404, {"code": "unimplemented", "message": f"unknown procedure {path}"})
            return Route("textql.unknown", lambda _request: refusal)
        name, procedure = self.procedures[path]
        if request.method != "POST":
            payload = {"code": "unimplemented", "message": f"{request.method} not allowed; Connect calls use POST"}
            refusal = json_response(405, payload, {"Allow": "POST"})
            return Route(name, lambda _request: refusal)
        write = name != "textql.list"
        return Route(name, lambda request: self._call(request, procedure, write), creates=name == "textql.create")

    def fault_response(self, fault: Fault) -> Response:
        """The error an injected fault produces: ``unavailable``, or ``resource_exhausted`` + Retry-After."""
        if fault == "unavailable":
            return error("unavailable", "the service is temporarily unavailable (injected)")
        retry = format_retry_after(self.faults.settings.retry_after)
        return error("resource_exhausted", "too many requests (injected)", {"Retry-After": retry})

    def rate_bucket(self, request: Request) -> str:
        """The rate-limit bucket of ``request``: the one organisation (``org_emulator``), or its token."""
        if self.faults.settings.rate_limit_scope == "token":
            return bearer_token(request) or ""
        return ORG_ID

    def throttle_response(self, wait: float, rate: float) -> Response:
        """``resource_exhausted`` (HTTP 429) with ``Retry-After``: the rate limit is spent for now."""
        return error("resource_exhausted", f"rate limit exceeded ({rate:g} requests/s)",
                     {"Retry-After": format_retry_after(math.ceil(wait * 1000) / 1000)})

    def _call(self, request: Request, procedure: Callable[[dict[str, Any]], Any], write: bool = True) -> Response:
        """Check headers and body, run ``procedure``, and turn a :class:`ConnectError` into a response."""
        try:
            self._check_headers(request, write)
            try:
                body = parse_json_object(request.body, empty_is_object=True)
            except BadJson as exc:
                raise ConnectError("invalid_argument", str(exc)) from None
            return json_response(200, procedure(body))
        except ConnectError as exc:
            return error(exc.code, exc.message)

    def _check_headers(self, request: Request, write: bool = True) -> None:
        token = bearer_token(request)
        if token is None:
            raise ConnectError("unauthenticated", "missing or empty bearer token (Authorization: Bearer)")
        if token in self.read_only_tokens:
            if write:
                raise ConnectError("permission_denied", "this token may only list API access keys")
        elif self.tokens is not None and token not in self.tokens:
            raise ConnectError("unauthenticated", "the bearer token was rejected")
        if (request.header("Connect-Protocol-Version") or "").strip() != "1":
            raise ConnectError("invalid_argument", "missing required header: set Connect-Protocol-Version to 1")

    def _list(self, body: dict[str, Any]) -> dict[str, Any]:
        check_fields(body, LIST_FIELDS, "ListApiAccessKeysRequest")
        return {"apiAccessKeys": [public(record) for record in self.store.keys.values()]}

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        check_fields(body, CREATE_FIELDS, "CreateApiAccessKeyRequest")
        return {"apiAccessKey": public(self.store.create(body))}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        check_fields(body, UPDATE_FIELDS, "UpdateApiAccessKeyRequest")
        return {"apiAccessKey": public(self.store.update(_required_id(body), body))}

    def _delete(self, body: dict[str, Any]) -> dict[str, Any]:
        check_fields(body, DELETE_FIELDS, "DeleteApiAccessKeyRequest")
        self.store.delete(_required_id(body))
        return {}
