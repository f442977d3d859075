"""Found by an adversarial pass (stop 36): a server's error body reaches the apply's progress line (`k0: failed after ...`) with its
terminal control characters raw, while the `Error:` diagnostic of the same message escapes them."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from tests.hostile import Reply, Seen, hostile


def test_failed_progress_line_escapes_server_control_characters(tmp_path: Path) -> None:
    body = b'{"error":{"code":"rate_limited","message":"\\u001b]0;PWNED\\u0007\\u001b[2Jslow down"}}'

    def script(seen: Seen) -> Reply | None:  # every create refused for its rate, with an escape sequence in the message
        if seen.method == "POST":
            return Reply(429, body, {"Content-Type": "application/json", "Retry-After": "99999"})
        return None

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("k0:\n  provider: qp\n")
        res = project.run("apply", "--auto-approve")
    assert res.exit_code == 1
    assert "PWNED" in res.stderr
    assert "\x1b" not in res.output and "\x07" not in res.output, res.stderr
