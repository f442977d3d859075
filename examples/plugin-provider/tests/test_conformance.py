"""The acme provider type passes keyform's conformance kit against its emulator."""

from __future__ import annotations

import pytest
from keyform_acme.emulator import AcmeEmulator

from conftest import READ_ONLY, TOKEN
from keyform.testing import ConformanceTarget, ProviderConformance


class AcmeFaults:
    def __init__(self, emulator: AcmeEmulator) -> None:
        self.emulator = emulator
        self.page_size = 0

    def inject(self, status: int) -> None:
        self.emulator.faults(status=status, page_size=self.page_size)

    def drop_after_commit(self) -> None:
        self.emulator.faults(drop_after_commit=True, page_size=self.page_size)

    def clear(self) -> None:
        self.emulator.faults(page_size=self.page_size)

    def set_page_size(self, n: int) -> bool:
        self.page_size = n
        self.emulator.faults(page_size=n)
        return True

    def injectable(self) -> tuple[int, ...]:
        return (429, 500, 502, 503)


class TestAcmeConformance(ProviderConformance):
    @pytest.fixture
    def conformance_target(self, acme: AcmeEmulator) -> ConformanceTarget:
        return ConformanceTarget(
            provider_type="acme", base_url=acme.url, token=TOKEN, rejected_token="acme-tok-kfCANARY9x7q-wrong",
            forbidden_token=READ_ONLY, faults=AcmeFaults(acme), provider_options={"project": "kit"},
            key_fields=lambda label: {"name": label, "scopes": ["read"]},
            update_fields=lambda label: {"scopes": ["read", "write"]})
