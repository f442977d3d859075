"""Whatever bytes a manifest holds, loading either succeeds or raises KeyformError — never anything else.

Also: the compiled fast schema check agrees with jsonschema on arbitrary documents, so the fast path
can never let through what the schema refuses (or refuse what it allows).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyform.errors import KeyformError
from keyform.manifest import load_workspace
from keyform.manifest.fastcheck import compile_schema, ecma_validator_class
from keyform.manifest.schema import manifest_schema

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
# KEYFORM_FUZZ_EXAMPLES=5000 for a long local run; the default keeps the suite quick.
EXAMPLES = int(os.environ.get("KEYFORM_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

VALID = """\
version: 1
state: {path: s.json}
providers:
  q: {type: questra, base_url: "http://127.0.0.1:8787", token: {env: QT}, org_id: {env: ORG}}
  t: {type: textql, token: {file: t.token}}
sinks:
  env: {type: dotenv, path: out.env}
  dir: {type: file, dir: out}
defaults: {sink: env}
keys:
  ci-bot:
    provider: q
    name: CI bot
    expires_in: 90d
    rotation: {before_expiry: 14d, max_age: 60d, grace: 24h}
    sink: {use: dir, as: ci-bot}
  pinned: {provider: q, expires_at: "2027-06-01T00:00:00Z", lifecycle: {prevent_destroy: true}}
  ana:
    provider: t
    description: Questra access
    hosts: [api.questra.ai]
    headers: {X-Org-Id: org_123, X-Key: {secret_of: ci-bot}}
    query_params: {a: b}
    api_provider: questra
    auth_type: token
    auth_value: {secret_of: pinned}
    auth_value_extra: {env: EXTRA}
    is_private: false
"""

# Words the manifest format uses, so random documents often hit real sections and fields.
WORDS = ["version", "state", "path", "providers", "sinks", "defaults", "keys", "sink", "type", "questra",
         "textql", "dotenv", "json", "file", "dir", "token", "env", "secret_of", "org_id", "base_url",
         "provider", "name", "expires_in", "expires_at", "rotation", "before_expiry", "max_age", "grace",
         "use", "as", "lifecycle", "prevent_destroy", "hosts", "headers", "query_params", "auth_type",
         "auth_value", "auth_value_extra", "is_private", "description", "api_provider", "q", "t", "ci-bot",
         "90d", "0s", "2027-06-01T00:00:00Z", "2020-01-01T00:00:00Z", "http://x.example", "https://a.b",
         "token", "oauth_u2m", "1", "", "a b", "<<", "-x", "X_Y"]
SCALARS = st.one_of(st.sampled_from(WORDS), st.integers(-3, 3), st.booleans(), st.none(),
                    st.floats(allow_nan=False), st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(WORDS), inner, max_size=5)), max_leaves=25)
DOCUMENTS = st.one_of(VALUES, st.fixed_dictionaries({"version": st.sampled_from([1, 2, "1"])},
                                                   optional={w: VALUES for w in WORDS[1:8]}))

ECMA = ecma_validator_class()  # JSON Schema's pattern semantics (`$`: the very end)


def load_text(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "keyform.yaml").write_bytes(data)
    try:
        load_workspace(cwd=tmp_path, now=NOW)
    except KeyformError as exc:
        assert exc.diagnostics, "a KeyformError must carry at least one diagnostic"


def test_the_fuzz_seed_manifest_is_valid(tmp_path: Path) -> None:
    (tmp_path / "keyform.yaml").write_text(VALID)
    assert set(load_workspace(cwd=tmp_path, now=NOW).keys) == {"ci-bot", "pinned", "ana"}


@FUZZ
@given(document=DOCUMENTS)
def test_random_documents_load_or_fail_cleanly(tmp_path: Path, document: Any) -> None:
    load_text(tmp_path, yaml.safe_dump(document, allow_unicode=True).encode())


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


@st.composite
def changed_seeds(draw: st.DrawFn) -> Any:
    """The valid seed manifest with one to three values replaced by random ones, or deleted."""
    document = yaml.safe_load(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)[1:]))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) or isinstance(parent, list):
            parent[path[-1]] = draw(VALUES)
        else:
            del parent[path[-1]]
    return document


@FUZZ
@given(document=changed_seeds())
def test_random_changes_to_a_valid_manifests_values_load_or_fail_cleanly(tmp_path: Path, document: Any) -> None:
    load_text(tmp_path, yaml.safe_dump(document, allow_unicode=True).encode())


@FUZZ
@given(data=st.data())
def test_random_mutations_of_a_valid_manifest_load_or_fail_cleanly(tmp_path: Path, data: st.DataObject) -> None:
    text = bytearray(VALID.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace", "duplicate-line"]))
        if action == "delete":
            del text[at:at + data.draw(st.integers(1, 20))]
        elif action == "insert":
            text[at:at] = data.draw(st.sampled_from([b" ", b"\t", b":", b"-", b"{", b"}", b"[", b"\n", b"&a ",
                                                     b"*a", b"<<: ", b"!!binary ", b"#", b"'", b"\xff", b"~"]))
        elif action == "replace" and at < len(text):
            text[at] = data.draw(st.integers(0, 255))
        else:
            lines = bytes(text).split(b"\n")
            index = data.draw(st.integers(0, len(lines) - 1))
            lines.insert(index, lines[index])
            text = bytearray(b"\n".join(lines))
    load_text(tmp_path, bytes(text))


FAST_CHECK = compile_schema(manifest_schema())
JSONSCHEMA = ECMA(manifest_schema())


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(document=st.one_of(DOCUMENTS, changed_seeds()))
def test_fast_schema_check_agrees_with_jsonschema(document: Any) -> None:
    assert FAST_CHECK(document) == JSONSCHEMA.is_valid(document)


def test_fast_schema_check_agrees_on_the_seed_and_its_variants() -> None:
    fast, slow = FAST_CHECK, JSONSCHEMA
    seed = yaml.safe_load(VALID)
    variants = [seed, {**seed, "version": 1.0}, {**seed, "version": True}, {**seed, "extra": 1},
                {**seed, "keys": {"x y": {"provider": "q"}}}, {**seed, "sinks": {"s": {"type": "file", "path": "p"}}}]
    for variant in variants:
        assert fast(variant) == slow.is_valid(variant), variant
