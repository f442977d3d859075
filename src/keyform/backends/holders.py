"""Who holds a state lock on this host, as /proc shows it: for the lock messages and `force-unlock`.

A sink helper holds the lock too (`keyform.inherited`): the local backend's lock file, the postgres
backend's lock session socket. When the keyform that took a lock is gone, its lock can still be
held by such a program, and the message should say so, and name it. But "gone" must be proved: a
keyform in another container of this host may record the same host name and a pid this process
cannot see. So a holder is gone only when its pid is not alive here *and* the processes holding the
lock's file or socket are visible and none of them is that pid in its own pid namespace (`NSpid`).
Where any of that cannot be seen (not Linux, no /proc, another network namespace, a unix-domain
socket), the answer is "not known to be gone".
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import sys

from keyform.backends.base import LockInfo, holder_alive
from keyform.records import record


@record
class Holder:
    """A process that has the lock's file or socket open: its pid here, its name, and its pid in
    each pid namespace it is in (`NSpid`: the last is what a process in a container sees itself as)."""

    pid: int
    name: str
    nspids: tuple[int, ...]


def holding(link: str, limit: int = 16) -> list[Holder] | None:
    """The processes with a descriptor whose link text is `link` (a file's real path, or
    `socket:[INODE]`); None where that cannot be seen (no /proc). Compares link texts (`readlink`,
    never `stat`, which would follow a descriptor into a hung network mount)."""
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return None
    found: list[Holder] = []
    for pid in pids:
        if not any(_link(f"/proc/{pid}/fd/{fd}") == link for fd in _listdir(f"/proc/{pid}/fd")):
            continue
        name = "?"
        nspids: tuple[int, ...] = (int(pid),)
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
                name = "".join(c if c.isprintable() else "?" for c in fh.read().strip())
            with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith("NSpid:"):
                        nspids = tuple(int(n) for n in line.split()[1:])
        found.append(Holder(int(pid), name, nspids))
        if len(found) >= limit:
            break
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:  # gone, or not ours to read
        return []


def _link(path: str) -> str | None:
    """A descriptor's link text; None for one closed since it was listed (a busy process's
    descriptors come and go: that must not hide the process, only that descriptor)."""
    try:
        return os.readlink(path)
    except OSError:
        return None


def gone(holder: LockInfo, holders: list[Holder] | None) -> tuple[bool, str]:
    """Whether the keyform that recorded `holder` is known to be gone while `holders` (the
    processes holding its lock's file or socket) keep the lock, and those named (` (pid 4321:
    sleep)`). Gone only when we can tell: it ran on this host, its pid is not alive here, and the
    holders are visible and none of them is that pid in its own pid namespace (a keyform in a
    container on this host records its pid as the container sees it)."""
    if holder_alive(holder):
        return False, ""
    if not holders or any(h.nspids and h.nspids[-1] == holder.pid for h in holders):
        return False, ""
    return True, " (" + ", ".join(f"pid {h.pid}: {h.name}" for h in holders[:5]) + ")"


def connection_name(local_addr: str, local_port: int, remote_addr: str, remote_port: int, lock_id: str) -> str:
    """What a lock session calls itself (postgres `application_name`): a digest of its TCP
    connection as its own keyform sees it, both ends, and of the lock ID. Another process can tell
    that connection from a proxy's that happens to share its local end, and the name shows no
    address to roles the server hides client addresses from."""
    text = f"{_canon(local_addr)} {local_port} {_canon(remote_addr)} {remote_port} {lock_id}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def tcp_socket(local_addr: str, local_port: int, remote_port: int, *, name: str | None = None,
               lock_id: str = "") -> str | None:
    """`socket:[INODE]` of the TCP connection in this network namespace from `local_addr`:
    `local_port` to port `remote_port`, as `/proc/self/net/tcp` and `tcp6` list it, and, given
    `name`, whose `connection_name` with `lock_id` is `name`. None when there is no such connection
    here (another network namespace, a NAT between, no /proc), or more than one (the same local
    end to that port at two addresses: which one is not known)."""
    try:
        wanted = ipaddress.ip_address(local_addr)
    except ValueError:
        return None
    found: set[str] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(table, encoding="ascii", errors="replace") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10:
                continue
            local, remote, inode = fields[1], fields[2], fields[9]
            try:
                addr, port = _endpoint(local)
                raddr, rport = _endpoint(remote)
            except ValueError:
                continue
            if port != local_port or rport != remote_port or inode == "0" or not _same(addr, wanted):
                continue
            if name is None or connection_name(str(addr), port, str(raddr), rport, lock_id) == name:
                found.add(f"socket:[{inode}]")
    return found.pop() if len(found) == 1 else None


def _endpoint(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """`0100007F:1F90` (the kernel's hex: the address in host byte order, 32 bits at a time)."""
    hex_addr, hex_port = text.split(":")
    raw = bytes.fromhex(hex_addr)
    if len(raw) not in (4, 16):
        raise ValueError(text)
    ordered = b"".join(int.from_bytes(raw[i:i + 4], "big").to_bytes(4, sys.byteorder)
                       for i in range(0, len(raw), 4))
    return ipaddress.ip_address(ordered), int(hex_port, 16)


def _canon(addr: str) -> str:
    """An address as text, an IPv4-mapped IPv6 one as its IPv4 address (`::ffff:127.0.0.1`:
    `127.0.0.1`); text that is no address, as it is."""
    try:
        return str(_plain(ipaddress.ip_address(addr.split("%", 1)[0])))
    except ValueError:
        return addr


def _same(a: ipaddress.IPv4Address | ipaddress.IPv6Address,
          b: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Equal, counting an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as its IPv4 address."""
    return _plain(a) == _plain(b)


def _plain(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
