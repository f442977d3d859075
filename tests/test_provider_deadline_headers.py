"""The call's deadline bounds the wait for the status line and headers too (issue 14, item 6): a
server on 127.0.0.1 that drips its response headers one byte every 0.4 s (each read well within the
per-read timeout) is cut off at the deadline, on a fresh connection and on a reused pooled one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from keyform.errors import ProviderError
from keyform.providers.http import HttpClient
from tests.loopback import LoopbackServer, QuietHandler, serving

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"


class Dripping(QuietHandler):
    """GET /ok: an immediate `{}` (keep-alive); GET /drip: the headers a byte at a time."""

    server: Server

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.client_address[1]))
        if self.path == "/ok":
            self.wfile.write(HEAD + b"{}")
            return
        try:
            for i in range(len(HEAD)):
                if self.server.stop.wait(0.4):
                    break
                self.wfile.write(HEAD[i:i + 1])
        except OSError:
            pass
        self.close_connection = True


class Server(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(Dripping)
        self.stop = threading.Event()


@pytest.fixture
def server() -> Iterator[Server]:
    with serving(Server()) as s:
        try:
            yield s
        finally:
            s.stop.set()


def _client(server: Server) -> HttpClient:
    return HttpClient("qp", server.url, {}, timeout=5.0, deadline=2.0, sleep=lambda s: None)


def _dripped_call_ends_at_the_deadline(client: HttpClient, *, idempotent: bool) -> str:
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        client.call("GET", "/drip", "list keys", idempotent=idempotent)
    elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 3.0, elapsed  # each byte came within the 5 s read timeout: only the deadline stops it
    message = str(info.value)
    assert message.startswith("qp: list keys: no complete response within the call's 2s deadline "
                              "(provider option `deadline`)"), message
    return message


def test_headers_dripped_on_a_fresh_connection_end_at_the_deadline(server: Server) -> None:
    client = _client(server)
    try:
        _dripped_call_ends_at_the_deadline(client, idempotent=True)
    finally:
        client.close()
    assert [p for p, _ in server.seen] == ["/drip"]  # a deadline is not retried


def test_headers_dripped_on_a_reused_connection_end_at_the_deadline(server: Server) -> None:
    client = _client(server)
    try:
        assert client.call("GET", "/ok", "list keys").status_code == 200
        message = _dripped_call_ends_at_the_deadline(client, idempotent=False)
        assert message.endswith("; the key may exist remotely")  # the request went out: a create is ambiguous
        assert client.call("GET", "/ok", "list keys").status_code == 200  # the next call has its own deadline
    finally:
        client.close()
    (first, port), (second, reused) = server.seen[:2]
    assert (first, second) == ("/ok", "/drip") and reused == port  # the same pooled connection
