"""`keyform graph`: the `secret_of` dependency graph as Mermaid (GitHub renders it in Markdown) or
Graphviz DOT, optionally coloured by a plan's actions; and the cascade graph the Markdown plan
shows. Pure: data in, text out.

An edge points from a source to the key that consumes its secret (`ci-bot --> ana-questra`).
Addresses and provider names come from manifests or a plan file: labels are escaped for each
format, and control characters never reach the output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from keyform.graph import topological_order
from keyform.model import SecretOfRef, Workspace
from keyform.plan import Action, Change, Plan
from keyform.records import record
from keyform.render.safe import blanked

# Node colours by action: (fill, stroke), the same in Mermaid and DOT.
COLOURS: Mapping[str, tuple[str, str]] = {
    "create": ("#dafbe1", "#1a7f37"),
    "update": ("#fff8c5", "#9a6700"),
    "replace": ("#fbefff", "#8250df"),
    "delete": ("#ffebe9", "#cf222e"),
}
MAX_MARKDOWN_NODES = 40  # the plan comment's graph; the rest is counted


@record
class Node:
    address: str
    provider: str
    provider_type: str
    action: str | None = None  # create | update | replace | delete; None: no change (or no plan)


@record
class Edge:
    source: str
    consumer: str
    via: str = ""  # the consumer's input fed by the source, e.g. auth_value


@record
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    omitted: int = 0  # nodes left out by a cap


def from_workspace(workspace: Workspace, plan: Plan | None = None) -> Graph:
    """Every declared key and its `secret_of` edges; with a plan, each node's action, and the keys
    the plan deletes (in the state only) as extra nodes."""
    actions = _actions(plan.changes) if plan is not None else {}
    order = topological_order({a: s.dependencies() for a, s in workspace.keys.items()})  # sources first
    nodes = [Node(a, workspace.keys[a].provider, workspace.keys[a].provider_type, actions.get(a)) for a in order]
    if plan is not None:
        nodes += [Node(c.address, c.provider, c.provider_type, c.action.value) for c in plan.changes
                  if c.primary and c.address not in workspace.keys and c.action is not Action.NOOP]
    edges = [Edge(ref.address, a, path) for a, s in sorted(workspace.keys.items())
             for path, ref in sorted(s.secret_inputs.items()) if isinstance(ref, SecretOfRef)]
    return Graph(tuple(nodes), tuple(edges))


def _actions(changes: Iterable[Change]) -> dict[str, str]:
    return {c.address: c.action.value for c in changes if c.primary and c.action is not Action.NOOP}


def cascades(plan: Plan) -> list[Edge]:
    """The dependency edges a change cascades through, as the planner explains them: a consumer
    re-issued because its source is (`depends on X, which is replaced`), or a source replaced
    because a consumer needs its secret (`Y needs its secret ...`)."""
    changes = {c.address: c for c in plan.actionable if c.primary}
    out: list[Edge] = []
    for c in changes.values():
        for src in c.depends_on:
            sc = changes.get(src)
            if sc is None:
                continue
            if any(r.startswith(f"depends on {src}, which is") for r in c.reasons) or \
                    any(r.startswith(f"{c.address} needs its secret") for r in sc.reasons):
                out.append(Edge(src, c.address))
    return out


def cascade_graph(plan: Plan, cap: int = MAX_MARKDOWN_NODES) -> Graph | None:
    """The keys a cascade runs through and every key depending on them (transitively), from the
    plan alone; None when no change cascades. At most `cap` nodes, the rest counted."""
    through = cascades(plan)
    if not through:
        return None
    by_address = {c.address: c for c in plan.changes if c.primary}
    consumers: dict[str, list[str]] = {}
    for c in by_address.values():
        for src in c.depends_on:
            consumers.setdefault(src, []).append(c.address)
    keep: list[str] = []
    seen: set[str] = set()
    todo = [a for e in through for a in (e.source, e.consumer)]
    while todo:
        address = todo.pop(0)
        if address in seen or address not in by_address:
            continue
        seen.add(address)
        keep.append(address)
        todo.extend(sorted(consumers.get(address, ())))
    shown = keep[:cap]
    inside = set(shown)
    actions = _actions(by_address.values())
    nodes = tuple(Node(a, by_address[a].provider, by_address[a].provider_type, actions.get(a)) for a in shown)
    edges = tuple(Edge(src, a) for a in shown for src in by_address[a].depends_on if src in inside)
    return Graph(nodes, edges, omitted=len(keep) - len(shown))


_plain = blanked  # control, bidi and zero-width characters shown as `?`


def _mermaid_text(text: str) -> str:
    """Safe inside a quoted Mermaid label: entity codes for what Mermaid or HTML would parse."""
    out = _plain(text)
    for ch, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("`", "#96;"), ("|", "#124;")):
        out = out.replace(ch, code)
    return out


def _label(node: Node) -> tuple[str, str]:
    sub = f"{node.provider} ({node.provider_type})" + (f" · {node.action}" if node.action else "")
    return node.address, sub


def mermaid(graph: Graph) -> str:
    ids = {n.address: f"k{i}" for i, n in enumerate(graph.nodes)}
    out = ["flowchart LR"]
    for n in graph.nodes:
        title, sub = _label(n)
        out.append(f'  {ids[n.address]}["{_mermaid_text(title)}<br/><small>{_mermaid_text(sub)}</small>"]')
    for e in graph.edges:
        if e.source in ids and e.consumer in ids:
            arrow = f'-->|"{_mermaid_text(e.via)}"|' if e.via else "-->"  # quoted: a | or ; ends nothing
            out.append(f"  {ids[e.source]} {arrow} {ids[e.consumer]}")
    if graph.omitted:
        out.append(f'  more["…and {graph.omitted} more keys"]')
    used = sorted({n.action for n in graph.nodes if n.action})
    for action in used:
        fill, stroke = COLOURS[action]
        out.append(f"  classDef {action} fill:{fill},stroke:{stroke},color:#1f2328")
        out.append(f"  class {','.join(ids[n.address] for n in graph.nodes if n.action == action)} {action}")
    return "\n".join(out) + "\n"


def _dot_text(text: str) -> str:
    return _plain(text).replace("\\", "\\\\").replace('"', '\\"')


def dot(graph: Graph) -> str:
    out = ["digraph keyform {", "  rankdir=LR;",
           '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#57606a", '
           'fontname="Helvetica", fontsize=11];',
           '  edge [color="#57606a", fontname="Helvetica", fontsize=9];']
    for n in graph.nodes:
        title, sub = _label(n)
        attrs = f'label="{_dot_text(title)}\\n{_dot_text(sub)}"'
        if n.action:
            fill, stroke = COLOURS[n.action]
            attrs += f', fillcolor="{fill}", color="{stroke}"'
        out.append(f'  "{_dot_text(n.address)}" [{attrs}];')
    known = {n.address for n in graph.nodes}
    for e in graph.edges:
        if e.source in known and e.consumer in known:
            label = f' [label="{_dot_text(e.via)}"]' if e.via else ""
            out.append(f'  "{_dot_text(e.source)}" -> "{_dot_text(e.consumer)}"{label};')
    if graph.omitted:
        out.append(f'  "…" [label="…and {graph.omitted} more keys", shape=plaintext];')
    out.append("}")
    return "\n".join(out) + "\n"


def markdown_section(plan: Plan) -> list[str]:
    """The Markdown plan's graph section: present exactly when a change cascades through a dependency."""
    graph = cascade_graph(plan)
    if graph is None:
        return []
    return ["#### Dependency cascade", "",
            "Changes that cascade through `secret_of` dependencies, and the keys that depend on them:", "",
            "```mermaid", *mermaid(graph).rstrip("\n").split("\n"), "```", ""]


FORMATS: Sequence[str] = ("mermaid", "dot")
