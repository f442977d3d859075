"""Found by an adversarial review of the rest provider's pagination: replies that ended a listing
early without an error, or ran it to 10,000 requests. A listing that stops short is the worst
failure: every key on a later page looks deleted outside keyform, the plan creates it again, and
the original stays live and untracked. Each against a scripted API on 127.0.0.1.

- A `has_more` pointer with a typo (`/meta/hasMoer`) read as false: a cursor listing ended after its
  first page. Now a boolean of a like name in the reply is an error naming the field; with none,
  the cursor is followed until a page comes back empty.
- Cursors (or next links) always new while the pages list nothing new: 10,000 requests. Now an
  error after MAX_IDLE_PAGES such pages in a row; empty pages between pages of keys still list.
- `page`/`offset` against an API that ignores the parameter: one page repeated, shorter than the
  `size` sent (the API caps it lower) or with no `size_param`, was taken for the last page.
- `total: -1` or `0` (an API that does not count), or a `total` that names the keys on the page,
  ended the listing after its first page.
- A Link header whose next URL holds a comma, or whose rel is `"next last"` or `Next`, was missed.
- A page answered `200` with an error body and no list was read as an empty page: the end.
- An API that serves fewer keys than the size sent but counts its pages by that size skipped keys.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness.project import SCRIPTED_REST, Project
from keyform.errors import ProviderError
from keyform.providers import rest
from tests.loopback import serving
from tests.test_provider_rest import ScriptServer, item, provider

Reply = tuple[int, dict[str, str], Any]


def _q(path: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items()}


def _n(path: str) -> int:
    m = re.search(r"c=(\d+)", path)
    return int(m.group(1)) if m else 0


# ------------------------------------------------------------ 1. has_more names nothing


@pytest.mark.parametrize(("pointer", "where", "found"), [
    ("/meta/hasMoer", "meta/hasMore", "/meta/hasMore"),  # a typo
    ("/meta/has_more", "meta/hasMore", "/meta/hasMore"),  # another style of name
    ("/meta/has_more", "has_more", "/has_more"),  # another place
])
def test_a_has_more_pointer_with_a_typo_is_an_error_naming_the_field(tmp_path: Path, pointer: str, where: str,
                                                                     found: str) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        n = _n(path)
        reply: dict[str, Any] = {"items": [item(n)], "cursor": str(n + 1), "meta": {"count": 1}}
        *parents, name = where.split("/")
        (reply["meta"] if parents else reply)[name] = n < 2
        return 200, {}, reply

    with provider(tmp_path, script, pagination=f"{{type: cursor, param: c, next: /cursor, has_more: {pointer}}}") \
            as (p, server), pytest.raises(ProviderError) as caught:
        p.list()
    message = str(caught.value)
    assert f"nothing at has_more ({pointer}), but a boolean at {found}" in message
    assert "t.yaml's operations.list.pagination.has_more" in message
    assert len(server.seen) == 1


def test_a_has_more_that_names_nothing_follows_the_cursor_to_an_empty_page(tmp_path: Path) -> None:
    """No like-named boolean (the API calls it `more_pages`): the cursor is followed."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        n = _n(path)
        return 200, {}, {"items": [item(n)] if n < 3 else [], "more_pages": n < 2, "cursor": str(n + 1)}

    with provider(tmp_path, script, pagination="{type: cursor, param: c, next: /cursor, has_more: /has_more}") \
            as (p, server):
        keys = p.list()
    assert [k.id for k in keys or []] == ["k0", "k1", "k2"] and len(server.seen) == 4


@pytest.mark.parametrize("last", [{}, {"cursor": ""}, {"cursor": "3"}])
def test_an_api_that_leaves_a_false_has_more_out_still_ends_where_it_says(tmp_path: Path,
                                                                         last: dict[str, Any]) -> None:
    """proto3 JSON: `has_more` true on the pages before, left out on the last, with no cursor, an
    empty one, or (OpenAI's `last_id`) the last item's: no request more than before."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        n = _n(path)
        return 200, {}, {"items": [item(n)], **({"has_more": True, "cursor": str(n + 1)} if n < 2 else last)}

    with provider(tmp_path, script, pagination="{type: cursor, param: c, next: /cursor, has_more: /has_more}") \
            as (p, server):
        keys = p.list()
    assert [k.id for k in keys or []] == ["k0", "k1", "k2"] and len(server.seen) == 3


def test_a_single_page_that_leaves_has_more_out_with_no_cursor_is_one_request(tmp_path: Path) -> None:
    with provider(tmp_path, lambda *a: (200, {}, {"items": [item(1)], "cursor": ""}),
                  pagination="{type: cursor, param: c, next: /cursor, has_more: /has_more}") as (p, server):
        assert [k.id for k in p.list() or []] == ["k1"]
    assert len(server.seen) == 1


# ------------------------------------------------------------ 2. always more, never a key


@pytest.mark.parametrize(("pagination", "more"), [
    ("{type: cursor, param: c, next: /cursor}", {}),
    ("{type: cursor, param: c, next: /cursor, has_more: /has_more}", {"has_more": True}),
    ("{type: next_link, next: /next}", {}),
])
@pytest.mark.parametrize("repeat", [False, True])
def test_pages_that_never_list_a_new_key_stop_with_an_error_not_ten_thousand_requests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pagination: str, more: dict[str, Any], repeat: bool) -> None:
    monkeypatch.setattr(rest, "MAX_PAGES", 60)  # the old code failed at the cap: 60 requests here, 10,000 in use
    monkeypatch.setattr(rest, "MAX_IDLE_PAGES", 10, raising=False)  # 100 in use: ~45 ms a request here
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        n = _n(path)
        keys = [item(0), item(1)] if n == 0 or repeat else []  # empty pages, or the first page again
        return 200, {}, {"items": keys, "cursor": str(n + 1), "next": f"/keys?c={n + 1}", **more}

    with provider(tmp_path, script, pagination=pagination) as (p, server), \
            pytest.raises(ProviderError, match=r"10 pages in a row listed no new key, each saying there is more"):
        p.list()
    assert len(server.seen) == 1 + rest.MAX_IDLE_PAGES


@pytest.mark.parametrize("pagination", ["{type: cursor, param: c, next: /cursor, has_more: /has_more}",
                                        "{type: next_link, next: /next}"])
def test_empty_pages_between_pages_of_keys_still_list_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               pagination: str) -> None:
    """A filtered scan: runs of empty pages (fewer than MAX_IDLE_PAGES) between pages of keys."""
    monkeypatch.setattr(rest, "MAX_IDLE_PAGES", 10, raising=False)

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        n = _n(path)
        page: dict[str, Any] = {"items": [item(n)] if n % 10 == 0 else []}  # 9 empty pages between keys
        if n < 30:
            page.update(has_more=True, cursor=str(n + 1), next=f"/keys?c={n + 1}")
        return 200, {}, page

    with provider(tmp_path, script, pagination=pagination) as (p, server):
        keys = p.list()
    assert [k.id for k in keys or []] == ["k0", "k10", "k20", "k30"] and len(server.seen) == 31


# ------------------------------------------------------------ 3. an API that ignores the page


def _ignores(n_keys: int, cap: int, param: str, size_param: str | None) -> Any:
    """An API of `n_keys` keys that answers the first `cap` (or fewer, as `size_param` asks) whatever
    page or offset it is asked for."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        q = _q(path)
        assert param in q
        size = min(cap, int(q[size_param])) if size_param else cap
        return 200, {}, {"items": [item(i) for i in range(min(size, n_keys))]}
    return script


@pytest.mark.parametrize("pagination", [
    "{type: page, param: page, size_param: per_page, size: 100}",  # the API caps 100 to 50
    "{type: offset, param: offset, size_param: limit, size: 100}",
    "{type: offset, param: offset}",  # the API's own page of 50: an offset past the end is an empty page
])
def test_an_api_that_ignores_the_page_with_a_short_page_is_refused(tmp_path: Path, pagination: str) -> None:
    param = "page" if "page" in pagination else "offset"
    size_param = "per_page" if "per_page" in pagination else "limit" if "limit" in pagination else None
    with provider(tmp_path, _ignores(120, 50, param, size_param), pagination=pagination) as (p, server), \
            pytest.raises(ProviderError, match="the same page again"):
        p.list()
    assert len(server.seen) <= 3


def _clamps(n_keys: int, cap: int, least: int = 1) -> Any:
    """An API that takes the page and its size (at most `cap`, at least `least`: 400 below), and
    answers a page past the end with the last page again."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        q = _q(path)
        size = min(cap, int(q.get("per_page", q.get("limit", cap))))
        if size < least:
            return 400, {}, {"message": f"the page size is at least {least}"}
        start = int(q["offset"]) if "offset" in q else (int(q["page"]) - 1) * size
        start = min(start, max(0, (n_keys - 1) // size * size))
        return 200, {}, {"items": [item(i) for i in range(start, min(start + size, n_keys))]}
    return script


@pytest.mark.parametrize("pagination", ["{type: page, param: page, size_param: per_page, size: 100}",
                                        "{type: offset, param: offset, size_param: limit, size: 100}"])
@pytest.mark.parametrize(("n_keys", "cap", "least"), [(3, 100, 1), (50, 50, 1), (2, 100, 1), (1, 100, 1),
                                                     (3, 100, 10)])
def test_an_api_that_repeats_its_only_page_past_the_end_still_lists(tmp_path: Path, pagination: str,
                                                                    n_keys: int, cap: int, least: int) -> None:
    """One request more (the second page of one key fewer) tells it from an API that ignores the
    page; an API that refuses so small a page is taken at its word, as before."""
    with provider(tmp_path, _clamps(n_keys, cap, least), pagination=pagination) as (p, _):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(n_keys)]


# ------------------------------------------------------------ total


@pytest.mark.parametrize(("total", "requests"), [(-1, 4), (0, 4), ("7", 4), (None, 4), (7, 3)])
def test_a_total_that_is_no_count_of_the_keys_does_not_end_the_listing(tmp_path: Path, total: Any,
                                                                      requests: int) -> None:
    """`-1` or `0` (an API that does not count) ended it after the first page; a string is not read."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        page = int(_q(path)["page"])
        return 200, {}, {"items": [item(i) for i in range((page - 1) * 3, min(page * 3, 7))], "total": total}

    with provider(tmp_path, script, pagination="{type: page, param: page, size_param: per_page, size: 3, "
                                               "total: /total}") as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(7)] and len(server.seen) == requests


@pytest.mark.parametrize(("n_keys", "requests"), [(7, 4), (3, 2)])
def test_a_total_that_names_the_keys_on_the_page_does_not_end_the_listing(tmp_path: Path, n_keys: int,
                                                                          requests: int) -> None:
    """`total: /result_info/count` (the keys on this page) for `/result_info/total_count`: a full first
    page reached it. One request more checks a full first page that reaches the total."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        page = int(_q(path)["page"])
        keys = [item(i) for i in range((page - 1) * 3, min(page * 3, n_keys))]
        return 200, {}, {"items": keys, "result_info": {"count": len(keys), "total_count": n_keys}}

    with provider(tmp_path, script, pagination="{type: page, param: page, size_param: per_page, size: 3, "
                                               "total: /result_info/count}") as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(n_keys)] and len(server.seen) == requests


def test_a_full_first_page_that_is_the_total_and_repeats_past_the_end_still_lists(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        return 200, {}, {"items": [item(i) for i in range(3)], "total": 3}  # every page is the last one

    with provider(tmp_path, script, pagination="{type: page, param: page, size_param: per_page, size: 3, "
                                               "total: /total}") as (p, server):
        assert [k.id for k in p.list() or []] == ["k0", "k1", "k2"]
    assert len(server.seen) == 2


# ------------------------------------------------------------ Link header


@pytest.mark.parametrize("link", [
    '<{url}/keys?sort=created,desc&page={n}>; rel="next"',  # a comma in the URL
    '<{url}/keys?page=1>; rel="first", <{url}/keys?page={n}>; rel="next last"',  # two relation types
    '<{url}/keys?page={n}>; REL = Next',  # case and blanks around `=` (RFC 8288)
    '<{url}/keys?page={n}>; title="a, <b>; rel=prev"; rel="next"',  # a quoted title with a comma and <>
])
def test_a_link_header_next_is_found_as_rfc_8288_writes_it(tmp_path: Path, link: str) -> None:
    urls: list[str] = []

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        page = int(_q(path).get("page", "1"))
        extra = {"Link": link.format(url=urls[0], n=page + 1)} if page < 3 else {}
        return 200, extra, {"items": [item(page)]}

    with provider(tmp_path, script, pagination="{type: next_link, next: 'header:Link'}") as (p, server):
        urls.append(server.url)
        assert [k.id for k in p.list() or []] == ["k1", "k2", "k3"]


# ------------------------------------------------------------ a page size above the API's cap


def _counts_by_the_size_sent(n_keys: int, cap: int) -> Any:
    """`OFFSET (page - 1) * per_page LIMIT min(per_page, cap)`: pages counted by the size sent, at
    most `cap` keys served."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        q = _q(path)
        size = int(q["per_page"])
        start = (int(q["page"]) - 1) * size
        return 200, {}, {"items": [item(i) for i in range(start, min(start + min(size, cap), n_keys))]}
    return script


def test_an_api_that_counts_pages_by_the_size_sent_but_serves_fewer_skips_no_key(tmp_path: Path) -> None:
    """Before, the keys between (50-99 of each 100) were never listed: every one of them looked
    deleted outside keyform. Now a short page followed by one with keys is checked once (that page
    at the size served), and the listing starts over at the size the API serves."""
    with provider(tmp_path, _counts_by_the_size_sent(230, 50),
                  pagination="{type: page, param: page, size_param: per_page, size: 100}") as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(230)]
    assert [int(_q(path)["per_page"]) for _, path, _, _ in server.seen] == [100, 100, 50] + [50] * 6


def test_an_api_that_filters_its_pages_after_cutting_them_keeps_its_size(tmp_path: Path) -> None:
    """Short pages of an API that drops keys (here every key but one in three) after paging skip
    nothing: one request more shows it, once, and the size stays."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        q = _q(path)
        size = int(q["per_page"])
        start = (int(q["page"]) - 1) * size
        return 200, {}, {"items": [item(i) for i in range(start, min(start + size, 25)) if i % 3 == 0]}

    with provider(tmp_path, script, pagination="{type: page, param: page, size_param: per_page, size: 10}") \
            as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(0, 25, 3)]
    assert [int(_q(path)["per_page"]) for _, path, _, _ in server.seen] == [10, 10, 4, 10, 10]


# ------------------------------------------------------------ a success status with an error


@pytest.mark.parametrize("pagination", ["{type: page, param: page}", "{type: cursor, param: c, next: /cursor}"])
@pytest.mark.parametrize("error", [{"error": {"code": "rate_limited", "message": "slow down"}},
                                   {"ok": False, "message": "slow down"}])
def test_a_later_page_answered_200_with_an_error_is_an_error_not_the_end(tmp_path: Path, pagination: str,
                                                                        error: dict[str, Any]) -> None:
    """An API that answers a refusal with 200 and an error body (Slack's `{"ok": false, "error": ...}`):
    page 2 had no list of keys, was read as an empty list (proto3 JSON leaves one out), and ended the
    listing: every later key looked deleted outside keyform."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        if "page=2" in path or "c=2" in path:
            return 200, {}, error
        return 200, {}, {"items": [item(1)], "cursor": "2"}

    with provider(tmp_path, script, pagination=pagination) as (p, _), \
            pytest.raises(ProviderError, match=r"no list of keys at /items, but an error: (rate_limited: )?slow down"):
        p.list()


@pytest.mark.parametrize("reply", [{}, {"total": 0}, {"ok": True}])
def test_a_reply_with_no_list_and_no_error_is_still_an_empty_listing(tmp_path: Path, reply: dict[str, Any]) -> None:
    with provider(tmp_path, lambda *a: (200, {}, reply), pagination="{type: page, param: page}") as (p, _):
        assert p.list() == []


def test_a_plan_over_a_has_more_typo_says_so_in_one_line_and_changes_nothing(tmp_path: Path) -> None:
    """Through `keyform plan`, after an apply made keys on three pages: one message naming the
    definition's field, exit 1, the state untouched. Before, the plan created k1 and k2 again."""
    keys: list[dict[str, Any]] = []

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        if method == "POST":
            keys.append({"id": f"id{len(keys)}", "name": body["name"], "created": "2026-01-01T00:00:00Z"})
            return 201, {}, {**keys[-1], "secret": f"sk-CANARY-{len(keys)}-0123456789abcdef"}
        n = _n(path)
        return 200, {}, {"items": keys[n:n + 1], "meta": {"hasMore": n + 1 < len(keys)}, "cursor": str(n + 1)}

    good = SCRIPTED_REST.replace("items: /items}", "items: /items, pagination: {type: cursor, param: c, "
                                                   "next: /cursor, has_more: /meta/hasMore}}")
    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url)
        project.rest_api(good, "".join(f"k{i}: {{provider: rp, name: k{i}}}\n" for i in range(3)))
        assert project.run_process("apply", "--auto-approve").exit_code == 0
        state = project.state_path.read_bytes()
        (tmp_path / "api.yaml").write_text(good.replace("/meta/hasMore", "/meta/hasMoer"))
        planned = project.run_process("plan")
    assert planned.exit_code == 1, planned.output
    lines = [line for line in planned.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in planned.output, planned.output
    assert "nothing at has_more (/meta/hasMoer), but a boolean at /meta/hasMore" in lines[0]
    assert "api.yaml's operations.list.pagination.has_more" in lines[0]
    assert project.state_path.read_bytes() == state and len(keys) == 3


@pytest.mark.parametrize("reply", [b"<html><body>404 Not Found</body></html>", {"detail": "Invalid page."}])
def test_a_404_while_the_total_says_keys_are_missing_is_an_error_not_the_end(tmp_path: Path, reply: Any) -> None:
    """A 404 after the last page ends a listing (Django REST framework's `Invalid page.`); one in the
    middle (a proxy's page, or pages that moved as a key was deleted) while the `total` says more
    keys ended it too, silently. (A 404 past the end without a total: test_rest_page_size.py.)"""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        page = int(_q(path)["page"])
        if page == 3:
            return 404, {}, reply
        return 200, {}, {"items": [item(i) for i in range((page - 1) * 3, min(page * 3, 8))], "total": 8}

    with provider(tmp_path, script, pagination="{type: page, param: page, total: /total}") as (p, _), \
            pytest.raises(ProviderError, match="list: 404"):
        p.list()



@pytest.mark.parametrize("link", ["<" * 60_000, "<a" * 30_000, "<<a>; rel=next, " + "<" * 60_000])
def test_a_hostile_link_header_is_read_in_linear_time(tmp_path: Path, link: str) -> None:
    """`<([^>]*)>` tried from every `<` of a header of `<`s with no `>` scanned to its end each time:
    a 60 KB Link header (httpcore takes up to 100 KB) held a listing ~12 s per page, 100 KB ~35 s.
    A URL holds no `<` (RFC 3986), so none is scanned past."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        return 200, {"Link": link} if "page" not in path else {}, {"items": [item(1)] if "page" not in path else []}

    with provider(tmp_path, script, pagination="{type: next_link, next: 'header:Link'}") as (p, _):
        start = time.monotonic()
        with contextlib.suppress(ProviderError):  # the third: a link to /a, then the same link again
            p.list()
        assert time.monotonic() - start < 1.5


def test_a_capped_api_whose_next_page_is_empty_while_its_total_says_more_skips_no_key(tmp_path: Path) -> None:
    """80 keys, at most 50 served a page, pages counted by the 100 sent: page 2 is `OFFSET 100`,
    empty. Before, the listing ended there with 50 keys though the total said 80: keys 50-79 looked
    deleted outside keyform. Now that empty page is checked at the size served, as a page with keys
    after a short one is, and the listing starts over at it."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        q = _q(path)
        size = int(q["per_page"])
        start = (int(q["page"]) - 1) * size
        return 200, {}, {"items": [item(i) for i in range(start, min(start + min(size, 50), 80))], "total": 80}

    with provider(tmp_path, script, pagination="{type: page, param: page, size_param: per_page, size: 100, "
                                               "total: /total}") as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(80)]
    assert [int(_q(path)["per_page"]) for _, path, _, _ in server.seen] == [100, 100, 50, 50, 50]


def test_a_reply_of_a_huge_object_of_booleans_costs_no_seconds_of_cpu_a_page(tmp_path: Path) -> None:
    """A `has_more` absent on the first page with a cursor: the reply is searched for a like-named
    boolean. Each of 300,000 boolean names (~5 MB) was compared with a full difflib ratio: ~6 s of
    CPU for the page (a 32 MB reply, the cap: ~40 s), for a hostile or broken API's every page."""
    flags = {f"flag{i:07d}xyz": True for i in range(300_000)}

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        n = _n(path)
        return 200, {}, {"items": [item(n)] if n < 1 else [], "cursor": str(n + 1), "meta": {"flags": flags}}

    with provider(tmp_path, script, pagination="{type: cursor, param: c, next: /cursor, has_more: /has_more}") \
            as (p, _):
        start = time.process_time()
        assert [k.id for k in p.list() or []] == ["k0"]
        assert time.process_time() - start < 2.5


@pytest.mark.parametrize(("n_keys", "ends"), [(3, True), (6, False)])
def test_a_page_past_a_reached_total_refused_as_out_of_bounds_ends_the_listing(tmp_path: Path, n_keys: int,
                                                                               ends: bool) -> None:
    """An API that refuses a page past its last (mezzio-hal's `400 Page 2 is out of bounds`, 416,
    422): a full first page that reaches the total is checked by one request more, and that
    request's refusal failed every plan of an account holding exactly `size` keys (before the
    check, the total ended the listing). The total said the listing was complete: the refusal ends
    it. While the total says more keys, such a refusal is still an error."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        page = int(_q(path)["page"])
        if page == 2:
            return 400, {}, {"error": {"message": "Page 2 is out of bounds. Collection has 1 pages."}}
        return 200, {}, {"items": [item(i) for i in range(3)], "total": n_keys}

    with provider(tmp_path, script, pagination="{type: page, param: page, size_param: per_page, size: 3, "
                                               "total: /total}") as (p, server):
        if ends:
            assert [k.id for k in p.list() or []] == ["k0", "k1", "k2"]
            assert len(server.seen) == 2
        else:
            with pytest.raises(ProviderError, match="list: 400 Page 2 is out of bounds"):
                p.list()
