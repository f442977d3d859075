"""What an interrupted apply left to do, as plain data for the planner (no I/O here).

Recovery (`keyform.recovery.assess`) reads the journal and lists the remote keys; the planner turns
these records into changes of their own (`- ak_… (orphan of an interrupted create of ci-bot) will
be revoked`) and notes, and `apply` carries them out. `plan` never acts on them.
"""

from __future__ import annotations

from keyform.model import SinkTarget
from keyform.records import record


@record
class Orphan:
    """A remote key that keyform provably created and never recorded: `apply` revokes it.

    Proven either by the remote id the create's reply carried (journaled `created`), or by being
    the only key with the create's attributes made inside its time window that no state tracks, or
    by an id whose fingerprint the journal recorded because the id holds a secret (`withheld`).

    A `withheld` orphan's `remote_id` is for the revoke call alone: the plan, the journal, the
    apply's output and every message name it by `shown_id`, a placeholder."""

    address: str  # the key whose create was interrupted
    provider: str
    provider_type: str
    remote_id: str
    seq: str  # the journal intent it resolves
    evidence: str  # how it was identified, for the plan
    entry: SinkTarget | None = None  # the sink entry the interrupted create may have written its secret to
    withheld: bool = False  # its id holds a secret: never shown, journaled or recorded

    @property
    def shown_id(self) -> str:
        """The id the plan and journal name this orphan by: its own, or a placeholder (`withheld_id`)."""
        return withheld_id(self.seq) if self.withheld else self.remote_id


def withheld_id(seq: str) -> str:
    """What stands for the id of a key that holds a secret, the orphan of the interrupted create
    `seq` (one placeholder per create: a plan's changes of two such orphans stay two)."""
    return f"<id withheld: it holds a secret; create {seq}>"


@record
class Uncertain:
    """An interrupted create whose reply was lost and whose window holds several matching keys
    (or none it can tell apart): keyform revokes nothing and names the candidates."""

    address: str
    provider: str
    seq: str
    candidates: tuple[str, ...]
    window: str  # `2026-12-02T19:00:00Z … 2026-12-02T19:10:05Z`

    def advice(self) -> str:
        ids = [_printable(c) for c in self.candidates]  # ids come from the provider: no control characters
        imports = "; ".join(f"`keyform import {self.address} {c}`" for c in ids)
        return (f"{self.address}: a create whose reply was lost may have left one of "
                f"{', '.join(ids)} (untracked keys with its attributes created {self.window}); "
                f"keyform cannot tell which, if any, is its own, so it revokes none. To adopt yours: "
                f"{imports}. Keys of other workspaces need nothing")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() and not c.isspace() else "?" for c in text)[:200]
