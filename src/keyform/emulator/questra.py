"""The Questra API keys API (SPEC §1.1, ``docs/api/questra-api-keys.openapi.yaml``).

What holds: every request needs ``Authorization: Bearer <token>`` (401) and ``X-Org-Id`` (400);
keys live per organisation; ``secret`` appears only in the create response; revoked and expired
keys stay listed; errors are JSON objects ``{"error": ..., "message": ...}``. The caller (the
server) holds the emulator lock while any method here runs.

Usage: a request whose bearer token is a key's own secret (a consumer calling with its key) is
authenticated as that key, for the key's organisation only, and sets the key's ``last_used_at``;
a revoked or expired key's secret is refused with 401, as "Revoked keys cannot authenticate
requests" (seed document) says.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from .clock import Clock, format_timestamp, future_timestamp
from .faults import Fault, Faults
from .wire import (
    BadJson,
    Request,
    Response,
    Route,
    bearer_token,
    empty_response,
    format_retry_after,
    json_response,
    parse_json_object,
)

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIX = "/api-keys"


def random_token(length: int) -> str:
    """``length`` random base-62 characters from the OS's secure source."""
    return "".join(_ALPHABET[b % 62] for b in secrets.token_bytes(length))


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """A Questra error response: JSON ``{"error": code, "message": message}``."""
    return json_response(status, {"error": code, "message": message}, headers)


class QuestraKey:
    """One stored key. ``secret`` is kept for the control API's state dump only."""

    __slots__ = ("created_at", "expires_at", "id", "last_used_at", "name", "org", "revoked", "secret")

    def __init__(self, name: str, expires_at: datetime | None, now: datetime, org: str = "") -> None:
        self.id = "ak_" + random_token(16)
        self.name = name
        self.created_at = format_timestamp(now)
        self.expires_at = expires_at
        self.revoked = False
        self.secret = "sk_live_" + random_token(40)
        self.org = org
        self.last_used_at: datetime | None = None

    def public(self, now: datetime) -> dict[str, Any]:
        """The ``ApiKey`` schema: no secret; ``expired`` computed against ``now``."""
        expires = self.expires_at
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "expires_at": None if expires is None else format_timestamp(expires),
            "revoked": self.revoked,
            "expired": expires is not None and expires <= now,
            "last_used_at": None if self.last_used_at is None else format_timestamp(self.last_used_at),
        }

    def with_secret(self, now: datetime) -> dict[str, Any]:
        """The ``ApiKeyWithSecret`` schema (create response and state dump)."""
        return {**self.public(now), "secret": self.secret}


class QuestraStore:
    """Keys per organisation, in creation order."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.orgs: dict[str, dict[str, QuestraKey]] = {}
        self.by_secret: dict[str, QuestraKey] = {}

    def create(self, org: str, name: str, expires_at: datetime | None) -> QuestraKey:
        """Mint and store a new key."""
        key = QuestraKey(name, expires_at, self.clock.now(), org)
        self.orgs.setdefault(org, {})[key.id] = key
        self.by_secret[key.secret] = key
        return key

    def get(self, org: str, key_id: str) -> QuestraKey | None:
        """The key ``key_id`` of ``org``, or ``None``."""
        return self.orgs.get(org, {}).get(key_id)

    def delete(self, org: str, key_id: str) -> bool:
        """Forget a key; False when it does not exist."""
        key = self.orgs.get(org, {}).pop(key_id, None)
        if key is not None:
            self.by_secret.pop(key.secret, None)
        return key is not None

    def expire(self, org: str, key_id: str) -> bool:
        """Set a key's ``expires_at`` to one second ago; False when it does not exist."""
        key = self.get(org, key_id)
        if key is not None:
            key.expires_at = self.clock.now() - timedelta(seconds=1)
        return key is not None

    def clear(self) -> None:
        """Forget every key of every organisation."""
        self.orgs.clear()
        self.by_secret.clear()

    def dump(self) -> dict[str, Any]:
        """All keys, secrets included, per organisation (for ``GET /_emulator/state``)."""
        now = self.clock.now()
        return {org: [k.with_secret(now) for k in keys.values()] for org, keys in self.orgs.items()}


class QuestraApi:
    """Routes and handlers of the Questra HTTP API over a :class:`QuestraStore`."""

    def __init__(self, store: QuestraStore, faults: Faults, tokens: frozenset[str] | None,
                 read_only_tokens: frozenset[str] = frozenset()) -> None:
        self.store = store
        self.faults = faults
        self.tokens = tokens
        self.read_only_tokens = read_only_tokens

    def match(self, request: Request) -> Route | None:
        """The operation addressed by ``request``, or ``None`` when the path is not Questra's."""
        path = request.path.rstrip("/") or "/"
        if path == PREFIX:
            handlers = {"POST": ("questra.create", self._create), "GET": ("questra.list", self._list)}
            return self._pick(request.method, handlers, creates=request.method == "POST")
        if not path.startswith(PREFIX + "/"):
            return None
        parts = path[len(PREFIX) + 1 :].split("/")
        key_id = unquote(parts[0])
        if len(parts) == 2 and parts[1] == "revoke":
            return self._pick(request.method, {"POST": ("questra.revoke", self._bind(self._revoke, key_id))})
        if len(parts) == 1:
            return self._pick(request.method, {"DELETE": ("questra.delete", self._bind(self._delete, key_id))})
        return None

    def fault_response(self, fault: Fault) -> Response:
        """The error an injected fault produces: 503, or 429 with ``Retry-After``."""
        if fault == "unavailable":
            return error(503, "service_unavailable", "the service is temporarily unavailable (injected)")
        retry = format_retry_after(self.faults.settings.retry_after)
        return error(429, "rate_limited", "too many requests (injected)", {"Retry-After": retry})

    def rate_bucket(self, request: Request) -> str:
        """The rate-limit bucket of ``request``: its organisation (``X-Org-Id``), or its token."""
        if self.faults.settings.rate_limit_scope == "token":
            return bearer_token(request) or ""
        return (request.header("X-Org-Id") or "").strip()

    def throttle_response(self, wait: float, rate: float) -> Response:
        """429 with ``Retry-After`` (the seconds until the bucket holds a request again)."""
        retry = format_retry_after(math.ceil(wait * 1000) / 1000)
        return error(429, "rate_limited", f"rate limit exceeded ({rate:g} requests/s)", {"Retry-After": retry})

    @staticmethod
    def _bind(handler: Callable[[Request, str], Response], key_id: str) -> Callable[[Request], Response]:
        return lambda request: handler(request, key_id)

    @staticmethod
    def _pick(
        method: str, handlers: Mapping[str, tuple[str, Callable[[Request], Response]]], creates: bool = False
    ) -> Route:
        """The route for ``method``, or a 405 route listing the allowed methods."""
        if method in handlers:
            name, handle = handlers[method]
            return Route(name, handle, creates=creates)
        allow = ", ".join(sorted(handlers))
        refusal = error(405, "method_not_allowed", f"method {method} not allowed; use {allow}", {"Allow": allow})
        return Route("questra.method_not_allowed", lambda _request: refusal)

    def _authorize(self, request: Request, write: bool = True) -> str | Response:
        """The request's organisation, or the 401/403/400 error that refuses it. A key's own secret
        authenticates as that key (and marks it used) in its own organisation only."""
        token = bearer_token(request)
        if token is None:
            return error(401, "unauthorized", "missing or empty bearer token (Authorization: Bearer <token>)")
        key = self.store.by_secret.get(token)
        if token in self.read_only_tokens:
            if write:
                return error(403, "forbidden", "this token may only list keys")
        elif key is None and self.tokens is not None and token not in self.tokens:
            return error(401, "token rejected", "the bearer token was rejected")
        org = (request.header("X-Org-Id") or "").strip()
        if not org:
            return error(400, "missing_org_id", "the X-Org-Id header is required")
        if key is not None:
            now = self.store.clock.now()
            why = ("not valid for this organisation" if key.org != org else "revoked" if key.revoked
                   else "expired" if key.public(now)["expired"] else None)
            if why is not None:
                return error(401, "token rejected", f"the API key is {why}")
            key.last_used_at = now
        return org

    def _create(self, request: Request) -> Response:
        org = self._authorize(request)
        if isinstance(org, Response):
            return org
        try:
            body = parse_json_object(request.body)
        except BadJson as exc:
            return error(400, "invalid_request", str(exc))
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return error(400, "invalid_request", "name is required and must be a non-empty string")
        expires_at = None
        if "expires_at" in body:
            expires_at = future_timestamp(body["expires_at"], self.store.clock.now())
            if expires_at is None:
                message = "expires_at must be an RFC 3339 date-time with a zone, in the future"
                return error(400, "invalid_request", message)
        key = self.store.create(org, name, expires_at)
        return json_response(201, key.with_secret(self.store.clock.now()))

    def _list(self, request: Request) -> Response:
        org = self._authorize(request, write=False)
        if isinstance(org, Response):
            return org
        shape = self.faults.settings.questra_list_shape
        if shape == "none":
            return error(404, "not_found", "no such endpoint: GET /api-keys")
        now = self.store.clock.now()
        keys = [key.public(now) for key in self.store.orgs.get(org, {}).values()]
        return json_response(200, keys if shape == "array" else {"data": keys})

    def _revoke(self, request: Request, key_id: str) -> Response:
        org = self._authorize(request)
        if isinstance(org, Response):
            return org
        key = self.store.get(org, key_id)
        if key is None:
            return _not_found(key_id)
        key.revoked = True
        return json_response(200, {"success": True})

    def _delete(self, request: Request, key_id: str) -> Response:
        org = self._authorize(request)
        if isinstance(org, Response):
            return org
        if not self.store.delete(org, key_id):
            return _not_found(key_id)
        return empty_response(204)


def _not_found(key_id: str) -> Response:
    return error(404, "not_found", f"API key {key_id!r} not found")
