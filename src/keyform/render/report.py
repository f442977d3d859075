"""The report's four formats: a terminal table, a Markdown table (PR comments, issues), JSON
(`schemas/report.schema.json`) and CSV. Pure: Report in, str out.

Names and ids come from remote APIs, so every cell is made harmless for its format: control
characters (terminal escapes, newlines) are replaced in text and Markdown, `|` and HTML are
escaped in Markdown, and CSV cells that a spreadsheet would run as a formula are quoted with `'`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import chain

from keyform.durations import format_duration, maybe_time
from keyform.records import record
from keyform.render import plural
from keyform.render.comment import MAX_NOTE, MAX_NOTES, Room
from keyform.render.safe import MAX_CELL, blanked, cut, escaped, md_text
from keyform.report import ROW_FIELDS, Report, ReportRow, row_values


@record
class Column:
    title: str
    cell: Callable[[ReportRow, datetime | None], str]  # (row, the report's time) -> text


def _date(text: str | None) -> str:
    return text[:10] if text else "-"


def _age(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n}d"  # negative only when the key's creation time is ahead of this clock


def _relative(at: str | None, n: int | None, now: datetime | None, past: str) -> str:
    """` (in 23h)`, ` (30s ago)`, ` (now)`: how far `at` is from the report's time, in the largest
    whole unit (`format_duration`, as the plan's notes and `keyform usage` say it); `past` is the
    word after a past duration (`ago`, `overdue`). Whole days (`n`) when either time is unknown."""
    when = maybe_time(at) if now is not None else None
    if when is None or now is None:
        if n is None:
            return ""
        return f" (in {n}d)" if n >= 0 else f" ({-n}d {past})"
    delta = when - now
    if abs(delta) < timedelta(seconds=1):
        return " (now)"
    return f" (in {format_duration(delta)})" if delta > timedelta(0) else f" ({format_duration(delta)} {past})"


def _address(r: ReportRow, now: datetime | None) -> str:
    if r.kind == "deposed":
        return f"{r.address} (deposed)"
    return r.address if r.in_manifests else f"{r.address} (not in manifests)"


def _expires(r: ReportRow, now: datetime | None) -> str:
    if r.expires_at is None:
        return "never" if r.status != "not created" and r.kind == "key" else "-"
    return _date(r.expires_at) + _relative(r.expires_at, r.expires_in_days, now, "ago")


def _rotation(r: ReportRow, now: datetime | None) -> str:
    if r.rotation_due_at is None:
        return "-"
    when = _relative(r.rotation_due_at, r.rotation_due_in_days, now, "overdue")
    return f"{_date(r.rotation_due_at)}{when}: {r.rotation_rule}"


def _sink(r: ReportRow, now: datetime | None) -> str:
    return f"{r.sink}:{r.sink_entry}" if r.sink else "-"


COLUMNS: tuple[Column, ...] = (
    Column("ADDRESS", _address),
    Column("PROVIDER", lambda r, now: f"{r.provider} ({r.provider_type})"),
    Column("REMOTE ID", lambda r, now: r.remote_id or "-"),
    Column("NAME", lambda r, now: r.name or "-"),
    Column("CREATED", lambda r, now: _date(r.created_at)),
    Column("AGE", lambda r, now: _age(r.age_days)),
    Column("EXPIRES", _expires),
    Column("NEXT ROTATION", _rotation),
    Column("SINK", _sink),
    Column("LAST APPLIED", lambda r, now: _date(r.applied_at)),
    Column("STATUS", lambda r, now: r.status),
)


def _last_used(r: ReportRow, now: datetime | None) -> str:
    if r.last_used:
        return _date(r.last_used)
    return "never" if r.usage_reported else "not reported"


# Shown only when some listed key's provider reports usage (TextQL does not: its rows say so).
LAST_USED = Column("LAST USED", _last_used)


def _clean(text: str, limit: int | None = MAX_CELL) -> str:
    """One printable line: control, bidi and zero-width characters become `?` (`safe.blanked`), long
    cells are cut (`safe.cut`)."""
    return cut(blanked(text), limit)


def _columns(report: Report) -> tuple[Column, ...]:
    if any(r.usage_reported for r in report.rows):
        return (*COLUMNS[:-1], LAST_USED, COLUMNS[-1])
    return COLUMNS


def summary(report: Report, window: timedelta | None = None, now: datetime | None = None) -> str:
    keys = [r for r in report.rows if r.kind == "key"]
    deposed = len(report.rows) - len(keys)
    text = plural(len(keys), "key") + (f", {deposed} deposed" if deposed else "")
    if window is not None and now is not None:
        due = report.due_within(window, now)
        text += f"; {len(due)} due within {_window(window)}"
    return text + "."


def _window(window: timedelta) -> str:
    return format_duration(window)


def render_text(report: Report, window: timedelta | None = None, now: datetime | None = None) -> str:
    cols, at = _columns(report), maybe_time(report.generated_at)
    table = [[c.title for c in cols]] + [[_clean(c.cell(r, at)) for c in cols] for r in report.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    out = [f"Note: {_clean(n, None)}" for n in report.notes]
    if out:
        out.append("")
    for row in table:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    out += ["", _due_line(report, window, now) or summary(report)]
    return "\n".join(out) + "\n"


def _due_line(report: Report, window: timedelta | None, now: datetime | None,
              name: Callable[[str], str] = _clean) -> str:
    if window is None or now is None:
        return ""
    due = report.due_within(window, now)
    if not due:
        return f"{summary(report, window, now)} Nothing is due within {_window(window)}."
    names = ", ".join(name(r.address) for r in due[:20]) + (f" and {len(due) - 20} more" if len(due) > 20 else "")
    return f"{summary(report, window, now)} Due: {names}."


def _md(text: str, limit: int | None = MAX_CELL, *, table: bool = True) -> str:
    """A literal Markdown cell (`safe.md_text`: a code span, no link, emphasis, HTML or @mention), cut
    first."""
    return md_text(_clean(text, limit), table=table)


def render_markdown(report: Report, window: timedelta | None = None, now: datetime | None = None) -> str:
    """The most urgent keys first, as many as fit in a comment (`comment.Room`), the rest counted."""
    cols, at = _columns(report), maybe_time(report.generated_at)
    room = Room()
    due = _due_line(report, window, now, lambda a: _md(a, table=False)) or summary(report)
    out = room.take(["### keyform report", "", f"**{due}**", ""])
    notes, left = room.fit([[f"> **Note:** {_md(n, MAX_NOTE, table=False)}"] for n in report.notes], MAX_NOTES)
    out += notes + ([f"> *…and {plural(left, 'more note')}.*"] if left else []) + ([""] if report.notes else [])
    out += room.take(["| " + " | ".join(c.title.capitalize() for c in cols) + " |", "|" + "---|" * len(cols)])
    rows, left = room.fit([["| " + " | ".join(_md(c.cell(r, at)) for c in cols) + " |"] for r in report.rows])
    out += rows
    if left:
        out += ["", f"*…and {plural(left, 'more key')}, too many for one comment: `keyform report` "
                    "(or `--format csv`) lists every key.*"]
    return "\n".join(out) + "\n"


def render_json(report: Report, window: timedelta | None = None, now: datetime | None = None) -> str:
    """Indented at the top, one line per row: `indent=` would make json fall back to its
    pure-Python encoder for every row (a third of a 1,000-key report's time)."""
    doc = report.head_json(window=window, now=now)
    encode = json.JSONEncoder(ensure_ascii=False).encode  # what json.dumps(v, ensure_ascii=False) builds per call
    head = [f"  {json.dumps(k)}: {encode(v)}" for k, v in doc.items()]
    body = _json_rows(report.rows, encode)
    keys = f'  "keys": [\n{body}\n  ]' if report.rows else '  "keys": []'
    return escaped("{\n" + ",\n".join([*head, keys]) + "\n}\n")  # bidi and zero-width as \\u escapes


# Every value of every row encoded by one call, each after a NUL: a JSON text never holds a raw NUL
# (json escapes every control character, ensure_ascii or not), so the values split apart exactly.
_VALUES = json.JSONEncoder(ensure_ascii=False, separators=("\0", ": ")).encode
# one row's line, its keys in place, a `%s` for each encoded value
_ROW_LINE = "    {" + ", ".join(f"{json.dumps(k)}: %s" for k in ROW_FIELDS) + "}"


def _json_rows(rows: Sequence[ReportRow], encode: Callable[[object], str]) -> str:
    """The rows' lines of `render_json`, each as `encode(row.to_json())` writes it, made by C: the
    rows' values (scalars: text, whole numbers, booleans, null) encoded in one list, cut at the NULs
    and put into the lines' template (a call to json's encoder per row was most of a report's JSON:
    at 10,000 keys ~62 -> ~35 ms)."""
    values = _VALUES(list(chain.from_iterable(map(row_values, rows))))[1:-1].split("\0")
    if len(values) != len(rows) * len(ROW_FIELDS):  # a value not a scalar (none is): each row by itself
        return ",\n".join(f"    {encode(r.to_json())}" for r in rows)
    return ",\n".join([_ROW_LINE] * len(rows)) % tuple(values)


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = blanked(str(value))  # a terminal or a spreadsheet shows the file: no control, bidi or line break
    return "'" + text if text.startswith(_FORMULA) and not isinstance(value, int) else text


def render_csv(report: Report, window: timedelta | None = None, now: datetime | None = None) -> str:
    """One header line with the JSON field names, then one line per row (RFC 4180 quoting)."""
    import csv  # (only here: the other formats do without it and _csv)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ROW_FIELDS)
    for r in report.rows:
        writer.writerow([_csv_cell(getattr(r, name)) for name in ROW_FIELDS])
    return buf.getvalue()


RENDERERS: dict[str, Callable[[Report, timedelta | None, datetime | None], str]] = {
    "text": render_text, "markdown": render_markdown, "json": render_json, "csv": render_csv,
}
FORMATS: Sequence[str] = tuple(RENDERERS)
