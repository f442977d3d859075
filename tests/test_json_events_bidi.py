"""`apply --format json` events and `report --format json` kept a server's bidi controls and
zero-width characters raw (valid JSON, but a CI log showing the line reorders it: Trojan Source in a
build log). Left open in stop 36. They are now `\\u` escapes: the same document to a parser. Real
HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

from harness.project import Project
from keyform.render.safe import UNSAFE
from tests.hostile import Reply, Seen, hostile

TRICK = "rejected\u202e txet nedih\u200b\u2066 \x85 end"


def test_apply_json_events_escape_a_servers_bidi_and_zero_width_characters(tmp_path: Path) -> None:
    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":
            return Reply(400, json.dumps({"error": {"code": "bad", "message": TRICK}}, ensure_ascii=False).encode())
        return None

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("k0:\n  provider: qp\n")
        res = project.run_process("apply", "--auto-approve", "--format", "json")
    assert res.exit_code == 1, res.tail()
    assert not UNSAFE.search(res.stdout), [c for c in res.stdout if UNSAFE.match(c)]
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    errored = [e for e in events if e["type"] == "apply_errored"]
    assert errored and "\u202e" in errored[0]["message"]  # the text itself is kept, escaped on the wire
    summary = next(e for e in events if e["type"] == "change_summary")
    assert "\u202e" in summary["errors"][0]["message"]
