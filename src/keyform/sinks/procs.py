"""Running a sink's helper program (`sops`, an `exec` sink's command): an argv list and no shell,
input on stdin only, output captured through pipes, bounded by a timeout.

Nothing here writes to disk. On timeout the whole process group is killed (the child runs in its
own session), so `sh -c '... | ...'` pipelines do not outlive keyform; so is a program that prints
more than `MAX_OUTPUT` on stdout (a `read_command` of `yes` filled memory faster than its timeout
came). Of its stderr only the tail is kept, which is all a message quotes. The child holds the state
lock (the local lock file, or the postgres lock session's socket: `keyform.inherited`): one that
outlives a killed keyform keeps the state locked.
"""

from __future__ import annotations

import base64
import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field

from keyform import inherited
from keyform.records import record
from keyform.redact import MAX_RAW, scrub

REDACTED = "[redacted]"
# How much of a failing program's stderr a message quotes (its end: the last lines say why).
STDERR_LIMIT = 800


MAX_OUTPUT = 64 * 1024 * 1024  # a program's stdout keyform keeps: a secret, or a sops document (its file's cap)


class ProgramTimeout(Exception):
    """The program ran longer than its timeout and was killed."""


class ProgramFlooded(Exception):
    """The program printed more than `MAX_OUTPUT` on stdout and was killed; `shown`: that limit, in words."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.shown = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit} bytes"


@record
class Completed:
    returncode: int
    stdout: bytes = field(repr=False)
    stderr: bytes = field(repr=False)


def run(argv: Sequence[str], *, stdin: bytes | None, timeout: float, env: Mapping[str, str] | None = None,
        cwd: str | None = None) -> Completed:
    """Run `argv` with `stdin` (None: /dev/null) and return its exit code and output.

    Raises OSError when it cannot be started (FileNotFoundError: no such program) and
    ProgramTimeout when it runs longer than `timeout` seconds.
    """
    proc = inherited.start(lambda fds: subprocess.Popen(
        list(argv), stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env) if env is not None else None,
        cwd=cwd, close_fds=True, start_new_session=True, pass_fds=fds))
    try:
        out, err = _communicate(proc, stdin, time.monotonic() + timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ProgramTimeout() from None
    except ProgramFlooded:
        _kill_group(proc)
        raise
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        inherited.ended()
    return Completed(proc.returncode, out, err)


# How long a program's output pipes may stay open after it exits: a background process it started
# (an agent, `cmd &`) may hold them for as long as it lives, and the program's exit status is its answer.
EXITED_GRACE = 2.0


def _communicate(proc: subprocess.Popen[bytes], stdin: bytes | None, deadline: float) -> tuple[bytes, bytes]:
    """`proc.communicate` within bounds: `stdin` written, stdout kept up to `MAX_OUTPUT`
    (ProgramFlooded beyond), only the last `MAX_RAW` bytes of stderr kept; TimeoutExpired at
    `deadline` (a `time.monotonic` instant). Once the program has exited, its pipes are read for
    `EXITED_GRACE` more at most: a write that exited 0 was reported as "did not finish within 30s"
    (and its new key revoked) when a process it left running kept its stdout or stderr open."""
    out: list[bytes] = []
    err = bytearray()
    size = 0
    sel = selectors.DefaultSelector()
    pending = memoryview(stdin or b"")
    exited = _exit_watch(proc.pid)  # readable once the program exits (None: polled)
    exited_at: float | None = None
    pipes = 0
    try:
        if proc.stdin is not None:
            if pending:
                os.set_blocking(proc.stdin.fileno(), False)
                sel.register(proc.stdin, selectors.EVENT_WRITE)
                pipes += 1
            else:
                proc.stdin.close()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                sel.register(pipe, selectors.EVENT_READ)
                pipes += 1
        if exited is not None:
            sel.register(exited, selectors.EVENT_READ)
        while pipes:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, 0)
            if exited_at is None and exited is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None:
                if now - exited_at >= EXITED_GRACE:
                    break  # what a process left behind still holds is not the program's output
                left = min(left, exited_at + EXITED_GRACE - now)
            elif exited is None:
                left = min(left, 0.05)
            for key, _ in sel.select(left):
                if key.fileobj is exited:
                    sel.unregister(exited)
                    exited_at = time.monotonic()
                    continue
                if key.fileobj is proc.stdin:
                    try:
                        pending = pending[os.write(key.fd, pending[:65536]):]
                    except BrokenPipeError:  # it stopped reading: what it printed still counts
                        pending = memoryview(b"")
                    if not pending:
                        sel.unregister(key.fileobj)
                        proc.stdin.close()
                        pipes -= 1
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    pipes -= 1
                elif key.fileobj is proc.stdout:
                    size += len(chunk)
                    if size > MAX_OUTPUT:
                        raise ProgramFlooded(MAX_OUTPUT)
                    out.append(chunk)
                else:
                    err += chunk
                    del err[:-MAX_RAW]
        proc.wait(max(0.0, deadline - time.monotonic()))
    finally:
        sel.close()
        if exited is not None:
            os.close(exited)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):  # (read to their end, as communicate leaves them,
        if pipe is not None:  # or held by a process the program left behind)
            with contextlib.suppress(OSError):
                pipe.close()
    return b"".join(out), bytes(err)


def _exit_watch(pid: int) -> int | None:
    """A pidfd of `pid` (readable once it exits), or None where there is none (then polled)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):  # (what it printed is not read: it was killed)
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    proc.wait()


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (and every line of a multi-line secret) replaced by [redacted], then
    scrubbed as a server's text is (`keyform.redact.scrub`): any 16 consecutive characters of one of
    `secrets` or of a secret this process remembered, in any of its escaped, base64 or hex forms (a
    program given a secret often base64s it before it fails: `base64` in a script, a Kubernetes
    Secret's `data` that kubectl prints back, an API body), become `***`, and any 16 characters of the
    base64 of one of `secrets` (`base64_forms`). A
    program may quote part of its stdin, or a secret keyform read earlier, re-wrapped or escaped."""
    secrets = [s for s in secrets if s]
    needles: set[str] = set()
    for secret in secrets:
        needles.add(secret)
        needles.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 4)
    for needle in sorted(needles, key=len, reverse=True):
        text = text.replace(needle, REDACTED)
    encoded = [form for secret in secrets for form in base64_forms(secret)]
    return scrub(text[-MAX_RAW:], secrets + encoded)  # its tail is what a message shows (`describe_output`)


def base64_forms(secret: str) -> list[str]:
    """`secret` as base64 may carry it, standard and URL-safe: whole (padded), and within a longer
    encoded text at each of the three byte offsets (the characters the neighbouring bytes change left
    out). `scrub` masks any 16 characters of each, and a short one whole: what `scrub`'s decoding
    (`keyform.redact._decoded_hits`, any secret's) does not, as 16 base64 characters are 12 bytes and
    it compares 16 (a helper's logger wrapping its stdin's base64 at 20 characters a line, each line
    prefixed, printed the whole secret 15 bytes a line), and a secret of 4 or 5 bytes is not decoded
    for at all. Only for the secrets a helper was given (few: its patterns are built per message)."""
    try:
        data = secret[:MAX_RAW].encode("utf-8")
    except UnicodeEncodeError:
        return []
    forms: list[str] = []
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(bytes(offset) + data).decode("ascii")
        if offset:  # the last quantum depends on what follows the secret
            encoded = encoded[skip:len(encoded) - 4]
        forms += (encoded, encoded.translate(_URLSAFE))
    return forms


_URLSAFE = str.maketrans("+/", "-_")


def describe_output(raw: bytes, secrets: Iterable[str] = ()) -> str:
    """A program's stderr (or stdout) for a one-line message: decoded, redacted, blank lines dropped,
    lines joined with ' | ', and only its last STDERR_LIMIT characters."""
    text = redact(raw.decode("utf-8", errors="replace"), secrets)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = " | ".join(lines)
    if len(joined) > STDERR_LIMIT:
        joined = "..." + joined[-STDERR_LIMIT:]
    return joined
