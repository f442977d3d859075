"""The `secret_of` dependency graph: stable topological order, cycles, closures. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence


def cycles(deps: Mapping[str, Sequence[str]]) -> Iterator[list[str]]:
    """Each cycle an iterative depth-first search meets, as a path `[a, b, ..., a]`. Edges to
    unknown nodes are ignored."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(deps):
        if start in state or not deps[start]:  # (a leaf, most keys: no path, nothing to search or record)
            continue
        state[start] = 1
        path = [start]
        stack = [iter([c for c in deps[start] if c in deps])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter([c for c in deps[nxt] if c in deps]))
            elif state[nxt] == 1:
                yield [*path[path.index(nxt):], nxt]


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The first cycle as a path `[a, b, a]`, or None."""
    return next(cycles(deps), None)


def topological_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Every node after all of its dependencies; ties broken by name so plans are stable.
    Raises ValueError naming the cycle if there is one."""
    if not any(deps.values()):  # no edge at all (a workspace without `secret_of`): name order
        return sorted(deps)
    cycle = find_cycle(deps)
    if cycle:
        raise ValueError("dependency cycle: " + " -> ".join(cycle))
    order: list[str] = []
    done: set[str] = set()
    for root in sorted(deps):
        if root in done:
            continue
        if not deps[root]:  # a leaf (most keys) comes right after what came before it
            done.add(root)
            order.append(root)
            continue
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


def dependents(deps: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """The graph reversed: node -> the nodes that depend on it, each list in name order."""
    out: dict[str, list[str]] = {}
    for node in sorted(deps):
        for dep in deps[node]:
            out.setdefault(dep, []).append(node)
    return out
