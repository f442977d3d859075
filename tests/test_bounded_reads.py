"""Every file a user or a document names is read within a bound: `keyform show /dev/zero` grew to
24 GB before the OOM killer ended it. Now each reader refuses what is not a regular file (a secret
input also takes a FIFO, read within the same bound) as `PATH: not a regular file ...`, and a file
larger than its cap as `PATH: larger than N MiB; ...`, having read at most cap + 1 bytes: one line,
exit 1, no traceback, nothing written.

Nothing here reads /dev/zero without a bound: those runs are subprocesses under a 1 GiB address
space limit (the code before this change died there of MemoryError, or hung on a FIFO until the
timeout); sizes over a cap are sparse files, or FIFOs fed a fixed amount, with the cap lowered."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from harness.project import Project
from keyform import fsio
from keyform.emulator import Emulator
from keyform.errors import KeyformError, StateError
from keyform.model import FileRef
from keyform.resolve import read_ref

T = TypeVar("T")
MIB = 1024 * 1024
MEMORY_LIMIT = 1024 * MIB  # the address space of each keyform subprocess here


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run_limited(cwd: Path, *args: str, timeout: float = 60) -> tuple[int, str]:
    """`keyform ARGS` as a subprocess in `cwd`, its memory and time bounded: (exit code, stderr);
    -1 when it ran out of time."""
    env = {**os.environ, "NO_COLOR": "1", "KEYFORM_NO_CACHE": "1", "QUESTRA_TOKEN": "qt-bounded-reads"}
    try:
        proc = subprocess.run([sys.executable, "-m", "keyform", *args], cwd=cwd, env=env, preexec_fn=_limited,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return -1, f"[timed out after {timeout} s]"
    return proc.returncode, proc.stderr


def _manifest(root: Path, token: str = "{env: QUESTRA_TOKEN}", provider: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "keyform.yaml"
    path.write_text(
        "version: 1\n"
        "providers:\n"
        + (provider or f"  qp: {{type: questra, base_url: 'http://127.0.0.1:46999', token: {token}, org_id: o1}}\n")
        + "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\n"
        "defaults: {sink: env}\n"
        "keys:\n  k: {provider: " + ("rp" if provider else "qp") + (", name: K}\n" if not provider else "}\n"))
    return path


def _one_clear_error(code: int, stderr: str, start: str, words: str) -> None:
    assert code == 1, (code, stderr)
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {start}") and words in lines[0], stderr


# ------------------------------------------------------------------ /dev/zero, under a memory limit


@pytest.mark.parametrize(("args", "start"), [
    (("show", "/dev/zero"), "/dev/zero: "),
    (("apply", "/dev/zero"), "/dev/zero: "),
    (("graph", "--plan", "/dev/zero"), "/dev/zero: "),
    (("validate", "--policy", "/dev/zero"), "--policy /dev/zero: "),
])
def test_dev_zero_named_as_a_plan_or_policy_file_is_refused_not_read(tmp_path: Path, args: tuple[str, ...],
                                                                    start: str) -> None:
    _manifest(tmp_path)
    code, stderr = _run_limited(tmp_path, *args)
    _one_clear_error(code, stderr, start, "not a regular file")


def test_dev_zero_as_a_file_input_is_refused_before_any_call(tmp_path: Path) -> None:
    """A `{file: PATH}` input (here a provider token) may be a FIFO, not a device."""
    _manifest(tmp_path, token="{file: /dev/zero}")
    code, stderr = _run_limited(tmp_path, "plan")
    _one_clear_error(code, stderr, "keyform.yaml:3: providers.qp.token: /dev/zero: ",
                     "not a regular file or a FIFO")


# ------------------------------------------------------------------ a FIFO nothing writes to


@pytest.mark.parametrize("where", ["plan", "policy", "definition", "manifest"])
def test_a_fifo_nothing_writes_to_never_blocks(tmp_path: Path, where: str) -> None:
    """A saved plan, a policy or a manifest may come through a pipe (`<(sops -d p.plan)`): one nothing
    writes to reads as empty, one clear error. A REST definition must be a file."""
    fifo = tmp_path / "pipe.yaml"
    if where == "definition":
        _manifest(tmp_path, provider="  rp: {type: rest, definition: pipe.yaml, base_url: 'http://127.0.0.1:46999',"
                                     " token: {env: QUESTRA_TOKEN}}\n")
    else:
        _manifest(tmp_path)
    os.mkfifo(fifo)
    args = {"plan": ("show", str(fifo)), "policy": ("validate", "--policy", str(fifo)),
            "definition": ("validate",), "manifest": ("validate", "-f", "pipe.yaml")}[where]
    code, stderr = _run_limited(tmp_path, *args, timeout=30)
    assert code == 1, (code, stderr)
    expected = {"plan": "not a keyform plan file", "policy": "the file is empty", "manifest": "the file is empty",
                "definition": "not a regular file"}[where]
    assert expected in stderr, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_a_manifest_plan_and_policy_read_through_a_pipe(tmp_path: Path, emulator: Emulator) -> None:
    """`validate -f <(render)`, `show <(sops -d p.plan)`, `apply <(...)`, `--policy <(curl ...)`: all
    refused as "not a regular file" once reads were bounded; a pipe is read, within the same cap."""
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n")
    (tmp_path / "pol.yaml").write_text("version: 1\npolicies:\n  names:\n    require: {name_pattern: '^[a-z]+$'}\n")
    assert project.run("plan", "--out", str(tmp_path / "p.plan")).exit_code == 0
    env = {**os.environ, **project.env, "NO_COLOR": "1"}

    def bash(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", f"{sys.executable} -m keyform {command}"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    for command in ("validate -f <(cat keyform.yaml)", "validate --policy <(cat pol.yaml)",
                    "show <(cat p.plan)", "apply <(cat p.plan)"):
        res = bash(command)
        assert res.returncode == 0 and "Traceback" not in res.stderr, (command, res.stdout, res.stderr)
    assert project.state()["keys"]["k"]["remote_id"]
    res = bash("validate -f /dev/zero")
    assert res.returncode == 1 and "not a regular file or a pipe (a device or a socket)" in res.stderr, res.stderr


def test_a_manifest_larger_than_its_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyform.manifest import loader

    monkeypatch.setattr(loader, "MAX_MANIFEST_BYTES", 1024)
    big = _sparse(tmp_path / "big.yaml", 4096)
    with pytest.raises(KeyformError, match=r"big.yaml:1: larger than 1024 bytes: too large for a manifest"):
        loader.load_workspace([str(big)], cwd=tmp_path)


# ------------------------------------------------------------------ larger than the cap (sparse files)


def _sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)  # for the commands that take no -f
    return Project(tmp_path, emulator.url)


def test_a_saved_plan_larger_than_its_cap_is_refused(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("keyform.planfile.MAX_BYTES", MIB, raising=False)
    project.questra("k: {provider: qp, name: K}\n")
    big = _sparse(project.root / "big.plan", 2 * MIB)
    for args in (("show", str(big)), ("apply", str(big)), ("graph", "--plan", str(big))):
        res = project.run(*args)
        assert res.exit_code == 1, res.output
        assert res.stderr.strip() == f"Error: {big}: larger than 1 MiB; not a plan keyform saved", res.stderr
    res = project.run("plan", "--out", str(big))
    assert res.exit_code == 1 and "larger than any keyform plan" in res.stderr, res.output
    assert big.stat().st_size == 2 * MIB


def test_a_policy_file_larger_than_its_cap_is_refused(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("keyform.policy.MAX_POLICY_FILE_BYTES", MIB, raising=False)
    project.questra("k: {provider: qp, name: K}\n")
    big = _sparse(project.root / "policy.yaml", 2 * MIB)
    res = project.run("validate", "--policy", str(big))
    assert res.exit_code == 1, res.output
    assert res.stderr.strip() == (f"Error: --policy {big}: larger than 1 MiB; a policy file holds only policies"), \
        res.stderr


def test_a_state_or_journal_larger_than_its_cap_is_refused_and_left_alone(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("keyform.backends.local.MAX_STATE_BYTES", MIB, raising=False)
    project.questra("k: {provider: qp, name: K}\n")
    _sparse(project.state_path, 2 * MIB)
    for args in (("plan",), ("state", "list"), ("state", "push", str(project.state_path))):
        res = project.run(*args)
        assert res.exit_code == 1, res.output
        assert f"{project.state_path}: larger than 1 MiB, more than any keyform state" in res.stderr, res.stderr
        assert "Traceback" not in res.output
    assert project.state_path.stat().st_size == 2 * MIB
    project.state_path.unlink()
    assert project.run("apply", "--auto-approve").exit_code == 0
    _sparse(project.journal_path, 2 * MIB)
    res = project.run("plan")
    assert res.exit_code == 1, res.output
    assert f"{project.journal_path}: larger than 1 MiB, more than any apply's journal" in res.stderr, res.stderr


def test_a_sink_file_larger_than_its_cap_is_refused_by_plan(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("keyform.sinks.sinkfs.MAX_BYTES", MIB, raising=False)
    project.questra("k: {provider: qp, name: K}\n")
    _sparse(project.sink_path, 2 * MIB)
    res = project.run("plan")
    assert res.exit_code == 1, res.output
    assert "keys.env: cannot read it: larger than 1 MiB" in res.stderr, res.stderr
    assert project.sink_path.stat().st_size == 2 * MIB


# ------------------------------------------------------------------ {file: PATH} inputs


def test_a_file_input_larger_than_1_mib_is_refused(tmp_path: Path) -> None:
    big = _sparse(tmp_path / "token", 2 * MIB)
    with pytest.raises(KeyformError) as info:
        read_ref(FileRef(str(big)), "keys.k.auth_value")
    assert str(info.value) == f"keys.k.auth_value: {big}: larger than 1 MiB; a secret input file holds one secret"


def test_a_device_as_a_file_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyformError) as info:
        read_ref(FileRef("/dev/null"), "keys.k.auth_value")
    assert str(info.value).startswith("keys.k.auth_value: /dev/null: not a regular file or a FIFO"), str(info.value)


def _fed(fifo: Path, data: bytes) -> tuple[threading.Thread, list[int]]:
    """A writer feeding `data` into `fifo` until the reader goes: how much it wrote, once it ends."""
    wrote = [0]

    def feed() -> None:
        with open(fifo, "wb", buffering=0) as fh:
            view = memoryview(data)
            try:
                while view:
                    n = fh.write(view[:65536]) or 0
                    wrote[0] += n
                    view = view[n:]
            except BrokenPipeError:
                pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return writer, wrote


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "secret.fifo"
    os.mkfifo(path)
    yield path


def _within(fifo: Path, seconds: float, call: Callable[[], T]) -> T:
    """`call()` in a thread; if it still waits after `seconds` (the code before this change opened a
    FIFO and waited for a writer), a writer is opened and closed to free it, and the test fails."""
    box: list[T | BaseException] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # handed to the test thread
            box.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a reader waits: this open succeeds
        os.close(fd)
        worker.join(10)
        pytest.fail(f"still waiting on the FIFO after {seconds} s")
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


def test_a_secret_piped_through_a_fifo_is_read(fifo: Path) -> None:
    writer, _ = _fed(fifo, b"sk-from-a-pipe-0123456789\r\n")
    assert _within(fifo, 10, lambda: read_ref(FileRef(str(fifo)), "keys.k.auth_value")) == "sk-from-a-pipe-0123456789"
    writer.join(10)


@contextlib.contextmanager
def _writing(fifo: Path, data: bytes, after: float, *, keep_open: bool = True) -> Iterator[None]:
    """A writer that opens `fifo`, writes `data` after `after` seconds, and (`keep_open`) holds it
    open until the block ends; it is joined then."""
    release = threading.Event()
    if not keep_open:
        release.set()

    def hold() -> None:
        with open(fifo, "wb", buffering=0) as fh:
            time.sleep(after)
            if data:
                with contextlib.suppress(BrokenPipeError):  # the reader may have given up by now
                    fh.write(data)
            release.wait(30)

    writer = threading.Thread(target=hold, daemon=True)
    writer.start()
    try:
        yield
    finally:
        release.set()
        writer.join(10)


def test_a_fifo_whose_writer_writes_nothing_is_not_waited_for_forever(
        fifo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `{file:}` FIFO whose writer held it open and wrote nothing kept keyform waiting forever."""
    monkeypatch.setattr(fsio, "FIFO_SECONDS", 0.5)
    with _writing(fifo, b"", 0), pytest.raises(KeyformError) as info:
        _within(fifo, 10, lambda: read_ref(FileRef(str(fifo)), "keys.k.auth_value"))
    assert str(info.value) == (f"keys.k.auth_value: cannot read {fifo}: a FIFO whose writer had not written it and "
                               "closed it within 0.5 s; keyform stopped waiting")


def test_a_fifo_that_gave_nothing_gives_nothing_again_in_the_same_process(
        fifo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a review: a writer slower than the idle limit made the plan's first read fail (the
    key's fingerprint unknown, passed over) and its second look, for the note, succeed: no note,
    "No changes", exit 0. A pipe's failure is now its answer for the rest of the process."""
    monkeypatch.setattr(fsio, "FIFO_SECONDS", 0.3)
    with _writing(fifo, b"sk-late-0123456789\n", 1.0):
        with pytest.raises(KeyformError) as first:
            _within(fifo, 10, lambda: read_ref(FileRef(str(fifo)), "keys.k.auth_value"))
        time.sleep(1.0)  # the writer has written by now
        with pytest.raises(KeyformError) as again:
            read_ref(FileRef(str(fifo)), "keys.k.auth_value")
    assert str(again.value) == str(first.value) and "closed it within 0.3 s" in str(first.value)


def test_a_fifo_whose_writer_is_slow_but_writes_is_read(fifo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait is for a writer that is idle, not slow: a first chunk later than a read finds none is
    still read (a `<(vault read ...)` that takes a moment), and the value ends at the writer's close."""
    monkeypatch.setattr(fsio, "FIFO_SECONDS", 5.0)
    with _writing(fifo, b"sk-slow-0123456789\n", 0.5, keep_open=False):
        assert _within(fifo, 10, lambda: read_ref(FileRef(str(fifo)), "keys.k.auth_value")) == "sk-slow-0123456789"


def test_a_fifo_whose_writer_trickles_is_not_read_for_as_long_as_it_trickles(
        fifo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit ran from the writer's last write: a writer giving a byte just inside it each time
    kept keyform reading for as long as it went on. It runs from the open now."""
    monkeypatch.setattr(fsio, "FIFO_SECONDS", 1.0)
    stop = threading.Event()

    def trickle() -> None:
        with open(fifo, "wb", buffering=0) as fh, contextlib.suppress(BrokenPipeError):  # the reader gave up
            while not stop.is_set():
                fh.write(b"x")
                time.sleep(0.2)

    writer = threading.Thread(target=trickle, daemon=True)
    writer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyformError) as info:
            _within(fifo, 10, lambda: read_ref(FileRef(str(fifo)), "keys.k.auth_value"))
    finally:
        stop.set()
        writer.join(10)
    assert "had not written it and closed it within 1 s" in str(info.value)
    assert time.monotonic() - started < 5


def test_a_fifo_input_that_never_ends_is_read_only_to_the_cap(fifo: Path) -> None:
    writer, wrote = _fed(fifo, b"x" * (4 * MIB))
    with pytest.raises(KeyformError) as info:
        _within(fifo, 10, lambda: read_ref(FileRef(str(fifo)), "keys.k.auth_value"))
    assert "larger than 1 MiB; a secret input file holds one secret" in str(info.value)
    writer.join(10)
    assert not writer.is_alive()
    assert wrote[0] < 2 * MIB  # the cap + 1 bytes, and what the pipe's buffer took before the reader left


def test_a_fifo_input_nothing_writes_to_is_empty_not_a_hang(fifo: Path) -> None:
    with pytest.raises(KeyformError, match=r"is empty \(a FIFO nothing was writing to\)"):
        _within(fifo, 10, lambda: read_ref(FileRef(str(fifo)), "keys.k.auth_value"))


def test_file_inputs_through_links_and_with_crlf_read_as_before(tmp_path: Path) -> None:
    """A Kubernetes secret volume's files are symlinks; a text-mode read made CRLF a newline (the
    input fingerprints depend on the exact value)."""
    real = tmp_path / "..data" / "pem"
    real.parent.mkdir()
    real.write_bytes(b"-----BEGIN X-----\r\nabc\r\n-----END X-----\r\n")
    link = tmp_path / "pem"
    link.symlink_to(real)
    assert read_ref(FileRef(str(link)), "k") == "-----BEGIN X-----\nabc\n-----END X-----"


def test_a_fifo_at_the_state_lock_path_is_not_waited_on(tmp_path: Path) -> None:
    from keyform.backends.local import read_lock

    lock = tmp_path / "keyform.state.json.lock"
    os.mkfifo(lock)
    with pytest.raises(StateError, match="lock file is not readable"):
        _within(lock, 10, lambda: read_lock(lock))



@pytest.mark.parametrize("what", ["fifo", "too large"])
def test_an_unreadable_lock_record_is_one_plain_reason(tmp_path: Path, what: str) -> None:
    """The reason read `[Errno None] larger than 65536 bytes: '/tmp/.../keyform.state.json.lock'`."""
    from keyform.backends.local import read_lock

    lock = tmp_path / "keyform.state.json.lock"
    if what == "fifo":
        os.mkfifo(lock)
    else:
        _sparse(lock, 100_000)
    with pytest.raises(StateError) as err:
        _within(lock, 10, lambda: read_lock(lock))
    reason = {"fifo": "(not a regular file)", "too large": "(larger than 65536 bytes)"}[what]
    assert reason in str(err.value) and "Errno" not in str(err.value), str(err.value)


def _stdin_input_project(tmp_path: Path, emulator: Emulator) -> dict[str, str]:
    """A project whose one TextQL key's credential is `{file: /dev/stdin}`; the environment to run it."""
    project = Project(tmp_path, emulator.url)
    project.write("version: 1\n"
                  "providers:\n  tq: {type: textql, base_url: {url}, token: {env: TEXTQL_TOKEN}}\n"
                  "keys:\n  ext: {provider: tq, description: ext, hosts: [api.example.com], api_provider: openai,\n"
                  "        auth_type: token, auth_value: {file: /dev/stdin}}\n")
    return {**os.environ, **project.env, "NO_COLOR": "1"}


def test_a_secret_piped_on_stdin_is_read_once_for_plan_and_apply(tmp_path: Path, emulator: Emulator) -> None:
    """`echo $TOKEN | keyform apply` with `{file: /dev/stdin}`: apply read the input for its plan,
    then again for the create, and found the pipe drained ("is empty (a FIFO nothing was writing
    to)"). A pipe's value is read once per process."""
    env = _stdin_input_project(tmp_path, emulator)
    res = subprocess.run(["bash", "-c", f"printf 'piped-secret-value\\n' | {sys.executable} -m keyform apply "
                                        "--auto-approve"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "piped-secret-value" not in res.stdout + res.stderr
    from keyform.emulator.client import EmulatorControl

    with EmulatorControl(emulator.url) as control:
        assert [k["authValue"] for k in control.state()["textql"]["keys"]] == ["piped-secret-value"]


def test_a_secret_input_on_a_terminal_is_refused_with_how_to_pipe_it(tmp_path: Path, emulator: Emulator) -> None:
    """`{file: /dev/stdin}` run at a terminal said "not a regular file or a FIFO (a device or a
    socket); name the file holding the secret": true, but not what to do. Typed at the terminal,
    the secret would be shown on it, so it is refused, saying how to pipe it in."""
    from tests.ttyrun import on_a_tty

    env = _stdin_input_project(tmp_path, emulator)
    code, output = on_a_tty([sys.executable, "-m", "keyform", "apply", "--auto-approve"], tmp_path, env,
                            lambda terminal, proc: None, prompt=b"\0never shown")
    assert code == 1, output
    assert ("keys.ext.auth_value: /dev/stdin is a terminal, and a secret typed there is shown on it: pipe the "
            "secret in") in output.replace("\r\n", "\n").replace("\n", " "), output
    assert "Traceback" not in output
