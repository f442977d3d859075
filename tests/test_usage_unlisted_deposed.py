"""Found by an adversarial pass (stop 36): under a usage rule (`rotation: {grace, unused_for}`) a deposed key that the listing omits is
planned as "already gone remotely: only forgotten", and the apply then sends the revoke: the old key
is revoked at once, before `grace` and before it has been unused for `unused_for`. Under a fixed
grace the same listing makes keyform wait for the grace. A listing that leaves a live key out (a
capped or paginated list; the Questra list endpoint is only assumed) revokes the old key consumers
still use, and the plan said it would only be forgotten."""

from __future__ import annotations

import json
from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from tests.hostile import Reply, Seen, hostile


def test_an_unlisted_deposed_key_is_not_revoked_before_its_grace(tmp_path: Path, emulator: Emulator,
                                                                 emu_control: EmulatorControl) -> None:
    with hostile(upstream=emulator.url) as api:
        project = Project(tmp_path, api.url)
        project.questra("k:\n  provider: qp\n  rotation: {grace: 7d, unused_for: 1h}\n")
        assert project.run("apply", "--auto-approve").exit_code == 0
        old = project.remote_id("k")
        assert project.run("apply", "--replace", "k", "--auto-approve").exit_code == 0

        def without_old(seen: Seen) -> Reply | None:
            if seen.method != "GET" or seen.path != "/api-keys":
                return None
            reply = api._forward(seen)
            doc = json.loads(reply.body)
            items = doc["data"] if isinstance(doc, dict) else doc
            items[:] = [k for k in items if k["id"] != old]
            return Reply(reply.status, json.dumps(doc).encode(), reply.headers)

        api.script = without_old
        plan = project.run("plan")
        assert plan.exit_code == 0, plan.output
        res = project.run("apply", "--auto-approve")
        assert res.exit_code == 0, res.output
        revoked = {k["id"]: k["revoked"] for k in emu_control.questra_keys(ORG)}
        # the plan said "only forgotten"; grace (7d) and unused_for (1h) are far from over
        assert not revoked[old], f"revoked at once; the plan said: {plan.stdout!r}"
