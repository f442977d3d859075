"""Durable file primitives shared by the state store and the file sinks (POSIX semantics).

`atomic_write` is the only way keyform replaces a file: a reader sees either the old bytes or the
new ones, never a mix, and once it returns the new bytes and the rename are on stable storage.
Files are created 0600 and directories 0700 regardless of the umask.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO

StrPath = str | os.PathLike[str]


def fsync_dir(path: StrPath) -> None:
    """Make the directory's entries (creates, renames, unlinks) durable. No-op where unsupported."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except (PermissionError, IsADirectoryError):  # pragma: no cover - platforms without dir fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def ensure_dir(path: StrPath, mode: int = 0o700) -> None:
    """Create `path` and any missing parents with `mode` (umask ignored); existing ones are untouched."""
    target = Path(os.path.abspath(path))
    missing: list[Path] = []
    p = target
    while not p.exists():
        missing.append(p)
        if p.parent == p:  # pragma: no cover - the root always exists
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, mode)
        except FileExistsError:  # created concurrently: fine if it is a directory
            if not d.is_dir():
                raise
            continue
        os.chmod(d, mode)
        fsync_dir(d.parent)
    if not target.is_dir():
        raise NotADirectoryError(f"{path}: not a directory")


def atomic_write(path: StrPath, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically and durably; the result has exactly `mode`.

    A symlink at `path` is followed: its target is replaced. The parent directory must exist
    (see `ensure_dir`). On any failure the old file is left as it was and no temp file remains.
    """
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed or the caller may ask for wider
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def open_for_append(path: StrPath, mode: int = 0o600) -> BinaryIO:
    """Open (creating with `mode`) a file for durable appends; the new directory entry is fsynced.

    An incomplete last line (a torn write from a crash) is cut off first, so the next line
    starts cleanly. Use `append_line_durably` to write.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        _drop_torn_tail(fd)
        fh = os.fdopen(fd, "ab", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))
    return fh


def append_line(fh: BinaryIO, line: str) -> None:
    """Append `line` plus a newline in one write and flush it to the OS (not yet to stable storage:
    `os.fsync(fh.fileno())` does that). `line` must hold no newline."""
    if "\n" in line or "\r" in line:
        raise ValueError("a journal line must not contain a line break")
    fh.write((line + "\n").encode("utf-8"))
    fh.flush()


def append_line_durably(fh: BinaryIO, line: str) -> None:
    """Append `line` plus a newline in one write, then flush and fsync. `line` must hold no newline."""
    append_line(fh, line)
    os.fsync(fh.fileno())


def _drop_torn_tail(fd: int, chunk: int = 65536) -> None:
    """Truncate the file after its last newline (or to empty if it has none)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    keep = 0
    while end > 0:
        start = max(0, end - chunk)
        block = os.pread(fd, end - start, start)
        nl = block.rfind(b"\n")
        if nl >= 0:
            keep = start + nl + 1
            break
        end = start
    os.ftruncate(fd, keep)
    os.fsync(fd)
