"""The dogfood definitions (`type: rest` over examples/providers/questra.yaml and textql.yaml) pass
the same conformance kit as the built-in types, against the emulator over real HTTP.

As for the built-ins, the emulator paginates neither API, so the kit reports pagination as skipped
here; the definitions' pagination styles are tested in tests/test_provider_rest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyform.emulator import Emulator
from keyform.testing import ConformanceTarget, ProviderConformance
from keyform.testing.builtin import EmulatorFaults
from keyform.testing.rest import load_rest_type, rest_manifest_entry
from tests.conftest import READ_ONLY, REJECTED, TOKEN
from tests.test_conformance_builtin import _textql_fields

DEFINITIONS = Path(__file__).resolve().parents[1] / "examples" / "providers"


def rest_target(emulator: Emulator, name: str, **fields: object) -> ConformanceTarget:
    path = str(DEFINITIONS / f"{name}.yaml")
    ptype, definition = load_rest_type(path)
    return ConformanceTarget(base_url=emulator.url, token=TOKEN, rejected_token=REJECTED, forbidden_token=READ_ONLY,
                             faults=EmulatorFaults(emulator.url), provider_type=ptype, definition=definition,
                             manifest_provider=rest_manifest_entry(path), **fields)  # type: ignore[arg-type]


class TestRestQuestraConformance(ProviderConformance):
    @pytest.fixture
    def conformance_target(self, kit_emulator: Emulator) -> ConformanceTarget:
        return rest_target(kit_emulator, "questra", provider_options={"org_id": "org_kit"},
                           key_fields=lambda label: {"name": label})


class TestRestTextQLConformance(ProviderConformance):
    @pytest.fixture
    def conformance_target(self, kit_emulator: Emulator) -> ConformanceTarget:
        from keyform.testing import CANARY

        return rest_target(kit_emulator, "textql", key_fields=_textql_fields,
                           update_fields=lambda label: {"hosts": ["api.example.com", "eu.api.example.com"]},
                           secret_inputs={"auth_value": f"sk-{CANARY}-credential"})
