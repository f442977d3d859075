"""Found by an adversarial pass (stop 36): the conformance kit passes a provider that reports a create answered 500 as a plain
(non-ambiguous) ProviderError. docs/providers.md: such a create "must raise ambiguous=True"; keyform's
applier then marks the journal intent failed (not abandoned), so a key the server committed
before its 500 is never found by recovery: an orphan live key. The kit's status test checks
`not ambiguous` for 429/503 but never `ambiguous` for 500/502/504."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from keyform import typeregistry
from keyform.errors import AmbiguousProviderError, ProviderError
from keyform.testing import ConformanceTarget, ProviderConformance
from keyform.testing.rest import load_rest_type
from tests.conftest import REJECTED, TOKEN
from tests.rest_services import OpenAIAdminKeys, ServiceFaults, serve
from tests.test_conformance_services import DEFINITIONS


class Unambiguous:
    """The real provider, except that a create's 5xx is reported as not ambiguous (a contract breach)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, inner.name

    def create(self, request: Any) -> Any:
        try:
            return self.inner.create(request)
        except AmbiguousProviderError as exc:
            if exc.status is not None and exc.status >= 500:
                raise ProviderError(str(exc), status=exc.status) from None
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def broken_target() -> Iterator[ConformanceTarget]:
    ptype, definition = load_rest_type(str(DEFINITIONS / "openai-admin-keys.yaml"))
    base = typeregistry.provider_type(ptype)
    broken = replace(base, name="h3-unambiguous",
                     open=lambda *a, **k: Unambiguous(base.open(*a, **k)))
    typeregistry.register(broken, origin="h3 test")
    service = OpenAIAdminKeys(TOKEN)
    try:
        with serve(service) as url:
            yield ConformanceTarget(base_url=url + "/v1", token=TOKEN, rejected_token=REJECTED,
                                    faults=ServiceFaults(service), provider_type="h3-unambiguous",
                                    definition=definition, key_fields=lambda label: {"name": label})
    finally:
        typeregistry.unregister(broken)


def test_the_kit_fails_a_provider_whose_500_create_is_not_ambiguous(broken_target: ConformanceTarget) -> None:
    assert 500 in broken_target.faults.injectable()
    broken_target.faults.clear()
    kit = ProviderConformance()
    with pytest.raises(AssertionError):  # the kit should catch the breach
        kit.test_status_codes_map_to_provider_errors(broken_target, SimpleNamespace(text=""))
