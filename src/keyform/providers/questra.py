"""The Questra API keys wire format (SPEC §1.1, docs/api/questra-api-keys.openapi.yaml).

Create returns the secret once; revoke (our `delete`) keeps the key listed as `revoked: true`;
the list endpoint is assumed and read tolerantly (bare array or `{"data": [...]}`; 404/405 means
"no list endpoint" → None). There is no update endpoint.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from keyform import __version__, redact
from keyform.errors import ProviderError
from keyform.providers.http import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY,
    HttpClient,
    RetryPolicy,
    ShapeError,
    check_unique_names,
    id_problem,
    json_body,
    may_have_landed,
    shape_error,
    status_error,
    usable_id,
    utc_time,
    wire_time,
)
from keyform.providers.ratelimit import Limiter
from keyform.providers.salvage import salvage_id
from keyform.remote import CreateRequest, CreateResult, RemoteKey


def error_detail(response: httpx.Response) -> str:
    """`401 token rejected`: the status and the body's `message` (or `error`) when it has one."""
    body = json_body(response)
    text = ""
    if isinstance(body, dict):
        for field in ("message", "error", "detail"):
            value = body.get(field)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value.strip():
                text = value.strip()
                break
    return f"{response.status_code} {text or response.reason_phrase}".strip()


def own_error(response: httpx.Response) -> bool:
    """Whether the reply is the Questra API's own error: a JSON object with an `error` (a string
    such as `"not_found"`, or an object), as the API and the emulator answer an unknown key. A
    gateway's or a proxy's 404 page, an empty body or other JSON is not."""
    body = json_body(response)
    if not isinstance(body, dict):
        return False
    error = body.get("error")
    return (isinstance(error, str) and bool(error.strip())) or isinstance(error, dict)


def not_own_error(response: httpx.Response) -> str:
    """What came back instead of the API's own error, for a message: `an empty body`, `a text/html
    body of 162 bytes`, `a JSON reply without an "error"`."""
    if not response.content:
        return "an empty body"
    if json_body(response) is not None:
        return 'a JSON reply without an "error"'
    kind = response.headers.get("Content-Type", "").split(";")[0].strip()
    kind = kind if kind.isprintable() and 0 < len(kind) <= 60 and " " not in kind else "non-JSON"
    return f"a {kind} body of {len(response.content)} bytes"


def parse_key(item: Any, where: str) -> RemoteKey:
    """One ApiKey object → RemoteKey (attrs: `name`). Raises ShapeError naming what is wrong."""
    if not isinstance(item, dict):
        raise ShapeError(f"{where} is a {type(item).__name__}, not an object")
    key_id, name = item.get("id"), item.get("name")
    if not usable_id(key_id):
        raise ShapeError(f"{where} {id_problem(key_id)}")
    if not isinstance(name, str):
        raise ShapeError(f"{where} ({key_id}) has no string 'name'")
    revoked, expired = item.get("revoked", False), item.get("expired", False)
    for flag, value in (("revoked", revoked), ("expired", expired)):
        if not isinstance(value, bool):
            raise ShapeError(f"{where} ({key_id}): '{flag}' is not a boolean")
    return RemoteKey(
        id=key_id, attrs={"name": name},
        created_at=_time(item.get("created_at"), where, key_id, "created_at"),
        expires_at=_time(item.get("expires_at"), where, key_id, "expires_at"),
        revoked=revoked, expired=expired,
        last_used_at=_time(item.get("last_used_at"), where, key_id, "last_used_at"),
        usage_reported="last_used_at" in item)


def _time(value: Any, where: str, key_id: str, field: str) -> str | None:
    """`wire_time`; the `where (key_id) field` of its message is built only for a bad value."""
    expiry, unset = field == "expires_at", field in ("expires_at", "last_used_at")
    try:
        return wire_time(value, "", expiry=expiry, unset_before=unset)
    except ShapeError:  # raises again, naming the field
        return wire_time(value, f"{where} ({key_id}) {field}", expiry=expiry, unset_before=unset)


def _fast_key(item: dict[str, Any]) -> RemoteKey | None:
    """`parse_key`'s answer for the usual item: string `id` and `name`, `revoked` and `expired`
    booleans or absent, each timestamp absent, null or UTC (`utc_time`); None for any other item,
    which `parse_key` then reads (and names what is wrong). One pass with no call per field: a
    listing holds thousands of items."""
    key_id, name = item.get("id"), item.get("name")
    revoked, expired = item.get("revoked", False), item.get("expired", False)
    if not (usable_id(key_id) and type(name) is str and type(revoked) is bool
            and type(expired) is bool):
        return None
    created, expires, used = item.get("created_at"), item.get("expires_at"), item.get("last_used_at")
    if created is not None and (created := utc_time(created)) is None:
        return None
    if expires is not None and (expires := utc_time(expires)) is None:
        return None
    if used is not None and (used := utc_time(used)) is None:
        return None
    return RemoteKey(key_id, {"name": name}, created, expires, revoked, expired, used, "last_used_at" in item)


def parse_list(body: Any) -> list[RemoteKey]:
    """A list response: a bare array of ApiKey, or an object whose `data` is that array."""
    items = body.get("data") if isinstance(body, dict) else body
    if not isinstance(items, list):
        got = f"an object with keys {sorted(body)[:5]}" if isinstance(body, dict) else type(body).__name__
        raise ShapeError(f"expected an array or {{\"data\": [...]}}, got {got}")
    keys = []
    for i, item in enumerate(items):
        key = _fast_key(item) if type(item) is dict else None
        keys.append(parse_key(item, f"item {i}") if key is None else key)
    return keys


class QuestraProvider:
    """One Questra organisation reached with one token."""

    def __init__(self, name: str, base_url: str, token: str, org_id: str | None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, max_retries: int = 5,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 deadline: float = DEFAULT_DEADLINE, max_body: int = DEFAULT_MAX_BODY,
                 limiter: Limiter | None = None) -> None:
        self.name = name
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                   "User-Agent": f"keyform/{__version__}"}
        if org_id is not None:
            headers["X-Org-Id"] = org_id
        self._http = HttpClient(name, base_url, headers, timeout=timeout, transport=transport,
                                retry=RetryPolicy(max_retries=max_retries), sleep=sleep, rng=rng, secrets=(token,),
                                deadline=deadline, max_body=max_body, limiter=limiter)
        self.limiter = self._http.limiter

    def __repr__(self) -> str:
        return f"QuestraProvider({self.name!r}, {self._http.base_url!r})"

    def list(self) -> list[RemoteKey] | None:
        response = self._http.call("GET", "/api-keys", "list")
        if response.status_code in (404, 405):
            return None
        if response.status_code != 200:
            raise status_error(self._http, "list", response, error_detail(response))
        try:
            return parse_list(json_body(response))
        except ShapeError as exc:
            raise shape_error(self._http, "list", response, exc) from None

    def create(self, request: CreateRequest) -> CreateResult:
        name = request.attrs.get("name") or request.address
        what = f'create "{name}"'
        body: dict[str, Any] = {"name": name}
        if request.expires_at is not None:
            body["expires_at"] = request.expires_at
        response = self._http.call("POST", "/api-keys", what, body=body, idempotent=False)
        if response.status_code not in (200, 201):
            lost = may_have_landed(response)
            detail = error_detail(response) + ("; the key may exist remotely" if lost else "")
            raise status_error(self._http, what, response, detail, ambiguous=lost)
        payload = json_body(response)
        secret = payload.get("secret") if isinstance(payload, dict) else None
        # before anything else of the reply is read: a field that echoes it is then scrubbed from
        # the message that quotes that field
        redact.remember(secret if isinstance(secret, str) else None)
        try:
            check_unique_names(response)
            key = parse_key(payload, "the created key")
        except ShapeError as exc:
            err = shape_error(self._http, what, response, exc, ambiguous=True)
            err.remote_id = salvage_id(response.content, (secret if isinstance(secret, str) else None,))
            raise err from None
        return CreateResult(key=key, secret=secret if isinstance(secret, str) and secret else None)

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        raise ProviderError(f'{self.name}: update "{remote_id}": Questra API keys cannot be changed in place '
                            "(every change is a replace)")

    def delete(self, remote_id: str) -> None:
        """Revoke the key (it stays listed as revoked). An unknown key is already gone: no error, when
        the API itself says so: a 404 whose body is its JSON error (`own_error`). Any other 404 (a
        gateway's or a proxy's HTML page, an empty body) says nothing of the key, and keyform forgets
        a key whose revoke returns: it is an error naming what came back."""
        what = f'revoke "{remote_id}"'
        response = self._http.call("POST", f"/api-keys/{quote(remote_id, safe='')}/revoke", what)
        if 200 <= response.status_code < 300:
            return
        if response.status_code == 404:
            if own_error(response):
                return
            raise status_error(self._http, what, response, f"{error_detail(response)}; {not_own_error(response)}, "
                               "so not taken for a key already gone")
        raise status_error(self._http, what, response, error_detail(response))

    def clock_offset(self) -> float | None:
        return self._http.clock_offset()

    def close(self) -> None:
        self._http.close()
