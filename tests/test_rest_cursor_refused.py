"""A cursor (or next link) the API gave, refused when followed: `400 invalid_cursor` or `410` for a
cursor that expired while the listing ran (AWS's pagination tokens last 15 minutes; Paddle's
reference says "Restart from the first page", Glean's "Retry from a fresh first page"). Before,
that failed the listing with the bare answer (`t1: list: 400 ...`), naming neither the page nor
the cursor, and a plan over a slow account failed every time a cursor outlived its window. Now the
listing starts over once from the first page; refused again, it fails naming the page, the
cursor and the API's answer. Never taken for the end of the listing. Against scripted APIs on
127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from keyform.errors import ProviderError
from tests.test_provider_rest import item, provider

Reply = tuple[int, dict[str, str], Any]
EXPIRED = {"error": {"code": "invalid_cursor",
                     "message": "The pagination cursor is invalid or has expired. Restart from the first page."}}
PAGINATIONS = {"cursor": "{type: cursor, param: c, next: /cursor, has_more: /has_more}",
               "next_link": "{type: next_link, next: /next}"}


def expiring(refusals: int, status: int = 400) -> Any:
    """Three pages of keys; the first `refusals` requests for page 2 are answered `status`."""
    refused: list[str] = []

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        n = int(parse_qs(urlsplit(path).query).get("c", ["0"])[0])
        if n == 1 and len(refused) < refusals:
            refused.append(path)
            return status, {}, EXPIRED
        more = n < 2
        return 200, {}, {"items": [item(n)], "has_more": more, **({"cursor": str(n + 1), "next": f"/keys?c={n + 1}"}
                                                                  if more else {})}
    return script


@pytest.mark.parametrize("status", [400, 404, 410, 422])
@pytest.mark.parametrize("kind", ["cursor", "next_link"])
def test_a_cursor_refused_once_starts_the_listing_over(tmp_path: Path, kind: str, status: int) -> None:
    with provider(tmp_path, expiring(1, status), pagination=PAGINATIONS[kind]) as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == ["k0", "k1", "k2"]  # each once: the first pass is dropped
    assert len(server.seen) == 5  # page 1, page 2 refused, then pages 1 to 3


@pytest.mark.parametrize("kind", ["cursor", "next_link"])
def test_a_cursor_refused_again_after_starting_over_is_an_error_naming_the_page_and_the_answer(
        tmp_path: Path, kind: str) -> None:
    with provider(tmp_path, expiring(2), pagination=PAGINATIONS[kind]) as (p, server), \
            pytest.raises(ProviderError) as caught:
        p.list()
    gave = "cursor" if kind == "cursor" else "next link"
    assert str(caught.value) == (f"t1: list, page 2 (at the {gave} page 1 gave, the listing started over once): "
                                 "invalid_cursor: The pagination cursor is invalid or has expired. Restart from "
                                 "the first page.")
    assert caught.value.status == 400 and len(server.seen) == 4


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_mid_listing_is_not_started_over(tmp_path: Path, status: int) -> None:
    with provider(tmp_path, expiring(100, status), pagination=PAGINATIONS["cursor"]) as (p, server), \
            pytest.raises(ProviderError, match=f"^t1: list: ({status}|invalid_cursor)"):
        p.list()
    assert not any("c=" not in path for _, path, _, _ in server.seen[1:])  # page 1 once: not started over
