"""A blanked sink entry is a missing secret.

Found by review 106: after an apply, `sed -i 's/^CI_BOT=.*/CI_BOT=/' .secrets/dev.env` left a plan
of "No changes", while deleting the line planned the key's replacement. keyform never writes an
empty or whitespace-only secret (an issued one is refused), so such an entry is not the key's
secret: the plan replaces the key, as for a deleted entry, in each sink type `plan` scans (dotenv,
json, file, k8s-secret) and in any readable sink a `secret_of` reads. Real `keyform` runs against
the emulator on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from harness.project import Project
from keyform.emulator import Emulator
from tests.test_e2e_sinks import exec_project, ok

Blank = Callable[[Path], None]


def _dotenv(value: str) -> Blank:
    def blank(root: Path) -> None:
        path = root / "out/keys.env"
        path.write_text("".join(f"K0={value}\n" if line.startswith("K0=") else line + "\n"
                                for line in path.read_text().splitlines()))
    return blank


def _json(value: object) -> Blank:
    def blank(root: Path) -> None:
        path = root / "out/keys.json"
        doc = json.loads(path.read_text())
        doc["K0"] = value
        path.write_text(json.dumps(doc))
    return blank


def _file(text: str) -> Blank:
    def blank(root: Path) -> None:
        (root / "out/files/K0").write_text(text)
    return blank


def _k8s(section: str, value: object) -> Blank:
    def blank(root: Path) -> None:
        path = root / "out/keys.secret.yaml"
        doc = yaml.safe_load(path.read_text())
        for f in ("stringData", "data"):
            (doc.get(f) or {}).pop("K0", None)
        doc.setdefault(section, {})["K0"] = value
        path.write_text(yaml.safe_dump(doc))
    return blank


SINKS = {
    "dotenv": "{type: dotenv, path: out/keys.env}",
    "json": "{type: json, path: out/keys.json}",
    "file": "{type: file, dir: out/files}",
    "k8s": "{type: k8s-secret, path: out/keys.secret.yaml, name: keys}",
}

CASES = [
    ("dotenv", _dotenv("")), ("dotenv", _dotenv("   ")), ("dotenv", _dotenv('""')), ("dotenv", _dotenv("'  '")),
    ("dotenv", _dotenv(" # a comment")), ("json", _json("")), ("json", _json(" \t")), ("json", _json(None)),
    ("file", _file("")), ("file", _file("\n")), ("k8s", _k8s("stringData", "")), ("k8s", _k8s("stringData", None)),
    ("k8s", _k8s("data", base64.b64encode(b" \n").decode())),
]


@pytest.mark.parametrize(("sink", "blank"), CASES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(CASES)])
def test_a_blanked_entry_plans_the_key_s_replacement(tmp_path: Path, emulator: Emulator, sink: str,
                                                    blank: Blank) -> None:
    project = Project(tmp_path, emulator.url)
    project.write(f"""
        version: 1
        providers:
          qp: {{type: questra, base_url: "{{url}}", token: {{env: QUESTRA_TOKEN}}, org_id: {{org}}}}
        sinks:
          out: {SINKS[sink]}
        defaults: {{sink: out}}
        keys:
          k0: {{provider: qp, sink: {{use: out, as: K0}}}}
          k1: {{provider: qp, sink: {{use: out, as: K1}}}}
        """)
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    blank(project.root)
    res = project.run("plan", "--detailed-exitcode")
    # old code: "No changes", exit 0: the blank entry counted as the key's secret
    assert res.exit_code == 2, res.output
    assert "secret missing from sink out (K0)" in res.stdout and "Plan: 0 to create, 0 to update, 1 to replace" \
        in res.stdout, res.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_dotenv_entry_blanked_then_set_again_is_present(tmp_path: Path, emulator: Emulator) -> None:
    """A shell keeps the last assignment: `K0=` followed by `K0=value` holds a value."""
    project = Project(tmp_path, emulator.url)
    project.questra("k0: {provider: qp, sink: {use: env, as: K0}}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    text = project.sink_path.read_text()
    project.sink_path.write_text("K0=\n" + text)
    res = project.run("plan", "--detailed-exitcode")
    assert res.exit_code == 0, res.output


def test_a_blanked_secret_of_source_in_a_read_back_sink_plans_its_replacement(tmp_path: Path,
                                                                           emulator: Emulator) -> None:
    """A sink plan does not scan (`exec`, `sops`) is read back for a `secret_of` source: a value
    of whitespace only is no secret keyform wrote either."""
    root = tmp_path / "repo"
    project = exec_project(root, emulator.url, """\
sinks:
  vault:
    type: exec
    command: [sh, -c, 'mkdir -p kv && cat > "kv/$KEYFORM_SINK_NAME"']
    read_command: [sh, -c, 'cat "kv/$KEYFORM_SINK_NAME" 2>/dev/null || true']
defaults:
  sink: vault
""")
    ok(project.run("apply", "--auto-approve"))
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    (root / "kv" / "CI_BOT").write_text("   ")
    res = project.run("plan", "--detailed-exitcode")
    # old code: "No changes": the read gave "   ", taken as the secret
    assert res.exit_code == 2, res.output
    assert "secret missing from sink vault (CI_BOT)" in res.stdout, res.stdout


def test_a_plug_in_scan_s_own_blank_attribute_is_not_read(tmp_path: Path) -> None:
    """Only a `ScannedEntries` says which entries are blank: a plug-in scan's mapping with an
    attribute of that name (here a string) is taken as a plain mapping, not an internal error."""
    from keyform.errors import SourceLoc
    from keyform.model import SinkConfig
    from keyform.sinkscan import scan
    from keyform.typeregistry import SinkType, register, unregister

    class Odd(dict[str, int]):
        blank = "K0"

    stype = SinkType(name="odd-scan", required="path", open=lambda config: None,  # type: ignore[arg-type, return-value]
                     scan=lambda config: Odd(K0=0, K1=0))
    register(stype, "tests")
    try:
        config = SinkConfig("odd", "odd-scan", {"path": str(tmp_path / "x")}, SourceLoc("k.yaml", 1))
        assert scan({"odd": config}, {"odd"}).entries == {"odd": frozenset({"K0", "K1"})}
    finally:
        unregister(stype)


@pytest.mark.parametrize("exc", [RuntimeError("boom\nsecond line"), SystemExit(0)], ids=["bug", "sys-exit"])
def test_a_plug_in_scan_that_fails_is_a_problem_naming_it_not_an_internal_error(
        tmp_path: Path, exc: BaseException) -> None:
    """Found in stop 43: a plug-in sink type's scan raising anything but OSError, ValueError or
    KeyError ended the plan as keyform's "internal error" (a SystemExit: silently). Now it is the
    sink's problem, in one line naming the plug-in: the keys writing there are refused."""
    from keyform.errors import SourceLoc
    from keyform.model import SinkConfig, SinkTarget
    from keyform.sinkscan import scan
    from keyform.typeregistry import SinkType, register, unregister

    def failing(config: SinkConfig) -> dict[str, int]:
        raise exc

    stype = SinkType(name="failing-scan", required="path", open=lambda config: None,  # type: ignore[arg-type, return-value]
                     scan=failing)
    register(stype, "kf-test 1.0")
    try:
        config = SinkConfig("bad", "failing-scan", {"path": str(tmp_path / "x")}, SourceLoc("k.yaml", 1))
        snap = scan({"bad": config}, {"bad"})
    finally:
        unregister(stype)
    problem = snap.problem_at(SinkTarget("bad", "K")) or ""
    assert f"the sink type 'failing-scan' (kf-test 1.0) failed to scan it: {type(exc).__name__}" in problem, problem
    assert "second line" not in problem and snap.holds("bad", "K") is None
