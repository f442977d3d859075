"""The JSON sink: a flat JSON object `{name: secret}`, keys sorted, indent 2; other entries kept.

A file that is not a JSON object is refused (SinkError) and never overwritten. An empty file counts
as an empty object.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyform.errors import SinkError
from keyform.fsio import StrPath
from keyform.groupcommit import GroupCommit
from keyform.sinks.pathlocks import lock_for
from keyform.sinks.sinkfs import read_file, write_file
from keyform.strictjson import bounded_int, unique_keys
from keyform.typeregistry import ScannedEntries, SinkType

if TYPE_CHECKING:
    from keyform.model import SinkConfig


class JsonSink:
    readable = True

    def __init__(self, path: StrPath) -> None:
        self.path = Path(path)
        # concurrent writers share one rewrite (keyform.groupcommit)
        self._batches: GroupCommit[tuple[str, str]] = GroupCommit()

    @staticmethod
    def name_problem(name: str) -> str | None:
        """Why `name` cannot be an entry of the JSON object, or None if it can. Any string could be
        a JSON key, but a name is printed in every plan: a control, newline or invisible character
        would drive a terminal or break a Markdown plan."""
        if not name:
            return "the entry name is empty"
        return None if name.isprintable() else f"{name!r} holds a control or an invisible character"

    def write(self, address: str, name: str, secret: str) -> None:
        self._check(name, address)
        self._batches.write(lambda: lock_for(self.path, across_processes=True, create_dir=True), (name, secret),
                            lambda batch: self._set(batch, name, address),
                            lambda: self._set([(name, secret)], name, address))

    def _set(self, updates: list[tuple[str, str]], name: str, address: str | None) -> None:
        """Set every (name, secret) in one atomic rewrite; the caller holds the file lock."""
        doc = self._load(name, address)
        doc.update(updates)
        self._store(doc, name, address)

    def read(self, name: str) -> str | None:
        self._check(name, None)
        with lock_for(self.path):
            value = self._load(name, None).get(name)
        if value is None or isinstance(value, str):
            return value
        raise SinkError(f"{self.path}: entry {name!r} is not a string")

    def remove(self, name: str) -> None:
        self._check(name, None)
        with lock_for(self.path, across_processes=True):
            if not self.path.exists():
                return
            doc = self._load(name, None)
            if name in doc:
                del doc[name]
                self._store(doc, name, None)

    def _check(self, name: str, address: str | None) -> None:
        problem = self.name_problem(name)
        if problem:
            raise SinkError(f"{self.path}: {problem}{_for(address)}")

    def _load(self, name: str, address: str | None) -> dict[str, Any]:
        untouched = f"it was left untouched ({name!r}{_for(address)})"
        try:
            raw = read_file(self.path)
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot read the JSON file for {name!r}{_for(address)}: "
                            f"{exc.strerror}") from None
        if raw is None or not raw.strip():
            return {}
        try:
            return _object(raw)
        except json.JSONDecodeError as exc:  # exc.msg never quotes the document
            raise SinkError(f"{self.path}: not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno}); "
                            f"{untouched}") from None
        except UnicodeDecodeError:
            raise SinkError(f"{self.path}: not valid UTF-8; {untouched}") from None
        except ValueError as exc:
            raise SinkError(f"{self.path}: {exc}; {untouched}") from None

    def _store(self, doc: dict[str, Any], name: str, address: str | None) -> None:
        try:  # allow_nan=False: never NaN/Infinity (1e400 read as inf: refused when read, see _not_json)
            data = (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
                    ).encode("utf-8")
        except (ValueError, UnicodeEncodeError) as exc:  # a lone surrogate (a \ud800 escape) in an entry
            what = "text that is not valid Unicode (a lone surrogate)" if isinstance(exc, UnicodeEncodeError) \
                else "a number JSON cannot hold"
            raise SinkError(f"{self.path}: cannot write {name!r}{_for(address)}: the file would hold {what}; "
                            "it was left untouched") from None
        try:
            write_file(self.path, data)
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot write {name!r}{_for(address)}: {exc.strerror}") from None


def _for(address: str | None) -> str:
    return f" for key {address}" if address else ""


def _open(config: SinkConfig) -> JsonSink:
    return JsonSink(Path(config.options["path"]))


def scan(config: SinkConfig) -> ScannedEntries:
    """The file's entry names ({} when there is no file or it is empty), and those whose value is
    blank (`""`, whitespace, null); ValueError if it is not a JSON object."""
    raw = read_file(config.options["path"])  # never through a link, never blocking on a FIFO
    if raw is None or not raw.strip():
        return ScannedEntries()
    doc = _object(raw)
    return ScannedEntries(dict.fromkeys(doc, 0), (name for name, value in doc.items()
                                                  if value is None or (isinstance(value, str) and not value.strip())))


def _not_json(word: str) -> Any:
    """Python's json reads NaN and Infinity (and 1e400 becomes inf) and would write them back:
    the file would no longer be JSON for any other reader."""
    raise ValueError(f"holds {word}, which is not JSON (RFC 8259)")


def _finite(text: str) -> float:
    """A JSON number as a float; ValueError for one too large for a float (1e400 became inf, which
    json.dumps writes as Infinity)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"holds the number {text[:20]}, too large to be written back as JSON")
    return value


def _object(raw: bytes) -> dict[str, Any]:
    """The sink file's JSON object. JSONDecodeError or UnicodeDecodeError as json raises them (the
    scan words their line); ValueError naming what else is wrong: too deep, not an object, or
    something `_store` could not write back (a lone surrogate, an integer too long for Python)."""
    try:
        doc = json.loads(raw, parse_constant=_not_json, parse_float=_finite, parse_int=bounded_int,
                         object_pairs_hook=unique_keys)
    except RecursionError:
        raise ValueError("nested too deeply to be a keyform JSON sink") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object (a flat {name: secret} map)")
    _check_unicode(raw, doc)
    return doc


# where a lone surrogate can come from: UTF-8 text never holds one, a \uD800-\uDFFF escape does
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _check_unicode(raw: bytes, doc: dict[str, Any]) -> None:
    """ValueError when `doc` holds a lone surrogate (`{"x": "\\ud800"}`: Python's json reads it,
    UTF-8 cannot hold it, so `_store` could not write the file back and a write into it would
    revoke the new key). The search of the raw bytes keeps the full check off the usual file."""
    if _SURROGATE_ESCAPE.search(raw) is None:
        return
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds text that is not valid Unicode (a lone surrogate: a \\ud800 escape), "
                         "which keyform could not write back") from None


TYPE = SinkType(name="json", required="path", open=_open, scan=scan,
                entry_name_problem=lambda config, name: JsonSink.name_problem(name),
                description="a JSON object file, {entry: secret}")
