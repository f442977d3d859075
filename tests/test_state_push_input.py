"""Where `keyform state push` reads the state it pushes.

Found by review 96: `state push /dev/stdin < pulled.json` was refused with the message meant for a
state file that is a link ("keyform replaces the state by renaming a new file over it … name the
real file (state.path or --state)"): the pushed file was read as the workspace's own state, which
must never be a link. It is only read, so a link, a pipe (`<(keyform state pull)`) or stdin (`-`,
as in `terraform state push -`) is taken. Real `keyform` processes."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import threading
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator


@pytest.fixture
def pulled(tmp_path: Path, emulator: Emulator) -> tuple[Project, str]:
    """A project with one key applied, its state pulled, and its state file then removed."""
    project = Project(tmp_path, emulator.url)
    project.questra("k0: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    res = project.run("state", "pull", "-f", str(project.manifest))
    assert res.exit_code == 0, res.output
    project.state_path.unlink()
    return project, res.stdout


def _push(project: Project, file: str, stdin: int | None = None, text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(project.argv("state", "push", file, "-f", str(project.manifest)), cwd=project.root, env=project.process_env(),
                          input=text, stdin=stdin if text is None else None, capture_output=True, text=True,
                          timeout=60, check=False)


def _pushed_back(project: Project, doc: str) -> bool:
    state = json.loads(project.state_path.read_text())
    return bool(state["lineage"] == json.loads(doc)["lineage"] and "k0" in state["keys"])


@pytest.mark.parametrize("file", ["-", "/dev/stdin"])
def test_stdin(pulled: tuple[Project, str], file: str) -> None:
    project, doc = pulled
    res = _push(project, file, text=doc)
    # old code: "-: no such state file"; "/dev/stdin: the state file is a symbolic link; …"
    assert res.returncode == 0, res.stderr
    shown = "the state from stdin" if file == "-" else file
    assert res.stdout.startswith(f"Pushed {shown} to "), res.stdout
    assert _pushed_back(project, doc)


def test_a_link_to_a_pulled_state(pulled: tuple[Project, str], tmp_path: Path) -> None:
    project, doc = pulled
    (tmp_path / "pulled.json").write_text(doc)
    (tmp_path / "link.json").symlink_to("pulled.json")
    res = _push(project, str(tmp_path / "link.json"), stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert _pushed_back(project, doc)


def test_a_pipe(pulled: tuple[Project, str], tmp_path: Path) -> None:
    project, doc = pulled
    fifo = tmp_path / "state.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w") as fh:
            fh.write(doc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    res = _push(project, str(fifo), stdin=subprocess.DEVNULL)
    writer.join(5)
    assert res.returncode == 0, res.stderr
    assert _pushed_back(project, doc)


def test_bad_input_on_stdin_is_one_message_and_nothing_is_written(pulled: tuple[Project, str]) -> None:
    project, _ = pulled
    for text, expected in [("", "Error: -: empty; nothing was pushed"),
                           ("{not json", "Error: -: state file is not valid JSON")]:
        res = _push(project, "-", text=text)
        assert res.returncode == 1 and res.stderr.startswith(expected), res.stderr
        assert "Traceback" not in res.stderr and not project.state_path.exists()


def test_a_terminal_on_stdin_is_refused_at_once(pulled: tuple[Project, str]) -> None:
    project, _ = pulled
    leader, follower = pty.openpty()
    try:
        res = _push(project, "-", stdin=follower)
    finally:
        os.close(leader)
        os.close(follower)
    assert res.returncode == 1
    assert res.stderr.strip() == ("Error: -: is a terminal; pipe a state into it, e.g. `keyform state push - < "
                                  "keyform.state.json`"), res.stderr
    assert not project.state_path.exists()
