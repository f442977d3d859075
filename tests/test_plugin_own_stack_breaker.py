"""The breaker (`Limiter.ended`) for a plug-in with an HTTP stack of its own, paced a call at a time
(providers/foreign.py).

Left open in the rate-limit code: keyform cannot tell whether a plug-in retried the 429 it raises
(`ProviderError(status=429)`, the contract's rate refusal), so none of those 429s counted toward the
breaker. Against an API that refused everything, every change of the apply was sent and refused in
turn (1,000 changes: 1,000 refusals, paced only by the pauses), where a built-in instance stops after
3 calls refused to their end. A plug-in's 429 now counts as a call refused to its end once the
instance has answered nothing but 429s for its `deadline` (from the sending of the first of them),
as a built-in call retried against refusals to its deadline ends refused; a burst of 429s, or 429s
between accepted calls, never trips it. The plug-in here is a real entry point of a distribution on
PYTHONPATH, sending with urllib (not keyform's HttpClient), run by the keyform CLI on 127.0.0.1."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError
from keyform.model import RateLimit
from keyform.providers.ratelimit import BREAK_AFTER
from keyform.remote import CreateRequest, CreateResult, RemoteKey
from tests import fakedist
from tests.hostile import Reply, Seen, hostile
from tests.test_plugin_rate_and_failures import _open_own, _OwnStack, _request

PLUGIN = '''
import json
import urllib.error
import urllib.request

from keyform.errors import ProviderError
from keyform.remote import CreateResult, RemoteKey
from keyform.typeregistry import ProviderType


class OwnHttp:
    """Questra's create over urllib; no retries: a 429 is raised as the contract says."""

    def __init__(self, name, base_url, token, org):
        self.name, self._url = name, base_url + "/api-keys"
        self._headers = {"Authorization": "Bearer " + token, "X-Org-Id": org, "Content-Type": "application/json"}

    def list(self):
        return []

    def create(self, request):
        data = json.dumps({"name": request.address}).encode()
        sent = urllib.request.Request(self._url, data=data, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(sent, timeout=10) as reply:
                payload = json.load(reply)
        except urllib.error.HTTPError as exc:
            after = exc.headers.get("Retry-After")
            raise ProviderError(f"{self.name}: create {request.address!r}: {exc.code} refused", status=exc.code,
                                retry_after=float(after) if after else None) from None
        return CreateResult(RemoteKey(id=payload["id"], attrs={"name": request.address}), payload["secret"])

    def update(self, remote_id, attrs, expires_at):
        raise ProviderError(f"{self.name}: update: not supported")

    def delete(self, remote_id):
        pass

    def close(self):
        pass


OWN_HTTP = ProviderType(
    name="own-http", returns_secret=True, attributes=("name",), remote_attributes=frozenset({"name"}),
    options_schema={"required": ["org"], "properties": {"org": {"type": "string"}}},
    key_schema={"properties": {"name": {"type": "string"}}}, description="test plug-in: its own HTTP stack",
    open=lambda config, token, org_id, **kw: OwnHttp(config.name, config.base_url, token, config.options["org"]))
'''


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    return fakedist.install(tmp_path / "site", "kf-own-http", "1.0", "[keyform.providers]\nown-http = kf_own_http:OWN_HTTP\n",
                            "kf_own_http", PLUGIN)


def _project(tmp_path: Path, url: str, keys: int, org: str, deadline: str = "60s") -> Project:
    project = Project(tmp_path / "p", url)
    project._one_provider(textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: own-http
          base_url: {url}
          token: {{env: QUESTRA_TOKEN}}
          org: {org}
          deadline: {deadline}
        """), "  "), "".join(f"k{i:02d}:\n  provider: pp\n" for i in range(keys)))
    return project


def _summary(stdout: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    summary = next(e for e in events if e.get("type") == "change_summary")
    return next(r for r in summary["rate_limits"] if r["provider"] == "pp"), events


def test_a_plugin_whose_429s_go_on_for_its_deadline_is_left_alone(tmp_path: Path, emulator: Emulator,
                                                                 plugin_env: dict[str, str]) -> None:
    posts: list[float] = []

    def refuse(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":
            posts.append(time.monotonic())
            return Reply(429, b'{"error":{"code":"rate_limited","message":"slow down"}}',
                         {"Content-Type": "application/json", "Retry-After": "1"})
        return None

    with hostile(upstream=emulator.url) as server:
        server.script = refuse
        project = _project(tmp_path, server.url, 30, "org_refusing", deadline="2s")
        started = time.monotonic()
        res = project.run_process("apply", "--auto-approve", "--parallelism", "4", "--format", "json",
                                  env=plugin_env)
        took = time.monotonic() - started
    assert res.exit_code == 1, res.tail()
    limits, events = _summary(res.stdout)
    # old code: all 30 creates sent and refused, one pause after another (~10 s); never stopped
    assert limits["stopped_sending"] is True, limits
    assert len(posts) < 20 and posts[-1] - posts[0] >= 2.0, [round(p - posts[0], 2) for p in posts]
    failed = [e for e in events if e.get("type") == "apply_errored"]
    messages = [str(e.get("message")) for e in failed]
    unsent = [m for m in messages if "sends it nothing more in this run" in m]
    assert len(messages) == 30 and len(unsent) >= 10, messages
    # the others were refused, or held by a pause past their deadline (unsent, as for the built-ins)
    assert all(m in unsent or m.endswith(": 429 refused") or "not sent, the instance is paused" in m
               for m in messages), messages
    assert took < 15, took


def test_a_plugins_429s_between_accepted_calls_never_stop_the_instance(
        tmp_path: Path, make_emulator: Callable[..., Emulator], plugin_env: dict[str, str]) -> None:
    """The emulator accepts 4 calls/s: 24 creates at once get many 429s (the plug-in does not
    retry them: those changes fail), but the API answers between them, so the instance goes on."""
    emu = make_emulator(rate_limits={"org_plug": 4.0})
    project = _project(tmp_path, emu.url, 24, "org_plug", deadline="2s")
    res = project.run_process("apply", "--auto-approve", "--parallelism", "16", "--format", "json", env=plugin_env)
    limits, events = _summary(res.stdout)
    with EmulatorControl(emu.url) as control:
        state = control.state()
    refused = state["faults"]["injected"].get("throttled", 0)
    made = len(state["questra"]["orgs"].get("org_plug", {}))
    assert refused > 0 and limits["stopped_sending"] is False, (refused, limits)
    assert made + refused == 24 and made == len(project.state()["keys"]), (made, refused)
    assert not any("sends it nothing more" in str(e.get("message")) for e in events)


def test_a_plugins_429s_count_toward_the_breaker_only_after_its_deadline() -> None:
    inner = _OwnStack(refuse=10**6, retry_after=0.0)
    provider = _open_own(inner, deadline=1.0)
    started = time.monotonic()
    while time.monotonic() - started < 0.5:  # 429s for less than the deadline: sent on
        with pytest.raises(ProviderError, match="429 slow down"):
            provider.create(_request("early"))
    assert not provider.limiter.stats().broken
    while not provider.limiter.stats().broken:  # old code: never
        with pytest.raises(ProviderError, match="429 slow down"):
            provider.create(_request("late"))
        assert time.monotonic() - started < 5, f"{len(inner.sent)} calls refused, the instance still sent"
    # the breaker counted the calls refused once the 429s had gone on for the deadline: 3 of them
    late = [t for t in inner.sent if t - inner.sent[0] >= 1.0]
    assert BREAK_AFTER - 1 <= len(late) <= BREAK_AFTER, [round(t - inner.sent[0], 3) for t in inner.sent]
    sent = len(inner.sent)
    with pytest.raises(ProviderError, match="sends it nothing more in this run"):
        provider.create(_request("after"))
    assert len(inner.sent) == sent


def test_an_accepted_call_ends_a_plugins_429s_in_a_row() -> None:
    inner = _OwnStack(refuse=1, retry_after=0.0)
    provider = _open_own(inner, deadline=0.2)
    with pytest.raises(ProviderError):
        provider.create(_request("refused"))
    time.sleep(0.3)
    provider.create(_request("accepted"))  # the API answered: 0.3 s of 429s in a row no more
    inner.refuse = BREAK_AFTER
    for i in range(BREAK_AFTER):
        with pytest.raises(ProviderError, match="429 slow down"):
            provider.create(_request(f"again{i}"))
    assert not provider.limiter.stats().broken
    assert provider.create(_request("later")).key.id


class _ConnectStack(_OwnStack):
    """Refuses as a Connect API does behind a proxy that maps the code to 503."""

    def create(self, request: CreateRequest) -> CreateResult:
        with self.lock:
            self.sent.append(time.monotonic())
        raise ProviderError("own: create: resource_exhausted", status=503, code="resource_exhausted", retry_after=0.0)


def test_a_plugins_resource_exhausted_503_is_a_rate_refusal_as_for_the_built_ins() -> None:
    """Found by the stop-38 helper: the built-ins take a 503 with Connect's `resource_exhausted`
    code for a rate refusal (`http.rate_refusal`); a plug-in's was taken for a server error (no
    pause, never toward the breaker)."""
    inner = _ConnectStack()
    provider = _open_own(inner, deadline=0.3)
    started = time.monotonic()
    while not provider.limiter.stats().broken:
        with pytest.raises(ProviderError, match="resource_exhausted"):
            provider.create(_request("k"))
        assert time.monotonic() - started < 5, f"{len(inner.sent)} calls refused, the instance still sent"
    assert provider.limiter.stats().throttled == len(inner.sent)
    with pytest.raises(ProviderError, match=r"last: 503") as caught:  # the answer it was, not "a 429"
        provider.create(_request("after"))
    assert caught.value.status == 503 and "429" not in str(caught.value), str(caught.value)


class _Scripted(_OwnStack):
    """`slow` is refused after 0.6 s (the plug-in's own retries), `fast…` at once; others succeed."""

    def create(self, request: CreateRequest) -> CreateResult:
        if request.address == "slow":
            time.sleep(0.6)
        if request.address == "slow" or request.address.startswith("fast"):
            raise ProviderError("own: create: 429 slow down", status=429, retry_after=0.0)
        return CreateResult(RemoteKey(id=request.address, attrs={}), "s3cret")


def test_a_run_of_429s_starts_after_the_last_accepted_call() -> None:
    """Found by the fifth review (stop 38): a call sent before a success but refused after it put
    the start of the "429s in a row" back before that success, so two 429s answered at once right
    after it tripped the breaker 0.3 s after the API had accepted a call (deadline 0.5 s)."""
    provider = _open_own(_Scripted(), deadline=0.5, rate_limit=RateLimit(1000.0))
    def refused_slowly() -> None:
        with pytest.raises(ProviderError, match="429 slow down"):
            provider.create(_request("slow"))

    slow = threading.Thread(target=refused_slowly)
    slow.start()
    time.sleep(0.3)
    provider.create(_request("ok"))  # the API answers
    slow.join()
    for i in range(BREAK_AFTER):
        with pytest.raises(ProviderError, match="429 slow down"):
            provider.create(_request(f"fast{i}"))
    assert not provider.limiter.stats().broken
    assert provider.create(_request("later")).key.id == "later"
