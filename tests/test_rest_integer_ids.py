"""`${id}` in a body was always a string: an API whose ids are integers and which validates its
bodies strictly (`{"id": "123"}` → 400 `id must be an integer`) could not be driven by a definition,
so no key of it could be changed or revoked. `key.id_type: integer` sends a body value that is
exactly `${id}` as a JSON number (a path keeps its digits), refuses an id that is no integer (from
the API's reply: naming the definition; from the state: before anything is sent), and a listing
reads ids the same way whatever the type: a JSON integer is its decimal text, as recorded; any
other number or a boolean is an error, never text that matches no recorded key. Against a scripted
API on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from keyform.errors import ProviderError
from keyform.manifest.restdef import load_definition
from keyform.providers.rest import RestProvider
from tests.loopback import serving
from tests.test_provider_rest import TOKEN, Script, ScriptServer

DEFINITION = """\
version: 1
name: strict
auth: {type: bearer}
key: {id: /id, ID_TYPE}
attributes:
  name: {type: string, path: /name, default: "${address}", updatable: true}
operations:
  list: {method: GET, path: /keys, items: /items}
  create: {method: POST, path: /keys, body: {name: "${attrs.name}"}, secret: /secret}
  update: {method: POST, path: "/keys/${id}/update", body: {id: "${id}", name: "${attrs.name}"}, key: null}
  delete: {method: POST, path: /keys/delete, body: {key: {id: "${id}"}, note: "revoking ${id}"}}
"""


@contextmanager
def strict(tmp_path: Path, script: Script, id_type: str | None = "integer") -> Iterator[tuple[RestProvider,
                                                                                          ScriptServer]]:
    path = tmp_path / "strict.yaml"
    path.write_text(DEFINITION.replace(", ID_TYPE", f", id_type: {id_type}" if id_type else ""))
    d, problems = load_definition(str(path), "providers/strict.yaml")
    assert d is not None, [str(p) for p in problems]
    with serving(ScriptServer(script)) as server:
        p = RestProvider("sp", d, server.url, TOKEN, {}, max_retries=1, sleep=lambda s: None)
        try:
            yield p, server
        finally:
            p.close()


def api(ids: list[Any]) -> Script:
    """An API whose key ids are integers: a body `id` that is not one is refused, as a strict
    validator does (FastAPI's, Rails' strong parameters with a type)."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "GET":
            return 200, {}, {"items": [{"id": i, "name": f"n{i}"} for i in ids]}
        key_id = body["id"] if "id" in body else body["key"]["id"]
        if type(key_id) is not int:
            return 400, {}, {"message": f"id must be an integer, got {type(key_id).__name__}"}
        return 200, {}, {}
    return script


def test_an_integer_id_is_sent_as_a_json_number_in_a_body_and_as_digits_in_a_path(tmp_path: Path) -> None:
    with strict(tmp_path, api([123, 4567])) as (p, server):
        listed = p.list()
        p.update("123", {"name": "renamed"}, None)
        p.delete("4567")
    assert [k.id for k in listed or []] == ["123", "4567"]  # as the state records ids: text
    (_, upath, _, ubody), (_, _, _, dbody) = [(m, path, h, b) for m, path, h, b in server.seen if m == "POST"]
    assert upath == "/keys/123/update" and ubody == {"id": 123, "name": "renamed"}
    assert dbody == {"key": {"id": 4567}, "note": "revoking 4567"}  # mixed with text: text, as before


def test_without_id_type_the_id_stays_a_string_and_the_strict_api_refuses_it(tmp_path: Path) -> None:
    with strict(tmp_path, api([123]), id_type=None) as (p, _), \
            pytest.raises(ProviderError, match="id must be an integer, got str"):
        p.delete("123")


def test_a_recorded_id_that_is_no_integer_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    for bad in ("abc", "007", "+7", "-0", "1_000", "١٢٣", "12 "):
        with strict(tmp_path, api([])) as (p, server), pytest.raises(ProviderError) as caught:
            p.delete(bad)
        assert "is not an integer" in str(caught.value) and "providers/strict.yaml's key.id_type" in str(caught.value)
        assert "Traceback" not in str(caught.value) and server.seen == []


@pytest.mark.parametrize("listed", [["k1"], ["0123"]])
def test_a_listed_id_that_is_no_integer_is_an_error_naming_the_definition(tmp_path: Path, listed: list[Any]) -> None:
    with strict(tmp_path, api(listed)) as (p, _), pytest.raises(ProviderError) as caught:
        p.list()
    message = str(caught.value)
    assert message.startswith("sp: list: unexpected response shape (item 0 has the id")
    assert f"{listed[0]!r}, which is not an integer, and providers/strict.yaml's key.id_type" in message


@pytest.mark.parametrize("id_type", ["integer", None])
@pytest.mark.parametrize(("listed", "shown"), [(1e3, "1000.0"), (1.0, "1.0"), (True, "true")])
def test_a_hostile_numeric_id_is_an_error_not_text_that_matches_no_key(
        tmp_path: Path, id_type: str | None, listed: Any, shown: str) -> None:
    """`1e3` read as "1000.0" (or `true` as "True") matched no recorded key: each looked deleted
    outside keyform and was created again. Refused instead, whatever the id type."""
    with strict(tmp_path, api([7, listed]), id_type=id_type) as (p, _), pytest.raises(ProviderError) as caught:
        p.list()
    assert f"item 1 has the id {shown}, which is neither a string nor an integer" in str(caught.value)


def test_digit_strings_and_a_huge_integer_are_read_alike(tmp_path: Path) -> None:
    """An API that lists `"123"` and takes 123 is fine with `integer`; an integer past 64 bits is
    its exact digits (not a float's); one longer than an id can be is refused."""
    huge = 2**80
    with strict(tmp_path, api(["123", huge])) as (p, server):
        assert [k.id for k in p.list() or []] == ["123", str(huge)]
        p.delete(str(huge))
    assert server.seen[-1][3] == {"key": {"id": huge}, "note": f"revoking {huge}"}
    with strict(tmp_path, api([10**300])) as (p, _), pytest.raises(ProviderError, match="an id of 301 characters"):
        p.list()


def test_apply_renames_and_destroys_keys_of_a_strict_integer_id_api(tmp_path: Path) -> None:
    """End to end through `keyform apply`: keys created, renamed (the update body's `id` a number),
    one removed (the delete body's too), and a plan after it has nothing to do (the listed integer
    ids match the recorded text ones); then a listing with `1e3` for an id fails the plan in one
    line naming the item, the state untouched."""
    from harness.project import Project

    keys: dict[int, dict[str, Any]] = {}
    hostile: list[Any] = []

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "GET":
            return 200, {}, {"items": [*keys.values(), *({"id": i, "name": "x"} for i in hostile)]}
        if path == "/keys":
            n = 1000 + len(keys)
            keys[n] = {"id": n, "name": body["name"]}
            return 201, {}, {**keys[n], "secret": f"sk-CANARY-{n}-0123456789abcdef"}
        key_id = body["id"] if "id" in body else body["key"]["id"]
        if type(key_id) is not int or key_id not in keys:
            return 400, {}, {"message": f"id must be the integer id of a key, got {key_id!r}"}
        if path.endswith("/update"):
            keys[key_id]["name"] = body["name"]
        else:
            del keys[key_id]
        return 200, {}, {}

    definition = DEFINITION.replace(", ID_TYPE", ", id_type: integer")
    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url)
        project.rest_api(definition, "a: {provider: rp, name: a}\nb: {provider: rp, name: b}\n")
        assert project.run("apply", "--auto-approve").exit_code == 0
        project.rest_api(definition, "a: {provider: rp, name: renamed}\n")
        applied = project.run("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        assert list(keys.values()) == [{"id": 1000, "name": "renamed"}]
        assert project.run("plan", "--detailed-exitcode").exit_code == 0
        state = project.state_path.read_bytes()
        hostile.append(1e3)
        planned = project.run("plan")
    assert planned.exit_code == 1 and "Traceback" not in planned.output, planned.output
    assert "item 1 has the id 1000.0, which is neither a string nor an integer" in planned.output, planned.output
    assert len([line for line in planned.output.splitlines() if line.strip()]) == 1, planned.output
    assert project.state_path.read_bytes() == state


@pytest.mark.parametrize("value", ["number", "Integer", "1", "[integer]"])
def test_an_id_type_other_than_string_or_integer_is_refused_at_its_line(tmp_path: Path, value: str) -> None:
    """A definition's `key.id_type` is `string` or `integer`; anything else (a near miss, a number, a
    list) is refused at the definition's line, never taken for either."""
    path = tmp_path / "strict.yaml"
    path.write_text(DEFINITION.replace(", ID_TYPE", f", id_type: {value}"))
    d, problems = load_definition(str(path), "providers/strict.yaml")
    assert d is None and problems, problems
    said = " ".join(str(p) for p in problems)
    assert "strict.yaml:4" in said and "id_type" in said, said


def test_ids_past_2_to_the_53_go_through_apply_exactly_and_a_float_spelling_is_refused(tmp_path: Path) -> None:
    """An int64 API's ids past 2**53 (where a float, as JavaScript reads JSON, loses the last
    digits: 9007199254740993 → ...992) are listed, compared, recorded in the state and the
    journal, and sent back in update and delete bodies as the exact integers the API listed; a plan
    after it has nothing to do. A listing that spells such an id as a float (`9007199254740993.0`)
    fails the plan in one line, saying the number it read is approximate, the state untouched."""
    from harness.project import Project

    big = [2**53 + 1, 2**63 - 1]  # neither is a float's: each float() rounds to a neighbour
    keys: dict[int, dict[str, Any]] = {}
    lock = threading.Lock()  # (the two creates may come at once)
    journals: list[bytes] = []
    raw_listing: list[bytes] = []

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "GET":
            return 200, {}, raw_listing[0] if raw_listing else {"items": list(keys.values())}
        if path == "/keys":
            with lock:
                n = big[len(keys)]
                keys[n] = {"id": n, "name": body["name"]}
            return 201, {}, {**keys[n], "secret": f"sk-CANARY-{n % 1000}-0123456789abcdef"}
        journals.append(project.journal_path.read_bytes())
        key_id = body["id"] if "id" in body else body["key"]["id"]
        if type(key_id) is not int or key_id not in keys:  # json.loads reads the digits sent: exact
            return 400, {}, {"message": f"id must be the integer id of a key, got {key_id!r}"}
        if path.endswith("/update"):
            keys[key_id]["name"] = body["name"]
        else:
            del keys[key_id]
        return 200, {}, {}

    definition = DEFINITION.replace(", ID_TYPE", ", id_type: integer")
    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url)
        project.rest_api(definition, "a: {provider: rp, name: a}\nb: {provider: rp, name: b}\n")
        assert project.run("apply", "--auto-approve").exit_code == 0
        state = project.state_path.read_text()
        assert all(f'"{n}"' in state for n in big) and not any(str(int(float(n))) in state for n in big), state
        assert project.run("plan", "--detailed-exitcode").exit_code == 0  # listed ids match the recorded
        a, b = sorted(keys, key=lambda n: keys[n]["name"])
        project.rest_api(definition, "a: {provider: rp, name: renamed}\n")
        applied = project.run("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        assert list(keys.values()) == [{"id": a, "name": "renamed"}]
        assert sorted((json.dumps(sent) for m, p, _, sent in server.seen if m == "POST" and p != "/keys")) == [
            json.dumps({"id": a, "name": "renamed"}), json.dumps({"key": {"id": b}, "note": f"revoking {b}"})]
        assert len(journals) == 2 and all(str(n).encode() in b"".join(journals) for n in big)
        assert not any(str(int(float(n))).encode() in b"".join(journals) for n in big)
        assert project.run("plan", "--detailed-exitcode").exit_code == 0
        state_bytes = project.state_path.read_bytes()
        raw_listing.append(b'{"items": [{"id": 9007199254740993.0, "name": "renamed"}]}')
        planned = project.run("plan")
    assert planned.exit_code == 1 and "Traceback" not in planned.output, planned.output
    assert "item 0 has the id about 9007199254740992.0, which is neither a string nor an integer" in planned.output, \
        planned.output
    assert len([line for line in planned.output.splitlines() if line.strip()]) == 1, planned.output
    assert project.state_path.read_bytes() == state_bytes
