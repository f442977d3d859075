"""Found by an adversarial pass (stop 36): A call's wait for its turn in the send rate counts against its deadline, and an attempt is sent
whenever its turn comes before the deadline, even a moment before: a create is then sent with no
time left for its answer, the deadline cuts the reply, and the create ends *ambiguous* ("no
complete response ...; the key may exist remotely") although the API made the key and answered
normally. Here: an API answering creates in 0.2 s, `rate_limit` one call per 1.9 s, a 2 s
deadline: the create's turn (after the plan's list call) comes at 1.9 s, it is sent, the key is
made, its answer would come at 2.1 s. An attempt that cannot be answered before the deadline
should not be sent (or its turn not count against the deadline): here the create should succeed
or be reported as not sent, never be made and lost."""

from __future__ import annotations

import time
from pathlib import Path

from harness.project import Project
from tests.hostile import Reply, Seen, hostile


def test_a_create_is_not_sent_with_no_time_left_for_its_answer(tmp_path: Path) -> None:
    with hostile() as server:
        default = server.default

        def slow_create(seen: Seen) -> Reply:
            if seen.method == "POST":
                time.sleep(0.2)
            return default(seen)

        server.script = slow_create
        project = Project(tmp_path, server.url)
        project.questra("k0:\n  provider: qp\n")
        project.manifest.write_text(project.manifest.read_text().replace(
            "    org_id: org_e2e\n", "    org_id: org_e2e\n    deadline: 2s\n    rate_limit: 0.5263/s\n"))
        res = project.run("apply", "--auto-approve", "--parallelism", "1")
        made = list(server.created)
    assert "may exist remotely" not in res.stderr, (res.stderr, made)
