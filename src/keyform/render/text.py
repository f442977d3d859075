"""The text plan, for terminals: Terraform's layout — one block per change with its symbol, the
attributes before → after (lists and maps element by element), `# forces replacement`, the reasons,
and where each new secret goes. Pure: Plan in, str out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keyform.plan import Action, Change, Plan
from keyform.render.lines import change_lines, headline, remote_label, stale_clause
from keyform.render.safe import one_line

WARNING = "WARNING: "  # a plan note with this prefix is a warning (keyform.usage.WARNING)

COLOURS = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.REPLACE: "magenta", Action.DELETE: "red"}
MARK_COLOURS = {"+": "green", "-": "red", "~": "yellow"}
NO_CHANGES = "No changes. Your keys match the manifests."

Styler = Callable[..., str]


def _plain(text: str, **_: Any) -> str:
    return text


def _styler(color: bool) -> Styler:
    if not color:
        return _plain
    import click

    return click.style


def summary_line(plan: Plan) -> str:
    if not plan.has_changes and plan.unchecked:  # (not "no changes": that was not established)
        n = len(plan.unchecked)
        return (f"No changes found, but {n} key{'s' if n != 1 else ''} could not be checked: "
                f"{'their' if n != 1 else 'its'} inputs cannot be read here (see the notes).")
    if not plan.has_changes and plan.unsaved:  # (a pipeline that applies only on changes must apply)
        return ("No changes to keys, but the state does not record yet what an interrupted apply did (see the "
                "notes): `keyform apply` records it.")
    if not plan.has_changes:
        return NO_CHANGES
    c = plan.counts()
    return (f"Plan: {c['create']} to create, {c['update']} to update, {c['replace']} to replace, "
            f"{c['delete']} to delete{stale_clause(c['stale_copies'], 'to remove')}.")


def render_text(plan: Plan, *, color: bool = False) -> str:
    style = _styler(color)
    lines: list[str] = [style("Warning: ", fg="yellow", bold=True) + one_line(note[len(WARNING):])
                        if note.startswith(WARNING) else style("Note: ", bold=True) + one_line(note)
                        for note in plan.notes]
    if plan.notes:
        lines.append("")
    changes = plan.actionable
    if changes:
        lines += ["keyform will perform the following actions:", ""]
        for change in changes:
            lines.extend(render_change(change, style))
            lines.append("")
    lines.append(style(summary_line(plan), bold=True))
    return "\n".join(lines) + "\n"


def render_change(change: Change, style: Styler = _plain) -> list[str]:
    symbol = "-" if change.deposed else change.action.symbol
    ident = remote_label(change)
    out = [style(f"  # {headline(change)}", bold=True),
           style(f"{symbol:>3}", fg=COLOURS.get(change.action)) +
           f" key \"{change.address}\" ({change.provider}, {change.provider_type}){ident}"]
    for mark, text in change_lines(change):
        if mark == "#":
            indent = " " * (10 if text.startswith("  ") else 6)
            out.append(style(f"{indent}# {text.strip()}", dim=True))
        else:
            forces = text.endswith("# forces replacement")
            body = text[: -len("  # forces replacement")] if forces else text
            if body in ("]", "}"):
                out.append(" " * 8 + body)
                continue
            indent = " " * (10 if body.startswith("  ") else 6)  # list/map elements sit deeper
            line = indent + style(mark, fg=MARK_COLOURS.get(mark)) + f" {body.strip()}"
            out.append(line + (style("  # forces replacement", fg="red") if forces else ""))
    return out
