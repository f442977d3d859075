"""Found by an adversarial pass (stop 36): `keyform providers` printed a plug-in's entry-point NAME raw
(its origin, description and problem went through _clean, the name did not). An installed package (never imported: listing only reads its
metadata) can thus put terminal escapes (title change, screen clear, OSC 8 links) into the output."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_plugin_name_with_escapes_is_shown_as_text(tmp_path: Path) -> None:
    info = tmp_path / "ansi_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ansi-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[keyform.providers]\nac\x1b]0;pwned\x07\x1b[2Jme = nomod:X\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-m", "keyform", "providers"], env=env, capture_output=True, text=True)
    assert "\x1b" not in out.stdout + out.stderr, repr(out.stdout)
