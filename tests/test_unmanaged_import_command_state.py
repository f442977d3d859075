"""Found by an adversarial pass (stop 36): `report --unmanaged --state FILE` judges "unmanaged"
against FILE, but each row's suggested `keyform import ...` repeated only the `-f` arguments: run as printed, it imports into the manifests'
own state backend, not into FILE (where it may already be tracked, or where the user meant it)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


def test_import_command_repeats_the_state_option(tmp_path: Path, emulator: Emulator,
                                                 emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    other = tmp_path / "other.state.json"  # another state, that does not track k
    doc = project.state()
    doc["keys"] = {}
    other.write_text(json.dumps(doc))
    res = project.run("report", "-f", str(project.manifest), "--unmanaged", "--state", str(other),
                      "--format", "json")
    assert res.exit_code == 0, res.output
    [row] = json.loads(res.stdout)["unmanaged"]["instances"]["qp"]
    assert "--state" in row["import_command"] and str(other) in row["import_command"], row["import_command"]
