"""Found by an adversarial pass (stop 36): A configured `rate_limit` is meant to space keyform's calls to that rate (README "Rate limits"),
but a call's turn in the send rate counts against its `deadline`: with --parallelism N calls
reserving turns at once, every call whose turn is more than `deadline` away fails at once with
`not sent: its turn at the instance's send rate ... comes after the call's deadline`. With the
defaults (parallelism 10, deadline 60s), `rate_limit: 100/h` (one call per 36 s) makes 8 of the
first 10 creates fail without being sent. Here the same, scaled down: 2/s, a 3 s deadline."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator


def test_configured_rate_paces_calls_instead_of_failing_them(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("".join(f"k{i:02d}:\n  provider: qp\n" for i in range(10)))
    text = project.manifest.read_text().replace(
        "    org_id: org_e2e\n", "    org_id: org_e2e\n    rate_limit: 2/s\n    deadline: 3s\n")
    project.manifest.write_text(text)
    res = project.run("apply", "--auto-approve", "--parallelism", "10")
    assert "its turn at the instance's send rate" not in res.stderr, res.stderr
    assert res.exit_code == 0, res.output
    assert "Apply complete: 10 created" in res.stdout
