"""A throwaway PostgreSQL cluster for the tests: Debian's `postgresql-15` binaries (`initdb`, `pg_ctl`,
`postgres`) run in a temporary directory, listening on a free 127.0.0.1 port and on a unix socket in
that directory. Password authentication over TCP (scram-sha-256), so the DSNs the tests use carry a
password, which must never show up in keyform's output.

initdb refuses to run as root: when the tests run as root, the cluster runs as an unprivileged user
(`postgres` if the Debian package created it, else `nobody`), owning the temporary directory.

A missing binary is a failure with the install command, never a skip (`.ci/run` installs the package).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_BIN = Path(os.environ.get("KEYFORM_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "keyform"
# a canary: tests assert it never appears in keyform's output
PASSWORD = "pg-canary-pw-7c41e9"
INSTALL_HINT = "apt-get install -y postgresql-15"


class ClusterError(RuntimeError):
    pass


def _runas() -> dict[str, Any]:
    """subprocess arguments that drop root to an unprivileged user ({} when not root)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    raise ClusterError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    root: Path
    port: int
    proc_args: dict[str, Any]
    options: str = ""  # the server's command-line options (`pg_ctl -o`): `resume` starts it with them again

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def dsn(self, dbname: str = "postgres", *, password: str = PASSWORD) -> str:
        """A libpq URI with the password in it (as users will write theirs)."""
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> Any:
        import psycopg

        return psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=10)

    def create_database(self, prefix: str = "kf") -> str:
        """A new empty database (no keyform tables yet); returns its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def log_tail(self, n: int = 4000) -> str:
        try:
            return (self.root / "postgres.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def halt(self) -> None:
        """Stop the server as its administrator would (`pg_ctl -m fast`: every session is ended at once,
        and what was committed is kept), keeping its data: `resume` starts it again on the same port.
        (Not `-m immediate`: with this cluster's `synchronous_commit=off`, a crash may lose the last
        commits, which a production server, committing synchronously, does not.)"""
        res = subprocess.run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                             capture_output=True, text=True, check=False, timeout=60, **self.proc_args)
        if res.returncode != 0:
            raise ClusterError(f"pg_ctl stop failed:\n{res.stdout}{res.stderr}")

    def resume(self) -> None:
        """Start the server `halt` stopped, on the same port, and wait until it takes connections."""
        res = subprocess.run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "postgres.log"),
                              "-w", "-t", "60", "-o", self.options, "start"],
                             capture_output=True, text=True, check=False, timeout=90, **self.proc_args)
        if res.returncode != 0:
            raise ClusterError(f"PostgreSQL did not start again:\n{res.stdout}{res.stderr}{self.log_tail()}")
        _wait_ready(self)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, check=False, timeout=60, **self.proc_args)
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> PgCluster:
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not os.access(PG_BIN / tool, os.X_OK):
            raise ClusterError(f"{PG_BIN / tool} not found: the PostgreSQL tests need Debian's postgresql-15 "
                               f"binaries ({INSTALL_HINT}; .ci/run installs it)")
    proc_args = _runas()
    # /tmp: reachable by the unprivileged user whatever TMPDIR is, and short enough for the socket path
    root = Path(tempfile.mkdtemp(prefix="keyform-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
    try:
        os.chmod(root, 0o700)
        if proc_args:
            os.chown(root, proc_args["user"], proc_args["group"])
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if proc_args:
            os.chown(pwfile, proc_args["user"], proc_args["group"])
        (root / "sock").mkdir(mode=0o700)
        if proc_args:
            os.chown(root / "sock", proc_args["user"], proc_args["group"])
        _run([str(PG_BIN / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER, "--pwfile", str(pwfile),
              "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"],
             proc_args)
        pwfile.unlink()
        last = ""
        for _ in range(5):  # the port may be taken between choosing and binding it: try another
            port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root / 'sock'} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                       "-c shared_buffers=16MB")
            res = subprocess.run([str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "postgres.log"),
                                  "-w", "-t", "60", "-o", options, "start"],
                                 capture_output=True, text=True, check=False, timeout=90, **proc_args)
            if res.returncode == 0:
                cluster = PgCluster(root, port, proc_args, options)
                _wait_ready(cluster)
                return cluster
            last = res.stdout + res.stderr + PgCluster(root, port, proc_args).log_tail()
        raise ClusterError(f"PostgreSQL did not start:\n{last}")
    except BaseException:
        with contextlib.suppress(Exception):
            PgCluster(root, 0, proc_args).stop()
        shutil.rmtree(root, ignore_errors=True)
        raise


def _run(argv: list[str], proc_args: dict[str, Any]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120, cwd="/", **proc_args)
    if res.returncode != 0:
        raise ClusterError(f"{argv[0]} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")


def _wait_ready(cluster: PgCluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with cluster.connect() as conn:
                conn.execute("SELECT 1")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def running_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
