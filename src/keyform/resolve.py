"""Resolving secret references to values, in memory only, at the moment they are needed.

`{env: NAME}` reads the environment, `{file: PATH}` reads a file (stripped of surrounding
whitespace), `{secret_of: ADDRESS}` is resolved by the applier (from this apply's issued secrets
or by reading the source key's sink back). Errors name the reference, never a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from keyform.errors import Diagnostic, KeyformError
from keyform.model import EnvRef, FileRef, KeySpec, SecretOfRef, SecretRef, Workspace
from keyform.state import State


def read_ref(ref: SecretRef, what: str, env: Mapping[str, str] | None = None) -> str:
    """The value behind an env or file reference. `what` says where it is used, for messages."""
    env = os.environ if env is None else env
    if isinstance(ref, EnvRef):
        value = env.get(ref.name)
        if value is None:
            raise KeyformError(f"{what}: environment variable {ref.name} is not set")
        if value == "":
            raise KeyformError(f"{what}: environment variable {ref.name} is set but empty")
        return value
    if isinstance(ref, FileRef):
        try:
            with open(ref.path, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError as exc:
            raise KeyformError(f"{what}: cannot read {ref.path}: {exc.strerror or exc}") from None
        if not value:
            raise KeyformError(f"{what}: {ref.path} is empty")
        return value
    raise KeyformError(f"{what}: secret_of:{ref.address} is resolved by apply, not here")


def provider_credentials(workspace: Workspace, name: str,
                         env: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """(token, org_id) for a provider instance; KeyformError at the manifest line of `token:` (or
    `org_id:`), saying whether the variable is unset or empty."""
    cfg = workspace.providers[name]
    try:
        token = read_ref(cfg.token, f"providers.{name}.token", env)
    except KeyformError as exc:
        raise KeyformError([Diagnostic(d.message, cfg.token_loc or cfg.loc) for d in exc.diagnostics]) from None
    org = cfg.org_id
    try:
        org_id = read_ref(org, f"providers.{name}.org_id", env) if isinstance(org, EnvRef) else org
    except KeyformError as exc:
        raise KeyformError([Diagnostic(d.message, cfg.org_id_loc or cfg.loc) for d in exc.diagnostics]) from None
    return token, org_id


def input_fingerprints(workspace: Workspace, state: State, addresses: list[str] | None = None,
                       env: Mapping[str, str] | None = None) -> dict[str, dict[str, str | None]]:
    """HMAC fingerprints of every env/file secret input (None where it cannot be read now).
    `secret_of` inputs are fingerprinted by the planner from state (which key fed them)."""
    out: dict[str, dict[str, str | None]] = {}
    for address in addresses if addresses is not None else list(workspace.keys):
        spec = workspace.keys[address]
        fps: dict[str, str | None] = {}
        for path, ref in spec.secret_inputs.items():
            if isinstance(ref, SecretOfRef):
                continue
            try:
                fps[path] = state.fingerprint(read_ref(ref, f"keys.{address}.{path}", env))
            except KeyformError:
                fps[path] = None
        if fps:
            out[address] = fps
    return out


def unresolved_inputs(spec: KeySpec, env: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """Every env/file input of `spec` that cannot be read now (apply checks before any call)."""
    problems: list[Diagnostic] = []
    for path, ref in sorted(spec.secret_inputs.items()):
        if isinstance(ref, SecretOfRef):
            continue
        try:
            read_ref(ref, f"keys.{spec.address}.{path}", env)
        except KeyformError as exc:
            problems.extend(Diagnostic(d.message, spec.loc) for d in exc.diagnostics)
    return problems
