"""The cyclic garbage collector kept off keyform's bulk data.

Loading manifests, the state and the remote listings, and planning over them, allocates tens of
container objects per key (dicts, lists, records), all long-lived or freed by reference counting,
none in reference cycles (measured: a whole 10,000-key plan leaves ~500 objects of cyclic garbage).
The collector would scan them for nothing: each time 100,000 more are alive
(`cli._fewer_gc_passes`), and at the first allocation after a pause if they were merely allocated
with the collector off (allocations still count): ~45 ms of a 10,000-key plan's CPU.

`paused()` turns the collector off for such a phase and back on after (if it was on when the first
of overlapping pauses began: a depth count under a lock, so pauses in several threads never leave it
off). In the `keyform` process (`cli.console` calls `freeze_after_pauses`), the last pause to end
calls `gc.freeze()` first: what the phase built moves out of the collector's reach in O(1), never
scanned again; reference counting still frees it. In-process callers (tests, a library user) keep a
normal heap: there a pause only defers the collector.

A pause covers bounded work only. The plan's refresh and the recovery's listings make remote calls
inside one (a few per provider instance, retried within their deadline): measured, 1,000 retried
and 200 failed calls with the collector off left no cyclic garbage. It is never held across the
apply's changes (their number grows with the run, and so would whatever their error paths leave).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_freeze = False
_lock = threading.Lock()
_depth = 0  # pauses in progress, in any thread
_restore = False  # the collector was on when the outermost of them began


def freeze_after_pauses() -> None:
    """From now on, in this process, each pause ends by freezing the heap (see the module)."""
    global _freeze
    _freeze = True


@contextmanager
def paused() -> Iterator[None]:
    """The cyclic collector off for the block (nested or overlapping pauses: the last to end turns
    it back on, if it was on when the first began)."""
    global _depth, _restore
    with _lock:
        if _depth == 0:
            _restore = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _restore:
                if _freeze:
                    gc.freeze()
                gc.enable()
