"""Every API call has an overall deadline and a response body cap (issue 14, item 6), tested against
a real server on 127.0.0.1 that drips its reply or sends far too much; the limits are configured
small so the tests stay fast. Also: a reply nested too deeply for the JSON parser is a clear error."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.project import KEYFORM
from keyform.errors import ProviderError
from keyform.providers.questra import QuestraProvider
from keyform.providers.textql import TextQLProvider
from keyform.remote import CreateRequest
from tests.loopback import LoopbackServer, QuietHandler, serving


class Misbehaving(QuietHandler):
    """GET: a listing per `server.mode`; POST: the same (a create's reply)."""

    server: Server

    def _reply(self) -> None:
        mode = self.server.mode
        self.server.seen.append(self.path)
        if mode == "drip":  # headers at once, then one byte every 0.2 s, forever (as long as we are read)
            body = b'{"data": [' + b" " * 10_000 + b"]}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                return
        elif mode in ("huge", "huge-chunked", "bomb"):
            body = b'{"data": [' + b" " * (4 * 1024 * 1024) + b"]}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if mode == "bomb":  # 4 MiB of JSON, 4 KiB on the wire
                body = gzip.compress(body)
                self.send_header("Content-Encoding", "gzip")
            if mode == "huge-chunked":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for i in range(0, len(body), 65536):
                        part = body[i:i + 65536]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    return
                return
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                return
        elif mode == "nested":
            body = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self._reply()


class Server(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(Misbehaving)
        self.mode = "drip"


@pytest.fixture
def server() -> Iterator[Server]:
    with serving(Server()) as s:
        yield s


def _questra(server: Server, **limits: float) -> QuestraProvider:
    return QuestraProvider("qp", server.url, "tok-secret", "org_1", timeout=5.0, max_retries=2,
                           sleep=lambda s: None, **limits)  # type: ignore[arg-type]


def test_a_dripping_reply_ends_at_the_calls_deadline_not_per_read(server: Server) -> None:
    provider = _questra(server, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.list()
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, elapsed  # each read came within the 5 s timeout: only the deadline stops it
    message = str(info.value)
    assert message.startswith("qp: ") and "within the call's 1s deadline (provider option `deadline`)" in message
    assert "tok-secret" not in message
    assert len(server.seen) == 1  # a deadline is not retried
    provider.close()


def test_a_create_whose_reply_drips_past_the_deadline_is_ambiguous(server: Server) -> None:
    provider = TextQLProvider("tq", server.url, "tok-secret", timeout=5.0, max_retries=2, sleep=lambda s: None,
                              deadline=0.6)
    with pytest.raises(ProviderError) as info:
        provider.create(CreateRequest("k", {"description": "d"}, None, {"auth_value": "v"}))
    assert info.value.ambiguous and "the key may exist remotely" in str(info.value)
    provider.close()


@pytest.mark.parametrize("mode", ["huge", "huge-chunked", "bomb"])
def test_a_body_over_the_cap_is_refused(server: Server, mode: str) -> None:
    server.mode = mode
    provider = _questra(server, max_body=1024 * 1024)
    with pytest.raises(ProviderError) as info:
        provider.list()
    message = str(info.value)
    assert "response body larger than 1 MiB (provider option `max_response_bytes`)" in message, message
    assert len(server.seen) == 1
    provider.close()
    # under the cap, the same reply reads fine
    roomy = _questra(server, max_body=8 * 1024 * 1024)
    assert roomy.list() == []
    roomy.close()


def test_a_reply_nested_too_deep_for_the_parser_is_a_shape_error(server: Server) -> None:
    server.mode = "nested"
    provider = _questra(server)
    with pytest.raises(ProviderError) as info:
        provider.list()
    assert "qp: " in str(info.value) and "RecursionError" not in str(info.value)
    provider.close()


def test_the_limits_are_provider_options_checked_at_validate_time(tmp_path: Path) -> None:
    import subprocess

    manifest = tmp_path / "keyform.yaml"
    manifest.write_text(
        "version: 1\n"
        "providers:\n"
        "  qp:\n"
        "    type: questra\n"
        "    token: {env: QT}\n"
        "    org_id: org_1\n"
        "    deadline: 25h\n"
        "    max_response_bytes: 10\n"
        "sinks:\n"
        "  env: {type: dotenv, path: .env}\n"
        "keys: {}\n")
    run = subprocess.run([*KEYFORM, "validate"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode == 1
    assert "keyform.yaml:7: providers.qp.deadline: 25h is not between 1s and 24h" in run.stderr, run.stderr
    assert "keyform.yaml:8: providers.qp.max_response_bytes: 10 is less than 1024 bytes" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
