"""Validating a state document and apply journal records on load, against `schemas/state.schema.json`
and `schemas/journal.schema.json`.

A state or journal that keyform did not write (edited by hand, damaged, from a buggy tool) must be
refused with one clear message before anything acts on it: a state missing `keys` once read as
empty and planned a create of every key. The schemas are the single source of truth. As for the
manifest (`keyform.manifest.fastcheck`), a compiled yes/no check runs on every load, so a valid
state costs microseconds per key and does not import jsonschema; only when it says no is
jsonschema asked for the wording. On top of the schema, timestamps must be real instants that
date arithmetic can use (between the years 1900 and 9899).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
_STATE_REF = "state.schema.json#"


def _schema(name: str) -> dict[str, Any]:
    from keyform.manifest.fastcheck import bundled_schema  # imported on first use, as in `_check`

    return bundled_schema(name)


@cache
def _journal_local() -> dict[str, Any]:
    """The journal schema with its references into the state schema made local (fastcheck only
    follows `#/$defs/...`): the state's `$defs` are merged in, other pointers inlined."""
    state = _schema("state.schema.json")
    journal = copy.deepcopy(_schema("journal.schema.json"))

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_STATE_REF):
                pointer = ref[len(_STATE_REF):]
                if pointer.startswith("/$defs/"):
                    node = {**node, "$ref": "#" + pointer}
                else:
                    target: Any = state
                    for part in pointer.strip("/").split("/"):
                        target = target[part]
                    node = {**{k: v for k, v in node.items() if k != "$ref"}, **copy.deepcopy(target)}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    local: dict[str, Any] = walk(journal)
    local["$defs"] = {**state["$defs"], **local.get("$defs", {})}
    return local


@cache
def _check(name: str) -> Callable[[Any], bool]:
    from keyform.manifest.fastcheck import compile_schema

    return compile_schema(_journal_local() if name == "journal" else _schema(f"{name}.schema.json"))


def state_problem(doc: Any) -> str | None:
    """None for a valid state document; else the first problem, e.g. `field "keys.ci-bot.sink": 'x'
    is not valid (expected an object with sink and as, or null)`."""
    if _check("state")(doc):
        return _time_problem(_state_times(doc)) or _duration_problem(doc)
    return _worded(doc, "state")


def journal_problem(record: Any) -> str | None:
    """None for a valid journal record; else what is wrong with it."""
    if _check("journal")(record):
        return _time_problem(_record_times(record))
    return _worded(record, "journal")


def _state_times(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for address, key in doc["keys"].items():
        yield f"keys.{address}.created_at", key["created_at"]
        if key["expires_at"] is not None:
            yield f"keys.{address}.expires_at", key["expires_at"]
    for i, dep in enumerate(doc["deposed"]):
        yield f"deposed[{i}].deposed_at", dep["deposed_at"]
        yield f"deposed[{i}].revoke_after", dep["revoke_after"]


def _duration_problem(doc: dict[str, Any]) -> str | None:
    """A deposed key's usage rule (`unused_for`) must be a duration keyform can compute with."""
    from keyform.durations import parse_duration

    for i, dep in enumerate(doc["deposed"]):
        text = dep.get("unused_for")
        if text is None:
            continue
        try:
            ok = parse_duration(text) > parse_duration("0s")
        except ValueError:
            ok = False
        if not ok:
            return f'field "deposed[{i}].unused_for": {_shown(text)} is not a duration keyform can use (1s to 36500d)'
    return None


def _record_times(record: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The timestamps the schema checked the form of (other ops' extra fields are not read)."""
    if record["op"] == "intent" and "at" in record:
        yield "at", record["at"]
    if record["op"] not in ("done", "created"):  # (a `created` record carries what its `done` will)
        return
    key = record.get("key")
    if isinstance(key, dict):
        yield "key.created_at", key["created_at"]
        if key["expires_at"] is not None:
            yield "key.expires_at", key["expires_at"]
    dep = record.get("deposed")
    if isinstance(dep, dict):
        yield "deposed.deposed_at", dep["deposed_at"]
        yield "deposed.revoke_after", dep["revoke_after"]


def _time_problem(times: Iterator[tuple[str, Any]]) -> str | None:
    from keyform.durations import MAX_YEAR, MIN_YEAR, parse_time

    for where, value in times:
        try:
            at: datetime | None = parse_time(value)
        except (ValueError, OverflowError):
            at = None
        if at is None or not MIN_YEAR <= at.year <= MAX_YEAR:
            return f'field "{where}": {_shown(value)} is not a timestamp keyform can use'
    return None


def plan_problem(doc: Any) -> str | None:
    """None for a document that follows schemas/plan.schema.json; else what is wrong with it (a
    saved plan is read back by `apply FILE`, `show` and `graph --plan`: an edited or damaged one
    is one message, never a crash on a field of the wrong type)."""
    return None if _check("plan")(doc) else _worded(doc, "plan")


def _worded(doc: Any, which: str) -> str:
    """jsonschema's words for the most relevant error (imported only here, on failure)."""
    import jsonschema
    from referencing import Registry, Resource

    from keyform.manifest.fastcheck import ecma_validator_class

    state = _schema("state.schema.json")
    if which in ("state", "plan"):
        validator = ecma_validator_class()(_schema(f"{which}.schema.json"))
    else:
        registry: Registry[Any] = Registry().with_resource(state["$id"], Resource.from_contents(state))
        validator = ecma_validator_class()(_schema("journal.schema.json"), registry=registry)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:  # the fast check and jsonschema disagree: a bug in one of them; refuse anyway
        return "does not match its schema"
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    message = error.message if len(error.message) <= 200 else error.message[:200] + "…"
    if error.validator == "required":
        name = message.split("'")[1] if message.count("'") >= 2 else message
        return f'is missing required field "{where + "." if where else ""}{name}"'
    return f'field "{where}": {message}' if where else message


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:60] + "…"
