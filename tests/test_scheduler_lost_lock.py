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
