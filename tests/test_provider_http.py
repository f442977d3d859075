"""The shared HTTP layer (`providers/http.py`) over real HTTP on 127.0.0.1: what every request
carries, compressed answers, and request bodies that are not ASCII."""

from __future__ import annotations

import gzip
import json
import ssl
from collections.abc import Iterator

import httpx
import pytest

from keyform import __version__
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.providers import QuestraProvider
from keyform.providers.wire import DirectTransport
from keyform.remote import CreateRequest
from tests.loopback import LoopbackServer, QuietHandler, serving

LISTING = [{"id": "ak_1", "name": "CI bot", "created_at": "2026-11-01T10:00:00.123Z", "expires_at": None,
            "revoked": False}]


class _GzipApi(QuietHandler):
    """Answers GET /api-keys with a gzip-compressed listing, and remembers the request headers."""

    server: LoopbackServer

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = gzip.compress(json.dumps(LISTING).encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def gzip_api() -> Iterator[LoopbackServer]:
    with serving(LoopbackServer(_GzipApi)) as server:
        yield server


def test_a_gzip_compressed_listing_is_decoded_and_requests_say_who_is_asking(gzip_api: LoopbackServer) -> None:
    provider = QuestraProvider("qp", gzip_api.url, "tok_ci", "org_1")
    listed = provider.list()
    provider.close()
    assert listed is not None and [(k.id, k.attrs["name"], k.created_at) for k in listed] == [
        ("ak_1", "CI bot", "2026-11-01T10:00:00Z")]
    [sent] = gzip_api.seen
    assert sent["user-agent"] == f"keyform/{__version__}"
    assert "gzip" in sent["accept-encoding"]
    assert sent["authorization"] == "Bearer tok_ci" and sent["x-org-id"] == "org_1"


def test_a_name_that_is_not_ascii_reaches_the_api_intact(emulator: Emulator, emu_control: EmulatorControl) -> None:
    provider = QuestraProvider("qp", emulator.url, "tok_ci", "org_1")
    created = provider.create(CreateRequest(address="ci-bot", attrs={"name": "Clé CI — 東京"}, expires_at=None))
    provider.close()
    assert created.key.attrs["name"] == "Clé CI — 東京"
    assert [k["name"] for k in emu_control.questra_keys("org_1")] == ["Clé CI — 東京"]


def _ca_certificates(provider: QuestraProvider) -> int:
    """How many CA certificates the provider's transport trusts for TLS."""
    transport = provider._http._transport
    assert isinstance(transport, DirectTransport)
    ssl_context = transport.ssl_context
    assert ssl_context is not None and ssl_context.verify_mode == ssl.CERT_REQUIRED and ssl_context.check_hostname
    return int(ssl_context.cert_store_stats()["x509_ca"])


def test_a_plain_http_instance_works_without_loading_the_ca_bundle(emulator: Emulator) -> None:
    # an http:// instance never opens TLS: loading the CA bundle for it cost every plan ~30 ms of
    # CPU; the context it holds still verifies, and with no CA it could trust no certificate
    plain = QuestraProvider("qp", emulator.url, "tok_ci", "org_1")
    assert emulator.url.startswith("http://")
    assert plain.list() == []
    plain.close()
    assert _ca_certificates(plain) == 0
    secure = QuestraProvider("qs", emulator.url.replace("http://", "https://"), "tok_ci", "org_1")
    secure.close()
    assert _ca_certificates(secure) > 0  # an https:// instance verifies against the CA bundle, as before


def test_each_path_s_parsed_url_is_kept_but_pages_do_not_crowd_out_the_create_path() -> None:
    """Parsing a URL is ~2/3 of building a request, so a client keeps each path's (up to 64). A
    paginated listing's paths (each page its own query) and revokes (each its own ID) never repeat:
    pages are not kept, so after 100 of them the create path is still kept; every request goes to
    exactly its own URL whatever is kept."""
    from keyform.providers.http import HttpClient

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={})

    client = HttpClient("qp", "http://127.0.0.1:9/base/", {}, transport=httpx.MockTransport(answer))
    for page in range(100):
        client.call("GET", f"/api-keys?page={page}", "list")
    client.call("POST", "/api-keys", "create", body={"name": "x"}, idempotent=False)
    client.call("POST", "/api-keys", "create", body={"name": "y"}, idempotent=False)
    for i in range(70):
        client.call("DELETE", f"/api-keys/ak_{i}", "revoke")
    assert seen[:2] == ["http://127.0.0.1:9/base/api-keys?page=0", "http://127.0.0.1:9/base/api-keys?page=1"]
    assert seen[100:103] == ["http://127.0.0.1:9/base/api-keys"] * 2 + ["http://127.0.0.1:9/base/api-keys/ak_0"]
    assert seen[-1] == "http://127.0.0.1:9/base/api-keys/ak_69" and len(seen) == 172
    kept = client._urls
    assert "/api-keys" in kept and len(kept) <= 64 and not any("?" in p for p in kept)
