"""The Acme keys API client behind keyform's four-call provider interface (docs/providers.md).

Built on keyform's `HttpClient`, which gives a plug-in keyform's HTTP discipline: bounded retries
with Retry-After, an overall deadline per call, a body cap, ambiguous-create detection (a create
whose answer was lost raises ProviderError(ambiguous=True), never retried) and scrubbing of the
token from every message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from keyform import redact
from keyform.errors import ProviderError
from keyform.providers.http import HttpClient, RetryPolicy, ShapeError, json_body, shape_error, status_error, wire_time
from keyform.remote import CreateRequest, CreateResult, RemoteKey

PAGE_LIMIT = 100
MAX_PAGES = 10_000


def _detail(response: httpx.Response) -> str:
    body = json_body(response)
    message = body.get("error", {}).get("message") if isinstance(body, dict) and isinstance(
        body.get("error"), dict) else None
    return f"{response.status_code} {message if isinstance(message, str) else response.reason_phrase}"


def _key(item: Any, where: str) -> RemoteKey:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise ShapeError(f"{where} has no string 'id'")
    name, scopes = item.get("name"), item.get("scopes", [])
    if not isinstance(name, str) or not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise ShapeError(f"{where} ({item['id']}) has no string 'name' or list 'scopes'")
    status = item.get("status", "active")
    return RemoteKey(id=item["id"], attrs={"name": name, "scopes": list(scopes)},
                     created_at=wire_time(item.get("created_at"), f"{where}.created_at"),
                     expires_at=wire_time(item.get("expires_at"), f"{where}.expires_at"),
                     revoked=status == "revoked", expired=status == "expired")


class AcmeProvider:
    def __init__(self, name: str, base_url: str, token: str, project: str, *, timeout: float = 30.0,
                 transport: Any = None, max_retries: int = 5, deadline: float = 60.0,
                 max_body: int = 32 * 1024 * 1024) -> None:
        self.name = name
        self._prefix = f"/v1/projects/{quote(project, safe='')}/keys"
        self._http = HttpClient(name, base_url, {"Authorization": f"Bearer {token}", "Accept": "application/json"},
                                timeout=timeout, transport=transport, retry=RetryPolicy(max_retries=max_retries),
                                secrets=(token,), deadline=deadline, max_body=max_body)

    def __repr__(self) -> str:
        return f"AcmeProvider({self.name!r}, {self._http.base_url!r})"

    def list(self) -> list[RemoteKey] | None:
        keys: list[RemoteKey] = []
        cursor: str | None = None
        for _page in range(MAX_PAGES):
            query = {"limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})}
            response = self._http.call("GET", f"{self._prefix}?{urlencode(query)}", "list")
            if response.status_code != 200:
                raise status_error(self._http, "list", response, _detail(response))
            body = json_body(response)
            try:
                if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                    raise ShapeError("the page has no 'items' list")
                keys.extend(_key(item, f"items[{i}]") for i, item in enumerate(body["items"]))
            except ShapeError as exc:
                raise shape_error(self._http, "list", response, exc) from None
            cursor = body.get("next_cursor")
            if not cursor:
                return keys
            if not isinstance(cursor, str):
                raise shape_error(self._http, "list", response, ShapeError("next_cursor is not a string"))
        raise ProviderError(f"{self.name}: list: more than {MAX_PAGES} pages")

    def create(self, request: CreateRequest) -> CreateResult:
        name = request.attrs.get("name") or request.address
        what = f'create "{name}"'
        body: dict[str, Any] = {"name": name, "scopes": list(request.attrs.get("scopes") or [])}
        if request.expires_at is not None:
            body["expires_at"] = request.expires_at
        response = self._http.call("POST", self._prefix, what, body=body, idempotent=False)
        if response.status_code not in (200, 201):
            lost = response.status_code >= 500 and response.status_code != 503
            detail = _detail(response) + ("; the key may exist remotely" if lost else "")
            raise status_error(self._http, what, response, detail, ambiguous=lost)
        payload = json_body(response)
        try:
            key = _key(payload, "the created key")
        except ShapeError as exc:
            raise shape_error(self._http, what, response, exc, ambiguous=True) from None
        secret = payload.get("secret")
        redact.remember(secret if isinstance(secret, str) else None)
        return CreateResult(key=key, secret=secret if isinstance(secret, str) and secret else None)

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        what = f'update "{remote_id}"'
        response = self._http.call("PATCH", f"{self._prefix}/{quote(remote_id, safe='')}", what,
                                   body={"scopes": list(attrs.get("scopes") or [])})
        if response.status_code != 200:
            raise status_error(self._http, what, response, _detail(response))
        try:
            return _key(json_body(response), "the updated key")
        except ShapeError as exc:
            raise shape_error(self._http, what, response, exc) from None

    def delete(self, remote_id: str) -> None:
        what = f'delete "{remote_id}"'
        response = self._http.call("DELETE", f"{self._prefix}/{quote(remote_id, safe='')}", what)
        if response.status_code == 404 or 200 <= response.status_code < 300:
            return
        raise status_error(self._http, what, response, _detail(response))

    def close(self) -> None:
        self._http.close()
