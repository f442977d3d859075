"""The Markdown plan, for a pull-request comment: a summary line, a table of changes, and a
collapsible `diff` block per change. Large plans are summarised rather than flooding the page:
the table and the details are capped, each list or map diff shows at most MAX_ELEMENTS elements,
the whole comment stays under GitHub's limit (`comment.Room`), and the rest is counted. The text
plan (`keyform plan`, `keyform show PLANFILE`) is never cut: it is where the counted rest is read."""

from __future__ import annotations

from keyform.plan import Action, Change, Plan
from keyform.render import plural
from keyform.render.comment import MAX_NOTE, MAX_NOTES, Room
from keyform.render.graph import markdown_section
from keyform.render.lines import change_lines, remote_label, verb
from keyform.render.safe import cut, md_text, one_line
from keyform.render.text import WARNING, summary_line

ICONS = {Action.CREATE: "➕", Action.UPDATE: "🔧", Action.REPLACE: "♻️", Action.DELETE: "➖"}
DIFF_MARK = {"+": "+", "-": "-", "~": "!", " ": " ", "#": "#"}
HEADER_MARK = {Action.CREATE: "+", Action.UPDATE: "!", Action.REPLACE: "!", Action.DELETE: "-", Action.NOOP: " "}
MAX_TABLE_ROWS = 100
MAX_DETAILS = 40
MAX_ELEMENTS = 30
# The table's "Why" (the reasons, one of which may be a server's error): the diff below repeats them.
MAX_WHY = 300
MAX_KEY = 400  # an address and, for a deposed key or an orphan, its remote id
FULL_PLAN = "`keyform plan`, or `keyform show PLANFILE` on the saved plan (the CI artifact), shows the whole plan"


def _action_label(change: Change) -> str:
    if change.orphan:
        return "revoke (orphan)"
    if change.stale:
        return "remove (stale copy)"
    return "revoke (deposed)" if change.deposed else change.action.value


def _note(note: str) -> list[str]:
    if note.startswith(WARNING):
        return [f"> **Warning:** {md_text(cut(one_line(note[len(WARNING):]), MAX_NOTE), table=False)}"]
    return [f"> **Note:** {md_text(cut(one_line(note), MAX_NOTE), table=False)}"]


def _row(change: Change) -> list[str]:
    # the key (nearly) whole: two long addresses cut at 60 read the same, and the table could not
    # say which key a delete was for
    key = md_text(cut(one_line(change.key), MAX_KEY))
    return [f"| {ICONS.get(change.action, '')} | {key} | {_action_label(change)} | "
            f"{md_text(cut(one_line('; '.join(change.reasons)), MAX_WHY))} |"]


def _details(change: Change) -> list[str]:
    out = [f"<details><summary><code>{_html(one_line(change.key))}</code> {verb(change)}</summary>", "", "```diff",
           f"{HEADER_MARK[change.action]} key \"{change.address}\" ({change.provider}, {change.provider_type})"
           + remote_label(change)]
    out += [f"{DIFF_MARK[mark]}   {text}" for mark, text in change_lines(change, MAX_ELEMENTS)]
    return [*out, "```", "", "</details>"]


# The order a capped comment shows changes in: what revokes a key first, a new key last. In
# address order, a pull request adding 120 keys pushed a delete and an update of a credential's
# hosts out of the table and the details, leaving only their count.
_WEIGHT = {Action.DELETE: 0, Action.REPLACE: 1, Action.UPDATE: 2, Action.CREATE: 3}


def render_markdown(plan: Plan, *, title: str = "keyform plan") -> str:
    changes = sorted(plan.actionable, key=lambda c: _WEIGHT.get(c.action, 4))  # (stable: by address within)
    room = Room()
    out = room.take([f"### {title}", "", f"**{summary_line(plan)}**", ""])
    notes, left = room.fit([_note(n) for n in plan.notes], MAX_NOTES)
    out += notes + ([f"> *…and {plural(left, 'more note')}: {FULL_PLAN}.*"] if left else [])
    if plan.notes:
        out.append("")
    if not changes:
        return "\n".join(out).rstrip() + "\n"

    out += room.take(["| | Address | Action | Why |", "|---|---|---|---|"])
    rows, _ = room.fit([_row(c) for c in changes[:MAX_TABLE_ROWS]])
    out += rows
    if len(rows) < len(changes):
        rest = changes[len(rows):]
        out.append(f"| | *…and {len(rest)} more* | {_count(rest)} | |")
    out.append("")
    graph, left = room.fit([markdown_section(plan)])  # a Mermaid graph, only when a change cascades
    out += graph + (["*The dependency cascade is too large for this comment: `keyform graph --plan PLANFILE` "
                     "draws it.*", ""] if left else [])

    first = changes[:MAX_DETAILS]
    details, left = room.fit([_details(c) for c in first])
    out += details
    shown = len(first) - left
    if shown < len(changes):
        out += ["", f"*Details of the other {len(changes) - shown} changes are omitted here; {FULL_PLAN}.*"]
    return "\n".join(out).rstrip() + "\n"


def _count(changes: list[Change]) -> str:
    counts: dict[str, int] = {}
    for c in changes:
        label = "remove (stale copy)" if c.stale else c.action.value
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
