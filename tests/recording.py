"""A recording transport: the real httpx.HTTPTransport, plus a log of every request a client sent.

Pass it as `transport=` to a provider aimed at the emulator, then check each recorded body against
the vendor's schema; the requests still travel over real HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # decoded JSON, or None when the request had no body


class RecordingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.sent: list[Sent] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        body = json.loads(content) if content else None
        self.sent.append(Sent(request.method, request.url.path, dict(request.headers), body))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    def to(self, path: str) -> list[Sent]:
        return [s for s in self.sent if s.path == path]
