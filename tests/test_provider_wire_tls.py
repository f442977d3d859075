"""The direct transport over real TLS: a server on 127.0.0.1 with a certificate made by the real
`openssl` for this test. A call succeeds only against a certificate the context trusts and whose
name matches the base URL's host; the verified connection is pooled and reused."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyform.errors import ProviderError
from keyform.providers.http import HttpClient
from keyform.providers.wire import DirectTransport
from tests.rawserver import RawServer, ok
from tests.sinkkit import need, run


def certificate(tmp: Path, names: str) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    run([need("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=keyform-test",
         "-addext", f"subjectAltName={names}"])
    return key, cert


def tls_server(key: Path, cert: Path) -> RawServer:
    """Answers every request with `{}`, keeping the connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return RawServer(lambda n, req: ok(), tls=context)


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[RawServer, Path]]:
    key, cert = certificate(tmp_path, "DNS:localhost,IP:127.0.0.1")
    server = tls_server(key, cert)
    yield server, cert
    server.close()


def client(url: str, context: ssl.SSLContext) -> HttpClient:
    return HttpClient("qp", url, {"Authorization": "Bearer tok_canary_1234"}, sleep=lambda s: None, deadline=5.0,
                      transport=DirectTransport(url, context))


def test_a_trusted_certificate_for_the_host_is_used_and_its_connection_reused(tls: tuple[RawServer, Path]) -> None:
    server, cert = tls
    for host in ("127.0.0.1", "localhost"):
        url = f"https://{host}:{server.port}"
        http = client(url, ssl.create_default_context(cafile=str(cert)))
        assert [http.call("GET", "/keys", "list").json() for _ in range(3)] == [{}] * 3
        http.close()
    assert server.connections == 2  # one per client: each reused its verified connection


def test_an_untrusted_certificate_is_a_tls_failure_and_nothing_is_sent(tls: tuple[RawServer, Path]) -> None:
    server, _ = tls
    http = client(f"https://127.0.0.1:{server.port}", ssl.create_default_context())  # the system CAs only
    with pytest.raises(ProviderError) as info:
        http.call("POST", "/keys", "create", body={}, idempotent=False)
    message = str(info.value)
    assert "TLS failure" in message and "certificate verify failed" in message and not info.value.ambiguous
    assert "tok_canary" not in message


def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    key, cert = certificate(tmp_path, "DNS:api.example.test")
    server = tls_server(key, cert)
    http = client(f"https://127.0.0.1:{server.port}", ssl.create_default_context(cafile=str(cert)))
    with pytest.raises(ProviderError) as info:
        http.call("GET", "/keys", "list")
    assert "TLS failure" in str(info.value) and "mismatch" in str(info.value).lower(), str(info.value)
    server.close()
