"""Issue 13, defects 4-6: sink files are never written or read through a planted symlink; two
processes writing one sink file take turns (a cross-process lock); a writer killed mid-write leaves
no stale copy of the secrets behind once the next write has run."""

from __future__ import annotations

import logging
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import SinkError
from keyform.sinks import Sink
from keyform.sinks.dotenv import DotenvSink, parse
from keyform.sinks.file import FileSink
from keyform.sinks.jsonfile import JsonSink
from keyform.sinks.k8s import K8sSecretSink

SECRET = "sk_live_hardening_0123456789"
BASHRC = "export PATH=$HOME/bin:$PATH\nalias ll='ls -l'\n"
ONE_FILE: dict[str, Callable[[Path], Sink]] = {
    "dotenv": lambda p: DotenvSink(p / "secrets" / "dev.env"),
    "json": lambda p: JsonSink(p / "secrets" / "dev.env"),
    "k8s-secret": lambda p: K8sSecretSink(p / "secrets" / "dev.env", "keys"),
}


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text(BASHRC)
    (home / ".bashrc").chmod(0o644)
    return home / ".bashrc"


# ------------------------------------------------------------------------------------ 4. symlinks


@pytest.mark.parametrize("kind", list(ONE_FILE))
def test_a_symlink_planted_at_a_one_file_sink_is_refused_and_its_target_untouched(tmp_path: Path, kind: str) -> None:
    bashrc = _home(tmp_path)
    (tmp_path / "secrets").mkdir(mode=0o700)
    link = tmp_path / "secrets" / "dev.env"
    link.symlink_to(bashrc)
    sink = ONE_FILE[kind](tmp_path)
    attempts: list[Callable[[], object]] = [lambda: sink.write("ci-bot", "A", SECRET), lambda: sink.read("A"),
                                             lambda: sink.remove("A")]
    for attempt in attempts:
        with pytest.raises(SinkError, match="is a symbolic link") as info:
            attempt()
        assert str(link) in str(info.value) and SECRET not in str(info.value)
    assert bashrc.read_text() == BASHRC and stat.S_IMODE(bashrc.stat().st_mode) == 0o644
    assert link.is_symlink()


def test_a_symlink_planted_at_a_file_sink_entry_is_refused(tmp_path: Path) -> None:
    bashrc = _home(tmp_path)
    sink = FileSink(tmp_path / "keys")
    sink.write("a", "other", "x")
    (tmp_path / "keys" / "A").symlink_to(bashrc)
    with pytest.raises(SinkError, match="is a symbolic link"):
        sink.write("ci-bot", "A", SECRET)
    with pytest.raises(SinkError, match="is a symbolic link"):
        sink.read("A")
    assert bashrc.read_text() == BASHRC


def test_a_file_sink_whose_dir_is_a_symlink_is_refused_but_a_linked_parent_is_not(tmp_path: Path) -> None:
    """`dir` is the file sink's path, as a dotenv `path` is: a link there sent every secret to its
    target. A link further up (`/run/secrets` under a linked `/run`) is the system's, and followed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "keys").symlink_to(elsewhere)
    for sink in (FileSink(tmp_path / "keys"), FileSink(f"{tmp_path / 'keys'}/")):
        attempts: list[Callable[[FileSink], object]] = [lambda s: s.write("ci-bot", "A", SECRET),
                                                         lambda s: s.read("A"), lambda s: s.remove("A")]
        for attempt in attempts:
            with pytest.raises(SinkError) as info:
                attempt(sink)
            assert f"{tmp_path / 'keys'} is a symbolic link; keyform does not write or read secrets through links " \
                   "(the file sink's dir;" in str(info.value)
            assert SECRET not in str(info.value)
    assert list(elsewhere.iterdir()) == []
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    FileSink(tmp_path / "linked" / "keys").write("ci-bot", "A", SECRET)
    assert (tmp_path / "real" / "keys" / "A").read_text() == SECRET


@pytest.mark.parametrize("kind", list(ONE_FILE))
def test_a_directory_keyform_created_then_swapped_for_a_symlink_is_refused(tmp_path: Path, kind: str) -> None:
    sink = ONE_FILE[kind](tmp_path)
    sink.write("a", "A", "first")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "secrets").rename(tmp_path / "moved")
    (tmp_path / "secrets").symlink_to(elsewhere)
    with pytest.raises(SinkError) as info:
        sink.write("b", "B", SECRET)
    assert f"{tmp_path / 'secrets'} is a symbolic link" in str(info.value)
    assert list(elsewhere.iterdir()) == []


def test_the_temp_file_is_never_opened_through_a_planted_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import secrets

    from keyform import fsio

    target = tmp_path / "victim"
    target.write_text("victim\n")
    # the temp name is planted as a link to the victim (here via a fixed "random" name):
    # O_EXCL|O_NOFOLLOW refuses it, and the victim is never written
    monkeypatch.setattr(secrets, "token_hex", lambda n=6: "0" * (2 * n))
    (tmp_path / ".f.000000000000.tmp").symlink_to(target)
    with pytest.raises(FileExistsError):
        fsio.atomic_write(tmp_path / "f", b"secret", follow_symlinks=False)
    assert target.read_text() == "victim\n"


def test_an_existing_group_or_world_writable_sink_directory_draws_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    sink = DotenvSink(loose / "dev.env")
    with caplog.at_level(logging.WARNING, logger="keyform.sinks"):
        sink.write("a", "A", "x")
        sink.write("b", "B", "y")
        DotenvSink(tmp_path / "tight" / "dev.env").write("c", "C", "z")  # created 0700 by keyform: no warning
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(loose) in warnings[0] and "group- or world-writable" in warnings[0]


def test_apply_into_a_sink_symlinked_to_bashrc_is_refused_before_the_key_is_created(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    bashrc = _home(tmp_path)
    project = Project(tmp_path / "proj", emulator.url)
    project.root.mkdir()
    project.questra("ci-bot: {provider: qp}\n")
    (project.root / ".secrets").mkdir(mode=0o700)
    (project.root / ".secrets" / "keys.env").symlink_to(bashrc)
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 1
    assert f"{project.root / '.secrets' / 'keys.env'}" in result.stderr or ".secrets/keys.env" in result.stderr
    assert "is a symbolic link" in result.stderr
    assert bashrc.read_text() == BASHRC and stat.S_IMODE(bashrc.stat().st_mode) == 0o644
    # refused at plan time (tests/test_sink_unreadable.py): no key created, none to revoke
    assert "org_e2e" not in emu_control.state()["questra"]["orgs"]


# ---------------------------------------------------------------------------- 5. across processes

WRITER = """
import sys
from keyform.sinks.dotenv import DotenvSink
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sink = DotenvSink(path)
for i in range(n):
    sink.write("k", f"{tag}_{i}", f"secret-{tag}-{i}")
"""


def test_two_processes_writing_one_dotenv_file_lose_no_entry(tmp_path: Path) -> None:
    path = tmp_path / "shared.env"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, "60"]) for tag in ("A", "B")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    values = {e.name: e.value for e in parse(path.read_text()) if e.name}
    assert values == {f"{t}_{i}": f"secret-{t}-{i}" for t in ("A", "B") for i in range(60)}


def _workspace(root: Path, url: str, prefix: str, n: int) -> Project:
    project = Project(root, url)
    root.mkdir(parents=True)
    keys = "".join(f"{prefix}-{i}: {{provider: qp, sink: {{use: env, as: {prefix.upper()}_{i}}}}}\n" for i in range(n))
    project.questra(keys)
    project.manifest.write_text(project.manifest.read_text().replace(".secrets/keys.env", "../shared.env"))
    return project


def test_two_workspaces_applying_into_one_shared_dotenv_file_keep_every_secret(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    """The issue's trial: two states sharing `path: ../shared.env`, applied at once, 50 keys each."""
    a = _workspace(tmp_path / "a", emulator.url, "a", 50)
    b = _workspace(tmp_path / "b", emulator.url, "b", 50)
    env = {**os.environ, **a.env}
    procs = [subprocess.Popen([sys.executable, "-m", "keyform", "apply", "--auto-approve", "--parallelism", "8"],
                              cwd=p.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for p in (a, b)]
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0, out
    issued = {k["name"]: k["secret"] for k in emu_control.state()["questra"]["orgs"]["org_e2e"] if not k["revoked"]}
    values = {e.name: e.value for e in parse((tmp_path / "shared.env").read_text()) if e.name}
    assert len(values) == 100
    assert values == {f"{w.upper()}_{i}": issued[f"{w}-{i}"] for w in ("a", "b") for i in range(50)}


# -------------------------------------------------------------------------- 6. stale temp files

KILLED = """
import os, sys, time
real = os.fsync
os.fsync = lambda fd: (time.sleep(0.05), real(fd))  # a slow disk: a kill lands mid-write
from keyform.sinks.dotenv import DotenvSink
sink = DotenvSink(sys.argv[1])
sink.write("k", "A", "secret-1")
print("writing", flush=True)  # started: the parent's kill now lands in this loop, not in the imports
i = 1
while True:
    i += 1
    sink.write("k", "A", f"secret-{i}")
"""


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_writers_killed_mid_write_leave_at_most_the_one_in_flight_and_the_next_write_cleans_it(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "dev.env"
    DotenvSink(path).write("k", "A", "secret-0")
    rng = random.Random(13)
    seen = []
    for _ in range(8):
        # the kill waits for the writer's first write, however slow a loaded machine makes its start
        proc = subprocess.Popen([sys.executable, "-c", KILLED, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
        time.sleep(rng.uniform(0.02, 0.12))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        seen.append(len(_temps(path.parent)))
    assert max(seen) <= 1 and sum(seen) >= 1, seen  # some kills did land mid-write; never two copies
    DotenvSink(path).write("k", "B", "after")
    assert _temps(path.parent) == []
    assert DotenvSink(path).read("B") == "after"


def test_stale_temp_files_of_this_sink_are_removed_and_nothing_else(tmp_path: Path) -> None:
    d = tmp_path / "secrets"
    d.mkdir()
    stale = [d / f".dev.env.{i:012x}.tmp" for i in range(13)]
    for s in stale:
        s.write_text("A=old-secret\n")
    keep = [d / ".other.env.0123456789ab.tmp", d / ".dev.env.notahexname.tmp", d / "dev.env.0123456789ab.tmp"]
    for k in keep:
        k.write_text("x")
    DotenvSink(d / "dev.env").write("k", "A", "new")
    assert sorted(p.name for p in d.iterdir()) == sorted([".dev.env.lock", "dev.env", *(k.name for k in keep)])
    assert FileSink.name_problem(".A.0123456789ab.tmp") is not None  # an entry could never be mistaken for one


def test_a_symlink_at_the_lock_file_is_refused(tmp_path: Path) -> None:
    bashrc = _home(tmp_path)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / ".dev.env.lock").symlink_to(bashrc)
    with pytest.raises(SinkError, match="lock"):
        DotenvSink(tmp_path / "secrets" / "dev.env").write("k", "A", SECRET)
    assert bashrc.read_text() == BASHRC


def test_the_writer_script_is_plain_python() -> None:
    compile(textwrap.dedent(WRITER), "writer", "exec")
    compile(textwrap.dedent(KILLED), "killed", "exec")


def test_a_file_sink_clears_stale_temp_files_at_its_first_write(tmp_path: Path) -> None:
    d = tmp_path / "keys"
    d.mkdir()
    (d / ".A.0123456789ab.tmp").write_text("old-secret")
    (d / "A").write_text("kept")
    FileSink(d).write("b", "B", "new")
    assert sorted(p.name for p in d.iterdir()) == [".keyform-writers.lock", "A", "B"]


SLOW_ENTRY = """
import os, sys, time
real = os.fsync
os.fsync = lambda fd: (time.sleep(1.0), real(fd))  # a slow disk: the temp file stays a while
from keyform.sinks.file import FileSink
FileSink(sys.argv[1]).write("other", "OTHER", "other-secret")
"""


def test_a_file_sink_s_first_write_never_sweeps_another_process_s_temp_file_in_flight(tmp_path: Path) -> None:
    """Two workspaces writing one `file` sink directory: the first write of a process swept every
    temp file there, including one another process was still writing, whose rename then failed
    (its key revoked). The sweep now waits for writes in flight (a shared/exclusive flock)."""
    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    other = subprocess.Popen([sys.executable, "-c", SLOW_ENTRY, str(d)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not any(p.name.startswith(".OTHER.") for p in d.iterdir()):  # its temp file exists: mid-write
        assert other.poll() is None and time.monotonic() < deadline, other.stderr.read() if other.stderr else ""
        time.sleep(0.005)
    FileSink(d).write("mine", "MINE", "my-secret")  # this process's first write there: sweeps first
    assert other.wait(timeout=60) == 0, other.stderr.read() if other.stderr else ""
    assert (d / "OTHER").read_text() == "other-secret" and (d / "MINE").read_text() == "my-secret"
    assert _temps(d) == []
    assert FileSink.name_problem(".keyform-writers.lock") is not None


def test_the_file_sink_s_lock_file_is_not_an_entry(tmp_path: Path) -> None:
    from keyform.errors import SourceLoc
    from keyform.model import SinkConfig
    from keyform.sinks.file import scan

    FileSink(tmp_path / "keys").write("a", "A", "x")
    assert (tmp_path / "keys" / ".keyform-writers.lock").exists()
    assert scan(SinkConfig("s", "file", {"dir": str(tmp_path / "keys")}, SourceLoc("m.yaml", 1))) == {"A": 0}


def test_a_link_or_another_user_s_file_at_the_file_sink_s_lock_never_blocks_a_write(tmp_path: Path) -> None:
    """The directory lock is best effort: a link planted at it is never followed (its target is
    untouched) and a lock file that cannot be opened does not make writes fail."""
    bashrc = _home(tmp_path)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / ".keyform-writers.lock").symlink_to(bashrc)
    FileSink(tmp_path / "keys").write("k", "A", SECRET)
    assert (tmp_path / "keys" / "A").read_text() == SECRET
    assert bashrc.read_text() == BASHRC and stat.S_IMODE(bashrc.stat().st_mode) == 0o644


def test_a_file_sink_s_first_write_does_not_wait_for_another_process_s_writes(tmp_path: Path) -> None:
    """While another process holds the directory's lock shared (a write in flight), this process's
    first write skips the sweep instead of waiting, and other sinks of this process are never held
    up by it."""
    import fcntl

    d = tmp_path / "keys"
    d.mkdir(mode=0o700)
    stale = d / ".OLD.0123456789ab.tmp"
    stale.write_text("maybe another process's write in flight")
    fd = os.open(d / ".keyform-writers.lock", os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # "another process" writing
        started = time.monotonic()
        FileSink(d).write("mine", "MINE", "my-secret")
        assert time.monotonic() - started < 5
        assert stale.exists()  # not swept: it may be in flight
    finally:
        os.close(fd)
    assert (d / "MINE").read_text() == "my-secret"


@pytest.mark.parametrize("planted", ["fifo", "directory"])
def test_a_fifo_or_directory_at_the_file_sink_s_lock_never_hangs_or_blocks_a_write(tmp_path: Path,
                                                                                   planted: str) -> None:
    """Opening the lock file read-only waited forever on a FIFO planted at its name."""
    d = tmp_path / "keys"
    d.mkdir()
    lock = d / ".keyform-writers.lock"
    if planted == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()
    done: list[bool] = []

    def write() -> None:
        FileSink(d).write("k", "A", SECRET)
        done.append(True)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    t.join(20)
    assert done, "the write hung on the planted lock file"
    assert (d / "A").read_text() == SECRET
