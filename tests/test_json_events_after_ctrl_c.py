"""Found by an adversarial review (stop 37): `apply --format json` and one Ctrl-C while calls wait out a rate-limit pause (cb3b25a:
the waits end at once, unsent). schemas/apply-events.schema.json and the README promise "per change
`apply_start` and one of `apply_complete`, `apply_errored`, `apply_skipped`". The changes whose call
was waiting get `apply_start` and then nothing: the applier files them under `report.not_started`
(NotSentError) and only the text lines on stderr name them; `change_summary` neither counts nor
lists them. A JSON consumer sees changes that started and never ended. Real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from harness.project import Project
from keyform.emulator import Emulator
from tests.hostile import Reply, Seen, hostile

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "apply-events.schema.json").read_text())
RL = Reply(429, b'{"error":{"code":"rate_limited","message":"slow down"}}',
           {"Content-Type": "application/json", "Retry-After": "20"})


def _events(out: str) -> list[dict[str, Any]]:
    """The JSON lines of `out`, each valid against the apply events schema."""
    evs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for e in evs:
        jsonschema.validate(e, SCHEMA)
    return evs


def test_every_started_change_ends_in_the_json_stream_after_a_ctrl_c_in_a_pause(tmp_path: Path,
                                                                                 emulator: Emulator) -> None:
    posts = {"n": 0}

    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":
            posts["n"] += 1
            if posts["n"] > 2:
                return Reply(429, b'{"error":{"code":"rate_limited","message":"slow down"}}',
                             {"Content-Type": "application/json", "Retry-After": "20"})
        return None

    with hostile(upstream=emulator.url) as server:
        project = Project(tmp_path, server.url)
        project.questra("".join(f"k{i}: {{provider: qp}}\n" for i in range(6)))
        server.script = script
        code, out, _ = project.interrupt_when("rate_limited", "apply", "--auto-approve", "--parallelism", "2",
                                              "--format", "json")
    assert code == 1 and "Interrupted" in out, out[-2000:]
    events = _events(out)
    started = {e["address"] for e in events if e["type"] == "apply_start"}
    ended = {e["address"] for e in events if e["type"] in ("apply_complete", "apply_errored", "apply_skipped")}
    summary = next(e for e in events if e["type"] == "change_summary")
    assert started <= ended, (f"started and never ended in the JSON stream: {sorted(started - ended)}; "
                              f"change_summary: failed={summary['failed']} errors={summary['errors']}")
    unsent = {e["address"] for e in events if e["type"] == "apply_skipped" and "not sent" in e["message"]}
    assert unsent and unsent <= set(summary["not_started"]), (unsent, summary)


def test_a_deposed_revocation_ended_unsent_is_named_alike_in_its_event_and_the_summary(tmp_path: Path,
                                                                                        emulator: Emulator) -> None:
    """Found by the same review: `not_started` named it `k2 (deposed ak_...)`, its event `k2`."""
    with hostile(upstream=emulator.url) as server:
        project = Project(tmp_path, server.url)
        project.questra("".join(f"k{i}: {{provider: qp}}\n" for i in range(4)))
        assert project.run("apply", "--auto-approve").exit_code == 0
        dels = {"n": 0}

        def script(seen: Seen) -> Reply | None:
            if seen.method in ("DELETE", "POST") and "/api-keys/" in seen.path:
                dels["n"] += 1
                if dels["n"] > 1:
                    return RL
            return None

        server.script = script
        args = [a for i in range(4) for a in ("--replace", f"k{i}")]
        code, out, _ = project.interrupt_when("rate_limited", "apply", "--auto-approve", "--parallelism", "2",
                                              "--format", "json", *args)
    assert code == 1, out[-2000:]
    evs = _events(out)
    summary = next(e for e in evs if e["type"] == "change_summary")
    unsent = {e["address"] for e in evs if e["type"] == "apply_skipped" and "not sent" in e.get("message", "")}
    assert unsent, out[-3000:]
    assert unsent <= set(summary.get("not_started", [])), (unsent, summary.get("not_started"))


def test_an_interrupted_destroy_says_to_run_destroy_again(tmp_path: Path, emulator: Emulator) -> None:
    """Found by the same review: an interrupted destroy ended with "run `keyform apply` again"."""
    with hostile(upstream=emulator.url) as server:
        project = Project(tmp_path, server.url)
        project.questra("".join(f"k{i}: {{provider: qp}}\n" for i in range(6)))
        assert project.run("apply", "--auto-approve").exit_code == 0
        revokes = {"n": 0}

        def script(seen: Seen) -> Reply | None:
            if seen.method == "POST" and seen.path.endswith("/revoke"):
                revokes["n"] += 1
                if revokes["n"] > 2:
                    return RL
            return None

        server.script = script
        code, out, _ = project.interrupt_when("rate-limited", "destroy", "--auto-approve", "--parallelism", "2")
    assert code == 1 and "not sent" in out, out[-2000:]
    assert "Destroy interrupted" in out and "run `keyform destroy` again" in out, out[-2000:]

