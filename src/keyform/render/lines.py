"""A change as diff lines `(marker, text)`, shared by the text and Markdown renderers.

Markers: `+` added, `-` removed, `~` changed, ` ` unchanged context, `#` a comment (reason).
Lists and maps are diffed element by element with deepdiff (imported only when a plan actually
has a list or map that changed, so a no-change plan never pays for it).
"""

from __future__ import annotations

import json
from typing import Any

from keyform.plan import Action, AttrChange, Change
from keyform.render.safe import escaped, one_line

Line = tuple[str, str]

HEADLINE = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in place",
    Action.REPLACE: "must be replaced",
    Action.DELETE: "will be deleted",
}
FORCES = "  # forces replacement"


def fmt_value(value: Any) -> str:
    """A value as JSON (a string's quotes, newlines and controls escaped), with the bidi, zero-width
    and C1 characters JSON leaves raw escaped too, and cut at MAX_VALUE characters (a 70,000-character
    description made a pull-request comment too long to post)."""
    if value is None:
        return "null"
    text = escaped(json.dumps(value, ensure_ascii=False, sort_keys=True))
    if len(text) <= MAX_VALUE:
        return text
    # both ends kept: a host `<600 x>.evil.example` cut after 500 characters hid where it points
    return f"{text[:MAX_VALUE - TAIL]}…{text[-TAIL:]} ({len(text):,} characters)"


MAX_VALUE = 500
TAIL = 120  # of a value cut, the characters kept from its end


def verb(change: Change) -> str:
    """`will be created`, `must be replaced`, ... (`will be revoked` for a deposed key, `will be
    removed` for a stale copy of a secret)."""
    if change.stale:
        return "will be removed"
    return "will be revoked" if change.deposed else HEADLINE.get(change.action, "is unchanged")


def headline(change: Change) -> str:
    return f"{one_line(change.key)} {verb(change)}"


def remote_label(change: Change) -> str:
    """` [id=ak_1]`; for a key recreated because it vanished remotely, ` [was ak_1, deleted outside keyform]`."""
    if not change.remote_id:
        return ""
    if change.action is Action.CREATE:
        return f" [was {one_line(change.remote_id)}, deleted outside keyform]"
    return f" [id={one_line(change.remote_id)}]"


def change_lines(change: Change, max_elements: int | None = None) -> list[Line]:
    """The body of one change: attributes, where the secret goes, and the reasons. `max_elements`:
    at most that many elements of each list or map diff (`_bounded`); the text plan shows them all."""
    out: list[Line] = []
    for attr in change.attrs:
        out.extend(attr_lines(attr, change.action, max_elements))
    if change.sink and change.action in (Action.CREATE, Action.REPLACE):
        out.append(("+", f"secret = (sensitive → sink {change.sink})"))
    elif change.sink and change.action is Action.UPDATE:
        out.append(("~", f"secret = (sensitive → moves to sink {change.sink})"))
    elif change.sink and change.action is Action.DELETE and (not change.deposed or change.orphan):
        out.append(("-", f"secret = (sink entry {change.sink} is removed)"))
    out.extend(("#", reason) for reason in change.reasons)
    # each line on its own line, nothing that drives a terminal: an attribute name or a reason may
    # come from a plan file, a reason from a server (a deposed key's last_error)
    return [(mark, one_line(text)) for mark, text in out]


def attr_lines(attr: AttrChange, action: Action, max_elements: int | None = None) -> list[Line]:
    forces = FORCES if attr.forces_replacement and action is Action.REPLACE else ""
    if attr.sensitive:
        after = f"(sensitive: {attr.after})" if attr.after else "null"
        if not attr.before:
            return [("+", f"{attr.name} = {after}{forces}")]
        return [("~", f"{attr.name} = (sensitive) → {after}{forces}")]
    if attr.before is None or attr.after is None:
        mark, value = ("+", attr.after) if attr.before is None else ("-", attr.before)
        if isinstance(value, (dict, list)) and value:  # element by element, as a diff is: one value cut at
            # MAX_VALUE hid the 23rd host of a new credential's `hosts`, where its secret may be sent
            opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
            return [(mark, f"{attr.name} = {opening}{forces}"), *_bounded(_elements(value, mark), max_elements),
                    (mark, closing)]
        return [(mark, f"{attr.name} = {fmt_value(value)}{forces}")]
    if isinstance(attr.before, dict) and isinstance(attr.after, dict):
        return [("~", f"{attr.name} = {{{forces}"), *_bounded(_nested(attr.before, attr.after), max_elements),
                (" ", "}")]
    if isinstance(attr.before, list) and isinstance(attr.after, list):
        return [("~", f"{attr.name} = [{forces}"), *_bounded(_nested(attr.before, attr.after), max_elements),
                (" ", "]")]
    before, after = fmt_pair(attr.before, attr.after)
    return [("~", f"{attr.name} = {before} → {after}{forces}")]


def _elements(value: dict[str, Any] | list[Any], mark: str) -> list[Line]:
    """Each element of a map or list that is added or removed whole, one line each."""
    if isinstance(value, dict):
        return [(mark, f"  {fmt_value(k)} = {fmt_value(value[k])}") for k in sorted(value)]
    return [(mark, f"  {fmt_value(item)}") for item in value]


def fmt_pair(before: Any, after: Any) -> tuple[str, str]:
    """`fmt_value` of a changed value's two sides, each cut where it must be so that where they
    differ shows: two 600-character header values that differ at the end were both cut after 500
    and read the same (`"xxxx…… (603 characters)" → "xxxx…… (603 characters)"`)."""
    old = escaped(json.dumps(before, ensure_ascii=False, sort_keys=True))
    new = escaped(json.dumps(after, ensure_ascii=False, sort_keys=True))
    if len(old) <= MAX_VALUE and len(new) <= MAX_VALUE:
        return old, new
    same = 0
    for a, b in zip(old, new, strict=False):
        if a != b:
            break
        same += 1
    start = max(0, same - CONTEXT) if same >= MAX_VALUE - CONTEXT else 0
    return _window(old, start), _window(new, start)


CONTEXT = 60  # characters shown before the first difference of two long values


def _window(text: str, start: int) -> str:
    """`text` from `start`, at most MAX_VALUE characters of it, with what was left out said."""
    if start == 0 and len(text) <= MAX_VALUE:
        return text
    shown = text[start:start + MAX_VALUE]
    return f"{'…' if start else ''}{shown}{'…' if start + MAX_VALUE < len(text) else ''} ({len(text):,} characters)"



def _differs(before: dict[str, Any], after: dict[str, Any], key: str) -> bool:
    """Whether a map's entry was added, removed or changed (`1` and `true` differ). Not deepdiff's
    `affected_root_keys`: when most entries change, deepdiff reports the whole map as one changed
    value and names no key, and the diff then read a removed entry from `after` (KeyError)."""
    if key not in before or key not in after:
        return True
    old, new = before[key], after[key]
    return type(old) is not type(new) or old != new


def _nested(before: dict[str, Any] | list[Any], after: dict[str, Any] | list[Any]) -> list[Line]:
    """Element-wise diff of a map or list, with deepdiff; unchanged elements shown as context."""
    from deepdiff import DeepDiff

    out: list[Line] = []
    if isinstance(before, dict) and isinstance(after, dict):
        touched = {k for k in before.keys() | after.keys() if _differs(before, after, k)}
        for k in sorted(set(before) | set(after)):
            if k not in touched:
                out.append((" ", f"  {fmt_value(k)} = {fmt_value(after[k])}"))
            elif k not in after:
                out.append(("-", f"  {fmt_value(k)} = {fmt_value(before[k])}"))
            elif k not in before:
                out.append(("+", f"  {fmt_value(k)} = {fmt_value(after[k])}"))
            else:
                old, new = fmt_pair(before[k], after[k])
                out.append(("~", f"  {fmt_value(k)} = {old} → {new}"))
        return out
    diff = DeepDiff(before, after, ignore_order=True, verbose_level=2)
    removed_items = list(diff.get("iterable_item_removed", {}).values())
    added_items = list(diff.get("iterable_item_added", {}).values())
    for change in diff.get("values_changed", {}).values():  # an element replaced by another
        removed_items.append(change["old_value"])
        added_items.append(change["new_value"])
    for item in removed_items:
        out.append(("-", f"  {fmt_value(item)}"))
    for item in after:
        out.append(("+" if item in added_items else " ", f"  {fmt_value(item)}"))
    if not removed_items and not added_items:
        out.append(("#", "  (same elements, new order)"))
    return out


_COUNTED = {"+": "added", "-": "removed", "~": "changed", " ": "unchanged"}


def _bounded(lines: list[Line], limit: int | None) -> list[Line]:
    """At most `limit` element lines, in their order, the changed ones taken first (an unchanged
    element is only context), and the rest counted by kind: one list of 3,000 hosts edited outside
    keyform made a 252 KB pull-request comment, which GitHub refused."""
    if limit is None or len(lines) <= limit:
        return lines
    changed = [i for i, (mark, _) in enumerate(lines) if mark != " "]
    keep = set(changed[:limit])
    keep.update([i for i, (mark, _) in enumerate(lines) if mark == " "][:limit - len(keep)])
    left: dict[str, int] = {}
    for i, (mark, _) in enumerate(lines):
        if i not in keep:
            left[mark] = left.get(mark, 0) + 1
    counts = ", ".join(f"{left[mark]:,} {word}" for mark, word in _COUNTED.items() if mark in left)
    return [line for i, line in enumerate(lines) if i in keep] + \
        [("#", f"  … and {sum(left.values()):,} more ({counts}); the text plan shows them all")]


def stale_clause(n: int, verb: str) -> str:
    """`, 1 stale secret copy removed` (nothing when there is none): a copy of a live secret left
    in a sink entry is not a key, so it is never counted as one."""
    return f", {n} stale secret {'copy' if n == 1 else 'copies'} {verb}" if n else ""
