"""The three plan formats over one plan with every action and reason kind, against golden files.
Regenerate after an intended change with: UPDATE_GOLDEN=1 pytest tests/test_render_golden.py"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from keyform.plan import Action, AttrChange, Change, Plan
from keyform.render.markdown import render_markdown
from keyform.render.text import render_text
from tests.golden_plan import every_kind_plan

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json").read_text())


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize(("name", "render"), [
    ("plan.txt", lambda p: render_text(p)),
    ("plan.md", lambda p: render_markdown(p)),
    ("plan.json", lambda p: p.dumps()),
])
def test_every_format_matches_its_golden_file(name: str, render) -> None:  # type: ignore[no-untyped-def]
    check_golden(name, render(every_kind_plan()))


def test_golden_plan_has_every_action_kind() -> None:
    plan = every_kind_plan()
    assert {c.action for c in plan.changes} == set(Action)
    assert any(c.deposed for c in plan.changes)
    assert any(c.stale for c in plan.changes)


def test_json_plan_validates_against_the_schema_and_round_trips() -> None:
    plan = every_kind_plan()
    doc = json.loads(plan.dumps())
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    assert Plan.from_json(doc) == plan
    assert list(doc) == ["format_version", "created_at", "state", "manifest_digest", "destroy", "targets",
                         "summary", "notes", "changes", "inputs"]


def test_colour_only_when_asked() -> None:
    plan = every_kind_plan()
    assert "\x1b[" not in render_text(plan)
    assert "\x1b[" in render_text(plan, color=True)


def test_markdown_stays_readable_at_500_changes() -> None:
    changes = tuple(Change(address=f"key-{i:03}", action=Action.CREATE, provider="qp", provider_type="questra",
                           reasons=("new key",), sink=f"env:KEY_{i:03}") for i in range(500))
    md = render_markdown(Plan(changes=changes))
    assert md.count("<details>") == 40
    assert md.count("\n| ➕ |") == 100
    assert "…and 400 more" in md and "other 460 changes are omitted" in md
    assert len(md) < 60_000  # well under GitHub's 65,536-character comment limit


def test_a_map_that_lost_most_of_its_entries_is_diffed_entry_by_entry() -> None:
    """deepdiff reports a map whose entries mostly changed as one changed value, naming no key: the
    renderers then read a removed header from the new map and the plan ended in a KeyError."""
    headers = {f"X-{i}": "v" * 40 for i in range(10)}
    change = Change(address="t", action=Action.UPDATE, provider="tq", provider_type="textql",
                    attrs=(AttrChange("headers", headers, {"X-0": "w"}),))
    text = render_text(Plan(changes=(change,)))
    assert '- "X-9" = "' in text and '~ "X-0" = "' + "v" * 40 + '" → "w"' in text
    assert '" → "w"' in render_markdown(Plan(changes=(change,)))
