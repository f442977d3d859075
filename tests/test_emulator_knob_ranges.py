"""Found by an adversarial pass (stop 36): the emulator's fault knobs took values that broke it.
`retry_after` NaN or Infinity (CLI `--retry-after nan|inf`, or JSON NaN/Infinity in POST
/_emulator/faults) was sent as `Retry-After: nan` / `inf`; `latency_ms` NaN/Infinity made every API
call a 500 "emulator error: OverflowError ..."; `rate_limit_burst` between 0 and 1 gave a bucket
that never held a request: every call refused forever. Each is refused now."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from keyform.emulator import Emulator
from keyform.emulator.client import ControlError, EmulatorControl


@pytest.mark.parametrize("knobs", [{"retry_after": math.nan}, {"retry_after": math.inf},
                                   {"latency_ms": math.nan}, {"latency_ms": math.inf},
                                   {"latency_ms": 1e308}, {"retry_after": 1e308},
                                   {"rate_limit_rps": 10, "rate_limit_burst": 0.5}])
def test_unusable_knob_values_are_refused(emulator: Emulator, knobs: dict[str, Any]) -> None:
    with EmulatorControl(emulator.url) as control, pytest.raises(ControlError):
        control.faults(**knobs)


def test_a_burst_below_one_is_refused_at_start(make_emulator: Callable[..., Emulator]) -> None:
    with pytest.raises(ValueError, match="rate_limit_burst must be 0"):
        make_emulator(rate_limit_rps=10, rate_limit_burst=0.5)


@pytest.mark.parametrize("option", ["--latency-ms", "--retry-after"])
def test_a_latency_or_retry_after_beyond_a_day_is_refused_at_start(option: str) -> None:
    """Found by review 95: `keyform emulator --latency-ms 1e308` said "listening", then answered
    every request 500 (OverflowError in its sleep)."""
    from keyform.emulator.__main__ import parse_args, serve

    config = parse_args(["--port", "0", option, "1e308"])
    with pytest.raises(ValueError, match="must be between 0 and"):
        Emulator(config)
    assert serve(config) == 1
