"""Reading the remote side: refresh = one list call per provider instance, all instances
concurrently, through a `providers.pool.ProviderPool`; secret header values removed from listings."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from itertools import chain
from operator import attrgetter
from typing import TypeVar

from keyform.errors import ProviderError
from keyform.model import Workspace, header_of
from keyform.providers.pool import ProviderPool
from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot, clock_reading
from keyform.state import State

T = TypeVar("T")


def instances_in_use(workspace: Workspace, state: State, addresses: set[str] | None = None) -> set[str]:
    """Provider instances that own a desired, recorded or deposed key (within `addresses`)."""
    if addresses is None:  # the whole workspace (plan, apply): no test per key
        used = {s.provider for s in workspace.keys.values()}
        used |= {k.provider for k in state.keys.values()}
        return used | {d.provider for d in state.deposed}

    def ok(a: str) -> bool:
        return a in addresses

    used = {s.provider for a, s in workspace.keys.items() if ok(a)}
    used |= {k.provider for a, k in state.keys.items() if ok(a)}
    used |= {d.provider for d in state.deposed if ok(d.address)}
    return used


def secret_header_names(workspace: Workspace, state: State) -> dict[str, set[str]]:
    """Per provider instance, the header names that carry secrets (never kept from a listing); an
    instance with none is absent."""
    # the paths of every key's secret inputs and fingerprints, in C; most keys have none (an empty
    # mapping, passed over): not one argument per key to a union (~0.5 ms less at 10,000 keys)
    every = set(chain.from_iterable(filter(None, map(attrgetter("secret_inputs"), workspace.keys.values()))))
    every.update(chain.from_iterable(filter(None, map(attrgetter("fingerprints"), state.keys.values()))))
    if all(header_of(path) is None for path in every):  # most workspaces: no secret header at all
        return {}
    paths: dict[str, set[str]] = {}  # per instance, every secret input path (a handful in all)

    def add(provider: str, inputs: Iterable[str]) -> None:
        found = paths.get(provider)
        if found is None:
            found = paths[provider] = set()
        found.update(inputs)

    for spec in workspace.keys.values():  # plain loops: most keys have no secret input
        if spec.secret_inputs:
            add(spec.provider, spec.secret_inputs)
    for key in state.keys.values():
        if key.fingerprints:
            add(key.provider, key.fingerprints)
    out: dict[str, set[str]] = {}
    for provider, found in paths.items():
        if names := {header for path in found if (header := header_of(path)) is not None}:
            out[provider] = names
    return out


def strip_headers(key: RemoteKey, names: set[str]) -> RemoteKey:
    """`key` without the headers `names` (secret ones) in what it reports. Header names are
    case-insensitive (RFC 9110): an API that reports `x-api-key` for `X-Api-Key` kept the value in
    every plan, and printed it once the manifest no longer said which input it was."""
    headers = key.attrs.get("headers")
    if not names or not isinstance(headers, dict):
        return key
    folded = {n.lower() for n in names}
    if not any(isinstance(k, str) and k.lower() in folded for k in headers):
        return key
    attrs = dict(key.attrs)
    attrs["headers"] = {k: v for k, v in headers.items() if not (isinstance(k, str) and k.lower() in folded)}
    return replace(key, attrs=attrs)


def refresh(workspace: Workspace, state: State, pool: ProviderPool, instances: Iterable[str]) -> RemoteSnapshot:
    """One list call per instance, concurrently. A provider error fails the refresh. A Ctrl-C
    (KeyboardInterrupt, in the calling thread) ends it at once, even with a reply still awaited
    (`_each`)."""
    names = sorted(set(instances))
    secret_headers = secret_header_names(workspace, state)

    def one(name: str) -> InstanceSnapshot:
        provider = pool.get(name)
        listed = provider.list()
        if listed is None:
            return InstanceSnapshot(None, "the API has no list endpoint (404/405)")
        keys = keys_by_id(name, listed)
        hidden = secret_headers.get(name)
        if hidden:  # most instances: no secret header, nothing to strip
            keys = {i: strip_headers(k, hidden) for i, k in keys.items()}
        offset, clock_note = clock_reading(provider)
        return InstanceSnapshot(keys, clock_offset=offset, clock_note=clock_note)

    return RemoteSnapshot(dict(zip(names, _each(one, names, pool))), refreshed=True)


def _each(one: Callable[[str], T], names: Sequence[str], pool: ProviderPool) -> list[T]:
    """`one(name)` for every name, up to 16 at once in worker threads, in the order of `names`. A
    failure of one raises (the first in that order) once the workers have ended, none starting after it.

    A Ctrl-C (KeyboardInterrupt in the calling thread, waiting here) is raised at once: a listing
    waiting on a rate limit ends and sends nothing more (`ProviderPool.interrupt`), and one whose
    request is in flight is abandoned, not waited for. A listing writes nothing, so nothing is lost;
    waiting for its reply held a plan for the read timeout (30 s), or up to the provider's
    `deadline` (as long as a day) against a server that drips its reply. The workers are daemon
    threads of their own, not a ThreadPoolExecutor's: those are joined at interpreter exit
    (`concurrent.futures.thread._python_exit`), which held `sys.exit` just the same. An abandoned
    call ends by itself (its read timeout or deadline; at the latest with the process), and no retry
    or next page of it goes out through keyform's HTTP client: the stopped limiter admits none."""
    futures: list[Future[T]] = [Future() for _ in names]
    pending = iter(range(len(names)))
    taking = threading.Lock()

    def work() -> None:
        while True:
            with taking:
                i = next(pending, None)
            if i is None:
                return
            future = futures[i]
            if not future.set_running_or_notify_cancel():  # cancelled: a listing failed, or a Ctrl-C
                continue
            try:
                future.set_result(one(names[i]))
            except BaseException as exc:  # (given to the caller by `result`)
                future.set_exception(exc)

    workers = [threading.Thread(target=work, name=f"keyform-refresh-{n}", daemon=True)
               for n in range(min(16, len(names)))]
    for worker in workers:
        worker.start()
    try:
        try:
            return [future.result() for future in futures]
        except BaseException as exc:
            for future in futures:
                future.cancel()  # those not started yet (a running one cannot be)
            if not isinstance(exc, KeyboardInterrupt):  # a failure: the listings in flight end first
                for worker in workers:
                    worker.join()
            raise
    except KeyboardInterrupt:  # waiting for the listings, or for those in flight after a failure
        pool.interrupt()  # every wait in a limiter ends now, unsent; nothing more is sent
        raise


def keys_by_id(instance: str, listed: list[RemoteKey]) -> dict[str, RemoteKey]:
    """`instance`'s listing by id. One that names an id twice: the same key twice (a page
    boundary that moved) is harmless; two different copies (active and revoked, two names) leave no
    way to tell which is current (taking the last one planned a replacement of a live key, and
    `import` took whichever came first): ProviderError."""
    keys = {k.id: k for k in listed}
    if len(keys) != len(listed):
        _refuse_contradictions(instance, listed, keys)
    return keys


def _refuse_contradictions(instance: str, listed: list[RemoteKey], keys: dict[str, RemoteKey]) -> None:
    for key in listed:
        if keys[key.id] != key:
            raise ProviderError(f"{instance}: list: the API listed key {key.id} twice, and the two "
                                "copies differ; keyform cannot tell which is current")
