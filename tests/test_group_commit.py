"""Group commit: concurrent durable writes share one fsync (journal) or one atomic rewrite (file
sinks), and every writer still returns only once its own record or entry is on stable storage."""

from __future__ import annotations

import errno
import inspect
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

import pytest

from keyform import groupcommit
from keyform.backends import local
from keyform.backends.base import LockInfo
from keyform.backends.local import LocalBackend, LocalJournal
from keyform.errors import LockLostError, SinkError
from keyform.fsio import StrPath
from keyform.fsio import append_lines as fsio_append_lines
from keyform.groupcommit import GroupCommit
from keyform.journal import Sunk
from keyform.sinks import dotenv, jsonfile
from keyform.sinks.dotenv import DotenvSink
from keyform.sinks.jsonfile import JsonSink
from tests.conftest import CountFsyncs


def _wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for the writers to queue up"
        time.sleep(0.001)


def _start(targets: list[Callable[[], None]]) -> tuple[list[threading.Thread], list[BaseException]]:
    errors: list[BaseException] = []

    def run(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in targets]
    for t in threads:
        t.start()
    return threads, errors


def test_queued_writers_share_one_rewrite_and_all_return_durable() -> None:
    commit, file_lock = GroupCommit[tuple[str, str]](), threading.Lock()
    batches: list[list[tuple[str, str]]] = []
    alone: list[str] = []
    file_lock.acquire()  # a rewrite "in flight": the writers below queue up behind it
    threads, errors = _start([
        partial(commit.write, lambda: file_lock, (f"K{i}", f"v{i}"), batches.append, partial(alone.append, f"K{i}"))
        for i in range(8)])
    _wait_until(lambda: len(commit._pending) == 8)
    file_lock.release()
    for t in threads:
        t.join()
    assert errors == [] and alone == []
    assert len(batches) == 1 and sorted(batches[0]) == sorted((f"K{i}", f"v{i}") for i in range(8))


def test_a_failed_rewrite_makes_each_writer_write_alone_with_its_own_error() -> None:
    commit, file_lock = GroupCommit[tuple[str, str]](), threading.Lock()
    alone: list[str] = []

    def fail(batch: list[tuple[str, str]]) -> None:
        raise OSError("disk full")

    def one(name: str) -> Callable[[], None]:
        def write_one() -> None:
            alone.append(name)
            raise SinkError(f"cannot write {name}")
        return write_one

    file_lock.acquire()
    threads, errors = _start([partial(commit.write, lambda: file_lock, (f"K{i}", "v"), fail, one(f"K{i}")) for i in range(4)])
    _wait_until(lambda: len(commit._pending) == 4)
    file_lock.release()
    for t in threads:
        t.join()
    assert sorted(alone) == ["K0", "K1", "K2", "K3"]
    assert sorted(str(e) for e in errors) == [f"cannot write K{i}" for i in range(4)]


def test_an_interrupted_batch_is_not_taken_as_written() -> None:
    """If the holder's rewrite is interrupted (KeyboardInterrupt, not an error), the writers whose
    entries were in its batch must write them themselves, never return as if they were durable."""
    commit, file_lock = GroupCommit[tuple[str, str]](), threading.Lock()
    written: list[str] = []
    calls = 0

    def write_all(batch: list[tuple[str, str]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyboardInterrupt
        written.extend(n for n, _ in batch)

    file_lock.acquire()
    threads, errors = _start([partial(commit.write, lambda: file_lock, (f"K{i}", "v"), write_all,
                                      partial(written.append, f"K{i}")) for i in range(4)])
    _wait_until(lambda: len(commit._pending) == 4)
    file_lock.release()
    for t in threads:
        t.join()
    assert [type(e) for e in errors] == [KeyboardInterrupt]  # the holder's own interruption
    assert len(written) == 3 and len(set(written)) == 3  # every other writer wrote its entry alone


def _first_batch_held() -> tuple[list[list[str]], threading.Event, threading.Event,
                                 Callable[[list[tuple[str, str]]], None]]:
    """(batches written, set while the first batch is being written, set to let it finish,
    write_all): the first batch's write waits until allowed, so writers queue behind it."""
    batches: list[list[str]] = []
    first_writing, first_may_finish = threading.Event(), threading.Event()

    def write_all(batch: list[tuple[str, str]]) -> None:
        batches.append([n for n, _ in batch])
        if len(batches) == 1:
            first_writing.set()
            assert first_may_finish.wait(10)
    return batches, first_writing, first_may_finish, write_all


def test_a_writer_that_queued_behind_a_batch_gathers_the_writers_arriving_while_it_lingers() -> None:
    """The first writer leads at once; one that waited behind a batch in flight lingers before
    taking the pending entries, so the writers arriving meanwhile share its rewrite. No writer
    touches the file lock unless it writes."""
    commit, file_lock = GroupCommit[tuple[str, str]](linger=1.0), threading.Lock()
    batches, first_writing, first_may_finish, write_all = _first_batch_held()
    locks_taken = 0

    def lock() -> threading.Lock:
        nonlocal locks_taken
        locks_taken += 1
        return file_lock

    def writer(name: str) -> Callable[[], None]:
        return partial(commit.write, lock, (name, "v"), write_all, partial(pytest.fail, "no batch failed"))

    threads, errors = _start([writer("A")])
    assert first_writing.wait(10)
    more, more_errors = _start([writer("B")])
    _wait_until(lambda: len(commit._pending) == 1)  # B waits behind A's batch
    first_may_finish.set()
    _wait_until(lambda: bool(commit._pending) and commit._pending[0].state == "lead")  # B leads, lingering
    last, last_errors = _start([writer("C")])
    for t in [*threads, *more, *last]:
        t.join()
    assert errors == more_errors == last_errors == []
    assert batches == [["A"], ["B", "C"]]
    assert locks_taken == 2  # one per batch: C never took the file lock


def test_a_writer_interrupted_while_it_lingers_passes_the_lead_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while a writer waits: its entry is not written for it, and the writers queued behind
    it still get theirs written (the lead it was handed goes to the next one)."""
    linger = 0.0123  # told apart from the test's own sleeps
    commit, file_lock = GroupCommit[tuple[str, str]](linger=linger), threading.Lock()
    batches, first_writing, first_may_finish, write_all = _first_batch_held()
    interrupted: list[str] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        if seconds == linger and not interrupted:
            interrupted.append("B")
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)  # groupcommit lingers through time.sleep

    def writer(name: str) -> Callable[[], None]:
        return partial(commit.write, lambda: file_lock, (name, "v"), write_all, partial(pytest.fail, "no batch failed"))

    first, first_errors = _start([writer("A")])
    assert first_writing.wait(10)
    second, second_errors = _start([writer("B")])
    _wait_until(lambda: len(commit._pending) == 1)
    third, third_errors = _start([writer("C")])
    _wait_until(lambda: len(commit._pending) == 2)
    first_may_finish.set()  # B is handed the lead and interrupted while it lingers; C leads
    for t in [*first, *second, *third]:
        t.join()
    assert first_errors == third_errors == []
    assert [type(e) for e in second_errors] == [KeyboardInterrupt]
    assert batches == [["A"], ["C"]]
    assert commit._pending == [] and not commit._leading


@pytest.mark.parametrize("make", [DotenvSink, JsonSink], ids=["dotenv", "json"])
def test_many_threads_writing_one_sink_file_lose_no_entry(tmp_path: Path, make: Callable[[Path], DotenvSink | JsonSink],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / ("s.env" if make is DotenvSink else "s.json")
    module = dotenv if make is DotenvSink else jsonfile
    rewrites: list[int] = []
    real = module.write_file

    def counting(p: StrPath, data: bytes) -> None:
        rewrites.append(len(data))
        time.sleep(0.002)  # a slow disk, so writers pile up
        real(p, data)

    monkeypatch.setattr(module, "write_file", counting)
    sink = make(path)

    def worker(t: int) -> None:
        for i in range(25):
            sink.write(f"k{t}", f"K_{t}_{i}", f"secret-{t}-{i}")
            assert sink.read(f"K_{t}_{i}") == f"secret-{t}-{i}"  # durable (and visible) on return

    threads, errors = _start([partial(worker, t) for t in range(8)])
    for th in threads:
        th.join()
    assert errors == []
    fresh = make(path)  # a new instance: parses the file itself
    for t in range(8):
        for i in range(25):
            assert fresh.read(f"K_{t}_{i}") == f"secret-{t}-{i}"
    assert len(rewrites) < 200  # merged: fewer rewrites than writes


def test_dotenv_sees_a_same_size_edit_made_between_its_writes(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    sink = DotenvSink(path)
    sink.write("a", "A", "one")
    path.write_text(path.read_text().replace("one", "two"))  # same size, same inode, maybe same mtime
    sink.write("b", "B", "three")
    assert path.read_text() == "A=two\nB=three\n"


def _queued_appends(store: LocalBackend, journal: LocalJournal, seqs: list[str],
                    meanwhile: Callable[[], object] = lambda: None) -> list[BaseException]:
    """Append a `Sunk` for each of `seqs` from its own thread, all queued behind a batch "in
    flight" (the journal lock held) while `meanwhile` runs; the errors they raised."""
    store._journal_lock.acquire()
    threads, errors = _start([partial(journal.append, Sunk(seq)) for seq in seqs])
    _wait_until(lambda: len(journal._batches._pending) == len(seqs))
    meanwhile()
    store._journal_lock.release()
    for t in threads:
        t.join()
    journal.close()
    return errors


def test_journal_appends_waiting_on_a_write_share_the_next_one(tmp_path: Path, count_fsyncs: CountFsyncs) -> None:
    store = LocalBackend(tmp_path / "keyform.state.json")
    journal = store.journal_open()
    synced = count_fsyncs()
    assert _queued_appends(store, journal, [str(i) for i in range(10)]) == []
    assert len(synced) == 1  # the first to get the lock wrote and synced all ten lines
    assert sorted(store.read_journal(), key=lambda r: int(r.seq) if isinstance(r, Sunk) else -1) == \
        [Sunk(str(i)) for i in range(10)]


def test_a_lost_lock_fails_every_append_of_a_batch_and_writes_none(tmp_path: Path) -> None:
    """The batch is fenced once; when that fails, each appender is fenced again on its own and
    gets its own LockLostError. No line reaches the journal of the lock's new holder."""
    store = LocalBackend(tmp_path / "keyform.state.json")
    store.load()
    info = store.acquire_lock("apply")
    with store.journal_open() as journal:
        journal.append(Sunk("r.0"))
    other = LocalBackend(store.path)
    taken: list[LockInfo] = []

    def force_unlocked() -> None:  # from elsewhere, while the batch waits for the journal lock
        store.lock_path.unlink()
        taken.append(other.acquire_lock("plan"))

    errors = _queued_appends(store, store.journal_open(), [f"r.{i}" for i in range(1, 6)], force_unlocked)
    assert [type(e) for e in errors] == [LockLostError] * 5
    assert all("refusing to write the apply journal" in str(e) for e in errors)
    assert store.read_journal() == [Sunk("r.0")]
    store.release_lock(info)
    other.release_lock(taken[0])


def test_a_failed_batch_write_gives_each_appender_its_own_outcome(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk refuses the batch (ENOSPC) and then has room again: each line is written alone,
    once, and every appender returns with its record durable."""
    store = LocalBackend(tmp_path / "keyform.state.json")
    real = fsio_append_lines
    calls: list[int] = []

    def flaky(fh: BinaryIO, lines: list[str]) -> None:
        calls.append(len(lines))
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fh, lines)

    monkeypatch.setattr(local, "append_lines", flaky)
    assert _queued_appends(store, store.journal_open(), [str(i) for i in range(4)]) == []
    assert calls[0] == 4 and calls[1:] == [1, 1, 1, 1]
    assert sorted(r.seq for r in store.read_journal() if isinstance(r, Sunk)) == ["0", "1", "2", "3"]


def test_dotenv_writes_through_its_cache_match_writes_that_parse_the_file_each_time(tmp_path: Path) -> None:
    rng = random.Random(7)
    cached, fresh = tmp_path / "cached.env", tmp_path / "fresh.env"
    for path in (cached, fresh):
        path.write_text("# keep me\nexport OLD=1\nOLD=dup\nTAIL='x y'")  # no final newline
    sink = DotenvSink(cached)
    for i in range(300):
        name = rng.choice(["OLD", "TAIL", f"N{rng.randrange(40)}", f"NEW_{i}"])
        value = rng.choice([f"v{i}", f"with space {i}", f"it's {i}", f"multi\nline {i}"])
        if rng.random() < 0.1:
            sink.remove(name)
            DotenvSink(fresh).remove(name)
        else:
            sink.write("k", name, value)
            DotenvSink(fresh).write("k", name, value)  # a new instance: no cache
        assert cached.read_bytes() == fresh.read_bytes(), i


def test_a_batch_whose_fsync_fails_is_cut_off_and_each_line_written_once(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """EIO on the batch's fsync, after its lines reached the file: they are cut off again, and each
    appender writes its own line alone, once (they were all in the journal twice)."""
    store = LocalBackend(tmp_path / "keyform.state.json")
    journal = store.journal_open()
    real, calls = os.fsync, []

    def flaky(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(os, "fsync", flaky)
    assert _queued_appends(store, journal, [str(i) for i in range(4)]) == []
    assert sorted(r.seq for r in store.read_journal() if isinstance(r, Sunk)) == ["0", "1", "2", "3"]


_FILLS_UP = """
import json, resource, signal, sys, threading, time
from pathlib import Path
from keyform.backends.local import LocalBackend
from keyform.journal import Sunk
store = LocalBackend(Path(sys.argv[1]) / "keyform.state.json")
journal = store.journal_open()
journal.append(Sunk("0"))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (store.journal_path.stat().st_size + 40, resource.RLIM_INFINITY))
durable, failed = [], []
def append(seq):
    try:
        journal.append(Sunk(seq))
        durable.append(seq)
    except Exception as exc:
        failed.append(type(exc).__name__)
store._journal_lock.acquire()
threads = [threading.Thread(target=append, args=(str(i),)) for i in range(1, 5)]
for t in threads:
    t.start()
while len(journal._batches._pending) < 4:
    time.sleep(0.001)
store._journal_lock.release()
for t in threads:
    t.join()
journal.close()
print(json.dumps({"durable": sorted(durable), "failed": failed, "kept": sorted(r.seq for r in store.read_journal()),
                  "whole": store.journal_path.read_bytes().endswith(b"\\n")}))
"""


def test_a_journal_that_fills_up_mid_batch_reports_exactly_the_lines_it_kept(tmp_path: Path) -> None:
    """The file has room for one more line and a half (a file size limit; a disk filling up acts
    alike), so the kernel takes part of the batch. Every append that returned is in the journal,
    every other one raised, and no torn line is left (all four returned "durable" though three
    were lost). In a child process: the limit is the whole process's."""
    out = subprocess.run([sys.executable, "-c", _FILLS_UP, str(tmp_path)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    got = json.loads(out)
    assert got["kept"] == ["0", *got["durable"]] and len(got["durable"]) == 1, got
    assert got["failed"] == ["StateError"] * 3 and got["whole"], got


def _leading_a_batch_of_four(store: LocalBackend, journal: LocalJournal) -> list[threading.Thread]:
    """Set up the main thread to lead a batch: it holds the journal lock, three workers queue up
    once it is pending, and a helper releases the lock when all four are. The workers' threads."""
    store._journal_lock.acquire()
    workers: list[threading.Thread] = []

    def start_workers() -> None:
        _wait_until(lambda: len(journal._batches._pending) == 1)
        workers.extend(_start([partial(journal.append, Sunk(s)) for s in ("1", "2", "3")])[0])
        _wait_until(lambda: len(journal._batches._pending) == 4)
        store._journal_lock.release()

    threading.Thread(target=start_workers, daemon=True).start()
    return workers


def test_a_ctrl_c_while_the_leader_wakes_its_batch_wakes_every_writer_first(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A real SIGINT handled in the main thread as it woke the first of its batch: the other writers
    were never woken and waited forever, their records durable. Now each is woken, then the
    Ctrl-C is raised."""
    store = LocalBackend(tmp_path / "keyform.state.json")
    journal = store.journal_open()
    real, wakes = groupcommit._Ticket.wake, []

    def wake(self: groupcommit._Ticket[str], state: str) -> None:
        wakes.append(state)
        if len(wakes) == 1:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, handled at the next call in this thread
        real(self, state)

    monkeypatch.setattr(groupcommit._Ticket, "wake", wake)
    # Python's Ctrl-C handler, even where SIGINT was ignored at start (a background job in CI)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    workers = _leading_a_batch_of_four(store, journal)
    try:
        with pytest.raises(KeyboardInterrupt):
            journal.append(Sunk("0"))
    finally:
        signal.signal(signal.SIGINT, previous)
    _wait_until(lambda: len(workers) == 3)
    for t in workers:
        t.join(5)
    assert not any(t.is_alive() for t in workers)
    journal.close()
    assert sorted(r.seq for r in store.read_journal() if isinstance(r, Sunk)) == ["0", "1", "2", "3"]


def test_a_ctrl_c_just_after_a_writer_took_the_lead_passes_it_on(tmp_path: Path) -> None:
    """Interrupted right after it made itself the leader (before it reached the code that hands
    the lead on), a writer left the queue "led" by nobody: every later write waited forever."""
    commit = GroupCommit[str](linger=0.0)
    code = GroupCommit.write.__code__
    source, first = inspect.getsourcelines(GroupCommit.write)
    target = first + next(i for i, line in enumerate(source) if "if ticket.state != _LEAD:" in line)
    fired: list[int] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code is not code:
            return None

        def line(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line" and frame.f_lineno == target and not fired:
                fired.append(target)
                raise KeyboardInterrupt  # as a SIGINT handled there would
            return line
        return line

    written: list[str] = []
    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            commit.write(threading.Lock, "a", written.extend, partial(written.append, "a"))
    finally:
        sys.settrace(None)
    assert fired == [target]
    later = threading.Thread(target=commit.write, args=(threading.Lock, "b", written.extend,
                                                        partial(written.append, "b")), daemon=True)
    later.start()
    later.join(5)
    assert not later.is_alive() and written == ["b"]


def test_a_pending_write_never_shows_its_secret() -> None:
    """A sink's pending entry carries its secret: a ticket's repr (in a traceback with locals, a
    debugger, a log of the queue) shows its state only."""
    ticket = groupcommit._Ticket(("API_KEY", "sk_live_CANARY_in_a_ticket\n"))
    assert "CANARY" not in repr(ticket) and "pending" in repr(ticket)
