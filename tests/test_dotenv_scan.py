"""The dotenv sink's `scan` (names and first lines, for the plan) walks the same spans as `parse`
without making the values: on any text it gives what `parse`'s entries give."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
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
@example("A='")
@example("\ufeffB=\"x")
def test_scan_finds_what_parse_finds(text: str) -> None:
    """On a text `parse` refuses (a quote never closed: `A='`, which Hypothesis found once the
    refusal existed), `scan` refuses it with the same message."""
    with contextlib.suppress(ValueError):  # (refused: checked below, as `scan` reads it: without a leading BOM)
        assert "".join(e.raw for e in parse(text)) == text
    try:
        _from_parse(text)
        refused: str | None = None
    except ValueError as exc:
        refused = str(exc)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.env"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        config = SinkConfig("env", "dotenv", {"path": str(path)}, LOC)
        if refused is not None:
            with pytest.raises(ValueError) as info:
                scan(config)
            assert str(info.value) == refused
            return
        found = scan(config)
    assert found == _from_parse(text)
    assert list(found) == list(_from_parse(text))


def test_scan_refuses_a_quote_never_closed_as_parse_does() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.env"
        path.write_text("A='")
        with pytest.raises(ValueError, match="the ' quote that opens the value of A is never closed"):
            scan(SinkConfig("env", "dotenv", {"path": str(path)}, LOC))


def test_the_plan_s_scan_names_the_file_and_line_of_an_unclosed_quote(tmp_path: Path) -> None:
    """Found by review 106: the plan said `.env: line 3: the " quote …`, not `file:line: …`."""
    from keyform.sinkscan import scan as scan_sinks

    path = tmp_path / "keys.env"
    path.write_text('A=1\nB=2\nNOTE="open\n')
    config = SinkConfig("env", "dotenv", {"path": str(path)}, SourceLoc("k.yaml", 1))
    snapshot = scan_sinks({"env": config}, {"env"})
    assert snapshot.problems == {"env": f"{path}:3: the \" quote that opens the value of NOTE is never closed, so a "
                                        "shell cannot read the file"}


BLANK_PIECES = st.sampled_from(["A", "B", "=", "'", '"', " ", "\t", "#", " #", "\n", "\r\n", "x", "\u00a0", "\u2003",
                                "\\", "export "])


@settings(max_examples=300, deadline=None)
@given(st.lists(BLANK_PIECES, max_size=30).map("".join))
@example("A=\u00a0\n")
@example("A=x #c\nA=#c\n")
@example("A=''\nB=\"\"\n")
def test_scan_finds_blank_what_parse_finds_blank(text: str) -> None:
    """A variable is blank when the value `parse` gives its last assignment is only whitespace
    (Unicode's too); `scan` decides most lines from the value's first character alone."""
    try:
        entries = parse(text)
    except ValueError:
        return  # (refused: `test_scan_finds_what_parse_finds`)
    last = {e.name: e.value for e in entries if e.name is not None}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.env"
        path.write_bytes(text.encode("utf-8"))
        found = scan(SinkConfig("env", "dotenv", {"path": str(path)}, LOC))
    assert found.blank == {n for n, v in last.items() if not (v or "").strip()}


UNQUOTED_PIECES = st.sampled_from(["A", "B_1", "a.b-c", "1X", "export ", "export\t", " ", "\t", "=", "\\", "#", " #",
                                   "\n", "\r\n", "\r", "x", "$", "\ufeff", "é", "=v", "\u00a0", "\u2003"])


@settings(max_examples=300, deadline=None)
@given(st.lists(UNQUOTED_PIECES, max_size=40).map("".join))
@example("\ufeffA=1\r\nexport B= x # c\nA=\nC=#c\nD= \u2003\nE")
@example("A=1\nA=\n")
@example("A=\nA=1")
def test_scan_of_a_file_with_no_quote_finds_what_parse_finds(text: str) -> None:
    """A file with no quote character (most: keyform writes a value quoted only when it must) is
    scanned line by line, without `_spans`: the same names, first lines and blank ones as `parse`."""
    entries = parse(text.removeprefix("\ufeff"))  # (nothing to refuse without a quote)
    last = {e.name: e.value for e in entries if e.name is not None}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.env"
        path.write_bytes(text.encode("utf-8"))
        found = scan(SinkConfig("env", "dotenv", {"path": str(path)}, LOC))
    assert list(found.items()) == list(_from_parse(text).items())
    assert found.blank == {n for n, v in last.items() if not (v or "").strip()}
