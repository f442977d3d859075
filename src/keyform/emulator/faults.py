"""Fault knobs (SPEC §8): latency, random 503s, random 429s, dropped responses after a commit, and a
rate limit: a token bucket per organisation or per token that answers 429 with ``Retry-After``.

Every random decision comes from one ``random.Random(seed)``, so the same seed and the same
sequence of requests replay the same faults. A rate of 0 never consumes a random number, so
turning one knob on does not shift the decisions of the others. Callers hold the emulator lock.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

LIST_SHAPES: tuple[str, ...] = ("array", "data", "none")
RATE_SCOPES: tuple[str, ...] = ("org", "token")
Fault = Literal["unavailable", "rate_limited"]


@dataclass
class FaultSettings:
    """The runtime-adjustable knobs; ``questra_list_shape`` rides along although it is no fault."""

    latency_ms: float = 0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    drop_after_commit_rate: float = 0.0
    seed: int | None = None
    questra_list_shape: str = "array"
    retry_after: float = 1.0
    # the rate limit: requests/s per bucket (0: none); a bucket per organisation (Questra X-Org-Id,
    # TextQL's single org) or per bearer token; `rate_limits` overrides the rate per org id / token
    rate_limit_rps: float = 0.0
    rate_limit_burst: float = 0.0  # 0: one second's worth (at least 1)
    rate_limit_scope: str = "org"
    rate_limits: dict[str, float] = field(default_factory=dict)
    # the APIs' clock minus the real time, in seconds (negative: behind): their timestamps and the
    # Date header of every reply, as from an API whose clock is off; no fault either
    clock_offset: float = 0.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first knob that is out of range."""
        for name in sorted(_NUMBER_KNOBS):  # NaN passes every comparison below; Infinity breaks the server
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:  # 1e308 overflowed the sleep: every call a 500
            raise ValueError(f"latency_ms must be between 0 and {MAX_LATENCY_MS:g} (a day)")
        for name in ("error_rate", "rate_limit_rate", "drop_after_commit_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 0 <= self.retry_after <= MAX_RETRY_AFTER:
            raise ValueError(f"retry_after must be between 0 and {MAX_RETRY_AFTER:g} seconds (a day)")
        if self.questra_list_shape not in LIST_SHAPES:
            raise ValueError(f"questra_list_shape must be one of {', '.join(LIST_SHAPES)}")
        if not 0 <= self.rate_limit_rps <= 1e6 or not 0 <= self.rate_limit_burst <= 1e6:
            raise ValueError("rate_limit_rps and rate_limit_burst must be between 0 and 1000000")
        if 0 < self.rate_limit_rps < MIN_RPS:  # 5e-324: a token every inf seconds, every later call a 500
            raise ValueError(f"rate_limit_rps must be 0 (no limit) or at least {MIN_RPS:g} requests/s")
        if 0 < self.rate_limit_burst < 1:  # a bucket that never holds one request refuses every call
            raise ValueError("rate_limit_burst must be 0 (the rate's own) or at least 1")
        if self.rate_limit_scope not in RATE_SCOPES:
            raise ValueError(f"rate_limit_scope must be one of {', '.join(RATE_SCOPES)}")
        if not -MAX_CLOCK_OFFSET <= self.clock_offset <= MAX_CLOCK_OFFSET:
            raise ValueError(f"clock_offset must be between -{MAX_CLOCK_OFFSET:g} and {MAX_CLOCK_OFFSET:g} seconds")
        for name, rps in self.rate_limits.items():
            if not 0 <= rps <= 1e6:
                raise ValueError(f"rate_limits[{name!r}] must be between 0 and 1000000")
            if 0 < rps < MIN_RPS:
                raise ValueError(f"rate_limits[{name!r}] must be 0 (no limit) or at least {MIN_RPS:g} requests/s")

    def rate_for(self, bucket: str) -> float:
        """Requests/s allowed for ``bucket`` (0: unlimited)."""
        return self.rate_limits.get(bucket, self.rate_limit_rps)


_NUMBER_KNOBS = frozenset({"latency_ms", "error_rate", "rate_limit_rate", "drop_after_commit_rate", "retry_after",
                           "rate_limit_rps", "rate_limit_burst", "clock_offset"})
MAX_LATENCY_MS = 86_400_000.0
MAX_RETRY_AFTER = 86_400.0
MIN_RPS = 1e-6  # requests/s: the slowest rate limit (one request in ~11.6 days); below it the wait overflows
MAX_CLOCK_OFFSET = 100 * 365 * 86400.0  # a century either way: far enough, and no datetime overflows
_RATE_KNOBS = frozenset({"rate_limit_rps", "rate_limit_burst", "rate_limit_scope", "rate_limits"})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_type(name: str, value: Any) -> None:
    """Raise ``ValueError`` when ``value`` has the wrong JSON type for knob ``name``."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name in _NUMBER_KNOBS and not is_number:
        raise ValueError(f"{name} must be a number")
    if name == "seed" and value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError("seed must be an integer or null")
    if name == "questra_list_shape" and not isinstance(value, str):
        raise ValueError("questra_list_shape must be a string")
    if name == "rate_limit_scope" and not isinstance(value, str):
        raise ValueError("rate_limit_scope must be a string")
    if name == "rate_limits" and not (isinstance(value, dict) and all(
            isinstance(k, str) and k and _number(v) for k, v in value.items())):
        raise ValueError("rate_limits must be an object of org id (or token) → requests/s")


class Faults:
    """The current knobs, the seeded random source, and counts of the faults injected so far."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = replace(settings)
        self.rng = random.Random(settings.seed)
        self.injected: Counter[str] = Counter()
        self.buckets: dict[str, tuple[float, float]] = {}  # bucket → (tokens, monotonic time)
        self.reset(settings)

    def reset(self, settings: FaultSettings) -> None:
        """Take ``settings`` (validated, copied), re-seed, and zero the injected counts."""
        settings.validate()
        self.settings = replace(settings)
        self.rng = random.Random(settings.seed)
        self.injected.clear()
        self.buckets.clear()

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a subset of knobs (all or nothing); a given ``seed`` re-seeds the random source."""
        known = {f.name for f in fields(FaultSettings)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(unknown)}")
        for name, value in changes.items():
            _check_type(name, value)
        candidate = replace(self.settings, **changes)
        candidate.validate()
        self.settings = candidate
        if "seed" in changes:
            self.rng = random.Random(candidate.seed)
        if _RATE_KNOBS & changes.keys():
            self.buckets.clear()  # every bucket starts full under the new limits

    def take_token(self, bucket: str, now: float | None = None) -> float | None:
        """Spend one request from ``bucket``'s token bucket: ``None`` when allowed, else the seconds
        until a token is there (the 429's ``Retry-After``). Unlimited buckets keep no state."""
        rate = self.settings.rate_for(bucket)
        if rate <= 0:
            return None
        now = time.monotonic() if now is None else now
        capacity = self.settings.rate_limit_burst or max(1.0, rate)
        tokens, stamp = self.buckets.get(bucket, (capacity, now))
        tokens = min(capacity, tokens + (now - stamp) * rate)
        if tokens >= 1.0:
            self.buckets[bucket] = (tokens - 1.0, now)
            return None
        self.buckets[bucket] = (tokens, now)
        self.injected["throttled"] += 1
        # at most a day, as the `retry_after` knob (a rate of 1e-6/s would ask for 11 days)
        return min((1.0 - tokens) / rate, MAX_RETRY_AFTER)

    def _roll(self, rate: float) -> bool:
        """True with probability ``rate``; draws nothing when the rate is 0."""
        return rate > 0 and self.rng.random() < rate

    def before_request(self) -> Fault | None:
        """Decide whether an API request fails before it does anything."""
        if self._roll(self.settings.error_rate):
            self.injected["unavailable"] += 1
            return "unavailable"
        if self._roll(self.settings.rate_limit_rate):
            self.injected["rate_limited"] += 1
            return "rate_limited"
        return None

    def drop_after_commit(self) -> bool:
        """Decide whether a committed create loses its response."""
        if self._roll(self.settings.drop_after_commit_rate):
            self.injected["dropped"] += 1
            return True
        return False

    def snapshot(self) -> dict[str, Any]:
        """The knobs and the injected-fault counts, as JSON-ready data."""
        return {**asdict(self.settings), "injected": dict(self.injected)}
