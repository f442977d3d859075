"""Found by a review (finding 2): `page`/`offset` pagination stopped at the first page shorter than
`size`, which defaulted to 100 even when no `size_param` sends it, and which an API may cap lower.
An API listing 2 keys a page ended the listing after page 1: every later key looked deleted
outside keyform, was created again by each apply, and the original stayed live and untracked.
Expected: a listing ends only at an empty page or at the `total`; a short page is not the end.
Against a scripted API on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness.project import SCRIPTED_REST, Project
from keyform.errors import ProviderError
from tests.loopback import serving
from tests.test_provider_rest import ScriptServer, item, provider

KEYS = 5


def paged(cap: int, *, clamp: bool = False) -> Any:
    """An API holding KEYS keys that answers at most `cap` a page, whatever size it is asked for;
    with `clamp`, a page past the end is the last page again (as some APIs do)."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        q = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        size = min(cap, int(q.get("per_page", cap)))
        start = int(q["offset"]) if "offset" in q else (int(q["page"]) - 1) * size
        if clamp and start >= KEYS:
            start = (KEYS - 1) // size * size
        return 200, {}, {"items": [item(i) for i in range(start, min(start + size, KEYS))]}
    return script


@pytest.mark.parametrize("pagination", [
    "{type: page, param: page}",  # no size sent: keyform cannot know the page size
    "{type: page, param: page, size_param: per_page, size: 50}",  # the API caps 50 to 2
    "{type: offset, param: offset}",
    "{type: offset, param: offset, size_param: per_page, size: 50}",
])
def test_a_page_shorter_than_expected_does_not_end_the_listing(tmp_path: Path, pagination: str) -> None:
    with provider(tmp_path, paged(2), pagination=pagination) as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(KEYS)]
    # 2 + 2 + 1, then the empty page that ends it; with a page size sent, page 2 is asked once more
    # at the size served (2), to tell a cap from a skip (test_rest_listing_complete.py)
    assert len(server.seen) == 4 + ("type: page" in pagination and "size_param" in pagination)


def test_an_api_that_answers_a_page_past_the_end_with_the_last_page_again(tmp_path: Path) -> None:
    """After a short page the listing asks once more; an API that repeats the last page then (its
    page parameter shown to work by the earlier pages) has said the listing is complete."""
    with provider(tmp_path, paged(2, clamp=True), pagination="{type: page, param: page}") as (p, server):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(KEYS)] and len(server.seen) == 4


def _pages(n_keys: int, size: int, past_end: str) -> Any:
    """An API of `n_keys` keys, `size` a page; a page past the end is the last page again
    (`clamp`), `404 {"detail": "Invalid page."}` (Django REST framework), or page 1 whatever page
    is asked (`ignore`: an API that does not take the parameter)."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        page = int(parse_qs(urlsplit(path).query)["page"][0])
        last = max(1, -(-n_keys // size))
        if past_end == "ignore":
            page = 1
        elif page > last and past_end == "404":
            return 404, {}, {"detail": "Invalid page."}
        start = (min(page, last) - 1) * size
        return 200, {}, {"items": [item(i) for i in range(start, min(start + size, n_keys))]}
    return script


@pytest.mark.parametrize(("n_keys", "size", "past_end"), [(3, 100, "clamp"), (4, 2, "clamp"), (3, 100, "404"),
                                                          (5, 2, "404")])
def test_the_end_of_a_listing_as_common_apis_say_it(tmp_path: Path, n_keys: int, size: int, past_end: str) -> None:
    """Found by a review of the fix above: a single page repeated past the end (3 keys of an org)
    was "the same page again", and a 404 past the last page (Django REST framework) failed every
    plan of APIs that listed fine before."""
    with provider(tmp_path, _pages(n_keys, size, past_end), pagination="{type: page, param: page}") as (p, _):
        listed = p.list()
    assert [k.id for k in listed or []] == [f"k{i}" for i in range(n_keys)]


def test_an_api_that_ignores_the_page_parameter_is_refused_not_read_as_one_page(tmp_path: Path) -> None:
    """A full page (as many keys as a page can hold, 100 without a size sent) given again for page 2
    may be an API that ignores the parameter and holds more keys: taken as the end, every key after
    it would look deleted outside keyform."""
    with provider(tmp_path, _pages(150, 100, "ignore"), pagination="{type: page, param: page}") as (p, _), \
            pytest.raises(ProviderError, match="the same page again"):
        p.list()


def test_no_key_after_the_first_page_looks_deleted_outside_keyform(tmp_path: Path) -> None:
    keys: dict[str, dict[str, Any]] = {}

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            n = len(keys)
            keys[f"id{n}"] = {"id": f"id{n}", "name": body["name"], "created": "2026-01-01T00:00:00Z"}
            return 201, {}, {**keys[f"id{n}"], "secret": f"sk-CANARY-{n}-0123456789abcdef"}
        page = int(parse_qs(urlsplit(path).query)["page"][0])
        return 200, {}, {"items": list(keys.values())[(page - 1) * 2:page * 2]}

    definition = SCRIPTED_REST.replace("items: /items}", "items: /items, pagination: {type: page, param: page}}")
    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url)
        project.rest_api(definition, "".join(f"k{i}: {{provider: rp, name: k{i}}}\n" for i in range(3)))
        assert project.run_process("apply", "--auto-approve").exit_code == 0
        planned = project.run_process("plan", "--detailed-exitcode")
    assert planned.exit_code == 0 and "deleted outside keyform" not in planned.output, planned.output
    assert len(keys) == 3
