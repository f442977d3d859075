"""A retry's turn in a learned send rate, behind other calls' turns, under a short `deadline`.

Left open in the rate-limit code: with nothing configured, keyform learns the API's rate after its
first 429s, and --parallelism calls then queue for their turns in it. A first attempt's wait for
its turn was not charged to its deadline, but a retry's whole wait was: behind 30 queued calls at
~1.5/s its turn was 10-20 s away, past a 5 s deadline, and the call ended at once with `still 429
after 1 attempt within the call's 5s deadline`, although the API accepted calls at its rate all
along. Three of those in a row also stopped the instance for the run (the breaker). A retry is now
charged one interval of the rate at most (its own spacing); the turns queued ahead of it are
keyform's queue, not the API's answer. Real HTTP on 127.0.0.1 (the emulator's per-org limit)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.model import RateLimit
from keyform.providers.ratelimit import Limiter, NotAdmitted
from tests.test_ratelimit import FakeClock


class _Frozen(FakeClock):
    """A clock that a sleep does not move: turns taken one after another stay queued."""

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0


def test_a_retry_is_charged_its_own_interval_not_the_turns_queued_ahead_of_it() -> None:
    clock = _Frozen()
    lim = Limiter("qp", RateLimit(1.0), concurrency=16, clock=clock, sleep=clock.sleep)
    for _ in range(10):  # ten calls take the turns 100..109
        lim.before_attempt(timeout=2.0, first=True)
    ticket = lim.before_attempt(timeout=2.0)  # a retry: its turn (110) is 10 s away, 9 of them queue
    assert ticket.paced == 9.0
    with pytest.raises(NotAdmitted) as late:  # its own interval (1 s) is still past a 0.5 s deadline
        lim.before_attempt(timeout=0.5)
    assert (late.value.cause, late.value.wait) == ("rate", 11.0)


def test_creates_the_api_accepts_at_its_rate_do_not_fail_under_a_short_deadline(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(rate_limits={"org_e2e": 5.0})
    project = Project(tmp_path, emu.url)
    project.questra("".join(f"k{i:02d}:\n  provider: qp\n" for i in range(30)))
    project.manifest.write_text(project.manifest.read_text().replace(
        "    org_id: org_e2e\n", "    org_id: org_e2e\n    deadline: 2s\n"))
    started = time.monotonic()
    res = project.run("apply", "--auto-approve", "--parallelism", "32")
    took = time.monotonic() - started
    # old code: 'still 429 after 1 attempt within the call's 2s deadline', then the breaker
    assert res.exit_code == 0, res.output
    assert "Apply complete: 30 created" in res.stdout and "stopped sending" not in res.stdout
    with EmulatorControl(emu.url) as control:
        assert len(control.state()["questra"]["orgs"]["org_e2e"]) == 30
    assert took < 16, f"30 creates at the API's 5/s took {took:.1f}s"
