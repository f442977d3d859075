"""The transport of a provider instance behind a proxy: httpx's own (httpcore), which speaks to HTTP,
HTTPS and SOCKS proxies, with every socket operation bounded by the running call's deadline.

Only an instance whose base URL the environment routes through a proxy (`http.environment_proxy`)
comes here; every other one uses `wire.DirectTransport`, and a run that uses no proxy never imports
httpcore. The deadline contract is the same on both paths (`wire.bounded`): each connect, TLS
handshake, send and receive waits at most until the deadline of the call running on that thread.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._backends.sync import SyncStream

from keyform.errors import ProviderError
from keyform.providers.wire import bounded, call_deadline, open_socket

# Whether the request this thread is sending waits on a proxy's answer to its CONNECT: set when
# the CONNECT is written, cleared by the TLS start that follows it (`_DeadlineStream`), read by
# `_Tunnelled` when the request fails.
_tunnel = threading.local()


def proxied_transport(instance: str, proxy: str, context: ssl.SSLContext, limits: httpx.Limits) -> httpx.BaseTransport:
    """httpx's pooled transport through `proxy`, its network backend wrapped (`_DeadlineBackend`)."""
    try:
        transport = httpx.HTTPTransport(verify=context, limits=limits, proxy=proxy)
    except (ValueError, ImportError, httpx.InvalidURL) as exc:
        raise ProviderError(f"{instance}: cannot use the proxy {_shown_proxy(proxy)} named by the environment: "
                            f"{_proxy_problem(proxy, exc)}") from None
    pool = transport._pool  # httpcore's HTTPProxy or SOCKSProxy (ConnectionPool subclasses)
    pool._network_backend = _DeadlineBackend(pool._network_backend)  # used for every new connection
    return _Tunnelled(transport)


class _Tunnelled(httpx.BaseTransport):
    """The proxied transport, with a request that failed before its proxy answered `CONNECT`
    reported as not sent: the API has seen nothing, so a create is not ambiguous. A timeout is a
    `ConnectTimeout`; a connection cut or closed, or an answer that is not HTTP (which httpcore's
    HTTP/1.1 parser raises as `RemoteProtocolError`, the error of a request that may have been
    received), a `ConnectError`."""

    def __init__(self, transport: httpx.HTTPTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _tunnel.pending = False
        try:
            return self._transport.handle_request(request)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            if not getattr(_tunnel, "pending", False):
                raise
            if isinstance(exc, httpx.TimeoutException):
                raise httpx.ConnectTimeout("the proxy did not answer CONNECT in time") from None
            raise httpx.ConnectError(f"the proxy did not answer CONNECT: {exc}") from None
        finally:
            _tunnel.pending = False

    def close(self) -> None:
        self._transport.close()


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every wait ends by the running call's deadline (see `wire.bounded`).

    What a failure means for a create is kept exact: a deadline passed before the first byte of a
    request is written is a `PoolTimeout` (nothing was sent). A `CONNECT` written marks the
    thread's request as waiting on the proxy's answer (`_tunnel`) until the TLS start that follows
    it; `_Tunnelled` reports a failure in between as not sent.

    The head of a request with a body (a create's POST) is held and sent together with the body:
    httpcore writes them separately, and each socket send (with its readiness poll) costs a kernel
    round through the loopback or TLS stack and a GIL hand-off. Anything else written, read or a
    TLS start sends what is held first, so nothing is ever reordered or left unsent."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        self._held = b""  # a request head waiting for its body
        self._fresh = True  # nothing of the request being sent is written yet

    def _send(self, data: bytes, timeout: float | None) -> None:
        wait = bounded(timeout, httpcore.PoolTimeout if self._fresh else httpcore.WriteTimeout)
        if self._fresh and data.startswith(b"CONNECT "):
            _tunnel.pending = True
        self._fresh = False
        self._stream.write(data, wait)

    def _flush(self, timeout: float | None) -> None:
        if self._held:
            held, self._held = self._held, b""
            self._send(held, timeout)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._flush(timeout)
        self._fresh = True  # the request is written whole: the next write begins the next one
        return self._stream.read(max_bytes, bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._held:
            buffer, self._held = self._held + buffer, b""
        elif buffer and getattr(call_deadline, "head_then_body", False):
            call_deadline.head_then_body = False
            self._held = bytes(buffer)
            return
        self._send(buffer, timeout)

    def close(self) -> None:
        self._held = b""
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        self._flush(timeout)
        _tunnel.pending = False
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      bounded(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend with its streams wrapped in `_DeadlineStream`."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        # each of the host's addresses tried within what is left of the deadline (`wire.open_socket`)
        sock = open_socket(host, port, timeout, httpcore.ConnectTimeout, httpcore.ConnectError, local_address)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            raise httpcore.ConnectError(str(exc)) from None
        return _DeadlineStream(SyncStream(sock))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_unix_socket(path, bounded(timeout, httpcore.ConnectTimeout),
                                                                 socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _shown_proxy(proxy: str | None) -> str:
    """The proxy URL as it may be printed: scheme, host and port only (never user or password)."""
    if not proxy:
        return "(none)"
    scheme, _, rest = proxy.partition("://")
    hostport = rest.rpartition("@")[2].split("/", 1)[0]  # a password may hold '/': cut at the last '@' first
    return f"{scheme}://{hostport}"


def _proxy_problem(proxy: str | None, exc: Exception) -> str:
    """Why httpx refused the proxy, in words that never quote the URL (it may hold credentials)."""
    scheme = (proxy or "").partition("://")[0].lower()
    if isinstance(exc, ImportError):
        return "SOCKS proxies need the socksio package (pip install 'httpx[socks]')"
    if scheme not in ("http", "https", "socks5", "socks5h"):
        return f"unsupported proxy scheme {scheme!r} (use http, https or socks5)"
    return "not a valid proxy URL"
