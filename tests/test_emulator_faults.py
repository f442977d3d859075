"""The emulator's fault knobs (SPEC §8), its control API for faults, and its process lifecycle."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from keyform.emulator import Emulator
from keyform.emulator.client import ControlError, EmulatorControl
from tests.conftest import loopback_client
from tests.openapi_schemas import QUESTRA, TEXTQL, validate, validate_response

MakeEmulator = Callable[..., Emulator]
QUESTRA_HEADERS = {"Authorization": "Bearer tok", "X-Org-Id": "org_a"}
TEXTQL_HEADERS = {"Authorization": "Bearer tok", "Connect-Protocol-Version": "1"}


def questra(emulator: Emulator) -> httpx.Client:
    return loopback_client(emulator.url, QUESTRA_HEADERS)


def textql(emulator: Emulator) -> httpx.Client:
    return loopback_client(emulator.url, TEXTQL_HEADERS)


def statuses(emulator: Emulator, count: int) -> list[int]:
    """Status codes of ``count`` sequential Questra list calls."""
    with questra(emulator) as http:
        return [http.get("/api-keys").status_code for _ in range(count)]


# ---------------------------------------------------------------------------------------- latency


def test_latency_delays_each_request_but_concurrent_requests_overlap(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(latency_ms=200)
    clients = [questra(emulator) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    durations: list[float] = []

    def call(http: httpx.Client) -> None:
        barrier.wait()
        started = time.perf_counter()
        assert http.get("/api-keys").status_code == 200
        durations.append(time.perf_counter() - started)

    threads = [threading.Thread(target=call, args=(http,)) for http in clients]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for http in clients:
        http.close()
    assert len(durations) == 8 and min(durations) >= 0.2
    assert elapsed < 0.6, f"8 concurrent requests with 200 ms latency took {elapsed:.2f} s"


def test_latency_never_slows_the_control_api(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(latency_ms=500)
    with EmulatorControl(emulator.url) as control:
        started = time.perf_counter()
        control.state()
        control.faults(latency_ms=0)
        assert time.perf_counter() - started < 0.3
    with questra(emulator) as http:
        started = time.perf_counter()
        http.get("/api-keys")
        assert time.perf_counter() - started < 0.3


# ------------------------------------------------------------------------------------ error rate


def test_a_seeded_error_rate_replays_the_same_failures(make_emulator: MakeEmulator) -> None:
    first, second = make_emulator(error_rate=0.5, seed=7), make_emulator(error_rate=0.5, seed=7)
    run = statuses(first, 40)
    assert set(run) == {200, 503}
    assert statuses(second, 40) == run
    with EmulatorControl(first.url) as control:
        control.reset()
        assert statuses(first, 40) == run
        assert control.state()["faults"]["injected"]["unavailable"] == run.count(503)


def test_error_rate_and_seed_can_be_set_at_runtime(
    make_emulator: MakeEmulator, emulator: Emulator, emu_control: EmulatorControl
) -> None:
    run = statuses(make_emulator(error_rate=0.3, seed=11), 30)
    emu_control.faults(error_rate=0.3, seed=11)
    assert statuses(emulator, 30) == run
    emu_control.faults(error_rate=0)
    assert set(statuses(emulator, 10)) == {200}


def test_injected_503_happens_before_anything_in_both_apis(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(error_rate=1.0)
    with questra(emulator) as q, textql(emulator) as t, EmulatorControl(emulator.url) as control:
        response = q.post("/api-keys", json={"name": "ci"})
        assert response.status_code == 503 and response.json()["message"]
        validate_response(QUESTRA, "/api-keys", "post", 400, response.json())  # the Error response schema
        response = t.post("/v1/api-keys/create", json={})
        assert response.status_code == 503 and response.json()["code"] == "unavailable"
        validate(TEXTQL, "connect.error", response.json())
        state = control.state()
        assert state["questra"]["orgs"] == {} and state["textql"]["keys"] == []
        assert state["requests"] == {"questra.create": 1, "textql.create": 1}


def test_faults_come_before_auth_checks(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(error_rate=1.0)
    with loopback_client(emulator.url) as anonymous:
        assert anonymous.get("/api-keys").status_code == 503


# ------------------------------------------------------------------------------------ rate limit


def test_rate_limit_answers_429_with_retry_after(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(rate_limit_rate=1.0)
    with questra(emulator) as q, textql(emulator) as t:
        response = q.get("/api-keys")
        assert (response.status_code, response.headers["retry-after"]) == (429, "1")
        assert response.json()["message"]
        response = t.post("/v1/api-keys", json={})
        assert (response.status_code, response.headers["retry-after"]) == (429, "1")
        assert response.json()["code"] == "resource_exhausted"


def test_retry_after_may_be_fractional(emulator: Emulator, emu_control: EmulatorControl) -> None:
    emu_control.faults(rate_limit_rate=1.0, retry_after=0.25)
    with questra(emulator) as http:
        assert http.get("/api-keys").headers["retry-after"] == "0.25"


# ---------------------------------------------------------------------------- drop after commit


def test_questra_create_commits_then_drops_the_connection(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(drop_after_commit_rate=1.0)
    with questra(emulator) as http, EmulatorControl(emulator.url) as control:
        with pytest.raises(httpx.TransportError):
            http.post("/api-keys", json={"name": "lost response"})
        listing = http.get("/api-keys")  # non-create calls are never dropped
        assert [k["name"] for k in listing.json()] == ["lost response"]
        assert control.state()["faults"]["injected"] == {"dropped": 1}


def test_textql_create_commits_then_drops_the_connection(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(drop_after_commit_rate=1.0)
    with textql(emulator) as http:
        with pytest.raises(httpx.TransportError):
            http.post("/v1/api-keys/create", json={"description": "lost response"})
        keys = http.post("/v1/api-keys", json={}).json()["apiAccessKeys"]
        assert [k["description"] for k in keys] == ["lost response"]


def test_a_refused_create_is_answered_not_dropped(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(drop_after_commit_rate=1.0)
    with questra(emulator) as http:
        assert http.post("/api-keys", json={"name": ""}).status_code == 400


# ---------------------------------------------------------------------------- control of faults


@pytest.mark.parametrize(
    "knobs",
    [
        {"error_rate": 1.5},
        {"rate_limit_rate": -0.1},
        {"latency_ms": -1},
        {"latency_ms": "100"},
        {"seed": "seven"},
        {"seed": 1.5},
        {"questra_list_shape": "xml"},
        {"retry_after": -1},
        {"drop_after_commit_rate": True},
        {"chaos": 1},
    ],
    ids=repr,
)
def test_invalid_fault_knobs_are_refused_and_change_nothing(
    emu_control: EmulatorControl, knobs: dict[str, Any]
) -> None:
    before = emu_control.state()["faults"]
    with pytest.raises(ControlError) as refused:
        emu_control.faults(**{"questra_list_shape": "data", **knobs})  # a valid knob beside the bad one
    assert refused.value.status == 400
    assert refused.value.message
    assert emu_control.state()["faults"] == before


def test_faults_answer_the_resulting_knobs(emu_control: EmulatorControl) -> None:
    knobs = emu_control.faults(latency_ms=5, seed=3, questra_list_shape="data")
    assert {k: knobs[k] for k in ("latency_ms", "seed", "questra_list_shape", "error_rate")} == {
        "latency_ms": 5,
        "seed": 3,
        "questra_list_shape": "data",
        "error_rate": 0.0,
    }


def test_faults_never_touch_the_control_api(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(error_rate=1.0, rate_limit_rate=1.0, drop_after_commit_rate=1.0)
    with EmulatorControl(emulator.url) as control:
        assert control.state()["requests"] == {}
        assert control.bulk_questra("org_a", 2)


def test_reset_restores_the_start_knobs(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(latency_ms=1, seed=5)
    with EmulatorControl(emulator.url) as control:
        control.faults(error_rate=1.0, latency_ms=0, seed=None)
        control.reset()
        knobs = control.state()["faults"]
        assert (knobs["error_rate"], knobs["latency_ms"], knobs["seed"], knobs["injected"]) == (0.0, 1, 5, {})


def test_unknown_control_routes_are_404(emu_control: EmulatorControl) -> None:
    for method, path in (("GET", "/nothing"), ("POST", "/questra/org/ak_x/rotate"), ("DELETE", "/state")):
        assert emu_control.request(method, path).status == 404


# ------------------------------------------------------------------------------------- lifecycle


def test_stop_returns_when_a_waiting_connection_is_gone_before_the_emulator_accepts_it(
        make_emulator: MakeEmulator) -> None:
    # serve_forever polls, then accepts: a connection gone in between (here another holder of the
    # socket takes it first) left a blocking accept waiting for the next one, and stop() with it
    emulator = make_emulator()
    server = emulator._server
    real = server.get_request
    taken: list[socket.socket] = []

    def taken_first() -> Any:
        conn, _ = socket.socket.accept(server.socket)  # the waiting connection goes elsewhere...
        taken.append(conn)
        server.get_request = real  # type: ignore[method-assign]
        return real()  # ...then the emulator's own accept

    server.get_request = taken_first  # type: ignore[method-assign]
    with socket.create_connection((emulator.host, emulator.port), timeout=5):
        deadline = time.monotonic() + 5
        while not taken and time.monotonic() < deadline:
            time.sleep(0.01)
        assert taken
        stopper = threading.Thread(target=emulator.stop, daemon=True)
        stopper.start()
        stopper.join(5)
        hung = stopper.is_alive()
        if hung:  # one more connection wakes the blocked accept: the failure is reported, not a hang
            socket.create_connection((emulator.host, emulator.port), timeout=5).close()
            stopper.join(5)
        assert not hung, "stop() hung in accept"
    taken[0].close()
    with pytest.raises(OSError):
        socket.create_connection((emulator.host, emulator.port), timeout=1)


def test_stop_closes_idle_keep_alive_connections(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator()
    with questra(emulator) as http:
        assert http.get("/api-keys").status_code == 200
        emulator.stop()
        with pytest.raises(httpx.TransportError):
            http.get("/api-keys")
    emulator.stop()  # idempotent


def test_module_entry_point_announces_its_url_and_exits_cleanly_on_sigterm() -> None:
    command = [sys.executable, "-m", "keyform.emulator", "--port", "0", "--error-rate", "1", "--seed", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        prefix = "keyform emulator listening on http://127.0.0.1:"
        assert line.startswith(prefix) and line[len(prefix) :].isdigit(), line
        with loopback_client(line.rsplit(" ", 1)[1], QUESTRA_HEADERS) as http:
            assert http.get("/api-keys").status_code == 503
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_client_that_hangs_up_before_its_reply_leaves_no_traceback(make_emulator: MakeEmulator,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    # a keyform whose deadline passed, or that was interrupted, resets its connection: the emulator
    # printed "Exception occurred during processing of request" and a traceback for each
    emulator = make_emulator(latency_ms=100)
    for _ in range(2):
        conn = socket.create_connection((emulator.host, emulator.port))
        conn.sendall(b"GET /api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nX-Org-Id: org_a\r\n\r\n")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # a reset, not a FIN: the emulator's write of the reply fails
    time.sleep(0.4)
    assert statuses(emulator, 1) == [200]  # still serving
    emulator.stop()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err
