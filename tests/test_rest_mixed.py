"""Declarative and built-in providers side by side: `secret_of` in either direction between a
`type: rest` key and a built-in one, `import` of a key through a definition, and the HTTP limits
(body cap) a definition inherits from the shared client."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.project import DEFINITIONS, ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError
from keyform.manifest.restdef import load_definition
from keyform.providers.rest import RestProvider

MANIFEST = """\
version: 1
providers:
  q:
    QTYPE
    base_url: {url}
    token: {env: QUESTRA_TOKEN}
    org_id: {org}
  t:
    TTYPE
    base_url: {url}
    token: {env: TEXTQL_TOKEN}
sinks:
  env: {type: dotenv, path: .secrets/keys.env}
defaults: {sink: env}
keys:
  source: {provider: q, name: source key}
  consumer:
    provider: t
    description: uses the source
    hosts: [api.questra.ai]
    auth_value: {secret_of: source}
"""
BUILT_IN = {"q": "type: questra", "t": "type: textql"}
REST = {"q": f"type: rest\n    definition: {DEFINITIONS / 'questra.yaml'}",
        "t": f"type: rest\n    definition: {DEFINITIONS / 'textql.yaml'}"}


@pytest.mark.parametrize(("q", "t"), [(BUILT_IN, REST), (REST, BUILT_IN)], ids=["builtin-to-rest", "rest-to-builtin"])
def test_secret_of_crosses_between_a_rest_and_a_built_in_provider(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, q: dict[str, str], t: dict[str, str]) -> None:
    project = Project(tmp_path, emulator.url)
    project.write(MANIFEST.replace("QTYPE", q["q"]).replace("TTYPE", t["t"]))
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    secret = {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG)}[project.remote_id("source")]
    consumer = {k["id"]: k for k in emu_control.textql_keys()}[project.remote_id("consumer")]
    assert consumer["authValue"] == secret and secret not in project.state_path.read_text()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    # rotating the source replaces the consumer with the new secret, whichever side is declarative
    assert project.run("apply", "--auto-approve", "--replace", "source").exit_code == 0
    new_secret = {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG)}[project.remote_id("source")]
    assert {k["id"]: k for k in emu_control.textql_keys()}[project.remote_id("consumer")]["authValue"] == new_secret


def test_import_through_a_definition_then_no_changes(tmp_path: Path, emulator: Emulator,
                                                     emu_control: EmulatorControl) -> None:
    import httpx

    project = Project(tmp_path, emulator.url, rest=True)
    project.questra("legacy: {provider: qp, name: made by hand}\n")
    made = httpx.post(emulator.url + "/api-keys", json={"name": "made by hand"},
                      headers={"Authorization": "Bearer qt-canary-token-1b7f", "X-Org-Id": ORG}).json()
    res = project.run("import", "legacy", made["id"])
    assert res.exit_code == 0 and f"Imported {made['id']} as legacy" in res.output, res.output
    assert "rest:questra" in res.output and made["secret"] not in res.output  # the API shows it only once
    assert project.state()["keys"]["legacy"]["provider_type"] == "rest:questra"
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_definition_inherits_the_body_cap(tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    emu_control.bulk_questra(ORG, 40)
    definition, _ = load_definition(str(DEFINITIONS / "questra.yaml"), "questra.yaml")
    assert definition is not None
    p = RestProvider("qp", definition, emulator.url, "qt-canary-token-1b7f", {"org_id": ORG}, max_body=1024)
    with pytest.raises(ProviderError, match=r"qp: list: response body larger than 1024 bytes \(provider option "
                                            r"`max_response_bytes`\)"):
        p.list()
    p.close()


def test_plan_json_of_a_rest_provider_follows_the_plan_schema(tmp_path: Path, emulator: Emulator) -> None:
    import json

    from jsonschema import Draft202012Validator

    project = Project(tmp_path, emulator.url, rest=True)
    project.questra("a: {provider: qp, name: A}\n")
    res = project.run("plan", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    schema = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json").read_text())
    assert not list(Draft202012Validator(schema).iter_errors(doc))
    assert doc["changes"][0]["provider_type"] == "rest:questra"
