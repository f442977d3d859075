"""The per-instance rate limiter (providers/ratelimit.py): configured rates space every attempt, a
429 pauses the whole instance and decreases once per episode, the learned rate falls and grows back,
and the statistics count 429s and paused time once. A fake clock makes the timing exact."""

from __future__ import annotations

import threading
import time

import pytest

from keyform.model import RateLimit
from keyform.providers.ratelimit import BETA, Limiter, NotAdmitted, RateEvent


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def limiter(limit: RateLimit | None = None, concurrency: int = 16) -> tuple[Limiter, FakeClock, list[RateEvent]]:
    clock, events = FakeClock(), list[RateEvent]()
    lim = Limiter("questra-prod", limit, concurrency=concurrency, clock=clock, sleep=clock.sleep,
                  on_event=events.append)
    return lim, clock, events


@pytest.mark.parametrize(("burst", "expected"), [(1, [0.0, 0.1, 0.2, 0.3, 0.4]), (3, [0.0, 0.0, 0.0, 0.1, 0.2])])
def test_a_configured_rate_spaces_every_attempt(burst: int, expected: list[float]) -> None:
    lim, _, _ = limiter(RateLimit(10.0, burst))
    sent = [round(lim.before_attempt().sent - 100.0, 6) for _ in range(5)]
    assert sent == expected


def test_a_configured_rate_after_an_idle_spell_allows_only_its_burst() -> None:
    lim, clock, _ = limiter(RateLimit(10.0, 2))
    lim.before_attempt()
    clock.now += 60.0  # a minute idle does not bank 600 attempts
    start = clock.now
    sent = [round(lim.before_attempt().sent - start, 6) for _ in range(4)]
    assert sent == [0.0, 0.0, 0.1, 0.2]


def test_in_flight_429s_decrease_once_then_a_new_episode_decreases_again() -> None:
    lim, clock, events = limiter(concurrency=16)
    tickets = [lim.before_attempt() for _ in range(16)]
    clock.now += 0.05
    for t in tickets:
        lim.throttled(t, 1.0, 0.0)
    assert [(e.concurrency_before, e.concurrency_after) for e in events] == [(16, 8)]
    assert events[0].wait == 1.0 and events[0].instance == "questra-prod" and events[0].rate is not None
    clock.now += 1.0
    lim.throttled(lim.before_attempt(), 1.0, 0.0)  # sent as the pause ended: the same episode's echo
    assert len(events) == 1
    clock.now += 3.0
    lim.throttled(lim.before_attempt(), 1.0, 0.0)  # one more: the limit is lower, a new episode
    assert [(e.concurrency_before, e.concurrency_after) for e in events] == [(16, 8), (8, 4)]
    stats = lim.stats()
    assert stats.throttled == 18 and stats.concurrency == 4 and stats.configured is None


def test_the_learned_rate_drops_to_beta_of_the_rate_accepted_then_grows_back_past_it() -> None:
    lim, clock, _ = limiter()
    for _ in range(50):  # 50 calls accepted over 0.5 s: 100/s
        lim.succeeded(lim.before_attempt())
        clock.now += 0.01
    for _ in range(20):  # and 20 refused ones sent in the same time do not count
        lim.before_attempt()
    lim.throttled(lim.before_attempt(), 0.0, 0.0)
    after_429 = lim.stats().rate
    assert after_429 is not None and after_429 == pytest.approx(BETA * 100, rel=0.05)
    rates = []
    for _ in range(100):  # ten seconds of successes, sending as fast as allowed
        ticket = lim.before_attempt()
        clock.now += 0.1
        lim.succeeded(ticket)
        rates.append(lim.stats().rate or 0.0)
    assert rates == sorted(rates)  # never falls while calls succeed
    assert rates[-1] > 100  # and probes beyond the rate that was refused


def test_the_concurrency_window_grows_by_one_per_window_of_successes() -> None:
    lim, clock, _ = limiter(concurrency=16)
    lim.throttled(lim.before_attempt(), 0.0, 0.0)
    clock.now += 10.0
    lim.throttled(lim.before_attempt(), 0.0, 0.0)
    assert lim.concurrency == 4
    for _ in range(4):
        lim.succeeded(lim.before_attempt())
    assert lim.concurrency == 4  # +1/window per success: ~one window of successes for +1
    lim.succeeded(lim.before_attempt())
    assert lim.concurrency == 5
    for _ in range(1000):
        lim.succeeded(lim.before_attempt())
    assert lim.concurrency == 16  # never beyond --parallelism


def test_overlapping_pauses_count_once() -> None:
    lim, clock, _ = limiter()
    first, second, third = (lim.before_attempt() for _ in range(3))
    lim.throttled(first, 1.0, 0.0)
    clock.now += 0.2
    lim.throttled(second, 0.5, 0.0)  # inside the first pause
    clock.now += 0.7
    lim.throttled(third, 1.0, 0.0)  # 0.1 s of it overlaps
    assert lim.stats().paused_seconds == pytest.approx(0.9)  # what has passed of the pauses so far
    clock.now += 1.0
    assert lim.stats().paused_seconds == pytest.approx(1.9)
    assert lim.stats().throttled == 3


def test_no_retry_after_pauses_for_the_backoff_given() -> None:
    lim, _, events = limiter()
    delay, until = lim.throttled(lim.before_attempt(), None, 0.37)
    assert delay == 0.37 and until == pytest.approx(100.37) and events[0].wait == 0.37


def test_a_configured_limit_keeps_its_rate_and_window_on_a_429() -> None:
    lim, _, events = limiter(RateLimit(20.0), concurrency=8)
    lim.throttled(lim.before_attempt(), 1.0, 0.0)
    assert lim.before_attempt(waited_until=101.0).sent == 100.05  # its own pause slept through: only its turn
    assert (events[0].concurrency_before, events[0].concurrency_after, events[0].rate) == (8, 8, 20.0)
    assert lim.stats().rate == 20.0 and lim.stats().configured == RateLimit(20.0)


def test_a_pause_holds_back_every_other_thread_of_the_instance() -> None:
    import time

    lim = Limiter("q", concurrency=4)
    t0 = time.monotonic()  # before the pause is set: a stall in between cannot shorten the wait seen
    lim.throttled(lim.before_attempt(), 0.3, 0.0)
    started: list[float] = []

    def other() -> None:
        lim.before_attempt()
        started.append(time.monotonic())

    threads = [threading.Thread(target=other) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(started) == 3 and min(started) - t0 >= 0.25


def test_the_window_bounds_calls_in_flight_and_is_reentrant() -> None:
    lim = Limiter("q", concurrency=2)
    inside, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def call() -> None:
        with lim.call(), lim.call():  # the applier's hold covers the HTTP layer's
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            release.wait(5)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    threading.Timer(0.2, release.set).start()
    for t in threads:
        t.join(5)
    assert peak[0] == 2 and inside[0] == 0


def test_the_shared_gate_is_held_only_while_an_attempt_is_out() -> None:
    gate = threading.Semaphore(1)
    lim = Limiter("q", concurrency=4)
    with lim.call(gate=gate):
        lim.before_attempt()
        assert not gate.acquire(blocking=False)  # held by the attempt
        lim.sent()
        assert gate.acquire(blocking=False)  # given back between attempts (e.g. during a retry's wait)
        gate.release()
    assert gate.acquire(blocking=False)


def test_a_pause_past_the_calls_deadline_is_not_waited_for() -> None:
    """`before_attempt(timeout=...)`: the instance's pause ends after the call's deadline, so it
    raises at once (no time passes), naming the pause's status and what is left of it."""
    lim, clock, _ = limiter()
    lim.throttled(lim.before_attempt(), 30.0, 0.0, status=429)
    with pytest.raises(NotAdmitted) as held:
        lim.before_attempt(timeout=5.0)
    assert clock.now == 100.0
    assert (held.value.cause, held.value.wait, held.value.status) == ("paused", 30.0, 429)
    assert lim.stats().throttled == 1 and lim.stats().paused_seconds == 0.0  # none of the pause has passed
    clock.now += 30.0
    assert lim.stats().paused_seconds == 30.0
    assert lim.before_attempt(timeout=5.0).sent == 130.0  # once it is over, attempts go out again


def test_a_send_rate_turn_past_the_deadline_is_not_taken() -> None:
    """A turn that comes after the call's deadline raises at once, and stays free: the next call
    that can use it gets it, so the configured rate's spacing is unchanged."""
    lim, clock, _ = limiter(RateLimit(1.0))
    assert lim.before_attempt().sent == 100.0
    with pytest.raises(NotAdmitted) as late:
        lim.before_attempt(timeout=0.5)
    assert (late.value.cause, late.value.wait, late.value.rate) == ("rate", 1.0, 1.0)
    assert clock.now == 100.0
    assert lim.before_attempt(timeout=2.0).sent == 101.0  # the same turn, not the one after it
    assert lim.before_attempt().sent == 102.0


def test_a_first_attempt_s_turn_past_the_deadline_is_waited_for_and_not_charged_to_it() -> None:
    """A call that has sent nothing waits for its turn however far it is, and says how long
    (`Ticket.paced`): its deadline starts when it may be sent (an adversarial pass found a
    configured `100/h` failed 8 of 10 creates 'not sent'); the spacing is unchanged."""
    lim, clock, _ = limiter(RateLimit(1.0))
    assert lim.before_attempt().sent == 100.0
    late = lim.before_attempt(timeout=0.5, first=True)
    assert (late.sent, late.paced) == (101.0, 1.0) and clock.now == 101.0
    assert lim.before_attempt().sent == 102.0


def test_a_turn_within_the_deadline_is_waited_for_as_before() -> None:
    lim, clock, _ = limiter(RateLimit(2.0))
    lim.before_attempt(timeout=1.0)
    assert lim.before_attempt(timeout=1.0).sent == 100.5
    assert clock.now == 100.5


def test_no_free_gate_slot_by_the_deadline_is_not_admitted() -> None:
    """The shared --parallelism slot is waited for only until the call's deadline (real time: a
    semaphore), and nothing is held afterwards."""
    gate = threading.Semaphore(1)
    gate.acquire()  # another instance's attempt holds the only slot
    lim = Limiter("q", concurrency=4)
    with lim.call(gate=gate):
        started = time.monotonic()
        with pytest.raises(NotAdmitted) as late:
            lim.before_attempt(timeout=0.3)
        assert 0.25 <= time.monotonic() - started < 2.0
        assert late.value.cause == "slot"
        lim.sent()  # what HttpClient does after every attempt: a no-op here
    gate.release()
    assert gate.acquire(blocking=False)
