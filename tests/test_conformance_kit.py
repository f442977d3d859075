"""The conformance kit catches what it promises to catch: a provider that leaks its token in a repr,
one that retries an ambiguous create (two keys for one), and one that loses the HTTP status of an
error each fail the kit's tests (run here directly against the emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from keyform.emulator import Emulator, EmulatorConfig
from keyform.errors import ProviderError
from keyform.remote import CreateRequest, CreateResult, Provider
from keyform.testing import CANARY, ConformanceTarget, ProviderConformance
from keyform.testing.builtin import EmulatorFaults
from keyform.typeregistry import provider_type, register, unregister

TOKEN = f"tok-{CANARY}-ok"


class Wrapped:
    """A questra provider with one defect, chosen by `defect`."""

    def __init__(self, inner: Provider, token: str, defect: str) -> None:
        self.inner, self.token, self.defect, self.name = inner, token, defect, inner.name

    def __repr__(self) -> str:
        return f"Leaky(token={self.token})" if self.defect == "repr" else repr(self.inner)

    def list(self) -> Any:
        try:
            return self.inner.list()
        except ProviderError as exc:
            if self.defect == "status":
                raise ProviderError(str(exc)) from None
            raise

    def create(self, request: CreateRequest) -> CreateResult:
        try:
            return self.inner.create(request)
        except ProviderError as exc:
            if self.defect == "retry" and exc.ambiguous:
                return self.inner.create(request)  # the bug: a lost create sent again
            raise

    def update(self, *args: Any) -> Any:
        return self.inner.update(*args)

    def delete(self, remote_id: str) -> None:
        self.inner.delete(remote_id)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, tokens=frozenset({TOKEN}))).start()
    yield emu
    emu.stop()


@pytest.fixture(params=["repr", "retry", "status"])
def defective(request: pytest.FixtureRequest, emulator: Emulator) -> Iterator[tuple[str, ConformanceTarget]]:
    questra = provider_type("questra")
    defect: str = request.param

    def open_(config: Any, token: str, org_id: str | None, **kw: Any) -> Provider:
        return Wrapped(questra.open(config, token, org_id, **kw), token, defect)

    t = replace(questra, name=f"defective-{defect}", open=open_)
    register(t, origin="test")
    yield defect, ConformanceTarget(provider_type=t.name, base_url=emulator.url, token=TOKEN,
                                    rejected_token=f"tok-{CANARY}-no", faults=EmulatorFaults(emulator.url),
                                    provider_options={"org_id": "org_kit"}, key_fields=lambda label: {"name": label})
    unregister(t)


class Log:
    text = ""


def test_each_defect_fails_the_kit(defective: tuple[str, ConformanceTarget], tmp_path: Path) -> None:
    defect, target = defective
    kit = ProviderConformance()
    with pytest.raises(AssertionError) as failed:
        if defect == "repr":
            kit.test_create_list_update_delete(target, Log())
        elif defect == "retry":
            kit.test_ambiguous_create_is_found_by_recovery(target, tmp_path)
        else:
            kit.test_status_codes_map_to_provider_errors(target, Log())
    expected = {"repr": "leaked", "retry": "the committed key once", "status": "assert None == 401"}[defect]
    assert expected in str(failed.value)
    target.faults.clear()


def test_secret_options_reach_the_provider_as_env_references_and_count_as_secrets(emulator: Emulator) -> None:
    from keyform.model import EnvRef
    from keyform.testing.conformance import option_env

    value = f"app-{CANARY}-key"
    target = ConformanceTarget(provider_type="questra", base_url=emulator.url, token=TOKEN, rejected_token="no",
                               faults=EmulatorFaults(emulator.url), key_fields=lambda label: {"name": label},
                               secret_options={"application_key": value})
    assert target.config().options["application_key"] == EnvRef(option_env("application_key"))
    assert target.option_environ() == {"KEYFORM_KIT_OPTION_APPLICATION_KEY": value}
    assert value in target.secrets() and value not in repr(target.config())
    with pytest.raises(ValueError, match="both plain and secret: application_key"):
        replace(target, provider_options={"application_key": "plain"})
