"""Found by an adversarial review (stop 37): a sink program that starts a long-lived agent (1Password's `op` starts `op daemon`, a
credential helper, an ssh/gpg-style agent) hands it the state lock's open file
(`keyform.inherited`: pass_fds, inherited across exec). After a `kill -9`ed apply, once the
sink program itself has finished (its write done), the agent still holds the flock: every later
command fails with "a program it started ... holds its lock", for as long as the agent lives,
and `keyform force-unlock ID --force` refuses too ("is gone, but another process on this host
holds its lock") -- the user has no way out but to find and kill the agent or delete the lock file
by hand. The message now names the processes that hold the lock, and force-unlock breaks a lock
whose keyform is gone (warning that a program it started still holds it)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from harness.emulator import EmulatorProcess
from harness.project import Project, wait_for


def _ended(pid: int) -> bool:
    """The process is gone, or a zombie (it holds no descriptor then)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_an_agent_started_by_a_sink_program_does_not_lock_the_state_for_good(tmp_path: Path,
                                                                            emulator_process: EmulatorProcess) -> None:
    store = tmp_path / "store"
    store.mkdir()
    pidfile = tmp_path / "agent.pid"
    # the sink program: writes, starts a detached agent (its own session, no stdio), then takes 2 s more
    script = tmp_path / "sink.sh"
    script.write_text(f'echo $$ > "{store}/.program"; cat > "{store}/$KEYFORM_SINK_NAME"; touch "{store}/.written"\n'
                      f'setsid sh -c \'echo $$ > "{pidfile}"; exec sleep 60\' </dev/null >/dev/null 2>&1 &\n'
                      'sleep 2\n')
    project = Project(tmp_path / "proj", emulator_process.url)
    project.exec_vault(f'sh, "{script}"', store)
    proc = project.spawn("apply", "--auto-approve")
    agent = None
    try:
        deadline = time.monotonic() + 30
        while not (store / ".written").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert (store / ".written").exists(), proc.communicate()
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)  # the OOM killer, a kill -9
        proc.communicate(timeout=30)
        program = int((store / ".program").read_text())
        assert wait_for(lambda: _ended(program), 30, interval=0.02)  # the sink program has finished (its sleep 2
        # too: it waits for it); only the agent lives on
        agent = int(pidfile.read_text())
        lock_id = json.loads(project.lock_path.read_text())["id"]
        plan = project.run_process("plan")
        assert plan.exit_code == 1 and f"pid {agent}: sleep" in plan.output, plan.tail(600)
        assert f"keyform force-unlock {lock_id}" in plan.output
        forced = project.run_process("force-unlock", lock_id, "--force")
        assert forced.exit_code == 0 and "still holds its lock" in forced.output, forced.tail(400)
        after = project.run_process("plan", "--detailed-exitcode")
        assert after.exit_code in (0, 2), after.tail(400)
    finally:
        if proc.poll() is None:
            proc.kill()
        if agent is not None:
            os.kill(agent, signal.SIGKILL)
