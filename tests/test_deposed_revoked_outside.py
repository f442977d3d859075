"""A deposed key (the old half of a rotation, kept through its grace) revoked outside keyform before
its grace ends (left open in stop 36): plans kept saying it "will be revoked after ..." until the
grace ended, for a key that no longer works. Without a usage rule it now goes as it does under
`unused_for`: the plan revokes it at once ("already revoked remotely", a no-op remotely) and the
apply drops the record. Real HTTP on 127.0.0.1 (the emulator)."""

from __future__ import annotations

from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


def test_a_deposed_key_revoked_outside_keyform_is_dropped_at_once(tmp_path: Path, emulator: Emulator,
                                                                  emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  rotation: {grace: 30d}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("k")
    assert project.run("apply", "--replace", "k", "--auto-approve").exit_code == 0
    assert [d["remote_id"] for d in project.state()["deposed"]] == [old]
    emu_control.revoke_questra(ORG, old)  # someone revoked it by hand
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2 and "already revoked remotely" in plan.output, plan.output
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.state()["deposed"] == []
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    live = [k for k in emu_control.questra_keys(ORG) if not k["revoked"]]
    assert [k["id"] for k in live] == [project.remote_id("k")]
