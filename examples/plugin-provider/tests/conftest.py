from __future__ import annotations

from collections.abc import Iterator

import pytest
from keyform_acme.emulator import AcmeEmulator

TOKEN = "acme-tok-kfCANARY9x7q-good"
READ_ONLY = "acme-tok-kfCANARY9x7q-read"


@pytest.fixture
def acme() -> Iterator[AcmeEmulator]:
    with AcmeEmulator(tokens={TOKEN}, read_only_tokens={READ_ONLY}) as emulator:
        yield emulator
