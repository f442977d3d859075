"""The provider instances of a workspace: each opened once, lazily, on first use (httpx is
imported only then, so `--version` and `validate` never import it), with its credentials and
`base_url` resolved, and 401/403 errors that say which token was used."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from keyform.errors import Diagnostic, KeyformError, ProviderError
from keyform.model import EnvRef, FileRef, ProviderConfig, Workspace
from keyform.remote import CreateRequest, CreateResult, Provider, RemoteKey
from keyform.resolve import provider_credentials

ProviderFactory = Callable[[ProviderConfig, str, "str | None"], Provider]


def _default_factory(config: ProviderConfig, token: str, org_id: str | None) -> Provider:
    from keyform.providers import open_provider  # lazy: httpx stays off the start-up path

    return open_provider(config, token, org_id)


class ProviderPool:
    """Opens each provider instance once, on first use, from the workspace's configuration."""

    def __init__(self, workspace: Workspace, factory: ProviderFactory | None = None,
                 env: Mapping[str, str] | None = None, on_wait: Callable[[Any], None] | None = None) -> None:
        self._workspace = workspace
        self._factory = factory or _default_factory
        self._env = env
        self._open: dict[str, Provider] = {}
        self._lock = threading.Lock()
        self._rate_setup: tuple[int, Callable[[Any], None] | None] | None = None
        # a Ctrl-C outside an apply's changes (`interrupt`: a plan's listing), and an apply's own
        self._interrupted = threading.Event()
        self._apply_stopping: Callable[[], bool] | None = None
        self._on_wait = on_wait  # long rate-limit waits (`ratelimit.RateWait`), until an apply reports its own

    def _stopping(self) -> bool:
        """Whether no call should be sent any more: `interrupt` was called, or the apply's `stopping`
        (`configure_rate`) says so. Read by every limiter under its lock: flags only."""
        if self._interrupted.is_set():
            return True
        stopping = self._apply_stopping
        return stopping is not None and stopping()

    def interrupt(self) -> None:
        """A Ctrl-C outside an apply's changes (a plan's or a report's listing): every call of every
        instance waiting in its limiter (a pause, its turn, the sleep before a retry) ends at once,
        unsent, and nothing more is sent (`ratelimit.Limiter.watch`)."""
        self._interrupted.set()
        with self._lock:
            providers = list(self._open.values())
        for provider in providers:
            _watch(provider, self._stopping, self._on_wait)  # (wakes a wait at once)

    def get(self, name: str) -> Provider:
        with self._lock:
            if name not in self._open:
                if name not in self._workspace.providers:
                    raise KeyformError(
                        f"provider {name!r} is used by keys in the state but is no longer in the manifests; "
                        "keep its provider block until those keys are deleted")
                token, org_id = provider_credentials(self._workspace, name, self._env)
                config = resolve_base_url(self._workspace.providers[name], self._env)
                self._open[name] = _TokenHints(self._factory(config, token, org_id), config)
                _watch(self._open[name], self._stopping, self._on_wait)
                if self._rate_setup is not None:
                    _configure(self._open[name], *self._rate_setup, self._stopping)
            return self._open[name]

    def configure_rate(self, concurrency: int, on_event: Callable[[Any], None] | None = None,
                       stopping: Callable[[], bool] | None = None) -> None:
        """Start every instance's concurrency window at `concurrency` (--parallelism), report its
        rate-limit events to `on_event`, and once `stopping()` (a Ctrl-C) send no attempt still
        waiting (`Limiter.configure`); instances opened later get the same."""
        with self._lock:
            self._apply_stopping = stopping
            self._on_wait = None  # the apply reports its rate limits itself (`on_event`)
            self._rate_setup = (concurrency, on_event)
            for provider in self._open.values():
                _watch(provider, self._stopping, None)
                _configure(provider, concurrency, on_event, self._stopping)

    def rate_stats(self) -> list[Any]:
        """`RateStats` of every open instance that has a limiter, by name."""
        with self._lock:
            limiters = [getattr(p, "limiter", None) for _, p in sorted(self._open.items())]
        return [limiter.stats() for limiter in limiters if limiter is not None]

    def check_credentials(self, names: Iterable[str]) -> None:
        """Resolve every named instance's token now (fails before any remote call)."""
        for name in sorted(set(names)):
            if name in self._workspace.providers:
                provider_credentials(self._workspace, name, self._env)
                resolve_base_url(self._workspace.providers[name], self._env)

    def close(self) -> None:
        with self._lock:
            for p in self._open.values():
                p.close()
            self._open.clear()


def resolve_base_url(config: ProviderConfig, env: Mapping[str, str] | None = None) -> ProviderConfig:
    """`config` with a `base_url: {env: NAME}` read and checked (at the `base_url:` line)."""
    if not config.base_url_env:
        return config
    from keyform.manifest.build import base_url_problem

    name, where = config.base_url_env, f"providers.{config.name}.base_url"
    text = (os.environ if env is None else env).get(name)
    problem: str | None
    if text is None or not text.strip():
        problem = f"environment variable {name} is {'not set' if text is None else 'set but empty'}"
    else:
        text = text.strip()
        problem = base_url_problem(text)
        if problem:  # never the value: a refused URL may hold credentials
            problem = f"the URL in {name} {problem}" if problem.startswith("must ") \
                else f"the URL in {name}: {problem}"
    if problem or text is None:
        raise KeyformError([Diagnostic(f"{where}: {problem}", config.base_url_loc or config.loc)])
    return dataclasses.replace(config, base_url=text.rstrip("/"))


def token_hint(config: ProviderConfig) -> str:
    """Where provider `config`'s token comes from: `the token of provider questra-prod,
    {env: QUESTRA_TOKEN} at keyform.yaml:6`. Never the value."""
    ref = config.token
    written = f"{{env: {ref.name}}}" if isinstance(ref, EnvRef) else \
        f"{{file: {ref.path}}}" if isinstance(ref, FileRef) else str(ref)
    return f"the token of provider {config.name}, {written} at {config.token_loc or config.loc}"


class _TokenHints:
    """A provider whose 401/403 errors say which token was used and where it is declared."""

    def __init__(self, inner: Provider, config: ProviderConfig) -> None:
        self._inner, self._config, self.name = inner, config, inner.name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except ProviderError as exc:
            if exc.status not in (401, 403):
                raise
            hint = token_hint(self._config)
            hint = f"check {hint}" if exc.status == 401 else f"{hint}, lacks the permission"
            raise ProviderError(f"{exc}; {hint}", status=exc.status, code=exc.code,
                                retry_after=exc.retry_after, ambiguous=exc.ambiguous) from None

    def list(self) -> list[RemoteKey] | None:
        return self._call(self._inner.list)

    def create(self, request: CreateRequest) -> CreateResult:
        return self._call(self._inner.create, request)

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        return self._call(self._inner.update, remote_id, attrs, expires_at)

    def delete(self, remote_id: str) -> None:
        self._call(self._inner.delete, remote_id)

    def close(self) -> None:
        self._inner.close()


def _configure(provider: Provider, concurrency: int, on_event: Callable[[Any], None] | None,
               stopping: Callable[[], bool] | None) -> None:
    limiter = getattr(provider, "limiter", None)  # providers/ratelimit.py; test fakes have none
    if limiter is not None:
        limiter.configure(concurrency, on_event, stopping)


def _watch(provider: Provider, stopping: Callable[[], bool], on_wait: Callable[[Any], None] | None) -> None:
    limiter = getattr(provider, "limiter", None)
    if limiter is not None and hasattr(limiter, "watch"):
        limiter.watch(stopping, on_wait)
