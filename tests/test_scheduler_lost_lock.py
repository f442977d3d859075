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
    ctx = SimpleNamespace(parallelism=1, on_event=events.append, lock=threading.Lock(), state=State.new(),
                          journal=SimpleNamespace(failure=None), revoke_old_asked=())
    report = ApplyReport()
    changes = [change("a"), change("b"), change("c"), change("d", "c"), change("e", "d")]
    # parallelism 1: one change at a time, "a" first; it loses the lock, so b..e never start
    applier._run(changes, ctx, report)  # type: ignore[arg-type]
    assert report.lost_lock is not None
    assert [c.address for c, _ in report.failed] == ["a"]
    assert sorted(c.address for c, _ in report.skipped) == ["b", "c", "d", "e"]
    assert not [e for e in events if e.kind == "start" and e.change.address != "a"]


class _Store:
    """A store whose lock was taken away while the apply ran: saving the state (or, with
    `save_ok`, compacting the journal) hits the fence."""

    def __init__(self, records: list[Any], save_ok: bool = False) -> None:
        self.records = records
        self.save_ok = save_ok

    def read_journal(self) -> list[Any]:
        return self.records

    def save(self, state: State) -> None:
        if not self.save_ok:
            raise LockLostError("the state lock was lost")

    def replace_journal(self, records: list[Any]) -> None:
        raise LockLostError("the state lock was lost")

    def describe(self) -> str:
        return "keyform.state.json"


def test_an_apply_that_raised_and_lost_its_lock_says_how_many_changes_finished() -> None:
    """An apply that ended with an exception has no report: the lost-lock message said "0 change(s)
    had finished" whatever had finished. It now says what the run's journal appended (counted as
    it went: the journal file may already be another command's, which may have recovered it)."""
    from keyform.journal import Begin, Done
    from keyform.operations import _finish

    state = State.new()
    sess = SimpleNamespace(store=_Store([Begin.of(state), Done("r1.1")]), state=state)
    with pytest.raises(LockLostError) as info:
        _finish(sess, SimpleNamespace(close=lambda: None), None, 2)  # type: ignore[arg-type]
    assert "stopped without saving the state: 2 change(s) had finished and the others failed" in str(info.value)
    # the state saved, then the lock lost while compacting the journal: not "without saving"
    sess = SimpleNamespace(store=_Store([Begin.of(state), Done("r1.1")], save_ok=True), state=state)
    with pytest.raises(LockLostError) as info:
        _finish(sess, SimpleNamespace(close=lambda: None), None, 1)  # type: ignore[arg-type]
    assert "The state was saved (1 change(s) had finished); the apply journal was not compacted" in str(info.value)
    assert "without saving" not in str(info.value)


def test_the_journal_counts_the_done_records_it_appends() -> None:
    from keyform.journal import Journal

    appended: list[Any] = []
    journal = Journal(SimpleNamespace(append=appended.append), "r1")
    seq = journal.intent("create", "a", "qp")
    journal.created(seq, "ak_1")
    journal.done(seq)
    journal.done(journal.intent("create", "b", "qp"))
    assert journal.finished == 2 and [r.op for r in appended].count("done") == 2
