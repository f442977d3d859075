"""The pytest plugin (`pytest11` entry point `keyform`): fixtures for provider conformance tests.

Loaded by pytest wherever keyform is installed, so it imports nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def keyform_debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the `keyform` logger (and its children) at DEBUG, as `-v` shows them."""
    with caplog.at_level(logging.DEBUG, logger="keyform"):
        yield caplog
