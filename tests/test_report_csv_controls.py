"""Found by an adversarial pass (stop 36): `keyform report --format csv` writes a remote key's name as the API listed it: ESC, BEL, an
OSC title sequence and a bidi override reach stdout raw (every other report format blanks or
escapes them: render/safe.py). A hostile or compromised API drives the terminal of whoever runs
`keyform report --format csv` (or `cat`s the file)."""

from __future__ import annotations

import re
from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_report_csv_carries_no_terminal_control(tmp_path: Path, emulator: Emulator,
                                                emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url, env={"AV": "an-auth-value-0123"})
    project.manifest.write_text(
        f"version: 1\nproviders:\n  tq: {{type: textql, base_url: '{emulator.url}', token: {{env: TEXTQL_TOKEN}}}}\n"
        "keys:\n  t1: {provider: tq, description: t one, hosts: [a.example], auth_value: {env: AV}}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    emu_control.patch_textql(project.state()["keys"]["t1"]["remote_id"],
                             description="\x1b]0;pwned\x07\x1b[2J\x9b31m evil \u202etxt.exe")
    res = project.run("report", "-f", str(project.manifest), "--format", "csv")
    assert res.exit_code == 0, res.output
    assert "evil" in res.stdout
    assert not UNSAFE.search(res.stdout), repr(res.stdout)
