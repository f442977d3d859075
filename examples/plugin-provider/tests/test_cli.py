"""End to end through the keyform CLI: validate, plan, apply, a no-change plan, an update in place,
and file:line errors from the acme type's own options schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keyform_acme.emulator import AcmeEmulator

from conftest import TOKEN


def keyform(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACME_TOKEN": TOKEN, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "keyform", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def manifest(tmp_path: Path, url: str, scopes: str = "[read]", project: str = "billing") -> None:
    (tmp_path / "keyform.yaml").write_text(
        "version: 1\n"
        "providers:\n"
        f"  acme-prod: {{type: acme, base_url: '{url}', token: {{env: ACME_TOKEN}}, project: {project}}}\n"
        "sinks:\n"
        "  vault: {type: acme-vault, dir: .acme-vault}\n"
        "keys:\n"
        f"  ci-bot: {{provider: acme-prod, scopes: {scopes}, sink: vault}}\n")


def test_plan_apply_update_with_the_plugin(tmp_path: Path, acme: AcmeEmulator) -> None:
    manifest(tmp_path, acme.url)
    listed = keyform(tmp_path, "providers")
    assert listed.returncode == 0 and "acme" in listed.stdout and "keyform-acme 0.1.0" in listed.stdout
    assert keyform(tmp_path, "validate").returncode == 0
    plan = keyform(tmp_path, "plan", "--detailed-exitcode")
    assert plan.returncode == 2 and '+ key "ci-bot" (acme-prod, acme)' in plan.stdout, plan.stdout + plan.stderr
    applied = keyform(tmp_path, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    [key] = acme.keys()
    assert key["name"] == "ci-bot" and key["scopes"] == ["read"]
    assert (tmp_path / ".acme-vault" / "CI_BOT.secret").read_text() == key["secret"]
    assert key["secret"] not in (tmp_path / "keyform.state.json").read_text()
    assert keyform(tmp_path, "plan", "--detailed-exitcode").returncode == 0
    manifest(tmp_path, acme.url, scopes="[read, write]")
    update = keyform(tmp_path, "apply", "--auto-approve")
    assert update.returncode == 0 and "0 created, 1 updated, 0 replaced" in update.stdout, update.stdout
    [after] = acme.keys()
    assert after["id"] == key["id"] and after["scopes"] == ["read", "write"]


def test_the_types_own_schema_reports_file_line(tmp_path: Path, acme: AcmeEmulator) -> None:
    manifest(tmp_path, acme.url, scopes="[read, launch]", project="Not_Valid")
    res = keyform(tmp_path, "validate")
    assert res.returncode == 1
    assert "keyform.yaml:3: providers.acme-prod.project: 'Not_Valid' is not a valid Acme project" in res.stderr
    assert "keyform.yaml:7: keys.ci-bot.scopes[1]: 'launch' is not one of: read, write, admin" in res.stderr
    assert "Traceback" not in res.stderr
