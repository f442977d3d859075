"""Sink types by name: `open_sink` turns a manifest's SinkConfig into a Sink."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from keyform.errors import Diagnostic, KeyformError
from keyform.model import SinkConfig
from keyform.sinks import Sink
from keyform.sinks.directory import FileSink
from keyform.sinks.dotenv import DotenvSink
from keyform.sinks.jsonfile import JsonSink

# type -> (required option, constructor, readable)
_TYPES: dict[str, tuple[str, Callable[[Path], Sink], bool]] = {
    "dotenv": ("path", DotenvSink, DotenvSink.readable),
    "json": ("path", JsonSink, JsonSink.readable),
    "file": ("dir", FileSink, FileSink.readable),
}

SINK_TYPES = tuple(sorted(_TYPES))


def open_sink(config: SinkConfig) -> Sink:
    """The Sink for `config`; KeyformError (located at the sink's declaration) if it cannot be built."""
    entry = _TYPES.get(config.type)
    if entry is None:
        raise KeyformError([Diagnostic(f"sink {config.name}: unknown type {config.type!r} "
                                       f"(expected one of {', '.join(SINK_TYPES)})", config.loc)])
    option, make, _ = entry
    value = config.options.get(option)
    if not isinstance(value, (str, Path)) or not str(value):
        raise KeyformError([Diagnostic(f"sink {config.name}: type {config.type} needs a {option!r} option",
                                       config.loc)])
    return make(Path(value))


def is_readable(config: SinkConfig) -> bool:
    """Whether a sink of this config's type can give a secret back (False for unknown types)."""
    entry = _TYPES.get(config.type)
    return entry is not None and entry[2]
