"""A raw socket server on 127.0.0.1 (plain or TLS) that answers each request with scripted bytes,
for the transport tests: what no well-behaved HTTP server would send."""

from __future__ import annotations

import contextlib
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
        self._open: list[socket.socket] = []  # accepted connections still being served
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.listener.getsockname()[1]}"

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        with self.listener:  # each thread closes only its own socket (see `close`)
            while True:
                try:
                    conn, _ = self.listener.accept()
                except ssl.SSLError:
                    continue  # a client that refused the certificate
                except OSError:
                    return
                serving = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                with self._lock:
                    self.connections += 1
                    self._open.append(conn)
                    self._threads.append(serving)
                serving.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._exchange(conn)
        finally:
            with self._lock:
                self._open.remove(conn)
            conn.close()

    def _exchange(self, conn: socket.socket) -> None:
        buffer = b""
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
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
            with self._lock:
                self.requests.append(request)
                number = len(self.requests)
            reply = self.answer(number, request)
            if reply is None:
                return
            try:
                conn.sendall(reply)
            except OSError:
                return  # the client left, or `close` shut the connection during a slow answer
            if self.close_after:
                return

    def idle(self) -> bool:
        """No connection open on the server's side (each one it accepted has been closed)."""
        with self._lock:
            return not self._open

    def threads_alive(self) -> int:
        with self._lock:
            return sum(t.is_alive() for t in self._threads)

    def close(self) -> None:
        """Stop: wake the accepting and serving threads with `shutdown` and wait for them to close
        their own sockets. Closing a socket here instead left the thread blocked in `accept` on it
        serving its port after the test, and a thread about to use a closed descriptor's number
        could use whatever socket (an emulator's, say) was given that number next."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # a blocked accept returns (EINVAL)
        self._threads[0].join(5)
        with self._lock:
            conns, threads = list(self._open), list(self._threads[1:])
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
