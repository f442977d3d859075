"""Which entries the local file sinks hold, read once per plan into a typed snapshot for the planner.

`plan` must notice a secret that vanished from a readable sink (someone deleted `.secrets/dev.env`)
and replace the key; the planner is pure, so the sinks are read *before* planning. For the three
plain-file sinks (`dotenv`, `json`, `file`) one read of the file (or one directory listing) gives
every entry name at once, whatever the number of keys; no secret value is kept. Other sinks
(`sops`, `k8s-secret`, `exec`) report None (not scanned here; a `secret_of` source in them is
still checked by reading its entry, see `operations.missing_secrets`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from keyform.model import SinkConfig


@dataclass(frozen=True)
class SinkSnapshot:
    """Per sink name, the entry names it holds now; a sink absent from `entries` was not scanned
    (or could not be read, which apply reports in its own words)."""

    entries: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def holds(self, sink: str, name: str) -> bool | None:
        """True/False when `sink` was scanned, None when unknown."""
        names = self.entries.get(sink)
        return None if names is None else name in names


def scan(sinks: Mapping[str, SinkConfig], wanted: set[str]) -> SinkSnapshot:
    """Scan the sinks named in `wanted` (those that hold a recorded secret)."""
    out: dict[str, frozenset[str]] = {}
    for name in sorted(wanted):
        config = sinks.get(name)
        if config is None:
            continue
        names = entry_names(config)
        if names is not None:
            out[name] = names
    return SinkSnapshot(out)


def entry_names(config: SinkConfig) -> frozenset[str] | None:
    """The entry names of a dotenv, json or file sink (empty when its file is missing); None for
    other types or when the file cannot be read or parsed."""
    try:
        if config.type == "dotenv":
            return _dotenv(Path(config.options["path"]))
        if config.type == "json":
            return _json(Path(config.options["path"]))
        if config.type == "file":
            return _directory(Path(config.options["dir"]))
    except (OSError, ValueError, KeyError):
        return None
    return None


def _dotenv(path: Path) -> frozenset[str]:
    from keyform.sinks.dotenv import parse

    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return frozenset()
    return frozenset(e.name for e in parse(text.removeprefix("\ufeff")) if e.name is not None)


def _json(path: Path) -> frozenset[str] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return frozenset()
    if not raw.strip():
        return frozenset()
    doc = json.loads(raw)
    return frozenset(doc) if isinstance(doc, dict) else None


def _directory(path: Path) -> frozenset[str]:
    try:
        with os.scandir(path) as it:
            return frozenset(e.name for e in it if e.is_file())
    except FileNotFoundError:
        return frozenset()
