"""Plain values that cross the seam between the HTTP server and the emulated APIs.

The API modules never touch sockets: they take a :class:`Request` and return a :class:`Response`.
That keeps them testable and keeps every byte on the wire decided in one place (``server.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Request:
    """One HTTP request: ``path`` has no query string; ``headers`` keys are lower case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or ``None`` when absent."""
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Response:
    """One HTTP response; ``body`` is already serialised. ``drop`` closes the socket unanswered."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass(frozen=True)
class Route:
    """A matched API operation: ``name`` keys the request counters, ``creates`` enables drop faults."""

    name: str
    handle: Callable[[Request], Response]
    creates: bool = False


class BadJson(ValueError):
    """The request body is not a JSON object."""


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    """Serialise ``payload`` once, compactly, as the body of a JSON response."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, {"Content-Type": JSON_TYPE, **(headers or {})})


def empty_response(status: int) -> Response:
    """A response with no body (e.g. 204)."""
    return Response(status)


def parse_json_object(body: bytes, *, empty_is_object: bool = False) -> dict[str, Any]:
    """Decode a request body that must be a JSON object; raise :class:`BadJson` otherwise."""
    if not body.strip():
        if empty_is_object:
            return {}
        raise BadJson("request body is empty; a JSON object is required")
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadJson(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadJson("request body must be a JSON object")
    return value


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; ``None`` when absent or empty."""
    value = request.header("Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def format_retry_after(seconds: float) -> str:
    """``Retry-After`` value: whole seconds as an integer (``"1"``), otherwise a decimal (``"0.05"``)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:g}"
