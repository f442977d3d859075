"""A Ctrl-C while a plug-in's call hangs, in `plan` (its listing): keyform said `Interrupted.` and
then hung, for ever, joining at exit the thread the plug-in's own executor ran the stuck request in
(the plug-in's call was not yet abandoned, so keyform exited as usual); a second Ctrl-C ended it
with a traceback. A plug-in call still running, abandoned or not, now makes keyform leave at once,
as after a second Ctrl-C. Real processes: the plug-in is a distribution on PYTHONPATH (the one of
tests/test_plugin_call_never_returns.py), its request made to a socket that never answers."""

from __future__ import annotations

import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from tests import fakedist
from tests.test_plugin_call_never_returns import PLUGIN


def test_a_ctrl_c_while_a_plugin_listing_hangs_ends_plan_at_once(tmp_path: Path, emulator: Emulator) -> None:
    env = fakedist.install(tmp_path / "site", "kf-stuck", "1.0", "[keyform.providers]\nstuck-q = kf_stuck:STUCK\n",
                           "kf_stuck", PLUGIN)
    project = Project(tmp_path / "p", emulator.url)
    project._one_provider(textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: stuck-q
          base_url: {emulator.url}
          token: {{env: QUESTRA_TOKEN}}
          org: {ORG}
          deadline: 60s
        """), "  "), "k0:\n  provider: pp\n  name: k0\n")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(20)
        host, port = listener.getsockname()
        proc = project.spawn("plan", env={**env, "KF_STUCK": "list", "KF_BLACKHOLE": f"{host}:{port}"})
        try:
            conn, _ = listener.accept()  # the listing's request is on its way: it is never answered
            with conn:
                time.sleep(0.2)
                proc.send_signal(signal.SIGINT)
                sent = time.monotonic()
                try:
                    out, err = proc.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out, err = proc.communicate()
                    raise AssertionError(f"keyform still ran 10 s after the Ctrl-C: {err[-2000:]}") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert time.monotonic() - sent < 10
    assert proc.returncode == 1, (out, err)
    assert "Interrupted." in err and "Traceback" not in err, err
    again = project.run_process("plan", "--detailed-exitcode", env=env, timeout=30)  # its lock was released
    assert again.exit_code == 2, again.tail()
