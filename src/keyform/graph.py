"""The `secret_of` dependency graph: stable topological order, cycles, closures. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a path `[a, b, a]`, or None. Edges to unknown nodes are ignored."""
    color: dict[str, int] = {}
    for root in sorted(deps):
        if color.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                color[node] = 1
                path.append(node)
            children = [c for c in deps.get(node, ()) if c in deps]
            if i < len(children):
                stack.append((node, i + 1))
                child = children[i]
                if color.get(child) == 1:
                    return [*path[path.index(child):], child]
                if not color.get(child):
                    stack.append((child, 0))
            else:
                color[node] = 2
                path.pop()
    return None


def topological_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Every node after all of its dependencies; ties broken by name so plans are stable.
    Raises ValueError naming the cycle if there is one."""
    cycle = find_cycle(deps)
    if cycle:
        raise ValueError("dependency cycle: " + " -> ".join(cycle))
    order: list[str] = []
    done: set[str] = set()
    for root in sorted(deps):
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in done:
                continue
            if expanded:
                done.add(node)
                order.append(node)
                continue
            stack.append((node, True))
            for child in sorted(deps.get(node, ()), reverse=True):
                if child in deps and child not in done:
                    stack.append((child, False))
    return order


def closure(roots: Iterable[str], deps: Mapping[str, Sequence[str]]) -> set[str]:
    """The roots and everything they depend on, transitively."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(deps.get(node, ()))
    return seen


def dependants(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The reverse edges: for each node, the nodes that depend on it."""
    out: dict[str, list[str]] = {n: [] for n in deps}
    for node, sources in deps.items():
        for src in sources:
            out.setdefault(src, []).append(node)
    return out
