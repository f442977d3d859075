"""Durable file primitives shared by the local state backend and the file sinks (POSIX semantics).

`atomic_write` is the only way keyform replaces a file: a reader sees either the old bytes or the
new ones, never a mix, and once it returns the new bytes and the rename are on stable storage.
Files are created 0600 and directories 0700 regardless of the umask.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import stat
import time
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


def ensure_dir(path: StrPath, mode: int = 0o700) -> list[Path]:
    """Create `path` and any missing parents with `mode` (umask ignored); existing ones are untouched.
    Returns the directories it created. Each is checked to be a real directory (not a symlink swapped
    in after the mkdir) before its mode is set through a descriptor, never through a path."""
    here = os.path.abspath(path)
    if os.path.isdir(here):  # the common case (every sink rewrite): one stat, no pathlib objects
        return []
    target = Path(here)
    created: list[Path] = []
    for attempt in range(_MKDIR_ATTEMPTS):
        try:
            _make_missing(target, mode, created)
            break
        except FileNotFoundError:
            # a parent seen a moment ago was removed meanwhile (another keyform releasing the lock
            # of a new `--state` path removes the directories it made, empty): walk again
            if attempt == _MKDIR_ATTEMPTS - 1:
                raise
    if not target.is_dir():
        raise NotADirectoryError(f"{path}: not a directory")
    return created


_MKDIR_ATTEMPTS = 5


def _make_missing(target: Path, mode: int, created: list[Path]) -> None:
    """Make `target`'s missing directories, outermost first, each added to `created` (see `ensure_dir`)."""
    missing: list[Path] = []
    p = target
    while not os.path.lexists(p):
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
        fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        if d in created:  # made by an earlier walk and removed under it: named once, where made now
            created.remove(d)
        created.append(d)
        fsync_dir(d.parent)


ANY_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")  # a temp file of `atomic_write`, for any file
NAME_MAX = 255  # the bytes of one file name (a path component): Linux's and macOS's file systems
# the longest file name `atomic_write` can replace: its temp file beside it is `.<name>.<12 hex>.tmp`
MAX_FILE_NAME = NAME_MAX - len("..") - 12 - len(".tmp")


def too_long_to_replace(name: str) -> str | None:
    """Why `atomic_write` can never write a file named `name` (counted in bytes), as a phrase after
    "the ... name is"; None when it can."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size <= MAX_FILE_NAME:
        return None
    return (f"longer than {MAX_FILE_NAME} bytes ({size}): a file name is at most {NAME_MAX} bytes, and keyform "
            "writes it through a temp file named .NAME.<12 hex>.tmp beside it")


def temp_name_pattern(name: str) -> re.Pattern[str]:
    """The names `atomic_write` gives its temp files for the file `name`: `.<name>.<12 hex>.tmp`."""
    return re.compile(rf"\.{re.escape(name)}\.[0-9a-f]{{12}}\.tmp")


def remove_stale_temps(directory: str, name: str | None) -> int:
    """Delete leftover temp files of `atomic_write` for `name` (None: for any file) in `directory`
    (a writer killed between creating and renaming its temp file leaves a full copy behind). Only
    safe while no other writer of those files is in flight. Returns how many were removed."""
    pattern = temp_name_pattern(name) if name is not None else ANY_TEMP_NAME
    removed = 0
    try:
        entries = os.listdir(directory)
    except OSError:
        return 0
    for entry in entries:
        if pattern.fullmatch(entry):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, entry))
                removed += 1
    if removed:
        fsync_dir(directory)
    return removed


def atomic_write(path: StrPath, data: bytes, mode: int = 0o600, *, follow_symlinks: bool = True,
                 clean_stale: bool = False) -> None:
    """Replace `path` with `data` atomically and durably; the result has exactly `mode`.

    A symlink at `path` is followed (its target is replaced) unless `follow_symlinks` is False: then
    the link itself is refused (`IsSymlinkError`), and even one planted after that check is replaced
    by the rename, never written through. The temp file is created with O_EXCL and O_NOFOLLOW, so a
    planted file or link at its name is never opened. With `clean_stale` (the caller holds the
    file's writer lock), temp files left by killed writers are removed first, so at most the one in
    flight ever exists. The parent directory must exist (see `ensure_dir`). On any failure the old
    file is left as it was and no temp file remains.
    """
    if follow_symlinks:
        target = os.path.realpath(path)
    else:  # the directory as the kernel resolves it (`link/../f` is in link's target's parent, not in .)
        head, name = os.path.split(os.fspath(path).rstrip(os.sep) or os.sep)
        target = os.path.join(os.path.realpath(head or os.curdir), name)
        if os.path.islink(target):
            raise IsSymlinkError(target)
    directory, name = os.path.split(target)
    if clean_stale:
        remove_stale_temps(directory, name)
    import secrets  # (here: a plan writes nothing and does not import it)

    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
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


class IsSymlinkError(OSError):
    """A path keyform will not follow is a symbolic link."""

    def __init__(self, path: StrPath) -> None:
        super().__init__(f"{path} is a symbolic link")
        self.strerror = f"{os.fspath(path)} is a symbolic link; keyform does not write or read secrets through links"
        self.filename = os.fspath(path)


MiB = 1024 * 1024


def size_text(n: int) -> str:
    """`n` bytes as messages show a cap: `64 MiB`, or `1000 bytes`."""
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else f"{n} bytes"


class NotAFileError(OSError):
    """A path keyform reads is not a regular file (a FIFO, a device, a socket): one would block
    the open or the read forever, or (/dev/zero) never end. `fifo_ok`: the reader takes a FIFO too."""

    def __init__(self, path: StrPath, *, fifo_ok: bool = False, terminal: bool = False) -> None:
        super().__init__(f"{path} is not a regular file")
        what = "a regular file or a FIFO (it is a device or a socket)" if fifo_ok else \
            "a regular file (a pipe, device or socket)"
        self.strerror = f"{os.fspath(path)} is not {what}; keyform reads only files"
        self.filename = os.fspath(path)
        self.terminal = terminal  # (a terminal: what is typed there is shown as it is typed)


class TooLargeError(OSError):
    """A file keyform reads is larger than keyform reads of such a file (`read_capped`'s `limit`).
    Its `strerror` does not name the path: `f"{path}: {exc.strerror}"`."""

    def __init__(self, path: StrPath, limit: int) -> None:
        super().__init__(f"{path} is larger than {size_text(limit)}")
        self.limit = limit
        self.strerror = f"larger than {size_text(limit)}"
        self.filename = os.fspath(path)


def read_capped(path: StrPath, limit: int, *, follow_symlinks: bool = True,
                fifo: bool = False) -> tuple[bytes, os.stat_result]:
    """The bytes of the file at `path` and its `fstat` as it was opened; every read of a file a user
    or a document names goes through here, so none reads without a bound.

    At most `limit` bytes are kept: a larger file (its size, or what it yields: /proc, a FIFO) is
    `TooLargeError`, having read at most `limit + 1` bytes. Anything but a regular file is
    `NotAFileError` (a directory `IsADirectoryError`), checked on the open descriptor, never by
    path first; `fifo=True` takes a FIFO too (a secret piped in on /dev/stdin), read to its end
    within the same bound. The open never waits (O_NONBLOCK): a FIFO nothing writes to reads as
    empty, and one whose writer has not written it and closed it within `FIFO_SECONDS` of its
    open is `FifoTimeoutError`.
    `follow_symlinks=False`: a symlink as the last component is `IsSymlinkError`.
    FileNotFoundError when it does not exist."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and os.path.islink(path):
            raise IsSymlinkError(path) from None
        raise exc from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not (stat.S_ISREG(st.st_mode) or (fifo and stat.S_ISFIFO(st.st_mode))):
            raise NotAFileError(path, fifo_ok=fifo, terminal=os.isatty(fd))
        if st.st_size > limit:
            raise TooLargeError(path, limit)
        piped = stat.S_ISFIFO(st.st_mode)
        os.set_blocking(fd, not piped)
        chunks: list[bytes] = []
        left = limit + 1
        step = max(st.st_size + 1, 64 * 1024)  # a regular file: all of it in one read
        # a pipe's time is counted from its open, not from its writer's last write: a writer that
        # trickled a byte every 59 s was read for as long as it trickled
        deadline = time.monotonic() + FIFO_SECONDS if piped else 0.0
        while left > 0:
            try:
                chunk = os.read(fd, min(left, step))
            except BlockingIOError:  # a FIFO's writer has not written yet (with no writer: its end, b"")
                if not _readable_within(fd, deadline - time.monotonic()):
                    raise FifoTimeoutError(path) from None
                continue
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:  # it grew, or a FIFO or /proc file said nothing of its size
            raise TooLargeError(path, limit)
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), st
    finally:
        os.close(fd)


FIFO_SECONDS = 60.0


class FifoTimeoutError(OSError):
    """A FIFO keyform reads was not written and closed within `FIFO_SECONDS` of its open (a writer
    that never writes nor closes, or trickles, would keep keyform waiting forever)."""

    def __init__(self, path: StrPath) -> None:
        super().__init__(f"{path}: not written and closed within {FIFO_SECONDS:g} s")
        self.strerror = (f"a FIFO whose writer had not written it and closed it within {FIFO_SECONDS:g} s; "
                         "keyform stopped waiting")
        self.filename = os.fspath(path)


def _readable_within(fd: int, seconds: float) -> bool:
    """Whether `fd` has something to read (or its end) within `seconds`."""
    if seconds <= 0:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


def read_nofollow(path: StrPath, *, limit: int) -> bytes:
    """The whole file at `path` (at most `limit` bytes, else TooLargeError), refusing
    (IsSymlinkError) when its last component is a symlink, and (NotAFileError) anything but a
    regular file: a FIFO planted at the path would block the open and the read forever.
    FileNotFoundError when it does not exist."""
    return read_capped(path, limit, follow_symlinks=False)[0]


def read_nofollow_stat(path: StrPath, *, limit: int) -> tuple[bytes, os.stat_result]:
    """`read_nofollow`, and the file's `fstat` as it was opened."""
    return read_capped(path, limit, follow_symlinks=False)


def is_loose_dir(path: StrPath) -> bool:
    """Whether the directory at `path` is group- or world-writable (another user could replace files in it)."""
    try:
        return bool(stat.S_IMODE(os.stat(path).st_mode) & 0o022)
    except OSError:
        return False


class HardLinkedError(OSError):
    """A file keyform writes in place (not by rename) has other hard links: writing it would change
    the file behind its other names too, which is not keyform's."""

    def __init__(self, path: StrPath, links: int) -> None:
        super().__init__(f"{path} has {links} hard links")
        self.links = links
        self.strerror = f"{os.fspath(path)} has other hard links; keyform writes in place only a file of its own"
        self.filename = os.fspath(path)


def open_own(path: StrPath, flags: int, mode: int = 0o600) -> tuple[int, os.stat_result]:
    """Open (creating with `mode`) a file keyform writes in place, not by rename (the state lock, the
    apply journal), and its `fstat`; `flags`: the access ones (O_RDWR, O_CREAT, O_APPEND).

    Only a file of keyform's own is opened: a symlink as the last component is `IsSymlinkError`
    (O_NOFOLLOW: also one planted after the check), anything but a regular file `NotAFileError`
    (a directory `IsADirectoryError`; a FIFO is never waited on: O_NONBLOCK, and a device or FIFO
    seen by `lstat` first is not even opened), and a file with other hard links `HardLinkedError`:
    a link planted at the path would send keyform's writes into another file. Nothing is written
    or truncated here. The descriptor is close-on-exec and blocking."""
    try:
        pre: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        pre = None
    if pre is not None:
        _refuse_not_own(path, pre)
    flags |= os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode)
    except OSError:
        if os.path.islink(path):  # ELOOP (EMLINK on the BSDs): a link planted since the lstat
            raise IsSymlinkError(path) from None
        raise
    try:
        st = os.fstat(fd)
        _refuse_not_own(path, st)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _refuse_not_own(path: StrPath, st: os.stat_result) -> None:
    """`open_own`'s refusals, from an `lstat` or an `fstat` of the path."""
    if stat.S_ISLNK(st.st_mode):
        raise IsSymlinkError(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    if not stat.S_ISREG(st.st_mode):
        raise NotAFileError(path)
    if st.st_nlink > 1:
        raise HardLinkedError(path, st.st_nlink)


def open_for_append(path: StrPath, mode: int = 0o600) -> BinaryIO:
    """Open (creating with `mode`) a file for durable appends; the new directory entry is fsynced.

    Only a regular file with no other name is opened (`open_own`: IsSymlinkError, NotAFileError,
    HardLinkedError): appends through a planted link would land in another file. An incomplete
    last line (a torn write from a crash) is cut off first, so the next line starts cleanly. Use
    `append_line_durably` to write.
    """
    fd, _ = open_own(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, mode)
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
    append_lines(fh, [line])


def append_lines(fh: BinaryIO, lines: list[str]) -> None:
    """Append each of `lines` plus a newline, all in one write, and flush them to the OS (not yet
    to stable storage). No line may hold a line break: nothing is written if one does."""
    if any("\n" in line or "\r" in line for line in lines):
        raise ValueError("a journal line must not contain a line break")
    data = memoryview("".join(line + "\n" for line in lines).encode("utf-8"))
    while data:  # an unbuffered file may take part of it (a disk filling up, a file size limit)
        written = fh.write(data)
        if not written:
            raise OSError(errno.EIO, "the file took none of the bytes written to it")
        data = data[written:]
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
