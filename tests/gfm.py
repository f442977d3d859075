"""What GitHub's Markdown (GFM) makes of keyform's Markdown, as far as the output-safety tests need:
which text is inside a code span (shown literally: no link, autolink, emphasis, HTML, @mention)
and which is not. The rules followed are CommonMark's code spans and GFM's tables (a row is split on
every unescaped `|` first, then `\\|` becomes `|`, then the cell's spans are parsed). Fenced code
blocks are left out: their lines are literal too.
"""

from __future__ import annotations

import re

_RUN = re.compile("`+")
_PIPE = re.compile(r"(?<!\\)\|")


def _spans(text: str) -> tuple[str, list[str]]:
    """`text` without its code spans, and what each code span shows."""
    outside: list[str] = []
    shown: list[str] = []
    pos = 0
    while (opening := _RUN.search(text, pos)) is not None:
        n = len(opening[0])
        closing = next((m for m in _RUN.finditer(text, opening.end()) if len(m[0]) == n), None)
        if closing is None:  # no run of the same length: the backticks are literal
            outside.append(text[pos:opening.end()])
            pos = opening.end()
            continue
        outside.append(text[pos:opening.start()] + " ")
        body = text[opening.end():closing.start()]
        if len(body) >= 2 and body[0] == body[-1] == " " and body.strip(" "):
            body = body[1:-1]
        shown.append(body)
        pos = closing.end()
    outside.append(text[pos:])
    return "".join(outside), shown


def split(md: str) -> tuple[str, list[str]]:
    """The document's text outside code spans and code blocks, and what every code span shows."""
    outside: list[str] = []
    shown: list[str] = []
    fenced = False
    for line in md.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        parts = ([cell.replace("\\|", "|") for cell in _PIPE.split(line)] if line.startswith("|") else [line])
        for part in parts:
            out, spans = _spans(part)
            outside.append(out)
            shown += spans
        outside.append("\n")
    return " ".join(outside), shown


def cells(md: str, containing: str) -> list[list[str]]:
    """Each table row holding `containing`, as its cells (GFM's split, `\\|` kept as written)."""
    return [[c.strip() for c in _PIPE.split(line)[1:-1]] for line in md.splitlines()
            if line.startswith("|") and containing in line]
