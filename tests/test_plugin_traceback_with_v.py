"""Found by an adversarial review (stop 37): docs/providers.md and foreign.py say `keyform -v` logs the traceback of a plug-in's own
exception (`failure()` logs it with exc_info). The `keyform` log handler (clikit._StderrHandler)
writes `record.getMessage()` only, so the plug-in's traceback is never shown; the "Traceback" the
existing test finds is run_safely's, of the final "apply failed" KeyformError (`from None`)."""

from __future__ import annotations

from pathlib import Path

from keyform.emulator import Emulator
from tests.test_plugin_rate_and_failures import CANARY, _project, plugin_env  # noqa: F401


def test_v_shows_where_in_the_plugin_it_failed(tmp_path: Path, emulator: Emulator,
                                              plugin_env: dict[str, str]) -> None:  # noqa: F811
    project = _project(tmp_path, emulator.url, "faulty", 1)
    verbose = project.run_process("-v", "apply", "--auto-approve", env=plugin_env)
    assert CANARY not in verbose.output
    assert "kf_test_plugins" in verbose.output and "in create" in verbose.output, verbose.output[-3000:]
