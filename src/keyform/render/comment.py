"""A size bound shared by every Markdown output (the plan, the key report, the usage report).

They are posted as pull-request comments and issues, and GitHub refuses a body over 65,536
characters: a plan with one list of 3,000 hosts made a 252 KB comment, and the workflow's comment
step failed, so the reviewer saw no plan at all. Each renderer builds its sections from blocks (a
note, a table row, one change's diff) and takes them in order while they fit, then counts the
rest and points at the complete output (the text plan, `keyform report`), which is never cut.
"""

from __future__ import annotations

from collections.abc import Sequence

GITHUB_LIMIT = 65_536
# What keyform writes at most: room under GitHub's limit for a workflow's own heading or footer.
MAX_MARKDOWN = 60_000
# A note (a server's error message, a policy's text) in Markdown: a long one still leaves room.
MAX_NOTE = 1_000
# All the notes together: thousands of policy warnings still leave room for what changes.
MAX_NOTES = MAX_MARKDOWN // 4
# Kept back for the lines that count what was left out; each is a short sentence of keyform's.
_TAIL = 2_000


class Room:
    """The characters a Markdown document may still take. Blocks go in whole or not at all, and a
    section stops at its first block that does not fit: what is left out is always its tail (the
    least urgent keys, the last changes), so the count that replaces it says exactly what is
    missing."""

    def __init__(self, chars: int = MAX_MARKDOWN - _TAIL) -> None:
        self.left = chars

    def take(self, lines: Sequence[str]) -> list[str]:
        """`lines`, counted whether they fit or not: for the heading, which is always shown."""
        self.left -= _size(lines)
        return list(lines)

    def fit(self, blocks: Sequence[Sequence[str]], most: int | None = None) -> tuple[list[str], int]:
        """The lines of the leading blocks that fit, in `most` characters at most, and how many
        blocks were left out."""
        out: list[str] = []
        budget = self.left if most is None else min(most, self.left)
        for i, block in enumerate(blocks):
            size = _size(block)
            if size > budget:
                return out, len(blocks) - i
            budget -= size
            self.left -= size
            out += block
        return out, 0


def _size(lines: Sequence[str]) -> int:
    return sum(len(line) + 1 for line in lines)  # each line and its newline
