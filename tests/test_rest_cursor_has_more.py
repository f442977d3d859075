"""Found by an adversarial pass (stop 42): a `cursor` listing read `has_more` as any truthy value
and stopped whenever the cursor was missing.

- `has_more: true` with no cursor at `next` (a typo in the definition's `pagination.next`, or an API
  that names it otherwise) ended the listing after its first page, silently: every key on a later
  page looked deleted, and the plan created it again (`[was k2, deleted outside keyform]`), leaving
  the original live and untracked.
- `has_more: "false"` (a string) was truthy: with a fresh cursor on each page, 10,000 requests.

Both are now one shape error of the list, naming the pointer. Against a scripted server on 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from keyform.errors import ProviderError
from keyform.providers import rest
from tests.test_provider_rest import item, provider

PAGINATION = "{type: cursor, param: c, next: /cursor, has_more: /has_more}"


def test_has_more_without_a_cursor_is_an_error_not_a_short_listing(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if "c=" not in path:  # the API names its cursor `next_cursor`; the definition says /cursor
            return 200, {}, {"items": [item(1)], "has_more": True, "next_cursor": "p2"}
        return 200, {}, {"items": [item(2)], "has_more": False}

    with provider(tmp_path, script, pagination=PAGINATION) as (p, server), \
            pytest.raises(ProviderError, match=r"has_more \(/has_more\) is true but there is no cursor at /cursor.*"
                                                r"t\.yaml's operations\.list\.pagination\.next"):
        p.list()
    assert len(server.seen) == 1


@pytest.mark.parametrize("value", ["false", "true", 1, {"v": False}])
def test_has_more_that_is_no_boolean_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 value: Any) -> None:
    monkeypatch.setattr(rest, "MAX_PAGES", 50)  # a failure here takes 50 requests, not 10,000
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        m = re.search(r"c=(\d+)", path)
        n = int(m.group(1)) if m else 0
        return 200, {}, {"items": [item(n)] if n < 3 else [], "has_more": value, "cursor": str(n + 1)}

    with provider(tmp_path, script, pagination=PAGINATION) as (p, server), \
            pytest.raises(ProviderError, match=r"has_more \(/has_more\) is .*not a boolean"):
        p.list()
    assert len(server.seen) == 1


def test_a_well_formed_cursor_listing_still_reads_every_page(tmp_path: Path) -> None:
    """has_more false (or left out, as proto3 JSON does) ends it; true with a cursor goes on."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        m = re.search(r"c=(\d+)", path)
        n = int(m.group(1)) if m else 0
        page: dict[str, Any] = {"items": [item(n)]}
        if n < 2:
            page.update(has_more=True, cursor=str(n + 1))
        return 200, {}, page

    with provider(tmp_path, script, pagination=PAGINATION) as (p, _):
        keys = p.list()
    assert keys is not None and [k.id for k in keys] == ["k0", "k1", "k2"]
