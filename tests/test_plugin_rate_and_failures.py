"""Plug-in provider types under keyform's rate limits and failure reporting (providers/foreign.py).

Found in stop 36's review, left open then: `rate_limit` was accepted on a plug-in instance and did
nothing. A plug-in built on keyform's `HttpClient` (as docs/providers.md suggests) made its client
without a limiter, so its calls were paced by a default one: no configured rate, a concurrency
window stuck at 10 whatever `--parallelism`, and no Ctrl-C. A plug-in's own exception (a bug, a
library's error let through) was keyform's "internal error", naming neither the plug-in nor the call.

The plug-ins here are real entry points of a distribution on PYTHONPATH, run by the keyform CLI
against the emulator on 127.0.0.1."""

from __future__ import annotations

import re
import textwrap
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.project import Project
from keyform import redact
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError, SourceLoc
from keyform.model import EnvRef, ProviderConfig, RateLimit
from keyform.providers import open_provider
from keyform.providers.ratelimit import Limiter
from keyform.remote import CreateRequest, CreateResult, RemoteKey
from keyform.typeregistry import provider_type, register, unregister
from tests import fakedist

CANARY = "plugin-canary-token-Zq81"

PLUGIN = '''
from dataclasses import replace
from keyform.typeregistry import ProviderType, SinkType


class Hidden:
    """A Questra client without a limiter of its own, not showing its client's."""

    def __init__(self, inner):
        self._inner, self.name = inner, inner.name

    def list(self):
        return self._inner.list()

    def create(self, request):
        return self._inner.create(request)

    def update(self, remote_id, attrs, expires_at):
        return self._inner.update(remote_id, attrs, expires_at)

    def delete(self, remote_id):
        self._inner.delete(remote_id)

    def close(self):
        self._inner.close()


class Faulty(Hidden):
    def create(self, request):
        raise RuntimeError("backend exploded\\nsecond line; token was " + self._token)


def _questra(config, token, timeout, transport, max_retries):
    from keyform.providers.questra import QuestraProvider  # built on HttpClient, no limiter given
    return QuestraProvider(config.name, config.base_url, token, config.options["org"], timeout=timeout,
                           transport=transport, max_retries=max_retries, deadline=config.deadline)


def _open_paced(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    return Hidden(_questra(config, token, timeout, transport, max_retries))


class Exiting(Hidden):
    """A plug-in whose library calls sys.exit() (or leaks a generator's GeneratorExit) mid-call."""

    def list(self):
        if self._on == "list":
            raise self._exc
        return self._inner.list()

    def create(self, request):
        raise self._exc


def _open_exiting(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    import os
    if os.environ.get("EXIT_ON") == "open":
        raise SystemExit(0)
    provider = Exiting(_questra(config, token, timeout, transport, max_retries))
    provider._on = os.environ.get("EXIT_ON")
    provider._exc = GeneratorExit() if os.environ.get("EXIT_WITH") == "generator" else SystemExit(0)
    return provider


def _open_faulty(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    provider = Faulty(_questra(config, token, timeout, transport, max_retries))
    provider._token = token
    return provider


_BASE = dict(returns_secret=True, attributes=("name",), remote_attributes=frozenset({"name"}),
             options_schema={"required": ["org"], "properties": {"org": {"type": "string"}}},
             key_schema={"properties": {"name": {"type": "string"}}}, description="test plug-in")
PACED = ProviderType(name="paced", open=_open_paced, **_BASE)
FAULTY = ProviderType(name="faulty", open=_open_faulty, **_BASE)
EXITING = ProviderType(name="exiting", open=_open_exiting, **_BASE)


class Leaky:
    readable = False

    def write(self, address, name, secret):
        import os
        if os.environ.get("SINK_EXITS"):
            raise SystemExit(0)  # a library's sys.exit(): keyform must still revoke the new key
        raise RuntimeError("cannot store " + secret)

    def read(self, name):
        return None

    def remove(self, name):
        pass


LEAKY = SinkType(name="leaky", required="where", open=lambda config: Leaky(),
                 options_schema={"required": ["where"], "properties": {"where": {"type": "string"}}})
'''


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    return fakedist.install(tmp_path / "site", "kf-test-plugins", "1.0",
                            "[keyform.providers]\npaced = kf_test_plugins:PACED\nfaulty = kf_test_plugins:FAULTY\n"
                            "exiting = kf_test_plugins:EXITING\n"
                            "[keyform.sinks]\nleaky = kf_test_plugins:LEAKY\n", "kf_test_plugins", PLUGIN)


def _project(tmp_path: Path, url: str, ptype: str, keys: int, extra: str = "") -> Project:
    project = Project(tmp_path / "p", url, env={"PLUG_TOKEN": CANARY if ptype == "faulty" else "qk_test_e2e"})
    provider = textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: {ptype}
          base_url: {url}
          token: {{env: PLUG_TOKEN}}
          org: org_plug
        """) + textwrap.indent(textwrap.dedent(extra), "  "), "  ")
    project._one_provider(provider, "".join(f"k{i:02d}:\n  provider: pp\n" for i in range(keys)))
    return project


def test_a_plugins_rate_limit_paces_its_http_calls(tmp_path: Path, emulator: Emulator,
                                                   plugin_env: dict[str, str]) -> None:
    project = _project(tmp_path, emulator.url, "paced", 8, "rate_limit: 4/s\n")
    started = time.monotonic()
    res = project.run_process("apply", "--auto-approve", "--parallelism", "8", env=plugin_env)
    took = time.monotonic() - started
    assert res.exit_code == 0, res.output
    assert len(project.state()["keys"]) == 8
    # 8 creates at 4/s (burst 1): the last is sent 7/4 s after the first; the list came before them
    assert took >= 1.75, f"8 creates at rate_limit 4/s took {took:.2f}s"
    # and a second apply has nothing to do: the keys are there, each once
    assert project.run_process("plan", "--detailed-exitcode", env=plugin_env).exit_code == 0


def test_a_plugins_exception_is_one_line_naming_it_and_never_the_token(tmp_path: Path, emulator: Emulator,
                                                                         plugin_env: dict[str, str]) -> None:
    project = _project(tmp_path, emulator.url, "faulty", 1)
    res = project.run_process("apply", "--auto-approve", env=plugin_env)
    assert res.exit_code == 1, res.output
    assert "internal error" not in res.output and "Traceback" not in res.output, res.output
    assert CANARY not in res.output
    assert ("pp: create 'k00': the provider type 'faulty' (kf-test-plugins 1.0) failed: RuntimeError: "
            "backend exploded; the key may exist remotely") in res.output, res.output
    assert "second line" not in res.output
    verbose = project.run_process("-v", "apply", "-f", str(project.manifest), "--auto-approve", env=plugin_env)
    assert "Traceback" in verbose.output and CANARY not in verbose.output


@pytest.mark.parametrize(("on", "exc", "command", "what"), [
    ("create", "system", "apply", "create 'k00'"),
    ("create", "generator", "apply", "create 'k00'"),
    ("list", "system", "plan", "list"),
    ("open", "system", "plan", "open"),
])
def test_a_plugin_calling_sys_exit_is_a_failure_naming_it_not_a_silent_exit(
        tmp_path: Path, emulator: Emulator, plugin_env: dict[str, str], on: str, exc: str, command: str,
        what: str) -> None:
    """Found by review 107: a plug-in raising SystemExit(0) (a library's sys.exit) or GeneratorExit
    was not one of the exceptions keyform reports as the plug-in's failure. Now it is, at its call."""
    project = _project(tmp_path, emulator.url, "exiting", 1)
    args = ("apply", "--auto-approve") if command == "apply" else ("plan",)
    res = project.run_process(*args, env={**plugin_env, "EXIT_ON": on, "EXIT_WITH": exc})
    assert res.exit_code == 1, res.output
    name = "SystemExit" if exc == "system" else "GeneratorExit"
    assert f"pp: {what}: the provider type 'exiting' (kf-test-plugins 1.0) failed: {name}" in res.output, res.output
    assert "internal error" not in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("exits", [False, True], ids=["exception", "sys-exit"])
def test_a_sink_plugins_exception_quoting_the_new_secret_never_prints_it(tmp_path: Path, emulator: Emulator,
                                                                          plugin_env: dict[str, str],
                                                                          exits: bool) -> None:
    """A plug-in sink's write raising an exception that quotes the secret it was handed (not a
    SinkError): only the exception's class is shown, and the new key is revoked (a canary check;
    this path was already safe). A write calling sys.exit() (found in stop 43) escaped the sink's
    failure handling: the new key stayed live, its secret stored nowhere, until the next run."""
    project = _project(tmp_path, emulator.url, "paced", 1)
    project.manifest.write_text(re.sub(r"  env:\n    type: dotenv\n    path: .*\n", "  env:\n    type: leaky\n    where: x\n",
                                       project.manifest.read_text()))
    res = project.run_process("apply", "--auto-approve", env={**plugin_env, "SINK_EXITS": "1" if exits else ""})
    assert res.exit_code == 1, res.output
    name = "SystemExit" if exits else "RuntimeError"
    assert f"cannot store the new secret in sink env:K00: {name}; the new key " in res.output, res.output
    assert "was revoked" in res.output
    assert "sk_live_" not in res.output, res.output  # the emulator's secret, just minted
    assert "internal error" not in res.output
    keys = EmulatorControl(emulator.url).questra_keys("org_plug")
    assert len(keys) == 1 and keys[0].get("revoked"), keys


class _OwnStack:
    """A plug-in provider with an HTTP stack of its own (here: none), no limiter: paced a call at a
    time. `refuse` creates answer 429 with `retry_after`; `fail` is raised by every create."""

    name = "own"

    def __init__(self, refuse: int = 0, retry_after: float = 0.5, fail: Exception | None = None) -> None:
        self.sent: list[float] = []
        self.refuse, self.retry_after, self.fail = refuse, retry_after, fail
        self.lock = threading.Lock()

    def list(self) -> list[Any]:
        return []

    def create(self, request: CreateRequest) -> CreateResult:
        with self.lock:
            self.sent.append(time.monotonic())
            n, refused = len(self.sent), self.refuse > 0
            self.refuse -= refused
        if self.fail is not None:
            raise self.fail
        if refused:
            raise ProviderError("own: create: 429 slow down", status=429, retry_after=self.retry_after)
        return CreateResult(RemoteKey(id=f"id{n}", attrs={"name": request.address}), "s3cret")

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        raise NotImplementedError

    def delete(self, remote_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def _open_own(inner: _OwnStack, token: str = "tok", **config: Any) -> Any:
    """`inner` opened as keyform opens a plug-in's provider (`open_provider`: ForeignProvider)."""
    ptype = replace(provider_type("questra"), name="own-stack", open=lambda *a, **k: inner)
    register(ptype, origin="test-plugin 1.0")
    try:
        return open_provider(ProviderConfig("own", "own-stack", "http://127.0.0.1:9", EnvRef("T"), None,
                                            SourceLoc("k.yaml", 1), **config), token, None)
    finally:
        unregister(ptype)


def _request(address: str) -> CreateRequest:
    return CreateRequest(address, {}, None, {})


def test_a_plugin_with_its_own_http_stack_is_paced_a_call_at_a_time() -> None:
    inner = _OwnStack()
    provider = _open_own(inner, rate_limit=RateLimit(10.0))
    assert isinstance(provider.limiter, Limiter) and provider.limiter.limit == RateLimit(10.0)
    threads = [threading.Thread(target=provider.create, args=(_request(f"k{i}"),)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    gaps = [b - a for a, b in zip(inner.sent, inner.sent[1:])]
    assert len(inner.sent) == 5 and min(gaps) >= 0.09, gaps  # 10/s: one call every 0.1 s
    # a 429 it raises pauses the instance for its Retry-After
    inner.refuse = 1
    with pytest.raises(ProviderError):
        provider.create(_request("r"))
    started = time.monotonic()
    provider.create(_request("after"))
    assert time.monotonic() - started >= 0.45
    assert provider.limiter.stats().throttled == 1


def test_a_plugins_long_retry_after_does_not_hold_other_calls_past_their_deadline() -> None:
    """Found by an adversarial review (stop 37): a 429 with `Retry-After: 3600` from a plug-in with
    its own HTTP stack paused the instance, and the next call waited the whole pause (the per-call
    admission had no deadline). It ends within the instance's deadline, unsent, as a built-in's does."""
    provider = _open_own(_OwnStack(refuse=1, retry_after=3600), deadline=2.0)
    with pytest.raises(ProviderError):
        provider.create(_request("first"))
    started = time.monotonic()
    with pytest.raises(ProviderError, match="not sent, the instance is paused") as err:
        provider.create(_request("second"))
    assert time.monotonic() - started < 3 and err.value.status == 429


def test_single_429s_of_a_plugin_do_not_stop_the_instance_for_the_run() -> None:
    """Found by an adversarial review (stop 37): keyform never retries a 429 a plug-in raises, so
    each one counted as a call "refused to its end": a burst of three stopped the instance for the
    run (the breaker), although the API answered again 0.1 s later."""
    inner = _OwnStack(refuse=3, retry_after=0.1)
    provider = _open_own(inner)
    for i in range(3):
        with pytest.raises(ProviderError):
            provider.create(_request(f"k{i}"))
    time.sleep(0.3)  # the API's Retry-After is over: it accepts calls again
    assert provider.create(_request("later")).key.id and len(inner.sent) == 4


def test_a_secret_wrapped_across_the_first_line_is_scrubbed() -> None:
    """Found by an adversarial review (stop 37): a plug-in's exception text was cut to its first
    line and only then scrubbed, so a remembered token wrapped across a line break showed its
    first 15 characters (redact: scrub the raw text first, then cut)."""
    token = "adv37-canary-tok-Q7x9"
    redact.remember(token)  # as resolve.provider_credentials does for every resolved token
    inner = _OwnStack(fail=RuntimeError(f"401 from upstream: credential {token[:15]}\n{token[15:]} was rejected"))
    provider = _open_own(inner, token)
    with pytest.raises(ProviderError) as err:
        provider.create(_request("k"))
    assert token[:15] not in str(err.value) and "RuntimeError: 401 from upstream" in str(err.value), str(err.value)
