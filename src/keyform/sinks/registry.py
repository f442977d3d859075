"""Sink types by name: `open_sink` turns a manifest's SinkConfig into a Sink.

Each type names its one required option, how to build the sink from the options, whether it can be
read back (decided from the config and the environment, without I/O beyond checking that a key file
exists), and the semantic option checks the manifest loader runs beyond the JSON Schema.
Constructors do no I/O: opening a sink is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyform.errors import Diagnostic, KeyformError
from keyform.model import SinkConfig
from keyform.sinks import Sink
from keyform.sinks.directory import FileSink
from keyform.sinks.dotenv import DotenvSink
from keyform.sinks.jsonfile import JsonSink

OptionProblems = list[tuple[tuple[str, ...], str]]


@dataclass(frozen=True)
class _SinkType:
    required: str
    make: Callable[[SinkConfig], Sink]
    readable: Callable[[SinkConfig], bool]
    check: Callable[[Mapping[str, Any]], OptionProblems] | None = None
    name_problem: Callable[[SinkConfig, str], str | None] | None = None


def _always(config: SinkConfig) -> bool:
    return True


def _sops(config: SinkConfig) -> Sink:
    from keyform.sinks.sops import SopsSink

    return SopsSink.from_options(config.options)


def _sops_readable(config: SinkConfig) -> bool:
    from keyform.sinks.sops import Recipients, can_decrypt

    return can_decrypt(Recipients.from_options(config.options))


def _sops_check(options: Mapping[str, Any]) -> OptionProblems:
    from keyform.sinks.sops import option_problems

    return option_problems(options)


def _sops_name(config: SinkConfig, name: str) -> str | None:
    from keyform.sinks.sops import entry_problem, format_for

    fmt = config.options.get("format") or format_for(str(config.options.get("path", "")))
    return entry_problem(name, fmt, config.options.get("encrypted_regex")) if fmt else None


def _exec(config: SinkConfig) -> Sink:
    from keyform.sinks.exec import ExecSink

    return ExecSink.from_options(config.options, sink_name=config.name)


def _exec_check(options: Mapping[str, Any]) -> OptionProblems:
    from keyform.sinks.exec import option_problems

    return option_problems(options)


def _exec_name(config: SinkConfig, name: str) -> str | None:
    from keyform.sinks.exec import ExecSink

    return ExecSink.name_problem(name)


def _k8s(config: SinkConfig) -> Sink:
    from keyform.sinks.k8s import K8sSecretSink

    return K8sSecretSink.from_options(config.options)


def _k8s_readable(config: SinkConfig) -> bool:
    return config.options.get("encrypt") != "sops" or _sops_readable(config)


def _k8s_check(options: Mapping[str, Any]) -> OptionProblems:
    from keyform.sinks.k8s import option_problems

    return option_problems(options)


def _k8s_name(config: SinkConfig, name: str) -> str | None:
    from keyform.sinks.k8s import K8sSecretSink

    return K8sSecretSink.name_problem(name)


_TYPES: dict[str, _SinkType] = {
    "dotenv": _SinkType("path", lambda c: DotenvSink(Path(c.options["path"])), _always,
                        name_problem=lambda c, n: DotenvSink.name_problem(n)),
    "json": _SinkType("path", lambda c: JsonSink(Path(c.options["path"])), _always,
                      name_problem=lambda c, n: JsonSink.name_problem(n)),
    "file": _SinkType("dir", lambda c: FileSink(Path(c.options["dir"])), _always,
                      name_problem=lambda c, n: FileSink.name_problem(n)),
    "sops": _SinkType("path", _sops, _sops_readable, _sops_check, _sops_name),
    "exec": _SinkType("command", _exec, lambda c: bool(c.options.get("read_command")), _exec_check, _exec_name),
    "k8s-secret": _SinkType("path", _k8s, _k8s_readable, _k8s_check, _k8s_name),
}

SINK_TYPES = tuple(sorted(_TYPES))


def open_sink(config: SinkConfig) -> Sink:
    """The Sink for `config`; KeyformError (located at the sink's declaration) if it cannot be built."""
    entry = _TYPES.get(config.type)
    if entry is None:
        raise KeyformError([Diagnostic(f"sink {config.name}: unknown type {config.type!r} "
                                       f"(expected one of {', '.join(SINK_TYPES)})", config.loc)])
    value = config.options.get(entry.required)
    if not (isinstance(value, (str, Path)) and str(value)) and not (isinstance(value, list) and value):
        raise KeyformError([Diagnostic(f"sink {config.name}: type {config.type} needs a {entry.required!r} option",
                                       config.loc)])
    return entry.make(config)


def is_readable(config: SinkConfig) -> bool:
    """Whether a sink of this config can give a secret back (False for unknown types). For an
    encrypted sink this looks for a decryption key; it never decrypts anything."""
    entry = _TYPES.get(config.type)
    return entry is not None and entry.readable(config)


def option_problems(type_: str, options: Mapping[str, Any]) -> OptionProblems:
    """Problems with a sink's options that the schema cannot express, as (option path, message)."""
    entry = _TYPES.get(type_)
    return entry.check(options) if entry is not None and entry.check is not None else []


def entry_name_problem(config: SinkConfig, name: str) -> str | None:
    """Why `name` cannot be an entry of this sink, or None. Needs no I/O: the manifest loader asks
    it for every key."""
    entry = _TYPES.get(config.type)
    return entry.name_problem(config, name) if entry is not None and entry.name_problem is not None else None
