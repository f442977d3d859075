"""A relay on 127.0.0.1 in front of a conformance target's API, for the kit's "failure with the gone
body" test: it forwards every request to the API and keeps the last reply, or, while `answering` is
set, answers every request itself with that status and the kept reply's body and `Content-Type`.

So the kit learns what the API answers a delete of a key that is already gone (its own `not_found`
body, whatever its shape) without knowing the API, and then sends that body with a failure status
(a rejected token's, a 500, a 503), as a failing server or a gateway may: a provider must take the
status, never the body, for the truth."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx

# request and reply headers a relay must not pass on (hop-by-hop, or re-made for the body it sends)
_DROPPED = frozenset({"host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                      "upgrade", "content-length", "accept-encoding", "content-encoding"})


class Reply(NamedTuple):
    """One reply, as the relay keeps or sends it (the body decoded)."""

    status: int
    content_type: str | None
    body: bytes


class GoneRelay(ThreadingHTTPServer):
    """The relay: forwards to `upstream`'s origin, keeping the last reply (`kept`), until `answering`
    is set (a status); then answers every request with that status and the kept reply's body."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        parts = urlsplit(upstream)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base_path = parts.path.rstrip("/")
        self.client = httpx.Client(base_url=self.origin, verify=ssl.create_default_context(), timeout=20.0,
                                   follow_redirects=False, trust_env=False)
        self.kept: Reply | None = None
        self.answering: int | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """The target's base URL through the relay (its path kept)."""
        return f"http://127.0.0.1:{self.server_address[1]}{self.base_path}"

    def relay(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        with self.lock:
            answering, kept = self.answering, self.kept
        if answering is not None and kept is not None:
            return Reply(answering, kept.content_type, kept.body)
        response = self.client.request(method, path, headers=headers, content=body or None)
        reply = Reply(response.status_code, response.headers.get("Content-Type"), response.content)
        with self.lock:
            self.kept = reply
        return reply


class _Handler(BaseHTTPRequestHandler):
    server: GoneRelay
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers, then the blank line
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROPPED}
        try:
            reply = self.server.relay(self.command, self.path, headers, body)
        except httpx.HTTPError as exc:
            reply = Reply(502, "text/plain", f"relay: {type(exc).__name__}".encode())
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


@contextmanager
def relaying(upstream: str) -> Iterator[GoneRelay]:
    """A `GoneRelay` in front of `upstream` (a base URL), served for the block."""
    relay = GoneRelay(upstream)
    thread = threading.Thread(target=relay.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.shutdown()
        relay.server_close()
        relay.client.close()
        thread.join()
