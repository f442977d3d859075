"""A hostile or broken REST API against the declarative provider (found by an adversarial pass):
next links that would carry the token to another host or could not be parsed, duplicate ids in a
listing, a malformed plug-in registry. Against a scripted server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from keyform.errors import ProviderError
from keyform.providers.rest import RestProvider
from tests.loopback import serving
from tests.test_provider_rest import TOKEN, ScriptServer, definition, item, provider


@pytest.mark.parametrize("link", ["@evil.example/keys?p=2", ".evil.example/keys?p=2"])
def test_relative_next_link_cannot_change_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    link: str) -> None:
    """A link with no leading `/` was glued to a base URL with no path: `http://api.example` +
    `@evil.example/keys` is a URL whose host is evil.example. Through an environment proxy (which
    does not pin the host) the token went there. It is resolved against the page's URL now."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        host = urlsplit(path).hostname
        if host == "api.example" and "p=2" not in path:
            return 200, {}, {"items": [item(1)], "links": {"next": link}}
        return 200, {}, {"items": [item(2)]}

    with serving(ScriptServer(script)) as proxy:
        for v in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.delenv(v, raising=False)
        monkeypatch.setenv("http_proxy", proxy.url)
        p = RestProvider("t1", definition(tmp_path, pagination="{type: next_link, next: /links/next}"),
                         "http://api.example", TOKEN, {"workspace": "ws-1", "signing": "x"},
                         max_retries=0, sleep=lambda s: None)
        try:
            listed = p.list()
        finally:
            p.close()
        hosts = [(urlsplit(path).hostname, urlsplit(path).path) for _, path, _, _ in proxy.seen]
        assert {h for h, _ in hosts} == {"api.example"}, hosts
        assert listed is not None and [k.id for k in listed] == ["k1", "k2"]
        assert hosts[1][1] == "/" + link.split("?")[0]  # resolved below the page's URL, as RFC 3986 says


@pytest.mark.parametrize("link", ["http://[evil", "//[::1", "/keys\x00", "\\\\evil.example\\x", "http://h:port/x"])
def test_an_unparseable_next_link_is_a_provider_error(tmp_path: Path, link: str) -> None:
    """Such a link was "internal error (ValueError)" (or InvalidURL); it is a shape error of the list."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"items": [item(1)], "links": {"next": link}}

    with provider(tmp_path, script, pagination="{type: next_link, next: /links/next}") as (p, _), \
            pytest.raises(ProviderError, match="list"):
        p.list()
