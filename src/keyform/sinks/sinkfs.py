"""How the file sinks touch the filesystem: never through a symlink planted at the sink path.

- `write_file` replaces a sink file atomically (keyform.fsio.atomic_write) without following a
  symlink at its path: a link there is refused with an error naming it, and one planted after that
  check is replaced by the rename, never written through. The temp file is created O_EXCL and
  O_NOFOLLOW. Stale temp files of killed writers (`.<name>.<hex>.tmp`, full copies of the secrets)
  are removed first: callers hold the file's cross-process lock (keyform.sinks.pathlocks).
- `read_file` opens with O_NOFOLLOW: a secret is never read back from wherever a link points. It
  reads only a regular file, and at most `MAX_BYTES` of it (`fsio.TooLargeError` beyond).
- Directories keyform creates for a sink are remembered for the process; a write or read through
  one of them that has since become a symlink is refused, naming it.
- An existing sink directory that is group- or world-writable draws one warning per process: anyone
  who can write to it can replace the files keyform writes there.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from keyform.fsio import (
    IsSymlinkError,
    MiB,
    StrPath,
    atomic_write,
    ensure_dir,
    is_loose_dir,
    read_nofollow,
    remove_stale_temps,
)
from keyform.sinks.pathlocks import dir_lock

log = logging.getLogger("keyform.sinks")

# The most of a sink file keyform reads back (a .env of 10,000 secrets is ~1 MB): a huge file at a
# sink path is refused, not read until memory runs out.
MAX_BYTES = 64 * MiB

_guard = threading.Lock()
_created: set[str] = set()  # directories this process created for sinks
_warned: set[str] = set()  # loose directories already warned about
_swept: set[str] = set()  # `file` sink directories already cleared of stale temp files by this process
_sweeping: dict[str, threading.Lock] = {}  # per `file` sink directory: held by its one sweep of this process


def prepare_dir(directory: StrPath) -> None:
    """Create the sink's directory (0700) and its missing parents; check the ones keyform created."""
    created = ensure_dir(directory)
    path = os.path.abspath(directory)
    with _guard:
        _created.update(os.fspath(d) for d in created)
        warn = not created and path not in _warned and path not in _created and is_loose_dir(path)
        if warn:
            _warned.add(path)
    check_created_dirs(path)
    if warn:
        log.warning("%s: the sink directory is group- or world-writable; another user could replace the "
                    "secrets keyform writes there (chmod go-w %s)", path, path)


def check_created_dirs(path: StrPath) -> None:
    """IsSymlinkError when a directory keyform created on the way to `path` is now a symlink.

    Runs on every read and rewrite of a sink file (three times per rewrite): the way up is walked
    on strings (`os.path.dirname`), not pathlib objects, which were most of its cost."""
    d = os.path.abspath(path)
    mine: list[str] = []
    with _guard:
        if _created:
            while True:
                if d in _created:
                    mine.append(d)
                parent = os.path.dirname(d)
                if parent == d:
                    break
                d = parent
    for created in mine:
        if os.path.islink(created):
            raise IsSymlinkError(Path(created))


def write_file(path: StrPath, data: bytes) -> None:
    """Replace the sink file at `path` with `data` (0600) without following a symlink (see module)."""
    prepare_dir(os.path.dirname(os.path.abspath(path)))
    atomic_write(path, data, follow_symlinks=False, clean_stale=True)


def write_entry(path: StrPath, data: bytes) -> None:
    """`write_file` for one entry of a directory sink. Each entry is its own file, written whole, so
    there is no read-modify-write to lock; the directory is cleared of stale temp files once per
    process (entry names can never look like one), not on every write: a listing of a directory of
    10,000 entries per write would make an apply quadratic. Each write holds the directory's
    writers' lock shared, and the sweep runs only if it gets it exclusively at once
    (`pathlocks.dir_lock`): it never removes a temp file another process (another workspace's
    apply) has in flight; when one is, this process leaves the sweep to a later run."""
    directory = os.path.dirname(os.path.abspath(path))
    prepare_dir(directory)
    with _guard:
        sweeping = _sweeping.setdefault(directory, threading.Lock())
    with sweeping:  # the sweep finishes before any write of this process starts in that directory:
        if directory not in _swept:  # it would otherwise remove another thread's temp file in flight
            with dir_lock(directory, exclusive=True) as alone:
                if alone:
                    remove_stale_temps(directory, None)
            _swept.add(directory)
    with dir_lock(directory, exclusive=False):
        atomic_write(path, data, follow_symlinks=False)


def read_file(path: StrPath) -> bytes | None:
    """The sink file's bytes, or None when it does not exist; IsSymlinkError for a link,
    NotAFileError for a FIFO or a device, TooLargeError for one larger than `MAX_BYTES`."""
    check_created_dirs(os.path.dirname(os.path.abspath(path)))
    try:
        return read_nofollow(path, limit=MAX_BYTES)
    except FileNotFoundError:
        return None
