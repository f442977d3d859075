"""In-memory implementations of the provider and sink seams, for pure applier/planner round trips.

Network behaviour is tested against the emulator over real HTTP elsewhere; these exist so the
property tests can run thousands of plan → apply → plan cycles quickly.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from keyform.durations import format_time
from keyform.errors import ProviderError
from keyform.kinds import kind
from keyform.model import header_of
from keyform.remote import CreateRequest, CreateResult, RemoteKey


class FakeProvider:
    """Keeps keys in a dict; returns a secret on create when the kind issues one."""

    _ids = itertools.count(1)

    def __init__(self, name: str, provider_type: str, clock: Any) -> None:
        self.name = name
        self.type = provider_type
        self.clock = clock
        self.keys: dict[str, RemoteKey] = {}
        self.inputs: dict[str, dict[str, str]] = {}
        self.calls: list[str] = []
        self.fail_on: set[str] = set()
        self._lock = threading.Lock()

    def list(self) -> list[RemoteKey] | None:
        self.calls.append("list")
        return list(self.keys.values())

    def create(self, request: CreateRequest) -> CreateResult:
        self.calls.append("create")
        if "create" in self.fail_on:
            raise ProviderError(f"{self.name}: create {request.address!r}: 500 boom", status=500)
        with self._lock:
            rid = f"k_{next(self._ids)}"
        now: datetime = self.clock()
        attrs = {n: request.attrs.get(n) for n in kind(self.type).remote_attributes}
        if "headers" in attrs:
            attrs["headers"] = {**dict(attrs["headers"] or {}),
                                **{h: v for p, v in request.secret_inputs.items()
                                   if (h := header_of(p)) is not None}}
        key = RemoteKey(rid, attrs, created_at=format_time(now), expires_at=request.expires_at)
        self.keys[rid] = key
        self.inputs[rid] = dict(request.secret_inputs)
        secret = f"sk_fake_{rid}" if kind(self.type).returns_secret else None
        return CreateResult(key, secret)

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        self.calls.append("update")
        old = self.keys[remote_id]
        merged = {**old.attrs, **{k: v for k, v in attrs.items() if k in kind(self.type).remote_attributes}}
        self.keys[remote_id] = replace(old, attrs=merged, expires_at=expires_at)
        return self.keys[remote_id]

    def delete(self, remote_id: str) -> None:
        self.calls.append("delete")
        if "delete" in self.fail_on:
            raise ProviderError(f"{self.name}: revoke {remote_id}: 503 unavailable", status=503)
        if remote_id in self.keys:
            if self.type == "questra":
                self.keys[remote_id] = replace(self.keys[remote_id], revoked=True)
            else:
                del self.keys[remote_id]

    def close(self) -> None:
        pass


class MemorySink:
    readable = True

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def write(self, address: str, name: str, secret: str) -> None:
        self.entries[name] = secret

    def read(self, name: str) -> str | None:
        return self.entries.get(name)

    def remove(self, name: str) -> None:
        self.entries.pop(name, None)
