"""The text plan, for terminals: Terraform's layout — one block per change with its symbol, the
attributes before → after (lists and maps element by element), `# forces replacement`, the reasons,
and where each new secret goes. Pure: Plan in, str out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from keyform.plan import Action, AttrChange, Change, Plan

HEADLINE = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in place",
    Action.REPLACE: "must be replaced",
    Action.DELETE: "will be deleted",
}
COLOURS = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.REPLACE: "magenta", Action.DELETE: "red"}
NO_CHANGES = "No changes. Your keys match the manifests."

Styler = Callable[..., str]


def _plain(text: str, **_: Any) -> str:
    return text


def _styler(color: bool) -> Styler:
    if not color:
        return _plain
    import click

    return click.style


def fmt_value(value: Any) -> str:
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def summary_line(plan: Plan) -> str:
    if not plan.has_changes:
        return NO_CHANGES
    c = plan.counts()
    return (f"Plan: {c['create']} to create, {c['update']} to update, {c['replace']} to replace, "
            f"{c['delete']} to delete.")


def render_text(plan: Plan, *, color: bool = False) -> str:
    style = _styler(color)
    lines: list[str] = []
    for note in plan.notes:
        lines.append(style("Note: ", bold=True) + note)
    if plan.notes:
        lines.append("")
    changes = plan.actionable
    if changes:
        lines.append("keyform will perform the following actions:")
        lines.append("")
        for change in changes:
            lines.extend(render_change(change, style))
            lines.append("")
    lines.append(style(summary_line(plan), bold=True))
    return "\n".join(lines) + "\n"


def render_change(change: Change, style: Styler = _plain) -> list[str]:
    colour = COLOURS.get(change.action)
    label = change.address + (f" (deposed {change.remote_id})" if change.deposed else "")
    headline = HEADLINE.get(change.action, "")
    if change.deposed:
        headline = "will be revoked"
    out = [style(f"  # {label} {headline}", bold=True)]
    ident = f" [id={change.remote_id}]" if change.remote_id else ""
    out.append(style(f"{change.action.symbol:>3}", fg=colour) + f" key \"{change.address}\" "
               f"({change.provider}, {change.provider_type}){ident}")
    for attr in change.attrs:
        out.extend(_attr_lines(attr, change.action, style))
    if change.sink and change.action in (Action.CREATE, Action.REPLACE):
        out.append(style("      +", fg="green") + f" secret = (sensitive → sink {change.sink})")
    elif change.sink and change.action is Action.DELETE and not change.deposed:
        out.append(style("      -", fg="red") + f" secret = (sink entry {change.sink} is removed)")
    for reason in change.reasons:
        out.append(style(f"      # {reason}", dim=True))
    return out


def _attr_lines(attr: AttrChange, action: Action, style: Styler) -> list[str]:
    forces = style("  # forces replacement", fg="red") if attr.forces_replacement and action is Action.REPLACE else ""
    if attr.sensitive:
        after = f"(sensitive: {attr.after})" if attr.after else "null"
        before = attr.before if attr.before else None
        if before is None:
            return [style("      +", fg="green") + f" {attr.name} = {after}{forces}"]
        return [style("      ~", fg="yellow") + f" {attr.name} = (sensitive) → {after}{forces}"]
    if attr.before is None and action in (Action.CREATE, Action.REPLACE, Action.UPDATE):
        return [style("      +", fg="green") + f" {attr.name} = {fmt_value(attr.after)}{forces}"]
    if isinstance(attr.before, dict) and isinstance(attr.after, dict):
        return [style("      ~", fg="yellow") + f" {attr.name} = {{{forces}",
                *_map_lines(attr.before, attr.after, style), "        }"]
    if isinstance(attr.before, list) and isinstance(attr.after, list):
        return [style("      ~", fg="yellow") + f" {attr.name} = [{forces}",
                *_list_lines(attr.before, attr.after, style), "        ]"]
    change = f"{fmt_value(attr.before)} → {fmt_value(attr.after)}"
    return [style("      ~", fg="yellow") + f" {attr.name} = {change}{forces}"]


def _map_lines(before: dict[str, Any], after: dict[str, Any], style: Styler) -> list[str]:
    out = []
    for k in sorted(set(before) | set(after)):
        if k not in after:
            out.append(style("          -", fg="red") + f" {fmt_value(k)} = {fmt_value(before[k])}")
        elif k not in before:
            out.append(style("          +", fg="green") + f" {fmt_value(k)} = {fmt_value(after[k])}")
        elif before[k] != after[k]:
            out.append(style("          ~", fg="yellow") +
                       f" {fmt_value(k)} = {fmt_value(before[k])} → {fmt_value(after[k])}")
    return out


def _list_lines(before: list[Any], after: list[Any], style: Styler) -> list[str]:
    out = []
    for item in before:
        if item not in after:
            out.append(style("          -", fg="red") + f" {fmt_value(item)}")
    for item in after:
        if item in before:
            out.append(f"            {fmt_value(item)}")
        else:
            out.append(style("          +", fg="green") + f" {fmt_value(item)}")
    return out
