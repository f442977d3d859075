"""The Markdown plan, for a pull-request comment: a summary line, a table of changes, and a
collapsible `diff` block per change. Large plans are summarised rather than flooding the page:
the table and the details are capped, and the rest is counted."""

from __future__ import annotations

from keyform.plan import Action, Change, Plan
from keyform.render.graph import markdown_section
from keyform.render.lines import change_lines, remote_label, verb
from keyform.render.safe import md_text, one_line
from keyform.render.text import WARNING, summary_line

ICONS = {Action.CREATE: "➕", Action.UPDATE: "🔧", Action.REPLACE: "♻️", Action.DELETE: "➖"}
DIFF_MARK = {"+": "+", "-": "-", "~": "!", " ": " ", "#": "#"}
HEADER_MARK = {Action.CREATE: "+", Action.UPDATE: "!", Action.REPLACE: "!", Action.DELETE: "-", Action.NOOP: " "}
MAX_TABLE_ROWS = 100
MAX_DETAILS = 40


def _action_label(change: Change) -> str:
    if change.orphan:
        return "revoke (orphan)"
    if change.stale:
        return "remove (stale copy)"
    return "revoke (deposed)" if change.deposed else change.action.value


def render_markdown(plan: Plan, *, title: str = "keyform plan") -> str:
    changes = plan.actionable
    out = [f"### {title}", "", f"**{summary_line(plan)}**", ""]
    for note in plan.notes:
        out.append(f"> **Warning:** {md_text(note[len(WARNING):], table=False)}" if note.startswith(WARNING)
                   else f"> **Note:** {md_text(note, table=False)}")
    if plan.notes:
        out.append("")
    if not changes:
        return "\n".join(out).rstrip() + "\n"

    out += ["| | Address | Action | Why |", "|---|---|---|---|"]
    for change in changes[:MAX_TABLE_ROWS]:
        out.append(f"| {ICONS.get(change.action, '')} | {md_text(change.key)} | {_action_label(change)} | "
                   f"{md_text('; '.join(change.reasons))} |")
    if len(changes) > MAX_TABLE_ROWS:
        rest = changes[MAX_TABLE_ROWS:]
        counts = _count(rest)
        out.append(f"| | *…and {len(rest)} more* | {counts} | |")
    out.append("")
    out += markdown_section(plan)  # a Mermaid graph, only when a change cascades through a dependency

    for change in changes[:MAX_DETAILS]:
        out.append(f"<details><summary><code>{_html(one_line(change.key))}</code> {verb(change)}</summary>")
        out += ["", "```diff"]
        out.append(f"{HEADER_MARK[change.action]} key \"{change.address}\" "
                   f"({change.provider}, {change.provider_type})" +
                   remote_label(change))
        for mark, text in change_lines(change):
            out.append(f"{DIFF_MARK[mark]}   {text}")
        out += ["```", "", "</details>"]
    if len(changes) > MAX_DETAILS:
        out += ["", f"*Details of the other {len(changes) - MAX_DETAILS} changes are omitted here; "
                    "run `keyform plan` or read the JSON plan for all of them.*"]
    return "\n".join(out).rstrip() + "\n"


def _count(changes: list[Change]) -> str:
    counts: dict[str, int] = {}
    for c in changes:
        label = "remove (stale copy)" if c.stale else c.action.value
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
