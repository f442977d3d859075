"""A raw socket server on 127.0.0.1 (plain or TLS) that answers each request with scripted bytes,
for the transport tests: what no well-behaved HTTP server would send."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable

Answer = Callable[[int, bytes], "bytes | None"]  # (request number, request bytes) -> reply (None: close)


def ok(body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


class RawServer:
    """Accepts connections; reads each request (head and Content-Length body) and writes what
    `answer` returns for it, then keeps the connection unless told to close it."""

    def __init__(self, answer: Answer, *, close_after: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.close_after = close_after
        listener = socket.create_server(("127.0.0.1", 0))
        self.listener = tls.wrap_socket(listener, server_side=True) if tls is not None else listener
        self.scheme = "https" if tls is not None else "http"
        self.connections = 0
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.listener.getsockname()[1]}"

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except ssl.SSLError:
                continue  # a client that refused the certificate
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                with self._lock:
                    self.requests.append(request)
                    number = len(self.requests)
                reply = self.answer(number, request)
                if reply is None:
                    return
                conn.sendall(reply)
                if self.close_after:
                    return

    def close(self) -> None:
        self.listener.close()
