"""Apply against an API that rate-limits (the emulator's token bucket, real HTTP on 127.0.0.1):
learned with nothing configured, obeyed with `rate_limit`, reported as it happens and in the
summary, and one instance's limit never holds back another's changes. Small counts: ~5 s in all."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness.project import TOKENS, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

MakeEmulator = Callable[..., Emulator]


def keys_block(n: int, provider: str = "qp", prefix: str = "k") -> str:
    return "".join(f"{prefix}{i:03d}:\n  provider: {provider}\n" for i in range(n))


def test_nothing_configured_learns_the_limit_reports_it_and_fails_nothing(tmp_path: Path,
                                                                          make_emulator: MakeEmulator) -> None:
    emu = make_emulator(rate_limit_rps=40, rate_limit_burst=5)
    project = Project(tmp_path, emu.url)
    project.questra(keys_block(40))
    res = project.run("apply", "--auto-approve", "--parallelism", "8")
    assert res.exit_code == 0, res.output
    assert "Apply complete: 40 created" in res.stdout
    with EmulatorControl(emu.url) as control:
        state = control.state()
    throttled = state["faults"]["injected"].get("throttled", 0)
    assert throttled > 0 and len(state["questra"]["orgs"]["org_e2e"]) == 40
    assert "qp: rate-limited, waiting " in res.stdout and "(concurrency 8 → 4, " in res.stdout
    assert "Rate limits:" in res.stdout and f"qp: {throttled} × 429 received, " in res.stdout
    assert TOKENS["QUESTRA_TOKEN"] not in res.output  # the canary token: never in events or summary


def test_a_configured_rate_limit_is_never_exceeded(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = make_emulator(rate_limit_rps=40)  # a bucket of one second's worth, as real APIs have
    project = Project(tmp_path, emu.url)
    project.questra(keys_block(30), extra="")
    text = project.manifest.read_text().replace("    org_id: org_e2e\n", "    org_id: org_e2e\n    rate_limit: 30/s\n")
    project.manifest.write_text(text)
    res = project.run("apply", "--auto-approve", "--parallelism", "16")
    assert res.exit_code == 0, res.output
    with EmulatorControl(emu.url) as control:
        assert control.state()["faults"]["injected"] == {}  # not one 429
    assert "rate-limited" not in res.stdout
    assert "qp: limit 30/s, 0 × 429 received, 0.0 s paused" in res.stdout


def test_json_events_and_summary_carry_the_rate_limiting(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    emu = make_emulator(rate_limit_rps=40, rate_limit_burst=5)
    project = Project(tmp_path, emu.url)
    project.questra(keys_block(30))
    res = project.run("apply", "--auto-approve", "--parallelism", "8", "--format", "json")
    assert res.exit_code == 0, res.output
    docs = [json.loads(line) for line in res.stdout.splitlines()]
    events = [d for d in docs if d["type"] == "rate_limited"]
    assert events and events[0]["provider"] == "qp" and events[0]["status"] == 429
    assert (events[0]["concurrency_before"], events[0]["concurrency_after"]) == (8, 4)
    assert events[0]["wait_seconds"] >= 0 and events[0]["rate_per_second"] > 0
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "apply-events.schema.json").read_text())
    for doc in docs:  # the stream follows the documented event schema, rate events included
        jsonschema.validate(doc, schema)
    summary = docs[-1]
    assert summary["type"] == "change_summary" and summary["created"] == 30
    [limits] = summary["rate_limits"]
    assert limits["provider"] == "qp" and limits["throttled"] >= len(events) and limits["rate_limit"] is None
    assert limits["throttled_by_status"] == {"429": limits["throttled"]}


def test_a_slow_instance_does_not_hold_back_another(tmp_path: Path, make_emulator: MakeEmulator) -> None:
    """org_slow allows 4 calls/s, org_fast is unlimited. The slow org's keys sort first and fill the
    applier's places unless they are shared: the fast org's 12 creates must all be done before the
    slow org's 6th (at 3/s, not before ~1.6 s)."""
    emu = make_emulator(rate_limits={"org_slow": 4.0})
    project = Project(tmp_path, emu.url)
    providers = "".join(
        f"  {name}:\n    type: questra\n    base_url: {emu.url}\n    token: {{env: QUESTRA_TOKEN}}\n"
        f"    org_id: org_{name}\n{extra}" for name, extra in (("slow", "    rate_limit: 3/s\n"), ("fast", "")))
    keys = keys_block(12, "slow", "a") + keys_block(12, "fast", "b")
    project.manifest.write_text(
        "version: 1\nproviders:\n" + providers + "sinks:\n  env: {type: dotenv, path: s.env}\n"
        "defaults: {sink: env}\nkeys:\n" + "".join("  " + line + "\n" for line in keys.splitlines()))
    res = project.run("apply", "--auto-approve", "--parallelism", "2", "--format", "json")
    assert res.exit_code == 0, res.output
    done = [d["address"] for d in map(json.loads, res.stdout.splitlines()) if d["type"] == "apply_complete"]
    assert len(done) == 24
    slow_before_last_fast = sum(1 for a in done[:max(i for i, a in enumerate(done) if a.startswith("b"))]
                                if a.startswith("a"))
    assert slow_before_last_fast <= 5, done
    with EmulatorControl(emu.url) as control:
        assert control.state()["faults"]["injected"] == {}


def test_a_configured_limit_with_no_refusal_has_an_empty_breakdown(tmp_path: Path, emulator: Emulator) -> None:
    """Found by review 108: an instance listed only for its configured `rate_limit` reported
    `"throttled_by_status": {"429": 0}`, which the event schema (each count at least 1) refuses."""
    project = Project(tmp_path, emulator.url)
    project.questra(keys_block(3))
    project.manifest.write_text(project.manifest.read_text().replace(
        "    org_id: org_e2e\n", "    org_id: org_e2e\n    rate_limit: 1000/s\n"))
    res = project.run("apply", "--auto-approve", "--format", "json")
    assert res.exit_code == 0, res.output
    docs = [json.loads(line) for line in res.stdout.splitlines()]
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "apply-events.schema.json").read_text())
    for doc in docs:
        jsonschema.validate(doc, schema)
    [limits] = docs[-1]["rate_limits"]
    assert (limits["throttled"], limits["throttled_by_status"], limits["rate_limit"]) == (0, {}, "1000/s")
