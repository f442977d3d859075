"""The providers' list fast paths (`_fast_key`, `http.utc_time`) agree with the field-by-field
`parse_key` and `wire_time`: same keys, or the same ShapeError naming the same item and field."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyform.providers import questra, textql
from keyform.providers.http import ShapeError, utc_time, wire_time

_TIMES = st.one_of(
    st.none(), st.just(""), st.integers(), st.booleans(), st.text(max_size=4),
    st.sampled_from(["2027-06-01T00:00:00Z", "2026-12-03T16:19:37.923807Z", "2027-02-30T00:00:00Z",
                     "2027-06-01T24:00:00Z", "0999-06-01T00:00:00Z", "2027-06-01T00:00:00.Z",
                     "2027-06-01T00:00:00+02:00", "2027-06-01T00:00:00z", "2027-06-01 00:00:00Z",
                     "２０２７-06-01T00:00:00Z", "2027-06-01T00:00:00Z\n", "2027-06-01T00:00:60Z",
                     "2027-06-01T00:00:00", "2027-06-01T00:00:00.5", "2027-06-01T00:00:00.٣Z"]))
_VALUES = st.one_of(st.none(), st.text(max_size=3), st.integers(), st.booleans(),
                    st.lists(st.one_of(st.text(max_size=3), st.integers()), max_size=2),
                    st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.none()), max_size=2))
_IDS = st.one_of(st.just("k1"), st.just(""), st.none(), st.integers())


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except ShapeError as exc:
        return f"ShapeError: {exc}"


@settings(max_examples=300, deadline=None)
@given(_TIMES)
def test_utc_time_is_wire_time_or_none(value: Any) -> None:
    fast = utc_time(value)
    if fast is not None:
        assert fast == wire_time(value, "t")



def test_utc_time_takes_the_usual_form_only() -> None:
    """The usual UTC form, with or without a fraction of ASCII digits, and a real instant; nothing
    else, also for a head (the first 19 characters) it has already judged (`http._HEADS`)."""
    for _ in range(2):  # the second round answers from the verdicts the first one kept
        assert utc_time("2027-06-01T00:00:00Z") == "2027-06-01T00:00:00Z"
        assert utc_time("2027-06-01T00:00:00.123456Z") == "2027-06-01T00:00:00Z"
        for bad in ("2027-06-01T00:00:00", "2027-06-01T00:00:00.", "2027-06-01T00:00:00.Z", "2027-06-01T00:00:00.5",
                    "2027-06-01T00:00:00.٣Z", "2027-06-01T00:00:00.5Z\n", "2027-06-01T00:00:00Zx",
                    "2027-06-01T00:00:00z", "2027-02-30T00:00:00Z", "2027-02-30T00:00:00.1Z", "1899-12-31T00:00:00Z",
                    "2027-06-01", ""):
            assert utc_time(bad) is None, bad

def _agree(module: Any, body: Any, items: list[Any]) -> None:
    expected = _outcome(lambda: [module.parse_key(item, f"item {i}") for i, item in enumerate(items)])
    assert _outcome(lambda: module.parse_list(body)) == expected


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(
    st.fixed_dictionaries({"id": _IDS, "name": st.one_of(st.text(max_size=3), st.none())},
                          optional={"revoked": _VALUES, "expired": _VALUES, "created_at": _TIMES,
                                    "expires_at": _TIMES, "last_used_at": _TIMES}),
    st.fixed_dictionaries({"id": st.just("k2"), "name": st.just("n"), "revoked": st.booleans(),
                           "created_at": _TIMES, "expires_at": _TIMES}),
    _VALUES), max_size=4))
def test_questra_list_gives_what_parse_key_gives(items: list[Any]) -> None:
    _agree(questra, items, items)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(
    st.fixed_dictionaries({"id": _IDS},
                          optional={"description": _VALUES, "hosts": _VALUES, "headers": _VALUES,
                                    "queryParams": _VALUES, "provider": _VALUES, "authType": _VALUES,
                                    "createdAt": _TIMES, "expiresAt": _TIMES}),
    st.fixed_dictionaries({"id": st.just("k2"), "description": st.just("d"), "hosts": st.just(["h"]),
                           "headers": st.just({"X-A": "b"}), "queryParams": st.just({}),
                           "provider": st.just("p"), "authType": st.just("token"),
                           "createdAt": _TIMES, "expiresAt": _TIMES}),
    _VALUES), max_size=4))
def test_textql_list_gives_what_parse_key_gives(items: list[Any]) -> None:
    _agree(textql, {"apiAccessKeys": items}, items)


def test_an_expiry_past_the_years_keyform_records_is_never_and_other_times_are_refused() -> None:
    """The state refuses years past 9899: an API's 9999-12-31 (some write no expiry so), also with
    a negative offset that puts it past the last datetime in UTC, reads as never; a creation or
    use time there is a shape error, as is one before 1900."""
    for value in ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00", "9900-01-01T00:00:00+00:00"):
        assert wire_time(value, "x", expiry=True) is None
    for value, where in (("9999-12-31T23:59:59Z", "outside the years keyform can record (1900-9899)"),
                         ("1899-12-31T00:00:00Z", "outside the years keyform can record (1900-9899)")):
        with pytest.raises(ShapeError, match=re.escape(where)):
            wire_time(value, "x")
    assert wire_time("9899-12-31T23:59:59Z", "x") == "9899-12-31T23:59:59Z"
