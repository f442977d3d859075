"""The emulator's rate limit knob: a token bucket per organisation (or per token) that answers 429
(TextQL: `resource_exhausted`) with the seconds until the bucket holds a request again. Real HTTP on
127.0.0.1; rates are tiny so a bucket never refills during a test's burst."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from keyform.emulator import Emulator
from keyform.emulator.__main__ import parse_args
from keyform.emulator.client import EmulatorControl
from keyform.emulator.faults import Faults, FaultSettings
from tests.conftest import loopback_client

MakeEmulator = Callable[..., Emulator]


def questra(emulator: Emulator, org: str, token: str = "tok-a") -> httpx.Client:
    return loopback_client(emulator.url, {"Authorization": f"Bearer {token}", "X-Org-Id": org})


def textql(emulator: Emulator, token: str = "tok-a") -> httpx.Client:
    return loopback_client(emulator.url, {"Authorization": f"Bearer {token}", "Connect-Protocol-Version": "1"})


def test_a_burst_beyond_the_bucket_gets_429_with_the_wait_until_the_next_token(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(rate_limit_rps=0.5, rate_limit_burst=2)
    with questra(emulator, "org_a") as http, EmulatorControl(emulator.url) as control:
        codes = [http.get("/api-keys").status_code for _ in range(2)]
        refused = http.post("/api-keys", json={"name": "x"})
        assert codes == [200, 200] and refused.status_code == 429
        assert 1.9 < float(refused.headers["Retry-After"]) <= 2.0  # one token at 0.5/s
        assert refused.json() == {"error": "rate_limited", "message": "rate limit exceeded (0.5 requests/s)"}
        state = control.state()
        assert state["questra"]["orgs"] == {}  # the refused create did nothing
        assert state["faults"]["injected"] == {"throttled": 1}
        assert state["requests"] == {"questra.list": 2, "questra.create": 1}


def test_each_org_has_its_own_bucket_and_its_own_rate(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(rate_limit_rps=0.5, rate_limit_burst=1, rate_limits={"org_b": 0.0})
    with questra(emulator, "org_a") as a, questra(emulator, "org_a", "tok-b") as a2, questra(emulator, "org_b") as b:
        assert a.get("/api-keys").status_code == 200
        assert a2.get("/api-keys").status_code == 429  # same org, another token: the org's bucket
        assert [b.get("/api-keys").status_code for _ in range(5)] == [200] * 5  # org_b: 0 = unlimited
    with questra(emulator, "org_c") as c:
        assert [c.get("/api-keys").status_code for _ in range(2)] == [200, 429]


def test_the_token_scope_gives_each_token_its_bucket(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(rate_limit_rps=0.5, rate_limit_burst=1, rate_limit_scope="token")
    with questra(emulator, "org_a", "tok-a") as a, questra(emulator, "org_a", "tok-b") as b:
        assert [a.get("/api-keys").status_code, b.get("/api-keys").status_code] == [200, 200]
        assert [a.get("/api-keys").status_code, b.get("/api-keys").status_code] == [429, 429]


def test_textql_answers_resource_exhausted_with_retry_after(make_emulator: MakeEmulator) -> None:
    emulator = make_emulator(rate_limit_rps=0.25, rate_limit_burst=1)
    with textql(emulator) as http:
        assert http.post("/v1/api-keys", json={}).status_code == 200
        refused = http.post("/v1/api-keys/create", json={"hosts": ["h"]})
        assert refused.status_code == 429 and 3.9 < float(refused.headers["Retry-After"]) <= 4.0
        assert refused.json() == {"code": "resource_exhausted", "message": "rate limit exceeded (0.25 requests/s)"}


def test_the_knobs_change_at_run_time_and_refill_every_bucket(emulator: Emulator) -> None:
    with questra(emulator, "org_a") as http, EmulatorControl(emulator.url) as control:
        control.faults(rate_limit_rps=0.5, rate_limit_burst=1)
        assert [http.get("/api-keys").status_code for _ in range(2)] == [200, 429]
        knobs = control.faults(rate_limits={"org_a": 1000}, rate_limit_burst=0)  # burst 0: 1 s worth
        assert knobs["rate_limits"] == {"org_a": 1000} and knobs["rate_limit_rps"] == 0.5
        assert [http.get("/api-keys").status_code for _ in range(3)] == [200] * 3
        control.reset()
        assert control.faults()["rate_limit_rps"] == 0.0


@pytest.mark.parametrize(("knobs", "message"), [
    ({"rate_limit_rps": -1}, "rate_limit_rps and rate_limit_burst must be between 0 and 1000000"),
    ({"rate_limit_rps": "20"}, "rate_limit_rps must be a number"),
    ({"rate_limit_burst": True}, "rate_limit_burst must be a number"),
    ({"rate_limit_scope": "ip"}, "rate_limit_scope must be one of org, token"),
    ({"rate_limits": {"org_a": "fast"}}, "rate_limits must be an object of org id (or token) → requests/s"),
    ({"rate_limits": ["org_a"]}, "rate_limits must be an object of org id (or token) → requests/s"),
    ({"rate_limits": {"org_a": -5}}, "rate_limits['org_a'] must be between 0 and 1000000"),
])
def test_bad_knobs_are_refused_and_change_nothing(emulator: Emulator, knobs: dict[str, object], message: str) -> None:
    with EmulatorControl(emulator.url) as control:
        response = control.request("POST", "/faults", knobs)
        assert response.status == 400 and response.body["message"] == message
        assert control.faults()["rate_limit_rps"] == 0.0


def test_the_bucket_refills_at_its_rate() -> None:
    faults = Faults(FaultSettings(rate_limit_rps=10, rate_limit_burst=2))
    assert [faults.take_token("o", 0.0), faults.take_token("o", 0.0)] == [None, None]
    assert faults.take_token("o", 0.0) == pytest.approx(0.1)
    assert faults.take_token("o", 0.05) == pytest.approx(0.05)
    assert faults.take_token("o", 0.1) is None
    assert faults.take_token("o", 10.0) is None and faults.take_token("o", 10.0) is None  # capped at burst 2
    assert faults.take_token("o", 10.0) is not None


def test_command_line_flags() -> None:
    config = parse_args(["--rate-limit-rps", "20", "--rate-limit-burst", "5", "--rate-limit-scope", "token",
                         "--org-rate-limit", "org_a=10", "--org-rate-limit", "org_b=40"])
    assert (config.rate_limit_rps, config.rate_limit_burst, config.rate_limit_scope) == (20, 5, "token")
    assert config.rate_limits == {"org_a": 10.0, "org_b": 40.0}
    with pytest.raises(SystemExit):
        parse_args(["--org-rate-limit", "org_a"])
