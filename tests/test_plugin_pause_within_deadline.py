"""Found by an adversarial review (stop 37): a plug-in with its own HTTP stack (ForeignProvider per_call) that raises a 429 with a long
Retry-After pauses the instance, and every other call then waits the whole pause: the per-call
`before_attempt(first=True)` has no timeout, so the instance's `deadline` never ends the wait.
The built-ins end such a call at once ("paused ... past the call's deadline"), as README says."""

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


class _OwnStack:
    name = "own"

    def __init__(self) -> None:
        self.sent = 0

    def list(self) -> list[Any]:
        return []

    def create(self, request: CreateRequest) -> CreateResult:
        self.sent += 1
        if self.sent == 1:
            raise ProviderError("own: create: 429 slow down", status=429, retry_after=3600)
        return CreateResult(RemoteKey(id=f"id{self.sent}", attrs={"name": request.address}), "s3cret")

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        raise NotImplementedError

    def delete(self, remote_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_plugins_long_retry_after_does_not_hold_other_calls_past_their_deadline() -> None:
    inner = _OwnStack()
    ptype = replace(provider_type("questra"), name="own-stack-adv37", open=lambda *a, **k: inner)
    register(ptype, origin="test-plugin 1.0")
    try:
        config = ProviderConfig("own", "own-stack-adv37", "http://127.0.0.1:9", EnvRef("T"), None,
                                SourceLoc("k.yaml", 1), deadline=2.0)
        provider = open_provider(config, "tok", None)
    finally:
        unregister(ptype)
    try:
        provider.create(CreateRequest("first", {}, None, {}))
    except ProviderError as exc:
        assert exc.status == 429
    outcome: list[str] = []

    def second() -> None:
        try:
            provider.create(CreateRequest("second", {}, None, {}))
            outcome.append("sent")
        except ProviderError as exc:
            outcome.append(str(exc))

    t = threading.Thread(target=second, daemon=True)
    started = time.monotonic()
    t.start()
    t.join(8)
    # expected: ended within its 2 s deadline (not sent, the instance paused past it), as a built-in call does
    assert outcome, f"the next call was still waiting {time.monotonic() - started:.1f}s into a 3600 s pause"
