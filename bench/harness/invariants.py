"""The invariants of issue 6, checked after a (crashed, then converged) apply against the emulator's
stored keys, secrets included. Each check returns the violations as text (no secret in it):

(a) every active key in the emulator is in state (all keys in the org are keyform's);
(b) every live Questra key in state has its current secret in its sink;
(c) the state file (and its backup) always loads: JSON and `LocalBackend.load`;
(e) no key is duplicated: at most one active remote key per name/description;
plus: each TextQL key's authValue is the current secret of its Questra source, and once converged
the state holds exactly the manifest's keys and no deposed key, the journal no record, no lock.
((d), convergence within a number of applies, is the trial runner's: `harness.crash`.)
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from harness.generator import ManifestSpec
from harness.project import ORG, Project
from keyform.backends.local import LocalBackend
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError
from keyform.sinks.dotenv import DotenvSink


def state_loads(project: Project) -> list[str]:
    """(c): the state file and its backup, where they exist, are JSON and load through LocalBackend."""
    problems = []
    for path in (project.state_path, project.backup_path):
        if not path.exists():
            continue
        try:
            json.loads(path.read_bytes())
            LocalBackend(path).load()
        except (ValueError, KeyformError) as exc:
            problems.append(f"(c) {path.name} does not load: {exc}")
    return problems


def emulator_keys(control: EmulatorControl, org: str = ORG) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    st = control.state()
    return list(st["questra"]["orgs"].get(org, [])), list(st["textql"]["keys"])


def duplicates(questra: list[dict[str, Any]], textql: list[dict[str, Any]]) -> list[str]:
    """(e): names of Questra keys active more than once, descriptions of TextQL keys present more than once."""
    q = Counter(k["name"] for k in questra if not k["revoked"])
    t = Counter(k.get("description", "") for k in textql)
    return [f"questra {n!r} x{c}" for n, c in sorted(q.items()) if c > 1] + \
           [f"textql {d!r} x{c}" for d, c in sorted(t.items()) if c > 1]


def check_invariants(project: Project, control: EmulatorControl, spec: ManifestSpec, *,
                     converged: bool = True, org: str = ORG) -> list[str]:
    """Every invariant that must hold once an apply has converged; returns the violations (no secrets)."""
    problems = state_loads(project)
    if problems:
        return problems
    st = project.state() if project.state_path.exists() else {"keys": {}, "deposed": []}
    keys: dict[str, dict[str, Any]] = st["keys"]
    deposed = {d["remote_id"] for d in st["deposed"]}
    tracked = {k["remote_id"] for k in keys.values()} | deposed
    questra, textql = emulator_keys(control, org)
    q_by_id = {k["id"]: k for k in questra}
    t_by_id = {k["id"]: k for k in textql}
    # (a) every active key keyform created is in state
    for k in questra:
        if not k["revoked"] and k["id"] not in tracked:
            problems.append(f"(a) active Questra key {k['id']} ({k['name']!r}) is not in state")
    for k in textql:
        if k["id"] not in tracked:
            problems.append(f"(a) TextQL key {k['id']} ({k.get('description')!r}) is not in state")
    # (b) every live Questra key in state has its current secret in its sink
    sink = DotenvSink(project.sink_path)
    for address, ks in sorted(keys.items()):
        if ks["provider_type"] != "questra":
            continue
        rk = q_by_id.get(ks["remote_id"])
        if rk is None:
            problems.append(f"{address}: state names Questra key {ks['remote_id']}, which does not exist")
            continue
        if rk["revoked"]:
            if converged:
                problems.append(f"{address}: the key in state ({rk['id']}) is revoked after convergence")
            continue
        entry = (ks.get("sink") or {}).get("as")
        value = sink.read(entry) if entry else None
        if value != rk["secret"]:
            what = "missing from" if value is None else "not the current secret in"
            problems.append(f"(b) {address}: the secret of live key {rk['id']} is {what} its sink entry {entry}")
    # (e) no duplicates
    problems += [f"(e) duplicated: {d}" for d in duplicates(questra, textql)]
    # the TextQL key stores the current secret of its source
    sources = {t.address: t.source for t in spec.textql}
    for address, ks in sorted(keys.items()):
        if ks["provider_type"] != "textql":
            continue
        rk = t_by_id.get(ks["remote_id"])
        if rk is None:
            problems.append(f"{address}: state names TextQL key {ks['remote_id']}, which does not exist")
            continue
        src = keys.get(sources.get(address, ""))
        src_key = q_by_id.get(src["remote_id"]) if src else None
        if src_key is None or rk.get("authValue") != src_key["secret"]:
            problems.append(f"{address}: TextQL authValue is not the current secret of {sources.get(address)}")
    if converged:
        if set(keys) != spec.addresses:
            problems.append(f"state holds {sorted(keys)}, the manifest declares {sorted(spec.addresses)}")
        if deposed:
            problems.append(f"deposed keys left after convergence: {sorted(deposed)}")
        records = project.journal_records()
        if records:
            problems.append(f"the journal still holds {len(records)} record(s) after convergence")
        if project.lock_path.exists():
            problems.append("the state lock is still held after convergence")
    return problems
