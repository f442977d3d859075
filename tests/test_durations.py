"""`keyform.durations`: timestamps as keyform writes them (journal, state, create requests)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from keyform.durations import format_time, parse_time


@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(timedelta(hours=-8))])))
def test_a_time_is_written_in_utc_to_the_second_and_reads_back(dt: datetime) -> None:
    text = format_time(dt)
    assert text == dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert parse_time(text) == dt.astimezone(timezone.utc).replace(microsecond=0)


def test_a_year_before_1000_keeps_four_digits_as_rfc_3339_requires() -> None:
    assert format_time(datetime(999, 3, 4, 5, 6, 7, 890, tzinfo=timezone.utc)) == "0999-03-04T05:06:07Z"
