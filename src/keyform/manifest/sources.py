"""Shared plumbing of the semantic pass: parsed files, declarations, and the diagnostics sink.

Every later check reports through `Report.error(source, path, message)`, so a message always lands
on the line of the YAML key it is about.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from keyform.errors import Diagnostic, SourceLoc
from keyform.manifest.document import YamlDocument, YamlPath
from keyform.records import record


@record
class ManifestFile:
    """One parsed, schema-checked manifest. `broken` holds the paths (at most two deep, e.g.
    `("keys", "ci-bot")`) whose subtree failed the schema: the semantic pass skips those."""

    doc: YamlDocument
    directory: Path  # absolute; relative paths inside the file are resolved against it
    broken: frozenset[YamlPath] = frozenset()

    @property
    def data(self) -> dict[str, Any]:
        value = self.doc.value
        return value if isinstance(value, dict) else {}

    def valid(self, path: YamlPath) -> bool:
        """True when neither `path` nor its section failed the schema."""
        broken = self.broken
        return not broken or (path[:1] not in broken and path[:2] not in broken)  # most files: none broken

    def loc(self, path: YamlPath) -> SourceLoc:
        return self.doc.loc(path)

    def key_field_loc(self, address: str, field: tuple[str, ...]) -> SourceLoc:
        """`KeySpec.field_loc`: the line of a field of key `address`'s entry here, looked up when a
        message needs it (in a cached file, a line inside a key's entry costs a parse:
        `parsecache.CachedLines`)."""
        return self.doc.loc(("keys", address, *field))

    def resolve(self, text: str) -> str:
        """A path written in this file, made absolute (relative to the file's directory; `~` expands;
        `~user` of an unknown user stays as written, as in a shell: Path.expanduser would raise)."""
        return os.path.normpath(self.directory / os.path.expanduser(text))


@record(dict_init=True)  # one per entry of every manifest
class Declaration:
    """A named entry of `providers`, `sinks` or `keys`, as written in one file."""

    section: str
    name: str
    value: Any
    source: ManifestFile

    @property
    def path(self) -> YamlPath:
        return (self.section, self.name)

    @property
    def valid(self) -> bool:
        return self.source.valid(self.path) and isinstance(self.value, dict)

    @property
    def loc(self) -> SourceLoc:
        return self.source.loc(self.path)


class Declarations(Mapping[str, Declaration]):
    """One section's entries across all files, by name: the first definition of each. Held as the
    files' own mappings (`groups`), with which of them defines each name, added a file's section at
    a time in C; a `Declaration` is made when one is asked for (10,000 keys are built from the
    groups, and none is made for most of them)."""

    __slots__ = ("_found", "_groups", "_made", "section")

    def __init__(self, section: str) -> None:
        self.section = section
        self._found: dict[str, int] = {}  # name → the index of its group
        self._groups: list[tuple[ManifestFile, Mapping[str, Any]]] = []
        self._made: dict[str, Declaration] = {}

    def add(self, entries: Mapping[str, Any], source: ManifestFile) -> list[str]:
        """Add `source`'s entries of the section; the names already defined (not added), in order."""
        found = self._found
        group = len(self._groups)
        if found.keys().isdisjoint(entries):  # (most sections: one pass in C)
            found.update(dict.fromkeys(entries, group))
            self._groups.append((source, entries))
            return []
        again = []
        new = {}
        for name, value in entries.items():
            if name in found:
                again.append(name)
            else:
                found[name] = group
                new[name] = value
        self._groups.append((source, new))
        return again

    def groups(self) -> list[tuple[ManifestFile, Mapping[str, Any]]]:
        """(file, {name: value}) of the entries each file defines first, in definition order."""
        return self._groups

    def __getitem__(self, name: str) -> Declaration:
        made = self._made.get(name)
        if made is None:
            source, entries = self._groups[self._found[name]]
            made = self._made[name] = Declaration(self.section, name, entries[name], source)
        return made

    def __contains__(self, name: object) -> bool:
        return name in self._found

    def __iter__(self) -> Iterator[str]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)


@record(frozen=False)
class Report:
    """Collects diagnostics; nothing here ever includes a secret value."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, source: ManifestFile, path: YamlPath, message: str) -> None:
        self.diagnostics.append(Diagnostic(message, source.loc(path)))

    def extend(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics.extend(diagnostics)


def dotted(path: YamlPath) -> str:
    """`("keys", "ci-bot", "hosts", 0)` → `keys.ci-bot.hosts[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def known_names(declared: Mapping[str, Declaration], plural: str) -> str:
    """A hint listing what *is* declared: ` (declared: a, b)` or ` (no sinks are declared)`."""
    if not declared:
        return f" (no {plural} are declared)"
    names = sorted(declared)
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f" (declared: {shown})"
