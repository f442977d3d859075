"""The compiled fast schema check (`keyform.manifest.fastcheck`) on schemas with references: a plain
reference is the definition's own check, a recursive one still checks every level, and both agree
with jsonschema."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyform import statecheck
from keyform.manifest.fastcheck import compile_schema, ecma_validator_class

TREE: dict[str, Any] = {
    "$defs": {
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "tree": {"type": "object", "additionalProperties": False, "required": ["name"],
                 "properties": {"name": {"$ref": "#/$defs/name"},
                                "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}},
    },
    "$ref": "#/$defs/tree",
}

ECMA = ecma_validator_class()  # JSON Schema's pattern semantics (`$`: the very end)


@pytest.mark.parametrize("instance", [
    {"name": "a"},
    {"name": "a", "kids": [{"name": "b", "kids": [{"name": "c"}]}]},
    {"name": "a", "kids": [{"name": "b", "kids": [{"name": "C"}]}]},  # bad name three levels down
    {"name": "a", "kids": [{"name": "b", "kids": [{"nome": "c"}]}]},  # unknown field three down
    {"name": "a", "kids": [{"kids": []}]},  # missing name one down
    {"name": 1}, [], None, "a",
])
def test_references_and_recursion_agree_with_jsonschema(instance: Any) -> None:
    assert compile_schema(TREE)(instance) == ECMA(TREE).is_valid(instance)


def test_an_unknown_reference_is_refused_at_compile_time() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        compile_schema({"$ref": "http://example.com/x.json"})


# The state and journal schemas, through the fused checks (string leaves, single types, enums of
# strings, two-way anyOf): random changes to valid documents are judged as jsonschema judges them.
KEY = {"provider": "q", "provider_type": "questra", "remote_id": "ak_1", "attributes": {"name": "n"},
       "remote_attributes": {"name": "n"}, "expiry_spec": "in:90d", "expires_at": "2027-03-03T03:02:26Z",
       "created_at": "2026-12-03T03:02:26Z", "sink": {"sink": "env", "as": "Q"}, "fingerprints": {},
       "prevent_destroy": False, "secret_in_sink": True, "rotation_requested": False}
STATE = {"format_version": 1, "lineage": "l-1", "serial": 3, "fingerprint_salt": "00ff", "keys": {"a-1": KEY},
         "deposed": []}
RECORDS = [{"op": "begin", "lineage": "l", "serial": 0}, {"op": "intent", "seq": "1", "action": "create",
            "address": "a-1", "provider": "q", "at": "2026-01-01T00:00:00Z"},
           {"op": "created", "seq": "1", "remote_id": "r"}, {"op": "sunk", "seq": "1"},
           {"op": "done", "seq": "1", "address": "a-1", "key": KEY}]
ODD = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=False), st.text(max_size=3),
                st.sampled_from(["", "x", "in:1d", "never", "at:", "2026-01-01T00:00:00Z", "2026-01-01",
                                 "create", "done", "ff", "0g", "a-1", "-a"]),
                st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    return found


@st.composite
def changed(draw: st.DrawFn, seed: Any) -> Any:
    document = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        if not _paths(document)[1:]:
            break
        path = draw(st.sampled_from(_paths(document)[1:]))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()):
            parent[path[-1]] = draw(ODD)
        else:
            del parent[path[-1]]
    return document


@settings(max_examples=300, deadline=None)
@given(document=st.one_of(changed(STATE), st.just(STATE)))
def test_the_state_check_agrees_with_jsonschema(document: Any) -> None:
    schema = statecheck._schema("state.schema.json")
    assert compile_schema(schema)(document) == ECMA(schema).is_valid(document)


@settings(max_examples=300, deadline=None)
@given(record=st.one_of(*(changed(r) for r in RECORDS), st.sampled_from(RECORDS)))
def test_the_journal_check_agrees_with_jsonschema(record: Any) -> None:
    schema = statecheck._journal_local()
    assert compile_schema(schema)(record) == ECMA(schema).is_valid(record)
