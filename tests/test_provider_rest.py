"""The declarative rest provider on the wire, against scripted loopback servers on 127.0.0.1: every
pagination style, every auth style, error mapping, the ambiguous-create contract, and an attacker's
server (a next link to another host, a cursor loop, secrets echoed back in error bodies). Plus
recovery of a create whose reply was lost, end to end through `type: rest`."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError
from keyform.manifest.restdef import RestDefinition, at, load_definition
from keyform.providers.http import RetryPolicy
from keyform.providers.rest import RestProvider
from keyform.remote import CreateRequest
from tests.loopback import LoopbackServer, QuietHandler, serving

TOKEN = "CANARY-token-5d1e9f"
OPTION_SECRET = "CANARY-option-77aa01"
INPUT_SECRET = "CANARY-input-3c3c3c"

Script = Callable[[str, str, dict[str, str], Any], tuple[int, dict[str, str], Any]]

BASE = """\
version: 1
name: t
options:
  workspace: {}
  signing: {secret: true}
auth: AUTH
headers:
  X-Workspace: "${options.workspace}"
  X-Signing: "${options.signing}"
expiry: {supported: true}
key:
  id: /id
  created_at: /created
  expires_at: /expires
  revoked: {path: /status, equals: [revoked, disabled]}
attributes:
  name: {type: string, path: /name, default: "${address}", updatable: true}
  tags: {type: string_list, path: /tags, default: []}
  password: {type: string, secret: true}
errors:
  message: [/error/message, /message]
  code: /error/code
operations:
  list:
    method: LIST_METHOD
    path: /keys
    items: /items
LIST_EXTRA
  create:
    method: POST
    path: /keys
    body: {name: "${attrs.name}", tags: "${attrs.tags}", password: "${secrets.password}", expires: "${expires_at}"}
    secret: /secret
  update:
    method: PATCH
    path: /keys/${id}
    body: {name: "${attrs.name}"}
    key: null
  delete:
    method: DELETE
    path: /keys/${id}
    gone: [404]
    gone_codes: [no_such_key]
"""


def definition(tmp_path: Path, *, auth: str = "{type: bearer}", list_method: str = "GET",
               pagination: str = "") -> RestDefinition:
    text = BASE.replace("AUTH", auth).replace("LIST_METHOD", list_method).replace(
        "LIST_EXTRA\n", f"    pagination: {pagination}\n" if pagination else "")
    if list_method == "POST":
        text = text.replace("    items: /items\n", "    items: /items\n    body: {}\n")
    path = tmp_path / "t.yaml"
    path.write_text(text)
    d, problems = load_definition(str(path), "t.yaml")
    assert d is not None, [str(p) for p in problems]
    return d


class Scripted(QuietHandler):
    def _serve(self) -> None:
        server: ScriptServer = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        headers = {k: v for k, v in self.headers.items()}
        server.seen.append((self.command, self.path, headers, body))
        status, extra, payload = server.script(self.command, self.path, headers, body)
        if status == 0:  # drop the connection without an answer
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = b"" if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve


class ScriptServer(LoopbackServer):
    def __init__(self, script: Script) -> None:
        super().__init__(Scripted)
        self.script = script


@contextmanager
def provider(tmp_path: Path, script: Script, **kw: Any) -> Iterator[tuple[RestProvider, ScriptServer]]:
    with serving(ScriptServer(script)) as server:
        p = RestProvider("t1", definition(tmp_path, **kw), server.url, TOKEN,
                         {"workspace": "ws-1", "signing": OPTION_SECRET}, max_retries=2, sleep=lambda s: None)
        try:
            yield p, server
        finally:
            p.close()


def item(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"k{i}", "name": f"n{i}", "tags": ["a"], "created": "2026-01-01T00:00:00Z", **extra}


def query(path: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items()}


def test_cursor_pages_are_followed_and_every_request_carries_auth_and_option_headers(tmp_path: Path) -> None:
    pages = {None: (["k1", "k2"], "c2"), "c2": (["k3"], "c3"), "c3": (["k4"], "")}

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        ids, nxt = pages[query(path).get("after")]
        return 200, {}, {"items": [item(int(i[1:])) for i in ids], "next": nxt}

    with provider(tmp_path, script, pagination="{type: cursor, param: after, next: /next}") as (p, server):
        keys = p.list()
    assert [k.id for k in keys or []] == ["k1", "k2", "k3", "k4"]
    assert len(server.seen) == 3
    for _, _, headers, _ in server.seen:
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["X-Workspace"] == "ws-1" and headers["X-Signing"] == OPTION_SECRET


def test_next_link_relative_absolute_and_link_header(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        page = query(path).get("p", "1")
        nxt = {"1": "/keys?p=2", "2": f"{server_url[0]}/keys?p=3", "3": None}[page]
        return 200, {}, {"items": [item(int(page))], "links": {"next": nxt}}

    server_url: list[str] = []
    with provider(tmp_path, script, pagination="{type: next_link, next: /links/next}") as (p, server):
        server_url.append(server.url)
        assert [k.id for k in p.list() or []] == ["k1", "k2", "k3"]

    def by_header(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        page = int(query(path).get("page", "1"))
        link = {"Link": f'<{server_url[1]}/keys?page={page + 1}>; rel="next", <x>; rel="last"'} if page < 3 else {}
        return 200, link, {"items": [item(page)]}

    with provider(tmp_path, by_header, pagination="{type: next_link, next: 'header:Link'}") as (p, server):
        server_url.append(server.url)
        assert [k.id for k in p.list() or []] == ["k1", "k2", "k3"]


def test_a_next_link_to_another_host_is_refused_and_the_token_never_goes_there(tmp_path: Path) -> None:
    with serving(ScriptServer(lambda *a: (200, {}, {"items": []}))) as elsewhere:
        def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
            return 200, {}, {"items": [item(1)], "links": {"next": f"{elsewhere.url}/steal"}}

        with provider(tmp_path, script, pagination="{type: next_link, next: /links/next}") as (p, _), pytest.raises(ProviderError) as caught:
            p.list()
        assert "points at another host; not followed" in str(caught.value)
        assert elsewhere.seen == []


def test_a_cursor_loop_is_an_error_not_an_endless_listing(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"items": [item(1)], "next": "same"}

    with provider(tmp_path, script, pagination="{type: cursor, param: after, next: /next}") as (p, server), pytest.raises(ProviderError, match="twice"):
        p.list()
    assert len(server.seen) == 2


def test_offset_in_a_post_body_and_page_numbers_stop_at_an_empty_page_or_the_total(tmp_path: Path) -> None:
    def by_offset(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        off = body["offset"]
        return 200, {}, {"items": [item(i) for i in range(off, min(off + 2, 5))]}

    with provider(tmp_path, by_offset, list_method="POST",
                  pagination="{type: offset, field: offset, size: 2}") as (p, server):
        assert [k.id for k in p.list() or []] == ["k0", "k1", "k2", "k3", "k4"]
        assert [b["offset"] for _, _, _, b in server.seen] == [0, 2, 4, 5]  # a short page is not the end

    def by_page(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        q = query(path)
        n, size = int(q["page"]), int(q["per_page"])
        return 200, {}, {"items": [item(i) for i in range(n * size, min((n + 1) * size, 6))], "total": 6}

    with provider(tmp_path, by_page, pagination="{type: page, param: page, start: 0, size_param: per_page, "
                  "size: 3, total: /total}") as (p, server):
        assert len(p.list() or []) == 6
        assert len(server.seen) == 2  # the total says when to stop: no empty third page asked for


@pytest.mark.parametrize(("auth", "check"), [
    ("{type: header, header: X-Api-Key, value: 'Token ${token}'}", lambda h, q: h["X-Api-Key"] == f"Token {TOKEN}"),
    ("{type: basic, username: api}", lambda h, q: h["Authorization"] ==
     "Basic " + base64.b64encode(f"api:{TOKEN}".encode()).decode()),
    ("{type: query, param: api_key}", lambda h, q: q.get("api_key") == TOKEN and "Authorization" not in h),
])
def test_auth_styles(tmp_path: Path, auth: str, check: Callable[[dict[str, str], dict[str, str]], bool]) -> None:
    with provider(tmp_path, lambda *a: (200, {}, {"items": []}), auth=auth) as (p, server):
        assert p.list() == []
    _, path, headers, _ = server.seen[0]
    assert check(headers, query(path))


def test_query_auth_token_never_appears_in_an_error(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        return 400, {}, {"message": f"bad request for {path}"}

    with provider(tmp_path, script, auth="{type: query, param: api_key}") as (p, _), pytest.raises(ProviderError) as caught:
        p.list()
    assert TOKEN not in str(caught.value) and "t1: list: 400 bad request for /keys?api_key=***" in str(caught.value)


def test_secrets_echoed_back_in_error_bodies_are_scrubbed(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        return 422, {}, {"error": {"code": "invalid", "message": f"rejected {body} with {headers['X-Signing']} "
                                   f"and {headers['Authorization']}"}}

    with provider(tmp_path, script) as (p, _), pytest.raises(ProviderError) as caught:
        p.create(CreateRequest("a", {"name": "A", "tags": []}, None, {"password": INPUT_SECRET}))
    text = str(caught.value) + repr(caught.value)
    assert "t1: create \"a\": invalid: rejected" in text
    for secret in (TOKEN, OPTION_SECRET, INPUT_SECRET):
        assert secret not in text
    assert caught.value.ambiguous is False


def test_create_sends_the_body_template_and_returns_the_secret_only_in_the_result(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        return 201, {}, {**item(9, name=body["name"], tags=body["tags"]), "secret": "CANARY-issued-secret"}

    with provider(tmp_path, script) as (p, server):
        result = p.create(CreateRequest("a", {"name": "A", "tags": ["x"]}, "2027-01-01T00:00:00Z",
                                        {"password": INPUT_SECRET}))
    assert server.seen[0][3] == {"name": "A", "tags": ["x"], "password": INPUT_SECRET,
                                 "expires": "2027-01-01T00:00:00Z"}
    assert result.secret == "CANARY-issued-secret" and result.key.id == "k9"
    assert "CANARY" not in repr(result) + repr(p)


@pytest.mark.parametrize(("status", "ambiguous", "attempts"), [(500, True, 1), (502, True, 1), (400, False, 1),
                                                                (503, False, 3),
                                                                # rate refusals have their own, larger budget
                                                                (429, False, RetryPolicy().max_throttled + 1)])
def test_create_errors_follow_the_ambiguous_create_contract(tmp_path: Path, status: int, ambiguous: bool,
                                                            attempts: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RetryPolicy, "backoff", lambda self, attempt, rng: 0.0)  # the instance pauses, not waits
    with provider(tmp_path, lambda *a: (status, {}, {"message": "nope"})) as (p, server), pytest.raises(ProviderError) as caught:
        p.create(CreateRequest("a", {"name": "A", "tags": []}, None))
    assert caught.value.ambiguous is ambiguous and caught.value.status == status
    assert len(server.seen) == attempts  # only 429/503 (nothing was done) are retried for a create


def test_a_dropped_create_and_an_unreadable_create_reply_are_ambiguous(tmp_path: Path) -> None:
    with provider(tmp_path, lambda *a: (0, {}, None)) as (p, server), pytest.raises(ProviderError) as caught:
        p.create(CreateRequest("a", {"name": "A", "tags": []}, None))
    assert caught.value.ambiguous and "the key may exist remotely" in str(caught.value) and len(server.seen) == 1

    with provider(tmp_path, lambda *a: (201, {}, b'{"id": "k_salvaged", "name": 5')) as (p, _), pytest.raises(ProviderError) as caught:
        p.create(CreateRequest("a", {"name": "A", "tags": []}, None))
    assert caught.value.ambiguous and getattr(caught.value, "remote_id", None) == "k_salvaged"


def test_status_mapping_update_without_a_key_and_delete_of_a_gone_key(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "GET":
            return 200, {}, {"items": [item(1, status="disabled"), item(2, status="active"),
                                       item(3, expires=1798761600)]}
        if method == "PATCH":
            return 204, {}, None
        if path.endswith("/k404"):
            return 404, {}, {"message": "gone"}
        if path.endswith("/kcode"):
            return 400, {}, {"error": {"code": "no_such_key", "message": "gone"}}
        return 409, {}, {"error": {"code": "conflict", "message": "key in use"}}

    with provider(tmp_path, script) as (p, _):
        listed = p.list() or []
        assert [k.revoked for k in listed] == [True, False, False]
        assert listed[2].expires_at == "2027-01-01T00:00:00Z"  # Unix seconds read as a time
        updated = p.update("k1", {"name": "B"}, None)
        assert updated.id == "k1" and updated.attrs == {"name": "B"}
        p.delete("k404")
        p.delete("kcode")
        with pytest.raises(ProviderError, match="conflict: key in use"):
            p.delete("k409")


def test_a_wrongly_typed_listing_is_one_shape_error(tmp_path: Path) -> None:
    with provider(tmp_path, lambda *a: (200, {}, {"items": [item(1, tags="not-a-list")]})) as (p, _), pytest.raises(ProviderError, match=r"unexpected response shape \(item 0 \(k1\) tags is not a string list"):
        p.list()


def test_recovery_finds_the_key_of_a_create_whose_reply_was_lost_through_type_rest(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url, rest=True)
    project.questra("a: {provider: qp, name: deploy-bot}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    emu_control.faults(drop_after_commit_rate=1.0)
    res = project.run("apply", "--auto-approve", "--replace", "a")
    assert res.exit_code == 1 and "the key may exist remotely" in res.output, res.output
    emu_control.faults(drop_after_commit_rate=0.0)
    orphans = [k["id"] for k in emu_control.questra_keys(ORG) if k["id"] != project.remote_id("a")]
    assert len(orphans) == 1
    plan = project.run("plan")
    assert f"{orphans[0]} (orphan of an interrupted create of " in plan.stdout, plan.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert {k["id"]: k["revoked"] for k in emu_control.questra_keys(ORG)}[orphans[0]] is True


def test_an_option_that_would_smuggle_a_header_is_refused_without_showing_it(tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        RestProvider("t1", definition(tmp_path), "http://127.0.0.1:9", TOKEN,
                     {"workspace": "ws\r\nX-Evil: CANARY-smuggled", "signing": OPTION_SECRET})
    assert "the X-Workspace header" in str(caught.value) and "a line break" in str(caught.value)
    assert "CANARY" not in str(caught.value)


def test_last_used_is_read_where_the_definition_says(tmp_path: Path) -> None:
    text = BASE.replace("AUTH", "{type: bearer}").replace("LIST_METHOD", "GET").replace("LIST_EXTRA\n", "")
    path = tmp_path / "lu.yaml"
    path.write_text(text.replace("  expires_at: /expires\n", "  expires_at: /expires\n  last_used: /used\n"))
    d, problems = load_definition(str(path), "lu.yaml")
    assert d is not None, problems
    p = RestProvider("t1", d, "http://127.0.0.1:9", TOKEN, {})
    key = p.parse_key(item(1, used="2026-03-01T10:00:00.5Z"), "item 0")
    assert (key.last_used_at, key.usage_reported) == ("2026-03-01T10:00:00Z", True)
    never = p.parse_key(item(2, used=None), "item 1")  # null: reported, never used
    assert (never.last_used_at, never.usage_reported) == (None, True)
    silent = p.parse_key(item(3), "item 2")  # no field: usage not reported
    assert (silent.last_used_at, silent.usage_reported) == (None, False)
    p.close()


def test_a_pointer_indexes_a_list_with_ascii_digits_only() -> None:
    """RFC 6901's array index is ASCII digits: `/items/٣` (an Arabic-Indic three) picked item 3."""
    doc = {"items": ["a", "b", "c", "d"]}
    assert at(doc, ("items", "3")) == "d"
    assert at(doc, ("items", "\u0663")) is None and at(doc, ("items", "\u00b3")) is None
