"""Sinks: where newly minted secrets go. One small interface, one module per type."""

from __future__ import annotations

from typing import Protocol


class Sink(Protocol):
    """Write durably, optionally read back, remove. `name` is the entry name inside the sink."""

    readable: bool

    def write(self, address: str, name: str, secret: str) -> None:
        """Store the secret; when this returns, the secret is on stable storage."""

    def read(self, name: str) -> str | None:
        """The stored secret, or None if absent. Only called when `readable` is True."""

    def remove(self, name: str) -> None:
        """Delete the entry; an absent entry is not an error."""
