"""A second Ctrl-C may land on any bytecode of the scheduling loop: every change that started is
then either ended (its `done`/`failed` callback ran) or named by `Abandon.in_flight`, never neither.
One landing between `running.pop(fut)` and that change's callback left the change unreported and
unlisted: the view said nothing of a create that may have made a key. The interrupt is injected
deterministically, at each opcode of `Scheduler.run` in turn (a trace function calling the real
signal handler, `applier._Interrupts.handle`), not by timing a signal."""

from __future__ import annotations

import dis
import sys
import threading
from types import FrameType
from typing import Any

from keyform import scheduler
from keyform.applier import _Interrupts
from keyform.plan import Action, Change
from keyform.scheduler import Abandon, Callbacks, Scheduler

NOP = dis.opmap["NOP"]


def _changes() -> list[Change]:
    return [Change(address=a, action=Action.CREATE, provider="qp", provider_type="questra", depends_on=deps)
            for a, deps in (("a", ()), ("b", ()), ("c", ("a",)))]


def _trial(at: int | None) -> tuple[int, set[str], set[str], list[str] | None]:
    """Run three changes, the second Ctrl-C at the `at`-th opcode of `run` (None: never). Returns the
    opcodes seen, the keys started, the keys ended and the in-flight keys `Abandon` named (None: no
    Abandon)."""
    started: set[str] = set()
    ended: set[str] = set()
    interrupts = _Interrupts(count=1)  # the first Ctrl-C came before: the next one abandons
    seen = 0

    def execute(change: Change) -> None:
        if change.key == "b":  # one that fails, one that finishes, one after its dependency
            raise RuntimeError("boom")

    callbacks = Callbacks(start=lambda c: started.add(c.key), done=lambda c, e, r: ended.add(c.key),
                          failed=lambda c, exc, e: ended.add(c.key), skipped=lambda c, why: ended.add(c.key))
    code = Scheduler.run.__code__

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal seen
        # (a NOP, `try:`, is covered by no handler: an exception raised on it by a trace function escapes
        # the frame's own `try`; no signal handler runs there)
        if event == "opcode" and frame.f_code.co_code[frame.f_lasti] != NOP:
            seen += 1
            if seen == at:
                interrupts.handle(2, frame)  # the real handler, as the signal would call it here
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code is code:
            frame.f_trace_opcodes = True
            return local
        return None

    run = Scheduler(_changes(), execute, 2, callbacks)
    in_flight = None
    sys.settrace(tracer)
    try:
        run.run()
    except Abandon as exc:
        in_flight = [c.key for c in exc.in_flight]
    finally:
        sys.settrace(None)
    return seen, started, ended, in_flight


def test_a_second_ctrl_c_on_any_opcode_leaves_every_started_change_ended_or_in_flight() -> None:
    assert threading.current_thread() is threading.main_thread()
    total, started, ended, in_flight = _trial(None)
    assert in_flight is None and started == ended == {"a", "b", "c"}
    assert total > 50
    lost = []
    for at in range(1, total + 1):
        _, started, ended, in_flight = _trial(at)
        if in_flight is None:  # after the loop: nothing was in flight
            in_flight = []
        neither = started - ended - set(in_flight)
        both = (started & ended) & set(in_flight)
        if neither or both:
            lost.append((at, sorted(neither), sorted(both)))
    assert not lost, f"(opcode, started but neither ended nor in flight, both): {lost}"
    assert not scheduler._HANDOFF.depth and not scheduler._HANDOFF.pending
