"""The apply's DAG scheduler on its own (`keyform.scheduler`): dependency order, the smallest ready
key first, at most 2N changes at once, a fair share per provider instance, failures skipping their
dependants, a halt, a stop, an abandon and a cycle. `execute` is a plain function here, no provider."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from keyform.errors import KeyformError
from keyform.plan import Action, Change
from keyform.scheduler import Abandon, Callbacks, Scheduler


def change(address: str, *depends_on: str, provider: str = "qp") -> Change:
    return Change(address=address, action=Action.CREATE, provider=provider, provider_type="questra",
                  depends_on=depends_on)


@dataclass
class Log:
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def callbacks(self) -> Callbacks:
        return Callbacks(start=lambda c: self.events.append(("start", c.address, "")),
                         done=lambda c, elapsed, note: self.events.append(("done", c.address, "")),
                         failed=lambda c, exc, elapsed: self.events.append(("failed", c.address, str(exc))),
                         skipped=lambda c, reason: self.events.append(("skipped", c.address, reason)))

    def of(self, kind: str) -> list[str]:
        return [a for k, a, _ in self.events if k == kind]


def test_serial_runs_in_dependency_order_smallest_ready_key_first() -> None:
    ran: list[str] = []
    log = Log()
    changes = [change("d", "a"), change("b"), change("c", "d"), change("a")]
    assert Scheduler(changes, lambda c: ran.append(c.address), 1, log.callbacks()).run() == []
    assert ran == ["a", "b", "d", "c"]  # a and b ready first; d once a is done; c once d is
    assert log.of("start") == ran and log.of("done") == ran


def test_dependencies_outside_the_set_and_on_itself_do_not_block() -> None:
    ran: list[str] = []
    changes = [change("a", "elsewhere", "a"), change("b", "a")]
    Scheduler(changes, lambda c: ran.append(c.address), 4, Log().callbacks()).run()
    assert ran == ["a", "b"]


def test_at_most_twice_parallelism_changes_run_at_once() -> None:
    barrier = threading.Barrier(4, timeout=10)  # passes only if 4 changes run at the same time
    lock, running, peak = threading.Lock(), [0], [0]

    def execute(c: Change) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if c.address < "e":
            barrier.wait()
        with lock:
            running[0] -= 1

    log = Log()
    Scheduler([change(f"{x}") for x in "abcdefghij"], execute, 2, log.callbacks()).run()
    assert peak[0] == 4
    assert sorted(log.of("done")) == list("abcdefghij")


def test_an_instance_holds_at_most_its_fair_share_of_the_places() -> None:
    # parallelism 2 is 4 places; with two instances that have changes left, each holds at most 2:
    # the slow instance's changes (first by key), which wait until the fast one's are done, would
    # otherwise take all 4 places and the fast ones would never start
    fast_done = threading.Event()
    finished: list[str] = []
    lock = threading.Lock()

    def execute(c: Change) -> None:
        if c.provider == "slow":
            assert fast_done.wait(10), "the fast instance's changes never got a place"
        with lock:
            finished.append(c.address)
            if sum(1 for a in finished if a.startswith("f")) == 2:
                fast_done.set()

    changes = [change(f"a{i}", provider="slow") for i in range(6)] + [change("f1", provider="fast"),
                                                                        change("f2", provider="fast")]
    log = Log()
    Scheduler(changes, execute, 2, log.callbacks()).run()
    assert log.of("failed") == []
    assert sorted(finished[:2]) == ["f1", "f2"] and len(finished) == 8


def test_parked_changes_are_moved_only_as_many_as_may_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1,000 changes over 10 instances, parallelism 16 (a share of 4 places each): the changes held
    # back for their instance's share are moved to the ready heap only as far as they can start.
    # Moving them all after every completion (each to be parked again) cost O(changes² / instances)
    # heap operations: ~57 per change here, CPU every create of a large apply paid.
    import heapq

    import keyform.scheduler as scheduler

    ops = [0]
    real_push, real_pop = heapq.heappush, heapq.heappop

    class CountingHeapq:
        @staticmethod
        def heappush(heap: list[str], item: str) -> None:
            ops[0] += 1
            real_push(heap, item)

        @staticmethod
        def heappop(heap: list[str]) -> str:
            ops[0] += 1
            return real_pop(heap)

        heapify = staticmethod(heapq.heapify)

    monkeypatch.setattr(scheduler, "heapq", CountingHeapq)
    changes = [change(f"k{o}-{i:03d}", provider=f"org{o}") for o in range(10) for i in range(100)]
    ran: list[Change] = []
    log = Log()
    assert Scheduler(changes, ran.append, 16, log.callbacks()).run() == []
    assert sorted(c.address for c in ran) == sorted(c.address for c in changes) and log.of("failed") == []
    assert ops[0] <= 6 * len(changes), f"{ops[0]} heap operations for {len(changes)} changes"


def test_a_failure_skips_its_dependants_transitively_and_nothing_else() -> None:
    def execute(c: Change) -> None:
        if c.address == "a":
            raise KeyformError("boom")

    log = Log()
    changes = [change("a"), change("b", "a"), change("c", "b"), change("x")]
    assert Scheduler(changes, execute, 1, log.callbacks()).run() == []
    assert [e for e in log.events if e[0] == "failed"] == [("failed", "a", "boom")]
    assert [e for e in log.events if e[0] == "skipped"] == [("skipped", "b", "skipped: a failed"),
                                                            ("skipped", "c", "skipped: b failed")]
    assert log.of("done") == ["x"]


def test_once_halted_nothing_more_starts_and_the_rest_is_skipped_with_the_reason() -> None:
    halt: list[str] = []

    def execute(c: Change) -> None:
        halt.append("halted: the lock is gone")

    log = Log()
    changes = [change("a"), change("b"), change("c", "b"), change("d", "c")]
    assert Scheduler(changes, execute, 1, log.callbacks(), halted=lambda: halt[0] if halt else None).run() == []
    assert log.of("start") == ["a"] and log.of("done") == ["a"]
    assert [(a, r) for k, a, r in log.events if k == "skipped"] == [
        ("b", "halted: the lock is gone"), ("c", "skipped: b failed"), ("d", "skipped: c failed")]


def test_once_stopping_nothing_more_starts_and_run_returns_the_changes_left() -> None:
    stop = threading.Event()
    log = Log()
    changes = [change("a"), change("b"), change("c", "a")]
    left = Scheduler(changes, lambda c: stop.set(), 1, log.callbacks(), stopping=stop.is_set).run()
    assert log.of("done") == ["a"]
    assert [c.address for c in left] == ["b", "c"]


def test_abandon_stops_waiting_and_names_the_changes_in_flight() -> None:
    release = threading.Event()
    started = threading.Event()

    def execute(c: Change) -> None:
        started.set()
        release.wait(10)

    def start(c: Change) -> None:
        if c.address == "b":  # the second Ctrl-C arrives while "a" runs
            assert started.wait(10)
            raise Abandon

    cb = Callbacks(start=start, done=lambda c, e, n: None, failed=lambda c, x, e: None, skipped=lambda c, r: None)
    try:
        with pytest.raises(Abandon) as caught:
            Scheduler([change("a"), change("b"), change("c")], execute, 2, cb).run()
        assert [c.address for c in caught.value.in_flight] == ["a"]
    finally:
        release.set()


def test_a_dependency_cycle_is_an_error_not_a_hang() -> None:
    ran: list[str] = []
    with pytest.raises(KeyformError, match="dependency deadlock: a, b"):
        Scheduler([change("a", "b"), change("b", "a"), change("c")], lambda c: ran.append(c.address), 2,
                  Log().callbacks()).run()
    assert ran == ["c"]
