"""The stderr notice of a listing's rate-limit wait (`plan`, `report`, an apply's listing) says a
wait only when the call does wait.

Found by review 103: the notice was given when the refusal arrived, before the call decided whether
to wait. A `Retry-After` of a day, longer than any call waits, printed `qp: waiting a day or more
for its rate limit …` and, within 0.3 s, the error saying the call would not wait. A real `keyform`
process against a scripted API on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from tests.hostile import Reply, Seen, hostile

REFUSED = b'{"error":{"code":"rate_limited","message":"slow down"}}'


def _plan(tmp_path: Path, refusals: list[str]) -> tuple[int, str, str, int]:
    """A plan whose first list calls are refused with these Retry-After values, then answered."""
    calls = []

    def script(seen: Seen) -> Reply | None:
        if seen.method == "GET" and seen.path.startswith("/api-keys"):
            calls.append(seen.path)
            if len(calls) <= len(refusals):
                return Reply(429, REFUSED, {"Content-Type": "application/json",
                                            "Retry-After": refusals[len(calls) - 1]})
            return Reply(200, b"[]", {"Content-Type": "application/json"})
        return None

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("k0:\n  provider: qp\n")
        res = project.run_process("plan", "-f", str(project.manifest))
    return res.exit_code, res.stdout, res.stderr, len(calls)


def test_a_wait_the_call_will_not_make_is_not_announced(tmp_path: Path) -> None:
    code, out, err, calls = _plan(tmp_path, ["86400"])
    assert code == 1 and calls == 1, (out, err)
    assert "a day or more, longer than a call waits" in err, err
    # old code: `qp: waiting a day or more for its rate limit …` on the line before that error
    assert "waiting" not in err, err
    assert "Traceback" not in err


def test_a_wait_the_call_makes_is_announced_once(tmp_path: Path) -> None:
    code, out, err, calls = _plan(tmp_path, ["2"])
    assert code == 0 and calls == 2, (out, err)
    assert err.count("qp: waiting 2.0 s for its rate limit") == 1, err
    assert "Plan: 1 to create" in out
