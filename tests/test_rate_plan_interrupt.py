"""One Ctrl-C during `plan` (or an apply's plan) while a listing waits on a rate limit.

Found by a review: the limiter's waits looked at a Ctrl-C only inside an apply's changes
(`configure_rate`), so a listing waiting on `Retry-After: 50` slept it out in a refresh worker
thread while the main thread's KeyboardInterrupt waited for that thread: one Ctrl-C ended the plan
after 50 s (with `deadline: 1h` and `Retry-After: 3000`, not for minutes), and a `type: rest` list
at `rate_limit: 1/m` still sent its second page a minute after the Ctrl-C. Now the first Ctrl-C
ends every wait (`ProviderPool.interrupt`), nothing more is sent, and the plan says `Interrupted.`
(exit 1, as for any Ctrl-C); a wait of seconds is said on stderr while it lasts. A real `keyform`
process against a scripted API on 127.0.0.1, SIGINT reset to its default in the child (the suite
may run with it ignored)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.project import Project
from tests.hostile import Reply, Seen, hostile

REFUSED = b'{"error":{"code":"rate_limited","message":"slow down"}}'

PAGED = """\
version: 1
name: scripted
auth: {type: bearer}
key: {id: /id, created_at: /created}
attributes:
  name: {type: string, path: /name, default: "${address}"}
operations:
  list:
    method: GET
    path: /keys
    items: /items
    pagination: {type: cursor, param: after, next: /last_id, has_more: /has_more}
  create: {method: POST, path: /keys, body: {name: "${attrs.name}"}, secret: /secret}
  delete: {method: DELETE, path: "/keys/${id}"}
"""


def paged_reply(seen: Seen) -> Reply:
    """The two pages of the `PAGED` API: one key, then none."""
    if "after=" not in seen.path:
        return Reply(200, b'{"items":[{"id":"a1","name":"x","created":"2026-11-01T10:00:00Z"}],'
                          b'"last_id":"a1","has_more":true}')
    return Reply(200, b'{"items":[],"last_id":"","has_more":false}')


def paged_project(root: Path, url: str, option: str) -> Project:
    """A project of one key `k0` at a `type: rest` provider `rp` of the `PAGED` definition at `url`,
    with the provider option `option` (`rate_limit: 1/m`, `deadline: 1h`)."""
    project = Project(root, url)
    (root / "api.yaml").write_text(PAGED)
    project.write(
        "version: 1\n"
        "providers:\n"
        f"  rp: {{type: rest, definition: api.yaml, base_url: \"{url}\", token: {{env: QUESTRA_TOKEN}}, {option}}}\n"
        "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\n"
        "defaults:\n  sink: env\n"
        "keys:\n  k0: {provider: rp}\n")
    return project


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_when(project: Project, marker: str, *args: str, timeout: float = 30) -> tuple[int, str, float, float]:
    """`keyform ARGS` with SIGINT at its default; one SIGINT once `marker` shows on stderr (or after
    20 s without it). Returns the exit code (None: still running `timeout` s after the SIGINT), the
    output, how long it ran after the SIGINT and when it was sent."""
    proc = subprocess.Popen(project.argv(*args), cwd=project.root, env=project.process_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    try:
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), False)
        seen, started = "", time.monotonic()
        while marker not in seen and time.monotonic() - started < 20 and proc.poll() is None:
            with contextlib.suppress(TypeError):
                seen += proc.stderr.read() or ""
            time.sleep(0.02)
        time.sleep(0.5)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        os.set_blocking(proc.stderr.fileno(), True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            return -999, seen, time.monotonic() - signalled, signalled
        return proc.returncode, out + seen + err, time.monotonic() - signalled, signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize(("retry_after", "extra", "command"), [
    ("50", "", ("plan",)),
    ("3000", "    deadline: 1h\n", ("plan",)),
    ("50", "", ("apply", "--auto-approve")),
], ids=["plan", "plan-deadline-1h", "apply-plan-phase"])
def test_one_ctrl_c_ends_a_listing_waiting_on_retry_after(tmp_path: Path, retry_after: str, extra: str,
                                                         command: tuple[str, ...]) -> None:
    lists: list[float] = []

    def script(seen: Seen) -> Reply | None:
        if seen.method == "GET" and seen.path.startswith("/api-keys"):
            lists.append(time.monotonic())
            return Reply(429, REFUSED, {"Content-Type": "application/json", "Retry-After": retry_after})
        return None

    with hostile() as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("k0:\n  provider: qp\n")
        if extra:
            project.manifest.write_text(project.manifest.read_text().replace(
                "    org_id: org_e2e\n", "    org_id: org_e2e\n" + extra))
        code, output, after, signalled = _interrupt_when(
            project, f"waiting {float(retry_after):.1f} s for its rate limit", *command, "-f", str(project.manifest))
    # old code: the plan ended when the Retry-After had passed (50 s; 3000 s: not even at a second Ctrl-C)
    assert after < 10, f"keyform ran {after:.1f}s after one Ctrl-C"
    assert code == 1, output
    assert "Interrupted." in output
    assert "the API refused a call (429) and asked to wait; Ctrl-C stops" in output
    assert not [t for t in lists if t > signalled], "a list call was sent after the Ctrl-C"
    assert "Traceback" not in output


def test_one_ctrl_c_ends_a_paged_listing_waiting_for_its_turn(tmp_path: Path) -> None:
    pages: list[tuple[str, float]] = []

    def script(seen: Seen) -> Reply | None:
        if seen.method == "GET" and seen.path.startswith("/keys"):
            pages.append((seen.path, time.monotonic()))
            return paged_reply(seen)
        return None

    with hostile() as server:
        server.script = script
        project = paged_project(tmp_path, server.url, "rate_limit: 1/m")
        code, output, after, signalled = _interrupt_when(project, "for the next call's turn", "plan",
                                                         "-f", str(project.manifest))
    # old code: the second page was sent a minute later, and the plan ended after it
    assert after < 10, f"keyform ran {after:.1f}s after one Ctrl-C"
    assert code == 1, output
    assert "Interrupted." in output
    assert "rp: waiting" in output and "(its rate_limit" in output, output
    assert [p for p, _ in pages] == [pages[0][0]], pages  # the first page only
    assert not [t for _, t in pages if t > signalled]
    assert "Traceback" not in output


def test_a_change_waiting_for_a_parallelism_slot_is_not_sent_after_the_first_ctrl_c() -> None:
    """Found by review 103: after the first Ctrl-C of an apply, a change waiting for a
    `--parallelism` slot (held by calls in flight on another instance) took it when it came free
    and sent its request: the apply ran seconds longer and made keys nobody asked for any more.
    The wait for the slot now looks at `stopping`, and a slot taken after it is given back."""
    import threading
    import time as _time

    from keyform.model import RateLimit
    from keyform.providers.ratelimit import Limiter, NotAdmitted

    stop = threading.Event()
    lim = Limiter("qb", RateLimit(1000.0))
    lim.configure(4, stopping=stop.is_set)
    gate = threading.Semaphore(1)
    assert gate.acquire()  # the one slot, held by a call in flight elsewhere
    outcome: list[object] = []

    def waiting() -> None:
        with lim.call(gate):
            try:
                lim.before_attempt(first=True)
                outcome.append("sent")
            except NotAdmitted as exc:
                outcome.append(exc.cause)

    worker = threading.Thread(target=waiting)
    worker.start()
    _time.sleep(0.3)
    stop.set()  # the first Ctrl-C
    _time.sleep(0.3)
    gate.release()  # the call in flight elsewhere ends
    worker.join(10)
    assert outcome == ["stopped"]
    assert gate.acquire(timeout=1)  # the slot is free again: not kept by a change that sent nothing
