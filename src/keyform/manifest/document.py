"""`YamlDocument`: one parsed manifest file, its values and the source line of every key and item.

Made by `keyform.manifest.yamlsource` (parsing the text) or `keyform.manifest.parsecache` (an entry
of an earlier parse of the same bytes); this module imports neither, nor PyYAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any

from keyform.errors import SourceLoc
from keyform.records import record

YamlPath = tuple[str | int, ...]
_NO_KEY_LINES: Mapping[str, int] = {}


@record
class YamlDocument:
    """One parsed manifest file: its values, the line of every key and item, and the text as written
    of every number whose value reads differently (`0123` is 83, `12:30` is 750, `1.50` is 1.5): a
    message that shows a number shows what the file says."""

    file: str  # as shown in messages (relative to cwd when possible)
    value: Any
    lines: Mapping[YamlPath, int]
    damaged: frozenset[YamlPath] = frozenset()  # values replaced or cut short by a reported problem
    # True when the value is known to pass the built-in manifest schema as a whole (a cached parse)
    schema_checked: bool = field(default=False, compare=False)
    # path → the text of a number whose `str()` is not that text (`texts[("keys", "a", "name")] = "0123"`)
    texts: Mapping[YamlPath, str] = field(default_factory=dict)

    def line(self, path: YamlPath) -> int:
        """The line of `path`, or of its nearest recorded ancestor."""
        while path:
            found = self.lines.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self.lines.get((), 1)

    def loc(self, path: YamlPath) -> SourceLoc:
        found = self.lines.get(path)  # (most paths asked for are recorded: no walk up)
        return SourceLoc(self.file, found if found is not None else self.line(path))

    def key_lines(self) -> Mapping[str, int]:
        """The line of each entry of `keys:` by name, when `lines` holds them so
        (`parsecache.CachedLines.entry_lines`: a cached file); else none (ask `loc`)."""
        found: Mapping[str, int] | None = getattr(self.lines, "entry_lines", None)
        return _NO_KEY_LINES if found is None else found

    def written(self, path: YamlPath, value: Any) -> str:
        """`value`, found at `path`, as the file writes it: a number as its text (`0x1F`, not 31)."""
        return self.texts.get(path) or str(value)
