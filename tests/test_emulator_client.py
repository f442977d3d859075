"""keyform.emulator.client.EmulatorControl, the control API's one client, against real servers on
127.0.0.1: refusals as ControlError, path segments quoted, a dropped keep-alive connection reopened,
one client shared by threads; and the emulator package, client included, imports only the standard
library."""

from __future__ import annotations

import ast
import json
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import keyform.emulator
from keyform.emulator import Emulator
from keyform.emulator.client import ControlError, EmulatorControl, format_instant

ORG = "org_client"


def test_a_refusal_is_a_control_error_with_the_emulators_answer(emu_control: EmulatorControl) -> None:
    with pytest.raises(ControlError) as missing:
        emu_control.expire_questra(ORG, "ak_missing")
    assert (missing.value.status, missing.value.error) == (404, "not_found")
    assert "ak_missing" in missing.value.message
    with pytest.raises(ControlError) as bad:
        emu_control.faults(error_rate=2)
    assert (bad.value.status, bad.value.error) == (400, "bad_request")
    assert emu_control.request("POST", "/faults", {"error_rate": 2}).status == 400  # request() never raises


def test_org_and_key_ids_are_sent_as_single_path_segments(emu_control: EmulatorControl) -> None:
    org = "team a/b?c"
    key = emu_control.bulk_questra(org, 1)[0]
    assert emu_control.revoke_questra(org, key["id"])["revoked"] is True
    assert [k["revoked"] for k in emu_control.questra_keys(org)] == [True]
    assert emu_control.questra_keys("team a") == []


def test_use_takes_a_zoned_datetime_or_a_string(emu_control: EmulatorControl) -> None:
    key = emu_control.bulk_questra(ORG, 1)[0]
    at = datetime(2026, 12, 1, 11, 30, tzinfo=timezone(timedelta(hours=1)))
    assert format_instant(at) == "2026-12-01T10:30:00Z"
    emu_control.use_questra(ORG, key["id"], at)
    assert emu_control.questra_keys(ORG)[0]["last_used_at"] == "2026-12-01T10:30:00Z"
    emu_control.use_questra(ORG, key["id"], "2026-12-02T08:00:00Z")
    assert emu_control.questra_keys(ORG)[0]["last_used_at"] == "2026-12-02T08:00:00Z"
    with pytest.raises(ValueError):
        format_instant(datetime(2026, 12, 1))


class _ClosingHandler(BaseHTTPRequestHandler):
    """Answers every request as HTTP/1.1 keep-alive, then closes the connection anyway (an idle
    connection the server dropped), and counts the connections it saw."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1

    def do_GET(self) -> None:
        body = json.dumps({"requests": {"questra.list": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def closing_server() -> Iterator[str]:
    _ClosingHandler.connections = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_keep_alive_connection_the_server_closed_is_reopened(closing_server: str) -> None:
    with EmulatorControl(closing_server) as control:
        for _ in range(3):
            assert control.requests() == {"questra.list": 1}
    assert _ClosingHandler.connections == 3


def test_one_client_shared_by_threads(emulator: Emulator) -> None:
    errors: list[BaseException] = []

    with EmulatorControl(emulator.url) as control:
        def work(n: int) -> None:
            try:
                for i in range(10):
                    control.bulk_questra(ORG, 1, prefix=f"t{n}-{i}-")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len({k["name"] for k in control.questra_keys(ORG)}) == 60


def test_the_emulator_package_client_included_imports_only_the_standard_library() -> None:
    package = Path(keyform.emulator.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{path.name}: imports from outside keyform.emulator"
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names | {"__future__"}, f"{path.name} imports {name}"
