"""JSON objects read as strictly as keyform writes them: a name twice in one object is an error.

`json.loads` keeps the last of two equal names without a word. In a state that can hide a live
key's record (a hand edit, a merge); in a sink's JSON file, another person's entry.

`bounded_int` reads an integer too long for Python (more than `sys.get_int_max_str_digits()`
digits) as an error in keyform's words: Python's own ValueError advises calling
`sys.set_int_max_str_digits()`, which is no advice for a user of keyform.
"""

from __future__ import annotations

import sys
from typing import Any


class LongNumber(ValueError):
    """An integer with more digits than Python converts (`sys.get_int_max_str_digits()`), in a
    JSON file or (`keyform.sinks.k8s`) a YAML one."""

    def __init__(self, digits: int, limit: int) -> None:
        super().__init__(f"holds an integer of {digits} digits, more than keyform reads (at most {limit})")
        self.digits = digits


def bounded_int(text: str) -> int:
    """`json.loads`' `parse_int` (and a YAML integer's digits): the integer, or LongNumber when it
    has more digits than Python converts."""
    limit = sys.get_int_max_str_digits()
    digits = len(text.lstrip("+-"))
    if limit and digits > limit:
        raise LongNumber(digits, limit)
    return int(text)


class DuplicateKey(ValueError):
    """An object holds `key` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(f"holds the name {key!r} twice in one object")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`' `object_pairs_hook`: the object, or DuplicateKey for a name it holds twice."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return out
