"""A saved plan is applied only with the provider settings from the environment it was made with.

`keyform plan --out p.plan` with `base_url: {env: QP_URL}` naming the API, then `QP_URL` pointed
at another host and `keyform apply p.plan`: the apply sent the provider's token to that host (its
re-plan listed there, then it created keys there), with a plan a reviewer approved for the first
one, because only the manifests, definitions, state and key inputs were checked. Now the plan keeps
a digest of each such setting (`provider_settings`) and the apply is refused before any call: the
real CLI against the emulator and a recording server, both on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from harness.project import DEFINITIONS, ORG, TOKENS, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from tests.loopback import LoopbackServer, QuietHandler, serving

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "plan.schema.json").read_text())
STALE = "Error: Saved plan is stale: {}. Run `keyform plan` again.\n"


class _Recording(QuietHandler):
    """Records every request (method, path, headers) and answers 503: a host nobody reviewed."""

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        assert isinstance(self.server, LoopbackServer)
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any


@pytest.fixture
def elsewhere() -> Iterator[LoopbackServer]:
    with serving(LoopbackServer(_Recording)) as server:
        yield server


KEYS = "  ci-bot: {provider: qp, name: CI bot}\n  web: {provider: qp, name: web}\n"


def _project(root: Path, url: str, provider: str) -> Project:
    """A workspace of two keys at provider `qp`; ci-bot is applied already (a state of serial 1),
    so a plan of it creates web."""
    project = Project(root, url, env={"QP_URL": url, "QP_ORG": ORG})
    project.write("version: 1\nproviders:\n  qp: " + provider + "\n"
                  "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\ndefaults: {sink: env}\n"
                  "keys:\n" + KEYS)
    applied = project.run("apply", "--auto-approve", "--target", "ci-bot")
    assert applied.exit_code == 0, applied.output
    return project


QUESTRA_URL_ENV = "{type: questra, base_url: {env: QP_URL}, token: {env: QUESTRA_TOKEN}, org_id: {org}}"


def test_a_saved_plan_is_refused_when_its_base_url_env_names_another_host_now(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, elsewhere: LoopbackServer) -> None:
    project = _project(tmp_path, emulator.url, QUESTRA_URL_ENV)
    saved = tmp_path / "p.plan"
    planned = project.run("plan", "--out", str(saved))
    assert planned.exit_code == 0 and "web" in planned.stdout, planned.output
    state, calls = project.state_path.read_bytes(), emu_control.requests()

    res = project.run("apply", str(saved), env={"QP_URL": elsewhere.url})
    assert elsewhere.seen == []  # no request, so no token, went to the other host
    assert res.exit_code == 1, res.output
    assert res.stderr == STALE.format("provider qp's base_url (from env QP_URL) changed since it was made")
    assert project.state_path.read_bytes() == state and emu_control.requests() == calls
    assert [k["name"] for k in emu_control.questra_keys(ORG)] == ["CI bot"]
    assert TOKENS["QUESTRA_TOKEN"] not in res.output and elsewhere.url not in res.output
    # the plan file holds a digest of the URL, not the URL
    doc = json.loads(saved.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert list(doc["provider_settings"]) == ["qp"] and list(doc["provider_settings"]["qp"]) == ["base_url"]
    assert emulator.url not in saved.read_text()


def test_a_saved_plan_applies_when_its_base_url_env_is_unchanged(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, elsewhere: LoopbackServer) -> None:
    project = _project(tmp_path, emulator.url, QUESTRA_URL_ENV)
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    digest = json.loads(saved.read_text())["provider_settings"]["qp"]["base_url"]
    assert isinstance(digest, str) and len(digest) == 64
    # the same URL in another checkout's environment; a variable the manifests do not read may differ
    res = project.run("apply", str(saved), env={"QP_URL": emulator.url, "UNRELATED_URL": elsewhere.url})
    assert res.exit_code == 0, res.output
    assert sorted(k["name"] for k in emu_control.questra_keys(ORG)) == ["CI bot", "web"]
    assert elsewhere.seen == []
    # the digests are only for `apply FILE`: printed plans leave them out, `show` reads the file
    shown = project.run("show", "--format", "json", str(saved))
    assert shown.exit_code == 0 and "provider_settings" not in json.loads(shown.stdout), shown.output
    assert "provider_settings" not in json.loads(project.run("plan", "--format", "json").stdout)


@pytest.mark.parametrize("provider", [
    "{type: questra, base_url: '{url}', token: {env: QUESTRA_TOKEN}, org_id: {env: QP_ORG}}",
    f"{{type: rest, definition: {DEFINITIONS / 'questra.yaml'}, base_url: '{{url}}', token: {{env: QUESTRA_TOKEN}}, "
    "org_id: {env: QP_ORG}}",
], ids=["questra org_id", "rest option"])
def test_a_saved_plan_is_refused_when_an_option_from_env_has_another_value_now(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, provider: str) -> None:
    """An option read from the environment that is not secret (the organisation the token acts in,
    sent as X-Org-Id; a rest definition's plain option) is covered like the base URL."""
    project = _project(tmp_path, emulator.url, provider)
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    state, calls = project.state_path.read_bytes(), emu_control.requests()
    res = project.run("apply", str(saved), env={"QP_ORG": "org_other"})
    assert res.exit_code == 1, res.output
    assert res.stderr == STALE.format("provider qp's org_id (from env QP_ORG) changed since it was made")
    assert "org_other" not in res.output
    assert project.state_path.read_bytes() == state and emu_control.requests() == calls
    assert emu_control.questra_keys("org_other") == []
    # set back, the same plan applies
    assert project.run("apply", str(saved)).exit_code == 0
    assert sorted(k["name"] for k in emu_control.questra_keys(ORG)) == ["CI bot", "web"]


def test_a_token_from_a_file_is_not_recorded_and_may_rotate(tmp_path: Path, emulator: Emulator) -> None:
    """Tokens and secret options are no redirect, and are not recorded, not even as a digest: a
    token from `{file: PATH}` rotated between plan and apply still applies the plan (its re-plan
    at the reviewed host checks what the new token sees). The base URL beside it is recorded."""
    (tmp_path / "token").write_text(TOKENS["QUESTRA_TOKEN"] + "\n")
    project = _project(tmp_path, emulator.url, QUESTRA_URL_ENV.replace("{env: QUESTRA_TOKEN}", "{file: token}"))
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    assert list(json.loads(saved.read_text())["provider_settings"]["qp"]) == ["base_url"]
    (tmp_path / "token").write_text("qt-rotated-token-5d1e\n")
    res = project.run("apply", str(saved))
    assert res.exit_code == 0, res.output


def test_a_saved_plan_without_provider_settings_is_refused_where_the_manifests_read_one(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, elsewhere: LoopbackServer) -> None:
    """A plan file of an earlier keyform (or one edited to drop them) cannot say which host it was
    made for: refused. A workspace that reads no setting from the environment needs none."""
    project = _project(tmp_path, emulator.url, QUESTRA_URL_ENV)
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    doc = json.loads(saved.read_text())
    del doc["provider_settings"]
    saved.write_text(json.dumps(doc))
    calls = emu_control.requests()
    for url in (emulator.url, elsewhere.url):
        res = project.run("apply", str(saved), env={"QP_URL": url})
        assert res.exit_code == 1, res.output
        assert res.stderr == STALE.format("it was made by an earlier keyform (or edited) and does not record "
                                          "provider qp's base_url (from env QP_URL)")
    assert elsewhere.seen == [] and emu_control.requests() == calls

    literal = _project(tmp_path / "literal", emulator.url,
                       "{type: questra, base_url: '{url}', token: {env: QUESTRA_TOKEN}, org_id: {org}}")
    other = tmp_path / "literal.plan"
    assert literal.run("plan", "--out", str(other)).exit_code == 0
    assert "provider_settings" not in json.loads(other.read_text())
    assert literal.run("apply", str(other)).exit_code == 0


def test_a_base_url_env_unreadable_when_planned_must_stay_so(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, elsewhere: LoopbackServer) -> None:
    """A plan made without refreshing needs no base URL: recorded as unreadable (null), and its
    apply is refused once the variable names a host."""
    project = _project(tmp_path, emulator.url, QUESTRA_URL_ENV)
    saved = tmp_path / "p.plan"
    del project.env["QP_URL"]
    planned = project.run("plan", "--no-refresh", "--out", str(saved))
    assert planned.exit_code == 0, planned.output
    res = project.run("apply", str(saved), env={"QP_URL": elsewhere.url})
    assert elsewhere.seen == []
    assert res.exit_code == 1, res.output
    assert res.stderr == STALE.format("provider qp's base_url (from env QP_URL) could not be read when it was "
                                      "made, and can now")
    assert json.loads(saved.read_text())["provider_settings"] == {"qp": {"base_url": None}}


def test_a_saved_plan_after_an_interrupted_apply_is_refused_before_recovery_calls_the_other_host(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, elsewhere: LoopbackServer) -> None:
    """An interrupted apply's journal is assessed (the instance listed) as the apply opens, before
    the saved plan is read against the state: the settings are checked before that."""
    project = _project(tmp_path, emulator.url, QUESTRA_URL_ENV)
    emu_control.faults(drop_after_commit_rate=1.0)  # web is created, its answer lost: the journal keeps it
    assert project.run("apply", "--auto-approve").exit_code == 1
    emu_control.faults(drop_after_commit_rate=0.0)
    assert project.journal_path.exists()
    saved = tmp_path / "p.plan"
    planned = project.run("plan", "--out", str(saved))
    assert planned.exit_code == 0, planned.output
    journal, state = project.journal_path.read_bytes(), project.state_path.read_bytes()
    res = project.run("apply", str(saved), env={"QP_URL": elsewhere.url})
    assert elsewhere.seen == []
    assert res.exit_code == 1, res.output
    assert res.stderr == STALE.format("provider qp's base_url (from env QP_URL) changed since it was made")
    assert project.journal_path.read_bytes() == journal and project.state_path.read_bytes() == state
    assert project.run("apply", str(saved)).exit_code == 0  # at the host it was made for


@pytest.mark.parametrize("blank", [" ", "\t \n"])
def test_a_rest_option_from_a_variable_of_blanks_is_refused_not_taken_as_none(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, blank: str) -> None:
    """A rest option `{env: NAME}` whose variable held blanks only was read as an empty option (an
    empty variable is refused: 'is set but empty'), so a create sent `"team": ""`: the key made for
    no team. Refused before any call."""
    definition = (DEFINITIONS / "questra.yaml").read_text()
    definition = definition.replace("options:\n", "options:\n  team: {description: \"The team a key is for.\"}\n", 1)
    definition = definition.replace('body: {name: "${attrs.name}",', 'body: {team: "${options.team}", name: "${attrs.name}",')
    (tmp_path / "teams.yaml").write_text(definition)
    provider = ("{type: rest, definition: teams.yaml, base_url: '{url}', token: {env: QUESTRA_TOKEN}, "
                "org_id: {env: QP_ORG}, team: {env: TEAM}}")
    project = _project(tmp_path, emulator.url, provider.replace("team: {env: TEAM}", "team: platform"))
    project.write(project.manifest.read_text().replace("team: platform", "team: {env: TEAM}"))
    calls = emu_control.requests()
    res = project.run("apply", "--auto-approve", env={"TEAM": blank})
    assert res.exit_code == 1, res.output
    assert "providers.qp.team: environment variable TEAM holds only blank characters" in res.stderr, res.stderr
    assert emu_control.requests() == calls and [k["name"] for k in emu_control.questra_keys(ORG)] == ["CI bot"]
