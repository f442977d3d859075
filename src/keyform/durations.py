"""Durations (`90d`, `12h`) and RFC 3339 timestamps, the only time formats keyform reads or writes."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

ASCII_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
ASCII_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def ascii_decimal(text: str) -> float | None:
    """`text` (blanks around it aside) as a finite decimal number written in ASCII digits, or None:
    float() takes any Unicode digit (`٣`, an Arabic-Indic three, is 3), `1_0` and `inf`. For a
    flag's or variable's number (`clikit`) and a `Retry-After` header's seconds (`providers.http`)."""
    text = text.strip()
    if not ASCII_DECIMAL.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_RE = re.compile(r"^([0-9]+)([smhdw])$")


# The longest duration keyform accepts: now + it (and the timestamps keyform derives from it) always
# fits a datetime (year 9999), with room for every date keyform compares it to.
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """`90d` → timedelta(days=90). Raises ValueError with a readable message, also for a duration
    longer than MAX_DURATION (100 years: later than that no date arithmetic needs to go)."""
    m = DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        shown = text if not isinstance(text, str) or len(text) <= 40 else text[:39] + "…"
        raise ValueError(f"invalid duration {shown!r}: expected an integer and a unit s, m, h, d or w (e.g. 90d)")
    digits = m.group(1).lstrip("0")
    seconds = int(digits or "0") * _UNITS[m.group(2)] if len(digits) <= 15 else None
    if seconds is None or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text.strip()[:40]!r} is too long: at most 36500d (100 years)")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """A short human form: 5d, 3h, 12m, 40s (largest whole unit, rounded down)."""
    secs = int(abs(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def exact_duration(delta: timedelta) -> str:
    """The duration as `parse_duration` reads it back exactly: the largest unit dividing it (90m, 1h, 7d)."""
    secs = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if secs and secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def maybe_time(text: str | None) -> datetime | None:
    """`parse_time`, or None for a missing, empty or unreadable value (remote data, old records)."""
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


# The years keyform records and computes with: ± 100 years (its longest duration) of any of them
# still fit a datetime. The state refuses a time outside them (`statecheck`); the manifests and the
# providers' replies are held to them before one can be recorded.
MIN_YEAR, MAX_YEAR = 1900, 9899


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a missing zone is an error."""
    if not isinstance(text, str):
        raise ValueError(f"invalid timestamp {text!r}")
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"invalid timestamp {text!r}: expected RFC 3339, e.g. 2027-06-01T00:00:00Z") from None
    if dt.tzinfo is None:
        raise ValueError(f"invalid timestamp {text!r}: it needs a time zone (e.g. a trailing Z)")
    try:
        return dt.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past the last datetime in UTC
        raise ValueError(f"invalid timestamp {text!r}: out of range") from None


def format_time(dt: datetime) -> str:
    """UTC, second precision, trailing Z: 2027-06-01T00:00:00Z (the year always four digits).
    An apply formats several times per change: %-formatting is a quarter of strftime's cost."""
    if dt.tzinfo is not timezone.utc:
        dt = dt.astimezone(timezone.utc)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (  # noqa: UP031 (half the cost of the f-string)
        dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)


_FORMATTED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def formatted(text: str) -> bool:
    """Whether `text` has `format_time`'s exact shape; one that also parses is its own
    `format_time(parse_time(text))` (a report reuses such a string rather than format it again)."""
    return _FORMATTED.fullmatch(text) is not None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
