"""A plug-in's 429 whose `retry_after` is no number of seconds (`inf`, `nan`, `1e300`).

Found by a review: foreign.py took any `retry_after >= 0` as the pause, so a plug-in that raised
`ProviderError(status=429, retry_after=float("inf"))` (here: one that reads the header with
`float()`, and an API answering `Retry-After: Infinity`) paused its instance forever, said `paused
infs more`, and `apply --format json` printed `"wait_seconds": Infinity`: no JSON parser reads it,
and schemas/apply-events.schema.json refuses it. Now a plug-in's value is read as the header is
(not finite: the default backoff; over a day: a day), the limiter clamps what it is given, and
`render.safe.json_doc` never writes NaN or Infinity. The plug-in is a real entry point sending with
urllib to a scripted API on 127.0.0.1, run by the keyform CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from keyform.emulator import Emulator
from keyform.model import RateLimit
from keyform.providers.ratelimit import MAX_WAIT, Limiter
from keyform.render.safe import json_doc
from tests.hostile import Reply, Seen, hostile
from tests.test_plugin_own_stack_breaker import _project, plugin_env  # noqa: F401 (a fixture)

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "apply-events.schema.json").read_text())


def _strict(line: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")
    return json.loads(line, parse_constant=refuse)


@pytest.mark.parametrize("header", ["Infinity", "nan", "1e300"])
def test_a_plugins_unbounded_retry_after_keeps_the_output_json(tmp_path: Path, emulator: Emulator, header: str,
                                                               plugin_env: dict[str, str]) -> None:  # noqa: F811
    def refuse(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":
            return Reply(429, b'{"error":{"code":"rate_limited","message":"slow down"}}',
                         {"Content-Type": "application/json", "Retry-After": header})
        return None

    with hostile(upstream=emulator.url) as server:
        server.script = refuse
        project = _project(tmp_path, server.url, 3, "org_refusing", deadline="2s")
        res = project.run_process("apply", "--auto-approve", "--parallelism", "1", "--format", "json",
                                  env=plugin_env, timeout=60)
        text = project.run_process("apply", "--auto-approve", "--parallelism", "1", env=plugin_env, timeout=60)
    assert res.exit_code == 1, res.tail()
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    events = [_strict(line) for line in lines]  # old code: ValueError: not JSON: Infinity
    for event in events:
        jsonschema.validate(event, SCHEMA)
    waits = [e["wait_seconds"] for e in events if e.get("type") == "rate_limited"]
    assert waits and all(0 <= w <= MAX_WAIT for w in waits), waits
    assert "inf" not in text.output.lower().replace("info", ""), text.output  # old code: `paused infs more`
    assert "nan" not in text.output.lower(), text.output


def test_the_limiter_clamps_what_it_is_given() -> None:
    for given, pause in [(math.inf, 1.0), (math.nan, 1.0), (-5.0, 1.0), (1e300, MAX_WAIT), (3.0, 3.0)]:
        lim = Limiter("qp", RateLimit(10.0))
        delay, _ = lim.throttled(lim.before_attempt(first=True), given, 1.0)
        assert delay == pause, (given, delay)
        assert math.isfinite(lim.stats().paused_seconds)


def test_json_doc_never_writes_nan_or_infinity() -> None:
    doc = {"a": math.inf, "b": [1.5, -math.inf, {"c": math.nan}], "d": (2.0,), "e": "Infinity"}
    assert _strict(json_doc(doc)) == {"a": None, "b": [1.5, None, {"c": None}], "d": [2.0], "e": "Infinity"}
    assert json_doc({"x": 1.0}) == '{"x": 1.0}'


@pytest.mark.parametrize("value", ["5", "Wed, 21 Oct 2015 07:28:00 GMT", 10 ** 400, "inf", "-3", True, [5]])
def test_a_plugins_retry_after_of_any_type_is_read_or_ignored_never_raised(value: Any) -> None:
    """Found by review 103: a plug-in passing the raw header (a string), `int(header)` of 401 digits
    or a Decimal made the change fail with a bare `TypeError: must be real number, not str` (or
    OverflowError), its instance neither paused nor counted."""
    from keyform.providers.foreign import THROTTLE_BACKOFF, plugin_retry_after

    assert plugin_retry_after(value) == (5.0 if value == "5" else THROTTLE_BACKOFF)


def test_a_server_failure_between_refusals_does_not_switch_the_breaker_off() -> None:
    """Found by review 103: 503s between 429s (a server failing under the same load) ended the run
    of refusals, so the breaker never tripped and 20 changes took 57 s at `deadline: 5s` (hours at
    1,000): a 5xx is no answer that ends it; only an accepted call does."""
    from keyform.providers.ratelimit import BREAK_AFTER

    lim = Limiter("qp", RateLimit(100.0), clock=lambda: 0.0, sleep=lambda s: None)
    for _ in range(BREAK_AFTER - 1):
        lim.ended(True)
        lim.ended(None)  # a call that ended on a 503
    lim.ended(True)
    assert lim.stats().broken
