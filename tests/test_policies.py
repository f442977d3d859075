"""Policies: every rule word holding and failing, match filters, severities, `--policy` files from
outside the repository, invalid policies at `file:line`, the registry agreeing with the schema, and
`forbid_actions` stopping a plan; through validate, plan, apply and destroy against the emulator."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError
from keyform.manifest import load_workspace
from keyform.plan import Action, Change, Plan
from keyform.policy import RULES, check_manifest, check_plan, enforce, load_policy_files

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[1]

MANIFEST = """\
version: 1
providers:
  qp: {type: questra, base_url: "http://127.0.0.1:1", token: {env: QT}, org_id: org_1}
  tq: {type: textql, base_url: "http://127.0.0.1:1", token: {env: TT}}
sinks:
  env: {type: dotenv, path: .secrets/keys.env}
  vault: {type: exec, command: [vault-put]}
defaults: {sink: env}
keys:
  good:
    provider: qp
    name: svc-good
    expires_in: 30d
    rotation: {before_expiry: 7d, max_age: 20d}
  loose:
    provider: qp
    name: Loose Key
    sink: vault
  prod-api:
    provider: qp
    expires_at: "2027-06-01T00:00:00Z"
  tq-key:
    provider: tq
    description: shared
    auth_value: {secret_of: good}
    is_private: false
"""


def violations(tmp_path: Path, policies: str, manifest: str = MANIFEST) -> dict[str, list[str]]:
    """{policy name: [addresses violating it]} for the manifest plus `policies:` (indented YAML)."""
    path = tmp_path / "keyform.yaml"
    path.write_text(manifest + "policies:\n" + textwrap.indent(textwrap.dedent(policies), "  "))
    ws = load_workspace([path], now=NOW, cwd=tmp_path)
    out: dict[str, list[str]] = {}
    for v in check_manifest(ws.policies, ws, NOW):
        out.setdefault(v.policy.name, []).append(v.address)
    return out


def load_error(tmp_path: Path, policies: str) -> list[str]:
    return load_error_for(tmp_path, policies, MANIFEST)


def load_error_for(tmp_path: Path, policies: str, manifest: str) -> list[str]:
    with pytest.raises(KeyformError) as exc:
        violations(tmp_path, policies, manifest)
    return [str(d) for d in exc.value.diagnostics]


# ------------------------------------------------------------------------------ each rule word

@pytest.mark.parametrize(("require", "failing"), [
    ("expiry: true", ["loose"]),
    ("expiry: false", []),
    ("max_lifetime: 90d", ["loose", "prod-api"]),      # never expires; expires_at a year away
    ("max_lifetime: 400d", ["loose"]),
    ("rotation: true", ["loose", "prod-api"]),
    ("rotation: false", []),
    ("max_age: 30d", ["loose", "prod-api"]),           # no rotation.max_age
    ("max_age: 10d", ["good", "loose", "prod-api"]),   # good's max_age 20d is longer
    ("name_pattern: 'svc-[a-z]+'", ["loose", "prod-api"]),
    ("name_pattern: '.+'", []),
    ("allowed_sinks: [env]", ["loose"]),
    ("allowed_sinks: [env, exec]", []),                # a sink type counts too
    ("allowed_providers: [qp]", []),
    ("allowed_providers: [textql]", ["good", "loose", "prod-api"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_each_rule_word_holds_or_fails(tmp_path: Path, require: str, failing: list[str]) -> None:
    found = violations(tmp_path, f"p:\n  match: {{providers: [questra]}}\n  require: {{{require}}}\n")
    assert found.get("p", []) == failing


def test_name_pattern_on_textql_reads_the_description(tmp_path: Path) -> None:
    found = violations(tmp_path, "p:\n  match: {providers: [tq]}\n  require: {name_pattern: 'team-.*'}\n")
    assert found == {"p": ["tq-key"]}


def test_schema_escape_hatch_over_the_manifest_entry(tmp_path: Path) -> None:
    policy = """\
    private-textql:
      match: {providers: [textql]}
      schema: {properties: {is_private: {const: true}}, required: [is_private]}
    """
    assert violations(tmp_path, policy) == {"private-textql": ["tq-key"]}
    assert violations(tmp_path, policy, MANIFEST.replace("is_private: false", "is_private: true")) == {}


def test_violation_is_at_the_keys_file_line_with_policy_name_and_message(tmp_path: Path) -> None:
    path = tmp_path / "keyform.yaml"
    path.write_text(MANIFEST + "policies:\n  keys-expire:\n    message: every key must expire within 90 days\n"
                    "    match: {providers: [questra]}\n    require: {expiry: true}\n")
    ws = load_workspace([path], now=NOW, cwd=tmp_path)
    [v] = check_manifest(ws.policies, ws, NOW)
    assert str(v.diagnostic()) == ("keyform.yaml:15: policy 'keys-expire': key 'loose': every key must expire "
                                   "within 90 days (no expiry; set expires_in or expires_at)")


# ------------------------------------------------------------------------------------ filters

def test_match_by_provider_instance_or_type_and_by_address_glob(tmp_path: Path) -> None:
    req = "require: {expiry: true}"
    assert violations(tmp_path, f"p:\n  match: {{providers: [tq]}}\n  {req}\n") == {"p": ["tq-key"]}
    assert violations(tmp_path, f"p:\n  match: {{providers: [questra]}}\n  {req}\n") == {"p": ["loose"]}
    assert violations(tmp_path, f"p:\n  match: {{addresses: ['prod-*', 'tq-*']}}\n  {req}\n") == {"p": ["tq-key"]}
    assert violations(tmp_path, f"p:\n  match: {{addresses: ['l?ose']}}\n  {req}\n") == {"p": ["loose"]}
    both = f"p:\n  match: {{providers: [questra], addresses: ['tq-*']}}\n  {req}\n"
    assert violations(tmp_path, both) == {}  # both filters must match
    assert violations(tmp_path, f"p:\n  {req}\n") == {"p": ["loose", "tq-key"]}  # no match: every key


def test_a_sink_or_provider_named_after_a_type_does_not_pass_as_that_type(tmp_path: Path) -> None:
    """`allowed_sinks: [sops]` matches names and types; a plaintext dotenv sink *named* `sops` (and a
    TextQL instance named `questra`) met an org-wide policy it was meant to fail, and apply wrote
    the secret in clear. A name that is also a type's name means that type, and a policy listing
    one that an instance of another type is named is an error."""
    manifest = (MANIFEST.replace("  env: {type: dotenv", "  sops: {type: dotenv").replace("{sink: env}", "{sink: sops}")
                .replace("  tq: {type: textql", "  questra: {type: textql").replace("provider: tq", "provider: questra"))
    for policy, what in (("require: {allowed_sinks: [sops]}", "'sops' is a sink type, and also the name of the sink "
                                                              "instance sops (type dotenv)"),
                         ("require: {allowed_providers: [questra]}", "'questra' is a provider type, and also the "
                                                                     "name of the provider instance questra (type "
                                                                     "textql)"),
                         ("match: {providers: [questra]}\n  require: {expiry: true}", "'questra' is a provider type")):
        [error] = load_error_for(tmp_path, f"p:\n  {policy}\n", manifest)
        assert what in error, error
    assert violations(tmp_path, "p:\n  require: {allowed_sinks: [dotenv, exec]}\n", manifest) == {}
    assert violations(tmp_path, "p:\n  match: {providers: [textql]}\n  require: {expiry: true}\n", manifest) == {
        "p": ["tq-key"]}


def test_an_instance_named_after_another_type_makes_a_policy_naming_it_an_error(tmp_path: Path) -> None:
    """Found by a review of the rule above: a TextQL key through `type: rest` at an instance named
    `textql` silently stopped matching `match: {providers: [textql]}` (the type now), and its
    `forbid_actions: [delete]` no longer held. Such a policy is now an error at its line."""
    manifest = MANIFEST.replace("  tq: {type: textql", "  textql: {type: textql").replace("provider: tq",
                                                                                           "provider: textql")
    assert violations(tmp_path, "p:\n  match: {providers: [textql]}\n  require: {expiry: true}\n",
                      manifest) == {"p": ["tq-key"]}  # an instance of the type it is named after: fine
    sinks = MANIFEST.replace("  vault: {type: exec", "  dotenv: {type: exec").replace("sink: vault", "sink: dotenv")
    # its own type listed beside the name: it matches, so nothing silently stops meaning it
    assert violations(tmp_path, "p:\n  require: {allowed_sinks: [dotenv, exec]}\n", sinks) == {}
    errors = load_error_for(tmp_path, "p:\n  require: {allowed_sinks: [dotenv]}\n", sinks)
    assert errors == ["keyform.yaml:29: policy p: 'dotenv' is a sink type, and also the name of the sink instance "
                      "dotenv (type exec); here it means the type, which that instance is not: rename the instance, "
                      "or list its type"], errors


def test_several_files_contribute_policies_and_a_name_used_twice_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "keyform.yaml").write_text(MANIFEST)
    (tmp_path / "policies.yaml").write_text("version: 1\npolicies:\n  a: {require: {expiry: true}}\n")
    (tmp_path / "more.yaml").write_text("version: 1\npolicies:\n  b: {require: {rotation: true}}\n")
    ws = load_workspace([tmp_path], now=NOW, cwd=tmp_path)
    assert sorted(p.name for p in ws.policies) == ["a", "b"]
    (tmp_path / "more.yaml").write_text("version: 1\npolicies:\n  a: {require: {rotation: true}}\n")
    with pytest.raises(KeyformError) as exc:
        load_workspace([tmp_path], now=NOW, cwd=tmp_path)
    assert [str(d) for d in exc.value.diagnostics] == ["policies.yaml:3: policy 'a' is already defined at more.yaml:3"]


# ----------------------------------------------------------------------------- invalid policies

def test_invalid_policies_are_reported_at_their_file_line(tmp_path: Path) -> None:
    errors = load_error(tmp_path, """\
    bad-regex:
      require: {name_pattern: "([a-z"}
    bad-schema:
      schema: {type: 5}
    empty:
      message: checks nothing
    typo:
      require: {expiri: true}
    bad-duration:
      require: {max_lifetime: ninety}
    bad-severity:
      severity: fatal
      require: {expiry: true}
    """)
    assert errors[0].startswith("keyform.yaml:29: policies.bad-regex.require.name_pattern: not a valid regular "
                                "expression")
    assert errors[1].startswith("keyform.yaml:31: policies.bad-schema.schema: not a valid JSON Schema")
    assert errors[2] == ("keyform.yaml:32: policies.empty: the policy checks nothing; give require, schema or "
                         "forbid_actions")
    assert "keyform.yaml:35: policies.typo.require: unknown field 'expiri' (did you mean 'expiry'?)" in errors
    assert any(e.startswith("keyform.yaml:37: policies.bad-duration.require.max_lifetime: 'ninety' is not a valid "
                            "duration") for e in errors)
    assert any(e.startswith("keyform.yaml:39: policies.bad-severity.severity: 'fatal' is not one of: error, warning")
               for e in errors)
    assert len(errors) == 6


def test_registry_words_and_schema_words_agree() -> None:
    schema = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
    policy = schema["$defs"]["policy"]["properties"]
    words = set(policy["require"]["properties"]) | {w for w in ("schema", "forbid_actions") if w in policy}
    assert words == set(RULES)


# ------------------------------------------------------------------------------- --policy files

def test_policy_file_outside_the_repository(tmp_path: Path) -> None:
    org = tmp_path / "org"
    org.mkdir()
    (org / "org-policy.yaml").write_text("version: 1\npolicies:\n  org-expiry:\n    require: {expiry: true}\n")
    [policy] = load_policy_files([str(org / "org-policy.yaml")], cwd=tmp_path / "repo")
    assert policy.name == "org-expiry" and str(policy.loc).endswith("org-policy.yaml:3")
    (org / "bad.yaml").write_text("version: 1\nproviders: {}\npolicies:\n  x:\n    require: {max_age: soon}\n")
    with pytest.raises(KeyformError) as exc:
        load_policy_files([str(org / "bad.yaml")], cwd=org)
    assert [str(d) for d in exc.value.diagnostics] == [
        "bad.yaml:5: policies.x.require.max_age: 'soon' is not a valid duration (e.g. 90d, 12h; units s m h d w)"]
    (org / "keys.yaml").write_text("version: 1\nproviders: {}\npolicies:\n  x: {require: {expiry: true}}\n")
    with pytest.raises(KeyformError) as exc:
        load_policy_files([str(org / "keys.yaml")], cwd=org)
    assert [str(d) for d in exc.value.diagnostics] == [
        "keys.yaml:2: a --policy file holds only version and policies, not 'providers'"]
    with pytest.raises(KeyformError, match=r"--policy nope\.yaml: cannot read the file"):
        load_policy_files(["nope.yaml"], cwd=org)


# ----------------------------------------------------------------------------- plan-phase rules

def test_forbid_actions_sees_the_plan_but_not_deposed_revocations(tmp_path: Path) -> None:
    path = tmp_path / "keyform.yaml"
    path.write_text(MANIFEST + "policies:\n  keep-prod:\n    match: {addresses: ['prod-*', 'gone-*']}\n"
                    "    forbid_actions: [delete, replace]\n")
    ws = load_workspace([path], now=NOW, cwd=tmp_path)

    def change(address: str, action: Action, deposed: bool = False) -> Change:
        return Change(address=address, action=action, provider="qp", provider_type="questra", deposed=deposed,
                      remote_id="ak_1")

    plan = Plan(changes=(change("prod-api", Action.REPLACE), change("gone-key", Action.DELETE),
                         change("prod-api", Action.DELETE, deposed=True), change("loose", Action.DELETE)))
    found = check_plan(ws.policies, ws, plan, NOW)
    assert [(v.address, str(v.loc)) for v in found] == [("prod-api", "keyform.yaml:19"), ("gone-key", "keyform.yaml:30")]
    assert "the plan would delete it" in found[1].detail and "in the state only" in found[1].detail
    assert check_manifest(ws.policies, ws, NOW) == []  # a plan-phase rule does not run on the manifests alone


def test_forbid_actions_judges_a_key_by_its_own_change_not_by_the_removal_of_a_stale_copy(tmp_path: Path) -> None:
    """Removing a stale copy of a key's secret (`Change.stale`, a delete of a sink entry only) is
    not the key's deletion: a policy forbidding deletes lets it through, and still judges the key's
    own change. (Planned after the key's own change, the stale removal used to take its place.)"""
    path = tmp_path / "keyform.yaml"
    path.write_text(MANIFEST + "policies:\n  keep-prod:\n    match: {addresses: ['prod-*']}\n"
                    "    forbid_actions: [delete, replace]\n")
    ws = load_workspace([path], now=NOW, cwd=tmp_path)
    own = Change(address="prod-api", action=Action.REPLACE, provider="qp", provider_type="questra", remote_id="ak_1")
    stale = Change(address="prod-api", action=Action.DELETE, provider="qp", provider_type="questra",
                   remote_id="ak_1", stale=True, sink="env:OLD")
    assert [v.address for v in check_plan(ws.policies, ws, Plan(changes=(own, stale)), NOW)] == ["prod-api"]
    assert check_plan(ws.policies, ws, Plan(changes=(stale,)), NOW) == []


# --------------------------------------------------------------------------------- end to end

KEYS = """\
ci-bot:
  provider: qp
  name: CI bot
  expires_in: 30d
web:
  provider: qp
"""


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def test_error_policy_fails_validate_and_plan_before_any_remote_call(project: Project,
                                                                    emu_control: EmulatorControl) -> None:
    project.questra(KEYS, extra="policies:\n  keys-expire:\n    message: keys must expire\n"
                                "    require: {expiry: true}\n")
    res = project.run("validate")
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: ") and res.stderr.count("\n") == 1
    assert res.stderr.endswith("keyform.yaml:23: policy 'keys-expire': key 'web': keys must expire "
                               "(no expiry; set expires_in or expires_at)\n")
    before = emu_control.requests()
    for cmd in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*cmd)
        assert res.exit_code == 1 and "policy 'keys-expire'" in res.stderr and "Traceback" not in res.output
    assert emu_control.requests() == before  # not even a list call
    assert not project.state_path.exists()


def test_warning_policy_is_shown_in_the_plan_and_does_not_block(project: Project) -> None:
    project.questra(KEYS, extra="policies:\n  named:\n    severity: warning\n"
                                "    require: {name_pattern: '[a-z-]+'}\n")
    res = project.run("validate")
    assert res.exit_code == 0 and "keyform.yaml:19: policy 'named' (warning): key 'ci-bot'" in res.stderr
    plan = project.run("plan", "--format", "json")
    assert plan.exit_code == 0
    notes = json.loads(plan.stdout)["notes"]
    assert any("policy 'named' (warning): key 'ci-bot': name 'CI bot' does not match" in n for n in notes)
    assert project.run("apply", "--auto-approve").exit_code == 0


def test_policy_option_adds_an_org_wide_file_to_validate_plan_and_apply(project: Project, tmp_path: Path) -> None:
    project.questra(KEYS)
    org = tmp_path.parent / f"{tmp_path.name}-org-policies.yaml"
    org.write_text("version: 1\npolicies:\n  rotate:\n    match: {providers: [questra]}\n    require: {rotation: true}\n")
    assert project.run("validate").exit_code == 0
    for cmd in (("validate",), ("plan",), ("apply", "--auto-approve")):
        res = project.run(*cmd, "--policy", str(org))
        assert res.exit_code == 1, cmd
        assert "policy 'rotate'" in res.stderr and "key 'ci-bot'" in res.stderr and "key 'web'" in res.stderr
    missing = project.run("plan", "--policy", "no-such.yaml")
    assert missing.exit_code == 1 and "--policy no-such.yaml: cannot read the file" in missing.stderr


def test_forbid_actions_stops_a_plan_and_a_destroy_that_would_revoke_matched_keys(
        project: Project, emu_control: EmulatorControl) -> None:
    guard = "policies:\n  no-delete:\n    message: production keys are never deleted by a plan\n" \
            "    match: {addresses: ['ci-*']}\n    forbid_actions: [delete]\n"
    project.questra(KEYS, extra=guard)
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.questra("web:\n  provider: qp\n", extra=guard)  # ci-bot removed from the manifests
    res = project.run("plan")
    assert res.exit_code == 1
    assert "policy 'no-delete': key 'ci-bot': production keys are never deleted by a plan" in res.stderr
    assert "the plan would delete it" in res.stderr
    keys_before = emu_control.questra_keys("org_e2e")
    assert project.run("apply", "--auto-approve").exit_code == 1
    project.questra(KEYS, extra=guard)
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 1 and "policy 'no-delete'" in res.stderr
    assert [k["revoked"] for k in emu_control.questra_keys("org_e2e")] == [k["revoked"] for k in keys_before]
    assert all(not k["revoked"] for k in keys_before)


def test_forbid_actions_is_checked_again_when_applying_a_saved_plan(project: Project, tmp_path: Path) -> None:
    project.questra(KEYS)
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.questra("web:\n  provider: qp\n")
    saved = tmp_path / "plan.json"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    org = tmp_path.parent / f"{tmp_path.name}-guard.yaml"
    org.write_text("version: 1\npolicies:\n  guard:\n    forbid_actions: [delete]\n")
    res = project.run("apply", "--policy", str(org), str(saved))
    assert res.exit_code == 1 and "policy 'guard': key 'ci-bot'" in res.stderr
    assert "ci-bot" in project.state()["keys"]


def test_a_schema_violation_names_the_secret_reference_never_its_value(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "sk-canary-\u00e9-7f3a\n"
    monkeypatch.setenv("TQ_AUTH", canary)
    manifest = MANIFEST.replace("auth_value: {secret_of: good}", "auth_value: {env: TQ_AUTH}")
    path = tmp_path / "keyform.yaml"
    path.write_text(manifest + "policies:\n  p:\n    match: {providers: [textql]}\n"
                    "    schema: {properties: {auth_value: {type: string}}}\n")
    ws = load_workspace([path], now=NOW, cwd=tmp_path)
    [v] = check_manifest(ws.policies, ws, NOW)
    assert "TQ_AUTH" in v.text and canary.strip() not in v.text


def test_a_schema_policy_fetches_nothing_and_a_broken_local_ref_is_reported(tmp_path: Path) -> None:
    errors = load_error(tmp_path, """\
    remote:
      schema: {properties: {name: {$ref: "https://127.0.0.1:9/evil.json"}}}
    """)
    assert errors == ["keyform.yaml:29: policies.remote.schema: $ref 'https://127.0.0.1:9/evil.json': only references "
                      "inside the schema (#/...) are allowed; keyform fetches nothing"]
    # a reference to nothing is the policy's own mistake: one error at its line, not one per key
    errors = load_error(tmp_path, "dangling:\n  match: {providers: [questra]}\n  schema: {$ref: '#/$defs/nope'}\n")
    assert errors == ["keyform.yaml:30: policies.dangling.schema: $ref '#/$defs/nope' points at nothing in the schema"]
    assert violations(tmp_path, "fine:\n  match: {providers: [questra]}\n  schema: {$defs: {n: {required: [name]}}, "
                                "$ref: '#/$defs/n'}\n") == {"fine": ["prod-api"]}


def test_severity_decides_between_stopping_and_a_plan_note(tmp_path: Path) -> None:
    path = tmp_path / "keyform.yaml"
    for severity in ("warning", "error"):
        path.write_text(MANIFEST + f"policies:\n  p:\n    severity: {severity}\n    forbid_actions: [replace]\n")
        ws = load_workspace([path], now=NOW, cwd=tmp_path)
        plan = Plan(changes=(Change(address="good", action=Action.REPLACE, provider="qp", provider_type="questra"),))
        found = check_plan(ws.policies, ws, plan, NOW)
        if severity == "warning":
            assert enforce(found) == ["keyform.yaml:10: policy 'p' (warning): key 'good': the plan would replace it, "
                                      "and this policy forbids that"]
        else:
            with pytest.raises(KeyformError) as exc:
                enforce(found)
            assert str(exc.value) == ("keyform.yaml:10: policy 'p': key 'good': the plan would replace it, and this "
                                      "policy forbids that")


def test_a_regex_with_a_huge_repeat_count_is_an_error_at_its_line(tmp_path: Path) -> None:
    """Found by review 95: `a{4294967295}` makes `re` raise OverflowError, not re.error: a
    `name_pattern` or a `pattern` inside a `schema` policy was `internal error (OverflowError)`."""
    errors = load_error(tmp_path, """\
    big-regex:
      require: {name_pattern: "a{4294967295}"}
    big-schema:
      schema: {properties: {name: {pattern: "a{99999999999}"}}}
    """)
    assert errors == [
        "keyform.yaml:29: policies.big-regex.require.name_pattern: not a valid regular expression: "
        "the repetition number is too large",
        "keyform.yaml:31: policies.big-schema.schema: not a valid JSON Schema: a pattern in it is not a valid "
        "regular expression (the repetition number is too large)"]


MOVABLE = """\
version: 1
providers:
  qp: {{type: questra, base_url: "{{url}}", token: {{env: QUESTRA_TOKEN}}, org_id: "{{org}}"}}
  {second}
sinks:
  env: {{type: dotenv, path: .secrets/keys.env}}
defaults: {{sink: env}}
keys:
  ci-bot: {{provider: {at}, name: CI bot}}
"""


@pytest.mark.parametrize(("second", "guarded"), [
    ('qp2: {type: questra, base_url: "{url}", token: {env: QUESTRA_TOKEN}, org_id: org_other}', "qp"),
    ('qp2: {type: rest, definition: defs/innocuous.yaml, base_url: "{url}", token: {env: QUESTRA_TOKEN}, '
     'org_id: "{org}"}', "questra"),
], ids=["another-instance", "a-rest-type-of-another-name"])
def test_forbid_actions_follows_a_key_moved_off_the_guarded_provider(
        project: Project, tmp_path: Path, emu_control: EmulatorControl, second: str, guarded: str) -> None:
    """A replace that moves a key to another provider instance, or to a type of another name (the
    Questra definition under `type: rest`, named `innocuous`), names the new provider: an org-wide
    `match: {providers: [qp]}` (or `[questra]`) with `forbid_actions: [replace]` matched nothing,
    and the guarded key was replaced, its old key revoked. The key's recorded provider counts too."""
    definition = (ROOT / "examples" / "providers" / "questra.yaml").read_text()
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "innocuous.yaml").write_text(definition.replace("\nname: questra\n", "\nname: innocuous\n"))
    org = tmp_path.parent / f"{tmp_path.name}-guard.yaml"
    org.write_text(f"version: 1\npolicies:\n  guard:\n    match: {{providers: [{guarded}]}}\n"
                   "    forbid_actions: [replace]\n")
    project.write(MOVABLE.format(second=second, at="qp"))
    assert project.run("apply", "--auto-approve", "--policy", str(org)).exit_code == 0
    before = project.state()
    project.write(MOVABLE.format(second=second, at="qp2"))
    for cmd in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*cmd, "--policy", str(org))
        assert res.exit_code == 1, res.output
        assert "policy 'guard': key 'ci-bot': the plan would replace it" in res.stderr
        assert "Traceback" not in res.output
    assert project.state() == before
    assert not any(k["revoked"] for k in emu_control.questra_keys(ORG))
