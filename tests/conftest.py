"""Shared fixtures. Add new ones in their own section below, with a docstring saying what they give.

Emulator fixtures (``keyform.emulator``, real HTTP on 127.0.0.1, an ephemeral port per test):

- ``emulator``       — a started :class:`Emulator` with the default config; stopped after the test.
- ``make_emulator``  — factory ``make_emulator(**EmulatorConfig fields) -> Emulator`` (started,
                        stopped after the test) for tests that need faults or tokens from the start.
- ``emu_control``    — a ``keyform.emulator.client.EmulatorControl`` for ``emulator``'s control API;
                        for another instance use ``EmulatorControl(emu.url)`` (close it, or use ``with``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import httpx
import pytest

from keyform.emulator import Emulator, EmulatorConfig
from keyform.emulator.client import EmulatorControl
from keyform.testing.conformance import CANARY as KIT_CANARY

# --------------------------------------------------------------------------------------- emulator


@cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def loopback_client(base_url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> httpx.Client:
    """An ``httpx.Client`` for the emulator. It reuses one TLS context: a plain ``httpx.Client()``
    loads the CA bundle each time (~50 ms), which adds up over hundreds of tests."""
    return httpx.Client(base_url=base_url, headers=headers, timeout=timeout, verify=_tls_context())


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    """Factory: ``make_emulator(latency_ms=50, tokens=frozenset({"t"}), ...)`` → a started emulator
    on 127.0.0.1 with an ephemeral port; every emulator it made is stopped after the test."""
    started: list[Emulator] = []

    def make(**config: Any) -> Emulator:
        emulator = Emulator(EmulatorConfig(**{"host": "127.0.0.1", "port": 0, **config})).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., Emulator]) -> Emulator:
    """A started emulator with the default config (no faults, any token accepted)."""
    return make_emulator()


@pytest.fixture
def emulator_process() -> Iterator[Any]:
    """The emulator as a process of its own (`harness.emulator.EmulatorProcess`): a keyform a test
    kills, or a helper that outlives it, never takes the emulator along. Stopped after the test."""
    from harness.emulator import EmulatorProcess

    process = EmulatorProcess()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def emu_control(emulator: Emulator) -> Iterator[EmulatorControl]:
    """Control-API client for the ``emulator`` fixture."""
    with EmulatorControl(emulator.url) as control:
        yield control


# ------------------------------------------------------------------------------------------ fsync

CountFsyncs = Callable[[], list[int]]


@pytest.fixture
def count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> CountFsyncs:
    """``synced = count_fsyncs()``: from that call on, every ``os.fsync`` (the real one still runs)
    appends its file descriptor to ``synced``, until the test ends. A call, not a patch at set-up, so
    a test counts only what happens after the set-up it does itself (e.g. opening a journal)."""

    def start() -> list[int]:
        synced: list[int] = []
        real_fsync = os.fsync

        def counting(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", counting)
        return synced

    return start


# ------------------------------------------------------------------------------- sink tools (real)
# Helpers in tests/sinkkit.py. A missing tool fails the test with the command that installs it.


@pytest.fixture
def age_key(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh age identity (real ``age-keygen``) as ``sinkkit.AgeKey``; ``SOPS_AGE_KEY_FILE`` points
    at it, and HOME / XDG_CONFIG_HOME are isolated under tmp_path, so no real user key is seen.
    ``monkeypatch.delenv("SOPS_AGE_KEY_FILE")`` makes the key unavailable."""
    from tests.sinkkit import isolate_home, make_age_key, need

    need("sops")
    isolate_home(monkeypatch, tmp_path / "home")
    key = make_age_key(tmp_path / "age")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key.identity))
    return key


@pytest.fixture
def pass_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A throw-away ``pass`` store with a fresh passphrase-less GPG key (``sinkkit.PassStore``);
    GNUPGHOME and PASSWORD_STORE_DIR are set for the test; gpg-agent is stopped afterwards."""
    from tests.sinkkit import make_pass_store

    store = make_pass_store()
    monkeypatch.setenv("GNUPGHOME", str(store.gnupghome))
    monkeypatch.setenv("PASSWORD_STORE_DIR", str(store.store))
    try:
        yield store
    finally:
        store.close()


# --------------------------------------------------------------------------------------- postgres
#
# - ``pg_cluster`` — session-scoped: a PostgreSQL 15 cluster of the tests' own (``tests/pgcluster.py``:
#                    Debian's postgresql-15 binaries, a temporary directory, a free 127.0.0.1 port,
#                    password auth). A missing binary fails the tests that use it, naming the package.
# - ``pg_dsn``     — a ``postgresql://`` DSN (with a password) of a new, empty database in it.


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """The tests' own PostgreSQL cluster (started once per session, removed at the end)."""
    from tests.pgcluster import ClusterError, start_cluster

    try:
        cluster = start_cluster()
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_dsn(pg_cluster: Any) -> str:
    """A DSN of a fresh database (no keyform tables yet) in ``pg_cluster``."""
    return str(pg_cluster.dsn(pg_cluster.create_database()))


# ------------------------------------------------------------------ the conformance kit's emulator

TOKEN = f"tok-{KIT_CANARY}-accepted"
REJECTED = f"tok-{KIT_CANARY}-rejected"
READ_ONLY = f"tok-{KIT_CANARY}-read-only"


@pytest.fixture(scope="module")
def kit_emulator() -> Iterator[Emulator]:
    """An emulator that accepts only the kit's token (and its read-only one, for the 403 test)."""
    emulator = Emulator(EmulatorConfig(host="127.0.0.1", port=0, tokens=frozenset({TOKEN}),
                                       read_only_tokens=frozenset({READ_ONLY}))).start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session", autouse=True)
def kit_fault_deadline() -> Iterator[float]:
    """The conformance kit's ``FAULT_DEADLINE`` (3 s for plug-in authors, whose APIs may be far away)
    at 1 s in keyform's own tests, whose kit targets answer on 127.0.0.1 in milliseconds. The kit
    retries an injected 429/5xx until that deadline and checks only the status the call ends with;
    the deadline is the whole cost of each fault test (~15 targets x 2 tests: ~40 s of the suite)."""
    from keyform.testing import conformance

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conformance, "FAULT_DEADLINE", 1.0)
        yield conformance.FAULT_DEADLINE


# ------------------------------------------------------------------------ the parsed-manifest cache


@pytest.fixture(scope="session", autouse=True)
def manifest_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The parsed-manifest cache (``keyform.manifest.parsecache``) of this test session: a fresh
    directory (``KEYFORM_CACHE_DIR``, inherited by child processes) and cache key (under
    ``XDG_STATE_HOME``), never the user's own."""
    import os

    directory = tmp_path_factory.mktemp("keyform-cache")
    old = {name: os.environ.get(name) for name in ("KEYFORM_CACHE_DIR", "XDG_STATE_HOME")}
    os.environ["KEYFORM_CACHE_DIR"] = str(directory / "manifests")
    os.environ["XDG_STATE_HOME"] = str(directory / "state")  # the cache key (keyform.cachedir)
    yield directory / "manifests"
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
