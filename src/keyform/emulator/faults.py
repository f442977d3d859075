"""Fault knobs (SPEC §8): latency, random 503s, random 429s, dropped responses after a commit.

Every random decision comes from one ``random.Random(seed)``, so the same seed and the same
sequence of requests replay the same faults. A rate of 0 never consumes a random number, so
turning one knob on does not shift the decisions of the others. Callers hold the emulator lock.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

LIST_SHAPES: tuple[str, ...] = ("array", "data", "none")
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

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first knob that is out of range."""
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        for name in ("error_rate", "rate_limit_rate", "drop_after_commit_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.questra_list_shape not in LIST_SHAPES:
            raise ValueError(f"questra_list_shape must be one of {', '.join(LIST_SHAPES)}")


_NUMBER_KNOBS = frozenset({"latency_ms", "error_rate", "rate_limit_rate", "drop_after_commit_rate", "retry_after"})


def _check_type(name: str, value: Any) -> None:
    """Raise ``ValueError`` when ``value`` has the wrong JSON type for knob ``name``."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name in _NUMBER_KNOBS and not is_number:
        raise ValueError(f"{name} must be a number")
    if name == "seed" and value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError("seed must be an integer or null")
    if name == "questra_list_shape" and not isinstance(value, str):
        raise ValueError("questra_list_shape must be a string")


class Faults:
    """The current knobs, the seeded random source, and counts of the faults injected so far."""

    def __init__(self, settings: FaultSettings) -> None:
        self.settings = replace(settings)
        self.rng = random.Random(settings.seed)
        self.injected: Counter[str] = Counter()
        self.reset(settings)

    def reset(self, settings: FaultSettings) -> None:
        """Take ``settings`` (validated, copied), re-seed, and zero the injected counts."""
        settings.validate()
        self.settings = replace(settings)
        self.rng = random.Random(settings.seed)
        self.injected.clear()

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
