"""The HTTP server: stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive, one thread per connection.

What holds: every answer but a 204 carries ``Content-Length``; a dropped response closes the socket without a
byte; an unexpected exception is a JSON 500, never a dead connection; :meth:`Emulator.stop` also
closes idle keep-alive connections so clients see the server go away.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import urlsplit

from .backend import Backend, not_found
from .config import EmulatorConfig
from .control import ControlApi
from .faults import FaultSettings
from .wire import Request, Response, json_response

MAX_BODY = 1 << 20


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], backend: Backend, log_requests: bool) -> None:
        self.backend = backend
        self.control = ControlApi(backend)
        self.log_requests = log_requests
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse-DNS lookup of the host (slow in some sandboxes)."""
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        # `serve_forever` accepts only after its poll saw a connection waiting; one that is gone by
        # then (reset, or taken by another holder of the socket) made a blocking accept wait for the
        # next, and `stop` with it. Non-blocking, that accept fails and the loop polls again.
        # (An accepted connection is blocking: Linux does not pass the flag on.)
        self.socket.setblocking(False)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up before its reply (its deadline passed, it was interrupted) is no
        fault of the emulator's: one line when requests are logged, never a traceback. Anything
        else is a bug here and keeps `socketserver`'s report."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            if self.log_requests:
                sys.stderr.write(f"{client_address[0]}:{client_address[1]} hung up before its reply ({error})\n")
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones included)."""
        with self.connections_lock:
            open_connections = list(self.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def dispatch(self, request: Request) -> Response:
        """Route to the control API (under the lock) or to the emulated APIs."""
        if self.control.owns(request):
            with self.backend.lock:
                return self.control.handle(request)
        return self.backend.serve_api(request) or not_found(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def date_time_string(self, timestamp: float | None = None) -> str:
        """Every reply's ``Date`` header, on the APIs' clock (the ``clock_offset`` knob)."""
        if timestamp is None:
            timestamp = self.server.backend.clock.now().timestamp()
        return formatdate(timestamp, usegmt=True)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ConnectionError:  # the client went away mid-request: nothing to handle, nobody to answer
            self.close_connection = True
            return
        except ValueError as exc:
            self.close_connection = True
            self._send(json_response(400, {"error": "bad_request", "message": str(exc)}))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Request(self.command, urlsplit(self.path).path, headers, body)
        try:
            response = self.server.dispatch(request)
        except Exception as exc:  # an emulator bug must still answer, not hang the client
            payload = {"error": "internal", "code": "internal", "message": f"emulator error: {exc!r}"}
            response = json_response(500, payload)
        if response.drop:
            self.close_connection = True
            return
        self._send(response)

    def _read_body(self) -> bytes:
        """The request body by ``Content-Length`` (absent means empty); ``ValueError`` if unusable."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise ValueError("chunked request bodies are not supported; send Content-Length")
        raw = self.headers.get("Content-Length") or "0"
        if not raw.strip().isdigit():
            raise ValueError(f"invalid Content-Length {raw!r}")
        length = int(raw)
        if length > MAX_BODY:
            raise ValueError(f"request body larger than {MAX_BODY} bytes")
        body = self.rfile.read(length)
        if len(body) < length:  # a client killed after sending the headers must not create an empty key
            raise ConnectionAbortedError(f"connection closed after {len(body)} of {length} body bytes")
        return body

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:  # RFC 9110 §8.6: no Content-Length on a 204
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)


class Emulator:
    """Both emulated APIs and the control API on one port; binds on construction.

    ``url`` is known as soon as the object exists (``port=0`` → an ephemeral port). Use
    :meth:`start` / :meth:`stop` (or ``with``) to serve in a daemon thread, or
    :meth:`serve_forever` to serve in the foreground until Ctrl-C or SIGTERM.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        settings = FaultSettings(
            latency_ms=config.latency_ms,
            error_rate=config.error_rate,
            rate_limit_rate=config.rate_limit_rate,
            drop_after_commit_rate=config.drop_after_commit_rate,
            seed=config.seed,
            questra_list_shape=config.questra_list_shape,
            retry_after=config.retry_after,
            rate_limit_rps=config.rate_limit_rps,
            rate_limit_burst=config.rate_limit_burst,
            rate_limit_scope=config.rate_limit_scope,
            rate_limits=dict(config.rate_limits),
            clock_offset=config.clock_offset,
        )
        self._backend = Backend(settings, config.tokens, config.read_only_tokens)
        if not 0 <= config.port <= 65535:  # (the socket's own OverflowError was a traceback)
            raise ValueError(f"port {config.port} is not between 0 and 65535")
        self._server = _Server((config.host, config.port), self._backend, config.log_requests)
        self._thread: threading.Thread | None = None
        host, port = self._server.server_address[:2]
        self.host, self.port = str(host), int(port)
        self.url = f"http://{self.host}:{self.port}"

    def start(self) -> Emulator:
        """Serve in a daemon thread; return ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="keyform-emulator", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until Ctrl-C or SIGTERM, then close the socket cleanly."""
        restore = _raise_on_sigterm()
        try:
            self._server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            restore()
            self._close()

    def stop(self) -> None:
        """Stop serving, close the listening socket and every client connection. Idempotent."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._close()

    def _close(self) -> None:
        self._server.server_close()
        self._server.close_connections()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _raise_on_sigterm() -> Callable[[], object]:
    """Make SIGTERM raise ``KeyboardInterrupt`` (main thread only); return a function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)
