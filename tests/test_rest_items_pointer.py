"""Found by an adversarial pass (stop 42): a definition whose `operations.list.items` names nothing
in the API's reply (`/items` for an API that answers `{"data": [...]}`) was read as an empty
listing, since proto3 JSON leaves an empty list out. Every key then looked deleted: the plan
created each again (`[was k1, deleted outside keyform]`), leaving the originals live and
untracked. A reply with a list of objects under another name is now a shape error naming it and
the definition; one with nothing of the kind is still an empty listing. Against a scripted server
on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyform.errors import ProviderError
from tests.test_provider_rest import item, provider


def test_keys_under_another_name_are_an_error_not_an_empty_listing(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"object": "list", "data": [item(1), item(2)], "has_more": False}

    with provider(tmp_path, script) as (p, _), pytest.raises(
            ProviderError, match=r"list: unexpected response shape \(nothing at /items, but a list of keys at "
                                 r"/data: is t\.yaml's operations\.list\.items right\?\)"):
        p.list()


@pytest.mark.parametrize("reply", [{}, {"next_page_token": ""}, {"warnings": ["slow"]}, {"data": []}])
def test_a_reply_without_keys_anywhere_is_still_an_empty_listing(tmp_path: Path, reply: dict[str, Any]) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        return 200, {}, reply

    with provider(tmp_path, script) as (p, _):
        assert p.list() == []
