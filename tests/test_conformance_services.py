"""The three real-service definitions (examples/providers/openai-admin-keys.yaml, sendgrid.yaml,
datadog-api-keys.yaml) pass the provider conformance kit (`keyform.testing`) against their stdlib
emulators (tests/rest_services.py) over real HTTP on 127.0.0.1, faults injected by `ServiceFaults`.

What each API lacks, the kit skips or leaves out, for that reason only:
- OpenAI admin keys cannot be changed (no update): the kit's update and update-404 steps are not run.
- SendGrid's list has no pages (`limit` only; an account holds at most 100 keys): pagination is skipped.
- Datadog answers an unknown API key with 403 Forbidden, not 401 (`rejected_status=403`); its
  application key is a secret option, passed as `{env: VAR}` (`secret_options`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keyform.errors import ProviderError
from keyform.testing import CANARY, ConformanceTarget, ProviderConformance, conformance
from keyform.testing.rest import load_rest_type, rest_manifest_entry
from tests.conftest import REJECTED, TOKEN
from tests.rest_services import DatadogApiKeys, OpenAIAdminKeys, SendGridKeys, Service, ServiceFaults, serve

DEFINITIONS = Path(__file__).resolve().parents[1] / "examples" / "providers"
APP_KEY = f"app-{CANARY}-datadog"


def service_target(service: Service, url: str, name: str, **fields: object) -> ConformanceTarget:
    path = str(DEFINITIONS / f"{name}.yaml")
    ptype, definition = load_rest_type(path)
    return ConformanceTarget(base_url=url, token=TOKEN, rejected_token=REJECTED, faults=ServiceFaults(service),
                             provider_type=ptype, definition=definition, manifest_provider=rest_manifest_entry(path),
                             **fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def openai() -> Iterator[tuple[OpenAIAdminKeys, str]]:
    service = OpenAIAdminKeys(TOKEN)
    with serve(service) as url:
        yield service, url + "/v1"


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[tuple[SendGridKeys, str]]:
    service = SendGridKeys(TOKEN)
    with serve(service) as url:
        yield service, url


@pytest.fixture(scope="module")
def datadog() -> Iterator[tuple[DatadogApiKeys, str]]:
    service = DatadogApiKeys(TOKEN)
    service.app_key = APP_KEY
    with serve(service) as url:
        yield service, url


class TestOpenAIAdminKeysConformance(ProviderConformance):
    @pytest.fixture
    def conformance_target(self, openai: tuple[OpenAIAdminKeys, str]) -> ConformanceTarget:
        service, url = openai
        return service_target(service, url, "openai-admin-keys", key_fields=lambda label: {"name": label})


class TestSendGridConformance(ProviderConformance):
    @pytest.fixture
    def conformance_target(self, sendgrid: tuple[SendGridKeys, str]) -> ConformanceTarget:
        service, url = sendgrid
        return service_target(service, url, "sendgrid",
                              key_fields=lambda label: {"name": label, "scopes": ["mail.send"]},
                              update_fields=lambda label: {"name": f"{label}-renamed",
                                                           "scopes": ["mail.send", "alerts.read"]})


class TestDatadogApiKeysConformance(ProviderConformance):
    @pytest.fixture
    def conformance_target(self, datadog: tuple[DatadogApiKeys, str]) -> ConformanceTarget:
        service, url = datadog
        return service_target(service, url, "datadog-api-keys", key_fields=lambda label: {"name": label},
                              update_fields=lambda label: {"name": f"{label}-renamed"},
                              secret_options={"application_key": APP_KEY}, rejected_status=403)


@pytest.mark.parametrize("name", ["openai", "datadog"])
def test_the_page_cap_makes_the_kits_listing_really_page(name: str, request: pytest.FixtureRequest) -> None:
    """The kit's pagination test proves something only if the server splits the list: with the cap
    at 2, listing 7+ keys takes 4+ requests, each page holding at most 2 keys."""
    service, url = request.getfixturevalue(name)
    kind = {"openai": "openai-admin-keys", "datadog": "datadog-api-keys"}[name]
    target = service_target(service, url, kind, key_fields=lambda label: {"name": label},
                            secret_options={"application_key": APP_KEY} if name == "datadog" else {})
    service.seed(7)
    assert target.faults.set_page_size(2)
    try:
        with pytest.MonkeyPatch.context() as env:
            for var, value in target.option_environ().items():
                env.setenv(var, value)
            provider = target.open()
            before = service.calls.get("list", 0)
            keys = provider.list()
            provider.close()
    finally:
        target.faults.set_page_size(0)
    assert keys is not None and len({k.id for k in keys}) == len(service.keys) >= 7
    assert service.calls["list"] - before >= -(-len(service.keys) // 2)
    for key_id in [k for k, v in service.keys.items() if v["name"].startswith("seeded-")]:
        del service.keys[key_id]


def test_sendgrid_has_no_pages_and_every_fault_answers_in_the_apis_error_shape(
        sendgrid: tuple[SendGridKeys, str]) -> None:
    service, url = sendgrid
    faults = ServiceFaults(service)
    assert faults.set_page_size(2) is False
    target = service_target(service, url, "sendgrid", key_fields=lambda label: {"name": label})
    provider = target.open(deadline=conformance.FAULT_DEADLINE)  # each fault is retried to the deadline
    try:
        for status, words in ((429, "too many requests"), (500, "internal server error"), (503, "unavailable")):
            faults.inject(status)
            with pytest.raises(ProviderError) as failed:
                provider.list()
            assert failed.value.status == status and words in str(failed.value)
            faults.clear()
        assert provider.list() is not None
    finally:
        faults.clear()
        provider.close()
