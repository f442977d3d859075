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


@record
class YamlDocument:
    """One parsed manifest file: its values, and the line of every key and item."""

    file: str  # as shown in messages (relative to cwd when possible)
    value: Any
    lines: Mapping[YamlPath, int]
    damaged: frozenset[YamlPath] = frozenset()  # values replaced or cut short by a reported problem
    # True when the value is known to pass the built-in manifest schema as a whole (a cached parse)
    schema_checked: bool = field(default=False, compare=False)

    def line(self, path: YamlPath) -> int:
        """The line of `path`, or of its nearest recorded ancestor."""
        while path:
            found = self.lines.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self.lines.get((), 1)

    def loc(self, path: YamlPath) -> SourceLoc:
        return SourceLoc(self.file, self.line(path))
