"""The YAML layer: same values as PyYAML's safe loader, plus lines, duplicates and limits."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from keyform.manifest.yamlsource import MAX_ALIAS_EXPANSION, parse_yaml

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)


def value_of(text: str) -> Any:
    doc, problems = parse_yaml(text, "m.yaml")
    assert doc is not None and not problems, problems
    return doc.value


@settings(max_examples=200, deadline=None)
@given(value=VALUES)
def test_values_match_the_safe_loader(value: Any) -> None:
    for style in (False, True, None):
        text = yaml.safe_dump(value, default_flow_style=style, allow_unicode=True)
        assert value_of(text) == yaml.safe_load(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("0x1F", 31), ("1_000", 1000), ("-0.5", -0.5), ("-.5", "-.5"), ("1e3", "1e3"), ("1.0e+3", 1000.0), (".inf", float("inf")),
    ("~", None), ("", None), ("Null", None), ("yes", True), ("Off", False), ("'yes'", "yes"), ('"12"', "12"),
    ("!!str 12", "12"), ("2027-06-01", "2027-06-01"), ("2027-06-01T00:00:00Z", "2027-06-01T00:00:00Z"),
    ("|\n  block\n", "block\n"), ("name", "name"), ("token", "token"),
])
def test_scalar_typing(text: str, expected: Any) -> None:
    """As YAML 1.1 / SafeLoader types them, except that timestamps stay the text written."""
    assert value_of(f"v: {text}") == {"v": expected}


def test_lines_of_keys_and_items() -> None:
    doc, _ = parse_yaml("a:\n  b: 1\n  c:\n    - x\n    - {d: 2}\n", "m.yaml")
    assert doc is not None
    assert doc.lines[("a",)] == 1 and doc.lines[("a", "b")] == 2
    assert doc.lines[("a", "c", 1)] == 5 and doc.lines[("a", "c", 1, "d")] == 5
    assert doc.line(("a", "c", 1, "missing")) == 5  # falls back to the nearest known ancestor


def test_duplicate_keys_are_reported_and_the_first_is_kept() -> None:
    doc, problems = parse_yaml("a: 1\nb:\n  x: 1\n  x: 2\na: 3\n", "m.yaml")
    assert doc is not None and doc.value == {"a": 1, "b": {"x": 1}}
    assert [str(p) for p in problems] == ["m.yaml:4: duplicate key 'x' (first defined at line 3)",
                                          "m.yaml:5: duplicate key 'a' (first defined at line 1)"]


def test_aliases_expand_but_exponential_expansion_is_refused() -> None:
    assert value_of("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}
    lines = ["l0: &l0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    doc, problems = parse_yaml("\n".join(lines) + "\n", "m.yaml")
    assert doc is None
    assert f"too many alias expansions (more than {MAX_ALIAS_EXPANSION})" in str(problems[0])
