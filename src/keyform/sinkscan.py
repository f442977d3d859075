"""Which entries the local file sinks hold, read once per plan into a typed snapshot for the planner.

`plan` must notice a secret that vanished from a readable sink (someone deleted `.secrets/dev.env`)
and replace the key; the planner is pure, so the sinks are read *before* planning. For the
plain-file sinks (`dotenv`, `json`, `file` and an unencrypted `k8s-secret`: each type's
`SinkType.scan`) one read of the file (or one directory listing) gives every entry name at once,
whatever the number of keys; no secret value is kept. Other sinks (`sops`, an encrypted
`k8s-secret`, `exec`) are not scanned here; a `secret_of` source in them is still checked by
reading its entry, see `operations.missing_secrets`.

For a sink whose file holds other people's entries too (`SinkType.guards_entries`: a `.env`), the
snapshot also keeps each entry's line, so the planner can refuse to overwrite a variable keyform
did not write and name where it is (`planner.foreign_entries`).

A sink whose file cannot be read (not UTF-8, not JSON, a symlink, a FIFO, no permission), or that
its sink could not write back (a Secret key YAML reads as a number), is kept
with the reason (as is one entry a sink cannot use: a `file` sink's entry that is a link or a
directory), worded `file:line: what is wrong` where there is a line: the planner refuses a
key that would write its secret there (`planner.unreadable_sinks`) before apply creates the key
and then fails to store its secret, and notes the sinks that hold recorded secrets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING

from keyform.errors import PLUGIN_FAILURES, KeyformError
from keyform.fsio import IsSymlinkError, NotAFileError
from keyform.model import SinkConfig, SinkTarget
from keyform.records import record

if TYPE_CHECKING:
    from keyform.typeregistry import SinkType


@record
class SinkSnapshot:
    """Per sink name, the entry names it holds now; a sink absent from `entries` was not scanned
    (or could not be read, which apply reports in its own words)."""

    entries: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # sink name -> entry name -> its 1-based line, for the sinks that guard their entries
    lines: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  # sink name -> its file, as the manifest gave it
    problems: Mapping[str, str] = field(default_factory=dict)  # sink name -> why its file cannot be read
    # sink name -> entry name -> why the sink cannot use that one entry (`ScannedEntries.unusable`)
    entry_problems: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def holds(self, sink: str, name: str) -> bool | None:
        """True/False when `sink` was scanned, None when unknown."""
        names = self.entries.get(sink)
        return None if names is None else name in names

    def problem_at(self, target: SinkTarget) -> str | None:
        """Why the sink cannot take (or give back) the secret at `target`: its whole file cannot be
        read, or that one entry cannot be used; None when it can, or when it is not known."""
        problem = self.problems.get(target.sink)
        if problem is None and self.entry_problems:
            problem = self.entry_problems.get(target.sink, {}).get(target.name)
        return problem

    def where(self, sink: str, name: str) -> str | None:
        """`file:line` of entry `name` in a guarded sink's file; None when it does not hold it."""
        line = self.lines.get(sink, {}).get(name)
        return None if line is None else f"{self.files.get(sink, sink)}:{line}"


def scan(sinks: Mapping[str, SinkConfig], wanted: set[str]) -> SinkSnapshot:
    """Scan the sinks named in `wanted` (those that hold a recorded secret, and the guarded sinks
    a key writes to) that their type can scan (`SinkType.scan`)."""
    from keyform.typeregistry import ScannedEntries, sink_type

    out: dict[str, frozenset[str]] = {}
    lines: dict[str, Mapping[str, int]] = {}
    files: dict[str, str] = {}
    problems: dict[str, str] = {}
    entry_problems: dict[str, Mapping[str, str]] = {}
    for name in sorted(wanted):
        config = sinks.get(name)
        if config is None:
            continue
        try:
            stype = sink_type(config.type)
        except KeyError:
            continue
        if stype.scan is None:
            continue
        shown = _shown(str(config.options.get(stype.required, name)))
        try:
            if stype.origin == "built-in":
                found = stype.scan(config)
            else:  # a plug-in's: waited for a bound at most (`keyform.bounded`)
                found = _bounded_scan(name, stype, config)
        except (OSError, ValueError, KeyError, KeyformError) as exc:
            problems[name] = _problem(shown, exc)
            continue
        except PLUGIN_FAILURES as exc:
            if stype.origin == "built-in":  # keyform's own bug: the CLI says so (traceback with -v)
                raise
            # a plug-in's bug, in one scrubbed line naming it; the keys writing there are refused
            from keyform.redact import exception_line
            problems[name] = (f"{shown}: the sink type {stype.name!r} ({stype.origin}) failed to scan it: "
                              f"{exception_line(exc)}")
            continue
        if found is None:
            continue
        # a blanked entry (`CI_BOT=`) holds no secret keyform wrote: missing, as a deleted line
        # is; a guarded sink still keeps its line (`where`: the variable is there)
        # (a plug-in's plain mapping has none: its `blank` attribute, if any, is not read)
        if isinstance(found, ScannedEntries):
            out[name] = frozenset(found) - found.blank
            if found.unusable:  # (not held: a key writing there is refused, see `planner.unreadable_sinks`)
                entry_problems[name] = found.unusable
        else:
            out[name] = frozenset(found)
        if stype.guards_entries:
            lines[name] = found
            files[name] = shown
    return SinkSnapshot(out, lines, files, problems, entry_problems)


def _problem(shown: str, exc: Exception) -> str:
    """Why the sink file `shown` could not be read, in one line (no content of the file: a line
    of a .env is a secret)."""
    if isinstance(exc, UnicodeDecodeError):
        data = exc.object if isinstance(exc.object, bytes) else b""  # no byte of it is shown: it may be a secret's
        line = data[:exc.start].count(b"\n") + 1
        return f"{shown}:{line}: not UTF-8 text"
    if isinstance(exc, json.JSONDecodeError):  # its msg never quotes the document
        return f"{shown}:{exc.lineno}: not valid JSON ({exc.msg})"
    if isinstance(exc, (IsSymlinkError, NotAFileError)):  # their message names the path
        return exc.strerror or str(exc)
    if isinstance(exc, OSError):  # a directory, no permission, ...
        return f"{shown}: cannot read it: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, KeyformError):
        return str(exc)
    at = getattr(exc, "line", None)  # a syntax error at a line of the file (`dotenv.DotenvSyntaxError`)
    if isinstance(at, int) and isinstance(problem := getattr(exc, "problem", None), str):
        return f"{shown}:{at}: {problem}"
    return f"{shown}: {exc}"


def _shown(path: str) -> str:
    """A path as messages show it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _bounded_scan(name: str, stype: SinkType, config: SinkConfig) -> Mapping[str, int] | None:
    """A plug-in sink type's scan, waited for `PLUGIN_SINK_BOUND` at most (`keyform.bounded`)."""
    from keyform import bounded
    from keyform.sinks.registry import PLUGIN_SINK_BOUND, sink_overdue

    scan_of = stype.scan
    assert scan_of is not None
    return bounded.call(lambda: scan_of(config), PLUGIN_SINK_BOUND, lambda b: sink_overdue(name, "scan", stype, b))
