"""Plug-in provider types under keyform's rate limits and failure reporting (providers/foreign.py).

Found in stop 36's review, left open then: `rate_limit` was accepted on a plug-in instance and did
nothing. A plug-in built on keyform's `HttpClient` (as docs/providers.md suggests) made its client
without a limiter, so its calls were paced by a default one: no configured rate, a concurrency
window stuck at 10 whatever `--parallelism`, and no Ctrl-C. A plug-in's own exception (a bug, a
library's error let through) was keyform's "internal error", naming neither the plug-in nor the call.

The plug-ins here are real entry points of a distribution on PYTHONPATH, run by the keyform CLI
against the emulator on 127.0.0.1."""

from __future__ import annotations

import os
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
from keyform.emulator import Emulator
from keyform.errors import ProviderError, SourceLoc
from keyform.model import EnvRef, ProviderConfig, RateLimit
from keyform.providers import open_provider
from keyform.providers.ratelimit import Limiter
from keyform.remote import CreateRequest, CreateResult, RemoteKey
from keyform.typeregistry import provider_type, register, unregister

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


def _open_faulty(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    provider = Faulty(_questra(config, token, timeout, transport, max_retries))
    provider._token = token
    return provider


_BASE = dict(returns_secret=True, attributes=("name",), remote_attributes=frozenset({"name"}),
             options_schema={"required": ["org"], "properties": {"org": {"type": "string"}}},
             key_schema={"properties": {"name": {"type": "string"}}}, description="test plug-in")
PACED = ProviderType(name="paced", open=_open_paced, **_BASE)
FAULTY = ProviderType(name="faulty", open=_open_faulty, **_BASE)


class Leaky:
    readable = False

    def write(self, address, name, secret):
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
    site = tmp_path / "site"
    (site / "kf_test_plugins").mkdir(parents=True)
    (site / "kf_test_plugins" / "__init__.py").write_text(PLUGIN)
    info = site / "kf_test_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kf-test-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[keyform.providers]\npaced = kf_test_plugins:PACED\nfaulty = kf_test_plugins:FAULTY\n"
        "[keyform.sinks]\nleaky = kf_test_plugins:LEAKY\n")
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(site)) if p)
    return {"PYTHONPATH": path}


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



def test_a_sink_plugins_exception_quoting_the_new_secret_never_prints_it(tmp_path: Path, emulator: Emulator,
                                                                          plugin_env: dict[str, str]) -> None:
    """A plug-in sink's write raising an exception that quotes the secret it was handed (not a
    SinkError): only the exception's class is shown, and the new key is revoked (a canary check;
    this path was already safe)."""
    project = _project(tmp_path, emulator.url, "paced", 1)
    project.manifest.write_text(re.sub(r"  env:\n    type: dotenv\n    path: .*\n", "  env:\n    type: leaky\n    where: x\n",
                                       project.manifest.read_text()))
    res = project.run_process("apply", "--auto-approve", env=plugin_env)
    assert res.exit_code == 1, res.output
    assert "cannot store the new secret in sink env:K00: RuntimeError" in res.output, res.output
    assert "sk_live_" not in res.output, res.output  # the emulator's secret, just minted
    assert "internal error" not in res.output


class _OwnStack:
    """A plug-in provider with an HTTP stack of its own (here: none), no limiter: paced a call at a time."""

    name = "own"

    def __init__(self) -> None:
        self.sent: list[float] = []
        self.refuse = 0

    def list(self) -> list[Any]:
        return []

    def create(self, request: CreateRequest) -> CreateResult:
        self.sent.append(time.monotonic())
        if self.refuse:
            self.refuse -= 1
            raise ProviderError("own: create: 429 slow down", status=429, retry_after=0.5)
        return CreateResult(RemoteKey(id=f"id{len(self.sent)}", attrs={"name": request.address}), "s3cret")

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        raise NotImplementedError

    def delete(self, remote_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_plugin_with_its_own_http_stack_is_paced_a_call_at_a_time() -> None:
    inner = _OwnStack()
    ptype = replace(provider_type("questra"), name="own-stack", open=lambda *a, **k: inner)
    register(ptype, origin="test-plugin 1.0")
    try:
        config = ProviderConfig("own", "own-stack", "http://127.0.0.1:9", EnvRef("T"), None, SourceLoc("k.yaml", 1),
                                rate_limit=RateLimit(10.0))
        provider = open_provider(config, "tok", None)
    finally:
        unregister(ptype)
    assert isinstance(provider.limiter, Limiter) and provider.limiter.limit == RateLimit(10.0)  # type: ignore[attr-defined]
    threads = [threading.Thread(target=provider.create, args=(CreateRequest(f"k{i}", {}, None, {}),)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    gaps = [b - a for a, b in zip(inner.sent, inner.sent[1:])]
    assert len(inner.sent) == 5 and min(gaps) >= 0.09, gaps  # 10/s: one call every 0.1 s
    # a 429 it raises pauses the instance for its Retry-After
    inner.refuse = 1
    with pytest.raises(ProviderError):
        provider.create(CreateRequest("r", {}, None, {}))
    started = time.monotonic()
    provider.create(CreateRequest("after", {}, None, {}))
    assert time.monotonic() - started >= 0.45
    assert provider.limiter.stats().throttled == 1  # type: ignore[attr-defined]
