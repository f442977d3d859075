"""examples/run.sh (issue 15 item 17): the port comes from KEYFORM_EMULATOR_PORT and the manifests
follow it (they read the emulator's URL from the environment); when the emulator cannot start the
script stops before planning anything and keeps emulator.log, which says why."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from keyform.emulator import Emulator
from tests.test_readme import fresh_copy


def run_example(clone: Path, port: int | str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUESTRA_", "TEXTQL_", "KEYFORM_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1",
               KEYFORM_EMULATOR_PORT=str(port))
    return subprocess.run(["bash", "examples/run.sh", "examples/quickstart"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_sh_on_another_port_works(tmp_path: Path) -> None:
    clone = fresh_copy(tmp_path / "clone")
    port = free_port()
    res = run_example(clone, port)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"==> emulator at http://127.0.0.1:{port}" in res.stdout
    assert res.stdout.rstrip().endswith("No changes. Your keys match the manifests.")
    assert not (clone / "examples" / "quickstart" / "emulator.log").exists()  # removed on success


def test_run_sh_fails_fast_and_keeps_the_log_when_the_port_is_taken(tmp_path: Path, emulator: Emulator) -> None:
    """Another server holds the port: the script must not plan against it."""
    clone = fresh_copy(tmp_path / "clone")
    port = emulator.url.rsplit(":", 1)[1]
    res = run_example(clone, port)
    assert res.returncode != 0
    assert "==> keyform plan" not in res.stdout
    assert f"the emulator did not start on port {port}" in res.stderr
    assert "address already in use" in res.stderr
    log = clone / "examples" / "quickstart" / "emulator.log"
    assert log.exists() and "address already in use" in log.read_text()
    assert not (clone / "examples" / "quickstart" / "keyform.state.json").exists()
