"""An API that refuses every create (429, `Retry-After: 1`) ends the apply within about the
instance's `deadline`, and no message claims a deadline the call did not keep.

Found by a review: 10 keys at --parallelism 4 took 2m32s, 70 at 32 took 10 minutes, each change
`failed after 580.1s ...; rate-limited: still 429 after 20 attempts within the call's 60s deadline`.
The refusals bring the learned rate down to its floor (0.5/s), the retries queue for their turns
in it, and that queue is not charged to their deadlines (`Ticket.paced`, so that a queue keyform
keeps never fails a call the API would accept); the breaker counted only calls that had finished,
and none finished for minutes. The limiter now also breaks an instance that has answered nothing
but refusals for its deadline (`Limiter._run_of_refusals`), and a call's message counts the time
its retries queued. Real HTTP: keyform's CLI against a scripted API on 127.0.0.1."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.project import Project
from keyform.model import RateLimit
from keyform.providers.ratelimit import BREAK_AFTER, Limiter, NotAdmitted
from tests.hostile import Reply, Seen, hostile


def test_an_api_refusing_every_create_ends_the_apply_by_about_its_deadline(tmp_path: Path) -> None:
    posts: list[float] = []

    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":
            posts.append(time.monotonic())
            return Reply(429, b'{"error":{"code":"rate_limited","message":"slow down"}}',
                         {"Content-Type": "application/json", "Retry-After": "1"})
        return None

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("".join(f"k{i:02d}:\n  provider: qp\n" for i in range(16)))
        project.manifest.write_text(project.manifest.read_text().replace(
            "    org_id: org_e2e\n", "    org_id: org_e2e\n    deadline: 15s\n"))
        started = time.monotonic()
        res = project.run_process("apply", "--auto-approve", "--parallelism", "8", "--format", "json",
                                  timeout=170)
        took = time.monotonic() - started
    assert res.exit_code == 1, res.tail()
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    failed = [e for e in events if e.get("type") == "apply_errored"]
    assert len(failed) == 16, res.tail()
    # old code: `failed after 26.1s: ...; rate-limited: still 429 after 5 attempts within the call's 15s deadline`
    for e in failed:
        if e["elapsed_seconds"] > 20:
            assert "queued for their turns" in e["message"], e
    assert any("answered nothing but refusals for its rate" in e["message"] for e in failed), failed[:3]
    # a call cut by the breaker says so: never a bare `429 slow down`
    assert all(not e["message"].endswith("429 slow down") for e in failed), [e["message"] for e in failed]
    # old code: ~31 s, each call's retries queued at the learned rate's floor; the instance stops after 15 s
    assert took < 28, f"the apply took {took:.1f}s against an API refusing every create (deadline 15s)"
    summary = next(e for e in events if e.get("type") == "change_summary")
    assert summary["rate_limits"][0]["stopped_sending"] is True


def test_refusals_alone_for_the_deadline_break_the_instance_and_an_answer_resets_them() -> None:
    now = [100.0]
    lim = Limiter("qp", RateLimit(100.0), clock=lambda: now[0], sleep=lambda s: None)
    lim.note_deadline(10.0)
    for _ in range(4):  # refusals for less than the deadline
        lim.throttled(lim.before_attempt(first=True), 0.0, 0.0)
        now[0] += 2.0
    assert not lim.stats().broken
    lim.succeeded(lim.before_attempt(first=True))  # an answer: the run starts again
    first = lim.before_attempt(first=True)
    now[0] += 9.0
    lim.throttled(first, 0.0, 0.0)  # sent 9 s ago: the run is 9 s long
    for _ in range(5):
        lim.throttled(lim.before_attempt(first=True), 0.0, 0.0)
    assert not lim.stats().broken
    now[0] += 1.0
    for _ in range(BREAK_AFTER - 1):  # 10 s of refusals, nothing else: BREAK_AFTER more break it
        lim.throttled(lim.before_attempt(first=True), 0.0, 0.0)
    assert not lim.stats().broken
    lim.throttled(lim.before_attempt(first=True), 0.0, 0.0)
    assert lim.stats().broken
    try:
        lim.before_attempt(first=True)
    except NotAdmitted as exc:
        assert exc.cause == "broken" and "nothing but refusals for its rate for 10s, as long as the instance" in exc.why
    else:
        raise AssertionError("admitted after the breaker")
