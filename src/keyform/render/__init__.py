"""Rendering: plans, reports and apply progress as text, Markdown, JSON and graphs."""

from __future__ import annotations


def plural(n: int, noun: str) -> str:
    """`1 key`, `2 keys`, `0 keys`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
