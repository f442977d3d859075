"""Builders for the desired model and state, for the planner's and applier's pure tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from keyform.durations import format_time
from keyform.errors import SourceLoc
from keyform.journal import Record
from keyform.model import (
    NEVER,
    EnvRef,
    Expiry,
    KeySpec,
    ProviderConfig,
    Rotation,
    SecretRef,
    SinkConfig,
    SinkTarget,
    Workspace,
    header_input,
)
from keyform.state import KeyState, State

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LOC = SourceLoc("keyform.yaml", 1)


def expires_in(days: int) -> Expiry:
    return Expiry("in", duration=timedelta(days=days), text=f"{days}d")


def questra_key(address: str, name: str | None = None, *, provider: str = "qp", sink: str = "env",
                expiry: Expiry = NEVER, rotation: Rotation | None = None, prevent_destroy: bool = False) -> KeySpec:
    return KeySpec(address=address, provider=provider, provider_type="questra",
                   attrs={"name": name or address}, loc=LOC, expiry=expiry, rotation=rotation or Rotation(),
                   sink=SinkTarget(sink, address.upper().replace("-", "_")), prevent_destroy=prevent_destroy)


def textql_key(address: str, *, hosts: list[str] | None = None, auth: SecretRef | None = None,
               headers: dict[str, str] | None = None, is_private: bool = False, expiry: Expiry = NEVER,
               description: str = "", provider: str = "tq",
               secret_headers: dict[str, SecretRef] | None = None) -> KeySpec:
    inputs: dict[str, SecretRef] = {}
    if auth is not None:
        inputs["auth_value"] = auth
    for h, ref in (secret_headers or {}).items():
        inputs[header_input(h)] = ref
    attrs: dict[str, Any] = {"description": description, "hosts": hosts or ["api.questra.ai"],
                             "headers": headers or {}, "query_params": {}, "api_provider": "questra",
                             "auth_type": "token", "is_private": is_private}
    return KeySpec(address=address, provider=provider, provider_type="textql", attrs=attrs, loc=LOC,
                   secret_inputs=inputs, expiry=expiry)


def workspace(*keys: KeySpec, readable: bool = True) -> Workspace:
    providers = {
        "qp": ProviderConfig("qp", "questra", "http://127.0.0.1:1", EnvRef("QT"), "org_1", LOC),
        "tq": ProviderConfig("tq", "textql", "http://127.0.0.1:1", EnvRef("TT"), None, LOC),
    }
    sinks = {"env": SinkConfig("env", "dotenv", {"path": "/nonexistent/.env"}, LOC)}
    return Workspace(files=("keyform.yaml",), digest="d1", state_path="keyform.state.json",
                     providers=providers, sinks=sinks, keys={k.address: k for k in keys}, default_sink="env")


def recorded(spec: KeySpec, remote_id: str, *, created: datetime = T0, state: State | None = None,
             fingerprints: dict[str, str] | None = None) -> KeyState:
    """The state record apply would have written for `spec` created at `created`."""
    exp = spec.expiry.resolve(created)
    attrs = dict(spec.attrs)
    remote = {k: v for k, v in attrs.items() if k != "is_private"}
    return KeyState.of(spec, remote_id, attrs=attrs, remote=remote, expires_at=format_time(exp) if exp else None,
                       created_at=format_time(created), sink=spec.sink, fingerprints=fingerprints or {},
                       applied_at=None)


def state_with(*records: KeyState) -> State:
    st = State(lineage="lin-1", serial=3, salt="00" * 16)
    for r in records:
        st.keys[r.address] = r
    return st


class ListWriter:
    """A `keyform.journal.JournalWriter` that keeps the records in a list."""

    def __init__(self, records: list[Record] | None = None) -> None:
        self.records: list[Record] = [] if records is None else records

    def append(self, record: Record) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass

    def __enter__(self) -> ListWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
