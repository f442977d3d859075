"""Manifests for the kill -9 harness and the tests built on it: `ManifestSpec` (Questra keys sunk to
one dotenv file, TextQL keys fed by their secrets) rendered to YAML, and `mutate`, which changes one
at random so an apply creates, replaces, updates and deletes keys (`work_units` sizes the work)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from harness.project import ORG, SINK_REL


@dataclass(frozen=True)
class QuestraSpec:
    address: str
    name: str
    entry: str = ""  # the dotenv entry its secret goes to ("": the default, ADDRESS in upper case)


@dataclass(frozen=True)
class TextqlSpec:
    address: str
    description: str
    source: str  # the Questra key whose secret is its auth_value


@dataclass(frozen=True)
class ManifestSpec:
    """The keys of one manifest: Questra keys sunk to one dotenv file, TextQL keys fed by them."""

    questra: tuple[QuestraSpec, ...]
    textql: tuple[TextqlSpec, ...] = ()

    @classmethod
    def initial(cls, n_questra: int, n_textql: int) -> ManifestSpec:
        q = tuple(QuestraSpec(f"q{i}", f"q{i}") for i in range(n_questra))
        t = tuple(TextqlSpec(f"t{i}", f"t{i} access", f"q{i % n_questra}") for i in range(n_textql))
        return cls(q, t)

    @classmethod
    def sized(cls, n_keys: int) -> ManifestSpec:
        """`n_keys` keys: one third TextQL (each fed by a Questra key), the rest Questra."""
        n_textql = n_keys // 3
        return cls.initial(n_keys - n_textql, n_textql)

    @property
    def addresses(self) -> set[str]:
        return {k.address for k in self.questra} | {k.address for k in self.textql}

    def render(self, url: str, org: str = ORG) -> str:
        lines = [
            "version: 1",
            "providers:",
            "  qp:",
            "    type: questra",
            f"    base_url: {url}",
            "    token: {env: QUESTRA_TOKEN}",
            f"    org_id: {org}",
            "  tq:",
            "    type: textql",
            f"    base_url: {url}",
            "    token: {env: TEXTQL_TOKEN}",
            "sinks:",
            "  env:",
            "    type: dotenv",
            f"    path: {SINK_REL}",
            "defaults:",
            "  sink: env",
            "keys:",
        ]
        for q in self.questra:
            lines += [f"  {q.address}:", "    provider: qp", f"    name: {json.dumps(q.name)}"]
            if q.entry:
                lines.append(f"    sink: {{use: env, as: {q.entry}}}")
        for t in self.textql:
            lines += [f"  {t.address}:", "    provider: tq", f"    description: {json.dumps(t.description)}",
                      "    hosts: [api.questra.ai]", f"    headers: {{X-Org-Id: {org}}}", "    api_provider: questra",
                      "    auth_type: token", f"    auth_value: {{secret_of: {t.source}}}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Mutation:
    """A manifest change and its expected amount of remote work (for sizing the kill window)."""

    spec: ManifestSpec
    units: int  # ~ remote mutations: create 1, replace 2 (create + revoke), update 1, delete 1


def mutate(universe: ManifestSpec, current: ManifestSpec, rng: random.Random, generation: int) -> Mutation:
    """Rename some Questra keys (replace, and their TextQL consumers too), move the secrets of others to
    another sink entry and re-describe some TextQL keys (updates in place), drop or restore some keys
    (delete/create). Never an empty change."""
    present = {k.address for k in current.questra}
    old_q = {k.address: k for k in current.questra}
    old_t = {k.address: k for k in current.textql}
    while True:
        questra: list[QuestraSpec] = []
        for q in universe.questra:
            keep = q.address in present
            if (keep and rng.random() < 0.12) or (not keep and rng.random() < 0.7):
                keep = not keep
            if not keep:
                continue
            old = old_q.get(q.address)
            name = old.name if old else q.name
            entry = old.entry if old else ""
            if old is not None and rng.random() < 0.4:
                name = f"{q.address} g{generation}"
            elif old is not None and rng.random() < 0.2:
                entry = f"{q.address.upper()}_S{generation}"
            questra.append(QuestraSpec(q.address, name, entry))
        sources = {q.address for q in questra}
        textql: list[TextqlSpec] = []
        for t in universe.textql:
            if t.source not in sources or (rng.random() < 0.1):
                continue
            old_tq = old_t.get(t.address)
            desc = old_tq.description if old_tq else t.description
            if old_tq is not None and rng.random() < 0.4:
                desc = f"{t.address} access g{generation}"
            textql.append(TextqlSpec(t.address, desc, t.source))
        new = ManifestSpec(tuple(questra), tuple(textql))
        units = work_units(current, new)
        if units:
            return Mutation(new, units)


def work_units(old: ManifestSpec, new: ManifestSpec, forced: Sequence[str] = ()) -> int:
    """Roughly how many remote mutations an apply from `old` to `new` makes (`forced`: `--replace`)."""
    old_q = {k.address: k for k in old.questra}
    new_q = {k.address: k for k in new.questra}
    old_t = {k.address: k for k in old.textql}
    replaced = {a for a, k in new_q.items() if a in old_q and (old_q[a].name != k.name or a in forced)}
    units = sum(1 for a in new_q if a not in old_q) + 2 * len(replaced)
    units += sum(1 for a, k in new_q.items() if a in old_q and a not in replaced and old_q[a].entry != k.entry)
    units += sum(1 for a in old_q if a not in new_q) + sum(1 for a in old_t if a not in {t.address for t in new.textql})
    for t in new.textql:
        if t.address not in old_t:
            units += 1
        elif t.source in replaced or t.source not in old_q:
            units += 2
        elif old_t[t.address].description != t.description:
            units += 1
    return units
