"""Found by an adversarial pass (stop 36): `keyform destroy` goes through the same applier and limiter as apply and prints the
`rate-limited, waiting ...` progress lines, but its text summary drops the "Rate limits:" block
(summary_text returns early for destroy): the 429s received and the time paused are not reported,
while `--format json` does carry `rate_limits` for the same run."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


def test_destroy_summary_reports_rate_limits(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("".join(f"k{i:03d}:\n  provider: qp\n" for i in range(40)))
    assert project.run("apply", "--auto-approve", "--parallelism", "16").exit_code == 0
    with EmulatorControl(emulator.url) as control:
        control.faults(rate_limit_rps=20)
        res = project.run("destroy", "--auto-approve", "--parallelism", "16")
        throttled = control.state()["faults"]["injected"].get("throttled", 0)
    assert res.exit_code == 0, res.output
    assert throttled > 0 and "rate-limited, waiting" in res.stdout
    assert "Rate limits:" in res.stdout and f"qp: {throttled} × 429 received" in res.stdout, res.stdout[-400:]
