"""An old source key is not revoked while a key still uses its secret.

Found by a review: `src` (Questra, grace 0s) feeds `cons` (TextQL, `auth_value: {secret_of: src}`).
`apply --replace src` while `cons`'s re-issue failed (a token that may only list, an outage, a
quota), or `apply --replace src --target src`, revoked the old `src` key in the same apply: `cons`
was left holding a revoked secret. The old key now stays deposed while the state records a key
fed by it; the plan keeps it, and it is revoked by the apply that re-feeds the consumer. Against
the emulator on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.project import ORG, Project
from keyform.emulator.client import EmulatorControl

READ_ONLY = "ro-rotation-token-91f2"

MANIFEST = """\
version: 1
providers:
  qp: {{type: questra, base_url: "{url}", token: {{env: QUESTRA_TOKEN}}, org_id: {org}}}
  tq: {{type: textql, base_url: "{url}", token: {{env: TEXTQL_TOKEN}}}}
sinks:
  env: {{type: dotenv, path: .secrets/dev.env}}
defaults: {{sink: env}}
keys:
  src: {{provider: qp, name: src, rotation: {{grace: 0s}}}}
  cons: {{provider: tq, description: consumer, hosts: [api.questra.ai], api_provider: questra, auth_type: token,
          auth_value: {{secret_of: src}}}}
"""


def _live_src(control: EmulatorControl) -> set[str]:
    return {k["id"] for k in control.questra_keys(ORG) if not k["revoked"]}


def _fed(control: EmulatorControl) -> str:
    [cons] = control.textql_keys()
    return str(cons["authValue"])


def _secret_of(control: EmulatorControl, key_id: str) -> str:
    return str(next(k["secret"] for k in control.questra_keys(ORG) if k["id"] == key_id))


def test_a_source_is_not_revoked_while_a_consumer_whose_reissue_failed_uses_it(
        tmp_path: Path, make_emulator: Any) -> None:
    emu = make_emulator(read_only_tokens=frozenset({READ_ONLY}))
    project = Project(tmp_path, emu.url)
    project.write(MANIFEST.format(url=emu.url, org=ORG))
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("src")
    with EmulatorControl(emu.url) as control:
        res = project.run("apply", "--replace", "src", "--auto-approve", env={"TEXTQL_TOKEN": READ_ONLY})
        assert res.exit_code == 1, res.output
        assert (f"src (deposed {old}) is kept: key 'cons' still uses its secret (a re-issue that failed or was not "
                "applied); it is revoked once no key does") in res.output, res.output
        assert old in _live_src(control) and _fed(control) == _secret_of(control, old)
        # the plan keeps it while cons is fed by it, and re-feeds cons; that apply revokes it
        planned = project.run("plan")
        assert "cons must be replaced" in planned.stdout or "cons will be updated" in planned.stdout, planned.output
        res = project.run("apply", "--auto-approve")
        assert res.exit_code == 0, res.output
        new = project.remote_id("src")
        assert _live_src(control) == {new} and _fed(control) == _secret_of(control, new)
        assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_targeted_rotation_of_a_source_keeps_the_old_key_for_the_consumer_left_out(
        tmp_path: Path, make_emulator: Any) -> None:
    emu = make_emulator()
    project = Project(tmp_path, emu.url)
    project.write(MANIFEST.format(url=emu.url, org=ORG))
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("src")
    with EmulatorControl(emu.url) as control:
        res = project.run("apply", "--replace", "src", "--target", "src", "--auto-approve")
        assert res.exit_code == 1 and f"src (deposed {old}) is kept: key 'cons'" in res.output, res.output
        assert old in _live_src(control) and _fed(control) == _secret_of(control, old)
        kept = project.run("plan", "--target", "src")  # cons left out again: the old key is kept
        assert f"src (deposed {old}) is kept: key 'cons' still uses its secret" in kept.stdout, kept.output
        assert "will be revoked" not in kept.stdout
        # the next plan re-feeds cons, and revokes the old key after it (the applier checks again)
        planned = project.run("plan")
        assert "cons must be replaced" in planned.stdout and f"src (deposed {old}) will be revoked" in planned.stdout
        assert project.run("apply", "--auto-approve").exit_code == 0
        assert _live_src(control) == {project.remote_id("src")}
