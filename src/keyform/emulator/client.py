"""A client of the emulator's control API (``/_emulator/``, see ``control.py`` and docs/emulator.md):
inspect the emulator's state and change it out of band. Standard library only (``http.client`` and
``json``), like the rest of the emulator, so tests, benchmarks and the conformance kit share one.

    with EmulatorControl(emulator.url) as control:
        control.revoke_questra("org_a", key_id)
        assert control.requests()["questra.create"] == 1

Answers are the emulator's JSON as plain ``dict``/``list`` (they mirror the wire, secrets included).
A refusal (a 4xx or 5xx) raises :class:`ControlError`; :meth:`EmulatorControl.request` answers any
status without raising, for tests of the control API itself.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

PREFIX = "/_emulator"
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class ControlResponse:
    """One control-API answer: its status and its JSON body (``None`` when empty)."""

    status: int
    body: Any


class ControlError(Exception):
    """The emulator refused a control call: ``status`` (e.g. 404 for an unknown key, 400 for a bad
    body), ``error`` (``not_found`` or ``bad_request``) and ``message``, from its answer."""

    def __init__(self, method: str, path: str, status: int, error: str, message: str) -> None:
        super().__init__(f"{method} {path}: {status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


def _segment(value: str) -> str:
    return quote(value, safe="")


def format_instant(at: datetime) -> str:
    """``at`` as the RFC 3339 UTC instant the control API takes (``2026-12-01T10:00:00Z``)."""
    if at.tzinfo is None:
        raise ValueError("the instant needs a time zone")
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class EmulatorControl:
    """The control API of the emulator at ``base_url`` (its root, e.g. ``http://127.0.0.1:8787``).

    One keep-alive connection, used by one call at a time (safe to share between threads); close it
    with :meth:`close` or use the client as a context manager. ``timeout`` bounds each socket wait.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the emulator's URL must be http://HOST:PORT, not {base_url!r}")
        self.url = base_url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._root = parts.path.rstrip("/") + PREFIX
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------------------------ transport

    def request(self, method: str, path: str, body: Any = None) -> ControlResponse:
        """``METHOD /_emulator{path}`` with ``body`` as JSON (none when ``None``); any status is answered."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
                try:
                    self._conn.request(method, self._root + path, body=data, headers=headers)
                    response = self._conn.getresponse()
                    raw = response.read()
                except _STALE:
                    self._conn.close()
                    self._conn = None
                    if fresh or attempt == 2:  # only a reused connection the server closed is retried
                        raise
                    continue
                except BaseException:
                    self._conn.close()
                    self._conn = None
                    raise
                if response.will_close:
                    self._conn.close()
                    self._conn = None
                return ControlResponse(response.status, json.loads(raw) if raw else None)
        raise AssertionError("unreachable")  # the loop returns or raises

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Like :meth:`request`, but answers only the JSON body and raises :class:`ControlError` on a refusal."""
        answer = self.request(method, path, body)
        if answer.status >= 400:
            detail = answer.body if isinstance(answer.body, dict) else {}
            raise ControlError(method, path, answer.status, str(detail.get("error", "")),
                               str(detail.get("message", answer.body)))
        return answer.body

    # --------------------------------------------------------------------------------- inspection

    def state(self) -> dict[str, Any]:
        """Everything: ``questra.orgs[org]`` (keys with secrets), ``textql.keys`` (with ``authValue``...),
        ``requests`` (count per operation, e.g. ``"questra.create"``), ``faults`` (knobs + injected counts)."""
        return dict(self.call("GET", "/state"))

    def requests(self) -> dict[str, int]:
        """Requests seen per API operation, e.g. ``{"questra.create": 2, "textql.list": 1}``."""
        return dict(self.state()["requests"])

    def questra_keys(self, org: str) -> list[dict[str, Any]]:
        """The org's Questra keys as stored, secrets included (none: an empty list)."""
        return list(self.state()["questra"]["orgs"].get(org, []))

    def textql_keys(self) -> list[dict[str, Any]]:
        """The TextQL keys as stored, ``authValue``/``authValueExtra``/``isPrivate`` included."""
        return list(self.state()["textql"]["keys"])

    # ------------------------------------------------------------------------------ faults, reset

    def faults(self, **knobs: Any) -> dict[str, Any]:
        """Set any of the fault knobs (``latency_ms``, ``error_rate``, ``rate_limit_rate``,
        ``drop_after_commit_rate``, ``retry_after``, ``seed``, ``questra_list_shape``, the rate-limit
        ones...; all or nothing) and answer the resulting knobs. No knobs: just answer them."""
        return dict(self.call("POST", "/faults", knobs))

    def latency(self, ms: float) -> None:
        """Delay every API answer by ``ms`` milliseconds from now on."""
        self.faults(latency_ms=ms)

    def reset(self) -> None:
        """Forget every key and request count; restore the knobs the emulator started with."""
        self.call("POST", "/reset")

    # ------------------------------------------------------------------------------------ Questra

    def bulk_questra(self, org: str, count: int, prefix: str = "bulk-") -> list[dict[str, Any]]:
        """Create ``count`` keys named ``prefix0``... in ``org`` in one call; answers them with secrets."""
        return list(self.call("POST", f"/questra/{_segment(org)}/bulk", {"count": count, "prefix": prefix}))

    def revoke_questra(self, org: str, key_id: str) -> dict[str, Any]:
        """Mark the key revoked; answers it."""
        return self._questra(org, key_id, "revoke")

    def expire_questra(self, org: str, key_id: str) -> dict[str, Any]:
        """Set the key's ``expires_at`` to one second ago; answers it."""
        return self._questra(org, key_id, "expire")

    def delete_questra(self, org: str, key_id: str) -> None:
        """Forget the key."""
        self._questra(org, key_id, "delete")

    def use_questra(self, org: str, key_id: str, at: datetime | str | None = None) -> dict[str, Any]:
        """Set the key's ``last_used_at`` to ``at`` (a zoned datetime or an RFC 3339 string; default
        now), as a request authenticated with its secret does; answers the key."""
        if at is None:
            return self._questra(org, key_id, "use")
        return self._questra(org, key_id, "use", {"at": format_instant(at) if isinstance(at, datetime) else at})

    def _questra(self, org: str, key_id: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(self.call("POST", f"/questra/{_segment(org)}/{_segment(key_id)}/{action}", body))

    # ------------------------------------------------------------------------------------- TextQL

    def bulk_textql(self, count: int, prefix: str = "bulk-") -> list[dict[str, Any]]:
        """Create ``count`` TextQL keys (descriptions ``prefix0``...) in one call; answers the records."""
        return list(self.call("POST", "/textql/bulk", {"count": count, "prefix": prefix}))

    def patch_textql(self, key_id: str, **fields: Any) -> dict[str, Any]:
        """Change ApiAccessKey (or internal) fields out of band, e.g. ``hosts=[...]``; a past
        ``expiresAt`` is allowed. Answers the stored record."""
        return dict(self.call("POST", f"/textql/{_segment(key_id)}/patch", fields))

    def delete_textql(self, key_id: str) -> None:
        """Forget the key."""
        self.call("POST", f"/textql/{_segment(key_id)}/delete")
