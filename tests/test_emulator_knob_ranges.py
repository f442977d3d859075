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


@pytest.mark.parametrize("knobs", [{"rate_limit_rps": 5e-324}, {"rate_limit_rps": 1e-7},
                                   {"rate_limits": {"org_a": 5e-324}}])
def test_a_rate_limit_too_slow_to_compute_is_refused(emulator: Emulator, knobs: dict[str, Any]) -> None:
    """Found by a review: `--rate-limit-rps 5e-324` was accepted, then every request after the first
    was a 500 (OverflowError: the wait for the next token, math.ceil(inf)). 0 or at least 1e-6/s."""
    with EmulatorControl(emulator.url) as control:
        with pytest.raises(ControlError, match="at least 1e-06"):
            control.faults(**knobs)
        control.faults(rate_limit_rps=1e-6)  # the slowest: one request, then 429 with a finite Retry-After
    import httpx

    headers = {"Authorization": "Bearer tok", "X-Org-Id": "org_a", "Content-Type": "application/json"}
    with httpx.Client(base_url=emulator.url) as http:
        answers = [http.get("/api-keys", headers=headers) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429], [a.text for a in answers]
    assert float(answers[1].headers["Retry-After"]) > 0


def test_a_rate_limit_too_slow_is_refused_at_start() -> None:
    from keyform.emulator.__main__ import parse_args, serve

    config = parse_args(["--port", "0", "--rate-limit-rps", "5e-324"])
    with pytest.raises(ValueError, match="rate_limit_rps must be 0"):
        Emulator(config)
    assert serve(config) == 1


def test_a_slow_rate_limit_asks_for_a_day_at_most() -> None:
    """Found by review 102: the day bound on `retry_after` was bypassed through a very slow rate
    (`rate_limit_rps: 1e-300` gave a Retry-After of ~300 digits; 1e-6, the least now taken, 11 days)."""
    from keyform.emulator.faults import MAX_RETRY_AFTER, Faults, FaultSettings

    faults = Faults(FaultSettings(rate_limit_rps=1e-6))
    assert faults.take_token("org", now=0.0) is None  # the bucket's one request
    assert faults.take_token("org", now=0.0) == MAX_RETRY_AFTER


@pytest.mark.parametrize(("argv", "env"), [(["--port", "99999"], None), ([], "99999"), ([], "²"), ([], "-1"),
                                           ([], "abc"), ([], "1" * 5000)])
def test_python_m_emulator_refuses_a_port_that_is_not_one(argv: list[str], env: str | None) -> None:
    """Found by review 43-fxF: `python -m keyform.emulator --port 99999` (or KEYFORM_EMULATOR_PORT=99999)
    ended in a traceback (OverflowError from bind), KEYFORM_EMULATOR_PORT=² in one (ValueError from
    int()), and -1 or abc were passed over for 8787, where `keyform emulator` refuses each."""
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "KEYFORM_EMULATOR_PORT"}
    if env is not None:
        environ["KEYFORM_EMULATOR_PORT"] = env
    res = subprocess.run([sys.executable, "-m", "keyform.emulator", *argv], capture_output=True, text=True,
                         env=environ, timeout=30)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr  # (argparse's own: 2)
    assert res.stderr.startswith("Error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "listening" not in res.stdout
    assert ("KEYFORM_EMULATOR_PORT" if env is not None else "between 0 and 65535") in res.stderr, res.stderr


@pytest.mark.parametrize(("text", "port"), [("+8788", 8788), (" 08788 ", 8788), ("-0", 0)])
def test_python_m_emulator_takes_the_ports_keyform_emulator_takes(monkeypatch: pytest.MonkeyPatch, text: str,
                                                                  port: int) -> None:
    """KEYFORM_EMULATOR_PORT=+8788 was refused by `python -m keyform.emulator` (isdigit()) and taken
    by `keyform emulator` (clikit.Integer); 5,000 digits ended in a traceback (int() refuses more
    than 4,300), above."""
    from keyform.emulator import __main__ as emulator_main

    monkeypatch.setenv("KEYFORM_EMULATOR_PORT", text)
    assert emulator_main._env_port_problem() is None
    assert emulator_main._default_port() == port
