"""The transport tests' raw server (`tests/rawserver.py`) leaves nothing behind when it is closed.

A CI run failed in `test_readme` with a reply only a raw server writes (`{"n": 1}`), from the
emulator's port. The raw server used to close its listening socket while its accepting thread was
blocked in `accept` on it: the thread stayed blocked, on the old socket, under a descriptor number
the next socket (an emulator's) was given. Any signal handler installed with SA_RESTART — glibc's
SIGSETXID, sent to every thread when one calls `setgid` — restarts the blocked call with the same
number: the thread then accepted the emulator's connections and answered them."""

from __future__ import annotations

import os
import socket
import time

import pytest

from tests.rawserver import RawServer, ok


def test_a_closed_raw_server_answers_no_connection_made_to_the_socket_that_reuses_its_descriptor() -> None:
    server = RawServer(lambda n, req: ok(b'{"n": %d}' % n))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as warm:
        warm.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert warm.recv(1000).endswith(b'{"n": 1}')
    time.sleep(0.05)  # the accepting thread is blocked in accept again
    server.close()
    with socket.create_server(("127.0.0.1", 0)) as fresh:
        os.setgid(os.getgid())  # glibc signals every thread (SIGSETXID, SA_RESTART): blocked calls restart
        time.sleep(0.05)
        with socket.create_connection(fresh.getsockname(), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            fresh.settimeout(5)
            conn, _ = fresh.accept()  # the owner gets its connection...
            client.settimeout(0.2)
            with conn, pytest.raises(TimeoutError):
                client.recv(100)  # ...and nobody answered on it


def test_close_waits_for_every_thread_of_the_server() -> None:
    server = RawServer(lambda n, req: ok())
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # a kept-alive connection
    idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(1000).startswith(b"HTTP/1.1 200")
    server.close()
    assert server.threads_alive() == 0  # its own threads (the process's count moves with other tests')
    idle.settimeout(5)
    assert idle.recv(100) == b""  # the server's side was shut down
    idle.close()
