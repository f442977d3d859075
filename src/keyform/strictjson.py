"""JSON objects read as strictly as keyform writes them: a name twice in one object is an error.

`json.loads` keeps the last of two equal names without a word. In a state that can hide a live
key's record (a hand edit, a merge); in a sink's JSON file, another person's entry.
"""

from __future__ import annotations

from typing import Any


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
