"""Found by an adversarial pass (stop 36): one Ctrl-C during apply is documented as "no new change
starts, the running ones finish". Under a rate limit, the scheduler has already started 2 x --parallelism changes, most of them only queued
in the instance's concurrency window (halved to 1 by the 429s), nothing sent. After the Ctrl-C
they still go on, one after another, each spending its whole deadline on refused creates: 20
queued changes with a 2 s deadline keep keyform sending for ~25 s after the Ctrl-C (with the
default 60 s deadline: ~20 minutes). A change that has sent nothing should not start sending
after Ctrl-C."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from tests.hostile import Reply, Seen, hostile


def test_one_ctrl_c_does_not_let_queued_changes_start_sending(tmp_path: Path) -> None:
    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST":
            return Reply(429, b'{"error":{"code":"rate_limited","message":"slow"}}',
                         {"Content-Type": "application/json", "Retry-After": "0"})
        return None

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("".join(f"k{i:02d}:\n  provider: qp\n" for i in range(20)))
        project.manifest.write_text(project.manifest.read_text().replace(
            "    org_id: org_e2e\n", "    org_id: org_e2e\n    deadline: 2s\n"))
        code, _, after = project.interrupt_when("rate-limited", "apply", "--auto-approve", "--parallelism", "10")
    assert code == 1
    # the calls in flight at the Ctrl-C end within their 2 s deadline
    assert after < 6, f"keyform went on for {after:.1f}s after one Ctrl-C"
