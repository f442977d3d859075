"""An API that serves fewer keys a page than the `size` it is sent (its cap: 50 for 100) stopped a
`page` listing short in two cases, and every key past the first page's worth looked deleted
outside keyform: the plan created each again and the originals stayed live.

- No `total`, pages counted by the size sent (`OFFSET (page - 1) * per_page LIMIT 50`): 80 keys
  are 50 on page 1, and page 2 (`OFFSET 100`) is empty, or refused as past the end (404). Now an
  empty (or 404) second page after a short first one is asked once more at the size served.
- A `total` that counts the page's keys, not the collection's: a short first page reached it and
  ended the listing (only a full first page was checked). Now any first page that reaches its
  `total` is checked by one request more, whose own `total` tells the two apart.

Against scripted APIs on 127.0.0.1; the request counts of an API without a cap are pinned too."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from keyform.errors import ProviderError
from tests.test_provider_rest import item, provider

Reply = tuple[int, dict[str, str], Any]
SIZED = "{type: page, param: page, size_param: per_page, size: 100"


def capped_api(n_keys: int, cap: int, *, by_sent: bool, total: str | None = None, past_end: str = "empty") -> Any:
    """An API of `n_keys` keys serving at most `cap` a page, counting its pages by the size sent
    (`by_sent`) or by the size it serves; `total`: "collection", "page" (the page's own keys) or
    None; past the end: an empty page, or `404 {"detail": "Invalid page."}`."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        q = {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items()}
        sent = int(q.get("per_page", cap))
        served = min(sent, cap)
        start = (int(q["page"]) - 1) * (sent if by_sent else served)
        keys = [item(i) for i in range(start, min(start + served, n_keys))]
        if not keys and start >= n_keys and past_end == "404" and q["page"] != "1":
            return 404, {}, {"detail": "Invalid page."}
        reply: dict[str, Any] = {"items": keys}
        if total is not None:
            reply["total"] = n_keys if total == "collection" else len(keys)
        return 200, {}, reply
    return script


def sizes(server: Any) -> list[int]:
    return [int(parse_qs(urlsplit(path).query)["per_page"][0]) for _, path, _, _ in server.seen]


@pytest.mark.parametrize("past_end", ["empty", "404"])
def test_a_capped_api_without_a_total_lists_every_key(tmp_path: Path, past_end: str) -> None:
    with provider(tmp_path, capped_api(80, 50, by_sent=True, past_end=past_end), pagination=SIZED + "}") \
            as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(80)]
    # page 1 at 100 (50 keys), page 2 at 100 (nothing), page 2 at 50 (keys 50-79: skipped), then
    # all again at 50: pages 1, 2 and the end
    assert sizes(server) == [100, 100, 50, 50, 50, 50]


@pytest.mark.parametrize("by_sent", [True, False])
@pytest.mark.parametrize("pagination", [SIZED + ", total: /total}", "{type: page, param: page, total: /total}"])
def test_a_total_of_the_page_s_own_keys_on_a_short_first_page_does_not_end_the_listing(
        tmp_path: Path, by_sent: bool, pagination: str) -> None:
    """Without a `size_param`, the API's own page size (50) does the same as a cap."""
    with provider(tmp_path, capped_api(80, 50, by_sent=by_sent, total="page"), pagination=pagination) as (p, _):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(80)]


@pytest.mark.parametrize(("n_keys", "no_total", "with_total"), [(0, 1, 1), (5, 3, 2), (100, 2, 2), (250, 4, 3)])
def test_what_the_checks_cost_an_api_without_a_cap(tmp_path: Path, n_keys: int, no_total: int,
                                                   with_total: int) -> None:
    """The requests a listing of an API that serves the size it is sent makes. Without a `total`:
    one more than the pages (the empty page that ends it), and one more again after a short first
    page (5 keys: that page 2 asked at 5). With a collection `total`: one more than the pages after
    a first page that reaches it (5 and 100 keys), none after a later one (250)."""
    for total, requests in ((None, no_total), ("collection", with_total)):
        with provider(tmp_path, capped_api(n_keys, 100, by_sent=True, total=total),
                      pagination=SIZED + (", total: /total}" if total else "}")) as (p, server):
            listed = p.list()
        assert [k.id for k in listed or []] == [f"k{i}" for i in range(n_keys)]
        assert len(server.seen) == requests, (total, sizes(server))


@pytest.mark.parametrize("past_end", [(404, {"detail": "Invalid page."}), (200, {"items": []})])
def test_a_check_answered_with_a_reply_keyform_cannot_read_is_the_listing_s_error(
        tmp_path: Path, past_end: tuple[int, Any]) -> None:
    """The check of a second page refused as past the end (404) after a short first one let the
    check's own shape error out raw: the plan said `the provider type 'rest:...' failed:
    ShapeError: item 0 has no string id`, as if keyform's code had failed, not the API's reply."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        q = {k: v[-1] for k, v in parse_qs(urlsplit(path).query).items()}
        if q["page"] == "1":
            return 200, {}, {"items": [item(i) for i in range(3)]}
        return (*past_end[:1], {}, past_end[1]) if q["per_page"] == "100" else (200, {}, {"items": [{"name": "x"}]})

    with provider(tmp_path, script, pagination=SIZED + "}") as (p, server), pytest.raises(ProviderError) as caught:
        p.list()
    assert str(caught.value) == "t1: list: unexpected response shape (item 0 has no string id)"
    assert sizes(server) == [100, 100, 3]


@pytest.mark.parametrize("past_end", ["empty", "404"])
@pytest.mark.parametrize("status", [503, 403])
def test_a_check_that_fails_fails_the_listing_never_ends_it_short(tmp_path: Path, past_end: str, status: int) -> None:
    """The check of page 2 at the served size answered with a failure (after the client's retries)
    was taken as "no keys skipped": 80 keys at most 50 a page listed 50, and keys 50 to 79 looked
    deleted outside keyform (the plan created each again, the originals left live)."""
    inner = capped_api(80, 50, by_sent=True, past_end=past_end)

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        if parse_qs(urlsplit(path).query)["per_page"] == ["50"]:
            return status, {"Retry-After": "0"}, {"message": "busy"}
        return inner(method, path, headers, body)

    with provider(tmp_path, script, pagination=SIZED + "}") as (p, _), pytest.raises(ProviderError) as caught:
        p.list()
    assert str(caught.value).startswith(f"t1: list: {status} busy") and caught.value.status == status


@pytest.mark.parametrize("pagination", [SIZED + ", total: /total}", "{type: page, param: page, total: /total}",
                                        "{type: offset, param: offset, total: /total}"])
def test_a_first_page_that_reaches_its_total_and_comes_again_in_another_order_ends_the_listing(
        tmp_path: Path, pagination: str) -> None:
    """The check of a first page that reaches its `total` got, from an API that lists in no set
    order and answers a page past the end with its keys again (clamped, or one page), the same keys
    in another order: refused as "the API returned the same page again", on every plan, where one
    request had listed them before."""
    calls: list[str] = []

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        calls.append(path)
        keys = [item(i) for i in range(3)]
        return 200, {}, {"items": keys[::-1] if len(calls) % 2 == 0 else keys, "total": 3}

    with provider(tmp_path, script, pagination=pagination) as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == ["k0", "k1", "k2"] and len(server.seen) == 2
