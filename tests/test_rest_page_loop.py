"""Found by an adversarial pass (stop 36): `page`/`offset` pagination had no loop guard. An API
that ignores the page parameter (a typo in the definition's `param`, or an API that answers an out-of-range page with the last page again
when the key count is a multiple of the page size) gets the same full page up to 10,000 times:
`keyform plan` hammers the API for many minutes and then lists each key many times over
(last-one-wins in refresh). Expected: the second identical page is one clear error."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyform.errors import ProviderError
from tests.test_provider_rest import item, provider

REPEATS = 40  # the test server gives up repeating after this many requests (the real bound is 10,000)


@pytest.mark.parametrize("pagination", ["{type: page, param: page, size_param: per_page, size: 3}",
                                        "{type: offset, param: offset, size_param: limit, size: 3}"])
def test_the_same_page_again_is_an_error_not_ten_thousand_requests(tmp_path: Path, pagination: str) -> None:
    count = [0]

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        count[0] += 1
        return 200, {}, {"items": [item(i) for i in range(3)] if count[0] <= REPEATS else []}

    with provider(tmp_path, script, pagination=pagination) as (p, _):
        try:
            keys = p.list()
        except ProviderError:
            keys = None
    assert count[0] <= 3, f"{count[0]} list requests for 3 keys"
    assert keys is None, f"listed {len(keys or [])} entries for 3 keys"
