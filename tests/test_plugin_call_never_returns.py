"""A plug-in provider whose call never returns (here: a create whose connection is accepted and
never answered, read with no timeout, in a worker thread of the plug-in's own executor) hung
keyform with it: the provider's `deadline` bounded only keyform's own waits, and the interpreter
joins non-daemon threads at exit. In CI that was until the job's timeout, hours later.

keyform now waits for a plug-in's call twice its `deadline` at most (`keyform.bounded`): the change
ends as possibly done (its journaled intent unresolved, like a create left in flight by a second
Ctrl-C), the message names the plug-in and what to check, the other changes finish, the state is
saved, and the process leaves at once. The next apply recovers the create and finishes. A listing
that never returns ends `plan` the same way. Real processes; the plug-in is a distribution on
PYTHONPATH talking HTTP to the emulator on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from tests import fakedist

PLUGIN = fakedist.QUESTRA_WRAPPER + '''
import concurrent.futures
import os
import socket


def _hang(what):
    """A request to a server that accepts and never answers, read with no timeout."""
    host, port = os.environ["KF_BLACKHOLE"].split(":")
    conn = socket.create_connection((host, int(port)))
    conn.sendall(b"POST /api-keys HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    return conn.recv(1)


def _stuck(what):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a non-daemon thread of its own
        return pool.submit(_hang, what).result()


class Stuck(Wrapped):
    def list(self):
        return _stuck("list") if os.environ.get("KF_STUCK", "") == "list" else self.inner.list()

    def create(self, request):
        return _stuck("create") if request.address == os.environ.get("KF_STUCK", "") else self.inner.create(request)


def _open(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    return Stuck(questra_client(config, token, timeout=timeout, max_retries=max_retries))


STUCK = questra_type("stuck-q", _open, "test plug-in: hangs")
'''


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A listening socket on 127.0.0.1 that never accepts: a connection to it is never answered."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def _project(tmp_path: Path, url: str) -> tuple[Project, dict[str, str]]:
    env = fakedist.install(tmp_path / "site", "kf-stuck", "1.0", "[keyform.providers]\nstuck-q = kf_stuck:STUCK\n",
                           "kf_stuck", PLUGIN)
    project = Project(tmp_path / "p", url)
    project._one_provider(textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: stuck-q
          base_url: {url}
          token: {{env: QUESTRA_TOKEN}}
          org: {ORG}
          deadline: 1s
        """), "  "), "".join(f"k{i}:\n  provider: pp\n  name: k{i}\n" for i in range(3)))
    return project, env


def test_a_create_that_never_returns_ends_the_apply_by_its_bound(tmp_path: Path, emulator: Emulator,
                                                                 blackhole: str) -> None:
    project, env = _project(tmp_path, emulator.url)
    started = time.monotonic()
    res = project.run_process("apply", "--auto-approve", "--parallelism", "2",
                              env={**env, "KF_STUCK": "k1", "KF_BLACKHOLE": blackhole}, timeout=60)
    took = time.monotonic() - started
    assert res.exit_code == 1, res.tail()
    assert took < 30, f"the apply took {took:.1f}s"
    # (the change's own time: its bound, and more on a loaded machine)
    assert re.search(r"k1: failed after [2-9]\.\ds: ", res.stderr), res.stderr
    assert ("pp: create 'k1': the provider type 'stuck-q' (kf-stuck 1.0) did not return "
            "within 2s (its deadline 1s, then as much again); keyform stopped waiting for it; it may have made the "
            "key: the next `keyform apply` recovers it from the journal") in res.stderr, res.stderr
    assert "Check the plug-in and the API it calls" in res.stderr
    assert "Traceback" not in res.output and "internal error" not in res.output
    assert sorted(project.state()["keys"]) == ["k0", "k2"]  # the others finished, and were saved
    intents = [r for r in project.journal_records() if r.get("op") == "intent" and r.get("address") == "k1"]
    assert intents, "the create left in flight keeps its intent for recovery"

    again = project.run_process("apply", "--auto-approve", env=env, timeout=60)
    assert again.exit_code == 0, again.tail()
    assert sorted(project.state()["keys"]) == ["k0", "k1", "k2"]
    with EmulatorControl(emulator.url) as control:
        live = sorted(k["name"] for k in control.questra_keys(ORG) if not k.get("revoked"))
    assert live == ["k0", "k1", "k2"]


def test_a_listing_that_never_returns_ends_the_plan_by_its_bound(tmp_path: Path, emulator: Emulator,
                                                                 blackhole: str) -> None:
    project, env = _project(tmp_path, emulator.url)
    started = time.monotonic()
    res = project.run_process("plan", env={**env, "KF_STUCK": "list", "KF_BLACKHOLE": blackhole}, timeout=60)
    assert res.exit_code == 1, res.tail()
    assert time.monotonic() - started < 30
    assert ("pp: list: the provider type 'stuck-q' (kf-stuck 1.0) did not return within 2s (its deadline 1s, "
            "then as much again); keyform stopped waiting for it. Check the plug-in") in res.stderr, res.stderr
    assert "Traceback" not in res.output


SINK_PLUGIN = '''
import os
import threading
from pathlib import Path

import keyform.sinks.registry
from keyform.typeregistry import SinkType

keyform.sinks.registry.PLUGIN_SINK_BOUND = 1.0  # (the test's: 120 s otherwise)


class Vault:
    readable = True

    def __init__(self, where):
        self._dir = Path(where)

    def write(self, address, name, secret):
        if name == os.environ.get("KF_STUCK"):
            threading.Event().wait()  # never returns
        self._dir.mkdir(exist_ok=True)
        (self._dir / name).write_text(secret)

    def read(self, name):
        path = self._dir / name
        return path.read_text() if path.exists() else None

    def remove(self, name):
        (self._dir / name).unlink(missing_ok=True)


VAULT = SinkType(name="stuck-vault", required="where", open=lambda config: Vault(config.options["where"]),
                 options_schema={"required": ["where"], "properties": {"where": {"type": "string"}}})
'''


def test_a_sink_write_that_never_returns_ends_the_apply_by_its_bound(tmp_path: Path, emulator: Emulator) -> None:
    env = fakedist.install(tmp_path / "site", "kf-vault", "1.0", "[keyform.sinks]\nstuck-vault = kf_vault:VAULT\n",
                           "kf_vault", SINK_PLUGIN)
    project = Project(tmp_path / "p", emulator.url)
    project.write(textwrap.dedent(f"""\
        version: 1
        providers:
          qp: {{type: questra, base_url: "{emulator.url}", token: {{env: QUESTRA_TOKEN}}, org_id: {ORG}}}
        sinks:
          vault: {{type: stuck-vault, where: {tmp_path / "vault"}}}
        defaults: {{sink: vault}}
        keys:
          k0: {{provider: qp, name: k0}}
          k1: {{provider: qp, name: k1}}
        """))
    started = time.monotonic()
    res = project.run_process("apply", "--auto-approve", env={**env, "KF_STUCK": "K1"}, timeout=60)
    assert res.exit_code == 1, res.tail()
    assert time.monotonic() - started < 30
    assert re.search(r"k1: failed after [1-9]\.\ds: ", res.stderr), res.stderr
    assert ("sink vault: write 'K1': the sink type 'stuck-vault' (kf-vault 1.0) did not return "
            "within 1s; keyform stopped waiting for it; the secret may have been written") in res.stderr, res.stderr
    assert sorted(project.state()["keys"]) == ["k0"]
    with EmulatorControl(emulator.url) as control:  # not revoked: its write may land yet; recovery decides
        assert sorted(k["name"] for k in control.questra_keys(ORG) if not k.get("revoked")) == ["k0", "k1"]

    again = project.run_process("apply", "--auto-approve", env=env, timeout=60)
    assert again.exit_code == 0, again.tail()
    assert sorted(project.state()["keys"]) == ["k0", "k1"]
    assert (tmp_path / "vault" / "K1").exists()
    with EmulatorControl(emulator.url) as control:  # the first k1 revoked as the orphan of its create
        assert sorted(k["name"] for k in control.questra_keys(ORG) if not k.get("revoked")) == ["k0", "k1"]
