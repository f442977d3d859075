"""Issue 13, defect 7: a committed state's input fingerprints can be brute-forced with a word list in
salted mode (the salt is in the same file); keyed mode (`state.fingerprint_key`, never stored) stops
that, and `keyform state rekey` moves a state between the modes without a plan diff."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator

KEY = "6f1c0a9e4b7d2c58a1e3f09b7c6d5e4a"  # what `openssl rand -hex 16` prints
OTHER_KEY = "0123456789abcdef0123456789abcdef"
WORDS = ["password", "letmein", "hunter2", "ana@example.com", "qwerty"]


def _project(tmp_path: Path, url: str, keyed: bool) -> Project:
    tmp_path.mkdir(parents=True, exist_ok=True)
    project = Project(tmp_path, url, env={"AV": "hunter2", "EMAIL": "ana@example.com"})
    fp = "  fingerprint_key: {env: KEYFORM_FINGERPRINT_KEY}\n" if keyed else ""
    project.write(
        "version: 1\n"
        "state:\n  path: keyform.state.json\n" + fp +
        "providers:\n"
        "  tq: {type: textql, base_url: '{url}', token: {env: TEXTQL_TOKEN}}\n"
        "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\n"
        "defaults: {sink: env}\n"
        "keys:\n"
        "  ana:\n"
        "    provider: tq\n"
        "    hosts: [api.questra.ai]\n"
        "    auth_value: {env: AV}\n"
        "    auth_value_extra: {env: EMAIL}\n")
    return project


def _brute_force(state: dict[str, object]) -> set[str]:
    """The attack: every word of a list, HMAC'ed under the salt the state file holds."""
    salt = bytes.fromhex(str(state["fingerprint_salt"]))
    fps = set(json.dumps(state["keys"]).split('"'))
    return {w for w in WORDS if "hmac-sha256:" + hmac.new(salt, w.encode(), hashlib.sha256).hexdigest() in fps}


def test_salted_fingerprints_fall_to_a_word_list_keyed_ones_do_not(tmp_path: Path, emulator: Emulator) -> None:
    salted = _project(tmp_path / "salted", emulator.url, keyed=False)
    assert salted.run("apply", "--auto-approve").exit_code == 0
    assert _brute_force(salted.state()) == {"hunter2", "ana@example.com"}  # the attack the issue describes

    keyed = _project(tmp_path / "keyed", emulator.url, keyed=True)
    result = keyed.run("apply", "--auto-approve", env={"KEYFORM_FINGERPRINT_KEY": KEY})
    assert result.exit_code == 0, result.output
    state = keyed.state()
    assert _brute_force(state) == set()
    assert all(fp.startswith("hmac-sha256-keyed:") for fp in state["keys"]["ana"]["fingerprints"].values())
    assert KEY not in keyed.state_path.read_text() and len(state["fingerprint_key_check"]) == 16
    assert keyed.run("plan", "--detailed-exitcode", env={"KEYFORM_FINGERPRINT_KEY": KEY}).exit_code == 0
    # a changed input is still detected in keyed mode
    changed = keyed.run("plan", "--detailed-exitcode", env={"KEYFORM_FINGERPRINT_KEY": KEY, "AV": "hunter3"})
    assert changed.exit_code == 2 and "auth_value changed (fingerprint)" in changed.stdout


def test_a_keyed_state_refuses_a_missing_wrong_or_weak_key(tmp_path: Path, emulator: Emulator) -> None:
    project = _project(tmp_path, emulator.url, keyed=True)
    assert project.run("apply", "--auto-approve", env={"KEYFORM_FINGERPRINT_KEY": KEY}).exit_code == 0
    before = project.state_path.read_bytes()
    missing = project.run("plan")
    assert missing.exit_code == 1 and "environment variable KEYFORM_FINGERPRINT_KEY is not set" in missing.stderr
    wrong = project.run("plan", env={"KEYFORM_FINGERPRINT_KEY": OTHER_KEY})
    assert wrong.exit_code == 1 and "KEYFORM_FINGERPRINT_KEY is not the key this state's fingerprints" in wrong.stderr
    weak = project.run("plan", env={"KEYFORM_FINGERPRINT_KEY": "hunter2"})
    assert weak.exit_code == 1 and "fewer than 16 characters" in weak.stderr
    for result in (missing, wrong, weak):
        assert KEY not in result.output and OTHER_KEY not in result.output and "internal error" not in result.output
    assert project.state_path.read_bytes() == before
    unset = project.manifest.read_text().replace("  fingerprint_key: {env: KEYFORM_FINGERPRINT_KEY}\n", "")
    project.manifest.write_text(unset)
    dropped = project.run("plan")
    assert dropped.exit_code == 1 and "the state's fingerprints are keyed" in dropped.stderr


def test_a_literal_fingerprint_key_is_refused_by_the_manifest(tmp_path: Path, emulator: Emulator) -> None:
    project = _project(tmp_path, emulator.url, keyed=True)
    project.manifest.write_text(project.manifest.read_text().replace(
        "{env: KEYFORM_FINGERPRINT_KEY}", "literal-key-0123456789abcdef"))
    result = project.run("validate")
    assert result.exit_code == 1 and "keyform.yaml:4: state.fingerprint_key: a literal secret is not allowed" in result.stderr
    assert "literal-key" not in result.output


def test_rekey_moves_a_state_between_modes_without_a_plan_diff(tmp_path: Path, emulator: Emulator) -> None:
    project = _project(tmp_path, emulator.url, keyed=False)
    assert project.run("apply", "--auto-approve").exit_code == 0
    salted_fps = project.state()["keys"]["ana"]["fingerprints"]
    key_env = {"KEYFORM_FINGERPRINT_KEY": KEY}

    # salted -> keyed
    project.manifest.write_text(_project(tmp_path, emulator.url, keyed=True).manifest.read_text())
    refused = project.run("plan", env=key_env)
    assert refused.exit_code == 1 and "run `keyform state rekey`" in refused.stderr
    rekeyed = project.run("state", "rekey", "-f", str(project.manifest), env=key_env)
    assert rekeyed.exit_code == 0, rekeyed.output
    assert "2 fingerprint(s) now keyed" in rekeyed.stdout
    state = project.state()
    assert _brute_force(state) == set() and "fingerprint_key_check" in state
    assert project.run("plan", "--detailed-exitcode", env=key_env).exit_code == 0

    # keyed -> another key
    new_env = {"KEYFORM_FINGERPRINT_KEY": OTHER_KEY, "OLD_KEY": KEY}
    moved = project.run("state", "rekey", "-f", str(project.manifest), "--old-key-env", "OLD_KEY", env=new_env)
    assert moved.exit_code == 0, moved.output
    assert project.run("plan", "--detailed-exitcode", env={"KEYFORM_FINGERPRINT_KEY": OTHER_KEY}).exit_code == 0

    # keyed -> salted (the manifests drop the key; the old one is given once)
    project.manifest.write_text(_project(tmp_path, emulator.url, keyed=False).manifest.read_text())
    back = project.run("state", "rekey", "-f", str(project.manifest), "--old-key-env", "OLD_KEY",
                       env={"OLD_KEY": OTHER_KEY})
    assert back.exit_code == 0 and "2 fingerprint(s) now salted" in back.stdout
    assert project.state()["keys"]["ana"]["fingerprints"] == salted_fps
    assert "fingerprint_key_check" not in project.state()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_rekey_keeps_a_change_made_before_it_and_refuses_an_unreadable_input(tmp_path: Path, emulator: Emulator) -> None:
    project = _project(tmp_path, emulator.url, keyed=False)
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.manifest.write_text(_project(tmp_path, emulator.url, keyed=True).manifest.read_text())
    env = {"KEYFORM_FINGERPRINT_KEY": KEY}
    before = project.state_path.read_bytes()
    unreadable = project.run("state", "rekey", "-f", str(project.manifest), env={**env, "EMAIL": ""})
    assert unreadable.exit_code == 1 and "EMAIL is set but empty" in unreadable.stderr and "nothing was changed" in unreadable.stderr
    assert project.state_path.read_bytes() == before
    changed = project.run("state", "rekey", "-f", str(project.manifest), env={**env, "AV": "hunter3"})
    assert changed.exit_code == 0 and "ana.auth_value changed since the last apply" in changed.stdout
    plan = project.run("plan", "--detailed-exitcode", env={**env, "AV": "hunter3"})
    assert plan.exit_code == 2 and "auth_value" in plan.stdout
    assert "hunter" not in project.state_path.read_text()


def test_rekey_without_a_state_says_so(tmp_path: Path, emulator: Emulator) -> None:
    project = _project(tmp_path, emulator.url, keyed=True)
    result = project.run("state", "rekey", "-f", str(project.manifest), env={"KEYFORM_FINGERPRINT_KEY": KEY})
    assert result.exit_code == 1 and "nothing to rekey" in result.stderr


def test_rekey_refuses_an_old_key_for_a_salted_state_and_a_name_that_is_no_env_name(
        tmp_path: Path, emulator: Emulator) -> None:
    """Found by review 95: on a salted state `--old-key-env NOPE_NOT_SET` was ignored (exit 0,
    "now salted", the state rewritten) while the user believed the state keyed; and the NAME was
    never checked (`$'ci\\e[31m-bot\\n'` was taken)."""
    project = _project(tmp_path, emulator.url, keyed=False)
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = project.state_path.read_bytes()
    ignored = project.run("state", "rekey", "-f", str(project.manifest), "--old-key-env", "NOPE_NOT_SET")
    assert ignored.exit_code == 1, ignored.output
    assert "the state's fingerprints are salted, not keyed: the old key (NOPE_NOT_SET) is not used" in ignored.stderr
    odd = project.run("state", "rekey", "-f", str(project.manifest), "--old-key-env", "ci\x1b[31m-bot\n")
    assert odd.exit_code == 1 and "is not an environment variable name" in odd.stderr, odd.output
    assert "\x1b" not in odd.stderr and odd.stderr.count("\n") == 1
    assert project.state_path.read_bytes() == before


def test_a_rekey_that_changes_nothing_writes_nothing(tmp_path: Path, emulator: Emulator) -> None:
    """Found by review 96: `state rekey` on a state already in the manifests' mode wrote a new
    serial ("0 fingerprint(s) now salted"), making every saved plan stale for nothing."""
    project = _project(tmp_path, emulator.url, keyed=False)
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = project.state_path.read_bytes()
    res = project.run("state", "rekey", "-f", str(project.manifest))
    assert res.exit_code == 0, res.output
    assert res.stdout == "The state's fingerprints are salted as the manifests say already; nothing was written.\n"
    assert project.state_path.read_bytes() == before
    key_env = {"KEYFORM_FINGERPRINT_KEY": KEY}
    project.manifest.write_text(_project(tmp_path, emulator.url, keyed=True).manifest.read_text())
    assert project.run("state", "rekey", "-f", str(project.manifest), env=key_env).exit_code == 0
    keyed = project.state_path.read_bytes()
    again = project.run("state", "rekey", "-f", str(project.manifest), env=key_env)
    assert again.exit_code == 0 and "keyed as the manifests say already" in again.stdout, again.output
    assert project.state_path.read_bytes() == keyed
