"""The real-service definitions (examples/providers/{openai-admin-keys,sendgrid,datadog-api-keys}.yaml)
end to end through the CLI, each against a stdlib emulator of its documented API (tests/rest_services.py)
on 127.0.0.1: create → secret in the sink and never in state → no-change plan → rename (in place
where the API can, else replace) → removal deletes; listing across 3+ pages; drift; a rejected
credential is one clear message naming the API's own words, never the credential."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.project import Project
from tests.rest_services import DatadogApiKeys, OpenAIAdminKeys, SendGridKeys, Service, serve

DEFINITIONS = Path(__file__).resolve().parents[1] / "examples" / "providers"
TOKEN = "DO-NOT-LEAK-admin-token-7f3a"
APP_KEY = "DO-NOT-LEAK-app-key-91c2"


@dataclass
class Case:
    definition: str
    service: Service
    url_suffix: str = ""
    extra: str = ""  # provider options
    renames_in_place: bool = True
    pages: int = 0  # seeded keys that make the listing span 3+ pages (0: the API does not paginate)


def make(name: str) -> Case:
    if name == "openai":
        return Case("openai-admin-keys.yaml", OpenAIAdminKeys(TOKEN), "/v1", renames_in_place=False, pages=250)
    if name == "sendgrid":
        return Case("sendgrid.yaml", SendGridKeys(TOKEN))
    dd = DatadogApiKeys(TOKEN)
    dd.app_key = APP_KEY
    return Case("datadog-api-keys.yaml", dd, extra="    application_key: {env: DD_APP_KEY}\n", pages=250)


MANIFEST = """\
version: 1
providers:
  svc:
    type: rest
    definition: DEFINITION
    base_url: URL
    token: {env: SVC_TOKEN}
EXTRA\
sinks:
  env: {type: dotenv, path: .secrets/keys.env}
defaults: {sink: env}
keys:
  ci-bot:
    provider: svc
    name: CI bot
  web:
    provider: svc
"""


@pytest.fixture(params=["openai", "sendgrid", "datadog"])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Case, Project]]:
    c = make(request.param)
    with serve(c.service) as url:
        project = Project(tmp_path, url + c.url_suffix, env={"SVC_TOKEN": TOKEN, "DD_APP_KEY": APP_KEY})
        project.write(MANIFEST.replace("DEFINITION", str(DEFINITIONS / c.definition))
                      .replace("URL", url + c.url_suffix).replace("EXTRA", c.extra))
        yield c, project


def edit(project: Project, old: str, new: str) -> None:
    text = project.manifest.read_text()
    assert old in text
    project.manifest.write_text(text.replace(old, new))


def secret_of(c: Case, key_id: str) -> str:
    k = c.service.keys[key_id]
    return str(k.get("value") or k.get("api_key") or k.get("key"))


def test_lifecycle_create_sink_noop_rename_delete(case: tuple[Case, Project]) -> None:
    c, project = case
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    ids = {a: project.remote_id(a) for a in ("ci-bot", "web")}
    assert c.service.keys[ids["ci-bot"]]["name"] == "CI bot" and c.service.keys[ids["web"]]["name"] == "web"
    assert project.sink() == {"CI_BOT": secret_of(c, ids["ci-bot"]), "WEB": secret_of(c, ids["web"])}
    state_text = project.state_path.read_text()
    assert not any(secret_of(c, i) in state_text for i in ids.values())
    assert TOKEN not in state_text + res.output

    again = project.run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output

    edit(project, "name: CI bot", "name: CI robot")
    plan = project.run("plan")
    assert ("updated in place" if c.renames_in_place else "must be replaced") in plan.stdout, plan.stdout
    before = dict(c.service.calls)
    assert project.run("apply", "--auto-approve").exit_code == 0
    new_id = project.remote_id("ci-bot")
    assert c.service.keys[new_id]["name"] == "CI robot"
    if c.renames_in_place:
        assert new_id == ids["ci-bot"] and c.service.calls.get("create", 0) == before.get("create", 0)
        assert c.service.calls["update"] == before.get("update", 0) + 1
    else:
        assert new_id != ids["ci-bot"] and ids["ci-bot"] not in c.service.keys
        assert project.sink()["CI_BOT"] == secret_of(c, new_id)
    assert project.run("plan", "--detailed-exitcode").exit_code == 0

    edit(project, "  web:\n    provider: svc\n", "")
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert ids["web"] not in c.service.keys and "WEB" not in project.sink()


def test_drift_deleted_outside_is_recreated_and_renamed_outside_is_detected(case: tuple[Case, Project]) -> None:
    c, project = case
    assert project.run("apply", "--auto-approve").exit_code == 0
    del c.service.keys[project.remote_id("web")]
    c.service.keys[project.remote_id("ci-bot")]["name"] = "someone else's name"
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2
    assert "deleted outside keyform" in plan.stdout and "name modified outside keyform" in plan.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert c.service.keys[project.remote_id("ci-bot")]["name"] == "CI bot"
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_listing_follows_the_apis_pagination_across_three_pages(case: tuple[Case, Project]) -> None:
    c, project = case
    if not c.pages:
        pytest.skip("this API's list is not paginated")
    assert project.run("apply", "--auto-approve").exit_code == 0
    c.service.seed(c.pages)  # unmanaged keys: now the managed ones sit on the last page
    before = c.service.calls.get("list", 0)
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output  # both managed keys found, nothing deleted outside
    assert c.service.calls["list"] - before >= 3


def test_rejected_credential_is_one_message_with_the_apis_words_and_no_secret(case: tuple[Case, Project]) -> None:
    c, project = case
    res = project.run("plan", env={"SVC_TOKEN": "DO-NOT-LEAK-wrong-token"})
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: svc: list: ") and res.stderr.count("\n") == 1, res.stderr
    assert "the token of provider svc, {env: SVC_TOKEN}" in res.stderr  # 401/403: which token, where
    words = {OpenAIAdminKeys: "Incorrect API key provided", SendGridKeys: "authorization required",
             DatadogApiKeys: "Forbidden"}[type(c.service)]
    assert words in res.stderr, res.stderr
    assert "DO-NOT-LEAK" not in res.output and "Traceback" not in res.output


def test_openai_expiry_is_sent_as_a_lifetime_and_read_back_from_unix_seconds(tmp_path: Path) -> None:
    svc = OpenAIAdminKeys(TOKEN)
    with serve(svc) as url:
        project = Project(tmp_path, url, env={"SVC_TOKEN": TOKEN})
        project.write(MANIFEST.replace("DEFINITION", str(DEFINITIONS / "openai-admin-keys.yaml"))
                      .replace("URL", url + "/v1").replace("EXTRA", "")
                      .replace("    name: CI bot\n", "    name: CI bot\n    expires_in: 30d\n"))
        assert project.run("apply", "--auto-approve").exit_code == 0
        key = svc.keys[project.remote_id("ci-bot")]
        assert key["expires_at"] - key["created_at"] in range(30 * 86400 - 5, 30 * 86400 + 1)
        state = project.state()["keys"]["ci-bot"]
        assert state["expires_at"].endswith("Z") and state["created_at"].endswith("Z")
        assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_the_definitions_cite_their_reference_and_say_they_have_not_met_the_live_service() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "providers-rest.md").read_text()
    for name in ("openai-admin-keys", "sendgrid", "datadog-api-keys"):
        text = (DEFINITIONS / f"{name}.yaml").read_text()
        assert "https://" in text.split("version: 1")[0] and "NOT yet run against the live service" in text
        assert f"{name}.yaml" in docs
    assert "not been run against the live service" in docs
