"""Small stdlib emulators of three vendors' key APIs, built from the request/response examples of
their public API references (the URLs are in examples/providers/*.yaml), for the declarative rest
provider's tests. Real HTTP on 127.0.0.1, an ephemeral port each. Not the vendors' behaviour in
every corner: only what the documented examples show (shapes, status codes, pagination, errors).

`ServiceFaults` makes one misbehave for the conformance kit (tests/test_conformance_services.py):
every request answered with one status (in the vendor's error shape), creates that commit and then
drop the connection, and a smaller server-side page cap.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

Reply = tuple[int, Any]


@dataclass
class Service(ABC):
    """One API's keys and its request counter; `handle` answers one request. Each API implements
    `failure`, `handle` and `seed`."""

    paginated: ClassVar[bool] = True  # does the API's list come in pages?

    token: str
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)
    # faults (ServiceFaults): every request answers `fault`; a create commits, then the connection
    # closes unanswered; list pages hold at most `page_cap` keys (0: the API's own limits)
    fault: int | None = None
    drop_creates: bool = False
    page_cap: int = 0

    def count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def capped(self, size: int) -> int:
        return min(size, self.page_cap) if self.page_cap > 0 else size

    def is_create(self, method: str, path: str) -> bool:
        """Every one of these APIs creates a key with a POST to its collection."""
        return method == "POST"

    @abstractmethod
    def failure(self, status: int) -> Reply:
        """The API's error answer for `status` (429, 500, 503), in its documented error shape."""

    @abstractmethod
    def handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: Any) -> Reply:
        """Answer one API request (status, JSON body)."""

    @abstractmethod
    def seed(self, count: int) -> None:
        """Store `count` keys directly, as if created earlier."""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class OpenAIAdminKeys(Service):
    """/v1/organization/admin_api_keys: list (after/limit, has_more, last_id), create (value once),
    delete. Errors: {"error": {"message", "type", "code"}}."""

    PREFIX = "/v1/organization/admin_api_keys"

    def _error(self, status: int, message: str, code: str | None = None) -> Reply:
        return status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}

    def failure(self, status: int) -> Reply:
        # https://platform.openai.com/docs/guides/error-codes: 429 rate limit, 500 server error, 503 overloaded
        message = {429: "Rate limit reached for requests", 503: "The engine is currently overloaded, please try "
                   "again later."}.get(status, "The server had an error while processing your request. Sorry "
                                               "about that!")
        return status, {"error": {"message": message, "type": "requests" if status == 429 else "server_error",
                                  "param": None, "code": "rate_limit_exceeded" if status == 429 else None}}

    def _public(self, k: dict[str, Any]) -> dict[str, Any]:
        return {key: v for key, v in k.items() if key != "value"}

    def _new(self, name: str, expires_in: int | None) -> dict[str, Any]:
        now = int(_now().timestamp())
        key_id = f"key_{next(self.seq):06d}"
        value = f"sk-admin-{secrets.token_hex(16)}"
        k = {"object": "organization.admin_api_key", "id": key_id, "name": name, "redacted_value": value[:9] + "...",
             "created_at": now, "expires_at": now + expires_in if expires_in else None, "last_used_at": None,
             "owner": {"type": "user", "object": "organization.user", "id": "user_123", "name": "Owner",
                       "created_at": now, "role": "owner"}, "value": value}
        self.keys[key_id] = k
        return k

    def seed(self, count: int) -> None:
        for i in range(count):
            self._new(f"seeded-{i}", None)

    def handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: Any) -> Reply:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "Incorrect API key provided: sk-ad***. You can find your API key at "
                               "https://platform.openai.com/account/api-keys.", "invalid_api_key")
        if path == self.PREFIX and method == "GET":
            self.count("list")
            ids = sorted(self.keys)
            after = query.get("after")
            start = ids.index(after) + 1 if after in self.keys else 0
            limit = self.capped(min(int(query.get("limit", "20")), 100))
            page = ids[start:start + limit] if limit > 0 else []
            return 200, {"object": "list", "data": [self._public(self.keys[i]) for i in page],
                         "first_id": page[0] if page else None, "last_id": page[-1] if page else None,
                         "has_more": start + len(page) < len(ids)}
        if path == self.PREFIX and method == "POST":
            self.count("create")
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                return self._error(400, "name is required")
            return 200, self._new(body["name"], body.get("expires_in_seconds"))
        if path.startswith(self.PREFIX + "/") and method == "DELETE":
            self.count("delete")
            key_id = path.rsplit("/", 1)[1]
            if self.keys.pop(key_id, None) is None:
                return self._error(404, f"No such API key: {key_id}")
            return 200, {"id": key_id, "object": "organization.admin_api_key.deleted", "deleted": True}
        return self._error(404, "Invalid URL")


class SendGridKeys(Service):
    """/v3/api_keys: list (result: id and name), create (201, api_key once), PUT name+scopes, DELETE
    (204). Errors: {"errors": [{"field", "message"}]}. The list has a `limit` and no pages (an
    account holds at most 100 keys)."""

    paginated: ClassVar[bool] = False

    def _error(self, status: int, message: str) -> Reply:
        return status, {"errors": [{"field": None, "message": message}]}

    def failure(self, status: int) -> Reply:
        return self._error(status, {429: "too many requests", 503: "service unavailable"}.get(
            status, "internal server error"))

    def _new(self, name: str, scopes: list[str]) -> dict[str, Any]:
        key_id = f"{secrets.token_hex(8)}{next(self.seq):04d}"
        k = {"api_key_id": key_id, "name": name, "scopes": scopes,
             "api_key": f"SG.{key_id}.{secrets.token_urlsafe(32)}"}
        self.keys[key_id] = k
        return k

    def seed(self, count: int) -> None:
        for i in range(count):
            self._new(f"seeded-{i}", ["mail.send"])

    def handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: Any) -> Reply:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "authorization required")
        if path == "/v3/api_keys" and method == "GET":
            self.count("list")
            limit = int(query.get("limit", "500"))
            return 200, {"result": [{"api_key_id": k["api_key_id"], "name": k["name"]}
                                    for k in list(self.keys.values())[:limit]]}
        if path == "/v3/api_keys" and method == "POST":
            self.count("create")
            if not isinstance(body, dict) or not body.get("name"):
                return self._error(400, "missing required argument name")
            if len(self.keys) >= 100:
                return self._error(403, "Cannot create more than 100 API keys")
            return 201, self._new(body["name"], list(body.get("scopes") or ["mail.send"]))
        if path.startswith("/v3/api_keys/"):
            key_id = path.rsplit("/", 1)[1]
            found = self.keys.get(key_id)
            if method == "DELETE":
                self.count("delete")
                if self.keys.pop(key_id, None) is None:
                    return self._error(404, "unable to find API key")
                return 204, None
            if method == "PUT":
                self.count("update")
                k = found
                if k is None:
                    return self._error(404, "unable to find API key")
                k["name"] = body["name"]
                if body.get("scopes") is not None:
                    k["scopes"] = list(body["scopes"])
                return 200, {"api_key_id": key_id, "name": k["name"], "scopes": k["scopes"]}
        return self._error(404, "not found")


class DatadogApiKeys(Service):
    """/api/v2/api_keys (JSON:API): list (page[number] from 0, page[size] <= 100, meta.page.
    total_filtered_count), create (201, attributes.key), PATCH name, DELETE (204). Needs DD-API-KEY
    and DD-APPLICATION-KEY. Errors: {"errors": ["..."]}."""

    app_key: str = ""

    def failure(self, status: int) -> Reply:
        return status, {"errors": [{429: "Too many requests", 503: "Service Unavailable"}.get(
            status, "Internal Server Error")]}

    def _resource(self, k: dict[str, Any], with_key: bool = False) -> dict[str, Any]:
        attrs = {"created_at": k["created_at"], "last4": k["key"][-4:], "modified_at": k["modified_at"],
                 "name": k["name"], "remote_config_read_enabled": False, "category": "default"}
        if with_key:
            attrs["key"] = k["key"]
        return {"type": "api_keys", "id": k["id"], "attributes": attrs,
                "relationships": {"created_by": {"data": {"type": "users", "id": "user-1"}}}}

    def _new(self, name: str) -> dict[str, Any]:
        now = _now().strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
        key_id = f"{next(self.seq):08d}-dd00-4000-8000-{secrets.token_hex(6)}"
        k = {"id": key_id, "name": name, "key": secrets.token_hex(16), "created_at": now, "modified_at": now}
        self.keys[key_id] = k
        return k

    def seed(self, count: int) -> None:
        for i in range(count):
            self._new(f"seeded-{i}")

    def handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: Any) -> Reply:
        if headers.get("DD-API-KEY") != self.token or headers.get("DD-APPLICATION-KEY") != self.app_key:
            return 403, {"errors": ["Forbidden"]}
        if path == "/api/v2/api_keys" and method == "GET":
            self.count("list")
            size = self.capped(min(int(query.get("page[size]", "10")), 100))
            number = int(query.get("page[number]", "0"))
            ids = sorted(self.keys)
            page = ids[number * size:(number + 1) * size]
            return 200, {"data": [self._resource(self.keys[i]) for i in page],
                         "meta": {"page": {"total_filtered_count": len(ids)}}}
        if path == "/api/v2/api_keys" and method == "POST":
            self.count("create")
            try:
                name = body["data"]["attributes"]["name"]
                assert body["data"]["type"] == "api_keys" and isinstance(name, str)
            except (KeyError, TypeError, AssertionError):
                return 400, {"errors": ["Bad Request"]}
            return 201, {"data": self._resource(self._new(name), with_key=True)}
        if path.startswith("/api/v2/api_keys/"):
            key_id = path.rsplit("/", 1)[1]
            k = self.keys.get(key_id)
            if method == "DELETE":
                self.count("delete")
                if self.keys.pop(key_id, None) is None:
                    return 404, {"errors": ["API key not found"]}
                return 204, None
            if method == "PATCH":
                self.count("update")
                if k is None:
                    return 404, {"errors": ["API key not found"]}
                if body.get("data", {}).get("id") != key_id:
                    return 400, {"errors": ["id in body does not match the path"]}
                k["name"] = body["data"]["attributes"]["name"]
                k["modified_at"] = _now().strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
                return 200, {"data": self._resource(k)}
        return 404, {"errors": ["Not found"]}


class ServiceFaults:
    """`keyform.testing.ServerFaults` for one of these emulators (the kit's fault injection).

    An injected status is answered in the API's own error body. An injected 429 also carries
    `Retry-After: 0` (SendGrid's and Datadog's references document only X-RateLimit-* headers,
    which keyform does not read): without it keyform's client backs off with jitter after each 429,
    on a retry budget of its own (not `max_retries`), until the call's deadline (20 s in the kit);
    with it the refusals are retried at once and the call reports the 429.
    """

    def __init__(self, service: Service) -> None:
        self.service = service

    def inject(self, status: int) -> None:
        if status not in self.injectable():
            raise ValueError(f"these emulators inject only {self.injectable()}, not {status}")
        with self.service.lock:
            self.service.fault = status

    def drop_after_commit(self) -> None:
        with self.service.lock:
            self.service.drop_creates = True

    def clear(self) -> None:
        with self.service.lock:
            self.service.fault, self.service.drop_creates = None, False

    def set_page_size(self, n: int) -> bool:
        if not self.service.paginated:
            return False
        with self.service.lock:
            self.service.page_cap = n
        return True

    def injectable(self) -> tuple[int, ...]:
        return (429, 500, 503)


def _handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            extra: dict[str, str] = {}
            with service.lock:
                if service.fault is not None:
                    status, payload = service.failure(service.fault)
                    drop = False
                    if status == 429:  # see ServiceFaults
                        extra["Retry-After"] = "0"
                else:
                    status, payload = service.handle(self.command, url.path, query, self.headers, body)
                    drop = service.drop_creates and service.is_create(self.command, url.path) and status < 300
            if drop:  # committed; the answer is lost
                self.close_connection = True
                return
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


@contextmanager
def serve(service: Service) -> Iterator[str]:
    """`service` on 127.0.0.1 (an ephemeral port); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(service))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
