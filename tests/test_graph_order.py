"""`keyform.graph`'s order and cycles on random graphs: every node once, each after what it depends
on, ties in name order, and the same order and the same cycles (named the same way) as the plain
depth-first search it is (`_reference_*` below: the code before its shortcuts for leaves and for
graphs without an edge)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from keyform.graph import cycles, topological_order

NODES = ["a", "b", "c", "d", "e", "f", "g"]
GRAPHS = st.dictionaries(st.sampled_from(NODES), st.lists(st.sampled_from([*NODES, "unknown"]), max_size=3,
                                                          unique=True), max_size=7)


def _reference_cycles(deps: Mapping[str, Sequence[str]]) -> Iterator[list[str]]:
    state: dict[str, int] = {}
    for start in sorted(deps):
        if start in state:
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


def _reference_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
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


@settings(max_examples=300, deadline=None)
@given(GRAPHS)
def test_order_and_cycles_are_the_plain_search_s(deps: dict[str, list[str]]) -> None:
    assert list(cycles(deps)) == list(_reference_cycles(deps))
    found = next(_reference_cycles(deps), None)
    try:
        order = topological_order(deps)
    except ValueError as exc:
        assert found is not None and str(exc) == "dependency cycle: " + " -> ".join(found)
        return
    assert found is None
    assert order == _reference_order(deps)
    assert sorted(order) == sorted(deps)
    assert all(order.index(d) < order.index(n) for n in deps for d in deps[n] if d in deps)


def test_a_graph_without_edges_is_in_name_order() -> None:
    assert topological_order({"b": [], "a": [], "c": []}) == ["a", "b", "c"]
