"""Found by an adversarial pass (stop 36): `keyform destroy` revokes every deposed key "grace or not" (planner: "destroy leaves nothing
live"), except when the key's rotation has `unused_for`: the usage-aware branch runs first and
`continue`s, so the old half of a rotation survives the destroy, live, still in the state."""

from __future__ import annotations

from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


def test_destroy_revokes_a_deposed_key_under_unused_for(tmp_path: Path, emulator: Emulator,
                                                       emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  rotation: {grace: 7d, unused_for: 1h}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("k")
    assert project.run("apply", "--replace", "k", "--auto-approve").exit_code == 0
    new = project.remote_id("k")
    res = project.run("destroy", "--auto-approve")
    assert res.exit_code == 0, res.tail()
    revoked = {k["id"]: k["revoked"] for k in emu_control.questra_keys(ORG)}
    assert revoked[new]
    assert revoked[old], "destroy left the deposed key of the rotation live"
    assert project.state()["deposed"] == []
