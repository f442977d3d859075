"""Found by an adversarial pass (stop 36): an error-severity `max_idle` policy (docs/lifecycle.md's example message: "delete keys
nobody uses") refuses the very plan that deletes the idle key: `destroy --target IDLE` exits 1 with
the violation, so the key can only be removed by first editing it out of the manifests."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform import cli
from keyform.durations import format_time
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from tests.test_lifecycle import Clock

KEYS = "ci-bot:\n  provider: qp\nweb:\n  provider: qp\n"
POLICY = ("policies:\n  no-idle:\n    message: delete keys nobody uses\n"
          "    match: {addresses: [ci-bot]}\n    require: {max_idle: 90d}\n")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    options = cli._options
    monkeypatch.setattr(cli, "_options", lambda *a, **k: dataclasses.replace(options(*a, **k), clock=moved))
    return moved


def test_destroying_the_idle_key_is_not_blocked_by_max_idle(tmp_path: Path, emulator: Emulator,
                                                            emu_control: EmulatorControl, clock: Clock) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS, extra=POLICY)
    assert project.run("apply", "--auto-approve").exit_code == 0
    ids = {a: k["remote_id"] for a, k in project.state()["keys"].items()}
    emu_control.use_questra(ORG, ids["ci-bot"], format_time(clock.base + timedelta(hours=1)))
    clock.offset = timedelta(days=120)
    assert project.run("plan").exit_code == 1  # the violation is reported: fine
    res = project.run("destroy", "--target", "ci-bot", "--auto-approve")
    assert res.exit_code == 0, res.tail()  # deleting the idle key is what the policy asks for
    revoked = {k["id"]: k["revoked"] for k in emu_control.questra_keys(ORG)}
    assert revoked[ids["ci-bot"]]
