"""Found by an adversarial pass (stop 36): a `Retry-After` over 60 s was never waited for, even
when the provider's `deadline` allowed it; the change failed at once with a bare `429 slow down`
that did not say the API asked for a wait; and such a refusal did not pause the instance, so every
other call was still sent into the API that had just said "not for an hour" (10 creates: 10 POSTs,
10 refusals). Now a Retry-After within the deadline is waited for, a longer one pauses the
instance (the other calls end unsent) and the message says what the API asked."""

from __future__ import annotations

import random
from pathlib import Path

from harness.project import Project
from keyform.providers.questra import QuestraProvider
from keyform.remote import CreateRequest
from tests.hostile import Reply, Seen, hostile

REFUSAL = b'{"error":{"code":"rate_limited","message":"slow down"}}'


def test_a_retry_after_within_the_deadline_is_waited_for() -> None:
    slept: list[float] = []

    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST" and sum(1 for s in server.seen if s.method == "POST") == 1:
            return Reply(429, REFUSAL, {"Content-Type": "application/json", "Retry-After": "61"})
        return None

    with hostile() as server:
        server.script = script
        provider = QuestraProvider("qp", server.url, "tok", "org_1", deadline=600.0, sleep=slept.append,
                                   rng=random.Random(7))
        try:
            provider.create(CreateRequest("k0", {"name": "k0"}, None, {}))
        finally:
            provider.close()
    assert 61.0 in slept, slept  # 61 s < the 10 min deadline: waited (here: a fake sleep), then created


def test_a_long_retry_after_is_said_and_holds_the_other_calls(tmp_path: Path) -> None:
    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST":
            return Reply(429, REFUSAL, {"Content-Type": "application/json", "Retry-After": "3600"})
        return None

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("".join(f"k{i}:\n  provider: qp\n" for i in range(10)))
        project.manifest.write_text(project.manifest.read_text().replace(
            "    org_id: org_e2e\n", "    org_id: org_e2e\n    deadline: 10m\n"))
        res = project.run("apply", "--auto-approve", "--parallelism", "1")
        posts = [s for s in server.seen if s.method == "POST"]
    assert res.exit_code == 1
    assert "the API asks to retry in 3600 s, longer than a call waits (600 s" in res.stderr, res.stderr
    assert len(posts) == 1, f"{len(posts)} creates sent after the API asked for a one-hour wait"
    assert "not sent, the instance is paused" in res.stderr
