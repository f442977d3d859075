"""Found by an adversarial pass (stop 36): since 1e514d6 `keyform import` compares taken ids only within the key's provider instance.
Two instances that reach the same account (same type, base_url and org: a second token with other
scopes, an instance being renamed, a copy-pasted block) then let one remote key be managed by two
addresses: the next `--replace` (or delete) of the first revokes the key the second one manages.
Before the change the id alone was refused ("already managed as k"). Ids are the account's, not the
instance's: compare them per (type, base_url, org/account), or at least refuse within one type
and base_url."""

from __future__ import annotations

from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator


def test_import_refuses_a_key_managed_through_another_instance_of_the_same_org(tmp_path: Path,
                                                                             emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.manifest.write_text(
        "version: 1\nproviders:\n"
        f"  qp: {{type: questra, base_url: '{emulator.url}', token: {{env: QUESTRA_TOKEN}}, org_id: {ORG}}}\n"
        f"  qp-admin: {{type: questra, base_url: '{emulator.url}', token: {{env: QUESTRA_TOKEN}}, org_id: {ORG}}}\n"
        "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\ndefaults: {sink: env}\n"
        "keys:\n  k: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0, project.run("plan").output
    key_id = project.remote_id("k")
    project.manifest.write_text(project.manifest.read_text() + "  k2: {provider: qp-admin, name: k}\n")
    res = project.run("import", "k2", key_id)
    assert res.exit_code == 1, res.output  # the same key of the same org: already managed as k
    assert "k" in res.stderr
