"""`keyform providers`: every available provider and sink type with its origin.

Origins: `built-in`, a plug-in's `package version` (entry-point groups `keyform.providers` and
`keyform.sinks`), or the definition file of a declarative type. A plug-in that fails to load is
listed with its problem (and makes the command exit 1) rather than hiding the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from keyform.typeregistry import INTERFACE_VERSION, Available, available

if TYPE_CHECKING:
    from keyform.model import Workspace


def _clean(text: str) -> str:
    """A plug-in's words, safe for a terminal: control characters replaced."""
    return "".join(c if c.isprintable() else "?" for c in text)


def render_text(rows: Sequence[Available]) -> str:
    lines = [f"keyform provider interface version {INTERFACE_VERSION}", ""]
    for kind in ("provider", "sink"):
        mine = [r for r in rows if r.kind == kind]
        lines.append(f"{kind.capitalize()} types:")
        width = max((len(_clean(r.name)) for r in mine), default=0)
        origin_width = max((len(_clean(r.origin)) for r in mine), default=0)
        for r in mine:
            what = f"error: {_clean(r.problem)}" if r.problem else _clean(r.description)
            # an entry point's name is a package's words too (never imported: no code of it ran)
            lines.append(f"  {_clean(r.name):<{width}}  {_clean(r.origin):<{origin_width}}  {what}".rstrip())
        lines.append("")
    return "\n".join(lines)


def render_json(rows: Sequence[Available]) -> str:
    return json.dumps({"interface_version": INTERFACE_VERSION,
                       "types": [{"kind": r.kind, "name": r.name, "origin": r.origin,
                                  "description": r.description, "problem": r.problem} for r in rows]},
                      indent=2) + "\n"


def list_types() -> list[Available]:
    return available()


def definitions(workspace: Workspace) -> list[Available]:
    """The REST definitions (`type: rest`) `workspace`'s provider instances use: one row each, its
    origin the definition file (relative to the working directory when under it)."""
    used: dict[tuple[str, str], list[str]] = {}
    for name, provider in sorted(workspace.providers.items()):
        d = provider.definition
        if d is not None:
            used.setdefault((d.name, d.file), []).append(name)
    rows = []
    for (type_name, file), instances in sorted(used.items()):
        where = os.path.relpath(file) if not os.path.relpath(file).startswith("..") else file
        rows.append(Available("provider", type_name, where, f"REST definition (type: rest), used by "
                              f"{', '.join(instances)}"))
    return rows
