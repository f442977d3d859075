"""The file sink: a directory holding one file per secret, named by the entry name.

Each file holds exactly the secret (no trailing newline), mode 0600; the directory is created 0700.
`dir` is the sink's path, as a `dotenv` sink's `path` is: a symlink there is refused (its parents
may be links, as `/run/secrets` often is), so a link planted at it cannot send the secrets
elsewhere, and the plan's scan refuses it before any key is created.
Entry names must be plain file names: no `/`, `\\` or NUL, not `.` or `..`, at most 237 bytes
(`fsio.MAX_FILE_NAME`: 255, less the temp file's `.NAME.<12 hex>.tmp`), not a temp file's
name and not `.keyform-writers.lock`, the lock keyform keeps in the directory so that one process's
sweep of stale temp files never removes another's temp file in flight (`pathlocks.dir_lock`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from keyform.errors import SinkError
from keyform.fsio import (
    ANY_TEMP_NAME,
    IsSymlinkError,
    NotAFileError,
    StrPath,
    fsync_dir,
    read_nofollow,
    too_long_to_replace,
)
from keyform.sinks.pathlocks import DIR_LOCK_NAME, lock_for
from keyform.sinks.sinkfs import read_file, write_entry
from keyform.typeregistry import ScannedEntries, SinkType

if TYPE_CHECKING:
    from keyform.model import SinkConfig


class FileSink:
    readable = True

    def __init__(self, directory: StrPath) -> None:
        self.dir = Path(directory)

    @staticmethod
    def name_problem(name: str) -> str | None:
        """Why `name` cannot be a file name in the sink directory, or None if it can."""
        if name in ("", ".", ".."):
            return f"{name!r} is not a usable file name"
        if any(c in name for c in "/\\\0"):
            return f"{name!r} is not a plain file name (it contains '/', '\\' or NUL)"
        if not name.isprintable():  # printed in every plan: it must not drive a terminal or break a Markdown plan
            return f"{name!r} holds a control or an invisible character"
        if too_long := too_long_to_replace(name):  # every write would fail: File name too long
            return f"the entry name is {too_long}"
        if ANY_TEMP_NAME.fullmatch(name):
            return f"{name!r} looks like one of keyform's temp files (.NAME.<hex>.tmp), which are cleaned up"
        if name == DIR_LOCK_NAME:
            return f"{name!r} is the lock file keyform keeps in the sink directory"
        return None

    def write(self, address: str, name: str, secret: str) -> None:
        path = self._entry(name, address)
        with lock_for(path):
            try:
                write_entry(path, secret.encode("utf-8"))
            except OSError as exc:
                raise SinkError(f"{path}: cannot write {name!r} for key {address}: {exc.strerror}") from None

    def read(self, name: str) -> str | None:
        path = self._entry(name, None)
        with lock_for(path):
            try:
                raw = read_file(path)
            except OSError as exc:
                raise SinkError(f"{path}: cannot read {name!r}: {exc.strerror}") from None
            if raw is None:
                return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SinkError(f"{path}: {name!r} is not UTF-8 text") from None

    def remove(self, name: str) -> None:
        path = self._entry(name, None)
        with lock_for(path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise SinkError(f"{path}: cannot remove {name!r}: {exc.strerror}") from None
            fsync_dir(self.dir)

    def _entry(self, name: str, address: str | None) -> Path:
        """The path of entry `name`; SinkError for a name the directory cannot hold, or when the
        directory itself is a symlink (checked on every write, read and removal)."""
        problem = self.name_problem(name)
        if problem:
            raise SinkError(f"{self.dir}: {problem}" + (f" (key {address})" if address else ""))
        try:
            _not_a_link(self.dir)
        except IsSymlinkError as exc:
            raise SinkError(f"{exc.strerror} (the file sink's dir; {name!r}" + (f" for key {address}" if address
                                                                                 else "") + ")") from None
        return self.dir / name


def _open(config: SinkConfig) -> FileSink:
    return FileSink(Path(config.options["dir"]))


def _not_a_link(directory: StrPath) -> None:
    """IsSymlinkError when the sink's `dir` is a symlink (only its last component: see module;
    `dir: files/` names the link `files` too, which lstat of `files/` would follow)."""
    path = os.fspath(directory).rstrip(os.sep) or os.sep
    if os.path.islink(path):
        raise IsSymlinkError(path)


def scan(config: SinkConfig) -> ScannedEntries:
    """The directory's file names ({} when there is no directory), those that are blank (empty,
    or a few bytes of whitespace: `echo > entry`), and the entries the sink cannot use (a symbolic
    link, a directory, a FIFO: `ScannedEntries.unusable`; the plan refuses to write there rather
    than create a key whose secret the write, or a later read, then refuses); IsSymlinkError when
    `dir` is a link."""
    directory = config.options["dir"]
    _not_a_link(directory)
    names: list[str] = []
    unusable: dict[str, str] = {}
    try:
        with os.scandir(directory) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    if e.name != DIR_LOCK_NAME:
                        names.append(e.name)
                elif (why := _unusable(e)) is not None:
                    unusable[e.name] = why
    except FileNotFoundError:
        return ScannedEntries()
    return ScannedEntries(dict.fromkeys(names, 0), (n for n in names if _blank(os.path.join(directory, n))),
                          unusable)


def _unusable(entry: os.DirEntry[str]) -> str | None:
    """Why the sink can neither read nor replace `entry` as a secret's file (None for a name it
    could never use anyway: the checks of `FileSink.name_problem` make sure no key points there)."""
    if entry.is_symlink():
        return IsSymlinkError(entry.path).strerror
    if entry.is_dir(follow_symlinks=False):
        return f"{entry.path} is a directory, not the file of a secret"
    return NotAFileError(entry.path).strerror


def _blank(path: str) -> bool:
    """Whether the entry file holds nothing but whitespace (only a small file is read: a secret
    keyform writes is never blank, and one stat per entry keeps the scan cheap)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > BLANK_MAX:
            return False
        return not read_nofollow(path, limit=BLANK_MAX).strip()
    except (OSError, ValueError):
        return False  # (what cannot be read here is reported by the read or write that needs it)


BLANK_MAX = 16  # bytes: a larger entry file is taken as holding a secret without reading it


TYPE = SinkType(name="file", required="dir", open=_open, scan=scan,
                entry_name_problem=lambda config, name: FileSink.name_problem(name),
                description="one file per secret in a directory (mode 0600)")
