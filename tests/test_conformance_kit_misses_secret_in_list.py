"""Found by an adversarial pass (stop 36): the conformance kit passed a provider whose list() puts the issued
secret (or its token) into
a listed key's attributes. Those attributes are what refresh keeps as remote_attributes (state) and
shows in plans/drift, yet the kit's canary check only looks at reprs of the provider, the create
result and the update result, and errors: never at what list() returns. The kit's docstring promises
"a canary secret (tokens, ..., issued secrets) never appears in a repr"."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from keyform.emulator import Emulator, EmulatorConfig
from keyform.remote import CreateRequest, CreateResult, Provider, RemoteKey
from keyform.testing import CANARY, ConformanceTarget, ProviderConformance
from keyform.testing.builtin import EmulatorFaults
from keyform.typeregistry import provider_type, register, unregister

TOKEN = f"tok-{CANARY}-ok"


class LeaksInList:
    """questra, except that list() reports the issued secret and the token as attributes."""

    def __init__(self, inner: Provider, token: str) -> None:
        self.inner, self.token, self.name = inner, token, inner.name
        self.secrets: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return repr(self.inner)

    def list(self) -> Any:
        keys = self.inner.list() or []
        return [replace(k, attrs={**k.attrs, "hint": self.secrets.get(k.id, ""), "auth": self.token})
                for k in keys]

    def create(self, request: CreateRequest) -> CreateResult:
        created = self.inner.create(request)
        self.secrets[created.key.id] = created.secret
        return created

    def update(self, *args: Any) -> Any:
        return self.inner.update(*args)

    def delete(self, remote_id: str) -> None:
        self.inner.delete(remote_id)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def target() -> Iterator[ConformanceTarget]:
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, tokens=frozenset({TOKEN}))).start()
    questra = provider_type("questra")
    t = replace(questra, name="h3-leaks-in-list",
                open=lambda config, token, org, **kw: LeaksInList(questra.open(config, token, org, **kw), token))
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


def test_the_kit_fails_a_provider_that_lists_the_secret_as_an_attribute(target: ConformanceTarget) -> None:
    leaked: list[RemoteKey] = []
    p = target.open()
    created = p.create(target.request("probe"))
    leaked = [k for k in p.list() or [] if k.id == created.key.id]
    assert created.secret and created.secret in repr(leaked) and TOKEN in repr(leaked)  # the defect is real
    p.delete(created.key.id)
    p.close()
    with pytest.raises(AssertionError, match="leak"):
        ProviderConformance().test_create_list_update_delete(target, Log())
