"""The cyclic garbage collector kept off keyform's bulk data.

Loading manifests, the state and the remote listings, and planning over them, allocates tens of
container objects per key (dicts, lists, records), all long-lived or freed by reference counting,
none in reference cycles (measured: a whole 10,000-key plan leaves ~500 objects of cyclic garbage).
The collector would scan them for nothing: each time 100,000 more are alive
(`cli._fewer_gc_passes`), and at the first allocation after a pause if they were merely allocated
with the collector off (allocations still count): ~45 ms of a 10,000-key plan's CPU.

`paused()` turns the collector off for such a phase and back on after (if it was on). In the
`keyform` process (`cli.console` calls `freeze_after_pauses`), a pause ends with `gc.freeze()`:
what the phase built moves out of the collector's reach in O(1), never scanned again; reference
counting still frees it. In-process callers (tests, a library user) keep a normal heap: there a
pause only defers the collector. A pause is never held across the apply's remote calls, whose
error paths can make cycles (an exception's traceback and its frames) in numbers that grow with
the run.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_freeze = False


def freeze_after_pauses() -> None:
    """From now on, in this process, each pause ends by freezing the heap (see the module)."""
    global _freeze
    _freeze = True


@contextmanager
def paused() -> Iterator[None]:
    """The cyclic collector off for the block (nesting is fine: only the outermost turns it back on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if _freeze:
                gc.freeze()
            gc.enable()
