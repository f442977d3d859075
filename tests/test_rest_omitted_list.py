"""A listing answered `200` with no list of keys at `operations.list.items` is an empty listing only
when the reply holds nothing else a failed request's reply holds (proto3 JSON leaves an empty list
out: `{}`). A `200` whose body is an error the definition's `errors` pointers do not cover
(`{"detail": ...}`, `{"error": {"msg": ...}}`, `{"status": "error"}`, `{"fault": ...}`,
`{"ok": false}`, `{"errors": [...]}`) was read as "no keys": every recorded key looked deleted
outside keyform, the plan created each again, and the originals stayed live and untracked. Now
such a reply is an error naming its names and, scrubbed and cut, what it says. The replies real
APIs give for an empty account with the list left out stay empty listings. Against scripted
servers on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyform.errors import ProviderError
from tests.test_provider_rest import TOKEN, item, provider


def answer(body: Any) -> Any:
    return lambda method, path, headers, sent: (200, {}, body)


@pytest.mark.parametrize(("reply", "names", "says"), [
    ({"detail": "Internal error"}, "'/detail'", "Internal error"),
    ({"error": {"msg": "backend unavailable"}}, "'/error'", "backend unavailable"),
    ({"status": "error", "reason": "backend down"}, "'/status', '/reason'", "backend down"),
    ({"fault": {"faultstring": "Rate limit quota violation"}}, "'/fault'", "Rate limit quota violation"),
    ({"ok": False}, "'/ok'", None),
    ({"success": False, "result_info": {"count": 0}}, "'/success'", None),
    ({"code": 13, "details": [{"reason": "INTERNAL"}]}, "'/code', '/details'", "INTERNAL"),
    ({"object": "error", "has_more": False}, "'/object'", "error"),
    ({"errors": [{"code": "partial", "message": "one region is down"}]}, "'/errors'", "one region is down"),
    ({"kind": "Status", "status": "Failure", "reason": "InternalError"}, "'/status', '/reason'", "InternalError"),
    # an envelope's name whose value is an error's (Instagram's `meta`, Tumblr's): read as empty before
    ({"meta": {"code": 400, "error_type": "OAuthException", "error_message": "bad token"}}, "'/meta'", None),
    ({"meta": {"status": 401, "msg": "Not Authorized"}, "has_more": False}, "'/meta'", "Not Authorized"),
    ({"pagination": {"error": "cursor expired"}}, "'/pagination'", "cursor expired"),
    ({"metadata": {"state": {"result": "failed"}}}, "'/metadata'", None),
    # an envelope's name whose value is a string a failure speaks with: read as empty before
    ({"request_id": "Unauthorized"}, "'/request_id'", "Unauthorized"),
    ({"meta": "invalid token"}, "'/meta'", "invalid token"),
    ({"object": "list", "next_page": "InvalidToken", "has_more": False}, "'/next_page'", "InvalidToken"),
    ({"meta": {"page": {"note": "quota exceeded"}}}, "'/meta'", None),
    ({"links": {"self": "/keys"}, "trace_id": "Not Found"}, "'/trace_id'", "Not Found"),
    ({"warnings": ["request timed out, partial result"]}, "'/warnings'", "request timed out, partial result"),
    # what it says is the part that explains the failure, never a harmless name's value (an id)
    ({"id": "req_8f2c", "error_code": 13}, "'/id', '/error_code'", None),
    ({"request_ref": "r-1", "result": "ERR_BACKEND: db down"}, "'/request_ref', '/result'", "ERR_BACKEND: db down"),
    ({"trace": "t-77", "state": {"reason": "quota"}}, "'/trace', '/state'", "quota"),
])
def test_a_200_with_no_list_and_an_error_the_definition_does_not_point_at_is_an_error(
        tmp_path: Path, reply: dict[str, Any], names: str, says: str | None) -> None:
    with provider(tmp_path, answer(reply)) as (p, _), pytest.raises(ProviderError) as caught:
        p.list()
    message = str(caught.value)
    assert message.startswith("t1: list: unexpected response shape (no list of keys at /items, and the reply is "
                              f"not an empty listing: it holds {names}"), message
    assert (f"(it says: {says})" in message) if says else "it says" not in message, message
    assert message.endswith("; read as empty, every recorded key would look deleted)"), message


def test_the_message_is_one_line_cut_and_scrubbed(tmp_path: Path) -> None:
    said = f"bad token {TOKEN}:\nsee\thttps://docs.example/auth " + "x" * 100_000
    names = {f"{TOKEN}-{i}\n": {"detail": said} for i in range(8)}
    with provider(tmp_path, answer(names)) as (p, _), pytest.raises(ProviderError) as caught:
        p.list()
    message = str(caught.value)
    assert TOKEN not in message and "\n" not in message and "\t" not in message, message
    assert "and 3 more (it says: bad token ***: see https://docs.example/auth xxx" in message, message
    assert len(message) < 700, len(message)


@pytest.mark.parametrize("pagination", ["{type: page, param: page}", "{type: cursor, param: c, next: /cursor}"])
def test_a_later_page_of_an_unread_error_is_an_error_not_the_end_of_the_listing(tmp_path: Path,
                                                                               pagination: str) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if "page=2" in path or "c=2" in path:
            return 200, {}, {"detail": "upstream timed out"}
        return 200, {}, {"items": [item(1)], "cursor": "2"}

    with provider(tmp_path, script, pagination=pagination) as (p, _), \
            pytest.raises(ProviderError, match=r"it holds '/detail' \(it says: upstream timed out\)"):
        p.list()


@pytest.mark.parametrize("reply", [
    {},  # proto3 JSON (TextQL's Connect API)
    {"object": "list", "first_id": None, "last_id": None, "has_more": False},  # OpenAI, list left out
    {"object": "list", "url": "/v1/keys", "has_more": False},  # Stripe's envelope
    {"meta": {"page": {"total_filtered_count": 0}}, "links": {"self": "/keys"}},  # JSON:API (Datadog)
    {"nextPageToken": "", "totalSize": 0},  # Google APIs
    {"kind": "KeyList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"}},  # Kubernetes style
    {"_links": {"self": {"href": "/keys"}}, "page": {"size": 20, "totalElements": 0}},  # HAL / Spring
    {"success": True, "errors": [], "messages": [], "result_info": {"count": 0}},  # Cloudflare style
    {"ok": True, "response_metadata": {}, "request_id": "r-1"},  # Slack style, nothing in the metadata
    {"status": "ok", "code": 0, "error": None}, {"status": 200}, {"total_count": 0},
    {"meta": {"code": 200}}, {"meta": {"status": 200, "msg": "OK"}},  # Instagram's, Tumblr's success envelopes
    {"meta": {"errors": [], "error_count": 0, "warnings": [{"code": "deprecated"}]}},
    # envelope strings that are ids, kinds, URLs and opaque cursors (no failure's word standing alone)
    {"object": "list", "request_id": "req_8f2cE0b1Z", "trace_id": "5f0c3b9e-4a51-4e0b-9d0e-2c4a7f1e8a11",
     "next_page_token": "eyJvZmZzZXQiOjAsImVycm9ycyI6MH0", "links": {"self": "https://api.example/v1/keys?page=1"}},
    {"kind": "ApiKeyList", "apiVersion": "keys.example.dev/v1beta1", "meta": "v2", "cursor": "Errorless-page-9"},
])
def test_an_empty_listing_with_its_list_left_out_is_still_empty(tmp_path: Path, reply: dict[str, Any]) -> None:
    with provider(tmp_path, answer(reply)) as (p, _):
        assert p.list() == []


def test_the_names_the_definition_reads_may_stand_in_an_empty_listing(tmp_path: Path) -> None:
    """A name no envelope has but the definition's pagination reads (`/state/more`, `/after_token`)."""
    reply = {"state": {"more": False}, "after_token": ""}
    with provider(tmp_path, answer(reply),
                  pagination="{type: cursor, param: c, next: /after_token, has_more: /state/more}") as (p, _):
        assert p.list() == []


@pytest.mark.parametrize(("reply", "names"), [
    ({"result": {"failure": "db down"}}, "'/result/failure'"),
    ({"result": "denied"}, "'/result'"),
    ({"result": None, "detail": "no"}, "'/detail'"),
])
def test_each_object_on_the_way_of_a_nested_items_pointer_is_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reply: dict[str, Any], names: str) -> None:
    from tests import test_provider_rest

    monkeypatch.setattr(test_provider_rest, "BASE", test_provider_rest.BASE.replace("items: /items",
                                                                                    "items: /result/keys"))
    with provider(tmp_path, answer(reply)) as (p, _), pytest.raises(ProviderError, match=f"it holds {names}"):
        p.list()
    empties: list[dict[str, Any]] = [{"result": {}}, {"result": {"next": ""}}]
    for empty in empties:
        with provider(tmp_path, answer(empty)) as (p, _):
            assert p.list() == [], empty


def test_a_200_with_an_html_page_is_an_error(tmp_path: Path) -> None:
    """(Already so: kept so.) A proxy's or a login page's HTML with a 200."""
    page = b"<html><body>Service temporarily unavailable</body></html>"
    with provider(tmp_path, answer(page)) as (p, _), pytest.raises(ProviderError, match="the body is not JSON"):
        p.list()


@pytest.mark.parametrize("kind", ["textql", "rest"])
def test_textql_the_built_in_and_its_definition_take_the_same_rule(kind: str) -> None:
    """The built-in TextQL provider read any reply without `apiAccessKeys` as no keys
    (`body.get("apiAccessKeys", [])`); the shipped textql.yaml by the rule above. `{}` (proto3 JSON,
    the live API's empty account) stays an empty listing for both."""
    from harness.project import DEFINITIONS
    from keyform.manifest.restdef import load_definition
    from keyform.providers import TextQLProvider
    from keyform.providers.rest import RestProvider
    from keyform.remote import Provider
    from tests.loopback import serving
    from tests.test_provider_rest import ScriptServer

    reply: dict[str, Any] = {}
    with serving(ScriptServer(lambda method, path, headers, sent: (200, {}, reply))) as server:
        if kind == "textql":
            p: Provider = TextQLProvider("tq", server.url, TOKEN, max_retries=0, sleep=lambda s: None)
        else:
            d, problems = load_definition(str(DEFINITIONS / "textql.yaml"), "textql.yaml")
            assert d is not None, problems
            p = RestProvider("tq", d, server.url, TOKEN, {}, max_retries=0, sleep=lambda s: None)
        try:
            assert p.list() == []
            reply = {"error": {"msg": f"backend unavailable for {TOKEN}"}}
            with pytest.raises(ProviderError) as caught:
                p.list()
        finally:
            p.close()
    assert str(caught.value) == (
        "tq: list: unexpected response shape (no list of keys at /apiAccessKeys, and the reply is not an empty "
        "listing: it holds '/error' (it says: backend unavailable for ***); read as empty, every recorded key "
        "would look deleted)"), caught.value


TWILIO_EMPTY = {"first_page_uri": "/keys?Page=0", "start": 0, "end": 0, "service": "x", "uri": "/keys"}


def test_empty_names_lets_a_real_apis_own_envelope_names_stand_in_an_empty_listing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real API whose empty account's reply holds names no envelope keyform knows has (Twilio's
    `start`/`end`, a vendor's `service`): refused without `operations.list.empty_names`, an empty
    listing with it (names compared folded), and a reply with an error still refused with it."""
    with provider(tmp_path, answer(TWILIO_EMPTY)) as (p, _), \
            pytest.raises(ProviderError, match="it holds '/first_page_uri', '/start', '/end', '/service'"):
        p.list()
    from tests import test_provider_rest

    monkeypatch.setattr(test_provider_rest, "BASE", test_provider_rest.BASE.replace(
        "    items: /items\n", "    items: /items\n    empty_names: [first_page_uri, Start, END, service]\n"))
    with provider(tmp_path, answer(TWILIO_EMPTY)) as (p, _):
        assert p.list() == []
    for failed, said in (({**TWILIO_EMPTY, "message": "backend down"}, "but an error: backend down"),
                         ({**TWILIO_EMPTY, "fault": "quota"}, "it holds '/fault'"),
                         ({**TWILIO_EMPTY, "service": "error"}, "it holds '/service'"),
                         ({**TWILIO_EMPTY, "service": {"status": 503}}, "it holds '/service'")):
        with provider(tmp_path, answer(failed)) as (p, _), pytest.raises(ProviderError, match=said):
            p.list()


@pytest.mark.parametrize("name", ["message", "error", "errors", "detail", "fault", "Error_Message", "faultString"])
def test_empty_names_may_not_hold_a_name_failures_speak_with(tmp_path: Path, name: str) -> None:
    from keyform.manifest.restdef import load_definition
    from tests.test_provider_rest import BASE

    text = BASE.replace("LIST_METHOD", "GET").replace("AUTH", "{type: bearer}").replace("LIST_EXTRA\n", "").replace(
        "    items: /items\n", f"    items: /items\n    empty_names:\n      - service\n      - {name}\n")
    (tmp_path / "t.yaml").write_text(text)
    d, problems = load_definition(str(tmp_path / "t.yaml"), "t.yaml")
    line = text.splitlines().index(f"      - {name}") + 1
    assert d is None and [str(p) for p in problems] == [
        f"t.yaml:{line}: operations.list.empty_names[1]: {name!r} is a name a failed request's reply speaks with: an "
        "API's error answered with a 200 would be read as an empty listing, and every recorded key created again"]


@pytest.mark.parametrize(("items", "reply", "there"), [
    ("/items", {"items": None}, "there"),  # Go's encoding of a nil slice, or a server that failed to read it
    ("/items", {"items": None, "has_more": False, "request_id": "r-1"}, "there"),
    ("/result/keys", {"result": None}, "at /result"),
    ("/result/keys", {"result": {"keys": None, "next": ""}}, "there"),
])
def test_a_null_list_is_not_an_empty_listing_unless_the_definition_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, items: str, reply: dict[str, Any], there: str) -> None:
    """A null where the list of keys (or the object holding it) stands was read as no keys: every
    recorded key looked deleted. It is an error naming where, unless `operations.list.null_is_empty`
    says the API documents null as no keys; then an error beside it is still refused."""
    from tests import test_provider_rest

    base = test_provider_rest.BASE.replace("items: /items", f"items: {items}")
    monkeypatch.setattr(test_provider_rest, "BASE", base)
    with provider(tmp_path, answer(reply)) as (p, _), pytest.raises(ProviderError) as caught:
        p.list()
    assert str(caught.value) == (
        f"t1: list: unexpected response shape (no list of keys at {items}: the reply holds null {there}, which is "
        "not an empty list (if the API documents null as no keys, set operations.list.null_is_empty in t.yaml); "
        "read as empty, every recorded key would look deleted)"), caught.value
    monkeypatch.setattr(test_provider_rest, "BASE", base.replace(
        f"    items: {items}\n", f"    items: {items}\n    null_is_empty: true\n"))
    with provider(tmp_path, answer(reply)) as (p, _):
        assert p.list() == []
    with provider(tmp_path, answer({**reply, "detail": "db down"})) as (p, _), \
            pytest.raises(ProviderError, match=r"it holds '/detail' \(it says: db down\)"):
        p.list()


@pytest.mark.parametrize("kind", ["textql", "rest"])
def test_textql_a_null_apiaccesskeys_is_refused_by_the_built_in_and_its_definition(kind: str) -> None:
    """The built-in TextQL provider refused `{"apiAccessKeys": null}`; the shipped textql.yaml read it
    as no keys. The vendor schema (docs/api/textql-api-access-key-v1.openapi.yaml) has
    `apiAccessKeys` an array, never null, and proto3 JSON leaves an empty list out: both refuse it."""
    from harness.project import DEFINITIONS
    from keyform.manifest.restdef import load_definition
    from keyform.providers import TextQLProvider
    from keyform.providers.rest import RestProvider
    from keyform.remote import Provider
    from tests.loopback import serving
    from tests.test_provider_rest import ScriptServer

    with serving(ScriptServer(lambda method, path, headers, sent: (200, {}, {"apiAccessKeys": None}))) as server:
        if kind == "textql":
            p: Provider = TextQLProvider("tq", server.url, TOKEN, max_retries=0, sleep=lambda s: None)
        else:
            d, problems = load_definition(str(DEFINITIONS / "textql.yaml"), "textql.yaml")
            assert d is not None and not d.list_null_is_empty, problems
            p = RestProvider("tq", d, server.url, TOKEN, {}, max_retries=0, sleep=lambda s: None)
        try:
            with pytest.raises(ProviderError) as caught:
                p.list()
        finally:
            p.close()
    assert str(caught.value).startswith(
        "tq: list: unexpected response shape (no list of keys at /apiAccessKeys: the reply holds null there, which "
        "is not an empty list"), caught.value
    assert str(caught.value).endswith("; read as empty, every recorded key would look deleted)"), caught.value


@pytest.mark.parametrize(("definition", "documented", "left_out"), [
    ("openai-admin-keys.yaml", {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False},
     "data"),
    ("sendgrid.yaml", {"result": []}, "result"),
    ("datadog-api-keys.yaml", {"data": [], "meta": {"page": {"total_filtered_count": 0}}}, "data"),
    ("textql.yaml", {"apiAccessKeys": []}, "apiAccessKeys"),
    ("questra.yaml", {"data": []}, None),
])
def test_each_shipped_definitions_documented_empty_reply_is_an_empty_listing(
        definition: str, documented: dict[str, Any], left_out: str | None) -> None:
    """The envelope rules (strings a failure speaks with, a null list) turn no shipped definition's
    documented empty reply, nor that reply with its list left out, into a failure."""
    from harness.project import DEFINITIONS
    from keyform.manifest.restdef import load_definition
    from keyform.providers.rest import RestProvider
    from tests.loopback import serving
    from tests.test_provider_rest import ScriptServer

    d, problems = load_definition(str(DEFINITIONS / definition), definition)
    assert d is not None, problems
    replies = [documented] + ([{k: v for k, v in documented.items() if k != left_out}] if left_out else [])
    options = {name: "x" for name in d.options}
    for reply in replies:
        with serving(ScriptServer(answer(reply))) as server:
            p = RestProvider("svc", d, server.url, TOKEN, options, max_retries=0, sleep=lambda s: None)
            try:
                assert p.list() == [], reply
            finally:
                p.close()


@pytest.mark.parametrize("value", ["'yes'", "1", "[true]", "null"])
def test_null_is_empty_must_be_a_boolean(tmp_path: Path, value: str) -> None:
    """A definition's `null_is_empty: 'yes'` (or 1, a list, null) is refused at its line, not read as
    true or as false."""
    from keyform.manifest.restdef import load_definition
    from tests.test_provider_rest import BASE

    text = BASE.replace("LIST_METHOD", "GET").replace("AUTH", "{type: bearer}").replace("LIST_EXTRA\n", "").replace(
        "    items: /items\n", f"    items: /items\n    null_is_empty: {value}\n")
    (tmp_path / "t.yaml").write_text(text)
    d, problems = load_definition(str(tmp_path / "t.yaml"), "t.yaml")
    line = text.splitlines().index(f"    null_is_empty: {value}") + 1
    assert d is None and len(problems) == 1, problems
    assert str(problems[0]).startswith(f"t.yaml:{line}: operations.list.null_is_empty: "), problems
