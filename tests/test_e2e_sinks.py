"""Pipeline sinks end to end through the CLI against the emulator over real HTTP: a sops-encrypted
file (real sops, real age keys), an exec sink (a recording program and Debian's `pass`), and a
sops-encrypted Kubernetes Secret. Plus their manifest validation."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from harness.project import ORG, TOKENS, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.manifest import load_workspace
from tests.sinkkit import AgeKey, PassStore, file_writes, need, records, sops_decrypt, visible, write_recorder
from tests.test_sinks_k8s import assert_valid_secret

PROVIDERS = """\
version: 1
providers:
  qp:
    type: questra
    base_url: {url}
    token: {env: QUESTRA_TOKEN}
    org_id: {org}
  tq:
    type: textql
    base_url: {url}
    token: {env: TEXTQL_TOKEN}
"""

KEYS = """\
keys:
  ci-bot:
    provider: qp
    name: CI bot
  deploy-bot:
    provider: qp
    name: deploy bot
  ana:
    provider: tq
    description: Questra access for Ana
    hosts: [api.questra.ai]
    api_provider: questra
    auth_value: {secret_of: ci-bot}
"""

SOPS_SINK = """\
sinks:
  committed:
    type: sops
    path: secrets/keys.enc.env
    age: [RECIPIENT]
defaults:
  sink: committed
"""


def questra(control: EmulatorControl) -> dict[str, dict[str, Any]]:
    return {k["id"]: k for k in control.questra_keys(ORG)}


def textql(control: EmulatorControl) -> dict[str, dict[str, Any]]:
    return {k["id"]: k for k in control.textql_keys()}


def issued(project: Project, control: EmulatorControl, address: str) -> str:
    return str(questra(control)[project.remote_id(address)]["secret"])


def ok(result: Any) -> None:
    assert result.exit_code == 0, result.output


@pytest.fixture
def sops_project(tmp_path: Path, emulator: Emulator, age_key: AgeKey) -> Project:
    project = Project(tmp_path / "repo", emulator.url)
    project.root.mkdir()
    project.write(PROVIDERS + SOPS_SINK.replace("RECIPIENT", age_key.recipient) + KEYS)
    return project


def sops_file(project: Project) -> Path:
    return project.root / "secrets" / "keys.enc.env"


# ------------------------------------------------------------------------------------------ sops


def test_apply_writes_a_sops_file_that_sops_d_decrypts_to_the_issued_secrets(
        sops_project: Project, age_key: AgeKey, emu_control: EmulatorControl) -> None:
    ok(sops_project.run("apply", "--auto-approve"))
    secrets = {"CI_BOT": issued(sops_project, emu_control, "ci-bot"),
               "DEPLOY_BOT": issued(sops_project, emu_control, "deploy-bot")}
    assert sops_decrypt(sops_file(sops_project), age_key) == secrets
    raw = sops_file(sops_project).read_text()
    assert all(s not in raw for s in secrets.values())
    assert "CI_BOT=ENC[AES256_GCM," in raw and f"sops_age__list_0__map_recipient={age_key.recipient}" in raw
    assert all(s not in sops_project.state_path.read_text() for s in secrets.values())
    assert textql(emu_control)[sops_project.remote_id("ana")]["authValue"] == secrets["CI_BOT"]
    ok(sops_project.run("plan", "--detailed-exitcode"))


def test_a_second_apply_rotating_one_key_keeps_the_others(sops_project: Project, age_key: AgeKey,
                                                          emu_control: EmulatorControl) -> None:
    ok(sops_project.run("apply", "--auto-approve"))
    before = sops_decrypt(sops_file(sops_project), age_key)
    old_id = sops_project.remote_id("deploy-bot")
    ok(sops_project.run("apply", "--auto-approve", "--replace", "deploy-bot"))
    after = sops_decrypt(sops_file(sops_project), age_key)
    assert sops_project.remote_id("deploy-bot") != old_id
    assert after["DEPLOY_BOT"] == issued(sops_project, emu_control, "deploy-bot") != before["DEPLOY_BOT"]
    assert after["CI_BOT"] == before["CI_BOT"]  # the other entry survived the decrypt → merge → encrypt
    assert questra(emu_control)[old_id]["revoked"] is True


def test_read_back_from_the_sops_file_feeds_secret_of(sops_project: Project, emu_control: EmulatorControl) -> None:
    ok(sops_project.run("apply", "--auto-approve"))
    ci_bot = sops_project.remote_id("ci-bot")
    emu_control.delete_textql(sops_project.remote_id("ana"))
    plan = sops_project.run("plan")
    assert "ana will be created" in plan.stdout and "ci-bot must be replaced" not in plan.stdout, plan.stdout
    ok(sops_project.run("apply", "--auto-approve"))
    assert sops_project.remote_id("ci-bot") == ci_bot  # the source was not rotated
    assert textql(emu_control)[sops_project.remote_id("ana")]["authValue"] == \
        questra(emu_control)[ci_bot]["secret"]


def test_without_the_key_the_sink_is_write_only_and_the_plan_replaces_the_source(
        sops_project: Project, age_key: AgeKey, emu_control: EmulatorControl,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ok(sops_project.run("apply", "--auto-approve"))
    ci_bot = sops_project.remote_id("ci-bot")
    emu_control.delete_textql(sops_project.remote_id("ana"))
    before = sops_file(sops_project).read_bytes()
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    plan = sops_project.run("plan")
    assert "ci-bot must be replaced" in plan.stdout, plan.stdout
    assert "ana needs its secret and no sink can give it back" in plan.stdout
    # applying it must merge the new CI_BOT into a file it cannot decrypt: refused, new key revoked
    res = sops_project.run("apply", "--auto-approve")
    assert res.exit_code == 1
    assert "needs to decrypt an existing sops file" in res.stderr and "was revoked" in res.stderr, res.output
    assert "Traceback" not in res.output
    assert sops_file(sops_project).read_bytes() == before
    live = [k for k in questra(emu_control).values() if not k["revoked"]]
    assert {k["id"] for k in live} == {ci_bot, sops_project.remote_id("deploy-bot")}  # no live key without its secret
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key.identity))
    ok(sops_project.run("apply", "--auto-approve"))  # with the key: read back, no rotation
    assert sops_project.remote_id("ci-bot") == ci_bot
    assert textql(emu_control)[sops_project.remote_id("ana")]["authValue"] == questra(emu_control)[ci_bot]["secret"]


def test_a_real_apply_process_writes_no_secret_into_any_file(sops_project: Project, age_key: AgeKey,
                                                             emu_control: EmulatorControl) -> None:
    """strace -f over `keyform apply` and every sops it runs: the plaintext only ever goes through
    pipes; files (the temp file renamed over the sink, the state, the journal) get none of it."""
    strace = need("strace")
    log = sops_project.root.parent / "strace.log"
    env = {**os.environ, **TOKENS}
    proc = subprocess.run([strace, "-f", "-qq", "-y", "-s", "1000000", "-e", "trace=write,pwrite64,writev",
                           "-o", str(log), sys.executable, "-m", "keyform", "apply", "-f",
                           str(sops_project.manifest), "--auto-approve"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    secrets = [k["secret"] for k in questra(emu_control).values()]
    assert len(secrets) == 2
    writes = file_writes(log.read_text())
    targets = {Path(path).name for path, _ in writes}
    assert any(name.startswith(".keys.enc.env.") for name in targets), targets  # the sink's atomic write was seen
    leaked = [(path, s) for path, data in writes for s in secrets if s in data]
    assert not leaked, leaked
    assert sops_decrypt(sops_file(sops_project), age_key) == {
        "CI_BOT": issued(sops_project, emu_control, "ci-bot"),
        "DEPLOY_BOT": issued(sops_project, emu_control, "deploy-bot")}


# ------------------------------------------------------------------------------------------ exec


def exec_project(root: Path, url: str, sinks: str) -> Project:
    project = Project(root, url)
    root.mkdir(exist_ok=True)
    project.write(PROVIDERS + sinks + KEYS)
    return project


def test_exec_sink_hands_each_secret_to_the_program_on_stdin_only(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    write_recorder(root / "bin")
    monkeypatch.setenv("RECORD_DIR", str(tmp_path / "records"))
    project = exec_project(root, emulator.url, """\
sinks:
  vault:
    type: exec
    command: [./bin/fake-vault, kv, put]
    read_command: [./bin/fake-vault, kv, get]
    remove_command: [./bin/fake-vault, kv, delete]
    timeout: 20s
defaults:
  sink: vault
""")
    ok(project.run("apply", "--auto-approve"))
    secrets = {"CI_BOT": issued(project, emu_control, "ci-bot"), "DEPLOY_BOT": issued(project, emu_control, "deploy-bot")}
    writes = {r["name"]: r for r in records(tmp_path / "records") if r["action"] == "write"}
    assert {n: r["stdin"] for n, r in writes.items()} == secrets
    for rec in records(tmp_path / "records"):
        for secret in secrets.values():
            for leak in ("argv", "cmdline", "environ", "ps", "env"):
                assert secret not in str(rec[leak]), (rec["action"], rec["name"], leak)
    assert writes["CI_BOT"]["env"]["KEYFORM_ADDRESS"] == "ci-bot" and writes["CI_BOT"]["sink"] == "vault"
    assert writes["CI_BOT"]["argv"][1:] == ["kv", "put"] and writes["CI_BOT"]["cwd"] == str(root)
    # the sink is readable: a TextQL key recreated out of band gets its authValue via read_command
    emu_control.delete_textql(project.remote_id("ana"))
    ok(project.run("apply", "--auto-approve"))
    assert textql(emu_control)[project.remote_id("ana")]["authValue"] == secrets["CI_BOT"]
    # deleting a key runs remove_command
    project.manifest.write_text(project.manifest.read_text().replace("  deploy-bot:\n    provider: qp\n"
                                                                     "    name: deploy bot\n", ""))
    ok(project.run("apply", "--auto-approve"))
    assert [r["name"] for r in records(tmp_path / "records") if r["action"] == "remove"] == ["DEPLOY_BOT"]


def test_a_delete_whose_entry_cannot_be_removed_still_records_the_revoke(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    """A delete revokes first, then removes the sink entry. When the removal failed (a sealed vault,
    sops with no identity), the key was revoked but the state still held it as live, the journal's
    intent stayed open, and the next plan wanted to replace it ("revoked outside keyform"). Now the
    state forgets it, the entry holding the revoked secret is keyform's to overwrite, and the
    failure says the key is revoked."""
    store = tmp_path / "store"
    store.mkdir()
    project = Project(tmp_path / "repo", emulator.url)
    project.exec_vault(f'sh, -c, \'cat > "{store}/$KEYFORM_SINK_NAME"\'', store)
    ok(project.run("apply", "--auto-approve"))
    key_id = project.remote_id("q0")
    project.manifest.write_text(project.manifest.read_text()
                                .replace("rm -f", "echo vault sealed >&2; exit 3; rm -f")
                                .replace("  q0: {provider: qp, name: q0}\n", ""))
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 1, res.output
    assert (f"{key_id} is revoked, but its sink entry vault:Q0 (the revoked secret) could not be removed: "
            in res.stderr), res.stderr
    assert "vault sealed" in res.stderr and "remove it by hand" in res.stderr
    assert [k["revoked"] for k in emu_control.questra_keys(ORG)] == [True]
    assert project.state()["keys"] == {} and project.journal_records() == []
    assert project.state()["written_entries"] == {"vault": ["Q0"]}
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    # a key given that entry again may write over the revoked secret
    project.manifest.write_text(project.manifest.read_text().replace("keys:\n", "keys:\n  q1: {provider: qp, name: q1, "
                                                                     "sink: {use: vault, as: Q0}}\n"))
    ok(project.run("apply", "--auto-approve"))
    assert (store / "Q0").read_text() == issued(project, emu_control, "q1")


def test_a_read_command_that_fails_at_plan_time_fails_the_plan_instead_of_replacing_the_key(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `secret_of` source's secret is checked by reading it back. A read that failed (a sealed
    vault, a network error) counted as "missing from the sink", and the plan replaced the key:
    an apply would revoke a working key over a passing outage. Now the plan fails, naming both."""
    root = tmp_path / "repo"
    project = exec_project(root, emulator.url, """\
sinks:
  vault:
    type: exec
    command: [sh, -c, 'mkdir -p kv && cat > "kv/$KEYFORM_SINK_NAME"']
    read_command: [sh, -c, 'if [ -n "$VAULT_SEALED" ]; then echo "vault is sealed" >&2; exit 2; fi; cat "kv/$KEYFORM_SINK_NAME" 2>/dev/null || true']
defaults:
  sink: vault
""")
    ok(project.run("apply", "--auto-approve"))
    state = project.state_path.read_bytes()
    monkeypatch.setenv("VAULT_SEALED", "1")
    for command in (("plan",), ("apply", "--auto-approve")):
        res = project.run(*command)
        assert res.exit_code == 1, res.output
        assert ("key 'ci-bot': cannot check that its secret is still in sink vault (CI_BOT), which 'ana' reads "
                "with secret_of: exec sink vault: sh (read CI_BOT) failed with exit status 2: vault is sealed; "
                "nothing was planned") in res.stderr, res.output
        assert "replace" not in res.stdout and "Traceback" not in res.output
    assert project.state_path.read_bytes() == state
    assert all(not k["revoked"] for k in questra(emu_control).values())
    monkeypatch.delenv("VAULT_SEALED")
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


PASS_SINK = """\
sinks:
  pass:
    type: exec
    command: [sh, -c, 'exec pass insert --multiline --force "keyform/$KEYFORM_SINK_NAME" >/dev/null']
    read_command: [sh, -c, 'exec pass show "keyform/$KEYFORM_SINK_NAME"']
    remove_command: [sh, -c, 'exec pass rm --force "keyform/$KEYFORM_SINK_NAME" >/dev/null']
defaults:
  sink: pass
"""


def test_exec_sink_backed_by_pass_stores_and_reads_back_for_secret_of(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, pass_store: PassStore) -> None:
    need("pass")
    project = exec_project(tmp_path / "repo", emulator.url, PASS_SINK)
    ok(project.run("apply", "--auto-approve"))
    ci_bot = project.remote_id("ci-bot")
    assert pass_store.show("keyform/CI_BOT") == issued(project, emu_control, "ci-bot")
    assert pass_store.show("keyform/DEPLOY_BOT") == issued(project, emu_control, "deploy-bot")
    emu_control.delete_textql(project.remote_id("ana"))
    ok(project.run("apply", "--auto-approve"))
    assert project.remote_id("ci-bot") == ci_bot
    assert textql(emu_control)[project.remote_id("ana")]["authValue"] == pass_store.show("keyform/CI_BOT")
    ok(project.run("destroy", "--auto-approve"))
    assert pass_store.show("keyform/CI_BOT") is None and pass_store.show("keyform/DEPLOY_BOT") is None


def test_exec_sink_failure_exits_1_with_the_stderr_and_the_new_key_is_revoked(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    write_recorder(root / "bin")
    monkeypatch.setenv("RECORD_DIR", str(tmp_path / "records"))
    monkeypatch.setenv("RECORDER_FAIL", "1")
    project = exec_project(root, emulator.url, """\
sinks:
  vault:
    type: exec
    command: [./bin/fake-vault]
defaults:
  sink: vault
""")
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert "ci-bot: cannot store the new secret in sink vault:CI_BOT" in res.stderr, res.output
    assert "vault: permission denied writing CI_BOT (value [redacted])" in res.stderr
    assert "ana" in res.stderr and "skipped" in res.stderr  # its source failed
    keys = questra(emu_control)
    assert len(keys) == 2 and all(k["revoked"] for k in keys.values())  # no live key without its secret
    assert all(k["secret"] not in res.output for k in keys.values())
    assert not project.state_path.exists() or project.state()["keys"] == {}
    monkeypatch.delenv("RECORDER_FAIL")
    ok(project.run("apply", "--auto-approve"))
    assert len([k for k in questra(emu_control).values() if not k["revoked"]]) == 2


# ------------------------------------------------------------------------------------ k8s-secret


def test_k8s_secret_sink_with_sops_writes_a_committable_secret_that_decrypts_to_a_valid_secret(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, age_key: AgeKey) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    project = Project(root, emulator.url)
    project.write(PROVIDERS + f"""\
sinks:
  cluster:
    type: k8s-secret
    path: deploy/app-keys.secret.enc.yaml
    name: app-keys
    namespace: prod
    labels: {{app.kubernetes.io/name: web}}
    field: data
    encrypt: sops
    age: {age_key.recipient}
defaults:
  sink: cluster
""" + KEYS)
    ok(project.run("apply", "--auto-approve"))
    path = root / "deploy" / "app-keys.secret.enc.yaml"
    secrets = {"CI_BOT": issued(project, emu_control, "ci-bot"), "DEPLOY_BOT": issued(project, emu_control, "deploy-bot")}
    text = path.read_text()
    for s in secrets.values():
        assert s not in text and base64.b64encode(s.encode()).decode() not in text
    on_disk = visible(path)
    assert on_disk["kind"] == "Secret" and on_disk["metadata"]["namespace"] == "prod"
    assert on_disk["sops"]["encrypted_regex"] == "^(data|stringData)$"
    plain = sops_decrypt(path, age_key)
    assert_valid_secret(plain)
    assert {k: base64.b64decode(v).decode() for k, v in plain["data"].items()} == secrets
    emu_control.delete_textql(project.remote_id("ana"))
    ok(project.run("apply", "--auto-approve"))  # read back through sops for secret_of
    assert textql(emu_control)[project.remote_id("ana")]["authValue"] == secrets["CI_BOT"]


# ------------------------------------------------------------------------------------ validation


def at(project: Project, snippet: str, nth: int = 0) -> str:
    """`file:line` of the `nth` manifest line containing `snippet`."""
    lines = [i for i, text in enumerate(project.manifest.read_text().splitlines(), 1) if snippet in text]
    return f"{project.manifest}:{lines[nth]}"


def test_invalid_sink_options_are_all_reported_with_file_and_line(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.write(PROVIDERS + """\
sinks:
  enc:
    type: sops
    path: secrets/keys.txt
    agee: age1abc
  enc2:
    type: sops
    path: secrets/k.yaml
    age: AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQ
    format: toml
  run:
    type: exec
    command: gh secret set NAME
  run2:
    type: exec
    command: []
    timeout: 0s
  run3:
    type: exec
    command: [gh, secret, set, 42]
  cluster:
    type: k8s-secret
    path: s.yaml
    name: App_Keys
    labels: {tier: 3}
    age: age1abc
  cluster2:
    type: k8s-secret
    name: ok
  yamlenc:
    type: sops
    path: secrets/s.yaml
    age: age1abc
defaults:
  sink: yamlenc
keys:
  sopsy:
    provider: qp
    sink: {use: yamlenc, as: sops}
  podkey:
    provider: qp
    sink: {use: yamlenc, as: TOKEN_unencrypted}
""")
    res = project.run("validate")
    assert res.exit_code == 1
    err = res.stderr
    expected = [
        f"{at(project, 'agee:')}: sinks.enc: unknown field 'agee' (did you mean 'age'?)",
        f"{at(project, 'format: toml')}: sinks.enc2.format: 'toml' is not one of: dotenv, yaml, json",
        f"{at(project, 'command: gh')}: sinks.run.command: expected a list, got a string",
        f"{at(project, 'command: []')}: sinks.run2.command: must name a program: a non-empty list like "
        "[gh, secret, set, NAME]",
        f"{at(project, 'timeout: 0s')}: sinks.run2.timeout: must be longer than 0s",
        f"{at(project, '42]')}: sinks.run3.command[3]: expected a string, got an integer (quote it: '42')",
        f"{at(project, 'tier: 3')}: sinks.cluster.labels.tier: expected a string, got an integer (quote it: '3')",
        f"{at(project, 'cluster2:')}: sinks.cluster2: missing required field 'path'",
        f"{at(project, 'as: sops}')}: keys.sopsy: sink entry 'sops' cannot be used in sink 'yamlenc' (sops): "
        "'sops' is reserved for sops' own metadata; set sink.as",
    ]
    for line in expected:
        assert line in err, f"{line}\n---\n{err}"
    assert "AGE-SECRET-KEY-1QQ" not in err


def test_semantic_sink_problems_are_reported_at_their_lines(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.write(PROVIDERS + """\
sinks:
  enc:
    type: sops
    path: secrets/keys.txt
  enc2:
    type: sops
    path: secrets/k.yaml
    age: [age1ok, AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQ]
    encrypted_regex: "([unclosed"
  cluster:
    type: k8s-secret
    path: s.yaml
    name: App_Keys
    namespace: Prod
    labels: {"bad key!": x}
    age: age1abc
  yamlenc:
    type: sops
    path: secrets/s.yaml
    age: age1abc
defaults:
  sink: yamlenc
keys:
  sopsy:
    provider: qp
    sink: {use: yamlenc, as: sops}
  podkey:
    provider: qp
    sink: {use: yamlenc, as: TOKEN_unencrypted}
""")
    res = project.run("validate")
    assert res.exit_code == 1
    err = res.stderr
    expected = [
        f"{at(project, 'keys.txt')}: sinks.enc.path: cannot tell the sops format from 'keys.txt'",
        f"{at(project, 'age: [age1ok')}: sinks.enc2.age: this is an age secret key; list its public recipient "
        "(age1...)",
        f"{at(project, 'encrypted_regex')}: sinks.enc2.encrypted_regex: not a valid regular expression",
        f"{at(project, 'App_Keys')}: sinks.cluster.name: 'App_Keys' is not a valid Kubernetes object name",
        f"{at(project, 'Prod')}: sinks.cluster.namespace: 'Prod' is not a valid Kubernetes namespace",
        f"{at(project, 'bad key!')}: sinks.cluster.labels.bad key!: label key 'bad key!' is not valid",
        f"{at(project, 'age: age1abc')}: sinks.cluster.age: age recipients need encrypt: sops",
        f"{at(project, 'as: TOKEN_')}: keys.podkey: sink entry 'TOKEN_unencrypted' cannot be used in sink "
        "'yamlenc' (sops): 'TOKEN_unencrypted' ends with '_unencrypted', which sops leaves unencrypted; set sink.as",
    ]
    for line in expected:
        assert line in err, f"{line}\n---\n{err}"
    assert "AGE-SECRET-KEY-1QQ" not in err


def test_relative_paths_and_programs_resolve_against_the_manifest_directory(tmp_path: Path) -> None:
    manifest = tmp_path / "infra" / "keyform.yaml"
    manifest.parent.mkdir()
    manifest.write_text("""\
version: 1
sinks:
  enc: {type: sops, path: ../secrets/keys.enc.env, age: age1abc}
  cluster: {type: k8s-secret, path: deploy/s.yaml, name: app}
  run: {type: exec, command: [./bin/put, --flag], read_command: [vault, kv, get], remove_command: [bin/rm]}
""")
    ws = load_workspace([str(manifest)], now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert ws.sinks["enc"].options["path"] == str(tmp_path / "secrets" / "keys.enc.env")
    assert ws.sinks["cluster"].options["path"] == str(tmp_path / "infra" / "deploy" / "s.yaml")
    run = ws.sinks["run"].options
    assert run["command"] == [str(tmp_path / "infra" / "bin" / "put"), "--flag"]
    assert run["read_command"] == ["vault", "kv", "get"]  # a bare name is looked up on PATH
    assert run["remove_command"] == [str(tmp_path / "infra" / "bin" / "rm")]
    assert run["workdir"] == str(tmp_path / "infra")
