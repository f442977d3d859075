"""`keyform.backends.holders`: finding who holds a lock's file or TCP socket on this host (stop 38).
A real socket pair on the loopback, not a canned /proc table: the kernel's own hex format is read."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from keyform.backends.base import LockInfo
from keyform.backends.holders import Holder, connection_name, gone, holding, tcp_socket


@pytest.mark.parametrize(("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_a_tcp_connection_is_found_by_its_client_end_and_its_holders_named(family: int, host: str) -> None:
    try:
        server = socket.socket(family)
        server.bind((host, 0))
    except OSError:
        pytest.skip(f"no {host} here")
    with server:
        server.listen(1)
        client = socket.create_connection((host, server.getsockname()[1]))
        with client, server.accept()[0]:
            local_addr, local_port = client.getsockname()[:2]
            link = tcp_socket(local_addr, local_port, server.getsockname()[1])
            assert link == os.readlink(f"/proc/self/fd/{client.fileno()}")
            assert [h.pid for h in holding(link) or []] == [os.getpid()]
            # another port, or the server's end asked as a client's: not this connection
            assert tcp_socket(local_addr, local_port, server.getsockname()[1] + 1) is None
            assert tcp_socket("not an address", local_port, 1) is None


def test_a_file_is_found_by_its_real_path(tmp_path: Path) -> None:
    path = tmp_path / "held"
    with open(path, "w"):
        assert os.getpid() in [h.pid for h in holding(os.path.realpath(path)) or []]
    assert holding(os.path.realpath(path)) == []


def test_gone_only_when_no_holder_is_that_pid_in_its_own_namespace() -> None:
    dead = LockInfo.new("apply")
    dead = LockInfo(**{**dead.__dict__, "pid": 2**22 + 7})  # above pid_max: never alive here
    helper = Holder(4321, "sh", (4321,))
    assert gone(dead, [helper]) == (True, " (pid 4321: sh)")
    assert gone(dead, [helper, Holder(9999, "keyform", (9999, dead.pid))]) == (False, "")  # a container's keyform
    assert gone(dead, None) == (False, "") and gone(dead, []) == (False, "")  # cannot see: not known
    assert gone(LockInfo.new("apply"), [helper]) == (False, "")  # this process: alive


def test_one_local_end_to_one_port_at_two_addresses_is_not_known() -> None:
    """Found by the second review (stop 38): Linux may give one local port to connections to two
    servers on the same port; the first row found was taken, another process's socket."""
    first = socket.create_server(("127.0.0.1", 0))
    port = first.getsockname()[1]
    try:
        second = socket.create_server(("127.0.0.2", port))
    except OSError:
        pytest.skip("127.0.0.2 not usable here")
    clients: list[socket.socket] = []
    with first, second:
        for server in (first, second):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            c.bind(("127.0.0.1", clients[0].getsockname()[1] if clients else 0))
            c.connect((server.getsockname()[0], port))
            clients.append(c)
        try:
            local_port = clients[0].getsockname()[1]
            assert clients[1].getsockname()[1] == local_port
            assert tcp_socket("127.0.0.1", local_port, port) is None
        finally:
            for c in clients:
                c.close()


def test_a_named_connection_is_told_from_a_proxys_sharing_its_local_end() -> None:
    """Found by the third review (stop 38): keyform → proxy and proxy → server may share one local
    address and port; naming only that end let the proxy's connection pass for keyform's, and the
    proxy was named as the program holding the lock. The name covers both ends now."""
    proxy, server = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    clients: list[socket.socket] = []
    with proxy, server:
        for listener in (proxy, server):  # the same local end to both
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            c.bind(("127.0.0.1", clients[0].getsockname()[1] if clients else 0))
            c.connect(listener.getsockname())
            clients.append(c)
        try:
            mine, proxys = clients
            port = mine.getsockname()[1]
            assert proxys.getsockname()[1] == port
            name = connection_name("127.0.0.1", port, "127.0.0.1", proxy.getsockname()[1], "lock-1")
            # the server sees the proxy's connection (to its port): not the named one
            assert tcp_socket("127.0.0.1", port, server.getsockname()[1], name=name, lock_id="lock-1") is None
            assert tcp_socket("127.0.0.1", port, proxy.getsockname()[1], name=name, lock_id="lock-1") == \
                os.readlink(f"/proc/self/fd/{mine.fileno()}")
            assert tcp_socket("127.0.0.1", port, proxy.getsockname()[1], name=name, lock_id="lock-2") is None
        finally:
            for c in clients:
                c.close()
