"""The state backend contract (`keyform.backends.StateBackend`), one suite run against every backend:
`local` (the state file) and `postgres` (the tests' own PostgreSQL cluster, tests/pgcluster.py).

Both free the lock of a holder that died with no human involved: the local backend's OS lock on
its lock file ends with the process (the file stays and is taken over), the postgres advisory lock
with the holder's database session.
"""

from __future__ import annotations

import abc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyform.backends import StateBackend
from keyform.backends.local import LocalBackend
from keyform.errors import LockError, StateError
from keyform.journal import Begin, Done, Failed, Record, Sunk
from keyform.model import SinkTarget
from keyform.state import FORMAT_VERSION, KeyState, State

BACKENDS = ["local", "postgres"]


def sample_state() -> State:
    state = State.new()
    state.keys["ci-bot"] = KeyState(
        address="ci-bot", provider="qp", provider_type="questra", remote_id="key_1", attrs={"name": "CI bot"},
        remote={"name": "CI bot", "revoked": False}, expiry_spec="in:90d", expires_at="2027-06-01T00:00:00Z",
        created_at="2027-03-03T00:00:00Z", sink=SinkTarget("env", "CI_BOT"),
        fingerprints={"auth_value": state.fingerprint("not-stored")})
    return state


class Harness(abc.ABC):
    """Opens backend objects on one storage, and reaches into that storage the way damage would."""

    kind: str

    def __init__(self) -> None:
        self.opened: list[StateBackend] = []

    def make(self) -> StateBackend:
        backend = self._new()
        self.opened.append(backend)
        return backend

    @abc.abstractmethod
    def _new(self) -> StateBackend:
        """A new backend object on this harness's storage."""

    @abc.abstractmethod
    def child_env(self) -> dict[str, str]:
        """Environment for a child process to open the same backend (see HOLD_LOCK)."""

    @abc.abstractmethod
    def write_raw_state(self, text: str) -> None:
        """Overwrite the stored state with `text`, bypassing the backend."""

    @abc.abstractmethod
    def raw_state(self) -> str | None:
        """The stored state text, bypassing the backend (None: nothing stored)."""

    @abc.abstractmethod
    def write_raw_journal_record(self, text: str) -> None:
        """Append `text` as one journal record, bypassing the backend."""

    def close(self) -> None:
        for backend in self.opened:
            backend.close()


class LocalHarness(Harness):
    kind = "local"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def _new(self) -> StateBackend:
        return LocalBackend(self.path)

    def child_env(self) -> dict[str, str]:
        return {"KF_KIND": "local", "KF_PATH": str(self.path)}

    def write_raw_state(self, text: str) -> None:
        self.path.write_text(text)

    def raw_state(self) -> str | None:
        return self.path.read_text() if self.path.exists() else None

    def write_raw_journal_record(self, text: str) -> None:
        with open(self.path.with_name(self.path.name + ".journal"), "a") as fh:
            fh.write(text + "\n")


class PostgresHarness(Harness):
    kind = "postgres"

    def __init__(self, cluster: Any, dsn: str) -> None:
        super().__init__()
        self.cluster = cluster
        self.dsn = dsn
        self.workspace = f"ws-{uuid.uuid4().hex[:8]}"

    def _new(self) -> StateBackend:
        from keyform.backends.postgres import PostgresBackend

        return PostgresBackend(self.dsn, self.workspace)

    def child_env(self) -> dict[str, str]:
        return {"KF_KIND": "postgres", "KF_DSN": self.dsn, "KF_WORKSPACE": self.workspace}

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return list(cur.fetchall()) if cur.description else []

    def write_raw_state(self, text: str) -> None:
        self.make().load()  # tables exist
        self.sql("INSERT INTO keyform_states (workspace, serial, lineage, state) VALUES (%s, 0, 'x', %s) "
                 "ON CONFLICT (workspace) DO UPDATE SET state = EXCLUDED.state", self.workspace, text)

    def raw_state(self) -> str | None:
        rows = self.sql("SELECT state FROM keyform_states WHERE workspace = %s", self.workspace)
        return str(rows[0][0]) if rows else None

    def write_raw_journal_record(self, text: str) -> None:
        self.make().read_journal()  # tables exist
        self.sql("INSERT INTO keyform_journal (workspace, record) VALUES (%s, %s)", self.workspace, text)


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "local":
        h: Harness = LocalHarness(tmp_path / "keyform.state.json")
    else:
        h = PostgresHarness(request.getfixturevalue("pg_cluster"), request.getfixturevalue("pg_dsn"))
    yield h
    h.close()


HOLD_LOCK = """
import os, sys, time
from pathlib import Path
if os.environ["KF_KIND"] == "local":
    from keyform.backends.local import LocalBackend
    backend = LocalBackend(Path(os.environ["KF_PATH"]))
else:
    from keyform.backends.postgres import PostgresBackend
    backend = PostgresBackend(os.environ["KF_DSN"], os.environ["KF_WORKSPACE"])
info = backend.acquire_lock("apply")
print(info.id, flush=True)
time.sleep(120)
"""


class LockHolder:
    """Another process holding the state lock (operation "apply"); prints its lock ID when it has it."""

    def __init__(self, h: Harness) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK], stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, **h.child_env()})
        assert self.proc.stdout is not None
        self.lock_id = self.proc.stdout.readline().strip()
        assert self.lock_id, "the child did not take the lock"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


# ---------------------------------------------------------------------------------- load / save


def test_missing_state_loads_as_none(harness: Harness) -> None:
    assert harness.make().load() is None


def test_saved_state_round_trips_through_another_backend_object(harness: Harness) -> None:
    writer = harness.make()
    assert writer.load() is None
    state = sample_state()
    writer.save(state)
    loaded = harness.make().load()
    assert loaded is not None
    assert loaded.to_json() == state.to_json()
    assert loaded.dumps() == state.dumps()


def test_each_save_increments_the_serial_by_one(harness: Harness) -> None:
    backend = harness.make()
    assert backend.load() is None
    state = State.new()
    backend.save(state)
    assert state.serial == 1
    backend.save(state)  # saving again after our own save needs no reload
    assert state.serial == 2
    other = harness.make()
    again = other.load()
    assert again is not None and again.serial == 2
    other.save(again)
    assert again.serial == 3
    final = harness.make().load()
    assert final is not None and final.serial == 3


def test_a_stale_serial_write_is_refused_and_the_newer_state_kept(harness: Harness) -> None:
    first = harness.make()
    assert first.load() is None
    first.save(sample_state())
    a, b = harness.make(), harness.make()
    state_a, state_b = a.load(), b.load()
    assert state_a is not None and state_b is not None and state_a.serial == state_b.serial == 1
    state_b.keys.pop("ci-bot")
    b.save(state_b)
    newer = harness.raw_state()
    state_a.keys["ci-bot"].attrs["name"] = "lost update"
    with pytest.raises(StateError, match=r"changed .*since keyform read it \(serial 2 in the \w+, expected 1\); "
                                         r"refusing to overwrite it") as info:
        a.save(state_a)
    assert str(info.value).startswith(a.describe())
    assert state_a.serial == 1  # unchanged by the refused save
    assert harness.raw_state() == newer
    reread = a.load()  # after reading again, the same backend object may write
    assert reread is not None and "ci-bot" not in reread.keys
    a.save(reread)
    assert reread.serial == 3


def test_two_writers_of_a_first_state_one_wins(harness: Harness) -> None:
    a, b = harness.make(), harness.make()
    assert a.load() is None and b.load() is None
    a.save(State.new())
    with pytest.raises(StateError, match="refusing to overwrite it"):
        b.save(State.new())


def test_save_refuses_to_overwrite_a_state_it_has_not_read(harness: Harness) -> None:
    harness.make().save(sample_state())  # creating the first state needs no load
    before = harness.raw_state()
    with pytest.raises(StateError, match="was not read first; refusing to overwrite it"):
        harness.make().save(State.new())
    assert harness.raw_state() == before


CORRUPT = [
    ('{"format_version": 1, "lineage": "x", "ser', r"is not valid JSON \(truncated\?\)"),
    ("[1, 2]", "does not hold a JSON object"),
    ('{"format_version": 1, "lineage": "x", "serial": 0}', 'is missing required field "fingerprint_salt"'),
    (json.dumps({"format_version": FORMAT_VERSION + 1, "lineage": "x", "serial": 0, "fingerprint_salt": "00"}),
     "written by a newer keyform"),
]


@pytest.mark.parametrize(("content", "message"), CORRUPT, ids=["truncated", "not-object", "missing-field", "newer"])
def test_corrupt_state_is_refused_naming_the_backend_and_never_overwritten(harness: Harness, content: str,
                                                                          message: str) -> None:
    harness.write_raw_state(content)
    backend = harness.make()
    with pytest.raises(StateError, match=message) as info:
        backend.load()
    assert str(info.value).startswith(backend.describe() + ": ")
    with pytest.raises(StateError, match="refusing to overwrite it"):
        backend.save(State.new())
    assert harness.raw_state() == content


# ------------------------------------------------------------------------------------------ lock


def test_lock_held_in_this_process_is_exclusive_and_released(harness: Harness) -> None:
    a, b = harness.make(), harness.make()
    with a.lock("apply") as info:
        with pytest.raises(LockError, match=f'operation "apply", since .*lock ID {info.id}'):
            b.acquire_lock("plan")
        with pytest.raises(LockError):
            a.acquire_lock("plan")  # the same backend object: still exclusive
    with b.lock("plan"):
        pass


def test_lock_contention_waits_the_timeout_then_names_the_holder(harness: Harness) -> None:
    holder = LockHolder(harness)
    try:
        backend = harness.make()
        started = time.monotonic()
        with pytest.raises(LockError) as info:
            backend.acquire_lock("plan", timeout=0.5)
        waited = time.monotonic() - started
        assert 0.5 <= waited < 3, waited
        message = str(info.value)
        assert message.startswith(backend.describe())  # the local lock names its file: <state>.lock
        assert (f'state is locked by pid {holder.pid} on {socket.gethostname()} (operation "apply", since '
                in message), message
        assert f"lock ID {holder.lock_id}." in message
        if harness.kind == "postgres":
            assert f"keyform force-unlock {holder.lock_id}" in message
        else:  # a live local holder on this host cannot be force-unlocked: the message does not offer it
            assert "force-unlock" not in message and "Wait for it to finish" in message
    finally:
        holder.kill()


def test_lock_waits_until_the_holder_releases_within_the_timeout(harness: Harness) -> None:
    a, b = harness.make(), harness.make()
    first = a.acquire_lock("apply")
    timer = threading.Timer(0.3, a.release_lock, args=(first,))
    started = time.monotonic()  # before the timer starts: a stall in between cannot shorten the wait seen
    timer.start()
    with b.lock("apply", timeout=10) as second:
        waited = time.monotonic() - started
        assert 0.25 <= waited < 5, waited
        assert second.id != first.id
    timer.join()


def test_force_unlock_refuses_an_unlocked_state_and_a_wrong_lock_id(harness: Harness) -> None:
    backend = harness.make()
    with pytest.raises(StateError, match="state is not locked"):
        backend.force_unlock("nope")
    holder = LockHolder(harness)
    try:
        with pytest.raises(StateError, match=f"lock ID does not match: the state is locked with ID {holder.lock_id}"):
            backend.force_unlock("nope")
    finally:
        holder.kill()


def test_lock_of_a_killed_holder_frees_itself(harness: Harness) -> None:
    holder = LockHolder(harness)
    holder.kill()
    backend = harness.make()
    with backend.lock("plan", timeout=10):  # no force-unlock needed: taken over
        pass
    with pytest.raises(StateError, match="state is not locked"):
        backend.force_unlock(holder.lock_id)


def test_lock_of_a_killed_holder_is_broken_by_force_unlock_with_its_id(harness: Harness) -> None:
    holder = LockHolder(harness)
    holder.kill()
    backend = harness.make()
    removed = backend.force_unlock(holder.lock_id)
    assert removed.id == holder.lock_id and removed.pid == holder.pid and removed.operation == "apply"
    with backend.lock("plan", timeout=10):
        pass
    with pytest.raises(StateError, match="state is not locked"):
        backend.force_unlock(holder.lock_id)


# --------------------------------------------------------------------------------------- journal


def test_journal_appends_are_read_back_in_order_by_another_backend_object(harness: Harness) -> None:
    backend = harness.make()
    assert backend.read_journal() == []
    records: list[Record] = [Begin("l", 0), Failed("1", "ünïcode"), Done("1")]
    journal = backend.journal_open()
    for r in records[:2]:
        journal.append(r)
    assert harness.make().read_journal() == records[:2]  # durable and visible before close
    journal.append(records[2])
    journal.close()
    assert harness.make().read_journal() == records


def test_clear_journal_refuses_while_open_and_then_empties_it(harness: Harness) -> None:
    backend = harness.make()
    journal = backend.journal_open()
    journal.append(Sunk("1"))
    with pytest.raises(RuntimeError, match="close it first"):
        backend.clear_journal()
    journal.close()
    with pytest.raises(RuntimeError):
        journal.append(Sunk("late"))
    backend.clear_journal()
    assert backend.read_journal() == [] and harness.make().read_journal() == []
    backend.clear_journal()  # clearing an empty journal is fine
    with backend.journal_open() as again:
        again.append(Sunk("2"))
    assert backend.read_journal() == [Sunk("2")]


def test_replace_journal_swaps_all_records_at_once(harness: Harness) -> None:
    backend = harness.make()
    with backend.journal_open() as journal:
        for i in range(3):
            journal.append(Sunk(str(i)))
    keep: list[Record] = [Begin("l", 4), Sunk("1")]
    backend.replace_journal(keep)
    assert harness.make().read_journal() == keep
    backend.replace_journal([])
    assert harness.make().read_journal() == []


def test_journal_appends_from_many_threads_all_land_whole(harness: Harness) -> None:
    backend = harness.make()
    journal = backend.journal_open()

    def write(worker: int) -> None:
        for i in range(25):
            journal.append(Failed(f"{worker}.{i}", "x" * 200))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    records = backend.read_journal()
    assert len(records) == 200
    for w in range(8):
        assert [r.seq for r in records if isinstance(r, Failed) and r.seq.startswith(f"{w}.")] == \
            [f"{w}.{i}" for i in range(25)]


def test_a_journal_done_record_without_address_is_refused_naming_the_backend(harness: Harness) -> None:
    backend = harness.make()
    harness.write_raw_journal_record('{"op": "sunk", "seq": "1"}')
    harness.write_raw_journal_record('{"op": "done", "seq": "1", "key": {}}')
    with pytest.raises(StateError, match=r'apply journal record .*is missing required field "address"; fix or '
                                         r"delete that"):
        backend.read_journal()


def test_a_corrupt_journal_record_is_refused_naming_the_backend(harness: Harness) -> None:
    backend = harness.make()
    with backend.journal_open() as journal:
        journal.append(Sunk("1"))
    harness.write_raw_journal_record('{"op": "intent", "se')
    with backend.journal_open() as journal:
        journal.append(Done("1"))
    with pytest.raises(StateError, match="is not a JSON object; fix or delete that") as info:
        backend.read_journal()
    where = str(backend.journal_path) if isinstance(backend, LocalBackend) else backend.describe()
    assert str(info.value).startswith(where + ":")
