"""Benchmark workloads: keyform projects of N keys, written as manifest files in a directory.

A project has `questra` Questra keys spread over up to `orgs` Questra provider instances (one per
org) and `textql` TextQL keys in one TextQL instance. Each file is one provider instance's keys;
`keyform.yaml` holds the providers and sinks. Every Questra key is sunk (`expires_in: 90d`, a
rotation rule, like a real team's keys); every TextQL key has a write-only `auth_value` from the
environment, so the plan fingerprints it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

TOKENS = {"QUESTRA_TOKEN": "bench-questra-token", "TEXTQL_TOKEN": "bench-textql-token",
          "BENCH_TEXTQL_AUTH": "bench-auth-value"}


@dataclass(frozen=True)
class Workload:
    questra: int
    textql: int
    orgs: int = 10
    sink_per_org: bool = True  # False: every Questra secret goes to one dotenv file

    @property
    def keys(self) -> int:
        return self.questra + self.textql

    @property
    def org_count(self) -> int:
        return max(1, min(self.orgs, self.questra)) if self.questra else 0

    @property
    def instances(self) -> int:
        """Provider instances that own keys: one per org, plus TextQL."""
        return self.org_count + (1 if self.textql else 0)

    @classmethod
    def mixed(cls, keys: int, orgs: int = 10) -> Workload:
        """Half Questra (over `orgs` orgs), half TextQL: the 10,000-key plan's shape."""
        return cls(questra=keys - keys // 2, textql=keys // 2, orgs=orgs)


def org_name(i: int) -> str:
    return f"org_bench_{i:02d}"


def keys_per_org(keys: int, orgs: int) -> list[int]:
    """How `keys` Questra keys are spread over `orgs` orgs (the first ones get the remainder)."""
    return [keys // orgs + (1 if o < keys % orgs else 0) for o in range(orgs)]


def questra_key_name(org: int, i: int) -> str:
    """The remote name of the i-th Questra key of org `org`."""
    return f"service {i:05d} ({org_name(org)})"


def write_project(root: Path, url: str, w: Workload) -> Path:
    """Write the manifests of `w` under `root/manifests` (replacing any) and return that directory."""
    mdir = root / "manifests"
    if mdir.exists():
        shutil.rmtree(mdir)
    mdir.mkdir(parents=True)
    out = ["version: 1", "state:", "  path: ../keyform.state.json", "providers:"]
    for o in range(w.org_count):
        out += [f"  questra-{o:02d}:", "    type: questra", f"    base_url: {url}",
                "    token: {env: QUESTRA_TOKEN}", f"    org_id: {org_name(o)}"]
    if w.textql:
        out += ["  textql:", "    type: textql", f"    base_url: {url}", "    token: {env: TEXTQL_TOKEN}"]
    if w.questra:
        out.append("sinks:")
        sinks = range(w.org_count) if w.sink_per_org else range(1)
        for o in sinks:
            out += [f"  env-{o:02d}:", "    type: dotenv", f"    path: ../secrets/org{o:02d}.env"]
    (mdir / "keyform.yaml").write_text("\n".join(out) + "\n")

    for o, count in enumerate(keys_per_org(w.questra, w.org_count)):
        sink = f"env-{o:02d}" if w.sink_per_org else "env-00"
        lines = ["version: 1", "keys:"]
        for i in range(count):
            lines += [f"  q{o:02d}-svc-{i:05d}:", f"    provider: questra-{o:02d}",
                      f"    name: {questra_key_name(o, i)}", "    expires_in: 90d",
                      "    rotation: {before_expiry: 14d, grace: 1h}",
                      f"    sink: {{use: {sink}, as: Q{o:02d}_SVC_{i:05d}}}"]
        (mdir / f"questra-{o:02d}.yaml").write_text("\n".join(lines) + "\n")
    if w.textql:
        lines = ["version: 1", "keys:"]
        for i in range(w.textql):
            lines += [f"  tq-svc-{i:05d}:", "    provider: textql", f"    description: service {i:05d} upstream",
                      f"    hosts: [api{i % 50}.example.com]", f"    headers: {{X-Team: team-{i % 20}}}",
                      "    api_provider: questra", "    auth_type: token",
                      "    auth_value: {env: BENCH_TEXTQL_AUTH}"]
        (mdir / "textql.yaml").write_text("\n".join(lines) + "\n")
    return mdir


def bench_env() -> dict[str, str]:
    """The environment for keyform subprocesses: tokens set, colour off, no user site noise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYFORM")}
    env.update(TOKENS)
    env["NO_COLOR"] = "1"
    return env


ONE_FILE_SINKS = ("dotenv", "json", "sops", "k8s-secret", "k8s-secret+sops")


def write_sink_project(root: Path, url: str, kind: str, keys: int, age_recipient: str | None) -> Path:
    """`keys` Questra keys in one org whose secrets all go into one file of sink type `kind`
    (`k8s-secret+sops`: an encrypted Secret); returns that file's path. `root/keyform.yaml`."""
    out = {
        "dotenv": ("out/keys.env", "{type: dotenv, path: out/keys.env}"),
        "json": ("out/keys.json", "{type: json, path: out/keys.json}"),
        "sops": ("out/keys.enc.env", f"{{type: sops, path: out/keys.enc.env, age: {age_recipient}}}"),
        "k8s-secret": ("out/keys.secret.yaml", "{type: k8s-secret, path: out/keys.secret.yaml, name: keys}"),
        "k8s-secret+sops": ("out/keys.secret.enc.yaml", "{type: k8s-secret, path: out/keys.secret.enc.yaml, "
                                                        f"name: keys, encrypt: sops, age: {age_recipient}}}"),
    }
    path, sink = out[kind]
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    lines = ["version: 1", "providers:",
             f"  qp: {{type: questra, base_url: '{url}', token: {{env: QUESTRA_TOKEN}}, org_id: org_sink_bench}}",
             "sinks:", f"  out: {sink}", "defaults: {sink: out}", "keys:"]
    lines += [f"  k{i:05d}: {{provider: qp, name: key {i:05d}}}" for i in range(keys)]
    (root / "keyform.yaml").write_text("\n".join(lines) + "\n")
    return root / path
