"""Found by an adversarial pass (stop 36): the apply summary's "time spent paused" (`paused_seconds`, `N s paused`) counts the whole
Retry-After of every 429 when the pause is set, even when no call waits it out (the call's
deadline ends it at once) and the apply is over long before: a 0.2 s apply reports 50 s paused,
and the progress line says `waiting 50.0 s` while nothing waits."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.project import Project
from tests.hostile import Reply, Seen, hostile


def test_paused_seconds_is_not_more_than_the_apply_lasted(tmp_path: Path) -> None:
    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST":
            return Reply(429, b'{"error":{"code":"rate_limited","message":"slow down"}}',
                         {"Content-Type": "application/json", "Retry-After": "50"})
        return None

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("k0:\n  provider: qp\nk1:\n  provider: qp\n")
        text = project.manifest.read_text().replace("    org_id: org_e2e\n", "    org_id: org_e2e\n    deadline: 10s\n")
        project.manifest.write_text(text)
        started = time.monotonic()
        res = project.run("apply", "--auto-approve", "--format", "json")
        elapsed = time.monotonic() - started
    assert res.exit_code == 1
    assert elapsed < 5, elapsed  # nothing waited for the 50 s: the deadline (10 s) ended the calls at once
    summary = json.loads(res.stdout.splitlines()[-1])
    [limits] = summary["rate_limits"]
    assert limits["throttled"] >= 1
    assert limits["paused_seconds"] <= elapsed, (limits, elapsed)
