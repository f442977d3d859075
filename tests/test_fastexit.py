"""The `keyform` process ends without the interpreter's teardown only when that skips nothing but
freeing memory (`keyform.fastexit`): its output is whole, its exit code the command's, every `atexit`
callback has run; and it exits the normal way while a non-daemon thread runs, under a tracer or
profiler, when stdout cannot be flushed, with `KEYFORM_NO_FAST_EXIT=1`, and in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.project import ORG, TOKENS
from keyform import fastexit
from keyform.emulator import Emulator


def _run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter with `keyform.fastexit` enabled, as `cli.console` does."""
    script = "from keyform import fastexit\nfastexit.enable()\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})


def test_it_runs_every_atexit_callback_flushes_the_output_and_keeps_the_code(tmp_path: Path) -> None:
    res = _run("""
        import atexit, logging, sys
        logging.basicConfig(filename="log.txt")
        logging.getLogger().warning("logged")  # buffered by the handler until logging's atexit flush
        atexit.register(lambda: open("atexit.txt", "w").write("ran"))
        sys.stdout.write("x" * 200_000)  # more than a pipe holds: written out before the exit
        fastexit.exit_now(3)
        print("not reached")
        """, tmp_path)
    assert res.returncode == 3, res.stderr
    assert res.stdout == "x" * 200_000
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert "logged" in (tmp_path / "log.txt").read_text()


@pytest.mark.parametrize("code", ["None", "0", "2", "True"])
def test_the_exit_code_is_the_commands(tmp_path: Path, code: str) -> None:
    res = _run(f"fastexit.exit_now({code})\nprint('not reached')", tmp_path)
    assert res.returncode == {"None": 0, "True": 1}.get(code, int(code) if code.isdigit() else 0)
    assert "not reached" not in res.stdout


def test_a_message_as_the_code_exits_the_normal_way(tmp_path: Path) -> None:
    res = _run("fastexit.exit_now('a message')\nprint('returned')", tmp_path)
    assert res.stdout.strip() == "returned" and res.returncode == 0


def test_a_running_non_daemon_thread_is_waited_for(tmp_path: Path) -> None:
    """An apply's worker finishing a write: the interpreter joins it at a normal exit."""
    res = _run("""
        import threading, time
        go = threading.Event()
        def work():
            go.wait(30)
            time.sleep(0.2)
            open("written.txt", "w").write("done")
        threading.Thread(target=work).start()
        fastexit.exit_now(0)
        print("returned")
        go.set()
        """, tmp_path)
    assert res.stdout.strip() == "returned" and res.returncode == 0
    assert (tmp_path / "written.txt").read_text() == "done"


def test_a_daemon_thread_does_not_hold_it(tmp_path: Path) -> None:
    res = _run("""
        import threading
        threading.Thread(target=threading.Event().wait, daemon=True).start()
        fastexit.exit_now(4)
        print("returned")
        """, tmp_path)
    assert res.returncode == 4 and "returned" not in res.stdout


@pytest.mark.parametrize("hook", ["sys.settrace(lambda *a: None)", "sys.setprofile(lambda *a: None)"])
def test_a_tracer_or_profiler_gets_a_normal_exit(tmp_path: Path, hook: str) -> None:
    """coverage and cProfile write their results after the program returns."""
    res = _run(f"import sys\n{hook}\nfastexit.exit_now(0)\nprint('returned')", tmp_path)
    assert res.stdout.strip() == "returned"


def test_output_that_cannot_be_flushed_gets_a_normal_exit(tmp_path: Path) -> None:
    res = _run("""
        import io, sys
        class Closed(io.StringIO):
            def flush(self):
                raise BrokenPipeError(32, "Broken pipe")
        real, sys.stdout = sys.stdout, Closed()
        fastexit.exit_now(0)
        sys.stdout = real
        print("returned")
        """, tmp_path)
    assert res.stdout.strip() == "returned"


def test_keyform_no_fast_exit_turns_it_off(tmp_path: Path) -> None:
    res = _run("fastexit.keep('x')\nfastexit.exit_now(0)\nprint('returned', fastexit._kept)", tmp_path,
               KEYFORM_NO_FAST_EXIT="1")
    assert res.stdout.strip() == "returned []"


def test_in_process_nothing_is_kept_and_nothing_exits() -> None:
    assert not fastexit._enabled  # (only cli.console enables it)
    fastexit.keep(object())
    fastexit.exit_now(0)  # returns
    assert fastexit._kept == []


def test_a_plan_run_as_a_user_runs_it_prints_all_of_its_json_and_exits_2(tmp_path: Path, emulator: Emulator) -> None:
    """The plan's whole JSON (~300 creates) reaches a pipe, and --detailed-exitcode's 2 is the code."""
    pad = "d" * 100
    keys = "".join(f"  key-{i:03d}: {{provider: qp, name: 'key {i} {pad}'}}\n"
                   for i in range(300))
    (tmp_path / "keyform.yaml").write_text(
        "version: 1\nproviders:\n"
        f"  qp: {{type: questra, base_url: '{emulator.url}', token: {{env: QUESTRA_TOKEN}}, org_id: {ORG}}}\n"
        "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\ndefaults: {sink: env}\nkeys:\n" + keys)
    env = {**os.environ, **TOKENS, "NO_COLOR": "1"}
    env.pop("KEYFORM_NO_FAST_EXIT", None)
    res = subprocess.run([sys.executable, "-m", "keyform", "plan", "--format", "json", "--detailed-exitcode"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    assert len([c for c in doc["changes"] if c["action"] == "create"]) == 300


def test_an_interpreter_without_atexits_runner_gets_a_normal_exit(tmp_path: Path) -> None:
    res = _run("import atexit\ndel atexit._run_exitfuncs\nfastexit.exit_now(0)\nprint('returned')", tmp_path)
    assert res.stdout.strip() == "returned" and res.returncode == 0
