"""How fast keyform calls one provider instance: a configured rate limit, or one it learns.

Every provider instance (one API account: a Questra org, a TextQL token) has one `Limiter`, shared
by every call made through it (list pages, creates, updates, revocations, and their retries). It
holds three things:

- **A concurrency window** (`call`): at most `concurrency` calls at once. It starts at
  `--parallelism`; while no rate limit is configured it is AIMD: halved when the API says it is
  overloaded (429, or Connect `resource_exhausted`), raised by one per window of successful calls.
- **A send rate** (`before_attempt`): a token bucket (GCRA) that spaces the attempts. With
  `rate_limit: 20/s` in the manifest it is that rate and `burst`, fixed. Without one it is off until
  the first 429; it is then learned much as the AWS SDKs' adaptive retry mode does: on a 429 the
  rate drops to `BETA` x the rate the API accepted over the last second (what was sent includes
  the refused calls), and while calls succeed it grows back along a cubic curve (CUBIC, as TCP):
  slowly near the rate that was refused, faster beyond it. The concurrency window alone cannot
  find a limit: on a fast network one call at a time already sends hundreds of requests a second.
- **A pause** (`throttled`): a 429 stops *every* call of the instance until its `Retry-After` (or a
  backoff with full jitter when it gives none), so the calls in flight do not keep hitting a limit
  the API just reported.

A 429 answered to an attempt sent before the last decrease, or soon after it (while the API's
bucket refills: `_hold_until`), does not decrease again (one decrease per congestion episode, as
TCP does per round trip): 16 calls in flight that all get 429 halve the window once, not 16
times. Each decrease is reported as a `RateEvent`; `stats()`
gives the 429s received and the time spent paused.

Every wait here for one attempt (the pause, its turn in the send rate, a `--parallelism` slot)
ends by the call's deadline (`before_attempt`'s `timeout`, what is left of the provider option
`deadline`): an attempt that cannot be admitted by then is not waited for. `before_attempt` raises
`NotAdmitted` at once (a pause or a turn that ends after the deadline: waiting would send nothing),
or when the deadline passes while it waits for a slot; nothing was sent, and the turn it could not
use is not taken from the send rate. The window, the rate and the pause are unchanged by it. Queueing
for a place in the concurrency window (`call`) comes before a call starts, and is not part of its
deadline; nor is queueing for a turn in the send rate behind other calls' turns: a first attempt's
whole wait for its turn, a retry's beyond one interval of the rate (`Ticket.paced`).

**A breaker** (`ended`, `throttled`): the API is taken to refuse everything for now, and no further
attempt is sent to the instance in this run (`NotAdmitted("broken")`), once either
- `BREAK_AFTER` calls in a row ended refused for their rate (each one retried for its whole budget
  or deadline, or told to wait longer than it may), or
- the instance answered nothing but refusals for its `deadline` (`_span`, 60 s by default: from the
  sending of the first refused attempt, never from before the last other answer), and BREAK_AFTER
  more refusals came after that, whichever calls they belonged to.
The same breaker stops an instance no call can reach (`unreachable`): BREAK_AFTER calls in a row,
each of whose attempts failed to connect, with no answer between them.
The second is what ends an apply against an API that refuses every call within about its deadline:
the calls' retries wait their turns in the send rate, which the refusals have brought down to
MIN_RATE, and that queue is not charged to their deadlines (`Ticket.paced`), so counting finished
calls alone let 70 creates at --parallelism 32 against `Retry-After: 1` run for 10 minutes (each
call 580 s). Either way keyform stops knocking on a door the API keeps shut. An answer that is not
a refusal (`answered`) resets both counts.

After a Ctrl-C (`configure`'s or `watch`'s `stopping`), no wait here runs on: a call waiting for the
pause or for its turn ends at once with `NotAdmitted("stopped")`, unsent, and a caller sleeping
before a retry (`nap`) wakes. Waits are cut into steps of at most `STOP_POLL` seconds to look. The
`ProviderPool` gives every instance's limiter its `stopping` when it opens it (`watch`), so this
holds in a plan's listing as in an apply: a listing waiting on a long `Retry-After`, or for its next
page's turn at a `rate_limit` of 1/m, ends at the first Ctrl-C. A wait of WAIT_NOTICE seconds or
more is announced to `watch`'s `on_wait` (a `RateWait`: `plan` says it on stderr), so it does not
look like a hang.

Instances never share a limiter, so two orgs with different limits do not slow each other.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace

from keyform.bounded import progressed, unclocked
from keyform.errors import NotSentError, ProviderError
from keyform.model import RateLimit
from keyform.records import record

BETA = 0.7  # multiplicative decrease of the learned rate (AWS adaptive mode, CUBIC)
CUBIC_C = 0.15  # the cubic's scale, in requests/s per s^3 (AWS uses 0.4: probes faster, refused more)
MIN_RATE = 0.5  # requests/s: the learned rate never goes below this
MEASURE_WINDOW = 1.0  # seconds of attempts over which the sent rate is measured
MIN_SPAN = 0.25  # seconds: the shortest span an accepted rate is measured over after a decrease
HOLD_MIN, HOLD_MAX = 0.25, 5.0  # seconds after a decrease during which a 429 does not decrease again
STOP_POLL = 0.1  # seconds: the longest step of any wait, between looks at `stopping`
BREAK_AFTER = 3  # calls in a row refused to their end after which nothing more is sent (`ended`)
MAX_WAIT = 86400.0  # seconds: the longest pause a refusal sets (a longer or non-finite Retry-After is a day)
WAIT_NOTICE = 2.0  # seconds: a wait for the pause or a turn at least this long is announced (`watch`)


def seconds_text(seconds: float) -> str:
    """A wait as a message shows it: `0.25 s`, `1.0 s`, `3601.3 s`; `a day or more` from MAX_WAIT
    (an API's `Retry-After: 1e30` is no figure to print in full)."""
    if not seconds < MAX_WAIT:  # (NaN too)
        return "a day or more"
    return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s"


def _never() -> bool:
    return False


def nap(seconds: float, sleep: Callable[[float], None], stopping: Callable[[], bool]) -> bool:
    """`sleep` `seconds` in steps of at most STOP_POLL; False when it ended early because
    `stopping()` came true (a Ctrl-C). Without a `stopping` (`_never`: no apply) in one sleep."""
    if stopping is _never:
        sleep(seconds)
        return True
    left = seconds
    while left > 0:
        if stopping():
            return False
        step = min(left, STOP_POLL)
        sleep(step)
        left -= step
    return not stopping()


@record
class RateEvent:
    """The API refused a call for its rate: the instance pauses `wait` seconds; the concurrency
    window went from `concurrency_before` to `concurrency_after`; `rate` is the send rate now used
    (requests/s), None when the instance is not rate-limited."""

    instance: str
    wait: float
    concurrency_before: int
    concurrency_after: int
    rate: float | None
    status: int = 429


@record
class RateWait:
    """An attempt of `instance` waits `wait` seconds before it may be sent: for the instance's pause
    after a refusal of status `status` (`cause` "paused"), or for its turn at the send rate `rate`
    requests/s (`cause` "rate"); `configured` is the instance's `rate_limit`, if any."""

    instance: str
    wait: float
    cause: str
    status: int | None = None
    rate: float | None = None
    configured: RateLimit | None = None


@record
class RateStats:
    """What one instance's limiter saw: 429s received, seconds paused (overlapping pauses once),
    the concurrency window and send rate at the end, the configured limit if any, and whether it
    stopped sending (`broken`: BREAK_AFTER calls in a row refused to their end)."""

    instance: str
    throttled: int
    paused_seconds: float
    concurrency: int
    rate: float | None
    configured: RateLimit | None
    broken: bool = False
    by_status: tuple[tuple[int, int], ...] = ()  # (status, refusals of it), by status: 429, or 503 resource_exhausted


class NotAdmitted(Exception):
    """`before_attempt` could not admit the attempt within its `timeout` (the call's deadline), so it
    was not sent. `cause`: `paused` (the instance's pause, begun by a refusal of status `status`, has
    `wait` seconds left), `rate` (its turn in the send rate, `rate` requests/s, is `wait` seconds
    away), `slot` (no `--parallelism` slot came free in time), `stopped` (the apply was interrupted
    while the attempt waited: `configure`'s `stopping`) or `broken` (the instance stopped sending
    after `BREAK_AFTER` calls in a row were refused to their end: `ended`; `status` is the last
    refusal's)."""

    def __init__(self, cause: str, wait: float, *, status: int | None = None, rate: float | None = None,
                 why: str = "", unreachable: bool = False) -> None:
        super().__init__(cause)
        self.cause = cause
        self.wait = wait
        self.status = status
        self.rate = rate
        self.why = why  # `broken`: why the instance stopped sending
        self.unreachable = unreachable  # `broken` because no call could reach the API (`Limiter.unreachable`)


def not_admitted_error(instance: str, what: str, exc: NotAdmitted, deadline: float,
                       scrub: Callable[[str], str] = str) -> ProviderError:
    """The error of a call whose attempt `before_attempt` did not admit (nothing was sent, so never
    ambiguous), its message passed through `scrub`: held by the instance's pause it carries the
    status that began the pause and the pause's remaining seconds as `retry_after`; after a Ctrl-C
    it is a `NotSentError`."""
    head, limit = f"{instance}: {what}: ", f"the call's {deadline:g}s deadline (provider option `deadline`)"
    if exc.cause == "stopped":
        return NotSentError(scrub(head + "not sent: the apply was interrupted while it waited"))
    if exc.cause == "paused":
        more = f"{exc.wait:.1f}s" if exc.wait < MAX_WAIT else seconds_text(exc.wait)
        return ProviderError(scrub(head + f"rate-limited: not sent, the instance is paused {more} more "
                                          f"after a {exc.status} answer, past {limit}"),
                             status=exc.status, retry_after=exc.wait)
    if exc.cause == "broken":
        return ProviderError(scrub(head + f"not sent: {broken_words(exc)}"), status=exc.status)
    if exc.cause == "rate":
        rate = f" of {exc.rate:.3g}/s" if exc.rate is not None else ""
        return ProviderError(scrub(head + f"not sent: its turn at the instance's send rate{rate} comes after {limit}"))
    return ProviderError(scrub(head + f"not sent: no free --parallelism slot within {limit}"))


def broken_words(exc: NotAdmitted) -> str:
    """Why the instance stopped sending (`NotAdmitted("broken")`), and what to do."""
    if exc.unreachable:
        return (f"{exc.why}, so keyform sends it nothing more in this run; check the provider's `base_url`, "
                "its proxy if it has one, and the network, then run again")
    why = exc.why or f"the API refused the last {BREAK_AFTER} calls for their rate to the end"
    return (f"{why} (last: {exc.status}), so keyform sends it nothing more in this run; try again later, "
            "or set a lower `rate_limit`")


@record
class Ticket:
    """One attempt's admission: when it was sent, and in which congestion episode."""

    sent: float
    epoch: int
    paced: float = 0.0  # seconds it waited in the send rate's queue (not its deadline's: `before_attempt`)


class Limiter:
    """One provider instance's concurrency window, send rate and pause. Thread-safe."""

    def __init__(self, instance: str, limit: RateLimit | None = None, *, concurrency: int = 10,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 on_event: Callable[[RateEvent], None] | None = None) -> None:
        self.instance = instance
        self.limit = limit
        self._clock = clock
        self._sleep = sleep
        self._on_event = on_event
        self._stopping: Callable[[], bool] = _never
        self._on_wait: Callable[[RateWait], None] | None = None
        self._announced = 0.0  # the end of the last pause announced to `_on_wait`
        self._cond = threading.Condition()
        self._local = threading.local()
        self._max = max(1, concurrency)
        self._window = float(self._max)
        self._inflight = 0
        self._pause_until = 0.0
        self._pause_status = 429  # the status of the refusal that set `_pause_until`
        self._epoch = 0
        self._hold_until = 0.0
        # send rate: GCRA over `_rate` (None: unlimited) with `_burst` attempts of tolerance
        self._rate: float | None = limit.per_second if limit else None
        self._burst = limit.burst if limit else 1
        self._tat = 0.0  # theoretical arrival time of the next attempt
        # learned-rate state (CUBIC): the rate last refused, the cubic's zero point, when it was refused
        self._w_max = 0.0
        self._k = 0.0
        self._last_fail = 0.0
        self._sends: deque[float] = deque()
        self._accepted: deque[float] = deque()  # when answers that were not refusals came
        self._first_send: float | None = None
        # the breaker: calls in a row that ended refused for their rate (`ended`), and the refusals
        # answered since the last other answer (`throttled`): how many, since when, over what span
        self._refused_calls = 0
        self._unreachable_calls = 0  # calls in a row that never reached the API (`unreachable`)
        self._broken = False
        self._broken_why = ""
        self._broken_unreachable = False  # broken by `unreachable`, not by refusals for the rate
        self._span, self._span_noted = 60.0, False
        self._refusing_since: float | None = None
        self._refused_run = 0  # refusals since the last other answer, once they have gone on for `_span`
        self._answered_at = -math.inf
        # statistics
        self._throttled = 0
        self._by_status: dict[int, int] = {}
        self._paused = 0.0

    def __repr__(self) -> str:
        return f"Limiter({self.instance!r}, {self.limit})"

    @property
    def adaptive(self) -> bool:
        return self.limit is None

    def configure(self, concurrency: int, on_event: Callable[[RateEvent], None] | None = None,
                  stopping: Callable[[], bool] | None = None) -> None:
        """Start the concurrency window at `concurrency` (--parallelism), its ceiling too. Once
        `stopping()` is true (a Ctrl-C), no attempt waiting here is sent (`NotAdmitted("stopped")`).
        It is called often, from any thread, under this limiter's lock: it must only read a flag."""
        with self._cond:
            self._max = max(1, concurrency)
            self._window = float(self._max)
            if on_event is not None:
                self._on_event = on_event
            if stopping is not None:
                self._stopping = stopping
            self._cond.notify_all()

    def watch(self, stopping: Callable[[], bool] | None = None,
              on_wait: Callable[[RateWait], None] | None = None) -> None:
        """Once `stopping()` is true (a Ctrl-C, in any command), no attempt waiting here is sent and
        no nap runs on; `on_wait` (None: none) hears of each wait of WAIT_NOTICE seconds or more,
        from the waiting thread, possibly under this limiter's lock: it must only write a line.
        Unlike `configure`, the concurrency window is left as it is."""
        with self._cond:
            if stopping is not None:
                self._stopping = stopping
            self._on_wait = on_wait
            self._cond.notify_all()

    def _announce(self, wait: float, cause: str) -> None:
        """Tell `_on_wait` of a long wait (the pause: once per pause, whichever call waits first)."""
        callback = self._on_wait
        if callback is None or wait < WAIT_NOTICE:
            return
        if cause == "paused":
            if self._pause_until <= self._announced:
                return
            self._announced = self._pause_until
            callback(RateWait(self.instance, wait, cause, status=self._pause_status, configured=self.limit))
        else:
            callback(RateWait(self.instance, wait, cause, rate=self._rate, configured=self.limit))

    def sleeping_out_pause(self, wait: float) -> None:
        """The call a refusal answered sleeps out the pause itself (`throttled` gave it the time),
        for `wait` seconds, and says so to `watch`'s `on_wait` as a call waiting here would: only
        once it is known to wait. `throttled` does not say it: the call may then give up at once (a `Retry-After` past
        its deadline), and a notice `waiting a day or more` followed by that error was wrong."""
        with self._cond:
            self._announce(max(wait, self._pause_until - self._clock()), "paused")

    @property
    def stopping(self) -> Callable[[], bool]:
        """Whether the apply was interrupted (`configure`): a call should not send another attempt."""
        return self._stopping

    @property
    def wake(self) -> Callable[[], bool]:
        """What ends a `nap` here early: a Ctrl-C (`stopping`), or the breaker (nothing more will
        be sent: a call sleeping before its retry or for its turn ends now, not after it). Without
        a `stopping` (`_never`: a limiter no pool watches) a nap is one sleep."""
        return _never if self._stopping is _never else self._woken

    def _woken(self) -> bool:
        return self._broken or self._stopping()

    def note_deadline(self, seconds: float) -> None:
        """The instance's call `deadline` (the longest of its clients'): refusals and nothing else
        for that long break the instance (`throttled`)."""
        with self._cond:
            if not self._span_noted or seconds > self._span:
                self._span, self._span_noted = max(0.0, seconds), True

    @property
    def concurrency(self) -> int:
        with self._cond:
            return int(self._window)

    # -- the concurrency window ------------------------------------------------------------------

    @contextmanager
    def call(self, gate: threading.Semaphore | None = None) -> Iterator[None]:
        """Hold one place in the concurrency window for a whole call (its retries included).
        Re-entrant per thread: an outer holder (the applier) covers the inner one (the HTTP call).

        `gate` (the applier's --parallelism slots, shared by all instances) is taken for each
        attempt only once it may be sent (`before_attempt`) and given back when it is answered
        (`sent`): a call waiting for this instance's pause or turn holds no slot another instance
        could use."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        with unclocked(), self._cond:
            while self._inflight >= int(self._window):
                self._cond.wait()
            self._inflight += 1
        self._local.depth, self._local.gate = 1, gate
        try:
            yield
        finally:
            self._local.depth, self._local.gate = 0, None
            with self._cond:
                self._inflight -= 1
                self._cond.notify_all()

    def carry(self) -> Callable[[], None]:
        """The calling thread's place here (the window's, and its --parallelism `gate`), to install
        in the thread that runs a bounded plug-in call for it (`keyform.bounded`): that call's own
        attempts then take no second place in the window (which, every place held by an outer
        call, would wait for ever), and their slot from the same gate."""
        depth, gate = getattr(self._local, "depth", 0), getattr(self._local, "gate", None)

        def install() -> None:
            self._local.depth, self._local.gate = depth, gate

        return install

    def sent(self) -> None:
        """The attempt `before_attempt` admitted is over (answered or failed): give back its gate slot."""
        if getattr(self._local, "holding", False):
            self._local.holding = False
            self._local.gate.release()

    # -- each attempt ----------------------------------------------------------------------------

    def before_attempt(self, waited_until: float = 0.0, timeout: float | None = None, *,
                       first: bool = False) -> Ticket:
        """Wait out the instance's pause (unless this thread already slept through it:
        `waited_until`) and for the attempt's turn in the send rate; then admit it. With `timeout`
        (seconds left of the call's deadline), every wait ends by then: `NotAdmitted` when the
        pause or the turn ends later (raised at once), or no gate slot came free in time.

        A call's `first` attempt (nothing sent yet) waits for its turn however far it is, and that
        wait is not counted against `timeout` (`Ticket.paced` says how long it was, for the caller's
        deadline): the send rate queues calls, as the concurrency window does, and never fails one
        that has sent nothing (a configured `100/h` failed 8 of 10 creates 'not sent'). A retry is
        charged one interval of the rate at most (its own spacing: an API that keeps refusing still
        ends the call by its deadline); the rest of its wait is the turns other calls took ahead of
        it, a queue keyform keeps, and is not counted either (`paced`): under a learned rate, 32
        calls queued for their turns made every retry's turn 10 s away, and creates the API would
        have accepted failed `still 429 after 1 attempt` within a 5 s deadline."""
        with unclocked():  # (a plug-in's call is not stuck while it waits here: `keyform.bounded`)
            return self._before_attempt(waited_until, timeout, first=first)

    def _before_attempt(self, waited_until: float, timeout: float | None, *, first: bool) -> Ticket:
        end = None if timeout is None else self._clock() + timeout
        paced = queued = 0.0
        while True:
            with self._cond:
                if self._stopping():
                    raise NotAdmitted("stopped", 0.0)
                if self._broken:
                    raise self._broken_error()
                now = self._clock()
                pause = self._pause_until if self._pause_until > waited_until + 1e-6 else 0.0
                if now < pause:
                    if end is not None and pause > end:  # waiting would send nothing
                        raise NotAdmitted("paused", pause - now, status=self._pause_status)
                    self._announce(pause - now, "paused")
                    self._cond.wait(pause - now if self._stopping is _never else min(pause - now, STOP_POLL))
                    continue
                send_at = now
                if self._rate is not None:
                    interval = 1.0 / self._rate
                    send_at = max(now, self._tat - (self._burst - 1) * interval)
                    # other calls' turns ahead of this one: a queue, not charged to the deadline
                    queued = send_at - now if first else max(0.0, send_at - now - interval)
                    # its own interval past the deadline: leave the turn to one that can use it
                    if end is not None and not first and send_at - queued > end:
                        raise NotAdmitted("rate", send_at - now, rate=self._rate)
                    self._tat = max(self._tat, send_at) + interval
                if send_at <= now:
                    ticket = self._admit(now, end)
                    return replace(ticket, paced=paced) if paced else ticket
            self._announce(send_at - now, "rate")
            if not nap(send_at - now, self._sleep, self.wake):  # its turn is left taken: nothing else is sent now
                if not self._stopping():  # the breaker woke it (another call's refusal, meanwhile)
                    raise self._broken_error()
                raise NotAdmitted("stopped", 0.0)
            paced += queued
            end = None if end is None else end + queued
            with self._cond:
                now = self._clock()
                if now >= self._pause_until or self._pause_until <= waited_until + 1e-6:
                    ticket = self._admit(now, end)
                    return replace(ticket, paced=paced) if paced else ticket
            # a pause began while this attempt waited for its turn: wait it out, then take a new turn

    def _admit(self, now: float, end: float | None = None) -> Ticket:
        """(lock held) Count the attempt into the measured send rate, take the gate slot (waiting
        for it until `end` at most: `NotAdmitted` then)."""
        gate = getattr(self._local, "gate", None)
        if gate is not None and not getattr(self._local, "holding", False):
            self._cond.release()  # never block on the shared gate while holding this instance's lock
            try:
                got = self._gate_slot(gate, None if end is None else max(0.0, end - self._clock()))
            finally:
                self._cond.acquire()
            if got and self._stopping():  # a Ctrl-C while it waited for its slot: nothing new is sent
                gate.release()
                got = False
            if not got:
                raise NotAdmitted("stopped" if self._stopping() else "slot", 0.0)
            self._local.holding = True
            now = self._clock()
        self._local.admitted = getattr(self._local, "admitted", 0) + 1
        if self._first_send is None:
            self._first_send = now
        self._sends.append(now)
        while self._sends and self._sends[0] < now - MEASURE_WINDOW:
            self._sends.popleft()
        return Ticket(now, self._epoch)

    def _gate_slot(self, gate: threading.Semaphore, timeout: float | None) -> bool:
        """(lock not held) A `--parallelism` slot within `timeout` seconds (None: as long as it
        takes), looking at `stopping` every STOP_POLL: after a Ctrl-C a change waiting for a slot
        sent its request once one came free (found by a review). Real time, as `acquire` waits."""
        if self._stopping is _never:
            return gate.acquire() if timeout is None else gate.acquire(timeout=timeout)
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            step = STOP_POLL if until is None else max(0.0, min(STOP_POLL, until - time.monotonic()))
            if gate.acquire(timeout=step):
                return True
            if self._stopping() or (until is not None and time.monotonic() >= until):
                return False

    def _measured(self, now: float, times: deque[float] | None = None) -> float:
        """(lock held) Attempts (or `times`: accepted calls) per second over the last
        MEASURE_WINDOW (or since the first attempt)."""
        times = self._sends if times is None else times
        while times and times[0] < now - MEASURE_WINDOW:
            times.popleft()
        span = min(MEASURE_WINDOW, max(0.05, now - (self._first_send or now)))
        return len(times) / span

    def _accepted_rate(self, now: float) -> float:
        """(lock held) Calls the API accepted per second: since the last decrease when that is at
        least MIN_SPAN ago (the API has refused since, so it was saturated: this is its limit,
        without the burst it allowed at the start), else over the last MEASURE_WINDOW."""
        start = max(self._last_fail, now - MEASURE_WINDOW)
        if self._rate is None or now - start < MIN_SPAN:
            return self._measured(now, self._accepted)
        while self._accepted and self._accepted[0] < now - MEASURE_WINDOW:
            self._accepted.popleft()
        return sum(1 for t in self._accepted if t > start) / (now - start)

    def answered(self) -> None:
        """An answer that was not a rate-limit refusal (any status): the refusals in a row end."""
        with self._cond:
            self._answer_seen()

    def _answer_seen(self) -> None:
        """(lock held)"""
        self._refusing_since, self._refused_run, self._answered_at = None, 0, self._clock()

    def succeeded(self, ticket: Ticket) -> None:
        """An answer that was not a rate-limit refusal: grow the window (AIMD) and the learned rate."""
        progressed()  # (a plug-in's call making requests the API answers is not stuck: `keyform.bounded`)
        with self._cond:
            self._answer_seen()
            if self.adaptive:
                self._accepted.append(self._clock())
                before = int(self._window)
                self._window = min(float(self._max), self._window + 1.0 / self._window)
                if self._rate is not None:
                    now = self._clock()
                    cubic = CUBIC_C * (now - self._last_fail - self._k) ** 3 + self._w_max
                    self._rate = max(MIN_RATE, min(cubic, 2.0 * max(self._measured(now), self._w_max)))
                if int(self._window) > before:
                    self._cond.notify_all()

    def throttled(self, ticket: Ticket, retry_after: float | None, backoff: float,
                  status: int = 429) -> tuple[float, float]:
        """The API refused the attempt for its rate. Pause the instance for `retry_after` (or
        `backoff`), decrease once per episode, report it. Returns (how long this caller sleeps,
        the clock reading it sleeps until: pass it to `before_attempt`). A `retry_after` that is no
        number of seconds (negative, NaN, infinite: a plug-in's) is `backoff`; one over MAX_WAIT
        (a day) is MAX_WAIT, so every figure reported stays a finite number."""
        delay = retry_after if retry_after is not None and 0 <= retry_after < math.inf else backoff
        delay = min(max(0.0, delay), MAX_WAIT) if math.isfinite(delay) else MAX_WAIT
        with self._cond:
            now = self._clock()
            self._throttled += 1
            self._by_status[status] = self._by_status.get(status, 0) + 1
            until = now + delay
            if until > self._pause_until:
                self._paused += until - max(now, self._pause_until)
                self._pause_until = until
                self._pause_status = status
            self._run_of_refusals(ticket, now)
            if ticket.epoch != self._epoch or ticket.sent < self._hold_until:
                return delay, until  # sent before the last decrease took hold: it answered for this one
            self._epoch += 1
            before = int(self._window)
            if self.adaptive:
                self._window = max(1.0, math.floor(self._window / 2))
                # what the API accepted lately is its limit while it refuses (what was sent
                # includes the refused calls, above the limit): the cubic's plateau
                accepted = self._accepted_rate(now) or self._measured(now) * BETA
                used = accepted if self._rate is None else min(accepted, self._rate)
                self._w_max = max(MIN_RATE, used)
                self._k = (self._w_max * (1 - BETA) / CUBIC_C) ** (1 / 3)
                self._last_fail = now
                self._rate = max(MIN_RATE, self._w_max * BETA)
            # after a decrease the API's own bucket is nearly empty and refills only at the margin
            # the decrease left ((1 - BETA) x the old rate): until it holds ~3 calls again, a 429 is
            # the echo of the same episode (e.g. two calls bunched by the scheduler), not a new one
            margin = (1 - BETA) * (self._w_max if self.adaptive else (self._rate or 1.0))
            self._hold_until = until + min(HOLD_MAX, max(HOLD_MIN, 3.0 / margin))
            event = RateEvent(self.instance, delay, before, int(self._window), self._rate, status)
            callback = self._on_event
        if callback is not None:
            callback(event)
        return delay, until

    def _run_of_refusals(self, ticket: Ticket, now: float) -> None:
        """(lock held) One more refusal since the last other answer: break the instance at the
        BREAK_AFTER-th once they have gone on for its deadline (`_span`). The run starts when
        its first refused attempt was sent, never before the last other answer (a call sent before
        it and refused after it does not carry the run back)."""
        since = ticket.sent if self._refusing_since is None else min(self._refusing_since, ticket.sent)
        self._refusing_since = since = max(since, self._answered_at)
        if now - since >= self._span:
            self._refused_run += 1
        if not self._broken and self._refused_run >= BREAK_AFTER:
            self._broken = True
            self._broken_why = (f"the API answered nothing but refusals for its rate for {now - since:.0f}s, "
                                f"as long as the instance's {self._span:g}s `deadline`")
            self._cond.notify_all()  # the calls waiting for the pause or a turn end now

    def admitted(self) -> int:
        """Attempts this thread has been admitted so far (compare two readings: did a call send?)."""
        return int(getattr(self._local, "admitted", 0))

    def _broken_error(self) -> NotAdmitted:
        """(lock held) What an attempt gets once the instance stopped sending."""
        if self._broken_unreachable:
            return NotAdmitted("broken", 0.0, why=self._broken_why, unreachable=True)
        return NotAdmitted("broken", 0.0, status=self._pause_status, why=self._broken_why)

    def unreachable(self, reason: str) -> None:
        """A call is over without ever reaching the API: each of its attempts failed to connect
        (`reason`: refused, no such host, timed out) for its whole retry budget or deadline.
        BREAK_AFTER such calls in a row, with no answer from the API between them, break the
        instance as refusals do: the API is down or its address is wrong, and every other call of
        the run then ends at once, unsent, instead of retrying for seconds of its own (30 creates
        against a stopped API took 30 x their retries at --parallelism). Any answer resets the count."""
        with self._cond:
            self._unreachable_calls += 1
            if self._unreachable_calls >= BREAK_AFTER and not self._broken:
                self._broken, self._broken_unreachable = True, True
                self._broken_why = (f"the last {BREAK_AFTER} calls could not reach the API, each after all its "
                                    f"attempts ({reason})")
                self._cond.notify_all()  # the calls waiting for a turn, or sleeping before a retry, end now

    def ended(self, refused: bool | None) -> None:
        """A call is over: its final answer was a refusal for the rate (`refused`: it was retried
        for all it may be), an answer (False), or a server failure (None: it neither counts nor
        ends the refusals in a row). BREAK_AFTER refused ones in a row break the instance: no
        attempt is admitted after that (`NotAdmitted("broken")`). Any of them is an answer: it
        ends a run of calls that could not reach the API (`unreachable`)."""
        with self._cond:
            self._unreachable_calls = 0
            if refused is None:
                return
            if not refused:
                self._refused_calls = 0
                return
            self._refused_calls += 1
            if self._refused_calls >= BREAK_AFTER and not self._broken:
                self._broken = True
                self._broken_why = f"the API refused the last {BREAK_AFTER} calls for their rate to the end"
                self._cond.notify_all()  # the calls waiting for the pause or a turn end now

    def stats(self) -> RateStats:
        """The figures so far; the time paused counts only what has passed of a pause still running
        (an apply that ends inside a 50 s pause, its calls given up, was not paused 50 s)."""
        with self._cond:
            paused = self._paused - max(0.0, self._pause_until - self._clock())
            return RateStats(self.instance, self._throttled, round(max(0.0, paused), 3), int(self._window),
                             None if self._rate is None else round(self._rate, 2), self.limit,
                             self._broken and not self._broken_unreachable,
                             tuple(sorted(self._by_status.items())))


class Offer:
    """The limiter keyform made for the instance a provider type's factory is opening (`offering`):
    an `HttpClient` made there without a limiter of its own takes it (`offered`), so a plug-in
    built on `HttpClient` is paced by its instance's `rate_limit` and --parallelism without
    passing anything. `taken` says whether one did."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.taken = False


_OFFER: ContextVar[Offer | None] = ContextVar("keyform_limiter_offer", default=None)


@contextmanager
def offering(limiter: Limiter) -> Iterator[Offer]:
    """While a factory runs, `offered(limiter.instance)` hands out `limiter`, once."""
    offer = Offer(limiter)
    token = _OFFER.set(offer)
    try:
        yield offer
    finally:
        _OFFER.reset(token)


def offered(instance: str) -> Limiter:
    """The limiter `offering` holds for `instance`, the first time it is asked for; else a new one
    (adaptive, no configured rate)."""
    offer = _OFFER.get()
    if offer is not None and not offer.taken and offer.limiter.instance == instance:
        offer.taken = True
        return offer.limiter
    return Limiter(instance)
