"""A hostile API on 127.0.0.1 for the security tests: Questra and TextQL endpoints that behave by
default until a test scripts a route to answer with anything: a crafted secret, an error body that
echoes the request back, a truncated body, a dropped connection. By default it either forwards to an
`upstream` (the emulator: a hostile proxy in front of a consistent API) or, without one, answers
itself (an empty listing, creates that succeed, revokes recorded)."""

from __future__ import annotations

import http.client
import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.loopback import LoopbackServer, QuietHandler, serving


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    declared_length: int | None = None  # a Content-Length other than the body's: a truncated body
    drop: bool = False  # close the connection without answering


Script = Callable[[Seen], "Reply | None"]  # None: the default behaviour


def echo_of(seen: Seen) -> str:
    """Everything the request carried, as a server that quotes its input might print it."""
    return " | ".join([*(f"{k}: {v}" for k, v in seen.headers.items()), seen.body.decode("utf-8", "replace")])


class HostileServer(LoopbackServer):
    def __init__(self, upstream: str | None = None) -> None:
        super().__init__(_Handler)
        self.upstream = upstream
        self.script: Script = lambda seen: None
        self.secret: Callable[[int], str] = lambda n: f"hostile-secret-{n:04d}-0123456789abcdef"
        self.revoked: list[str] = []
        self.created: list[str] = []
        self._ids = itertools.count(1)

    def default(self, seen: Seen) -> Reply:
        if self.upstream:
            return self._forward(seen)
        if seen.method == "GET" and seen.path == "/api-keys":
            return _json(200, [])
        if seen.method == "POST" and seen.path == "/api-keys":
            n = next(self._ids)
            name = json.loads(seen.body or b"{}").get("name", "")
            self.created.append(f"ak_{n}")
            return _json(201, {"id": f"ak_{n}", "name": name, "created_at": "2026-11-01T10:00:00Z",
                               "expires_at": None, "revoked": False, "secret": self.secret(n)})
        if seen.method == "POST" and seen.path.endswith("/revoke"):
            self.revoked.append(seen.path.split("/")[2])
            return _json(200, {})
        if seen.path == "/v1/api-keys":
            return _json(200, {"apiKeys": []})
        if seen.path == "/v1/api-keys/create":
            n = next(self._ids)
            self.created.append(f"tk_{n}")
            sent = json.loads(seen.body or b"{}")
            return _json(200, {"apiKey": {"id": f"tk_{n}", "description": sent.get("description", ""),
                                          "hosts": sent.get("hosts", []), "createdAt": "2026-11-01T10:00:00Z"}})
        if seen.path == "/v1/api-keys/delete":
            self.revoked.append(json.loads(seen.body or b"{}").get("id", ""))
            return _json(200, {})
        return _json(404, {"message": "not found"})


    def _forward(self, seen: Seen) -> Reply:
        assert self.upstream is not None
        parts = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            headers = {k: v for k, v in seen.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(seen.method, seen.path, body=seen.body or None, headers=headers)
            response = conn.getresponse()
            body = response.read()
            kept = {k: v for k, v in response.getheaders()
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server")}
            return Reply(response.status, body, kept)
        finally:
            conn.close()


def _json(status: int, doc: Any) -> Reply:
    return Reply(status, json.dumps(doc).encode())


class _Handler(QuietHandler):
    server: HostileServer

    def _serve(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = Seen(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
        self.server.seen.append(seen)
        reply = self.server.script(seen) or self.server.default(seen)
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        length = reply.declared_length if reply.declared_length is not None else len(reply.body)
        self.send_header("Content-Length", str(length))
        if reply.declared_length is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = _serve
    do_POST = _serve


@contextmanager
def hostile(upstream: str | None = None) -> Iterator[HostileServer]:
    with serving(HostileServer(upstream)) as server:
        yield server
