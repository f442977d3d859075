"""Renderers for `keyform report --idle/--unmanaged` (keyform.usage.UsageReport): text, Markdown,
JSON. Remote labels are untrusted (anyone with an org token can name a key): control characters
are escaped in text, and Markdown cells are code spans (`safe.md_text`), so a name cannot rewrite
the terminal or the PR comment. Table cells are cut at `safe.MAX_CELL` in text and Markdown (one
long name padded every row of the table); the import commands are not cut (they are run as
shown), and JSON keeps every value whole (a program reads it; it grows with the sum of the names,
not with the keys times the longest one). The Markdown stays under a comment's size
(`comment.Room`)."""

from __future__ import annotations

from collections.abc import Sequence

from keyform.durations import format_duration
from keyform.render import plural
from keyform.render.comment import MAX_NOTE, MAX_NOTES, Room
from keyform.render.safe import cut, json_doc, md_text, one_line
from keyform.usage import UnmanagedReport, UsageReport, UsageRow


def _safe(text: object) -> str:
    """One printable line (`safe.one_line`): control, bidi and zero-width characters shown escaped."""
    return "" if text is None else one_line(str(text))


def _cut(text: object) -> str:
    """A table cell: `_safe`, cut at `safe.MAX_CELL`."""
    return cut(_safe(text))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def fmt(cells: Sequence[str]) -> str:
        return indent + "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [fmt(header), *(fmt(r) for r in rows)]


def _idle(row: UsageRow) -> str:
    return format_duration(row.idle) if row.idle is not None else "-"


def _usage_cells(row: UsageRow) -> list[str]:
    address = f"{row.address} (deposed)" if row.deposed else row.address
    return [_cut(address), _cut(row.provider), _cut(row.remote_id), _cut(row.usage), _idle(row)]


_USAGE_HEADER = ("ADDRESS", "PROVIDER", "REMOTE ID", "LAST USED", "IDLE")


def render_text(report: UsageReport) -> str:
    out: list[str] = [f"Note: {_safe(n)}" for n in report.notes]
    if report.notes:
        out.append("")
    if report.idle_threshold is not None:
        limit = format_duration(report.idle_threshold)
        if report.idle:
            out.append(f"Idle keys (unused for {limit} or more): {len(report.idle)}")
            out += _table(_USAGE_HEADER, [_usage_cells(r) for r in report.idle])
        else:
            out.append(f"No key has been unused for {limit} or more.")
        if report.not_judged:
            out += ["", f"Not judged (usage not reported or unknown): {len(report.not_judged)}"]
            out += _table(_USAGE_HEADER[:4], [_usage_cells(r)[:4] for r in report.not_judged])
    elif report.unmanaged is None:
        out.append(f"Last use of {len(report.rows)} managed key{'s' if len(report.rows) != 1 else ''}:")
        if report.rows:
            out += _table(_USAGE_HEADER, [_usage_cells(r) for r in report.rows])
    if report.unmanaged is not None:
        if out:
            out.append("")
        out += _unmanaged_text(report.unmanaged)
    return "\n".join(out) + "\n"


def _unmanaged_text(u: UnmanagedReport) -> list[str]:
    out = [f"Note: {_safe(n)}" for n in u.notes]
    if not u.count:
        out.append("No unmanaged keys: every listed key is tracked by a state.")
    else:
        out.append(f"Unmanaged keys (no state tracks them), most likely forgotten first: {u.count}")
    for instance, rows in u.rows.items():
        out += ["", f"{_safe(instance)} ({_safe(rows[0].provider_type)}):"]
        out += _table(("REMOTE ID", "NAME", "CREATED", "LAST USED", "EXPIRES"),
                      [[_cut(r.remote_id), _cut(r.name), _cut(r.created_at or "-"), _cut(r.usage),
                        _cut(r.expires_at or "never")] for r in rows])
        out.append("  adopt one: declare it in the manifests (keys.ADDRESS with this provider), then run")
        out += [f"    {_safe(r.import_command)}" + ("   (declared; not in the state yet)" if r.declared else "")
                for r in rows]
    if u.skipped:
        out += ["", f"({u.skipped} revoked or expired key{'s' if u.skipped != 1 else ''} not shown: "
                    "they cannot authenticate)"]
    return out


def _cell(text: object) -> str:
    """A literal Markdown table cell (`safe.md_text`: a code span, no link, emphasis, HTML or
    @mention), cut at `safe.MAX_CELL`."""
    return md_text(_cut(text))


class Whole(str):
    """A cell shown whole, not cut: an import command is run as shown."""


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], room: Room,
              heading: Sequence[str] = ()) -> list[str]:
    """`heading` and the table, with as many rows as fit in `room` and the rest counted; nothing
    but the count when not even the heading and the header fit."""
    def cell(c: str) -> str:
        return md_text(c) if isinstance(c, Whole) else _cell(c)

    out, left = room.fit([[*heading, "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]])
    if left:
        return [_more(len(rows)), ""]
    shown, left = room.fit([["| " + " | ".join(cell(c) for c in r) + " |"] for r in rows])
    out += shown
    if left:
        out += ["", _more(left)]
    return [*out, ""]


def _more(n: int) -> str:
    return f"*…and {plural(n, 'more key')}, too many for one comment: the text or JSON output lists them all.*"


def _notes(notes: Sequence[str], room: Room) -> list[str]:
    shown, left = room.fit([[f"> **Note:** {md_text(cut(_safe(n), MAX_NOTE), table=False)}"] for n in notes],
                           MAX_NOTES)
    return shown + ([f"> *…and {plural(left, 'more note')}.*"] if left else [])


def render_markdown(report: UsageReport) -> str:
    room = Room()
    out: list[str] = room.take(["### keyform key usage", ""])
    out += _notes(report.notes, room)
    if report.notes:
        out.append("")
    if report.idle_threshold is not None:
        limit = format_duration(report.idle_threshold)
        out += room.take([f"**Idle keys (unused for {limit} or more): {len(report.idle)}**", ""])
        if report.idle:
            out += _md_table(_USAGE_HEADER, [_usage_cells(r) for r in report.idle], room)
        if report.not_judged:
            out += room.take([f"Not judged (usage not reported or unknown): {len(report.not_judged)}", ""])
            out += _md_table(_USAGE_HEADER[:4], [_usage_cells(r)[:4] for r in report.not_judged], room)
    elif report.unmanaged is None:
        out += _md_table(_USAGE_HEADER, [_usage_cells(r) for r in report.rows], room)
    u = report.unmanaged
    if u is not None:
        out += room.take([f"**Unmanaged keys (no state tracks them): {u.count}**", ""])
        out += _notes(u.notes, room)
        for instance, rows in u.rows.items():
            out += _md_table(("Remote id", "Name", "Created", "Last used", "Expires", "Adopt with"),
                             [[r.remote_id, r.name, r.created_at or "-", r.usage, r.expires_at or "never",
                               Whole(r.import_command)] for r in rows], room,
                             heading=(f"{_cell(instance)} ({_cell(rows[0].provider_type)}):", ""))
        if u.skipped:
            out += [f"{u.skipped} revoked or expired key(s) not shown.", ""]
    return "\n".join(out).rstrip() + "\n"


def render_json(report: UsageReport) -> str:
    return json_doc(report.to_json(), indent=2) + "\n"
