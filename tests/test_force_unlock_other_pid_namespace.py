"""Found by an adversarial review (stop 37): `force-unlock` breaks the lock of a LIVE keyform whose recorded pid is not this pid
namespace's (a container in the same pod: shared hostname and state volume, own pid namespace).
Before bd28b9b it refused ('is gone, but another process on this host holds its lock'); now it
deletes the lock file under a running apply, and a second keyform can take the state at once."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.emulator import EmulatorProcess
from harness.project import Project


def _absent_pid() -> int:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    live = {int(d) for d in os.listdir("/proc") if d.isdigit()}
    while True:
        p = random.randint(max(300, pid_max // 2), pid_max - 10)
        if not any(q in live for q in range(p - 5, p + 5)):
            return p


NEEDS_UNSHARE = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")


@contextmanager
def _apply_in_another_pid_namespace(tmp_path: Path, pg_dsn: str | None = None) -> Iterator[tuple[Project, int]]:
    """A live `keyform apply` in a pid namespace of its own, its sink write blocked until the block
    ends: (its project, the pid it records, which no process of ours has). State in `pg_dsn` if given."""
    emulator = EmulatorProcess()
    store, release = tmp_path / "store", tmp_path / "release"
    store.mkdir()
    script = tmp_path / "sink.sh"  # the apply's sink write blocks until the test lets it go
    script.write_text(f'cat > "{store}/$KEYFORM_SINK_NAME"; touch "{store}/.writing"\n'
                      f'while [ ! -e "{release}" ]; do sleep 0.1; done\n')
    project = Project(tmp_path / "proj", emulator.url, env={"KF_TEST_DSN": pg_dsn} if pg_dsn else None)
    project.exec_vault(f'sh, "{script}"', store,
                       extra="state: {backend: postgres, dsn: {env: KF_TEST_DSN}}" if pg_dsn else "")
    target = _absent_pid()
    inner = (f"echo {target - 1} > /proc/sys/kernel/ns_last_pid; "
             f"{shlex.join(project.argv('apply', '--auto-approve'))}; :")
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", inner],
                            cwd=project.root, env=project.process_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (store / ".writing").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert (store / ".writing").exists(), proc.communicate(timeout=10)
        yield project, target
    finally:
        release.touch()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        emulator.stop()


@NEEDS_UNSHARE
def test_force_unlock_refuses_a_live_keyform_in_another_pid_namespace(tmp_path: Path) -> None:
    with _apply_in_another_pid_namespace(tmp_path) as (project, target):
        record = json.loads(project.lock_path.read_text())
        assert record["pid"] == target  # its pid in its own namespace: no process of ours has it
        forced = project.run_process("force-unlock", record["id"], "--force")
        assert forced.exit_code != 0 and "refusing" in forced.output, (
            f"force-unlock broke the lock of a running apply: exit {forced.exit_code}; "
            f"lock file exists: {project.lock_path.exists()}; {forced.output[-600:]}")


@NEEDS_UNSHARE
def test_postgres_does_not_call_a_live_keyform_in_another_pid_namespace_gone(tmp_path: Path, pg_dsn: str) -> None:
    """Found by an adversarial review (stop 38) of the postgres lock's inheritance: the first
version said such a keyform "is not running on this host any more" and advised ending its session
(`pg_terminate_backend`), which would cut a running apply's lock from under it. Now "gone" needs
the processes holding the lock session's socket to be visible, and none of them that pid."""
    with _apply_in_another_pid_namespace(tmp_path, pg_dsn) as (project, target):
        locked = project.run_process("plan")
        assert locked.exit_code == 1 and f"locked by pid {target} " in locked.output, locked.tail()
        assert "has exited" not in locked.output and "pg_terminate_backend" not in locked.output, locked.tail()
        lock_id = re.search(r"lock ID ([0-9a-f-]{36})", locked.output)
        assert lock_id is not None, locked.tail()
        forced = project.run_process("force-unlock", lock_id[1], "--force")
        assert forced.exit_code == 1 and "still open" in forced.output, forced.tail()
        assert "has exited" not in forced.output, forced.tail()


@contextmanager
def _tcp_forwarder(port: int) -> Iterator[int]:
    """A plain TCP proxy on 127.0.0.1 (a pooler's or docker-proxy's place) to `port`: its port.
    Stopped as `tests/rawserver.py` stops: `shutdown` wakes the accepting thread, which closes its
    own socket; closed from here instead, the thread stays blocked in `accept` on a descriptor
    number the next socket of this process may get (a signal restarts the call on that socket)."""
    listener = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def pump(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        with listener:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                upstream = socket.create_connection(("127.0.0.1", port))
                conns.extend((client, upstream))
                for a, b in ((client, upstream), (upstream, client)):
                    threads.append(threading.Thread(target=pump, args=(a, b), daemon=True))
                    threads[-1].start()

    accepting = threading.Thread(target=serve, daemon=True)
    accepting.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # the blocked accept returns
        accepting.join(5)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
        for c in conns:
            c.close()
        assert not accepting.is_alive() and not any(t.is_alive() for t in threads)


@NEEDS_UNSHARE
def test_postgres_through_a_proxy_on_this_host_does_not_call_a_live_keyform_gone(tmp_path: Path,
                                                                                 pg_dsn: str) -> None:
    """Found by the second review (stop 38): through a proxy on this host, the server sees the
proxy's connection; its client end was traced to the proxy's process, which is "none of them that
pid", so a live keyform in another pid namespace was called gone again. The lock session now names
its own client end (`application_name`), and only that end is traced."""
    m = re.fullmatch(r"(postgresql://[^@]+@127\.0\.0\.1:)(\d+)(/.*)", pg_dsn)
    assert m is not None, pg_dsn
    with _tcp_forwarder(int(m[2])) as port, \
            _apply_in_another_pid_namespace(tmp_path, f"{m[1]}{port}{m[3]}") as (project, target):
        locked = project.run_process("plan")
        assert locked.exit_code == 1 and f"locked by pid {target} " in locked.output, locked.tail()
        assert "has exited" not in locked.output and "pg_terminate_backend" not in locked.output, locked.tail()
