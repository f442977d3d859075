"""The control API under ``/_emulator/`` for tests and demos: inspect state, change keys out of band,
tune faults, reset. No auth, no faults, not counted. Answers are JSON; unknown keys are 404.

Routes::

    GET  /_emulator/state                          everything, secrets and internal fields included
    GET  /_emulator/faults                         the current knobs
    POST /_emulator/faults                         {any subset of the knobs} -> the knobs
    POST /_emulator/reset                          forget all keys and counts, restore start knobs
    POST /_emulator/questra/{org}/bulk             {"count": N, "prefix": "bulk-"} -> N new keys (secrets)
    POST /_emulator/textql/bulk                    {"count": N, "prefix": "bulk-"} -> N new records
    POST /_emulator/questra/{org}/{id}/revoke      mark revoked
    POST /_emulator/questra/{org}/{id}/expire      set expires_at to now - 1 s
    POST /_emulator/questra/{org}/{id}/delete      forget the key
    POST /_emulator/questra/{org}/{id}/use         {"at": RFC 3339, optional; default now} -> set last_used_at
    POST /_emulator/textql/{id}/patch              {ApiAccessKey or internal fields} -> the record
    POST /_emulator/textql/{id}/delete             forget the key

Every time the APIs write or compare, and the ``Date`` header of every reply, is on their clock:
the real time plus the ``clock_offset`` knob (seconds; negative: behind), as an API whose clock is
off.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import unquote

from .backend import Backend
from .clock import parse_timestamp
from .textql import PATCH_FIELDS, ConnectError, check_fields
from .wire import BadJson, Request, Response, json_response, parse_json_object

PREFIX = "/_emulator/"


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": "not_found" if status == 404 else "bad_request", "message": message})


class ControlApi:
    """Handles ``/_emulator/`` requests; the caller holds the backend lock."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def owns(self, request: Request) -> bool:
        """Whether ``request`` is for the control API."""
        return request.path.startswith(PREFIX)

    def handle(self, request: Request) -> Response:
        """Answer one control request."""
        parts = [unquote(p) for p in request.path[len(PREFIX) :].rstrip("/").split("/")]
        try:
            return self._dispatch(request, parts)
        except (BadJson, ValueError) as exc:
            return _error(400, str(exc))
        except ConnectError as exc:
            return _error(404 if exc.code == "not_found" else 400, exc.message)

    def _dispatch(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        if method == "GET" and parts == ["state"]:
            return json_response(200, self.backend.state())
        if method == "GET" and parts == ["faults"]:
            return json_response(200, self.backend.faults.snapshot())
        if method != "POST":
            return _error(404, f"no control route {method} {request.path}")
        if parts == ["faults"]:
            self.backend.faults.update(parse_json_object(request.body, empty_is_object=True))
            return json_response(200, self.backend.faults.snapshot())
        if parts == ["reset"]:
            self.backend.reset()
            return json_response(200, {"ok": True})
        if parts[-1] == "bulk" and len(parts) in (2, 3):
            return self._bulk(parts, request)
        if len(parts) == 4 and parts[0] == "questra":
            return self._questra(parts[1], parts[2], parts[3], request)
        if len(parts) == 3 and parts[0] == "textql":
            return self._textql(parts[1], parts[2], request)
        return _error(404, f"no control route {method} {request.path}")

    def _bulk(self, parts: list[str], request: Request) -> Response:
        """Create many keys in one call (fixtures and benchmarks); names are ``prefix + index``."""
        body = parse_json_object(request.body)
        count, prefix = body.get("count"), body.get("prefix", "bulk-")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 100_000:
            raise ValueError("count must be an integer between 0 and 100000")
        if not isinstance(prefix, str):
            raise ValueError("prefix must be a string")
        if parts == ["textql", "bulk"]:
            records = [self.backend.textql_store.create({"description": f"{prefix}{i}"}) for i in range(count)]
            return json_response(200, [dict(record) for record in records])
        if parts[0] != "questra" or len(parts) != 3:
            return _error(404, f"no control route POST {request.path}")
        now = self.backend.clock.now()
        keys = [self.backend.questra_store.create(parts[1], f"{prefix}{i}", None) for i in range(count)]
        return json_response(200, [key.with_secret(now) for key in keys])

    def _questra(self, org: str, key_id: str, action: str, request: Request) -> Response:
        store = self.backend.questra_store
        key = store.get(org, key_id)
        if key is None:
            return _error(404, f"questra key {key_id!r} not found in org {org!r}")
        if action == "revoke":
            key.revoked = True
        elif action == "expire":
            store.expire(org, key_id)
        elif action == "delete":
            store.delete(org, key_id)
            return json_response(200, {"ok": True})
        elif action == "use":
            key.last_used_at = _use_time(parse_json_object(request.body, empty_is_object=True), store.clock.now())
        else:
            return _error(404, f"unknown questra control action {action!r}")
        return json_response(200, key.with_secret(store.clock.now()))

    def _textql(self, key_id: str, action: str, request: Request) -> Response:
        store = self.backend.textql_store
        if action == "delete":
            store.delete(key_id)
            return json_response(200, {"ok": True})
        if action == "patch":
            changes: dict[str, Any] = parse_json_object(request.body)
            check_fields(changes, PATCH_FIELDS, "ApiAccessKey")
            return json_response(200, dict(store.update(key_id, changes, future=False)))
        return _error(404, f"unknown textql control action {action!r}")


def _use_time(body: dict[str, Any], now: datetime) -> datetime:
    """The instant a `use` control call records: the body's `at` (RFC 3339 with a zone), or now
    (the APIs' clock)."""
    at = body.get("at")
    if at is None:
        return now
    moment = parse_timestamp(at) if isinstance(at, str) else None
    if moment is None:
        raise ValueError("at must be an RFC 3339 date-time with a zone, e.g. 2025-06-01T09:30:00Z")
    return moment
