"""The apply scheduler after the state lock is lost: nothing more starts, and every change that can
no longer run is reported as skipped, dependants of a skipped change included (they once stayed
blocked, and the apply ended in a bogus "dependency deadlock" instead of the lost-lock message)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from keyform import applier
from keyform.applier import ApplyReport
from keyform.errors import LockLostError
from keyform.plan import Action, Change
from keyform.state import State


def change(address: str, *depends_on: str) -> Change:
    return Change(address=address, action=Action.CREATE, provider="qp", provider_type="questra",
                  depends_on=depends_on)


def test_a_lost_lock_skips_the_ready_changes_and_their_dependants(monkeypatch: pytest.MonkeyPatch) -> None:
    def execute(c: Change, ctx: Any) -> None:
        if c.address == "a":
            raise LockLostError("the state lock was lost")

    monkeypatch.setattr(applier, "_execute", execute)
    events: list[Any] = []
    ctx = SimpleNamespace(parallelism=1, on_event=events.append, lock=threading.Lock(), state=State.new())
    report = ApplyReport()
    changes = [change("a"), change("b"), change("c"), change("d", "c"), change("e", "d")]
    # parallelism 1: one change at a time, "a" first; it loses the lock, so b..e never start
    applier._run(changes, ctx, report)  # type: ignore[arg-type]
    assert report.lost_lock is not None
    assert [c.address for c, _ in report.failed] == ["a"]
    assert sorted(c.address for c, _ in report.skipped) == ["b", "c", "d", "e"]
    assert not [e for e in events if e.kind == "start" and e.change.address != "a"]


class _Store:
    """A store whose lock was taken away while the apply ran: saving the state hits the fence."""

    def __init__(self, records: list[Any]) -> None:
        self.records = records

    def read_journal(self) -> list[Any]:
        return self.records

    def save(self, state: State) -> None:
        raise LockLostError("the state lock was lost")

    def describe(self) -> str:
        return "keyform.state.json"


def test_an_apply_that_raised_and_lost_its_lock_counts_what_finished_from_its_journal() -> None:
    """An apply that ended with an exception has no report: the lost-lock message said "0 change(s)
    had finished" whatever the journal held. It now counts the `done` records of this apply (after
    its `begin`), not those of an earlier one."""
    from keyform.journal import Begin, Done, Intent
    from keyform.operations import _finish

    state = State.new()
    records = [Begin.of(state), Done("r0.1"),  # an earlier apply's leftovers, before this one's begin
               Begin.of(state), Intent("r1.1", "create", "a", "qp"), Done("r1.1"), Done("r1.2"), Intent("r1.3", "create", "c", "qp")]
    sess = SimpleNamespace(store=_Store(records), state=state)
    with pytest.raises(LockLostError) as info:
        _finish(sess, SimpleNamespace(close=lambda: None), None)  # type: ignore[arg-type]
    assert "2 change(s) had finished and the others failed or were not started" in str(info.value)
    assert "recovers it" in str(info.value)
