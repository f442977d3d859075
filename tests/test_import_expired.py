"""`keyform import` of an expired key (left open in stop 36): it was adopted, and the next apply
replaced it at once, a new key made under the imported address, which is not what importing
asked for. It is refused like a revoked key, with one line saying what to do. Real HTTP on
127.0.0.1 (the emulator)."""

from __future__ import annotations

from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


def test_import_refuses_an_expired_key_and_changes_nothing(tmp_path: Path, emulator: Emulator,
                                                           emu_control: EmulatorControl) -> None:
    [key] = emu_control.bulk_questra(ORG, 1, prefix="old-")
    emu_control.expire_questra(ORG, key["id"])
    project = Project(tmp_path, emulator.url)
    project.questra("old:\n  provider: qp\n  name: old-0\n")
    res = project.run("import", "old", key["id"])
    assert res.exit_code == 1, res.output
    assert f"import: {key['id']} expired" in res.output and "apply to create old" in res.output, res.output
    assert "Traceback" not in res.output
    assert not project.state_path.exists() or project.state()["keys"] == {}
