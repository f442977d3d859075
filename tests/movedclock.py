"""keyform's clock (`operations.Options.clock`) and the emulated APIs' (the emulator's
`clock_offset` knob) moved together, never a sleep; and the plan and apply of a project under it.
For tests of a key's life over days and months (test_lifecycle_months, test_expires_at_passed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from harness.project import Project
from keyform import operations
from keyform.durations import utcnow
from keyform.emulator.client import EmulatorControl
from keyform.plan import Plan


class MovedClock:
    """keyform's clock at `base + offset`, and the emulator's moved to it (its clock is the
    machine's plus its `clock_offset`)."""

    def __init__(self, control: EmulatorControl, base: datetime | None = None) -> None:
        self.control = control
        self.base = base or utcnow().replace(microsecond=0)
        self.offset = timedelta(0)
        self.move()

    def __call__(self) -> datetime:
        return self.base + self.offset

    def move(self, **delta: float) -> None:
        """Both clocks to `base + delta`."""
        self.offset = timedelta(**delta)
        self.control.faults(clock_offset=(self() - utcnow()).total_seconds())


def options(project: Project, clock: MovedClock, **kw: Any) -> operations.Options:
    """The project's options under `clock` (`kw`: other `Options` fields, a `provider_factory`)."""
    return operations.Options(files=[str(project.manifest)], clock=clock, env=project.env, **kw)


def plan_only(project: Project, clock: MovedClock) -> Plan:
    with operations.session(options(project, clock), "plan") as sess:
        return operations.plan(sess)


def converge(project: Project, clock: MovedClock) -> Plan:
    """Plan and apply; the apply must succeed."""
    with operations.session(options(project, clock), "apply") as sess:
        plan = operations.plan(sess)
        report = operations.apply(sess, plan)
        assert report.ok, report.failed
        return plan
