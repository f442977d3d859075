"""A pooled HTTP/1.1 transport for one origin: keyform reads the head and chunked bodies, the
standard library's `http.client` the bodies framed by length or by the close.

httpx's default transport (httpcore and h11) cost ~0.4 ms of CPU per request on the benchmark
machine, more than the rest of a create together: a sans-I/O state machine stepped per event, a
readability poll of every idle pooled connection before each request, trace hooks and context
managers per step. This transport costs ~0.15 ms more than `http.client` alone. It is what a
provider instance with no proxy uses (`http._transport_for`); behind a proxy, httpx's own
transport is used (`proxied.py`).

What it keeps of httpcore's contract, because `HttpClient` relies on each:
- Failures are httpx's exception types: `ConnectError`/`ConnectTimeout` only when no connection was
  made (a create may be retried), `PoolTimeout` when no pooled connection came free,
  `WriteError`/`WriteTimeout`/`ReadError`/`ReadTimeout`/`RemoteProtocolError` once the request may
  have been sent, `LocalProtocolError` for a request that cannot be written (its header value is
  never quoted: it may be a token), `UnsupportedProtocol` for another origin or scheme.
- Every socket operation (the name lookup, connect, TLS handshake, send, each receive) waits at
  most until the deadline of the call running on this thread (`bounded`), so a reply dripped a
  byte at a time ends at the deadline, on a fresh or a reused connection alike.
- A pooled connection is reused only when it has nothing to read (one `poll` of that socket): a
  connection the server closed, or one carrying stray bytes, is closed instead of being written to.
- TLS uses the context it is given (verified, hostname checked); the head and body of a request go
  out in one send.
- Response bytes are handed to httpx still encoded (httpx decodes gzip/deflate, and the caller
  counts the decoded size against its cap).
- Replies are read strictly, as h11 read them: a head cut short, a `Content-Length` that is not
  one number, a transfer coding other than `chunked`, a malformed chunk are each a
  `RemoteProtocolError`, never a reply; interim 1xx answers are passed over; a reply with both
  framings, or bytes beyond it, retires its connection.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

# The deadline (time.monotonic()) of the call this thread is sending, or None: set by HttpClient._send
# around the transport, read on each socket operation (`bounded`). `head_then_body`: the request
# being sent has a body, so its head is held and sent with the body (httpcore's path, `http.py`).
call_deadline = threading.local()

_CHUNK = 65536
_MAX_INTERIM = 16  # 1xx answers passed over before the final one
_MAX_HEADERS = 100  # header lines in one response head (as http.client)
_MAX_LINE = 65536  # bytes in its status line or one header line (as http.client)
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([1-9][0-9]{2})(?: (.*))?", re.DOTALL)
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff]")


def bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """`timeout` cut to what is left of this thread's call deadline; `expired` raised when none is left."""
    deadline: float | None = getattr(call_deadline, "at", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the call's deadline passed")
    return left if timeout is None or left < timeout else timeout


def _set_timeout(sock: socket.socket, timeout: float | None) -> None:
    """`sock.settimeout(timeout)`, skipped when the socket has that timeout already: each call is
    an ioctl that releases the GIL (a hand-off among an apply's ~33 threads, ~2.4 per create), and
    until a call's deadline is nearer than the read timeout every send and receive of it, on a
    pooled connection every request's too, sets the same value."""
    if sock.gettimeout() != timeout:
        sock.settimeout(timeout)


class _Reader(io.RawIOBase):
    """The socket's receiving side for `http.client`'s parser: each receive bounded by the deadline."""

    def __init__(self, sock: socket.socket, timeout: float | None) -> None:
        self._sock = sock
        self._timeout = timeout
        self.done = False  # the response is read: never wait on the socket again

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        if self.done:
            return None  # "nothing without waiting"
        _set_timeout(self._sock, bounded(self._timeout, httpx.ReadTimeout))
        return self._sock.recv_into(buffer)


class _File(io.BufferedReader):
    """The buffered reader `http.client` parses from. When the response is done with it (closed), it
    notes whether bytes beyond the response were already received: a server that sent more than one
    reply; the connection is then not reused."""

    stray = False

    def close(self) -> None:
        if not self.closed:
            raw = self.raw
            if isinstance(raw, _Reader):
                raw.done = True
                self.stray = bool(self.peek(1))  # what is buffered, without a receive
        super().close()


class _Wire:
    """What `http.client.HTTPResponse` reads from: `makefile` gives it the bounded reader."""

    def __init__(self, sock: socket.socket, timeout: float | None) -> None:
        self.file = _File(_Reader(sock, timeout), _CHUNK)

    def makefile(self, mode: str) -> io.BufferedReader:
        return self.file


class _Connection:
    """One open socket to the origin."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def idle_and_open(self) -> bool:
        """Nothing to read: neither closed by the server nor carrying stray bytes."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return False  # decrypted bytes nobody asked for
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _Body(httpx.SyncByteStream):
    """A response body read from its connection; the connection goes back to the pool once the body
    is read whole (and the server keeps it open), and is closed otherwise."""

    def __init__(self, transport: DirectTransport, conn: _Connection, wire: _Wire,
                 response: http.client.HTTPResponse) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._wire = wire
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        try:
            if response.chunked:
                yield from _chunks(self._wire.file)
                whole = True
            else:
                while True:
                    left = response.length
                    chunk = response.read(left if left is not None and 0 < left < _CHUNK else _CHUNK)
                    if not chunk:
                        if response.length:  # http.client ends a cut Content-Length body quietly
                            raise httpx.RemoteProtocolError("the connection closed before the whole body arrived")
                        break
                    yield chunk
                whole = response.isclosed()
        except BaseException as exc:
            self._finish(False)
            raise _read_failure(exc) from None
        self._finish(whole and not response.will_close)

    def close(self) -> None:
        self._finish(False)

    def _finish(self, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._response.close()
            self._transport._release(conn, reusable and not self._wire.file.stray)


def _chunks(fp: io.BufferedReader) -> Iterator[bytes]:
    """A chunked body's data, read strictly (RFC 9112 §7.1): each size 1-16 hex digits (an optional
    extension after `;`), each chunk's data followed by CRLF, the trailer lines (at most
    `_MAX_HEADERS`) skipped. `http.client`'s reader takes any `int(size, 16)`: `-1` read the
    connection to its end into memory, past the body cap; `0x2` and `+2` passed too."""
    while True:
        match = _CHUNK_SIZE.fullmatch(_line(fp, "chunk size"))
        if match is None:
            raise http.client.HTTPException("malformed chunk size")
        left = int(match[1], 16)
        if left == 0:
            break
        while left:
            data = fp.read(min(left, _CHUNK))
            if not data:
                raise http.client.IncompleteRead(b"")
            left -= len(data)
            yield data
        if _line(fp, "chunk end") not in (b"\r\n", b"\n"):
            raise http.client.HTTPException("chunk data not followed by CRLF")
    for _ in range(_MAX_HEADERS + 1):
        if _line(fp, "trailer line") in (b"\r\n", b"\n"):
            return
    raise http.client.HTTPException(f"more than {_MAX_HEADERS} trailer lines")


class _Headers:
    """A response's header block, as `http.client.HTTPResponse` uses it (`get`, `items`): parsed
    without the email package, which was ~0.1 ms of a create's CPU."""

    __slots__ = ("_all", "_items")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._all: dict[str, list[str]] = {}
        for name, value in items:
            self._all.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._all.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return self._all.get(name.lower(), [])

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


def _line(fp: io.BufferedReader, what: str) -> bytes:
    """One line of a head, chunk size or trailer, ended by LF: the connection closing first, or a
    line over `_MAX_LINE` bytes, is a reply cut short or malformed."""
    line = fp.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise http.client.LineTooLong(what)
    if not line.endswith(b"\n"):
        raise http.client.IncompleteRead(line)  # the connection closed in the middle of the head
    return line


def _read_status_line(fp: io.BufferedReader) -> tuple[int, int, str]:
    """(HTTP version as 10 or 11, status, reason) from `HTTP/1.x NNN reason`."""
    match = _STATUS_LINE.fullmatch(_line(fp, "status line").rstrip(b"\r\n"))
    if match is None:
        raise http.client.BadStatusLine("not an HTTP/1.x status line")
    return (10 if match[1] == b"0" else 11), int(match[2]), (match[3] or b"").decode("iso-8859-1").strip()


def _read_header_block(fp: io.BufferedReader) -> _Headers:
    """The header lines up to the blank line: at most `_MAX_HEADERS` lines of at most `_MAX_LINE`
    bytes; a name that is not a token (or has blanks before its colon) is a malformed reply; an
    obsolete folded line continues the previous value, joined by a space (RFC 9112 §5.2)."""
    items: list[tuple[str, str]] = []
    for _ in range(_MAX_HEADERS + 1):
        line = _line(fp, "header line")
        if line in (b"\r\n", b"\n"):
            return _Headers(items)
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and items:
            name, value = items[-1]
            items[-1] = (name, (value + " " + text.strip(" \t")).rstrip())
            continue
        name, colon, value = text.partition(":")
        if not colon or not _TOKEN.fullmatch(name.encode("iso-8859-1")):
            raise http.client.HTTPException("malformed header line")
        items.append((name, value.strip(" \t")))
    raise http.client.HTTPException(f"more than {_MAX_HEADERS} headers")


def _framing(status: int, method: str, version: int, headers: _Headers) -> tuple[bool, int | None, bool]:
    """(chunked, length, will_close) of a final response, as RFC 9112 §6.3 decides them: no body
    for HEAD, 204 and 304 (whatever their headers say); else `Transfer-Encoding` must be exactly
    `chunked` (any other coding, or a second one, is refused: its end could not be found); else
    every `Content-Length` value must be the same ASCII number; else the body runs to the close.
    An HTTP/1.0 connection, or one the server says it closes, is never reused."""
    connection = ",".join(headers.get_all("connection")).lower()
    will_close = version == 10 or "close" in (t.strip() for t in connection.split(","))
    if status in (204, 304) or method == "HEAD":
        return False, 0, will_close
    codings = [c.strip().lower() for v in headers.get_all("transfer-encoding") for c in v.split(",") if c.strip()]
    if codings:
        if codings != ["chunked"]:
            raise http.client.HTTPException("a Transfer-Encoding other than chunked")
        # with a Content-Length too, the reply may be an attempt at response splitting: chunked
        # wins and the connection is not reused (RFC 9112 §6.3)
        return True, None, will_close or bool(headers.get_all("content-length"))
    lengths = {v.strip() for value in headers.get_all("content-length") for v in value.split(",")}
    if not lengths:
        return False, None, True
    if len(lengths) != 1 or not _DIGITS.fullmatch(next(iter(lengths))):
        raise http.client.HTTPException("a Content-Length that is not one number")
    return False, int(lengths.pop()), will_close


class _Response(http.client.HTTPResponse):
    """`http.client`'s response (its body reading by length or to the close; `_chunks` reads a
    chunked one), with the head read by keyform (`begin`): the status line and header block
    strictly (a head cut short is an error, never a reply), interim 1xx answers passed over (103
    Early Hints; `http.client` skips only 100) so that a create's real answer is never taken for a
    1xx, the framing by `_framing`."""

    def begin(self) -> None:
        for _ in range(_MAX_INTERIM + 1):
            version, status, reason = _read_status_line(self.fp)
            headers = _read_header_block(self.fp)
            if not 100 <= status < 200 or status == 101:
                break
        else:
            raise http.client.HTTPException(f"more than {_MAX_INTERIM} interim (1xx) responses")
        self.code = self.status = status
        self.reason = reason
        self.version = version
        self.headers = self.msg = headers  # type: ignore[assignment]
        self.chunked, self.length, self.will_close = _framing(status, self._method, version,  # type: ignore[attr-defined]
                                                              headers)


def _final_response(wire: _Wire, method: str) -> http.client.HTTPResponse:
    """The final response to the request just sent, its head read (`_Response.begin`)."""
    response = _Response(wire, method=method)  # type: ignore[arg-type]
    try:
        response.begin()
    except BaseException as exc:
        response.close()
        raise _read_failure(exc) from None
    return response


def _read_failure(exc: BaseException) -> BaseException:
    """What a failure while reading a response is raised as: the httpx error for a network or
    protocol failure, anything else (an interrupt) itself."""
    if isinstance(exc, httpx.HTTPError):
        return exc
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout("timed out")
    if isinstance(exc, http.client.HTTPException | ValueError):  # ValueError: a number http.client could not read
        return httpx.RemoteProtocolError(f"malformed response: {type(exc).__name__}")
    if isinstance(exc, OSError):
        return httpx.ReadError(str(exc) or type(exc).__name__)
    return exc


class DirectTransport(httpx.BaseTransport):
    """HTTP/1.1 to one origin (`base_url`'s scheme, host and port), pooled: at most
    `max_connections` open, at most `max_idle` kept between requests."""

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext, *, max_connections: int = 64,
                 max_idle: int = 32) -> None:
        url = httpx.URL(base_url)
        self.scheme = url.scheme
        if self.scheme not in ("http", "https") or not url.raw_host:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {self.scheme!r}" if url.raw_host
                                            else "no host")
        self.host = url.raw_host.decode("ascii")  # IDNA-encoded, as httpcore connects
        self.port = url.port or (443 if self.scheme == "https" else 80)
        self.ssl_context = ssl_context
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._lock = threading.Condition(threading.Lock())
        self._idle: list[_Connection] = []
        self._open = 0  # connections open or being opened, idle ones included
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != self.scheme or url.raw_host != self.host.encode() or (url.port or self.port) != self.port:
            raise httpx.UnsupportedProtocol("this transport sends only to its instance's base URL")
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        head = _head(request)
        body = request.content
        conn = self._acquire(timeouts.get("pool"))
        if conn is None:
            try:
                conn = self._connect(timeouts.get("connect"))
            except BaseException:
                self._release(None, False)
                raise
        try:  # nothing is sent yet: a deadline already passed is not ambiguous, even for a create
            send_timeout = bounded(timeouts.get("write"), httpx.PoolTimeout)
        except httpx.PoolTimeout:
            self._release(conn, True)
            raise httpx.PoolTimeout("the call's deadline passed before the request was sent") from None
        try:
            sock = conn.sock
            try:
                _set_timeout(sock, send_timeout)
                sock.sendall(head + body if body else head)
            except TimeoutError:
                raise httpx.WriteTimeout("timed out") from None
            except OSError as exc:
                raise httpx.WriteError(str(exc) or type(exc).__name__) from None
            wire = _Wire(sock, timeouts.get("read"))
            response = _final_response(wire, request.method)
        except BaseException:
            self._release(conn, False)
            raise
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.getheaders()]
        return httpx.Response(response.status, headers=headers, stream=_Body(self, conn, wire, response),
                              extensions={"http_version": b"HTTP/1.1" if response.version == 11 else b"HTTP/1.0",
                                          "reason_phrase": response.reason.encode("latin-1", "replace")})

    def _acquire(self, timeout: float | None) -> _Connection | None:
        """An idle connection still open, or None with a slot taken for a new one; waiting at most
        `timeout`, and never past the call's deadline."""
        timeout = bounded(timeout, httpx.PoolTimeout)
        until = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    raise httpx.ConnectError("the transport is closed")
                while self._idle:
                    conn = self._idle.pop()
                    if conn.idle_and_open():
                        return conn
                    conn.close()
                    self._open -= 1
                if self._open < self._max_connections:
                    self._open += 1
                    return None
                left = None if until is None else until - time.monotonic()
                if left is not None and left <= 0:
                    raise httpx.PoolTimeout("no free connection in the pool")
                self._lock.wait(left)

    def _release(self, conn: _Connection | None, reusable: bool) -> None:
        with self._lock:
            if conn is not None and reusable and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
            else:
                self._open -= 1
                if conn is not None:
                    conn.close()
            self._lock.notify()

    def _connect(self, timeout: float | None) -> _Connection:
        sock = open_socket(self.host, self.port, timeout, httpx.ConnectTimeout, httpx.ConnectError)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.scheme == "https":
                sock.settimeout(bounded(timeout, httpx.ConnectTimeout))
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError:
            sock.close()
            raise httpx.ConnectTimeout("timed out") from None
        except OSError as exc:
            sock.close()
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._lock.notify_all()
        for conn in idle:
            conn.close()


def open_socket(host: str, port: int, timeout: float | None, timed_out: type[Exception], failed: type[Exception],
                local_address: str | None = None) -> socket.socket:
    """A TCP connection to the first of `host`'s addresses that answers, each attempt waiting at most
    `timeout` and never past the call's deadline (`socket.create_connection` gives every address
    the whole timeout: a name with N silent addresses held a call N times its deadline). The name
    lookup waits no longer either (`_lookup`). Raises `timed_out` or `failed` (the last attempt's
    reason)."""
    addresses = _lookup(host, port, timeout, timed_out, failed)
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(bounded(timeout, timed_out))
            if local_address:
                sock.bind((local_address, 0))
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
        except BaseException:
            sock.close()
            raise
    if isinstance(last, TimeoutError):
        raise timed_out("timed out")
    raise failed(str(last) if last is not None else "no address to connect to")


def _head(request: httpx.Request) -> bytes:
    """The request line and headers, checked: no control character anywhere, header names tokens."""
    target = request.url.raw_path
    method = request.method.encode("ascii")
    if not _TOKEN.fullmatch(method) or not target or _BAD_TARGET.search(target):
        raise httpx.LocalProtocolError("the request line cannot be written (a control character or space)")
    lines = [method + b" " + target + b" HTTP/1.1"]
    for name, value in request.headers.raw:
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError("a request header name is not a token")
        if _BAD_VALUE.search(value):
            raise httpx.LocalProtocolError(f"the request header {name.decode('ascii')} has a control character "
                                           "or leading/trailing whitespace in its value")
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


_Addresses = Sequence[tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]]


def _lookup(host: str, port: int, timeout: float | None, timed_out: type[Exception],
            failed: type[Exception]) -> _Addresses:
    """`host`'s addresses. An IP address is read at once. A name is looked up in a thread of its
    own, waited for at most `timeout` and never past the call's deadline: `getaddrinfo` takes no
    timeout, and a resolver that does not answer held a call for its own retries (5 s per try and
    name server by default) whatever the call's deadline said. The abandoned lookup ends in the
    background; nothing waits for it."""
    try:  # the host as bytes where it is ASCII (IDNA-encoded): a str would import the idna codec (~5 ms)
        name: str | bytes = host.encode("ascii")
    except UnicodeEncodeError:
        name = host
    try:
        return socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        pass  # a name, not an address
    wait = bounded(timeout, timed_out)
    found: list[_Addresses] = []
    error: list[OSError | UnicodeError] = []
    done = threading.Event()

    def resolve() -> None:
        try:
            found.append(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=resolve, name="keyform-lookup", daemon=True).start()
    if not done.wait(wait):
        raise timed_out(f"the lookup of {host} did not finish within the call's time")
    if error:
        raise failed(str(error[0]) or type(error[0]).__name__)
    return found[0]
