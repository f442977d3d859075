"""The `postgres` state backend: the state, its lock and the apply journal in a PostgreSQL database,
shared by every runner that can reach it (`pip install 'keyform[postgres]'`, psycopg 3).

Tables (created on first use, versioned in `keyform_schema_version`, see MIGRATIONS), one row set
per keyform *workspace* (`state.workspace`), so one database can hold many states:

- `keyform_states`  the State as JSON text (`State.dumps()`, the same document as the local file) and
  its `serial`. A save is `UPDATE ... WHERE workspace = $1 AND serial = <the serial this backend
  read>`: a compare-and-swap, so a lost update is impossible.
- `keyform_locks`   who holds the lock: lock ID, pid, host, operation, time, and the holder's
  database session (backend pid). For messages and `force-unlock`; it is not the lock itself. Read
  within MAX_LOCK_BYTES (64 KiB, measured in the database), as the state and journal are within theirs.
- `keyform_journal` the apply journal, one row per record. Each append is its own committed INSERT,
  so it is durable when `append` returns and any machine can recover an interrupted apply.

The lock itself is a session-level advisory lock (`pg_advisory_lock` on a hash of the workspace)
held by a connection of its own: it lasts exactly as long as that database session, so it is
released when keyform releases it, exits, or dies (kill -9 closes the socket; the server ends the
session), unless a sink helper holds the socket too (below). A live session's lock cannot be taken
away: `force_unlock` clears a stale lock record, and says so when the holder's session is still open.

Every sink helper keyform starts while it holds the lock (an `exec` sink's command, `sops`) holds
that session's socket too (`keyform.inherited`), as it holds the local backend's lock file: a socket
is closed only when its last holder closes it, so a helper that outlives a `kill -9`ed keyform keeps
the session, and the lock, until it ends (so does an apply abandoned at a second Ctrl-C:
`backends.base.hold`). The next command waits for it (`--lock-timeout`) instead of racing its late
write, and names it when it can tell (`_gone`). The socket is an authenticated session a helper
could send SQL on; that grants nothing new, as sink helpers run as keyform's user with its
environment, and can read the DSN wherever it comes from (a variable or a file).

The DSN is a secret (it may hold a password): it never appears in a message; `describe()` shows the
workspace, database, host and port only, and not even those when libpq split a URI inside its
password (a `/` or `@` left unencoded: they would hold pieces of it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote

from keyform import __version__, inherited, journal
from keyform.backends import holders
from keyform.backends.base import LockInfo, describe_holder, hold, holder_alive
from keyform.backends.local import MAX_STATE_BYTES
from keyform.errors import Diagnostic, KeyformError, LockError, LockLostError, SourceLoc, StateError
from keyform.fsio import size_text
from keyform.records import record
from keyform.state import State, parse_state

INSTALL_HINT = "pip install 'keyform[postgres]'"

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # the optional extra is not installed
    raise KeyformError(f"the postgres state backend needs psycopg 3, which is not installed: {INSTALL_HINT}") \
        from None

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresBackend"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10  # seconds, unless the DSN sets connect_timeout
# PostgreSQL's largest `lock_timeout` (~24.8 days, INT_MAX ms): a longer --lock-timeout waits in turns
MAX_LOCK_TIMEOUT_MS = 2**31 - 1

# The schema, as migrations: version N is MIGRATIONS[N - 1]. A released migration is never edited;
# a later keyform appends one (ALTER TABLE ...) and every database is brought up to date on first use.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1
        """CREATE TABLE keyform_states (
               workspace  text PRIMARY KEY,
               serial     bigint NOT NULL,
               lineage    text NOT NULL,
               state      text NOT NULL,
               updated_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE keyform_locks (
               workspace   text PRIMARY KEY,
               lock_id     text NOT NULL,
               pid         integer NOT NULL,
               host        text NOT NULL,
               operation   text NOT NULL,
               created_at  text NOT NULL,
               version     text NOT NULL,
               backend_pid integer NOT NULL)""",
        """CREATE TABLE keyform_journal (
               workspace text NOT NULL,
               seq       bigint GENERATED ALWAYS AS IDENTITY,
               record    text NOT NULL,
               PRIMARY KEY (workspace, seq))""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS keyform_schema_version (
    version         integer PRIMARY KEY,
    keyform_version text NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now())"""

_LOCK_COLUMNS = "lock_id, pid, host, operation, created_at, version, backend_pid"
# A lock record holds a holder's details (a lock ID, a host name, an operation, a time, a version):
# a few hundred bytes. It is measured in the database as the state is (below) and fetched only within
# this cap; a larger row (a damaged or hostile one in a shared database) is answered with its size alone.
MAX_LOCK_BYTES = 64 * 1024
_LOCK_QUERY = """SELECT CASE WHEN bytes <= %(cap)s THEN lock_id END, pid, CASE WHEN bytes <= %(cap)s THEN host END,
    CASE WHEN bytes <= %(cap)s THEN operation END, CASE WHEN bytes <= %(cap)s THEN created_at END,
    CASE WHEN bytes <= %(cap)s THEN version END, backend_pid, bytes
    FROM (SELECT lock_id, pid, host, operation, created_at, version, backend_pid,
                 octet_length(lock_id) + octet_length(host) + octet_length(operation) + octet_length(created_at)
                 + octet_length(version) AS bytes
          FROM keyform_locks WHERE workspace = %(ws)s) l"""

# Reads of what may be large, each measured in the database first (octet_length, which does not even
# decompress a value) and fetched only within MAX_STATE_BYTES: a row (or journal) larger than that
# is answered with its size alone. Parameters: ws (the workspace), cap (MAX_STATE_BYTES).
_STATE_QUERY = """SELECT serial, CASE WHEN bytes <= %(cap)s THEN state END, CASE WHEN bytes <= %(cap)s THEN lineage END,
    bytes FROM (SELECT serial, state, lineage, octet_length(state) + octet_length(lineage) AS bytes
                FROM keyform_states WHERE workspace = %(ws)s) s"""
_OTHER_STATES_QUERY = """SELECT workspace, CASE WHEN bytes <= %(cap)s THEN state END, bytes
    FROM (SELECT workspace, state, octet_length(state) AS bytes FROM keyform_states WHERE workspace <> %(ws)s) s
    ORDER BY workspace"""
# the journal as a whole (a byte per record for its separator, as in the local journal file), in
# one statement (one snapshot): its records within the cap, else one row (NULL, NULL, size)
_JOURNAL_QUERY = """WITH size AS (SELECT count(*) + coalesce(sum(octet_length(record)), 0) AS bytes
                      FROM keyform_journal WHERE workspace = %(ws)s)
    SELECT NULL::bigint, NULL::text, bytes FROM size WHERE bytes > %(cap)s
    UNION ALL
    SELECT j.seq, j.record, size.bytes FROM keyform_journal j, size WHERE j.workspace = %(ws)s AND size.bytes <= %(cap)s
    ORDER BY 1"""


def _advisory_key(label: bytes) -> int:
    """A signed 64-bit advisory lock key."""
    return int.from_bytes(hashlib.sha256(label).digest()[:8], "big", signed=True)


_MIGRATION_KEY = _advisory_key(b"keyform schema migration")


@record(frozen=False)
class _Held:
    info: LockInfo
    conn: psycopg.Connection[Any]
    session: int  # the lock connection's backend pid
    fd: int  # its socket, held by every sink helper started meanwhile (`keyform.inherited`)


# True while session %s holds the advisory lock (classid %s, objid %s) in this database: every write
# made under a lock is conditional on it, so a holder whose lock session ended cannot write any more.
_HOLDS_LOCK = (
    "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = %s "
    "AND classid = %s::bigint::oid AND objid = %s::bigint::oid "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))")


class PostgresBackend:
    """One keyform workspace's state in a PostgreSQL database. Thread-safe within one process."""

    no_state = "there is no state yet"

    def __init__(self, dsn: str, workspace: str = "default", *, dsn_source: str = "state.dsn",
                 dsn_origin: str = "", dsn_loc: SourceLoc | None = None) -> None:
        """`dsn_source` names the setting in messages, `dsn_loc` the manifest line that set it, and
        `dsn_origin` where its value was read (`environment variable KEYFORM_PG_DSN`): never the value."""
        self.workspace = workspace
        self._journal_seqs: list[int] = []  # the row seq of each record of the last read_journal()
        self._dsn = dsn
        self._dsn_source = dsn_source
        userinfo = _uri_userinfo(dsn)
        self._encode_hint = "" if userinfo is None or not userinfo.unencoded else _ENCODE_HINT
        self._secrets = _secret_strings(dsn) + (_password_pieces(userinfo.password) if userinfo else [])
        try:
            params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
        except psycopg.Error:
            # libpq's message quotes the string, which may hold the password: say only what is wrong
            held = f"{dsn_origin} does not hold" if dsn_origin else "not"
            raise StateError([Diagnostic(f"{dsn_source}: {held} a valid PostgreSQL connection string (libpq "
                                         f"key=value pairs or a postgresql:// URI){self._encode_hint}",
                                         dsn_loc)]) from None
        self._params = params
        self._secrets = sorted({*self._secrets, *_secret_strings(params.get("password", ""))}, key=len, reverse=True)
        # libpq ends a URI's user information at its first `@` or `/`: a password holding one is split
        # there, and its pieces become the host, port or database libpq (and its messages) name
        self._misread = bool(userinfo and userinfo.password
                             and unquote(userinfo.password) != params.get("password", ""))
        self._lock_key = _advisory_key(b"keyform state lock\0" + workspace.encode("utf-8"))
        self._mutex = threading.RLock()  # guards the data connection and the fields below
        self._conn: psycopg.Connection[Any] | None = None
        self._loaded = False  # the last load() succeeded (for messages)
        self._seen: int | None = None  # the serial load()/save() last saw (None: no state row, or not read)
        self._held: dict[str, _Held] = {}  # lock ID -> the lock session holding it
        self._open_journals = 0

    # -- naming -----------------------------------------------------------------------------------

    def describe(self) -> str:
        """`postgres workspace "prod" (database keyform on db.example.com:5432)`: never the DSN. When
        libpq split a URI inside its password (`_misread`), neither the host nor the database it read."""
        if self._misread:
            return f'postgres workspace "{self.workspace}" (the database {self._dsn_source} names)'
        host = self._params.get("host") or self._params.get("hostaddr") or ""
        port = self._params.get("port") or "5432"
        if host and not host.startswith("/"):
            where = f"{host}:{port}"
        else:
            where = f"the local socket {host}".rstrip()
        dbname = self._params.get("dbname") or self._params.get("user") or "(default)"
        shown = f'postgres workspace "{self.workspace}" (database {dbname} on {where})'
        for secret in self._secrets:
            shown = shown.replace(secret, "***")
        return shown

    def _scrub(self, text: str) -> str:
        """A driver message made safe to show: no DSN, no password, first line only."""
        text = text.strip().splitlines()[0] if text.strip() else "unknown error"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)

    def _too_large(self, size: int, workspace: str, table: str) -> StateError:
        """The one message for a state or journal larger than keyform reads (MAX_STATE_BYTES, as
        the local backend's files): it was measured in the database, not fetched."""
        what = "state" if table == "keyform_states" else "apply journal"
        name = self.describe().replace(f'"{self.workspace}"', json.dumps(workspace), 1)
        return StateError(f"{name}: the {what} is larger than {size_text(MAX_STATE_BYTES)} ({size} bytes), more "
                          f"than any keyform {what}; keyform will not read it (its rows in {table}, workspace "
                          f"{workspace!r})")

    # -- connections ------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self._params:
            options["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in self._params:
            options["application_name"] = "keyform"
        try:
            return psycopg.connect(self._dsn, **options)
        except psycopg.Error as exc:
            # libpq's message names the host and database it read: pieces of the password, if misread
            why = "" if self._misread else f": {self._scrub(str(exc))}"
            raise StateError(f"{self.describe()}: cannot connect to the database{why}{self._encode_hint}") \
                from None

    @contextmanager
    def _db(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """The data connection (opened and migrated on first use); driver errors become StateErrors."""
        with self._mutex:
            if self._conn is None or self._conn.closed:
                conn = self._connect()
                try:
                    self._migrate(conn)
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            conn = self._conn
            try:
                yield conn
            except psycopg.Error as exc:
                if conn.broken:  # reconnect next time (a lock, if held, lives on its own connection)
                    conn.close()
                    self._conn = None
                raise StateError(f"{self.describe()}: cannot {what}: {self._scrub(str(exc))}") from None

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create or upgrade keyform's tables to SCHEMA_VERSION; refuse a newer schema."""
        try:
            try:
                current = _schema_version(conn)
            except pg_errors.UndefinedTable:
                current = 0
            if current == SCHEMA_VERSION:
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_KEY,))  # one migrator at a time
                conn.execute(_VERSION_TABLE)
                current = _schema_version(conn)
                if current > SCHEMA_VERSION:
                    raise StateError(f"{self.describe()}: the database holds keyform schema version {current}, "
                                     f"newer than this keyform's ({SCHEMA_VERSION}); upgrade keyform to use it")
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[version - 1]:
                        conn.execute(statement)
                    conn.execute("INSERT INTO keyform_schema_version (version, keyform_version) VALUES (%s, %s)",
                                 (version, __version__))
        except psycopg.Error as exc:
            raise StateError(f"{self.describe()}: cannot create or upgrade keyform's tables: "
                             f"{self._scrub(str(exc))}") from None

    def close(self) -> None:
        """Release any lock still held, unless a sink helper started under it still runs (it holds
        the lock's session too: `backends.base.hold`), and close the connections."""
        with self._mutex:
            for held in list(self._held.values()) if not inherited.left_running() else []:
                self.release_lock(held.info)
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- state ------------------------------------------------------------------------------------

    def load(self) -> State | None:
        with self._mutex:
            self._loaded = False
            self._seen = None  # until it parses: a refused state must not be overwritten by save()
            with self._db("read the state") as conn:
                row = conn.execute(_STATE_QUERY, {"ws": self.workspace, "cap": MAX_STATE_BYTES}).fetchone()
                if row is not None and row[3] > MAX_STATE_BYTES:
                    raise self._too_large(int(row[3]), self.workspace, "keyform_states")
                twin = None if row is None else self._lineage_elsewhere(conn, row[2])
            if row is None:
                self._seen = None
                self._loaded = True
                return None
            serial, text, lineage, _ = row
            untouched = ("it was left untouched — fix its row in keyform_states, or replace it with "
                         "`keyform state push --force FILE`")
            state = parse_state(str(text).encode("utf-8"), self.describe(), untouched, what="state")
            if state.serial != serial:
                raise StateError(f"{self.describe()}: state is damaged: the serial column ({serial}) does not "
                                 f"match the state's serial ({state.serial}); {untouched}")
            # another workspace's state copied into this row: applying it would revoke that workspace's keys
            if state.lineage != lineage:
                raise StateError(f"{self.describe()}: state is damaged: the lineage column ({lineage}) does not "
                                 f"match the state's lineage ({state.lineage}): it may be another workspace's "
                                 f"state; {untouched}")
            if twin is not None:
                raise StateError(f"{self.describe()}: workspace \"{twin}\" holds a state of the same lineage "
                                 f"({lineage}): one was copied from the other (a pull and push between "
                                 "workspaces?), and applying either could revoke keys the other manages. Keep "
                                 "the one in use and delete the other's row (DELETE FROM keyform_states WHERE "
                                 "workspace = '...'), or push a fresh state into it")
            self._seen = serial
            self._loaded = True
            return state

    def lineage_elsewhere(self, lineage: str) -> str | None:
        """Another workspace of this database whose state has `lineage`, or None (`state push`
        refuses to make a second one: both would be refused on load)."""
        with self._mutex, self._db("read the other workspaces' lineages") as conn:
            return self._lineage_elsewhere(conn, lineage)

    def _lineage_elsewhere(self, conn: Any, lineage: str) -> str | None:
        row = conn.execute("SELECT workspace FROM keyform_states WHERE lineage = %s AND workspace <> %s "
                           "ORDER BY workspace LIMIT 1", (lineage, self.workspace)).fetchone()
        return None if row is None else str(row[0])

    def other_workspace_states(self) -> dict[str, State]:
        """Every other workspace's state in this database, by workspace name (read only, no lock:
        a report's snapshot). A state that cannot be read is an error naming its workspace, never
        skipped: its keys would otherwise be reported as nobody's."""
        with self._mutex, self._db("read the other workspaces' states") as conn:
            rows = conn.execute(_OTHER_STATES_QUERY, {"ws": self.workspace, "cap": MAX_STATE_BYTES}).fetchall()
        out: dict[str, State] = {}
        for workspace, text, size in rows:
            if size > MAX_STATE_BYTES:
                raise self._too_large(int(size), str(workspace), "keyform_states")
            name = self.describe().replace(f'"{self.workspace}"', json.dumps(str(workspace)), 1)
            out[str(workspace)] = parse_state(str(text).encode("utf-8"), name, "it was left untouched",
                                              what="state")
        return out

    def save(self, state: State) -> None:
        """Write `state` with serial + 1, iff the row still holds the serial this backend last read or
        wrote (a compare-and-swap); a backend that has read nothing may only create the first state."""
        with self._mutex:
            state.serial += 1
            try:
                data = state.dumps()
                fence = self._fence()
                with self._db("write the state") as conn:
                    if self._seen is None:
                        cur = conn.execute(
                            "INSERT INTO keyform_states (workspace, serial, lineage, state) SELECT %s, %s, %s, %s "
                            f"WHERE {fence[0]} ON CONFLICT (workspace) DO NOTHING",
                            (self.workspace, state.serial, state.lineage, data, *fence[1]))
                    else:
                        cur = conn.execute(
                            "UPDATE keyform_states SET serial = %s, lineage = %s, state = %s, updated_at = now() "
                            f"WHERE workspace = %s AND serial = %s AND {fence[0]}",
                            (state.serial, state.lineage, data, self.workspace, self._seen, *fence[1]))
                    if cur.rowcount != 1:
                        self._lost_lock(conn, fence, "the state")
                        row = conn.execute("SELECT serial FROM keyform_states WHERE workspace = %s",
                                           (self.workspace,)).fetchone()
                        if not self._loaded:
                            raise StateError(f"{self.describe()}: the state was not read first; refusing to "
                                             "overwrite it")
                        there = f"serial {row[0]} in the database" if row else "no state in the database"
                        expected = "no state" if self._seen is None else self._seen
                        raise StateError(f"{self.describe()}: the state changed in the database since keyform read "
                                         f"it ({there}, expected {expected}); refusing to overwrite it")
            except BaseException:
                state.serial -= 1
                raise
            self._seen = state.serial

    # -- lock -------------------------------------------------------------------------------------

    def acquire_lock(self, operation: str, timeout: float = 0.0) -> LockInfo:
        """Take the workspace's advisory lock on a session of its own, waiting up to `timeout`
        seconds (server-side: the lock is granted the moment the holder's session lets go), then
        record the holder. LockError names the holder."""
        with self._db("prepare the state lock"):
            pass  # the tables exist before the lock session uses them
        conn = self._connect()
        try:
            got = self._try_lock(conn, timeout)
            if not got and self._advisory_holder(conn) is None:
                got = self._try_lock(conn, 0)  # released between our wait and the look: once more
            if not got:
                raise LockError(f"{self.describe()}: {self._holder_message(conn)}")
            info = LockInfo.new(operation)
            stale = self._lock_record(conn)
            conn.execute(
                f"INSERT INTO keyform_locks (workspace, {_LOCK_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                "pg_backend_pid()) ON CONFLICT (workspace) DO UPDATE SET lock_id = EXCLUDED.lock_id, "
                "pid = EXCLUDED.pid, host = EXCLUDED.host, operation = EXCLUDED.operation, "
                "created_at = EXCLUDED.created_at, version = EXCLUDED.version, backend_pid = EXCLUDED.backend_pid",
                (self.workspace, info.id, info.pid, info.host, info.operation, info.created_at, info.version))
            if stale is not None:
                log.info("%s: took over the lock record of %s, whose database session had ended", self.describe(),
                         _lock_info(stale).id)
            with contextlib.suppress(psycopg.Error, OSError):
                _name_connection(conn, info.id)
        except psycopg.Error as exc:
            conn.close()
            raise StateError(f"{self.describe()}: cannot take the state lock: {self._scrub(str(exc))}") from None
        except BaseException:
            conn.close()
            raise
        try:
            # a copy of the socket's descriptor, ours until release_lock: libpq closes its own when a
            # connection breaks, and that number could then be reused for another file
            fd = os.dup(conn.fileno())
        except OSError as exc:
            conn.close()
            raise StateError(f"{self.describe()}: cannot take the state lock: {exc.strerror}") from None
        with self._mutex:
            self._held[info.id] = _Held(info, conn, conn.info.backend_pid, fd)
        inherited.keep(fd)
        return info

    def _try_lock(self, conn: psycopg.Connection[Any], timeout: float) -> bool:
        """Take the advisory lock, waiting up to `timeout` seconds: in waits of at most
        MAX_LOCK_TIMEOUT_MS each (PostgreSQL's largest `lock_timeout`), until the deadline."""
        if timeout <= 0:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)).fetchone()
            return bool(row and row[0])
        deadline = time.monotonic() + timeout
        try:
            while True:
                wait = max(1, min(round((deadline - time.monotonic()) * 1000), MAX_LOCK_TIMEOUT_MS))
                conn.execute(f"SET lock_timeout = {wait}")
                try:
                    conn.execute("SELECT pg_advisory_lock(%s)", (self._lock_key,))
                    return True
                except pg_errors.LockNotAvailable:
                    if time.monotonic() >= deadline:
                        return False
        finally:
            if not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("RESET lock_timeout")

    def _lock_record(self, conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
        """The workspace's row of keyform_locks (its `_LOCK_COLUMNS`), or None; measured in the database
        first and fetched only within MAX_LOCK_BYTES, else a StateError naming the row (nothing read,
        nothing written: the caller writes no lock record over a row it could not read)."""
        row = conn.execute(_LOCK_QUERY, {"ws": self.workspace, "cap": MAX_LOCK_BYTES}).fetchone()
        if row is None:
            return None
        if row[7] > MAX_LOCK_BYTES:
            raise StateError(f"{self.describe()}: the lock record is larger than {size_text(MAX_LOCK_BYTES)} "
                             f"({row[7]} bytes), more than any keyform lock holder's details; keyform will not "
                             f"read it (its row in keyform_locks, workspace {self.workspace!r}). It is not the "
                             "lock itself: once no keyform runs on this workspace, delete that row")
        return tuple(row[:7])

    def _key_parts(self) -> tuple[int, int]:
        """The lock key as pg_locks shows it: (classid, objid) = its high and low 32 bits."""
        unsigned = self._lock_key & 0xFFFF_FFFF_FFFF_FFFF
        return unsigned >> 32, unsigned & 0xFFFF_FFFF

    def _advisory_holder(self, conn: psycopg.Connection[Any]) -> int | None:
        """The backend pid of the session holding this workspace's advisory lock, if any."""
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid", self._key_parts()).fetchone()
        return int(row[0]) if row else None

    def _gone(self, conn: psycopg.Connection[Any], holder: LockInfo, session: int | None) -> tuple[bool, str]:
        """Whether the keyform that recorded `holder` is known to be gone while its lock session is
        held open by a program it started, and those programs named (`keyform.backends.holders`): the
        session's client end is found among this host's TCP connections (`pg_stat_activity`'s client
        address and port, to the server's port), then the processes holding it. Only when that end
        is the one the holder itself named (`_name_connection`): through a proxy or a pooler the server
        sees the proxy's connection, whose holders say nothing of the keyform's. A session over a
        unix-domain socket, or from another network namespace, cannot be traced: not known."""
        if session is None or holder_alive(holder):
            return False, ""
        row = conn.execute("SELECT host(a.client_addr), a.client_port, current_setting('port')::int, "
                           "a.application_name FROM pg_stat_activity a WHERE a.pid = %s", (session,)).fetchone()
        if row is None or row[0] is None or row[1] is None or row[1] < 0:
            return False, ""
        addr, port, server_port, named = str(row[0]), int(row[1]), int(row[2]), str(row[3] or "")
        if not named.startswith(_NAME_PREFIX):
            return False, ""  # a keyform that did not name its connection
        # found only if the server's client is the very connection the holder named (not a proxy's)
        link = holders.tcp_socket(addr, port, server_port, name=named.removeprefix(_NAME_PREFIX), lock_id=holder.id)
        return holders.gone(holder, holders.holding(link)) if link is not None else (False, "")

    def _fence(self) -> tuple[str, tuple[Any, ...]]:
        """A condition for writes: while this backend holds the lock, that its lock session still
        holds it (`_HOLDS_LOCK`); without a lock, TRUE."""
        with self._mutex:
            held = next(iter(self._held.values()), None)
        if held is None:
            return "TRUE", ()
        return _HOLDS_LOCK, (held.session, *self._key_parts())

    def _lost_lock(self, conn: psycopg.Connection[Any], fence: tuple[str, tuple[Any, ...]], what: str) -> None:
        """StateError if this backend held the lock and its session no longer does."""
        row = conn.execute(f"SELECT {fence[0]}", fence[1]).fetchone()
        if not (row and row[0]):
            raise LockLostError(f"{self.describe()}: the state lock was lost (its database session ended: the "
                             f"connection broke, or it was ended on the server); refusing to write {what}")

    def _holder_message(self, conn: psycopg.Connection[Any]) -> str:
        session = self._advisory_holder(conn)
        row = self._lock_record(conn)
        if row is not None and (session is None or row[6] == session):
            holder = _lock_info(row)
            gone, named = self._gone(conn, holder, session)
            if gone:  # a program it started holds the session (`keyform.inherited`)
                return (f'state is locked: pid {holder.pid} (operation "{holder.operation}", since '
                        f"{holder.created_at}; lock ID {holder.id}) has exited, but its database session ({session}) "
                        f"is still open: a program it started, such as an `exec` sink's command still finishing a "
                        f"write, holds it{named}. Wait for it to end (use --lock-timeout to wait), or stop it; if it "
                        "is a background agent that is not writing anything, have a database administrator end the "
                        f"session: SELECT pg_terminate_backend({session});")
            return describe_holder(holder, advice=(
                "Wait for it to finish: the lock is released when it ends. If it died, the lock is released when "
                "its database session ends, which a program it started (such as an `exec` sink's command still "
                "finishing a write) keeps open until that program ends "
                f"(keyform force-unlock {holder.id} only clears a stale lock record)."))
        who = f"database session {session}" if session is not None else "another database session"
        return (f"state is locked by another keyform ({who}) that has not recorded its details (yet, or they "
                "were cleared by force-unlock). Wait for it to finish, or use --lock-timeout to wait.")

    def release_lock(self, lock: LockInfo) -> None:
        """Remove the lock record (if it is still ours) and end the lock's session."""
        with self._mutex:
            held = self._held.pop(lock.id, None)
        if held is None:
            log.warning("%s: not releasing the state lock: this keyform does not hold lock ID %s",
                        self.describe(), lock.id)
            return
        try:
            cur = held.conn.execute("DELETE FROM keyform_locks WHERE workspace = %s AND lock_id = %s",
                                    (self.workspace, lock.id))
            if cur.rowcount == 0:
                log.warning("%s: the lock record no longer holds lock ID %s (force-unlocked?)", self.describe(),
                            lock.id)
            held.conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
        except psycopg.Error as exc:  # ending the session below releases the lock anyway
            # a broken connection: the session, and the lock with it, ended already (the database
            # went away, or the session was ended on the server); whatever said so said it already
            (log.debug if held.conn.broken else log.warning)(
                "%s: releasing the state lock: %s", self.describe(), self._scrub(str(exc)))
        finally:
            inherited.drop(held.fd)
            held.conn.close()  # ends the session (a Terminate message), whoever else holds the socket
            os.close(held.fd)

    def lock(self, operation: str, timeout: float = 0.0) -> contextlib.AbstractContextManager[LockInfo]:
        return hold(self, operation, timeout)

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Clear the lock record iff it holds `lock_id`. A holder whose database session has ended
        held nothing any more: this just tidies up. A holder whose session is still open keeps the
        lock (PostgreSQL does not let another session take it): LockError says so, with that session."""
        with self._db("force-unlock the state") as conn:
            row = self._lock_record(conn)
            session = self._advisory_holder(conn)
            if row is None:
                if session is not None:
                    raise LockError(f"{self.describe()}: database session {session} holds the state lock but has "
                                    "recorded no lock ID (yet, or it was force-unlocked); wait for it to finish")
                raise StateError(f"{self.describe()}: state is not locked")
            holder = _lock_info(row)
            if holder.id != lock_id:
                raise StateError(f"{self.describe()}: lock ID does not match: the state is locked with ID {holder.id}")
            held = session is not None and session == row[6]  # its session is open: it still holds the lock
            gone, named = self._gone(conn, holder, session) if held else (False, "")
            conn.execute("DELETE FROM keyform_locks WHERE workspace = %s AND lock_id = %s", (self.workspace, lock_id))
        if held:
            raise LockError(
                f"{self.describe()}: cleared the lock record of pid {holder.pid} on {holder.host} "
                f'(lock ID {holder.id}, operation "{holder.operation}"), but the state is still locked: that '
                f"keyform's database session ({session}) is still open, and its lock lasts as long as the session. "
                + (f"That keyform has exited, but a program it started holds the session{named}: stop that program"
                   if gone else "Stop that keyform, or the program it started that still runs (such as an `exec` "
                   "sink's command: it holds the session too; the lock is released when both have ended)")
                + ", or have a database administrator end the session: "
                f"SELECT pg_terminate_backend({session});")
        return holder

    # -- journal ----------------------------------------------------------------------------------

    def journal_open(self) -> PostgresJournal:
        with self._db("open the apply journal"):
            self._open_journals += 1
        return PostgresJournal(self)

    def read_journal(self) -> list[journal.Record]:
        with self._db("read the apply journal") as conn:
            rows = conn.execute(_JOURNAL_QUERY, {"ws": self.workspace, "cap": MAX_STATE_BYTES}).fetchall()
        if rows and rows[0][2] > MAX_STATE_BYTES:
            raise self._too_large(int(rows[0][2]), self.workspace, "keyform_journal")
        records: list[journal.Record] = []
        for seq, text, _ in rows:
            try:
                records.append(journal.decode(text))
            except journal.JournalRecordError as exc:
                raise StateError(f"{self.describe()}: apply journal record {seq} {exc}; fix or delete "
                                 f"that row (keyform_journal, workspace {self.workspace!r}, seq {seq})") from None
        self._journal_seqs = [int(seq) for seq, _, _ in rows]
        return records

    def journal_place(self, record: int) -> str:
        seqs = self._journal_seqs
        row = f", seq {seqs[record]}" if 0 <= record < len(seqs) else ""
        return f"{self.describe()} (keyform_journal, workspace {self.workspace!r}{row})"

    def clear_journal(self) -> None:
        fence = self._fence()
        with self._db("clear the apply journal") as conn:
            if self._open_journals:
                raise RuntimeError("clear_journal() while a journal is open; close it first")
            cur = conn.execute(f"DELETE FROM keyform_journal WHERE workspace = %s AND {fence[0]}",
                               (self.workspace, *fence[1]))
            if cur.rowcount == 0 and fence[1]:
                self._lost_lock(conn, fence, "the apply journal")

    def replace_journal(self, records: list[journal.Record]) -> None:
        """Swap the whole journal for `records` in one transaction (never empty in between)."""
        fence = self._fence()
        with self._db("rewrite the apply journal") as conn, conn.transaction():
            if self._open_journals:
                raise RuntimeError("replace_journal() while a journal is open; close it first")
            if fence[1]:
                self._lost_lock(conn, fence, "the apply journal")  # raises if our lock session is gone
            conn.execute("DELETE FROM keyform_journal WHERE workspace = %s", (self.workspace,))
            for record in records:
                conn.execute("INSERT INTO keyform_journal (workspace, record) VALUES (%s, %s)",
                             (self.workspace, journal.encode(record)))

    def _append(self, record: journal.Record) -> None:
        line = journal.encode(record)
        fence = self._fence()
        with self._db("write the apply journal") as conn:
            cur = conn.execute(f"INSERT INTO keyform_journal (workspace, record) SELECT %s, %s WHERE {fence[0]}",
                               (self.workspace, line, *fence[1]))
            if cur.rowcount != 1:
                self._lost_lock(conn, fence, "the apply journal")

    def _journal_closed(self) -> None:
        with self._mutex:
            self._open_journals -= 1


class PostgresJournal:
    """An open journal: each `append` is one committed INSERT (durable when it returns). Thread-safe."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend
        self._open = True
        self._mutex = threading.Lock()

    def append(self, record: journal.Record) -> None:
        with self._mutex:
            if not self._open:
                raise RuntimeError("append() on a closed journal")
        self._backend._append(record)

    def close(self) -> None:
        with self._mutex:
            if not self._open:
                return
            self._open = False
        self._backend._journal_closed()

    def __enter__(self) -> PostgresJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM keyform_schema_version").fetchone()
    return int(row[0]) if row else 0


def _lock_info(row: tuple[Any, ...]) -> LockInfo:
    return LockInfo(id=str(row[0]), pid=int(row[1]), host=str(row[2]), operation=str(row[3]),
                    created_at=str(row[4]), version=str(row[5]))


_NAME_PREFIX = "keyform-lock "


def _name_connection(conn: psycopg.Connection[Any], lock_id: str) -> None:
    """Name the lock session after its own TCP connection (`application_name` = `keyform-lock
    <holders.connection_name>`): another keyform traces the session's holders only to the socket of
    that very connection (`PostgresBackend._gone`), never to a proxy's or a pooler's, whose
    connection the server would see. Nothing over a unix-domain socket (nothing to trace)."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        local, remote = sock.getsockname()[:2], sock.getpeername()[:2]
    finally:
        sock.close()
    name = holders.connection_name(local[0], local[1], remote[0], remote[1], lock_id)
    conn.execute("SELECT set_config('application_name', %s, false)", (_NAME_PREFIX + name,))


# The shortest piece of a password scrubbed from messages: a shorter one (the `p` of `p@ss/...`)
# would mask that text everywhere, and is not shown anyway (`describe`, `_connect`).
MIN_SECRET = 4

_ENCODE_HINT = ("; a / @ # or ? in a postgresql:// URI's password must be percent-encoded (%2F %40 %23 %3F), "
                "or give the DSN as key=value pairs (password=...) or the password in PGPASSWORD")

_URI_PREFIX = re.compile(r"postgres(?:ql)?://", re.IGNORECASE)
_HOSTSPEC = r"(?:\[[^\]/?#@\s]*\]|[^:/?#@,\[\]=&\s]*)(?::[0-9]*)?"
# a URI query's parameter: one of libpq's keywords (a password's `?Ab=x` is not one), and its value
_KEYWORDS = {o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults()} | {"ssl"}
_PARAM = "(?:{})=[^&#]*".format("|".join(re.escape(k) for k in sorted(_KEYWORDS, key=len, reverse=True)))
# what follows a URI's user information: hosts, an optional /dbname and ?key=value&... (whose values
# may hold an `@`: `?user=me@server`)
_URI_REST = re.compile(rf"{_HOSTSPEC}(?:,{_HOSTSPEC})*(?:/[^?#@]*)?(?:\?{_PARAM}(?:&{_PARAM})*)?")


@record
class _UserInfo:
    text: str  # as written between `://` and the `@` before the host
    password: str  # what follows its first `:` ("" without one)
    unencoded: bool  # it holds a / @ # or ? (which a URI must percent-encode)


def _uri_userinfo(dsn: str) -> _UserInfo | None:
    """The user information of a `postgresql://` URI as its writer meant it, even with a `/ @ # ?`
    left unencoded in the password: everything between `://` and the `@` before the host part, the
    first `@` after which the rest reads as hosts, `/dbname` and `?keyword=value&...` (in practice the
    last `@`, but a query may hold one too: `?user=me@server`), else the last `@`. None for key=value
    pairs, or without an `@`."""
    m = _URI_PREFIX.match(dsn.lstrip())
    if m is None:
        return None
    rest = dsn.lstrip()[m.end():]
    ats = [i for i, c in enumerate(rest) if c == "@"]
    if not ats:
        return None
    end = next((i for i in ats if _URI_REST.fullmatch(rest, i + 1)), ats[-1])
    text = rest[:end]
    return _UserInfo(text=text, password=text.split(":", 1)[1] if ":" in text else "",
                     unencoded=any(c in text for c in "/@#?"))


def _password_pieces(password: str) -> list[str]:
    """A URI password as written, and its pieces between the characters where libpq may split it
    (: / @ ? & = ,) or `#`, each as written and percent-decoded: the strings to scrub."""
    pieces = {password, *re.split(r"[:/@?#&=,]", password)}
    return [s for p in pieces for s in _secret_strings(p)] + [s for p in pieces for s in _secret_strings(unquote(p))]


def _secret_strings(value: str) -> list[str]:
    """`value` and its URL-encoded form, longest first (to scrub from messages); nothing shorter
    than MIN_SECRET."""
    return sorted({v for v in (value, quote(value, safe="")) if len(v) >= MIN_SECRET}, key=len, reverse=True)
