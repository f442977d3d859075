"""Found by an adversarial pass (stop 36): an API written in Go reports "never used" as the zero time, `0001-01-01T00:00:00Z` (a valid
RFC 3339 timestamp). `wire_time` refuses any year outside 1900-9899 for `last_used_at` too, so one
such key in the listing, even one keyform does not manage, makes every plan, apply and report fail
("last_used_at is outside the years keyform can record"). The year limit protects the state, but
last_used_at is never recorded in the state: reading it as "never used" (or unknown) loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator
from tests.hostile import Reply, Seen, hostile


def test_a_zero_time_last_use_of_an_unmanaged_key_does_not_block_plans(tmp_path: Path, emulator: Emulator) -> None:
    with hostile(upstream=emulator.url) as api:
        project = Project(tmp_path, api.url)
        project.questra("k:\n  provider: qp\n")

        def with_go_key(seen: Seen) -> Reply | None:
            if seen.method != "GET" or seen.path != "/api-keys":
                return None
            reply = api._forward(seen)
            doc = json.loads(reply.body)
            items = doc["data"] if isinstance(doc, dict) else doc
            items.append({"id": "ak_gomade000000001", "name": "made by a Go service", "revoked": False,
                          "expired": False, "created_at": "2026-01-01T00:00:00Z", "expires_at": None,
                          "last_used_at": "0001-01-01T00:00:00Z"})
            return Reply(reply.status, json.dumps(doc).encode(), reply.headers)

        api.script = with_go_key
        res = project.run("plan")
        assert res.exit_code == 0, res.output
        res = project.run("report", "-f", str(project.manifest), "--unmanaged", "--format", "json")
        assert res.exit_code == 0, res.output
        [row] = json.loads(res.stdout)["unmanaged"]["instances"]["qp"]
        assert row["remote_id"] == "ak_gomade000000001"
