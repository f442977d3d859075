"""Found by an adversarial review (stop 37): the breaker (`Limiter.ended`) is meant for calls "retried for their whole budget or
deadline" (ratelimit.py). A plug-in with its own HTTP stack is paced a call at a time
(ForeignProvider per_call), and keyform never retries the 429 it raises: each one counts as a call
"refused to its end". So three calls refused once each, in a burst, with `Retry-After: 0.1`, stop
the instance for the whole run: every later change fails "the API refused the last 3 calls for
their rate to the end ... sends it nothing more", although the API answers again 0.1 s later."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from keyform.errors import ProviderError, SourceLoc
from keyform.model import EnvRef, ProviderConfig
from keyform.providers import open_provider
from keyform.remote import CreateRequest, CreateResult, RemoteKey
from keyform.typeregistry import provider_type, register, unregister


class _Burst:
    """An API that refuses the first three creates once (a burst), then accepts everything."""

    name = "own"

    def __init__(self) -> None:
        self.sent = 0
        self.lock = threading.Lock()

    def list(self) -> list[Any]:
        return []

    def create(self, request: CreateRequest) -> CreateResult:
        with self.lock:
            self.sent += 1
            n = self.sent
        if n <= 3:
            raise ProviderError("own: create: 429 slow down", status=429, retry_after=0.1)
        return CreateResult(RemoteKey(id=f"id{n}", attrs={"name": request.address}), "s3cret")

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        raise NotImplementedError

    def delete(self, remote_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_three_single_429s_of_a_plugin_do_not_stop_the_instance_for_the_run() -> None:
    inner = _Burst()
    ptype = replace(provider_type("questra"), name="burst-adv37", open=lambda *a, **k: inner)
    register(ptype, origin="test-plugin 1.0")
    try:
        config = ProviderConfig("own", "burst-adv37", "http://127.0.0.1:9", EnvRef("T"), None,
                                SourceLoc("k.yaml", 1))
        provider = open_provider(config, "tok", None)
    finally:
        unregister(ptype)
    for i in range(3):
        try:
            provider.create(CreateRequest(f"k{i}", {}, None, {}))
        except ProviderError as exc:
            assert exc.status == 429
    time.sleep(0.5)  # the API's Retry-After (0.1 s) is long over: it accepts calls again
    try:
        result = provider.create(CreateRequest("later", {}, None, {}))
    except ProviderError as exc:
        raise AssertionError(f"a call after a 3-call burst of single 429s was never sent: {exc}") from None
    assert result.key.id and inner.sent == 4
