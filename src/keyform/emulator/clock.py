"""RFC 3339 timestamps as both emulated APIs write and accept them.

Accepted: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`` — a zone is required, ``T``/``Z`` may be
lower case, fractions beyond microseconds are truncated. Written: always UTC with ``Z``, with the
fraction only when it is non-zero (``2025-01-15T12:00:00Z``, ``2025-01-15T12:00:00.25Z``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class Clock:
    """The emulated APIs' clock: the real time plus ``offset`` seconds (negative: behind). Every
    timestamp the APIs write or compare, and the ``Date`` header of every reply, is on it: an API
    whose clock is off, as keyform's usage rules must survive (``--clock-offset``, the
    ``clock_offset`` knob of ``POST /_emulator/faults``)."""

    def __init__(self, offset: Callable[[], float] = lambda: 0.0) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return utc_now() + timedelta(seconds=self.offset())


def parse_timestamp(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp with a zone into an aware UTC datetime; ``None`` if malformed."""
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, zh, zm = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        offset = timedelta(0) if zulu else timedelta(hours=int(zh), minutes=int(zm))
        zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros, zone)
    except ValueError:
        return None
    return moment.astimezone(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """Write ``moment`` as RFC 3339 in UTC with a ``Z`` suffix."""
    utc = moment.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def future_timestamp(value: object, now: datetime) -> datetime | None:
    """``value`` as an aware UTC datetime if it is an RFC 3339 string after ``now``, else ``None``."""
    if not isinstance(value, str):
        return None
    moment = parse_timestamp(value)
    if moment is None or moment <= now:
        return None
    return moment
