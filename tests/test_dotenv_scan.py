"""The dotenv sink's `scan` (names and first lines, for the plan) walks the same spans as `parse`
without making the values: on any text it gives what `parse`'s entries give."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from keyform.errors import SourceLoc
from keyform.model import SinkConfig
from keyform.sinks.dotenv import parse, scan

LOC = SourceLoc("keyform.yaml", 1)
# the pieces a .env line is made of, so random texts hit quotes, escapes, comments and line breaks
PIECES = st.sampled_from(["A", "B_1", "a.b-c", "1X", "export ", "export\t", " ", "\t", "=", "'", '"', "\\", "#",
                          " #", "\n", "\r\n", "\r", "x", "$", "\ufeff", "é", "=v"])
TEXTS = st.lists(PIECES, max_size=40).map("".join)


def _from_parse(text: str) -> dict[str, int]:
    found: dict[str, int] = {}
    line = 1
    for entry in parse(text.removeprefix("\ufeff")):
        if entry.name is not None:
            found.setdefault(entry.name, line)
        line += entry.raw.count("\n")
    return found


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_scan_finds_what_parse_finds(text: str) -> None:
    assert "".join(e.raw for e in parse(text)) == text
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.env"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        found = scan(SinkConfig("env", "dotenv", {"path": str(path)}, LOC))
    assert found == _from_parse(text)
    assert list(found) == list(_from_parse(text))
