"""Whatever a state file or an apply journal holds, loading it either succeeds — and then planning
and recovery work on it — or raises StateError naming the file: never another exception (issue 14).

Also: the compiled fast checks agree with jsonschema (`schemas/state.schema.json`,
`schemas/journal.schema.json`) on arbitrary documents, so the fast path never lets through what a
schema refuses, nor refuses what it allows.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from keyform.backends.local import LocalBackend
from keyform.errors import StateError
from keyform.journal import from_json, replay
from keyform.model import Rotation, SinkTarget
from keyform.planner import plan
from keyform.remote import RemoteSnapshot
from keyform.state import DeposedKey, KeyState, State, parse_state
from keyform.statecheck import SCHEMA_DIR, _check
from tests.factories import expires_in, questra_key, workspace

NOW = datetime(2027, 4, 1, tzinfo=timezone.utc)
EXAMPLES = int(os.environ.get("KEYFORM_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

STATE_SCHEMA = json.loads((SCHEMA_DIR / "state.schema.json").read_text())
JOURNAL_SCHEMA = json.loads((SCHEMA_DIR / "journal.schema.json").read_text())
STATE_VALIDATOR = Draft202012Validator(STATE_SCHEMA)
JOURNAL_VALIDATOR = Draft202012Validator(
    JOURNAL_SCHEMA, registry=Registry().with_resource(STATE_SCHEMA["$id"], Resource.from_contents(STATE_SCHEMA)))


def sample() -> dict[str, Any]:
    state = State.new()
    state.keys["ci-bot"] = KeyState(
        address="ci-bot", provider="qp", provider_type="questra", remote_id="ak_1", attrs={"name": "CI bot"},
        remote={"name": "CI bot"}, expiry_spec="in:90d", expires_at="2027-06-01T00:00:00Z",
        created_at="2027-03-03T00:00:00Z", sink=SinkTarget("env", "CI_BOT"))
    state.deposed.append(DeposedKey(address="ci-bot", provider="qp", provider_type="questra", remote_id="ak_0",
                                    deposed_at="2027-03-03T00:00:00Z", revoke_after="2027-03-04T00:00:00Z"))
    return state.to_json()


MANIFEST = workspace(questra_key("ci-bot", "CI bot", expiry=expires_in(90), rotation=Rotation(
    before_expiry=timedelta(days=14), max_age=timedelta(days=60), grace=timedelta(days=1))))

# Values that look like what the formats hold, so random documents often hit real fields.
WORDS = st.sampled_from(["never", "in:90d", "at:x", "2027-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
                         "9999-12-31T23:59:59Z", "2027-13-45T00:00:00Z", "", "x", "ci-bot", "env", "00", "zz",
                         "create", "done", "intent", "begin", "sunk", "created", "failed", "r.1"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(), st.floats(allow_nan=False),
                    WORDS, st.text(max_size=8))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(WORDS, st.text(max_size=6)), inner, max_size=4)),
    max_leaves=12)
FIELDS = st.sampled_from(["format_version", "lineage", "serial", "fingerprint_salt", "keys", "deposed", "provider",
                          "provider_type", "remote_id", "attributes", "remote_attributes", "expiry_spec",
                          "expires_at", "created_at", "sink", "as", "fingerprints", "prevent_destroy",
                          "secret_in_sink", "rotation_requested", "address", "deposed_at", "revoke_after",
                          "last_error", "op", "seq", "action", "key", "forget", "at", "match", "salt"])


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """`base` with a few random edits: a field deleted, replaced by random JSON, or added, anywhere."""
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        node: Any = doc
        for _ in range(draw(st.integers(0, 3))):
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) \
                if isinstance(node, list) else []
            children = [(k, v) for k, v in children if isinstance(v, (dict, list))]
            if not children:
                break
            node = draw(st.sampled_from(children))[1]
        if isinstance(node, dict):
            choice = draw(st.integers(0, 2))
            if choice == 0 and node:
                del node[draw(st.sampled_from(sorted(node)))]
            elif choice == 1 and node:
                node[draw(st.sampled_from(sorted(node)))] = draw(JSON)
            else:
                node[draw(FIELDS)] = draw(JSON)
        elif isinstance(node, list) and node:
            node[draw(st.integers(0, len(node) - 1))] = draw(JSON)
    return doc


def _planned_or_refused(doc: Any) -> None:
    try:
        state = parse_state(json.dumps(doc).encode(), "keyform.state.json", "left untouched")
    except StateError:
        return
    # loaded: then everything downstream must work on it
    state.dumps()
    for manifest in (workspace(), MANIFEST):  # ci-bot deleted; ci-bot kept, with its rotation rules
        plan(manifest, state, RemoteSnapshot(), NOW)


@FUZZ
@given(mutated(sample()))
def test_a_mutated_state_loads_and_plans_or_is_refused(doc: Any) -> None:
    _planned_or_refused(doc)


@FUZZ
@given(JSON)
def test_any_json_as_state_loads_or_is_refused(doc: Any) -> None:
    _planned_or_refused(doc)


@FUZZ
@given(st.one_of(mutated(sample()), JSON))
def test_the_fast_state_check_agrees_with_jsonschema(doc: Any) -> None:
    assert _check("state")(doc) == STATE_VALIDATOR.is_valid(doc)


def journal_sample() -> list[dict[str, Any]]:
    state = State.new()
    key = KeyState(address="ci-bot", provider="qp", provider_type="questra", remote_id="ak_1", attrs={}, remote={},
                   expiry_spec="never", expires_at=None, created_at="2027-03-03T00:00:00Z")
    dep = DeposedKey(address="ci-bot", provider="qp", provider_type="questra", remote_id="ak_0",
                     deposed_at="2027-03-03T00:00:00Z", revoke_after="2027-03-04T00:00:00Z")
    return [
        {"op": "begin", "lineage": state.lineage, "serial": 0, "salt": state.salt},
        {"op": "intent", "seq": "r.1", "action": "create", "address": "ci-bot", "provider": "qp", "label": "CI",
         "at": "2027-03-03T00:00:00Z", "replaces": None, "match": {"name": "CI"}},
        {"op": "created", "seq": "r.1", "remote_id": "ak_1"},
        {"op": "sunk", "seq": "r.1"},
        {"op": "done", "seq": "r.1", "address": "ci-bot", "key": key.to_json(), "deposed": dep.to_json()},
        {"op": "intent", "seq": "r.2", "action": "revoke-deposed", "address": "ci-bot", "provider": "qp",
         "remote_id": "ak_0"},
        {"op": "done", "seq": "r.2", "revoked_deposed": "ak_0"},
        {"op": "intent", "seq": "r.3", "action": "delete", "address": "old", "provider": "qp", "remote_id": "ak_7"},
        {"op": "failed", "seq": "r.3", "message": "HTTP 500"},
    ]


@st.composite
def mutated_journal(draw: st.DrawFn) -> list[Any]:
    records = journal_sample()
    i = draw(st.integers(0, len(records) - 1))
    records[i] = draw(mutated(records[i]))
    return records


@FUZZ
@given(st.one_of(mutated_journal(), st.lists(JSON, max_size=4)))
def test_a_mutated_journal_loads_and_replays_or_is_refused(tmp_path_factory: Any, records: list[Any]) -> None:
    path: Path = tmp_path_factory.mktemp("j") / "keyform.state.json"
    store = LocalBackend(path)
    store.journal_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    try:
        loaded = store.read_journal()
    except StateError as exc:
        assert str(exc).startswith(f"{store.journal_path}:")
        return
    state = State.new()
    replay(state, loaded)  # folding every finished change works on whatever loaded
    state.dumps()
    replay(None, loaded)


@FUZZ
@given(st.one_of(*[mutated(r) for r in journal_sample()], JSON))
def test_the_fast_journal_check_agrees_with_jsonschema(record: Any) -> None:
    assert _check("journal")(record) == JOURNAL_VALIDATOR.is_valid(record)


def test_the_schemas_are_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(STATE_SCHEMA)
    Draft202012Validator.check_schema(JOURNAL_SCHEMA)


def test_extra_fields_of_other_ops_are_not_read_as_timestamps(tmp_path: Path) -> None:
    """Found by the fuzzer: a `begin` record with an extra `deposed` field crashed the time check."""
    store = LocalBackend(tmp_path / "keyform.state.json")
    records = journal_sample()
    records[0]["deposed"] = {}
    records[2]["expires_at"] = "not a time"  # an extra field keyform never reads on that record
    store.journal_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert store.read_journal() == [from_json(r) for r in records]
