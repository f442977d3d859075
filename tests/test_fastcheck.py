"""The compiled fast schema check (`keyform.manifest.fastcheck`) on schemas with references: a plain
reference is the definition's own check, a recursive one still checks every level, and both agree
with jsonschema."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from keyform.manifest.fastcheck import compile_schema

TREE: dict[str, Any] = {
    "$defs": {
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "tree": {"type": "object", "additionalProperties": False, "required": ["name"],
                 "properties": {"name": {"$ref": "#/$defs/name"},
                                "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}},
    },
    "$ref": "#/$defs/tree",
}


@pytest.mark.parametrize("instance", [
    {"name": "a"},
    {"name": "a", "kids": [{"name": "b", "kids": [{"name": "c"}]}]},
    {"name": "a", "kids": [{"name": "b", "kids": [{"name": "C"}]}]},  # bad name three levels down
    {"name": "a", "kids": [{"name": "b", "kids": [{"nome": "c"}]}]},  # unknown field three down
    {"name": "a", "kids": [{"kids": []}]},  # missing name one down
    {"name": 1}, [], None, "a",
])
def test_references_and_recursion_agree_with_jsonschema(instance: Any) -> None:
    assert compile_schema(TREE)(instance) == Draft202012Validator(TREE).is_valid(instance)


def test_an_unknown_reference_is_refused_at_compile_time() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        compile_schema({"$ref": "http://example.com/x.json"})
