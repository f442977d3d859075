"""The emulator's whole in-memory world behind one lock, and the order in which a request meets it.

An API request is counted, checked against its organisation's (or token's) rate limit (a token
bucket: 429 / ``resource_exhausted`` with ``Retry-After``), delayed (``latency_ms``, slept outside the
lock so concurrent requests overlap), possibly failed by an injected fault before anything happens,
then handled under the lock; a successful create may then lose its response (``drop_after_commit_rate``) after its
effect is committed. Control requests skip counting and faults.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from .clock import Clock
from .faults import Faults, FaultSettings
from .questra import QuestraApi, QuestraStore
from .textql import TextqlApi, TextqlStore
from .wire import Request, Response, Route, json_response


class Backend:
    """Stores, fault knobs and request counters; every read or write holds :attr:`lock`."""

    def __init__(self, settings: FaultSettings, tokens: frozenset[str] | None,
                 read_only_tokens: frozenset[str] = frozenset()) -> None:
        self.lock = threading.Lock()
        self.initial_settings = replace(settings)
        self.faults = Faults(settings)
        self.requests: Counter[str] = Counter()
        self.clock = Clock(lambda: self.faults.settings.clock_offset)
        self.questra_store = QuestraStore(self.clock)
        self.textql_store = TextqlStore(self.clock)
        self.questra = QuestraApi(self.questra_store, self.faults, tokens, read_only_tokens)
        self.textql = TextqlApi(self.textql_store, self.faults, tokens, read_only_tokens)

    def serve_api(self, request: Request) -> Response | None:
        """Answer an API request; ``None`` when no API owns its path."""
        for api in (self.questra, self.textql):
            route = api.match(request)
            if route is not None:
                return self._run(api, route, request)
        return None

    def _run(self, api: QuestraApi | TextqlApi, route: Route, request: Request) -> Response:
        bucket = api.rate_bucket(request)
        with self.lock:
            self.requests[route.name] += 1
            latency_ms = self.faults.settings.latency_ms
            wait = self.faults.take_token(bucket)
            fault = self.faults.before_request() if wait is None else None
        if latency_ms > 0:
            time.sleep(latency_ms / 1000)
        if wait is not None:
            return api.throttle_response(wait, self.faults.settings.rate_for(bucket))
        if fault is not None:
            return api.fault_response(fault)
        with self.lock:
            response = route.handle(request)
            if route.creates and response.status < 300 and self.faults.drop_after_commit():
                return Response(0, drop=True)
        return response

    def reset(self) -> None:
        """Forget every key and count; restore the knobs (and the seed) given at start. Caller holds the lock."""
        self.questra_store.clear()
        self.textql_store.clear()
        self.requests.clear()
        self.faults.reset(self.initial_settings)

    def state(self) -> dict[str, Any]:
        """Everything, secrets and internal fields included. Caller holds the lock."""
        return {
            "questra": {"orgs": self.questra_store.dump()},
            "textql": {"keys": self.textql_store.dump()},
            "requests": dict(sorted(self.requests.items())),
            "faults": self.faults.snapshot(),
        }


def not_found(request: Request) -> Response:
    """The answer for a path no API and no control route owns."""
    message = f"no route for {request.method} {request.path}"
    return json_response(404, {"error": "not_found", "code": "not_found", "message": message})
