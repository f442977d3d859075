"""Checks across keys: `secret_of` targets, reference cycles, and sink entries used twice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from keyform.graph import cycles
from keyform.kinds import kind
from keyform.manifest.document import YamlPath
from keyform.manifest.sources import Declaration, Report, dotted
from keyform.model import EnvRef, FileRef, KeySpec, SecretOfRef, SinkConfig, sink_place


def check_references(keys: Mapping[str, KeySpec], declared: Mapping[str, Declaration],
                     sinks: Mapping[str, SinkConfig], report: Report, consumers: Sequence[str] | None = None) -> None:
    """`keys` are the keys that built cleanly; `declared` all keys, built or not; `sinks` the
    sinks that built cleanly; `consumers`, when known (`keyspecs.build_keys`), the addresses of
    the keys with a `secret_of` input, in the keys' order (else each key's inputs are looked at)."""
    consumers_found = _consumers(keys, consumers)
    _check_secret_of(keys, declared, consumers_found, report)
    _check_cycles(keys, declared, consumers_found, report)
    _check_sink_entries(keys, declared, sinks, report)


_PLAIN_REFS = frozenset((EnvRef, FileRef))  # (as `KeySpec.dependencies` passes them over)


def _consumers(keys: Mapping[str, KeySpec],
               known: Sequence[str] | None = None) -> list[tuple[str, KeySpec, list[tuple[str, SecretOfRef]]]]:
    """The built keys with a `secret_of` input: (address, spec, [(attribute, ref)]), in the keys'
    order; found in one pass for both checks (most keys have no input, or only `env`/`file` ones),
    or among the `known` addresses only."""
    found = []
    for address, spec in (keys.items() if known is None else ((a, keys[a]) for a in known)):
        inputs = spec.secret_inputs
        if inputs and not _PLAIN_REFS.issuperset(map(type, inputs.values())):
            refs = [(attribute, ref) for attribute, ref in inputs.items() if isinstance(ref, SecretOfRef)]
            if refs:
                found.append((address, spec, refs))
    return found


def _input_path(decl: Declaration, attribute: str) -> YamlPath:
    """`headers.X-Api-Key` → ("keys", ADDRESS, "headers", "X-Api-Key")."""
    return (*decl.path, *attribute.split(".", 1))


def raw_secret_of(value: Any, path: YamlPath = ()) -> list[tuple[YamlPath, str]]:
    """Every `{secret_of: ADDRESS}` written in a key's mapping, with the path of its value: the
    references of a key that passed the schema but was not built (its provider or sink failed),
    so reference and cycle checks still cover it in the same run."""
    if isinstance(value, dict):
        target = value.get("secret_of")
        if isinstance(target, str) and len(value) == 1:
            return [(path, target)]
        return [found for k, v in value.items() for found in raw_secret_of(v, (*path, str(k)))]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in raw_secret_of(v, (*path, str(i)))]
    return []


def _check_secret_of(keys: Mapping[str, KeySpec], declared: Mapping[str, Declaration],
                     consumers: list[tuple[str, KeySpec, list[tuple[str, SecretOfRef]]]], report: Report) -> None:
    for _, decl in _unbuilt(keys, declared):  # written well enough to read its references
        for where, name in raw_secret_of(decl.value):
            if name not in declared:
                path = (*decl.path, *where)
                report.error(decl.source, (*path, "secret_of"),
                             f"{dotted(path)}: secret_of names an unknown key {name!r}")
    for address, _, refs in consumers:
        for attribute, ref in refs:
            decl = declared[address]
            path = _input_path(decl, attribute)
            target = keys.get(ref.address)
            if ref.address not in declared:
                report.error(decl.source, (*path, "secret_of"),
                             f"{dotted(path)}: secret_of names an unknown key {ref.address!r}")
            elif target is not None and not kind(target.provider_type).returns_secret:
                report.error(decl.source, (*path, "secret_of"),
                             f"{dotted(path)}: key {ref.address!r} issues no secret ({target.provider_type} "
                             "keys return none); secret_of needs a key whose provider returns a secret")


def _unbuilt(keys: Mapping[str, KeySpec], declared: Mapping[str, Declaration]) -> list[tuple[str, Declaration]]:
    """The keys that passed the schema but were not built (their provider or sink failed), in
    declaration order: none when every declared key was built (no need to look at each)."""
    if len(keys) == len(declared):  # `keys` is a subset of `declared`
        return []
    return [(a, decl) for a, decl in declared.items() if a not in keys and decl.valid]


def _check_cycles(keys: Mapping[str, KeySpec], declared: Mapping[str, Declaration],
                  consumers: list[tuple[str, KeySpec, list[tuple[str, SecretOfRef]]]], report: Report) -> None:
    # Only a key with a `secret_of` edge can be on a cycle, so the graph holds just those (most
    # keys have none). The cycles found, and their order, are those of the graph of all keys:
    # `cycles` ignores an edge to a node it does not hold, and a key without edges ends no cycle.
    unbuilt = _unbuilt(keys, declared)
    others = {a for a, _ in unbuilt}
    graph: dict[str, list[str]] = {}
    for address, spec, _ in consumers:  # (a key with no `secret_of` input has no dependency)
        if deps := [d for d in spec.dependencies() if d in keys or d in others]:
            graph[address] = deps
    for address, decl in unbuilt:
        if deps := sorted({t for _, t in raw_secret_of(decl.value) if t in keys or t in others}):
            graph[address] = deps
    seen: set[tuple[str, ...]] = set()
    for cycle in cycles(graph):
        ring = cycle[:-1]
        turn = ring.index(min(ring))
        canonical = (*ring[turn:], *ring[:turn])
        if canonical in seen:
            continue
        seen.add(canonical)
        first = declared[canonical[0]]
        report.error(first.source, first.path,
                     f"reference cycle: {' -> '.join((*canonical, canonical[0]))}")


def _check_sink_entries(keys: Mapping[str, KeySpec], declared: Mapping[str, Declaration],
                        sinks: Mapping[str, SinkConfig], report: Report) -> None:
    """No two keys write one entry: by sink name, and through two sink names of one file (exact
    aliases, `Workspace.entry_id`), where each write would put one key's secret over the other's."""
    place = {name: sink_place(cfg, name) for name, cfg in sinks.items()}  # once per sink, not per key
    taken: dict[tuple[str, str], str] = {}
    for address, spec in keys.items():
        target = spec.sink
        if target is None:
            continue
        other = taken.setdefault((place.get(target.sink) or sink_place(None, target.sink), target.name), address)
        if other != address:
            decl = declared[address]
            path = (*decl.path, "sink") if "sink" in decl.value else decl.path
            theirs = keys[other].sink
            assert theirs is not None  # only a key with a sink is taken
            how = "already used by" if theirs.sink == target.sink else \
                f"the entry {theirs} (sinks {theirs.sink} and {target.sink} name one file) of"
            report.error(decl.source, path, f"{dotted(decl.path)}: sink entry {target} is {how} "
                         f"key {other!r} ({declared[other].loc}); set sink.as")
