"""The dotenv sink: one `NAME=value` assignment per secret in a `.env` file, every other line kept as is.

Writing replaces an existing `NAME=` in place (keeping an `export ` prefix and the line ending;
later duplicates of NAME are dropped, since most loaders let the last one win) or appends a line.
Reading understands `export NAME=`, single and double quotes, and unquoted values with ` # comments`.

The encoding is chosen so that every value keyform writes reads back exactly through three readers:
keyform's own, a POSIX shell (`set -a; . FILE` in bash and dash) and python-dotenv's
`dotenv_values` with its defaults (tests/test_dotenv_encoding.py checks all three on arbitrary text):

- a plain token (`[A-Za-z0-9_.:/+@%,=-]+`) is written bare;
- else single quotes, when the value holds no `'`, no `\\\\` and does not end in `\\`: literal in
  shells; python-dotenv would decode `\\\\` and `\\'` there;
- else double quotes with only `\\` and `"` escaped (the two escapes shells and python-dotenv share).
  A backtick, or a `$` the shell would expand (`$NAME`, `$1`, `${`, `$(`...), cannot be carried that
  way: python-dotenv keeps the backslash of `\\$` and `\\``.

Line breaks are written literally inside the quotes (an escaped `\\n` is a newline to python-dotenv
but two characters to a shell). What no encoding carries is refused before the file is touched
(`dotenv_problem` says which characters): NUL and a lone surrogate (no shell or UTF-8 file holds
them), a carriage return (python-dotenv reads text with universal newlines: it becomes `\\n`),
`${...}` (python-dotenv expands it, in any quotes, and has no escape for it), and the double-quote
cases above.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from keyform.errors import SinkError
from keyform.fsio import StrPath
from keyform.records import record
from keyform.sinks.pathlocks import lock_for
from keyform.sinks.sinkfs import read_file, write_file
from keyform.typeregistry import ScannedEntries, SinkType

if TYPE_CHECKING:
    from keyform.groupcommit import GroupCommit
    from keyform.model import SinkConfig

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"[ \t]*(export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*")
_BARE = re.compile(r"[A-Za-z0-9_.:/+@%,=-]+")  # safe unquoted in dotenv loaders and POSIX shells
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}
_BOM = "\ufeff"
_MAKING_GROUP = threading.Lock()  # (`DotenvSink._group`)


@record(frozen=False)
class _Entry:
    """A span of the file: an assignment (`name` set) or any other line, with its exact text."""

    raw: str
    name: str | None = None
    value: str | None = None
    export: bool = False


@record(frozen=False)
class _Written:
    """The file as a DotenvSink wrote it: its bytes, and what they parse to."""

    data: bytes
    bom: str
    entries: list[_Entry]
    names: set[str]  # every assigned NAME


class DotenvSink:
    readable = True

    def __init__(self, path: StrPath) -> None:
        self.path = Path(path)
        # concurrent writers share one rewrite (keyform.groupcommit), made by the first write
        # (`_group`): a plan opens its sinks only to scan them, and imports no GroupCommit (~1 ms)
        self._batches: GroupCommit[tuple[str, str]] | None = None
        # The file as this sink last wrote it. While the file still holds exactly those bytes,
        # loading it needs no decode or parse, and new names are appended without a pass over
        # the entries: with thousands of entries those passes were most of an apply's CPU, and
        # quadratic in the number of keys. Any change by anyone else makes it parse again.
        self._written: _Written | None = None
        # `guard`: the variables keyform may replace in this file (None: any, as a plain sink)
        self._owned: set[str] | None = None

    def guard(self, owned: Iterable[str]) -> None:
        """From now on replace only a variable in `owned` (keyform's own entries, as its state
        records them) or one this sink wrote itself: another that appears in the file after the
        plan (a person, another workspace sharing the file) is refused, not overwritten. The plan
        checks the same (`planner.foreign_entries`), but an apply's create takes seconds."""
        self._owned = set(owned)

    @staticmethod
    def name_problem(name: str) -> str | None:
        """Why `name` cannot be a variable in a dotenv file, or None if it can."""
        return _entry_name_problem(None, name)

    def write(self, address: str, name: str, secret: str) -> None:
        self._check(name, address)
        problem = dotenv_problem(secret)
        if problem:  # refused before the file is touched; the applier revokes the new key
            raise SinkError(f"{self.path}: cannot write {name} (key {address}): the secret holds {problem}; "
                            "no dotenv quoting reads it back the same in POSIX shells, python-dotenv and keyform")
        self._group().write(lambda: lock_for(self.path, across_processes=True, create_dir=True), (name, secret),
                            lambda batch: self._set(batch, name, address),
                            lambda: self._set([(name, secret)], name, address))

    def _group(self) -> GroupCommit[tuple[str, str]]:
        """The sink's one GroupCommit, made once whichever writer comes first."""
        batches = self._batches
        if batches is None:
            with _MAKING_GROUP:
                batches = self._batches
                if batches is None:
                    from keyform.groupcommit import GroupCommit

                    batches = self._batches = GroupCommit()
        return batches

    def _set(self, updates: list[tuple[str, str]], name: str, address: str | None) -> None:
        """Set every (NAME, secret) in one atomic rewrite, in one pass over the file; the caller
        holds the file lock. `name` and `address` word the errors."""
        bom, entries = self._load(name, address)
        newline = _newline_style(entries)
        want = dict(updates)  # the last value of a name wins; new names are appended in arrival order
        last = self._written
        if (last is not None and entries is last.entries and last.names.isdisjoint(want)
                and (not entries or entries[-1].raw.endswith("\n"))):  # only new names: append
            added = [_Entry(f"{n}={format_value(v)}{newline}", n, v) for n, v in want.items()]
            data = last.data + "".join(e.raw for e in added).encode("utf-8")
            self._commit(_Written(data, bom, entries + added, last.names | want.keys()), name, address)
            self._own(want)
            return
        owned = self._owned
        if owned is not None:
            foreign = sorted({e.name for e in entries if e.name in want and e.name not in owned})
            if foreign:  # the batch fails; each write is then tried alone, so only these fail
                raise SinkError(f"{self.path}: {', '.join(foreign)} appeared in the file after the plan, and keyform "
                                f"did not write {'it' if len(foreign) == 1 else 'them'}; not overwritten"
                                f"{_for(address) if len(updates) == 1 else ''}")
        done: set[str] = set()
        kept: list[_Entry] = []
        for e in entries:
            if e.name is None or e.name not in want:
                kept.append(e)
            elif e.name not in done:  # later duplicates of the name are dropped
                value = want[e.name]
                ending = e.raw[len(e.raw.rstrip("\r\n")):]
                line = f"{e.name}={format_value(value)}"
                kept.append(_Entry(("export " if e.export else "") + line + ending, e.name, value, e.export))
                done.add(e.name)
        new = [n for n in want if n not in done]
        if new:
            if kept and not kept[-1].raw.endswith("\n"):
                kept[-1] = _Entry(kept[-1].raw + newline, kept[-1].name, kept[-1].value, kept[-1].export)
            kept.extend(_Entry(f"{n}={format_value(want[n])}{newline}", n, want[n]) for n in new)
        self._store(bom, kept, name, address)
        self._own(want)

    def _own(self, written: Iterable[str]) -> None:
        """The variables this sink just wrote are keyform's (under `guard`)."""
        if self._owned is not None:
            self._owned.update(written)

    def read(self, name: str) -> str | None:
        self._check(name, None)
        with lock_for(self.path):
            _, entries = self._load(name, None)
        values = [e.value for e in entries if e.name == name]
        return values[-1] if values else None

    def remove(self, name: str) -> None:
        self._check(name, None)
        with lock_for(self.path, across_processes=True):
            if not self.path.exists():
                return
            bom, entries = self._load(name, None)
            kept = [e for e in entries if e.name != name]
            if len(kept) != len(entries):
                self._store(bom, kept, name, None)

    def _check(self, name: str, address: str | None) -> None:
        problem = self.name_problem(name)
        if problem:
            raise SinkError(f"{self.path}: {problem}{_for(address)}")

    def _load(self, name: str, address: str | None) -> tuple[str, list[_Entry]]:
        try:
            raw = read_file(self.path)
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot read the dotenv file for {name}{_for(address)}: "
                            f"{exc.strerror}") from None
        if raw is None:
            return "", []
        if self._written is not None and self._written.data == raw:
            return self._written.bom, self._written.entries
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SinkError(f"{self.path}: not a UTF-8 text file; left untouched ({name}{_for(address)})") from None
        bom = _BOM if text.startswith(_BOM) else ""
        try:
            return bom, parse(text[len(bom):])
        except DotenvSyntaxError as exc:  # the line and the variable, never a value
            raise SinkError(f"{self.path}:{exc.line}: {exc.problem}; left untouched ({name}{_for(address)})") from None

    def _store(self, bom: str, entries: list[_Entry], name: str, address: str | None) -> None:
        data = (bom + "".join(e.raw for e in entries)).encode("utf-8")
        self._commit(_Written(data, bom, entries, {e.name for e in entries if e.name is not None}), name, address)

    def _commit(self, new: _Written, name: str, address: str | None) -> None:
        self._written = None
        try:
            write_file(self.path, new.data)
            self._written = new
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot write {name}{_for(address)}: {exc.strerror}") from None


_SURROGATE = re.compile("[\ud800-\udfff]")
# python-dotenv's interpolation pattern (dotenv/variables.py), applied to every value it reads
_DOTENV_VARIABLE = re.compile(r"\$\{[^}:]*(?::-[^}]*)?\}")
# after a `$` inside double quotes, what a POSIX shell leaves alone (anything else may expand)
_LITERAL_AFTER_DOLLAR = frozenset(" \t\n%+,./:=]^~}")


def _single_quotable(value: str) -> bool:
    return "'" not in value and "\\\\" not in value and not value.endswith("\\")


def _shell_expands_in_double_quotes(value: str) -> bool:
    if "`" in value:
        return True
    return any(c == "$" and i + 1 < len(value) and value[i + 1] not in _LITERAL_AFTER_DOLLAR
               for i, c in enumerate(value))


def dotenv_problem(value: str) -> str | None:
    """Which characters of `value` no dotenv encoding carries through keyform, POSIX shells and
    python-dotenv alike, or None when `format_value` can write it. Never quotes the value."""
    if "\0" in value:
        return "a NUL character"
    if _SURROGATE.search(value):
        return "a lone surrogate (not encodable as UTF-8)"
    if "\r" in value:
        return "a carriage return (python-dotenv reads it as a line break)"
    if _DOTENV_VARIABLE.search(value):
        return "'${' ... '}', which python-dotenv expands whatever the quoting"
    if _BARE.fullmatch(value) or _single_quotable(value):
        return None
    if _shell_expands_in_double_quotes(value):
        need = "' (a single quote)" if "'" in value else "a doubled or trailing backslash"
        what = "a backtick" if "`" in value else "a '$' a shell would expand ($NAME, $1, ${, $(...)"
        return (f"both {need}, which needs double quotes, and {what}, which python-dotenv and shells "
                "read differently inside double quotes")
    return None


def format_value(value: str) -> str:
    """`value` as it should appear after `NAME=` (see the module docstring). Raises ValueError
    (naming the characters, never the value) when `dotenv_problem` refuses it."""
    problem = dotenv_problem(value)
    if problem:
        raise ValueError(f"the secret holds {problem}")
    if _BARE.fullmatch(value):
        return value
    if _single_quotable(value):
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse(text: str) -> list[_Entry]:
    """Split a dotenv file into entries whose `raw` texts concatenate back to `text` exactly."""
    entries: list[_Entry] = []
    for pos, end, m, quote, close in _spans(text):
        if m is None:
            entries.append(_Entry(text[pos:end]))
            continue
        entries.append(_Entry(text[pos:end], m.group(2), _value(text, m.end(), end, quote, close),
                              m.group(1) is not None))
    return entries


def _value(text: str, start: int, end: int, quote: str, close: int) -> str:
    """The value of the assignment whose `_spans` span ends at `end`, its `=` ending at `start`."""
    if close >= 0:
        body = text[start + 1:close]
        return body if quote == "'" else _unescape(body)
    # unquoted: the rest of the line, minus a ` # comment` (an unterminated quote: `_spans` refused)
    value = _COMMENT.split(text[start:end].rstrip("\r\n"), maxsplit=1)[0].rstrip(" \t")
    return "" if value.startswith("#") else value


_COMMENT = re.compile(r"[ \t]#")  # where an unquoted value's ` # comment` starts


def _spans(text: str) -> Iterator[tuple[int, int, re.Match[str] | None, str, int]]:
    """The spans `parse` splits `text` into, in order: (start, end, the assignment's match or None
    for any other line, its opening quote or "" when unquoted, the closing quote's index or -1).
    `scan` walks them keeping no value (it only asks whether each is blank)."""
    pos, size = 0, len(text)
    while pos < size:
        nl = text.find("\n", pos)
        line_end = size if nl < 0 else nl + 1
        m = _ASSIGNMENT.match(text, pos, line_end)
        if m is None:
            yield pos, line_end, None, "", -1
            pos = line_end
            continue
        start = m.end()
        quote = text[start:start + 1]
        if quote not in ("'", '"'):
            quote = ""
        close = _closing_quote(text, start + 1, quote) if quote else -1
        if quote and close < 0:  # sh, bash and python-dotenv refuse it: a value written after it is lost to them
            raise DotenvSyntaxError(text.count("\n", 0, pos) + 1, f"the {quote} quote that opens the value of "
                                    f"{m.group(2)} is never closed, so a shell cannot read the file")
        if close >= 0:  # a quoted value may span lines: the entry ends with the closing quote's line
            nl = text.find("\n", close)
            end = size if nl < 0 else nl + 1
        else:
            end = line_end
        yield pos, end, m, quote, close
        pos = end


class DotenvSyntaxError(ValueError):
    """A dotenv file no shell reads as keyform would: `line` (1-based) and the `problem` (naming the
    variable, never a value), said as `file:line: problem` (`sinkscan`, `DotenvSink`)."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


def _closing_quote(text: str, i: int, quote: str) -> int:
    if quote == "'":
        return text.find("'", i)
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    return -1


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), m.group(0)), body, flags=re.DOTALL)


def _newline_style(entries: list[_Entry]) -> str:
    for e in entries:
        if e.raw.endswith("\n"):
            return "\r\n" if e.raw.endswith("\r\n") else "\n"
    return "\n"


def _for(address: str | None) -> str:
    return f" (key {address})" if address else ""


def _open(config: SinkConfig) -> DotenvSink:
    return DotenvSink(Path(config.options["path"]))


def scan(config: SinkConfig) -> ScannedEntries:
    """Each variable of the file with the line of its first assignment ({} when there is no file),
    and those whose value (that of the assignment a shell keeps: the last) is blank."""
    raw = read_file(config.options["path"])  # never through a link, never blocking on a FIFO
    if raw is None:
        return ScannedEntries()
    text = raw.decode("utf-8").removeprefix(_BOM)
    found: dict[str, int] = {}
    blank: set[str] = set()
    if "'" not in text and '"' not in text:  # no quoted value (most files): each line is one span
        match = _ASSIGNMENT.match
        for line, piece in enumerate(text.split("\n"), 1):
            m = match(piece)
            if m is None:
                continue
            name = m.group(2)
            found.setdefault(name, line)
            start = m.end()
            # as below (the line's `_value` without its newline is the one with it)
            if start < len(piece) and (c := piece[start]) != "#" and not c.isspace():
                blank.discard(name)
            elif not _value(piece, start, len(piece), "", -1).strip():
                blank.add(name)
            else:
                blank.discard(name)
        return ScannedEntries(found, blank)
    line = 1
    for pos, end, m, quote, close in _spans(text):  # `parse`'s entries, their values not kept
        if m is not None:
            name = m.group(2)
            found.setdefault(name, line)
            start = m.end()
            # an unquoted value whose first character is neither blank nor `#` is not blank (most
            # lines): `_value` keeps that character, whatever comment follows
            if not quote and start < end and (c := text[start]) != "#" and not c.isspace():
                blank.discard(name)
            elif not _value(text, start, end, quote, close).strip():  # (made and dropped at once)
                blank.add(name)
            else:
                blank.discard(name)
        line += text.count("\n", pos, end)
    return ScannedEntries(found, blank)


def _entry_name_problem(config: SinkConfig | None, name: str, _valid: Callable[[str], object] = _NAME.fullmatch) -> \
        str | None:
    """`DotenvSink.name_problem`, as the sink type's entry-name check: the manifest loader asks it
    for every key writing to a dotenv sink (one call, not a lambda's and a static method's)."""
    if _valid(name):
        return None
    return f"{name!r} is not a valid environment variable name (letters, digits, '_'; not starting with a digit)"


TYPE = SinkType(name="dotenv", required="path", open=_open,
                entry_name_problem=_entry_name_problem, scan=scan, guards_entries=True,
                description="a .env file, one VARIABLE=secret line per key")
