"""YAML text → plain Python values plus the source line of every mapping key and list item.

PyYAML's loaders silently keep the last of two equal mapping keys and forget line numbers. Here the
document is *composed* (libyaml's C composer when available: fast) and the values are built from
the node graph by a (depth-bounded) recursive walk, which:

- reports duplicate keys (`duplicate key 'name' (first defined at line 4)`), keeping the first;
- records `lines[path] = line` for every mapping key and sequence item (`path` is a tuple of keys
  and indexes, `()` the document root), so later passes can point at `file:line`, and
  `texts[path] = text` for every number written otherwise than Python prints it (`0123`, `0x1F`,
  `12:30`, `1.50`), so a message can show it as written;
- accepts only plain data: strings, integers, floats, booleans, null; timestamps stay as the text
  written (the schema and `durations.parse_time` judge them); other tags, non-string mapping keys
  and merge keys (`<<`) are errors;
- accepts anchors and aliases, but rejects recursive ones and bounds alias expansion and depth.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode

from keyform.errors import Diagnostic, SourceLoc
from keyform.manifest.document import YamlDocument, YamlPath

_BASE_LOADER: type[Any] = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
_CONSTRUCT = SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MAP, _SEQ, _MERGE = (_TAG + t for t in ("timestamp", "map", "seq", "merge"))
_TYPE_NAMES = {_INT: "an integer", _FLOAT: "a number", _BOOL: "a boolean", _NULL: "null"}
# The safe resolver's implicit tags by first character (a plain scalar's type is decided by it).
_IMPLICIT: dict[str, tuple[tuple[str, Any], ...]] = {
    first: tuple(resolvers) + tuple(yaml.resolver.Resolver.yaml_implicit_resolvers.get(None, ()))
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items() if first is not None
}


# The tag of every node written without one; the walk types plain scalars itself (see _Loader).
_UNTAGGED = "tag:keyform:untagged"


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """The safe loader without per-node Python callbacks.

    The composer calls `resolve` for every untagged node and `descend_resolver`/`ascend_resolver`
    around every node; as Python methods those calls are a third of the time it takes to compose a
    10,000-key manifest. Here they are builtins: `str.format` of a string without placeholders
    ignores its arguments and returns the string. So every untagged node is tagged `_UNTAGGED`, and
    `_Builder` types plain scalars with SafeLoader's own implicit resolvers (`_implicit_tag`);
    quoted and block scalars are strings. keyform registers no path resolvers, so nothing is lost.
    """

    resolve = _UNTAGGED.format
    descend_resolver = "".format
    ascend_resolver = "".format


@lru_cache(maxsize=4096)  # keys like `name`, `type`, `token` repeat across thousands of entries
def _implicit_tag(value: str) -> str:
    """The tag SafeLoader gives a plain scalar: `12` int, `true` bool, `~` null, else str."""
    for tag, regexp in _IMPLICIT.get(value[:1], ()):
        if regexp.match(value):
            return str(tag)
    return _STR


# Re-walking more than this many aliased entries is refused ("billion laughs").
MAX_ALIAS_EXPANSION = 100_000
MAX_DEPTH = 64  # manifests nest about 6 deep; the walk is recursive


class _TooBig(Exception):
    """The document expands beyond the limits; the walk stops."""


def parse_yaml(text: str, file: str) -> tuple[YamlDocument | None, list[Diagnostic]]:
    """Parse one YAML document. Returns (document or None on a syntax error, diagnostics).

    An empty document (only comments) yields a document whose value is None.
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_diagnostic(exc, file, text)]
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return None, [Diagnostic(f"YAML syntax error: {exc.reason} (U+{ord(char):04X})",
                                 SourceLoc(file, line))]
    except yaml.YAMLError as exc:  # any other libyaml complaint
        return None, [Diagnostic(f"YAML syntax error: {exc}", SourceLoc(file, 1))]
    if root is None:
        return YamlDocument(file, None, {(): 1}), []
    return _Builder(file).build(root)


def _syntax_diagnostic(exc: yaml.MarkedYAMLError, file: str, text: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    problem = exc.problem or "invalid YAML"
    context = exc.context
    source_lines = text.splitlines()
    line = min(line, max(len(source_lines), 1))  # libyaml points past a final newline at end of file
    if "cannot start any token" in problem and line <= len(source_lines) and "\t" in source_lines[line - 1]:
        problem = "found a tab character; indent YAML with spaces"
    elif context == "expected a single document in the stream":
        problem, context = "expected a single document in the file, but found another", None
    message = f"YAML syntax error: {problem}"
    if context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
        message += f" ({context} at line {exc.context_mark.line + 1})"
    return Diagnostic(message, SourceLoc(file, line))


class _Builder:
    """Builds values from a composed node graph, recording lines and problems as it goes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[YamlPath, int] = {}
        self.diagnostics: list[Diagnostic] = []
        self.damaged: set[YamlPath] = set()
        self.texts: dict[YamlPath, str] = {}  # numbers not written as str() prints them
        self.active: set[int] = set()  # collections on the current walk path (recursive aliases)
        self.seen: set[int] = set()
        self.expanded = 0

    def error(self, node: Node, message: str, damaged: YamlPath | None) -> None:
        """Report a problem; `damaged` is the path whose value it leaves unreliable (if any)."""
        self.diagnostics.append(Diagnostic(message, SourceLoc(self.file, node.start_mark.line + 1)))
        if damaged is not None:
            self.damaged.add(damaged)

    def build(self, root: Node) -> tuple[YamlDocument | None, list[Diagnostic]]:
        self.lines[()] = root.start_mark.line + 1
        try:
            value = self.value(root, (), 0)
        except _TooBig:
            return None, self.diagnostics
        return YamlDocument(self.file, value, self.lines, frozenset(self.damaged), texts=self.texts), self.diagnostics

    def value(self, node: Node, path: YamlPath, depth: int) -> Any:
        if type(node) is ScalarNode:
            return self.scalar(node, path)
        nid = id(node)
        if nid in self.active:
            self.error(node, "recursive alias: a node cannot contain itself", path)
            return None
        if nid in self.seen:  # an alias: count the re-walked entries
            self.expanded += 1 + len(node.value)
            if self.expanded > MAX_ALIAS_EXPANSION:
                self.error(node, f"too many alias expansions (more than {MAX_ALIAS_EXPANSION})", path)
                raise _TooBig
        if depth >= MAX_DEPTH:
            self.error(node, f"nested too deeply (more than {MAX_DEPTH} levels)", path)
            raise _TooBig
        self.seen.add(nid)
        self.active.add(nid)
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path, depth)
            return self.sequence(node, path, depth)
        finally:
            self.active.discard(nid)

    def sequence(self, node: Node, path: YamlPath, depth: int) -> list[Any]:
        if node.tag not in (_UNTAGGED, _SEQ):
            self.error(node, f"unsupported YAML tag {node.tag!r}", path)
        lines = self.lines
        items: list[Any] = []
        for index, child in enumerate(node.value):
            child_path = (*path, index)
            lines[child_path] = child.start_mark.line + 1
            items.append(self.value(child, child_path, depth + 1))
        return items

    def mapping(self, node: MappingNode, path: YamlPath, depth: int) -> dict[str, Any]:
        if node.tag not in (_UNTAGGED, _MAP):
            self.error(node, f"unsupported YAML tag {node.tag!r}", path)
        lines = self.lines
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            # Fast path, inline: an untagged scalar whose text cannot be a number, bool or null.
            if (type(key_node) is ScalarNode and key_node.tag == _UNTAGGED
                    and (key_node.style or key_node.value[:1] not in _IMPLICIT)):
                key = key_node.value
            else:
                key = self.key(key_node, path)
                if key is None:
                    continue
            key_path = (*path, key)
            if key in mapping:
                self.error(key_node, f"duplicate key {key!r} (first defined at line {lines[key_path]})", None)
                continue
            lines[key_path] = key_node.start_mark.line + 1
            if type(value_node) is ScalarNode:
                if value_node.tag == _UNTAGGED and (value_node.style or value_node.value[:1] not in _IMPLICIT):
                    mapping[key] = value_node.value
                else:
                    mapping[key] = self.scalar(value_node, key_path)
            else:
                mapping[key] = self.value(value_node, key_path, depth + 1)
        return mapping

    def key(self, node: Node, mapping_path: YamlPath) -> str | None:
        if isinstance(node, ScalarNode):
            tag = _tag_of(node)
            if tag == _MERGE:
                self.error(node, "merge keys ('<<') are not supported; write the fields out", mapping_path)
                return None
            if tag in (_STR, _TIMESTAMP):
                return str(node.value)
            if tag in _TYPE_NAMES:
                self.error(node, f"mapping key {node.value!r} is {_TYPE_NAMES[tag]}, not a string; "
                                 f"quote it: '{node.value}'", mapping_path)
                return None
        self.error(node, "mapping keys must be plain strings", mapping_path)
        return None

    def scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        tag = _tag_of(node)
        if tag in (_STR, _TIMESTAMP):
            return node.value
        try:
            if tag in (_INT, _FLOAT):
                number = (_CONSTRUCT.construct_yaml_int if tag == _INT else _CONSTRUCT.construct_yaml_float)(node)
                if str(number) != node.value:  # `0123` is 83: a message shows the text, not the number
                    self.texts[path] = node.value
                return number
            if tag == _BOOL:
                return _CONSTRUCT.construct_yaml_bool(node)
            if tag == _NULL:
                return None
        except (ValueError, yaml.YAMLError):  # pragma: no cover - the resolver matched the form
            pass
        self.error(node, f"unsupported YAML tag {tag!r}", path)
        return None


def _tag_of(node: ScalarNode) -> str:
    """The scalar's tag as SafeLoader would resolve it."""
    if node.tag != _UNTAGGED:
        return str(node.tag)
    return _implicit_tag(node.value) if not node.style else _STR  # plain style: None or ''

