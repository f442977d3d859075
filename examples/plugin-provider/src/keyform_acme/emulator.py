"""A standard-library emulator of the Acme keys API, with faults for tests (imports nothing else).

    with AcmeEmulator(tokens={"t"}) as emu: ...   # emu.url; emu.faults(...); emu.keys()

API (bearer token; an unknown token is 401 and the error echoes part of it, as careless servers do,
so the client's scrubbing is tested; a read-only token gets 403 on writes):
    GET    /v1/projects/{p}/keys?limit=N&cursor=C   {"items": [...], "next_cursor": str|null}
    POST   /v1/projects/{p}/keys                     {"name", "scopes", "expires_at"?} -> 201 key + "secret"
    PATCH  /v1/projects/{p}/keys/{id}                {"scopes"} -> 200 key; 404 unknown
    DELETE /v1/projects/{p}/keys/{id}                204; 404 unknown
Control (no auth): POST /_control/faults {"status": N|null, "drop_after_commit": bool, "page_size": N},
GET /_control/state, POST /_control/reset.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SCOPES = ("read", "write", "admin")


class _State:
    def __init__(self, tokens: set[str] | None, read_only: set[str]) -> None:
        self.lock = threading.Lock()
        self.tokens = tokens
        self.read_only = read_only
        self.keys: dict[str, dict[str, Any]] = {}  # id -> key (secret included), insertion ordered
        self.status: int | None = None
        self.drop_after_commit = False
        self.page_size = 50
        self.requests = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message}}, headers)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        body = self._body() if method in ("POST", "PATCH") else {}
        st = self.server.state
        if parts[:1] == ["_control"]:
            return self._control(method, parts[1:], body)
        with st.lock:
            st.requests += 1
            if st.status is not None:
                retry = {"Retry-After": "0"} if st.status in (429, 503) else None
                return self._error(st.status, "injected fault", retry)
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if not token or (st.tokens is not None and token not in st.tokens and token not in st.read_only):
            return self._error(401, f"invalid token {token[:24]}")  # echoes the token: the client must scrub
        if len(parts) < 4 or parts[:2] != ["v1", "projects"] or parts[3] != "keys" or body is None:
            return self._error(404 if body is not None else 400, "no such route" if body is not None else "bad JSON")
        project, rest = parts[2], parts[4:]
        if method != "GET" and token in st.read_only:
            return self._error(403, "this token may only read")
        if method == "GET" and not rest:
            return self._list(project, parse_qs(url.query))
        if method == "POST" and not rest:
            return self._create(project, body)
        if method in ("PATCH", "DELETE") and len(rest) == 1:
            return self._change(method, project, rest[0], body)
        return self._error(405, "method not allowed")

    def _list(self, project: str, query: dict[str, list[str]]) -> None:
        st = self.server.state
        with st.lock:
            mine = [k for k in st.keys.values() if k["project"] == project]
            limit = min(int((query.get("limit") or ["100"])[0]), st.page_size)
            start = int((query.get("cursor") or ["0"])[0])  # an opaque cursor to the client
            page = mine[start:start + limit]
            nxt = str(start + limit) if start + limit < len(mine) else None
        self._send(200, {"items": [_public(k) for k in page], "next_cursor": nxt})

    def _create(self, project: str, body: dict[str, Any]) -> None:
        name, scopes = body.get("name"), body.get("scopes", [])
        if (not isinstance(name, str) or not name or not isinstance(scopes, list)
                or any(s not in SCOPES for s in scopes)):
            return self._error(422, "name must be a non-empty string and scopes a list of read, write, admin")
        st = self.server.state
        key: dict[str, Any] = {"id": "acme_" + secrets.token_hex(8), "project": project, "name": name, "scopes": scopes,
               "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "expires_at": body.get("expires_at"), "status": "active",
               "secret": "acme_sk_" + secrets.token_urlsafe(24)}
        with st.lock:
            st.keys[key["id"]] = key
            drop = st.drop_after_commit
        if drop:  # committed, then the connection is lost before the answer
            self.close_connection = True
            self.connection.shutdown(2)
            return None
        self._send(201, {**_public(key), "secret": key["secret"]})

    def _change(self, method: str, project: str, key_id: str, body: dict[str, Any]) -> None:
        st = self.server.state
        with st.lock:
            key = st.keys.get(key_id)
            if key is None or key["project"] != project:
                return self._error(404, f"no key {key_id!r}")
            if method == "DELETE":
                del st.keys[key_id]
                return self._send(204)
            scopes = body.get("scopes")
            if not isinstance(scopes, list) or any(s not in SCOPES for s in scopes):
                return self._error(422, "scopes must be a list of read, write, admin")
            key["scopes"] = scopes
            return self._send(200, _public(key))

    def _control(self, method: str, parts: list[str], body: Any) -> None:
        st = self.server.state
        with st.lock:
            if method == "GET" and parts == ["state"]:
                return self._send(200, {"keys": list(st.keys.values()), "requests": st.requests})
            if method == "POST" and parts == ["reset"]:
                st.keys.clear()
                st.status, st.drop_after_commit, st.page_size = None, False, 50
                return self._send(200, {"ok": True})
            if method == "POST" and parts == ["faults"] and isinstance(body, dict):
                if "status" in body:
                    st.status = body["status"]
                if "drop_after_commit" in body:
                    st.drop_after_commit = bool(body["drop_after_commit"])
                if "page_size" in body:
                    st.page_size = int(body["page_size"]) or 50
                return self._send(200, {"status": st.status, "drop_after_commit": st.drop_after_commit,
                                        "page_size": st.page_size})
        return self._error(404, "no such control route")


def _public(key: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in key.items() if k not in ("secret", "project")}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class AcmeEmulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, tokens: set[str] | None = None,
                 read_only_tokens: set[str] | None = None) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.state = _State(tokens, set(read_only_tokens or ()))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> AcmeEmulator:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AcmeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def keys(self) -> list[dict[str, Any]]:
        with self._server.state.lock:
            return [dict(k) for k in self._server.state.keys.values()]

    def faults(self, status: int | None = None, drop_after_commit: bool = False, page_size: int = 0) -> None:
        st = self._server.state
        with st.lock:
            st.status, st.drop_after_commit, st.page_size = status, drop_after_commit, page_size or 50


def main() -> None:
    parser = argparse.ArgumentParser(description="The Acme keys API emulator (loopback).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--token", action="append", help="accept only these tokens (default: any)")
    args = parser.parse_args()
    emu = AcmeEmulator(args.host, args.port, set(args.token) if args.token else None)
    print(f"acme emulator on {emu.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        emu._server.serve_forever()


if __name__ == "__main__":
    main()
