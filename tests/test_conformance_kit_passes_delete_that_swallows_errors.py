"""Found by an adversarial pass (stop 36): the conformance kit passed a provider whose delete()
swallows every ProviderError (treats a 401/403/429/5xx answer as "already gone"). keyform then drops the key from the state while it stays
live on the server (the revoke of a rotated-out key silently does nothing). The kit injects faults
for list and create only; a delete under an injected 5xx/429 (or with the rejected token) must raise."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from keyform.emulator import Emulator, EmulatorConfig
from keyform.errors import ProviderError
from keyform.remote import Provider
from keyform.testing import CANARY, ConformanceTarget, ProviderConformance
from keyform.testing.builtin import EmulatorFaults
from keyform.typeregistry import provider_type, register, unregister

TOKEN = f"tok-{CANARY}-ok"


class SwallowsDelete:
    def __init__(self, inner: Provider) -> None:
        self.inner, self.name = inner, inner.name

    def __repr__(self) -> str:
        return repr(self.inner)

    def delete(self, remote_id: str) -> None:
        with contextlib.suppress(ProviderError):  # the bug: every failure taken for "already gone"
            self.inner.delete(remote_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def target() -> Iterator[ConformanceTarget]:
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, tokens=frozenset({TOKEN}))).start()
    questra = provider_type("questra")
    t = replace(questra, name="h3-swallows-delete",
                open=lambda config, token, org, **kw: SwallowsDelete(questra.open(config, token, org, **kw)))
    register(t, origin="h3 test")
    try:
        yield ConformanceTarget(provider_type=t.name, base_url=emu.url, token=TOKEN,
                                rejected_token=f"tok-{CANARY}-no", faults=EmulatorFaults(emu.url),
                                provider_options={"org_id": "org_kit"}, key_fields=lambda label: {"name": label})
    finally:
        unregister(t)
        emu.stop()


class Log:
    text = ""


def test_the_kit_fails_a_provider_whose_delete_swallows_errors(target: ConformanceTarget) -> None:
    kit = ProviderConformance()
    failures = 0
    for test in (kit.test_create_list_update_delete, kit.test_status_codes_map_to_provider_errors):
        try:
            test(target, Log())
        except (AssertionError, pytest.fail.Exception):
            failures += 1
        finally:
            target.faults.clear()
    assert failures, "no kit test noticed that delete() never reports a failure"
