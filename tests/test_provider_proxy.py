"""Providers honour the environment's proxy settings (`https_proxy`, `http_proxy`, `all_proxy`,
`no_proxy`), as curl and httpx.Client do, through a real forward proxy on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import keyform.providers.proxied as proxied
from keyform.emulator import Emulator
from keyform.errors import ProviderError
from keyform.providers import QuestraProvider
from keyform.providers.http import HttpClient, environment_proxy
from keyform.remote import CreateRequest
from tests.loopback import LoopbackServer, QuietHandler, serving

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class _Forward(QuietHandler):
    """A forward proxy for plain HTTP: the request line holds the absolute target URL."""

    server: LoopbackServer

    def do_GET(self) -> None:
        target = urlsplit(self.path)
        self.server.seen.append(f"{self.command} {self.path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
        upstream.request(self.command, target.path or "/", body=body or None, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_POST = do_DELETE = do_GET


@pytest.fixture
def proxy() -> Iterator[LoopbackServer]:
    with serving(LoopbackServer(_Forward)) as server:
        yield server


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def questra(emu: Emulator) -> QuestraProvider:
    return QuestraProvider("questra-prod", emu.url, "tok_ci", "org_123", sleep=lambda s: None)


def test_http_proxy_carries_every_call(emulator: Emulator, proxy: LoopbackServer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    provider = questra(emulator)
    created = provider.create(CreateRequest(address="ci-bot", attrs={"name": "CI bot"}, expires_at=None))
    listed = provider.list()
    assert listed is not None and [k.id for k in listed] == [created.key.id]
    provider.close()
    assert proxy.seen == [f"POST {emulator.url}/api-keys", f"GET {emulator.url}/api-keys"]


def test_a_proxy_that_refuses_is_named_in_the_error_without_its_credentials(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the API up and the proxy refusing, the error said 'cannot connect to <the API>
    (connection refused)': the reader looked at the wrong server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("http_proxy", f"http://ops:hunter2-proxy-pass@127.0.0.1:{port}")
    provider = QuestraProvider("questra-prod", emulator.url, "tok_ci", "org_123", sleep=lambda s: None,
                               max_retries=0)
    with pytest.raises(ProviderError) as info:
        provider.list()
    provider.close()
    assert str(info.value) == (f"questra-prod: list: cannot connect to {emulator.url} through the proxy "
                               f"http://127.0.0.1:{port} (connection refused)")


def test_no_proxy_bypasses_the_proxy(emulator: Emulator, proxy: LoopbackServer,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.0/8")
    provider = questra(emulator)
    assert provider.list() == []
    provider.close()
    assert proxy.seen == []


def test_a_proxy_without_a_scheme_is_http(emulator: Emulator, proxy: LoopbackServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removeprefix("http://"))
    provider = questra(emulator)
    assert provider.list() == []
    provider.close()
    assert proxy.seen == [f"GET {emulator.url}/api-keys"]


@pytest.mark.parametrize(("value", "shown", "why"), [
    ("gopher://user:hunter2@proxy.example:70", "gopher://proxy.example:70",
     "unsupported proxy scheme 'gopher' (use http, https or socks5)"),
    ("http://user:hun/ter2@proxy.example:3128", "http://proxy.example:3128", "not a valid proxy URL"),
    ("http://user:hunter2@proxy.example:notaport", "http://proxy.example:notaport", "not a valid proxy URL"),
])
def test_an_unusable_proxy_is_one_clear_error_without_its_credentials(
        emulator: Emulator, monkeypatch: pytest.MonkeyPatch, value: str, shown: str, why: str) -> None:
    monkeypatch.setenv("HTTP_PROXY", value)
    with pytest.raises(ProviderError) as err:
        questra(emulator)
    message = str(err.value)
    assert message == f"questra-prod: cannot use the proxy {shown} named by the environment: {why}"
    assert "hunter2" not in message and "ter2" not in message and "user" not in message


@pytest.mark.parametrize(("url", "environ", "expected"), [
    ("https://api.questra.ai", {}, None),
    ("https://api.questra.ai", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
    ("https://api.questra.ai", {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"}, "http://low:1"),
    ("https://api.questra.ai", {"HTTP_PROXY": "http://p:3128"}, None),  # scheme-specific
    ("http://api.questra.ai", {"HTTP_PROXY": "http://p:3128"}, "http://p:3128"),
    ("https://api.questra.ai", {"ALL_PROXY": "http://all:1"}, "http://all:1"),
    ("https://api.questra.ai", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "questra.ai"}, None),
    ("https://api.questra.ai", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".questra.ai"}, None),
    ("https://api.questra.ai", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, None),
    ("https://notquestra.ai", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "questra.ai"}, "http://p:1"),
    ("https://api.questra.ai", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "api.questra.ai:443"}, None),
    ("http://10.1.2.3:8080", {"HTTP_PROXY": "http://p:1", "no_proxy": "10.0.0.0/8"}, None),
    ("http://11.1.2.3:8080", {"HTTP_PROXY": "http://p:1", "no_proxy": "10.0.0.0/8"}, "http://p:1"),
    ("http://[::1]:8080", {"HTTP_PROXY": "http://p:1", "no_proxy": "::1"}, None),
    ("https://api.questra.ai", {"https_proxy": "", "HTTPS_PROXY": "http://up:1"}, None),  # empty lower case wins
    ("http://api.questra.ai", {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}, None),  # httpoxy
    ("http://api.questra.ai", {"http_proxy": "http://p:1", "REQUEST_METHOD": "GET"}, "http://p:1"),
    ("https://api.questra.ai", {"HTTPS_PROXY": "proxy.corp:3128"}, "http://proxy.corp:3128"),
])
def test_environment_proxy_follows_curl(url: str, environ: dict[str, str], expected: str | None) -> None:
    assert environment_proxy(url, environ) == expected


def test_a_create_whose_deadline_passed_before_its_first_byte_went_to_the_proxy_was_not_sent(
        emulator: Emulator, proxy: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # the deadline check before the first write said WriteTimeout: "the key may exist remotely"
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    connect = proxied._DeadlineBackend.connect_tcp

    def stalled(self: proxied._DeadlineBackend, *args: Any, **kw: Any) -> Any:
        stream = connect(self, *args, **kw)
        time.sleep(0.4)  # load, the GIL: the thread resumes after its call's deadline
        return stream

    monkeypatch.setattr(proxied._DeadlineBackend, "connect_tcp", stalled)
    http = HttpClient("qp", emulator.url, {"Authorization": "Bearer tok_ci"}, sleep=lambda s: None, deadline=0.3)
    with pytest.raises(ProviderError) as info:
        http.call("POST", "/api-keys", "create", body={"name": "x"}, idempotent=False)
    http.close()
    assert not info.value.ambiguous, str(info.value)
    assert proxy.seen == []


@pytest.mark.parametrize("reply", [None, b"garbage\r\n\r\n",
                                   b"HTTP/1.1 200 Connection established\r\nContent-Length: x\r\n\r\n"],
                         ids=["closed", "not-http", "malformed-head"])
def test_a_connect_the_proxy_drops_or_garbles_sent_nothing(monkeypatch: pytest.MonkeyPatch,
                                                           reply: bytes | None) -> None:
    # httpcore reads the CONNECT's answer with its HTTP parser: a proxy that hung up, or answered
    # something else than HTTP, was a RemoteProtocolError, and a create was reported ambiguous
    # ("the key may exist remotely") though only the CONNECT had left (found by a review)
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                seen.append(data)
                if reply:
                    conn.sendall(reply)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
    http = HttpClient("qp", "https://api.example.test", {"Authorization": "Bearer tok_canary_1234"},
                      sleep=lambda s: None, deadline=3.0)
    with pytest.raises(ProviderError) as info:
        http.call("POST", "/api-keys", "create", body={"name": "x"}, idempotent=False)
    http.close()
    with contextlib.suppress(OSError):  # wakes the accept (tests/rawserver.py: why not close it under it)
        listener.shutdown(socket.SHUT_RDWR)
    server.join(5)
    listener.close()
    assert seen and all(s.startswith(b"CONNECT api.example.test:443 ") for s in seen)  # only CONNECTs left
    assert not info.value.ambiguous and "may exist" not in str(info.value), str(info.value)
    assert "tok_canary" not in str(info.value)


def test_a_connect_the_proxy_never_answers_sent_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # a read timeout on the CONNECT's answer was taken for a create that may have been received
    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed by the test's end
            held.append(silent.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{silent.getsockname()[1]}")
    http = HttpClient("qp", "https://api.example.test", {}, sleep=lambda s: None, deadline=1.0)
    with pytest.raises(ProviderError) as info:
        http.call("POST", "/api-keys", "create", body={"name": "x"}, idempotent=False)
    http.close()
    assert not info.value.ambiguous, str(info.value)
    assert "may exist" not in str(info.value)
    with contextlib.suppress(OSError):  # wakes the accept if nothing came (tests/rawserver.py: why)
        silent.shutdown(socket.SHUT_RDWR)
    silent.close()
    for conn in held:
        conn.close()
