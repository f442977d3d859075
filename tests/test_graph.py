"""`keyform graph` and the Markdown plan's cascade graph: the example's Mermaid text against a
golden file, its DOT rendered to a PNG by the real Graphviz `dot`, plan colours, the cascade
section present exactly when a change cascades, the cap, and hostile names from a plan file."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.project import Project
from keyform.cli import main
from keyform.emulator import Emulator
from keyform.manifest import load_workspace
from keyform.plan import Action, Change, Plan
from keyform.render.graph import cascade_graph, dot, from_workspace, mermaid
from keyform.render.markdown import render_markdown
from tests.test_render_golden import check_golden

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "questra-to-textql"


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def test_example_graph_mermaid_matches_its_golden_file() -> None:
    code, out, _ = run("graph", "-f", str(EXAMPLE / "keyform.yaml"))
    assert code == 0
    check_golden("questra-to-textql.mmd", out)
    assert out.startswith("flowchart LR\n") and '-->|"auth_value"|' in out  # quoted: a | in it ends nothing


def test_example_graph_renders_to_png_with_graphviz_dot(tmp_path: Path) -> None:
    binary = shutil.which("dot")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz `dot` is missing (.ci/run installs graphviz)")
        pytest.skip("Graphviz `dot` is not installed")
    code, out, _ = run("graph", "-f", str(EXAMPLE / "keyform.yaml"), "--format", "dot")
    assert code == 0
    png = tmp_path / "graph.png"
    subprocess.run([binary, "-Tpng", "-o", str(png)], input=out, text=True, check=True, timeout=30)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    plain = subprocess.run([binary, "-Tplain"], input=out, text=True, check=True, capture_output=True).stdout
    assert '"ci-bot" "ana-questra"' in plain or "ci-bot ana-questra" in plain  # the edge survived layout


def plan_for(*changes: Change) -> Plan:
    return Plan(changes=changes)


def ch(address: str, action: Action, *reasons: str, deps: tuple[str, ...] = (), provider: str = "qp") -> Change:
    return Change(address=address, action=action, provider=provider, provider_type="questra", reasons=reasons,
                  depends_on=deps)


def test_graph_with_a_saved_plan_colours_nodes_by_action(tmp_path: Path) -> None:
    saved = plan_for(ch("ci-bot", Action.REPLACE, "name cannot be changed in place"),
                     ch("ana-questra", Action.REPLACE, "depends on ci-bot, which is replaced", deps=("ci-bot",),
                        provider="textql"),
                     ch("old-key", Action.DELETE, "removed from the manifests"))
    saved = replace(saved, manifest_digest=load_workspace([EXAMPLE / "keyform.yaml"]).digest)  # a plan of it
    path = tmp_path / "plan.json"
    path.write_text(saved.dumps())
    code, out, _ = run("graph", "-f", str(EXAMPLE / "keyform.yaml"), "--plan", str(path))
    assert code == 0
    assert "class k0,k1 replace" in out and "old-key" in out and "classDef delete" in out
    code, dot_out, _ = run("graph", "-f", str(EXAMPLE / "keyform.yaml"), "--plan", str(path), "--format", "dot")
    assert '"old-key" [label="old-key\\nqp (questra) · delete", fillcolor="#ffebe9"' in dot_out
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, _, err = run("graph", "-f", str(EXAMPLE / "keyform.yaml"), "--plan", str(bad))
    assert code == 1 and err.startswith(f"Error: {bad}: not a keyform plan file")


def _applied(root: Path, url: str, keys: str) -> Project:
    project = Project(root, url)
    project.questra(keys)
    assert project.run("apply", "--auto-approve").exit_code == 0
    return project


def test_graph_refuses_a_plan_of_another_workspace(tmp_path: Path, emulator: Emulator) -> None:
    """Review finding (rv2 #7): `graph --plan` drew another workspace's plan (its deletes as nodes)
    as this workspace's, exit 0. Now it refuses, as `apply FILE` does, a plan whose manifest digest
    (other manifests) or state lineage (same manifests, another state) is not this workspace's."""
    keys = "ci-bot: {provider: qp}\n"
    here = _applied(tmp_path / "here", emulator.url, keys)
    elsewhere = _applied(tmp_path / "elsewhere", emulator.url, "k1: {provider: qp}\n")
    twin = _applied(tmp_path / "twin", emulator.url, keys)  # the same manifest bytes, its own state
    assert load_workspace([twin.manifest]).digest == load_workspace([here.manifest]).digest
    plans = {}
    for project in (here, elsewhere, twin):
        plans[project.root.name] = path = project.root / "destroy.plan"
        assert project.run("plan", "--destroy", "--out", str(path)).exit_code == 0
    code, out, err = run("graph", "-f", str(here.manifest), "--plan", str(plans["here"]))
    assert code == 0 and "ci-bot" in out and "delete" in out and "k1" not in out, err
    lineage = "it was made for a different state (lineage differs)"
    digest = "the manifests (or a REST definition file they use) changed since it was made"
    for name, why in (("elsewhere", f"{lineage}; {digest}"), ("twin", lineage)):
        code, out, err = run("graph", "-f", str(here.manifest), "--plan", str(plans[name]))
        assert (code, out) == (1, ""), out
        assert err == (f"Error: {plans[name]}: not a plan of these manifests and this state: {why}. Its actions "
                       "would be drawn on keys they are not for; make one here with `keyform plan --out FILE`.\n")
    code, _, err = run("graph", "-f", str(here.manifest), "--plan", str(plans["here"]), "--state",
                       str(twin.state_path))  # --state: the state the plan would be applied with
    assert code == 1 and f": {lineage}." in err, err
    # found by review 95: a plan of an older serial was drawn (exit 0) while `apply` refused it
    assert here.run("apply", "--auto-approve", "--replace", "ci-bot").exit_code == 0
    code, out, err = run("graph", "-f", str(here.manifest), "--plan", str(plans["here"]))
    assert (code, out) == (1, "") and ": the state changed since it was made (serial 1 → 2), so `apply` would " \
        "refuse it." in err, err
    here.questra(keys + "web: {provider: qp}\n")  # the manifests moved on since the plan
    code, _, err = run("graph", "-f", str(here.manifest), "--plan", str(plans["here"]))
    assert code == 1 and f": {digest}." in err, err
    # noticed by review 110: a mistyped --state read as "no state", then said "lineage differs"
    typo = str(here.root / "keyform.stat.json")
    code, out, err = run("graph", "-f", str(here.manifest), "--plan", str(plans["here"]), "--state", typo)
    assert (code, out) == (1, "") and f"--state {typo}: " in err and "does not exist (check the path; graph " \
        "--plan does not treat a missing state as an empty one)" in err, err
    # --state alone was accepted and ignored: the graph of the manifests reads no state
    code, out, err = run("graph", "-f", str(here.manifest), "--state", str(twin.state_path))
    assert (code, out) == (1, "") and "--state is read only with --plan" in err, err


def test_markdown_plan_has_the_graph_exactly_when_a_change_cascades() -> None:
    cascading = plan_for(ch("src", Action.REPLACE, "expired"),
                         ch("dep", Action.REPLACE, "depends on src, which is replaced", deps=("src",)),
                         ch("steady", Action.NOOP, deps=("dep",)))
    md = render_markdown(cascading)
    assert md.count("```mermaid") == 1 and "#### Dependency cascade" in md
    assert "steady" in md.split("```mermaid")[1]  # a dependent of the changed keys, unchanged itself
    needs = plan_for(ch("src", Action.REPLACE, "dep needs its secret and no sink can give it back"),
                     ch("dep", Action.CREATE, "deleted outside keyform", deps=("src",)))
    assert "```mermaid" in render_markdown(needs)
    first_create = plan_for(ch("src", Action.CREATE, "new key"), ch("dep", Action.CREATE, "new key", deps=("src",)))
    independent = plan_for(ch("src", Action.REPLACE, "expired"),
                           ch("dep", Action.UPDATE, "hosts changed", deps=("src",)),
                           ch("other", Action.CREATE, "new key"))
    for plan in (first_create, independent, plan_for()):
        assert "mermaid" not in render_markdown(plan)


def test_markdown_cascade_graph_is_capped_on_large_plans() -> None:
    changes = [ch("root", Action.REPLACE, "expired")]
    changes += [ch(f"dep-{i:03}", Action.REPLACE, "depends on root, which is replaced", deps=("root",)) for i in range(300)]
    graph = cascade_graph(plan_for(*changes))
    assert graph is not None and len(graph.nodes) == 40 and graph.omitted == 261
    md = render_markdown(plan_for(*changes))
    assert "…and 261 more keys" in md and len(md) < 60_000


def test_hostile_addresses_from_a_plan_file_are_escaped() -> None:
    evil = ch('x"]; click k0 call alert(1) %%\n<b>', Action.DELETE, "removed from the manifests")
    from keyform.render.graph import Graph, Node
    g = Graph((Node(evil.address, 'p"\\', "questra", "delete"),), ())
    m, d = mermaid(g), dot(g)
    assert '"]; click' not in m and "<b>" not in m and "\n<b>" not in m
    assert m.count("\n") == 4  # header, node, classDef, class: the newline did not escape the label
    assert '\\"]; click' in d and "p\\\"\\\\" in d and "\n<b>" not in d


def test_zero_width_and_bidi_characters_in_a_plan_file_are_shown() -> None:
    """A label cannot hide text: the plan's unsafe characters (`render.safe.UNSAFE`) show as `?`."""
    from keyform.render.graph import Graph, Node
    g = Graph((Node("ci\u200bbot\ufeffx", "p\u2060q\u061c", "questra", None),), ())
    for out in (mermaid(g), dot(g)):
        assert "ci?bot?x" in out and "p?q?" in out, out


def test_graph_of_a_workspace_without_dependencies_lists_every_key() -> None:
    from tests.factories import questra_key, workspace
    g = from_workspace(workspace(questra_key("a"), questra_key("b")))
    assert [n.address for n in g.nodes] == ["a", "b"] and g.edges == ()
    assert mermaid(g) == 'flowchart LR\n  k0["a<br/><small>qp (questra)</small>"]\n  k1["b<br/><small>qp (questra)</small>"]\n'
