"""Sink types by name: `open_sink` turns a manifest's SinkConfig into a Sink.

Each sink type is the `SinkType` in its own module, found through `keyform.typeregistry` (built-in
or a plug-in of the `keyform.sinks` entry-point group). This module is the applier's and the
manifest loader's view of it. Constructors do no I/O: opening a sink is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from keyform import bounded
from keyform.errors import Diagnostic, KeyformError, Overdue, SinkError
from keyform.model import SinkConfig
from keyform.sinks import Sink
from keyform.typeregistry import BUILTIN_SINKS, OptionProblems, SinkType, TypeLoadError, find_sink_type

SINK_TYPES = tuple(sorted(BUILTIN_SINKS))
T = TypeVar("T")


def _type(config: SinkConfig) -> SinkType:
    try:
        entry = find_sink_type(config.type)
    except TypeLoadError as exc:
        raise KeyformError([Diagnostic(f"sink {config.name}: {exc}", config.loc)]) from None
    if entry is None:
        raise KeyformError([Diagnostic(f"sink {config.name}: unknown type {config.type!r} "
                                       f"(expected one of {', '.join(SINK_TYPES)})", config.loc)])
    return entry


def open_sink(config: SinkConfig) -> Sink:
    """The Sink for `config`; KeyformError (located at the sink's declaration) if it cannot be built."""
    entry = _type(config)
    value = config.options.get(entry.required)
    if not (isinstance(value, (str, Path)) and str(value)) and not (isinstance(value, list) and value):
        raise KeyformError([Diagnostic(f"sink {config.name}: type {config.type} needs a {entry.required!r} option",
                                       config.loc)])
    sink = entry.open(config)
    return sink if entry.origin == "built-in" else ForeignSink(sink, config.name, entry)


PLUGIN_SINK_BOUND = 120.0  # seconds keyform waits for a plug-in sink's call (`keyform.bounded`)


def sink_overdue(sink: str, what: str, stype: SinkType, bound: float) -> Overdue:
    """A plug-in sink's call that did not return within `bound`, in one line: who, and what to check."""
    done = {"write": "the secret may have been written: the next `keyform apply` recovers the change from the "
                     "journal", "remove": "the entry may have been removed"}.get(what.split(" ")[0], "")
    return Overdue(f"sink {sink}: {what}: the sink type {stype.name!r} ({stype.origin}) did not return within "
                   f"{bound:g}s; keyform stopped waiting for it{'; ' + done if done else ''}. Check the plug-in and "
                   "what it writes to (a connection with no timeout, a lock, a prompt)")


class ForeignSink:
    """A plug-in sink, each call waited for `PLUGIN_SINK_BOUND` at most (`keyform.bounded`); anything
    else it offers (`guard`) as it is."""

    def __init__(self, inner: Sink, name: str, stype: SinkType) -> None:
        self._inner, self._name, self._type = inner, name, stype
        self.readable = inner.readable

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return bounded.call(fn, PLUGIN_SINK_BOUND, lambda b: sink_overdue(self._name, what, self._type, b))

    def write(self, address: str, name: str, secret: str) -> None:
        self._call(f"write {name!r}", lambda: self._inner.write(address, name, secret))

    def read(self, name: str) -> str | None:
        return self._call(f"read {name!r}", lambda: self._inner.read(name))

    def remove(self, name: str) -> None:
        self._call(f"remove {name!r}", lambda: self._inner.remove(name))


def is_readable(config: SinkConfig) -> bool:
    """Whether a sink of this config can give a secret back (False for unknown types): the opened
    sink's own `readable`, decided in one place. For an encrypted sink this looks for a decryption
    key; it never decrypts anything."""
    try:
        return bool(open_sink(config).readable)
    except (KeyformError, SinkError):
        return False


def option_problems(type_: str, options: Mapping[str, Any]) -> OptionProblems:
    """Problems with a sink's options that the schema cannot express, as (option path, message)."""
    try:
        entry = find_sink_type(type_)
    except TypeLoadError:
        return []  # reported by the schema pass
    return entry.check(options) if entry is not None and entry.check is not None else []


def entry_name_problem(config: SinkConfig, name: str) -> str | None:
    """Why `name` cannot be an entry of this sink, or None. Needs no I/O: the manifest loader asks
    it for every key (through `entry_name_rule`, looked up once per sink)."""
    return entry_name_rule(config)(config, name)


def entry_name_rule(config: SinkConfig) -> Callable[[SinkConfig, str], str | None]:
    """This sink's type's entry-name check (`SinkType.entry_name_problem`); one that finds no
    problem for a type without one, or one that cannot be loaded (the schema pass reports it)."""
    try:
        entry = find_sink_type(config.type)
    except TypeLoadError:
        return _any_name
    return entry.entry_name_problem if entry is not None and entry.entry_name_problem else _any_name


def _any_name(config: SinkConfig, name: str) -> str | None:
    return None
