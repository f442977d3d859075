"""Found by an adversarial pass (stop 36): `keyform import` adopts the remote id of a DEPOSED key (the old half of a rotation that the
state still holds for revocation). The next apply revokes the deposed record, which is now the key
the new address manages: the freshly imported key is revoked by keyform itself."""

from __future__ import annotations

import time
from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


def test_import_refuses_the_id_of_a_deposed_key(tmp_path: Path, emulator: Emulator,
                                                emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  rotation: {grace: 1s}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("k")
    assert project.run("apply", "--replace", "k", "--auto-approve").exit_code == 0
    assert [d["remote_id"] for d in project.state()["deposed"]] == [old]

    project.questra("k:\n  provider: qp\n  rotation: {grace: 1s}\nk2:\n  provider: qp\n  name: k\n")
    imported = project.run("import", "k2", old)
    time.sleep(1.5)
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.tail()
    state = project.state()
    revoked = {k["id"]: k["revoked"] for k in emu_control.questra_keys(ORG)}
    # Either import refuses an id the state tracks as deposed, or it takes the key out of the
    # deposed list; it must never leave keyform revoking the key it was just told to manage.
    if imported.exit_code == 0 and state["keys"].get("k2", {}).get("remote_id") == old:
        assert not revoked[old], "keyform revoked the key it had just imported as k2"
    else:
        assert imported.exit_code == 1 and "deposed" in imported.output, imported.tail()
