"""Found by an adversarial review (stop 37) of 0bd8188 (JSON outputs escape bidi/zero-width
characters): `plan --format json` (the document a pipeline prints and posts; also `apply --format json`'s first document) is
written by `Plan.dumps`, `json.dumps(ensure_ascii=False)` without `safe.escaped`: an API's bidi
override in a listed name reaches the CI log raw. And a lone surrogate in a listed name (an API's
`\\ud800` escape) is not JSON-escaped by any `ensure_ascii=False` writer: the output cannot be
encoded. Real HTTP on 127.0.0.1: a hostile proxy in front of the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.project import Project
from keyform.emulator import Emulator
from keyform.render.safe import UNSAFE
from tests.hostile import Reply, Seen, hostile

TRICK = "k1\u202e txet nedih\u200b\u2066 end"


def _renaming(server: Any, name: str) -> Callable[[Seen], Reply | None]:
    def script(seen: Seen) -> Reply | None:
        if seen.method == "GET" and seen.path.startswith("/api-keys"):
            reply = server.default(seen)
            keys = json.loads(reply.body)
            for k in keys if isinstance(keys, list) else keys.get("data", []):
                k["name"] = name
            return Reply(reply.status, json.dumps(keys).encode(), reply.headers)  # ensure_ascii: \\u escapes
        return None
    return script


def _plans(tmp_path: Path, emulator: Emulator, name: str) -> tuple[Any, Any]:
    with hostile(upstream=emulator.url) as server:
        project = Project(tmp_path, server.url)
        project.questra("k1:\n  provider: qp\n")
        applied = project.run_process("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.tail()
        server.script = _renaming(server, name)
        outs = (project.run_process("plan", "--format", "json"), project.run_process("report", "--format", "json"))
        for args in (("plan",), ("plan", "--format", "markdown"), ("report",)):  # text outputs too
            res = project.run_process(*args)
            assert "internal error" not in res.output and "Traceback" not in res.output, res.tail(1500)
        return outs


def test_plan_json_keeps_a_servers_bidi_override_raw(tmp_path: Path, emulator: Emulator) -> None:
    plan, report = _plans(tmp_path, emulator, TRICK)
    assert plan.exit_code == 0 and report.exit_code == 0, plan.tail() + report.tail()
    assert not UNSAFE.search(report.stdout)  # report --format json: escaped (0bd8188)
    assert TRICK in json.dumps(json.loads(plan.stdout), ensure_ascii=False)  # the drift is in the plan
    assert not UNSAFE.search(plan.stdout), [c for c in plan.stdout if UNSAFE.match(c)]


def test_json_outputs_survive_a_lone_surrogate_in_a_name(tmp_path: Path, emulator: Emulator) -> None:
    plan, report = _plans(tmp_path, emulator, "k1 \ud800 x")
    for res in (plan, report):
        assert res.exit_code == 0, res.tail(1500)
        json.loads(res.stdout)
