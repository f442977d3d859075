"""A cache of parsed manifest files: the values and line numbers of a file whose bytes were seen before.

Parsing a big manifest (libyaml composing, the walk that records every line, the schema check) is
most of a no-change plan's CPU; the manifests rarely change between two commands. An entry holds
one file's parsed value, the line of every mapping key and sequence item, the text of every number
written otherwise than Python prints it (`0123`: a message shows it as written), and nothing else; it is
written only for a file that parsed without a problem and passed the built-in schema as a whole
(so no literal secret: the schema refuses one at every secret position, and such a file is never
stored), and it is found by a name derived from:

- the sha256 of the file's exact bytes,
- keyform's version, the Python version, and `CACHE_FORMAT`,
- the size and modification time of the modules and schema that produce an entry (an editable
  install that changes the parser or the schema under the same version never reads an old entry).

The directory is `$KEYFORM_CACHE_DIR`, else `$XDG_CACHE_HOME/keyform/manifests`, else
`~/.cache/keyform/manifests`, created 0700; entries are 0600 and written atomically (a temp file
renamed into place). `KEYFORM_NO_CACHE=1` turns the cache off. A directory not owned by the user
or writable by group or others is not used.

The cache is untrusted input: an entry that is unreadable, truncated, of another format or
version, or whose content does not have the exact expected shape is ignored and the file is parsed
again (and the entry rewritten). Nothing here raises; the worst a bad entry does is cost a parse.
At most `MAX_ENTRIES` entries are kept: writing one removes the least recently used beyond that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from itertools import repeat
from typing import Any

from keyform import cachedir
from keyform.cachedir import cache_dir  # part of this module's face (tests, docs)
from keyform.manifest.document import YamlDocument, YamlPath

__all__ = ["CACHE_FORMAT", "CachedLines", "cache_dir", "entry_key", "load", "store"]

CACHE_FORMAT = 4  # 2: `texts`, the numbers written otherwise than printed (YamlDocument.texts); 3: `key_lines`;
# 4: `keys` as a table (`_table`)
# An entry is JSON of the file's values and lines: a few times the file's size at most.
_MAX_ENTRY_FACTOR, _MAX_ENTRY_SLACK = 8, 1 << 20
# The modules (relative to the keyform package) and schema whose code decides an entry's content.
_PRODUCERS = ("manifest/yamlsource.py", "manifest/document.py", "manifest/parsecache.py",
              "manifest/fastcheck.py", "manifest/schema.py", "schemas/manifest.schema.json")


@cache
def _code_stamp() -> str:
    return cachedir.code_stamp(_PRODUCERS, CACHE_FORMAT)


def entry_key(data: bytes) -> str | None:
    """The entry's name for a file of these exact bytes, under this keyform and this user's cache
    key (`cachedir.entry_name`); None when there is no usable key (the cache is then off)."""
    return cachedir.entry_name(_code_stamp(), data)


class CachedLines(Mapping[YamlPath, int]):
    """`YamlDocument.lines` of a cached file. The entry holds the line of every key and item except
    those inside a key's entry (`keys.NAME.*`: 90 % of a big manifest's lines, which a valid
    manifest's model never points at). The first lookup of such a path parses the file's bytes
    again, as without the cache, and answers from that parse from then on. The lines of the
    entries of `keys:` themselves are held by name (`entry_lines`: no path is made for each of
    10,000 keys, and building a key looks its own line up there, `YamlDocument.key_lines`)."""

    __slots__ = ("_data", "_full", "_lines", "entry_lines")

    def __init__(self, lines: dict[YamlPath, int], data: bytes, entry_lines: dict[str, int] | None = None) -> None:
        self._lines = lines
        self._data = data
        self._full = False
        self.entry_lines: dict[str, int] = {} if entry_lines is None else entry_lines

    def _complete(self) -> dict[YamlPath, int]:
        if not self._full:
            self._full = True
            from keyform.manifest.yamlsource import parse_yaml

            try:
                doc, problems = parse_yaml(self._data.decode("utf-8-sig"), "")
            except (UnicodeDecodeError, RecursionError):  # pragma: no cover - the bytes parsed before
                doc = None
            if doc is not None and not problems:
                self._lines = dict(doc.lines)
            else:  # pragma: no cover - the bytes parsed before
                self._lines.update(zip(zip(repeat("keys"), self.entry_lines), self.entry_lines.values()))
        return self._lines

    def _entry_line(self, path: YamlPath) -> int | None:
        """The line of `keys.NAME` from `entry_lines` (None for any other path)."""
        return self.entry_lines.get(path[1]) if len(path) == 2 and path[0] == "keys" else None  # type: ignore[arg-type]

    def __getitem__(self, path: YamlPath) -> int:
        found = self._lines.get(path)
        if found is None:
            found = self._entry_line(path)
        if found is not None:
            return found
        return self._complete()[path]

    def get(self, path: YamlPath, default: Any = None) -> Any:
        found = self._lines.get(path)
        if found is None:
            found = self._entry_line(path)
        if found is not None:
            return found
        if len(path) > 2 and path[0] == "keys":
            return self._complete().get(path, default)
        return default

    def __iter__(self) -> Iterator[YamlPath]:
        return iter(self._complete())

    def __len__(self) -> int:
        return len(self._complete())


def _stored_lines(lines: Mapping[YamlPath, int]) -> list[list[Any]]:
    """The lines an entry keeps as (path, line): all but those of a key's entry (`_key_lines`) and
    inside one."""
    return [[list(path), line] for path, line in lines.items()
            if not (len(path) > 1 and path[0] == "keys")]


def _key_lines(value: dict[str, Any], lines: Mapping[YamlPath, int]) -> list[int] | None:
    """The line of each entry of `keys:`, in the section's order (an entry names its key once, not
    as a path each: 10,000 keys are 10,000 numbers to read back, not 10,000 lists); None when
    one is not recorded (then nothing is stored)."""
    keys = value.get("keys")
    found = [lines.get(("keys", name)) for name in keys] if isinstance(keys, dict) else []
    return None if None in found else found  # type: ignore[return-value]  # (no None left)


def load(data: bytes, file: str) -> YamlDocument | None:
    """The cached parse of a file of these bytes (shown as `file`), or None (not cached, cache off,
    or an entry that is not exactly what this keyform writes)."""
    key = entry_key(data)
    raw = cachedir.read(key, limit=_MAX_ENTRY_FACTOR * len(data) + _MAX_ENTRY_SLACK)
    if key is None or raw is None:
        return None
    try:
        doc = _document(json.loads(raw), key, file, data)
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        return None
    if doc is not None:
        cachedir.touch(key)
    return doc


_PART_TYPES = frozenset((str, int))
_LINE_TYPES = frozenset((int,))


def _document(entry: Any, key: str, file: str, data: bytes) -> YamlDocument | None:
    """The entry as a document, or None when its shape is not exactly what `store` writes."""
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT or entry.get("key") != key:
        return None
    value, stored, written = entry.get("value"), entry.get("lines"), entry.get("texts")
    key_lines = entry.get("key_lines")
    if not isinstance(value, dict) or not isinstance(stored, list) or not isinstance(written, list) \
            or type(key_lines) is not list:
        return None
    lines: dict[YamlPath, int] = {}
    for path, line in stored:  # a pair that is not a pair raises ValueError/TypeError: ignored
        # each part a str or an int (not a bool); map(type) and a set test run in C, ~10,000 paths
        if type(line) is not int or line < 1 or type(path) is not list \
                or not _PART_TYPES.issuperset(map(type, path)):
            return None
        lines[tuple(path)] = line
    if () not in lines:
        return None
    table = entry.get("keys")
    if table is not None:
        if value.get("keys") != {} or type(value["keys"]) is not dict:
            return None
        rebuilt = _entries(table)
        if rebuilt is None:
            return None
        value["keys"] = rebuilt
    keys = value.get("keys")
    names = list(keys) if isinstance(keys, dict) else []
    # one line per entry of `keys:`, in its order: each an int (not a bool) of at least 1, checked in C
    if len(key_lines) != len(names) or (key_lines and (not _LINE_TYPES.issuperset(map(type, key_lines))
                                                       or min(key_lines) < 1)):
        return None
    texts: dict[YamlPath, str] = {}
    for path, text in written:  # almost always none
        if type(text) is not str or type(path) is not list or not _PART_TYPES.issuperset(map(type, path)):
            return None
        texts[tuple(path)] = text
    return YamlDocument(file, value, CachedLines(lines, data, dict(zip(names, key_lines))), schema_checked=True,
                        texts=texts)


# An entry's `keys` section is a table, not one JSON object per key: its names in order, and the
# entries grouped by their fields (in order), one list per field of the values of its entries, or
# `{"c": VALUE}` for a string, integer, boolean or null every one of them holds. JSON reads that in
# half the time, and C builds the dicts again (`_entries`): a 5,000-key file's 7.0 -> 5.0 ms.
# (Not a float: `0.0 == -0.0`, so a column of both would read back as one of them.)
_SCALARS = frozenset((str, int, bool, type(None)))
_STRINGS = frozenset((str,))


def _table(keys: Any) -> dict[str, Any] | None:
    """The table of a `keys:` section (`{name: {field: value}}`, at least one entry); None for any
    other value (kept as it is)."""
    if not isinstance(keys, dict) or not keys or not all(type(v) is dict for v in keys.values()):
        return None
    index: dict[tuple[str, ...], int] = {}  # each shape (the fields of an entry, in order) → its group
    groups: list[tuple[tuple[str, ...], list[dict[str, Any]]]] = []
    shape_of = []
    for entry in keys.values():
        fields = tuple(entry)
        at = index.get(fields)
        if at is None:
            at = index[fields] = len(groups)
            groups.append((fields, []))
        groups[at][1].append(entry)
        shape_of.append(at)
    out = []
    for fields, entries in groups:
        columns: list[Any] = []
        for field in fields:
            column = [e[field] for e in entries]
            first = column[0]
            same = type(first) in _SCALARS and all(type(v) is type(first) and v == first for v in column)
            columns.append({"c": first} if same and len(column) > 1 else column)
        out.append({"fields": list(fields), "columns": columns})
    return {"names": list(keys), "shapes": out, "shape_of": shape_of if len(groups) > 1 else None}


def _entries(table: Any) -> dict[str, Any] | None:
    """`_table`'s table as the section it was made of, or None when it is not exactly one."""
    if type(table) is not dict or table.keys() != {"names", "shapes", "shape_of"}:
        return None
    names, shapes, shape_of = table["names"], table["shapes"], table["shape_of"]
    if type(names) is not list or not names or not _STRINGS.issuperset(map(type, names)) \
            or len(set(names)) != len(names) or type(shapes) is not list or not shapes:
        return None
    if shape_of is None:
        if len(shapes) != 1:
            return None
        counts = [len(names)]
    elif type(shape_of) is not list or len(shape_of) != len(names) or len(shapes) < 2 \
            or not frozenset(range(len(shapes))).issuperset(shape_of) or not _INTS.issuperset(map(type, shape_of)):
        return None
    else:
        counts = [shape_of.count(i) for i in range(len(shapes))]
    made = []
    for shape, count in zip(shapes, counts):
        if type(shape) is not dict or shape.keys() != {"fields", "columns"} or not count:
            return None
        fields, columns = shape["fields"], shape["columns"]
        if type(fields) is not list or type(columns) is not list or len(columns) != len(fields) \
                or not _STRINGS.issuperset(map(type, fields)) or len(set(fields)) != len(fields):
            return None
        values: list[Iterable[Any]] = []
        for column in columns:
            if type(column) is list and len(column) == count:
                values.append(column)
            elif type(column) is dict and column.keys() == {"c"} and type(column["c"]) in _SCALARS:
                values.append(repeat(column["c"], count))
            else:
                return None
        rows = zip(*values) if fields else repeat((), count)
        made.append(iter(list(map(dict, map(zip, repeat(fields), rows)))))
    ordered = made[0] if shape_of is None else map(next, map(made.__getitem__, shape_of))
    return dict(zip(names, ordered))


_INTS = frozenset((int,))


def store(data: bytes, doc: YamlDocument) -> None:
    """Keep `doc` (the clean parse of `data`: no problems reported, and valid against the built-in
    schema as a whole) for the next run. Failing to write is not an error."""
    key_lines = _key_lines(doc.value, doc.lines) if isinstance(doc.value, dict) and not doc.damaged else None
    key = entry_key(data) if key_lines is not None else None
    if key is None:
        return
    value, table = doc.value, _table(doc.value.get("keys"))
    if table is not None:
        value = {**value, "keys": {}}  # (in its place: the section's order among the others is kept)
    try:
        text = json.dumps({"format": CACHE_FORMAT, "key": key, "value": value, "keys": table,
                           "lines": _stored_lines(doc.lines), "key_lines": key_lines,
                           "texts": [[list(path), text] for path, text in doc.texts.items()]},
                          separators=(",", ":"))
    except (KeyError, TypeError, ValueError, RecursionError):
        return
    cachedir.write(key, text)
