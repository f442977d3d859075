"""Found by an adversarial review (stop 37): `foreign.failure` keeps the first line of a plug-in's exception and only then scrubs it
(`redact.scrub(text.splitlines()[0], ())`). keyform.redact says the order matters: scrub the raw
text first, then cut, or "a secret straddling the cut keeps its first half". A message that wraps
a remembered secret (the instance's token, a secret input) across a line break shows the part on
the first line: up to 15 characters, most of a short secret. Scrubbed whole first, it is masked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from keyform import redact
from keyform.errors import ProviderError, SourceLoc
from keyform.model import EnvRef, ProviderConfig
from keyform.providers import open_provider
from keyform.remote import CreateRequest, CreateResult, RemoteKey
from keyform.typeregistry import provider_type, register, unregister

TOKEN = "adv37-canary-tok-Q7x9"  # 21 characters


class _Wraps:
    name = "own"

    def list(self) -> list[Any]:
        return []

    def create(self, request: CreateRequest) -> CreateResult:
        # a library's message, wrapped at a fixed width, quoting the credential it was given
        raise RuntimeError(f"401 from upstream: credential {TOKEN[:15]}\n{TOKEN[15:]} was rejected")

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        raise NotImplementedError

    def delete(self, remote_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_secret_wrapped_across_the_first_line_is_scrubbed() -> None:
    redact.remember(TOKEN)  # as resolve.provider_credentials does for every resolved token
    assert TOKEN[:15] not in redact.scrub(f"credential {TOKEN[:15]}\n{TOKEN[15:]}", ())  # whole text: masked
    ptype = replace(provider_type("questra"), name="wraps-adv37", open=lambda *a, **k: _Wraps())
    register(ptype, origin="test-plugin 1.0")
    try:
        provider = open_provider(ProviderConfig("own", "wraps-adv37", "http://127.0.0.1:9", EnvRef("T"), None,
                                                SourceLoc("k.yaml", 1)), TOKEN, None)
    finally:
        unregister(ptype)
    with pytest.raises(ProviderError) as err:
        provider.create(CreateRequest("k", {}, None, {}))
    assert TOKEN[:15] not in str(err.value), str(err.value)
