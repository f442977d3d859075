"""The breaker (providers/ratelimit.py `Limiter.ended`): an API that refuses every call for its rate
made an apply spend each call's whole deadline in turn (left open in stop 36: "an apply lasts about
N x deadline"; with the default 60 s, 1,000 creates would take hours of knocking on a shut door).
Once 3 calls in a row ended refused, keyform now sends that instance nothing more in the run: the
other changes fail at once, saying why, and the summary says the instance stopped. Real HTTP on
127.0.0.1; an instance that answers is not stopped by another that refuses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator
from keyform.providers.ratelimit import Limiter, NotAdmitted
from tests.hostile import Reply, Seen, hostile


def test_an_api_refusing_everything_is_left_alone_after_three_calls(tmp_path: Path, emulator: Emulator) -> None:
    posts: list[str] = []

    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":
            posts.append(seen.headers.get("X-Org-Id", seen.headers.get("x-org-id", "")))
            if "refusing" in posts[-1]:
                return Reply(429, b'{"error":{"code":"rate_limited","message":"slow down"}}',
                             {"Content-Type": "application/json", "Retry-After": "0"})
        return None

    with hostile(upstream=emulator.url) as server:
        project = Project(tmp_path, server.url)
        project.write(
            "version: 1\n"
            "providers:\n"
            f"  shut: {{type: questra, base_url: {server.url}, token: {{env: QUESTRA_TOKEN}}, org_id: org_refusing,"
            " deadline: 2s}\n"
            f"  open: {{type: questra, base_url: {server.url}, token: {{env: QUESTRA_TOKEN}}, org_id: org_e2e}}\n"
            "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\n"
            "defaults:\n  sink: env\n"
            "keys:\n"
            + "".join(f"  s{i:02d}: {{provider: shut}}\n" for i in range(20))
            + "".join(f"  o{i:02d}: {{provider: open}}\n" for i in range(5)))
        server.script = script
        started = time.monotonic()
        res = project.run_process("apply", "--auto-approve", "--parallelism", "4", "--format", "json")
        took = time.monotonic() - started
    assert res.exit_code == 1, res.tail()
    refused = [p for p in posts if "refusing" in p]
    # old code: every one of the 20 changes retried for its 2 s deadline, one after another (~40 s)
    assert took < 20, f"the apply took {took:.1f}s against an API refusing everything"
    assert len(refused) < 60, len(refused)
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    summary = next(e for e in events if e.get("type") == "change_summary")
    shut = next(r for r in summary["rate_limits"] if r["provider"] == "shut")
    assert shut["stopped_sending"] is True
    failed = [e for e in events if e.get("type") == "apply_errored"]
    assert any("sends it nothing more in this run" in e.get("message", "") for e in failed), failed[:3]
    # the instance that answers was not held back: its keys were made
    assert sorted(a for a in project.state()["keys"]) == [f"o{i:02d}" for i in range(5)]


def test_the_breaker_counts_calls_in_a_row_and_an_answer_resets_it() -> None:
    lim = Limiter("qp")
    lim.ended(True)
    lim.ended(True)
    lim.ended(False)  # answered: not a shut door
    lim.ended(True)
    lim.ended(True)
    lim.before_attempt()  # still sending: 2 in a row
    lim.ended(True)
    with pytest.raises(NotAdmitted) as err:
        lim.before_attempt()
    assert err.value.cause == "broken" and lim.stats().broken
