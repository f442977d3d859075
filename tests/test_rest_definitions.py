"""Declarative `rest` provider definitions: every malformed definition in tests/malformed_rest/ is
refused with `file:line: message` (at the definition's own line, and the manifest's `definition:`
line says which provider uses it); manifest-level mistakes with a rest provider are located too;
the shipped definitions validate against schemas/rest-provider.schema.json."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from harness.project import Project
from keyform.errors import KeyformError
from keyform.manifest import load_workspace
from tests.test_schema_tools import check_jsonschema

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "malformed_rest"
CASES = sorted(p.name for p in CORPUS.glob("[0-9]*.yaml"))
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
EXPECT = re.compile(r"^# expect: (?P<text>.+) @ (?P<line>\d+)$")
SHIPPED = sorted((ROOT / "examples" / "providers").glob("*.yaml"))

MANIFEST = """\
version: 1
providers:
  demo:
    type: rest
    definition: providers/demo.yaml
    token: {env: DEMO_TOKEN}
    org_id: org_1
sinks:
  out: {type: dotenv, path: out.env}
defaults: {sink: out}
keys:
  k:
    provider: demo
    name: K
"""


def errors(tmp_path: Path, manifest: str = MANIFEST) -> list[str]:
    (tmp_path / "keyform.yaml").write_text(manifest)
    with pytest.raises(KeyformError) as caught:
        load_workspace(cwd=tmp_path, now=NOW)
    return [str(d) for d in caught.value.diagnostics]


def install(tmp_path: Path, source: Path) -> None:
    (tmp_path / "providers").mkdir(exist_ok=True)
    shutil.copy(source, tmp_path / "providers" / "demo.yaml")


def test_the_corpus_has_25_plus_cases_each_stating_its_message_and_line() -> None:
    assert len(CASES) >= 25
    for name in CASES:
        assert EXPECT.match((CORPUS / name).read_text().splitlines()[0]), name


@pytest.mark.parametrize("case", CASES)
def test_malformed_definition_is_refused_at_its_file_and_line(tmp_path: Path, case: str) -> None:
    match = EXPECT.match((CORPUS / case).read_text().splitlines()[0])
    assert match is not None
    install(tmp_path, CORPUS / case)
    reported = errors(tmp_path)
    where = f"providers/demo.yaml:{match['line']}: "
    assert any(r.startswith(where) and match["text"] in r for r in reported), reported
    assert "keyform.yaml:5: providers.demo.definition: the definition providers/demo.yaml is invalid" in \
        "\n".join(reported)


def test_the_base_of_the_corpus_is_itself_valid(tmp_path: Path) -> None:
    install(tmp_path, CORPUS / "_base.yaml")
    (tmp_path / "keyform.yaml").write_text(MANIFEST)
    ws = load_workspace(cwd=tmp_path, now=NOW)
    assert ws.keys["k"].provider_type == "rest:demo" and ws.keys["k"].attrs == {"name": "K", "scopes": []}
    assert ws.providers["demo"].base_url == "https://api.example.com"  # the definition's default
    assert ws.providers["demo"].options == {"org_id": "org_1"}


def test_through_the_cli_a_bad_definition_is_exit_1_with_file_line_and_no_traceback(tmp_path: Path) -> None:
    install(tmp_path, CORPUS / "14-undeclared-attribute.yaml")
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.write(MANIFEST)
    for command in (["validate"], ["plan"]):
        res = project.run(*command, env={"DEMO_TOKEN": "DO-NOT-LEAK-token"})
        assert res.exit_code == 1, res.output
        assert "providers/demo.yaml:31: operations.create.body.name: ${attrs.label}" in res.stderr
        assert "Traceback" not in res.output and "DO-NOT-LEAK" not in res.output


@pytest.mark.parametrize(("edit", "message"), [
    (("    org_id: org_1\n", ""), "keyform.yaml:3: providers.demo: missing required field 'org_id'"),
    (("    org_id: org_1\n", "    org_id: org_1\n    org: x\n"),
     "keyform.yaml:8: providers.demo: unknown field 'org' (the demo definition declares the options: app_key, org_id)"),
    (("    org_id: org_1\n", "    org_id: org_1\n    app_key: DO-NOT-LEAK\n"),
     "keyform.yaml:8: providers.demo.app_key: a secret option takes {env: NAME} or {file: PATH}, never a literal"),
    (("definition: providers/demo.yaml", "definition: providers/missing.yaml"),
     "keyform.yaml:5: providers.demo.definition: cannot read the definition providers/missing.yaml: "
     "No such file or directory"),
    (("    name: K\n", "    name: K\n    scopes: read\n"),
     "keyform.yaml:15: keys.k.scopes: expected a string list (demo attribute)"),
    (("    name: K\n", "    name: K\n    password: DO-NOT-LEAK\n"),
     "keyform.yaml:15: keys.k.password: a literal secret is not allowed here"),
    (("    name: K\n", "    name: K\n    nmae: x\n"),
     "keyform.yaml:15: keys.k: unknown field 'nmae' (did you mean 'name'?)"),
    (("    definition: providers/demo.yaml\n", ""),
     "keyform.yaml:3: providers.demo: missing required field 'definition'"),
])
def test_manifest_mistakes_with_a_rest_provider_are_located(tmp_path: Path, edit: tuple[str, str],
                                                            message: str) -> None:
    install(tmp_path, CORPUS / "_base.yaml")
    assert edit[0] in MANIFEST
    reported = errors(tmp_path, MANIFEST.replace(*edit))
    assert any(r.startswith(message) for r in reported), reported
    assert not any("DO-NOT-LEAK" in r for r in reported)


def test_two_definitions_with_one_name_are_refused(tmp_path: Path) -> None:
    install(tmp_path, CORPUS / "_base.yaml")
    (tmp_path / "providers" / "other.yaml").write_text((CORPUS / "_base.yaml").read_text().replace(
        "X-Org:", "X-Other:"))
    manifest = MANIFEST.replace("defaults:", "  other:\n    type: rest\n    definition: providers/other.yaml\n"
                                "    token: {env: DEMO_TOKEN}\n    org_id: o\ndefaults:")
    manifest = manifest.replace("sinks:\n  out: {type: dotenv, path: out.env}\n", "") \
        .replace("defaults:", "sinks:\n  out: {type: dotenv, path: out.env}\ndefaults:")
    reported = errors(tmp_path, manifest)
    assert any("is also named 'demo'" in r for r in reported), reported


def test_the_shipped_definitions_validate_against_the_definition_schema() -> None:
    schema = ROOT / "schemas" / "rest-provider.schema.json"
    assert len(SHIPPED) >= 5
    done = check_jsonschema("--schemafile", str(schema), *map(str, SHIPPED))
    assert done.returncode == 0, done.stdout + done.stderr
    bad = check_jsonschema("--schemafile", str(schema), str(CORPUS / "22-bad-pointer.yaml"))
    assert bad.returncode == 1 and "key" in bad.stdout, bad.stdout


def test_validate_of_a_valid_rest_manifest_imports_no_http_or_schema_library(tmp_path: Path) -> None:
    from tests.test_startup_imports import imported, top_level

    install(tmp_path, ROOT / "examples" / "providers" / "sendgrid.yaml")
    (tmp_path / "keyform.yaml").write_text(
        "version: 1\nproviders:\n  sg: {type: rest, definition: providers/demo.yaml, token: {env: SG}}\n"
        "sinks:\n  env: {type: dotenv, path: k.env}\ndefaults: {sink: env}\n"
        "keys:\n  a: {provider: sg, name: A, scopes: [mail.send]}\n")
    names = top_level(imported(["validate"], tmp_path))
    assert names.isdisjoint({"httpx", "httpcore", "jsonschema"}), names & {"httpx", "httpcore", "jsonschema"}


def test_an_omitted_attribute_without_a_default_is_its_types_empty_value_when_reported(tmp_path: Path) -> None:
    install(tmp_path, CORPUS / "_base.yaml")
    text = (tmp_path / "providers" / "demo.yaml").read_text()
    (tmp_path / "providers" / "demo.yaml").write_text(text.replace(
        "  scopes: {type: string_list, path: /scopes, default: []}",
        "  scopes: {type: string_list, path: /scopes}\n  note: {type: string}"))
    (tmp_path / "keyform.yaml").write_text(MANIFEST)
    ws = load_workspace(cwd=tmp_path, now=NOW)
    # scopes is listed back (as [] when absent): desired [] too, so no drift; note is never reported: left out
    assert ws.keys["k"].attrs == {"name": "K", "scopes": [], "note": None}
