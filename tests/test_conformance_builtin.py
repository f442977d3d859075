"""Both built-in provider types pass the conformance kit (`keyform.testing`) against the emulator.

The emulator paginates neither API (neither has pages), so the kit reports pagination as skipped
for them; the plug-in example (tests/test_plugin_example.py) runs it with pages."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keyform.emulator import Emulator
from keyform.testing import CANARY, ConformanceTarget, ProviderConformance
from keyform.testing.builtin import EmulatorFaults
from tests.conftest import READ_ONLY, REJECTED, TOKEN  # the kit's tokens; `kit_emulator` is in conftest


def target(emulator: Emulator, provider_type: str, **fields: object) -> ConformanceTarget:
    return ConformanceTarget(base_url=emulator.url, token=TOKEN, rejected_token=REJECTED, forbidden_token=READ_ONLY,
                             faults=EmulatorFaults(emulator.url), provider_type=provider_type,
                             **fields)  # type: ignore[arg-type]


class TestQuestraConformance(ProviderConformance):
    @pytest.fixture
    def conformance_target(self, kit_emulator: Emulator) -> ConformanceTarget:
        return target(kit_emulator, "questra", provider_options={"org_id": "org_kit"},
                      key_fields=lambda label: {"name": label})


def _textql_fields(label: str) -> dict[str, object]:
    return {"description": label, "hosts": ["api.example.com"], "api_provider": "example"}


class TestTextQLConformance(ProviderConformance):
    @pytest.fixture
    def conformance_target(self, kit_emulator: Emulator) -> ConformanceTarget:
        fields: Callable[[str], dict[str, object]] = _textql_fields
        return target(kit_emulator, "textql", key_fields=fields,
                      update_fields=lambda label: {"hosts": ["api.example.com", "eu.api.example.com"]},
                      secret_inputs={"auth_value": f"sk-{CANARY}-credential"})
