"""The sinks of a workspace, each opened once, on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from keyform.errors import SinkError
from keyform.model import Workspace
from keyform.sinks import Sink


class SinkPool:
    """Opens each configured sink once."""

    def __init__(self, workspace: Workspace, opener: Callable[[Any], Sink] | None = None) -> None:
        self._workspace = workspace
        self._opener = opener
        self._open: dict[str, Sink] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Sink:
        with self._lock:
            if name not in self._open:
                if name not in self._workspace.sinks:
                    raise SinkError(f"sink {name!r} is no longer in the manifests")
                opener = self._opener
                if opener is None:
                    from keyform.sinks.registry import open_sink

                    opener = open_sink
                self._open[name] = opener(self._workspace.sinks[name])
            return self._open[name]

    def readable(self) -> frozenset[str]:
        """Names of the sinks that can give a secret back (without opening anything remote)."""
        from keyform.sinks.registry import is_readable

        return frozenset(n for n, cfg in self._workspace.sinks.items() if is_readable(cfg))
