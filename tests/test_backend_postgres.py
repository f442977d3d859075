"""What only the postgres backend does: its versioned schema, its advisory lock's lifetime (the
holder's database session), force-unlock of a live holder, secrecy of the DSN, and a missing driver.
The behaviour it shares with the local backend is in tests/test_backends.py."""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.sql
import pytest

from keyform.backends import postgres
from keyform.backends.postgres import SCHEMA_VERSION, PostgresBackend
from keyform.errors import KeyformError, LockError, LockLostError, StateError
from keyform.journal import Begin, Sunk
from keyform.state import State
from tests.pgcluster import PASSWORD

TABLES = {"keyform_schema_version", "keyform_states", "keyform_locks", "keyform_journal"}


def sql(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return list(cur.fetchall()) if cur.description else []


@pytest.fixture
def backends(pg_dsn: str) -> Iterator[Any]:
    """backends() -> a new PostgresBackend on one fresh database and workspace; all closed after the test."""
    opened: list[PostgresBackend] = []
    workspace = f"ws-{uuid.uuid4().hex[:8]}"

    def make(ws: str = workspace) -> PostgresBackend:
        backend = PostgresBackend(pg_dsn, ws)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


HOLD_LOCK = """
import os, sys, time
from keyform.backends.postgres import PostgresBackend
backend = PostgresBackend(os.environ["KF_DSN"], os.environ["KF_WORKSPACE"])
info = backend.acquire_lock("apply")
print(info.id, flush=True)
time.sleep(120)
"""


def hold_lock(dsn: str, workspace: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "KF_DSN": dsn, "KF_WORKSPACE": workspace})
    assert proc.stdout is not None
    lock_id = proc.stdout.readline().strip()
    assert lock_id
    return proc, lock_id


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stdout:
        proc.stdout.close()


# ---------------------------------------------------------------------------------------- schema


def test_tables_are_created_on_first_use_and_the_schema_version_recorded(pg_dsn: str, backends: Any) -> None:
    assert sql(pg_dsn, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'keyform%%'") == []
    assert backends().load() is None
    tables = {r[0] for r in sql(pg_dsn, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'keyform%%'")}
    assert tables == TABLES
    assert [r[0] for r in sql(pg_dsn, "SELECT version FROM keyform_schema_version")] == [SCHEMA_VERSION] == [1]
    backends().load()  # a second user migrates nothing
    assert len(sql(pg_dsn, "SELECT version FROM keyform_schema_version")) == 1


def test_many_first_users_at_once_create_the_schema_once(pg_dsn: str, backends: Any) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def first_use(i: int) -> None:
        try:
            backend = backends(f"ws-{i}")
            barrier.wait()
            backend.save(State.new())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sql(pg_dsn, "SELECT version FROM keyform_schema_version") == [(1,)]
    assert sql(pg_dsn, "SELECT count(*) FROM keyform_states") == [(8,)]


def test_a_later_migration_is_applied_to_an_existing_database(pg_dsn: str, backends: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    old = backends()
    old.save(State.new())
    later = (*postgres.MIGRATIONS, ("ALTER TABLE keyform_states ADD COLUMN comment text",))
    monkeypatch.setattr(postgres, "MIGRATIONS", later)
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", len(later))
    state = backends().load()
    assert state is not None and state.serial == 1
    assert [r[0] for r in sql(pg_dsn, "SELECT version FROM keyform_schema_version ORDER BY version")] == [1, 2]
    assert sql(pg_dsn, "SELECT comment FROM keyform_states") == [(None,)]


def test_a_database_with_a_newer_schema_is_refused(pg_dsn: str, backends: Any) -> None:
    backends().load()
    sql(pg_dsn, "INSERT INTO keyform_schema_version (version, keyform_version) VALUES (99, '9.0.0')")
    backend = backends()
    with pytest.raises(StateError, match=r"holds keyform schema version 99, newer than this keyform's \(1\); "
                                         r"upgrade keyform"):
        backend.load()


def test_a_state_whose_serial_column_disagrees_is_refused(pg_dsn: str, backends: Any) -> None:
    backend = backends()
    backend.save(State.new())
    sql(pg_dsn, "UPDATE keyform_states SET serial = 7")
    with pytest.raises(StateError, match=r"the serial column \(7\) does not match the state's serial \(1\)"):
        backends().load()


def test_another_workspace_s_state_in_a_row_is_refused(pg_dsn: str, backends: Any) -> None:
    """A row whose state was copied from another workspace (by hand, or a pull and push between
    workspaces) was accepted: an apply there planned the other workspace's keys as removed and
    revoked them. The lineage column must match the state's, and no two workspaces share one."""
    prod, dev = backends("prod"), backends("dev")
    prod.save(State.new())
    dev.save(State.new())
    sql(pg_dsn, "UPDATE keyform_states d SET state = p.state, serial = p.serial FROM keyform_states p "
                "WHERE d.workspace = 'dev' AND p.workspace = 'prod'")
    with pytest.raises(StateError, match=r"the lineage column \(.*\) does not match the state's lineage \(.*\): it "
                                         r"may be another workspace's state"):
        backends("dev").load()
    sql(pg_dsn, "UPDATE keyform_states d SET lineage = p.lineage FROM keyform_states p "
                "WHERE d.workspace = 'dev' AND p.workspace = 'prod'")
    for name, other in (("dev", "prod"), ("prod", "dev")):
        with pytest.raises(StateError, match=f'workspace "{other}" holds a state of the same lineage'):
            backends(name).load()


def test_state_push_refuses_to_make_a_second_workspace_of_one_state(backends: Any) -> None:
    """`state pull` from prod and `state push` into prod-new was accepted, and then both
    workspaces were refused on every load (two workspaces of one lineage)."""
    from keyform.statecmds import push_state

    prod = backends("prod")
    prod.save(State.new())
    copy = prod.load()
    assert copy is not None
    target = backends("prod-new")
    with pytest.raises(KeyformError, match='refusing to push: workspace "prod" already holds a state of this lineage'):
        push_state(target, copy, force=True)
    assert target.load() is None and backends("prod").load() is not None


def test_states_of_different_workspaces_are_independent(backends: Any) -> None:
    prod, dev = backends("prod"), backends("dev")
    prod.save(State.new())
    assert dev.load() is None
    with prod.lock("apply"), dev.lock("apply"):
        with prod.journal_open() as journal:
            journal.append(Begin("l", 0))
        assert dev.read_journal() == []


def test_a_journal_record_is_named_by_its_row(backends: Any) -> None:
    """A message about a record of the journal (`recovery.fold` refusing it) names its row."""
    backend = backends("prod")
    with backend.lock("apply"), backend.journal_open() as journal:
        journal.append(Begin("l", 0))
        journal.append(Sunk("r.1"))
    assert len(backend.read_journal()) == 2
    first = backend.journal_place(0)
    assert first.startswith(f"{backend.describe()} (keyform_journal, workspace 'prod', seq ")
    assert first != backend.journal_place(1) and backend.journal_place(2).endswith("workspace 'prod')")


# ------------------------------------------------------------------------------------------ lock


def test_the_lock_record_names_the_holder_and_its_database_session(pg_dsn: str, backends: Any) -> None:
    backend = backends()
    with backend.lock("apply") as info:
        [row] = sql(pg_dsn, "SELECT lock_id, pid, host, operation, created_at, backend_pid FROM keyform_locks")
        assert row[:5] == (info.id, os.getpid(), info.host, "apply", info.created_at)
        holders = sql(pg_dsn, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted")
        assert holders == [(row[5],)]
    assert sql(pg_dsn, "SELECT * FROM keyform_locks") == []
    assert sql(pg_dsn, "SELECT pid FROM pg_locks WHERE locktype = 'advisory'") == []


def test_a_killed_holder_releases_the_lock_with_its_session(pg_dsn: str, backends: Any) -> None:
    backend = backends()
    proc, lock_id = hold_lock(pg_dsn, backend.workspace)
    with pytest.raises(LockError, match=f"lock ID {lock_id}"):
        backend.acquire_lock("plan")
    killed = time.monotonic()
    kill(proc)
    with backend.lock("plan", timeout=10) as info:  # no force-unlock needed
        freed = time.monotonic() - killed
        [row] = sql(pg_dsn, "SELECT lock_id FROM keyform_locks")
        assert row == (info.id,)  # the dead holder's record was taken over
    print(f"\n[figure] lock free {freed * 1000:.0f} ms after kill -9 of its holder")
    assert freed < 5


def test_force_unlock_of_a_live_holder_clears_its_record_but_the_lock_stays_held(pg_dsn: str, backends: Any) -> None:
    backend = backends()
    proc, lock_id = hold_lock(pg_dsn, backend.workspace)
    try:
        [(session,)] = sql(pg_dsn, "SELECT backend_pid FROM keyform_locks")
        with pytest.raises(LockError) as info:
            backend.force_unlock(lock_id)
        message = str(info.value)
        assert f"cleared the lock record of pid {proc.pid}" in message
        assert "but the state is still locked" in message
        assert f"SELECT pg_terminate_backend({session});" in message
        assert sql(pg_dsn, "SELECT * FROM keyform_locks") == []
        with pytest.raises(LockError, match=f"another keyform \\(database session {session}\\) that has not "
                                            "recorded its details"):
            backend.acquire_lock("plan")
        with pytest.raises(LockError, match=f"database session {session} holds the state lock but has recorded no "
                                            "lock ID"):
            backend.force_unlock(lock_id)
        # what the message suggests, done by an administrator: end the holder's session
        sql(pg_dsn, "SELECT pg_terminate_backend(%s)", session)
        with backend.lock("plan", timeout=10):
            pass
    finally:
        kill(proc)


def test_lock_wait_is_granted_as_soon_as_the_holder_releases(backends: Any) -> None:
    holder, waiter = backends(), backends()
    info = holder.acquire_lock("apply")
    released: list[float] = []

    def release() -> None:
        time.sleep(0.5)
        released.append(time.monotonic())
        holder.release_lock(info)

    thread = threading.Thread(target=release)
    thread.start()
    with waiter.lock("apply", timeout=30):
        granted = time.monotonic()
    thread.join()
    delay = granted - released[0]
    print(f"\n[figure] waiting lock granted {delay * 1000:.1f} ms after the holder began releasing it")
    assert delay < 0.5


@pytest.mark.parametrize("days", [25, 30, 36500])
def test_a_lock_timeout_longer_than_postgres_allows_is_honoured(backends: Any, days: int) -> None:
    """PostgreSQL's lock_timeout stops at 2147483647 ms (~24.8 days): `--lock-timeout 30d` made every
    locking command fail (`invalid value for parameter "lock_timeout": "2592000000"`), even with the
    lock free. The CLI accepts up to 36500d: a free lock is taken, a held one as soon as it is let go."""
    holder, waiter = backends(), backends()
    with waiter.lock("plan", timeout=days * 86400):
        pass
    info = holder.acquire_lock("apply")
    thread = threading.Timer(0.3, holder.release_lock, (info,))
    thread.start()
    try:
        with waiter.lock("plan", timeout=days * 86400) as got:
            assert got.operation == "plan"
    finally:
        thread.join()


def test_a_long_lock_wait_is_made_of_several_waits_and_ends_at_its_timeout(backends: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait longer than one lock_timeout allows is made in turns (here of 100 ms): the lock is
    taken in a later turn, and a lock still held is given up when the whole timeout has passed."""
    monkeypatch.setattr(postgres, "MAX_LOCK_TIMEOUT_MS", 100)
    holder, waiter = backends(), backends()
    info = holder.acquire_lock("apply")
    thread = threading.Timer(0.6, holder.release_lock, (info,))
    thread.start()
    started = time.monotonic()
    try:
        with waiter.lock("plan", timeout=30):
            assert time.monotonic() - started >= 0.5
    finally:
        thread.join()
    holder.acquire_lock("apply")
    started = time.monotonic()
    with pytest.raises(LockError, match="state is locked"):
        waiter.acquire_lock("plan", timeout=0.45)
    assert 0.45 <= time.monotonic() - started < 5


def test_release_after_the_lock_session_was_terminated_does_not_fail(pg_dsn: str, backends: Any) -> None:
    backend = backends()
    info = backend.acquire_lock("apply")
    [(session,)] = sql(pg_dsn, "SELECT backend_pid FROM keyform_locks")
    sql(pg_dsn, "SELECT pg_terminate_backend(%s)", session)
    backend.release_lock(info)  # the lock ended with its session (said at -v)
    with backends().lock("apply"):
        pass


def test_a_holder_whose_lock_session_ended_can_no_longer_write(pg_dsn: str, backends: Any) -> None:
    backend = backends()
    state = State.new()
    with backend.lock("apply"):
        assert backend.load() is None
        backend.save(state)
        journal = backend.journal_open()
        journal.append(Sunk("r.1"))
        [(session,)] = sql(pg_dsn, "SELECT backend_pid FROM keyform_locks")
        sql(pg_dsn, "SELECT pg_terminate_backend(%s)", session)  # a broken lock connection, as the server sees it
        # pg_terminate_backend only signals: wait until the session is really gone (it lingered under load)
        deadline = time.monotonic() + 20
        while sql(pg_dsn, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", session) and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(LockLostError, match=r"the state lock was lost .*; refusing to write the apply journal"):
            journal.append(Sunk("r.2"))
        journal.close()
        with pytest.raises(StateError, match=r"the state lock was lost .*; refusing to write the state"):
            backend.save(state)
        with pytest.raises(StateError, match="the state lock was lost"):
            backend.clear_journal()
    other = backends()
    assert other.read_journal() == [Sunk("r.1")]
    reloaded = other.load()
    assert reloaded is not None and reloaded.serial == 1


# ---------------------------------------------------------------------------------- bounded reads
#
# The local backend reads at most 256 MiB of a state file or journal (`fsio.read_capped`): so does
# postgres, measuring a row in the database (octet_length) before fetching it. The tests but the
# first lower the cap (`raising=False`: the keyform before the fix had none, and read everything).


def test_a_state_row_larger_than_256_mib_is_refused_unread(pg_dsn: str, backends: Any) -> None:
    """A real one: padded on the server to 257 MiB (valid JSON still: trailing blanks), which the
    keyform before the fix fetched whole (a second of it, and 1 GB of memory) and used."""
    backend = backends()
    backend.save(State.new())
    sql(pg_dsn, "UPDATE keyform_states SET state = state || repeat(' ', 257 * 1024 * 1024)")
    [(size,)] = sql(pg_dsn, "SELECT octet_length(state) + octet_length(lineage) FROM keyform_states")
    reader = backends()
    with pytest.raises(StateError) as info:
        reader.load()
    assert str(info.value) == (
        f'{reader.describe()}: the state is larger than 256 MiB ({size} bytes), more than any keyform state; '
        f"keyform will not read it (its rows in keyform_states, workspace {reader.workspace!r})")
    with pytest.raises(StateError, match="the state was not read first; refusing to overwrite it"):
        reader.save(State.new())


def test_the_state_cap_counts_the_row_s_bytes(pg_dsn: str, backends: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = backends()
    backend.save(State.new())
    [(size,)] = sql(pg_dsn, "SELECT octet_length(state) + octet_length(lineage) FROM keyform_states")
    monkeypatch.setattr(postgres, "MAX_STATE_BYTES", size, raising=False)
    state = backends().load()
    assert state is not None and state.serial == 1
    monkeypatch.setattr(postgres, "MAX_STATE_BYTES", size - 1, raising=False)
    with pytest.raises(StateError, match=rf"the state is larger than {size - 1} bytes \({size} bytes\), more than "
                                         "any keyform state; keyform will not read it"):
        backends().load()


def test_an_apply_journal_larger_than_the_cap_is_refused_unread(pg_dsn: str, backends: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal as a whole (its records and a byte each, as in the local journal file), in one
    statement: many small records add up as one large one does."""
    backend = backends()
    with backend.journal_open() as journal:
        for i in range(40):
            journal.append(Sunk(f"key-{i}.1"))
    [(size,)] = sql(pg_dsn, "SELECT count(*) + sum(octet_length(record)) FROM keyform_journal")
    monkeypatch.setattr(postgres, "MAX_STATE_BYTES", size, raising=False)
    assert len(backends().read_journal()) == 40
    monkeypatch.setattr(postgres, "MAX_STATE_BYTES", size - 1, raising=False)
    reader = backends()
    with pytest.raises(StateError) as info:
        reader.read_journal()
    assert str(info.value) == (
        f"{reader.describe()}: the apply journal is larger than {size - 1} bytes ({size} bytes), more than any "
        f"keyform apply journal; keyform will not read it (its rows in keyform_journal, workspace "
        f"{reader.workspace!r})")
    sql(pg_dsn, "DELETE FROM keyform_journal WHERE seq > (SELECT min(seq) FROM keyform_journal)")
    sql(pg_dsn, "UPDATE keyform_journal SET record = record || repeat(' ', %s)", size)  # one record alone
    with pytest.raises(StateError, match="the apply journal is larger than"):
        reader.read_journal()


def test_another_workspace_s_state_larger_than_the_cap_is_refused_by_name(pg_dsn: str, backends: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`report --unmanaged` reads every other workspace's state: each within the cap."""
    backends("big").save(State.new())
    backends("small").save(State.new())
    sql(pg_dsn, "UPDATE keyform_states SET state = state || repeat(' ', 10000) WHERE workspace = 'big'")
    monkeypatch.setattr(postgres, "MAX_STATE_BYTES", 4096, raising=False)
    reader = backends("mine")
    with pytest.raises(StateError) as info:
        reader.other_workspace_states()
    assert str(info.value).startswith('postgres workspace "big" (database kf_')
    assert "the state is larger than 4096 bytes" in str(info.value) and "workspace 'big')" in str(info.value)
    sql(pg_dsn, "DELETE FROM keyform_states WHERE workspace = 'big'")
    assert set(reader.other_workspace_states()) == {"small"}


# the host of a broken lock record: 512 times the 64 KiB cap, 4 times the memory the refusal may take
# (300 MiB, as found, showed no more; writing it took seconds)
HUGE_HOST = 32 * 1024 * 1024


def test_a_lock_record_larger_than_its_cap_is_refused_unread_and_nothing_is_written(pg_dsn: str,
                                                                                     backends: Any) -> None:
    """`keyform_locks` rows were read whole: a broken or hostile holder record of 300 MiB (here its host)
    was fetched by every command that takes the lock, force-unlock and the "state is locked" message
    (over 600 MB of memory in the process). A holder's details are a few hundred bytes: the row is
    measured in the database and refused past 64 KiB, unfetched, with one message naming the row;
    the lock is not taken and the row is left as it was. (Here the host is `HUGE_HOST`, 32 MiB.)"""
    import tracemalloc

    backend = backends()
    info = backend.acquire_lock("apply")
    backend.release_lock(info)
    sql(pg_dsn, f"INSERT INTO keyform_locks VALUES (%s, 'broken-lock', 4242, repeat('h', {HUGE_HOST}), 'apply', "
                "'2027-01-01T00:00:00Z', '0.1.0', 999999)", backend.workspace)
    [(size,)] = sql(pg_dsn, "SELECT octet_length(lock_id) + octet_length(host) + octet_length(operation) + "
                            "octet_length(created_at) + octet_length(version) FROM keyform_locks")
    expected = (f"{backend.describe()}: the lock record is larger than 65536 bytes ({size} bytes), more than any "
                f"keyform lock holder's details; keyform will not read it (its row in keyform_locks, workspace "
                f"{backend.workspace!r}). It is not the lock itself: once no keyform runs on this workspace, "
                "delete that row")
    tracemalloc.start()
    try:
        with pytest.raises(StateError) as refused:
            backends().acquire_lock("plan")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value) == expected
    assert peak < 8 * 1024 * 1024, peak  # nothing of the row fetched
    with pytest.raises(StateError) as refused:
        backends().force_unlock("broken-lock")
    assert str(refused.value) == expected
    # nothing written: the row is the broken one still, and no lock is left held
    assert sql(pg_dsn, "SELECT lock_id, octet_length(host) FROM keyform_locks WHERE workspace = %s",
               backend.workspace) == [("broken-lock", HUGE_HOST)]
    assert not sql(pg_dsn, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted")
    sql(pg_dsn, "DELETE FROM keyform_locks WHERE workspace = %s", backend.workspace)  # as the message advises
    # a live holder whose record grew so: the waiter's "state is locked" message reads it, within the cap too
    proc, _ = hold_lock(pg_dsn, backend.workspace)
    try:
        sql(pg_dsn, f"UPDATE keyform_locks SET host = repeat('h', {HUGE_HOST}) WHERE workspace = %s",
            backend.workspace)
        with pytest.raises(StateError) as refused:
            backends().acquire_lock("plan")
        assert str(refused.value).startswith(f"{backend.describe()}: the lock record is larger than 65536 bytes (")
        assert not isinstance(refused.value, LockError) and "state is locked" not in str(refused.value)
    finally:
        kill(proc)
    sql(pg_dsn, "DELETE FROM keyform_locks WHERE workspace = %s", backend.workspace)
    with backends().lock("plan"):
        pass


def test_the_lock_record_cap_counts_the_row_s_bytes(pg_dsn: str, backends: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    backend = backends()
    backend.read_journal()  # the tables exist
    sql(pg_dsn, "INSERT INTO keyform_locks VALUES (%s, 'dead-lock', 4242, 'gone-host', 'apply', "
                "'2027-01-01T00:00:00Z', '0.1.0', 999999)", backend.workspace)
    size = len("dead-lock") + len("gone-host") + len("apply") + len("2027-01-01T00:00:00Z") + len("0.1.0")
    monkeypatch.setattr(postgres, "MAX_LOCK_BYTES", size, raising=False)
    assert backends().force_unlock("dead-lock").host == "gone-host"
    sql(pg_dsn, "INSERT INTO keyform_locks VALUES (%s, 'dead-lock', 4242, 'gone-host', 'apply', "
                "'2027-01-01T00:00:00Z', '0.1.0', 999999)", backend.workspace)
    monkeypatch.setattr(postgres, "MAX_LOCK_BYTES", size - 1, raising=False)
    with pytest.raises(StateError, match=rf"the lock record is larger than {size - 1} bytes \({size} bytes\)"):
        backends().force_unlock("dead-lock")


# --------------------------------------------------------------------------------------- secrecy


def test_describe_names_database_host_and_port_never_the_password(pg_dsn: str, backends: Any) -> None:
    backend = backends()
    text = backend.describe()
    assert text.startswith(f'postgres workspace "{backend.workspace}" (database kf_')
    assert "127.0.0.1:" in text and PASSWORD not in text and pg_dsn not in text


@pytest.mark.parametrize("case", ["wrong-password", "nothing-listening", "bad-database", "malformed", "bad-uri-param",
                                  "slash-in-password", "at-in-password"])
def test_connection_errors_never_show_the_dsn_or_its_password(pg_cluster: Any, case: str) -> None:
    """The last two: a / or @ left unencoded in a URI's password makes libpq split the URI there,
    and parts of the password became the host or database the message (and `describe`) named."""
    secret = "pw-canary-" + uuid.uuid4().hex[:6]
    dsn = {
        "slash-in-password": f"postgresql://keyform:Sup3r/{secret}@127.0.0.1:1/postgres",
        "at-in-password": f"postgresql://keyform:Sup3r@{secret}@127.0.0.1:1/postgres",
        "wrong-password": pg_cluster.dsn("postgres", password=secret),
        "nothing-listening": f"postgresql://keyform:{secret}@127.0.0.1:1/postgres",
        "bad-database": pg_cluster.dsn("no_such_db"),
        "malformed": f"host=127.0.0.1 password={secret} dbname",
        "bad-uri-param": f"postgresql://keyform:{secret}@127.0.0.1/postgres?bogus={secret}",
    }[case]
    with pytest.raises(StateError) as info:
        PostgresBackend(dsn, "prod").load()
    message = str(info.value)
    for hidden in (secret, PASSWORD, dsn, "Sup3r"):
        assert hidden not in message, message
    if case in ("malformed", "bad-uri-param"):
        assert message == ("state.dsn: not a valid PostgreSQL connection string (libpq key=value pairs or a "
                           "postgresql:// URI)")
    elif case in ("slash-in-password", "at-in-password"):
        assert message == ('postgres workspace "prod" (the database state.dsn names): cannot connect to the database'
                           + postgres._ENCODE_HINT)
    else:
        assert message.startswith('postgres workspace "prod" (database ')
        assert "cannot connect to the database" in message


# A password with / @ # ? left unencoded in a URI (the reviewer's two, then more): libpq ends the
# user information at the first @ or /, and reads the rest of the password as the host, port,
# database or query. Every piece of it must stay out of every message, and no piece shorter than
# 4 characters may be scrubbed from the text (a 1-letter piece masked that letter everywhere).
SPECIAL_PASSWORDS = ["Xy7kQ9#pL2/mN4", "p@ss/w0rd#zz9x", "Qz@Wv/Kp7mR2x9#Tn4jB8?Hc", "Gh7?Vb2/Rt9@Lm4#Zx8",
                     "Jk3@Nd6@Fs1", "Ud5/Ew8/Yo2", "Wq4@9?Ab=xQ7v"]


def password_pieces(password: str) -> list[str]:
    """The password and its pieces between / @ # ? (where libpq may split it), for canary checks.
    A piece must not appear at all; one of 1-2 characters (the `p` and `ss` of `p@ss/...`) may be
    part of an ordinary word, so it must not appear quoted or as a host or database name."""
    return [password, *(p for p in re.split(r"[/@#?:]", password) if p)]


def assert_no_piece(password: str, text: str) -> None:
    for piece in password_pieces(password):
        if len(piece) >= 3:
            assert piece not in text, (piece, text)
        else:
            for shown in (f"'{piece}'", f'"{piece}"', f"database {piece}", f"on {piece}:", f"host {piece}"):
                assert shown not in text, (piece, text)


@pytest.mark.parametrize(("dsn", "password"), [
    ("postgresql://ci:Xy7kQ9#pL2/mN4@db:5432/kf", "Xy7kQ9#pL2/mN4"),
    ("postgres://ci:p@ss/w0rd#zz9x@db/kf?sslmode=require", "p@ss/w0rd#zz9x"),
    ("postgresql://ci:Wq4@9?Ab=xQ7v@db/kf", "Wq4@9?Ab=xQ7v"),  # `?Ab=x` is no libpq keyword: not a query
    ("postgresql://ci:pw-1234@db/kf?user=me@server&sslmode=require", "pw-1234"),  # an @ in the query
    ("postgresql://ci:pw-1234@[::1]:5432,db2:6543/kf?ssl=true", "pw-1234"),
    ("postgresql://ci:a/b@@/kf?host=/var/run/postgresql", "a/b@"),
    ("postgresql://ci@db/kf", ""),
])
def test_the_user_information_of_a_uri_is_read_as_its_writer_meant_it(dsn: str, password: str) -> None:
    userinfo = postgres._uri_userinfo(dsn)
    assert userinfo is not None and userinfo.password == password
    assert postgres._uri_userinfo("host=db password=p@ss/w0rd dbname=kf") is None


@pytest.mark.parametrize("password", SPECIAL_PASSWORDS)
def test_a_uri_password_with_unencoded_special_characters_is_never_shown(pg_cluster: Any, password: str) -> None:
    """Against the tests' real server: the DSN names its real host, port and database, and its
    password holds an unencoded / @ # or ?. The message describes the database generically (the host
    and database libpq read hold pieces of the password), omits libpq's own message (it quotes them
    too), says to percent-encode, and masks nothing of ordinary text."""
    dsn = f"postgresql://keyform:{password}@127.0.0.1:{pg_cluster.port}/postgres"
    with pytest.raises(StateError) as info:
        backend = PostgresBackend(dsn, "prod")
        assert_no_piece(password, backend.describe())
        backend.load()
    message = str(info.value)
    assert_no_piece(password, message)
    assert "***" not in message, message
    assert message.startswith(('postgres workspace "prod" (the database state.dsn names): cannot connect to the '
                               "database; ", "state.dsn: not a valid PostgreSQL connection string")), message
    assert message.endswith(postgres._ENCODE_HINT), message


@pytest.mark.parametrize("password", ["Hq#7kzz?Kw2", "Hq7k/zz@Kw2"])
def test_a_role_whose_password_holds_special_characters_connects(pg_cluster: Any, password: str) -> None:
    """`#` and `?` libpq reads right even unencoded: such a DSN works, and its messages name the real
    database and host. A `/` or `@` works percent-encoded, as the hint says. An `@` in the query
    (`?application_name=kf@ci`) is not taken for the end of the user information."""
    role = f"kf_role_{uuid.uuid4().hex[:8]}"
    with pg_cluster.connect() as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            psycopg.sql.Identifier(role), psycopg.sql.Literal(password)))
    database = pg_cluster.create_database()
    with pg_cluster.connect() as conn:
        conn.execute(f'ALTER DATABASE "{database}" OWNER TO {role}')
    written = password if "/" not in password else urllib.parse.quote(password, safe="")
    backend = PostgresBackend(f"postgresql://{role}:{written}@127.0.0.1:{pg_cluster.port}/{database}"
                              "?application_name=kf@ci", "prod")
    try:
        assert backend.load() is None
        backend.save(State.new())
        assert backend.describe() == f'postgres workspace "prod" (database {database} on 127.0.0.1:{pg_cluster.port})'
    finally:
        backend.close()


def test_without_psycopg_the_error_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now raises ImportError
    monkeypatch.delitem(sys.modules, "keyform.backends.postgres")
    with pytest.raises(KeyformError, match=r"needs psycopg 3, which is not installed: "
                                           r"pip install 'keyform\[postgres\]'"):
        importlib.import_module("keyform.backends.postgres")
    monkeypatch.undo()
    assert importlib.import_module("keyform.backends.postgres") is postgres
