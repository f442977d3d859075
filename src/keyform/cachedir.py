"""The directory of keyform's caches, and its entries: one JSON file each (after a line sealing it),
named by a keyed digest.

`manifest/parsecache` (parsed manifest files) and `checkcache` (verdicts of the state check) keep
their entries here. The directory is `$KEYFORM_CACHE_DIR`, else `$XDG_CACHE_HOME/keyform/manifests`,
else `~/.cache/keyform/manifests`, created 0700 (a variable that is blank, or not an absolute path,
is taken as unset, as the XDG Base Directory spec says: `_absolute`); a directory not owned by the user or writable by
group or others is not used; `KEYFORM_NO_CACHE=1` turns every cache off. Entries are 0600, written
to a temp file and renamed into place; at most `MAX_ENTRIES` are kept (the least recently used go
first). Reading never follows a link, never blocks on a FIFO, never reads more than asked.

An entry's name is an HMAC-SHA256, under this user's **cache key**, of what the entry is about and
of `code_stamp` (keyform's and Python's versions, the entry format, and the size and mtime of the
modules that produce it). The key is 32 random bytes kept apart from the cache, in
`$XDG_STATE_HOME/keyform/cache-key`, else `~/.local/state/keyform/cache-key` (0600 in a 0700
directory, made on first use). Without the key no one can name an entry keyform would read: a
cache directory restored from elsewhere (another machine, a CI cache an untrusted job could write)
or written by someone else is never trusted, and a planted entry is never found. A key file that
is not a plain 0600 file of this user, or not a key, turns the caches off (nothing is read or
written) rather than trusting it.

An entry's content is sealed too: its first line is the HMAC-SHA256, under the same key, of its
name and of the rest of the file (`seal`). An entry whose content was changed under its name (by
someone who can write the directory, or restore it from a CI cache, but cannot read the key: a
manifest whose `base_url` sends the token elsewhere) fails that check and is never read.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import stat
import sys
import tempfile
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from keyform import __version__

MAX_ENTRIES = 256
_SUFFIX = ".json"
_KEY_HEX = 64  # the cache key file: 32 random bytes in hex, nothing else
_SEAL_HEX = 64  # an entry's first line: `seal` of its name and content, in hex


log = logging.getLogger(__name__)
_noted: set[tuple[str, str]] = set()


def _absolute(env: Mapping[str, str], name: str) -> str | None:
    """Variable `name`'s value when it is an absolute path; None when it is unset or blank (as the XDG
    Base Directory spec says of an empty one), or relative, or holds a control character (a
    newline): such a value is ignored, as the spec says of a relative path ("If an implementation
    encounters a relative path in any of these variables it should consider the path invalid and
    ignore it"), and said once at -v. A relative `KEYFORM_CACHE_DIR=.cache` made a directory of
    that name in whatever directory keyform ran in (a checkout), a blank one a directory named " "."""
    value = env.get(name, "")
    if not value.strip():
        return None
    if os.path.isabs(value) and value.isprintable():
        return value
    if (name, value) not in _noted:
        _noted.add((name, value))
        log.debug("cache: %s=%r ignored: not an absolute path (the XDG base directory rule); its default is used",
                  name, value[:200])
    return None


# `KEYFORM_NO_CACHE` values that leave the cache on: unset, blank, or a "no" (`=false` turned it off)
_NOT_SET = frozenset({"", "0", "false", "no", "off"})


def cache_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """Where entries live, or None when the cache is turned off."""
    env = os.environ if env is None else env
    if env.get("KEYFORM_NO_CACHE", "").strip().lower() not in _NOT_SET:
        return None
    given = _absolute(env, "KEYFORM_CACHE_DIR")
    if given:
        return Path(given)
    base = _absolute(env, "XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):  # HOME=relative: a directory in wherever keyform runs; no cache instead
        return None
    return Path(base) / "keyform" / "manifests"


def code_stamp(producers: tuple[str, ...], entry_format: int) -> str:
    """What an entry's producers are: keyform's and Python's versions, the entry's format, and each
    producing file's size and mtime, relative to the keyform package (an edited module under the
    same version is a new stamp)."""
    root = Path(__file__).resolve().parent
    parts = [f"format={entry_format}", f"keyform={__version__}", f"python={sys.version}"]
    for name in producers:
        try:
            st = os.stat(root / name)
            parts.append(f"{name}={st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{name}=missing")
    return "\n".join(parts)


def key_path(env: Mapping[str, str] | None = None) -> Path:
    """Where this user's cache key lives (apart from the cache, so a copied cache is not trusted)."""
    env = os.environ if env is None else env
    base = _absolute(env, "XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "keyform" / "cache-key"


def entry_name(stamp: str, *parts: bytes) -> str | None:
    """The name of the entry about `parts` (each one length-prefixed) under `stamp`: the HMAC of
    both under the cache key; None when the caches are off or there is no usable key (no key is
    made while they are off)."""
    if cache_dir() is None:
        return None
    key = _cache_key(key_path())
    if key is None:
        return None
    mac = hmac.new(key, stamp.encode(), "sha256")
    for part in parts:
        mac.update(b"\0%d\0" % len(part))
        mac.update(part)
    return mac.hexdigest()


def seal(name: str, body: bytes) -> bytes | None:
    """The hex HMAC, under the cache key, of entry `name` holding `body` (None without a usable key):
    an entry's first line, checked before its content is read."""
    key = _cache_key(key_path())
    if key is None:
        return None
    # the HMAC of `keyform cache entry\0NAME\0BODY`, fed in parts: the body (a parsed manifest's
    # entry is ~100 bytes a key) is not copied into one message first
    mac = hmac.new(key, b"keyform cache entry\0%s\0" % name.encode(), "sha256")
    mac.update(body)
    return mac.hexdigest().encode()


@cache
def _cache_key(path: Path) -> bytes | None:
    """This user's cache key, made on first use; None when the file is not one (see the module)."""
    if not path.is_absolute():  # (HOME=relative: never a key file in wherever keyform runs)
        return None
    found = _read_key(path)
    if found is not None:
        return found
    try:  # there (a link, a loose file: not made again), or cannot be looked at (a name too long,
        os.lstat(path)  # a directory not searchable; pathlib's exists() raised: an internal error)
        return None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-key-")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(os.urandom(_KEY_HEX // 2).hex())  # (secrets.token_hex, whose import a plan skips)
            with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    except OSError:
        return None
    return _read_key(path)


def _read_key(path: Path) -> bytes | None:
    try:
        text = _read_plain(path, _KEY_HEX, private=True)
    except OSError:
        return None
    if text is None or len(text) != _KEY_HEX:
        return None
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def usable(directory: Path) -> bool:
    """The directory exists, is the user's, and no one else can write to it."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    getuid = getattr(os, "geteuid", None)
    owned = getuid is None or st.st_uid == getuid()
    return owned and (st.st_mode & 0o022) == 0 and os.path.isdir(directory)


def _read_plain(path: Path, limit: int, *, private: bool = False) -> bytes | None:
    """The file's bytes, or None when it is not a plain file of at most `limit` bytes (a symlink,
    a FIFO that would block, a device, a huge file) or, when `private`, not this user's alone:
    never waits, never follows a link."""
    parts = _read_parts(path, 0, limit, private=private)
    return None if parts is None else parts[1]


def _read_parts(path: Path, head: int, limit: int, *, private: bool = False) -> tuple[bytes, bytes] | None:
    """`_read_plain`, as the file's first `head` bytes (fewer in a shorter file) and the rest: an
    entry's seal line and its content, each its own bytes (the content is not cut out of a copy
    of the whole file: a 10,000-key manifest's entry is ~1 MB)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        getuid = getattr(os, "geteuid", None)
        if private and ((st.st_mode & 0o077) or (getuid is not None and st.st_uid != getuid())):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            first = fh.read(head) if head else b""
            return first, fh.read(limit + 1 - len(first))
    finally:
        os.close(fd)


def read(name: str | None, limit: int) -> bytes | None:
    """Entry `name`'s content (at most `limit` bytes) from the cache directory in use, or None: the
    caches off, no name (no key), a directory others could write, no such entry, not a plain file,
    too big, or a content its seal does not match (written under another key, or changed since)."""
    directory = cache_dir()
    if name is None or directory is None or not usable(directory):
        return None
    try:
        parts = _read_parts(directory / (name + _SUFFIX), _SEAL_HEX + 1, _SEAL_HEX + 1 + limit)
    except OSError:
        return None
    if parts is None:
        return None
    line, body = parts
    if line[_SEAL_HEX:] != b"\n":
        return None
    expected = seal(name, body)
    if expected is None or len(body) > limit or not hmac.compare_digest(expected, line[:_SEAL_HEX]):
        return None
    return body


def touch(name: str) -> None:
    """Entry `name` was just used (the least recently used go first when the cache is full)."""
    directory = cache_dir()
    if directory is not None:
        with contextlib.suppress(OSError):
            os.utime(directory / (name + _SUFFIX))


def write(name: str | None, text: str) -> None:
    """Write entry `name` (when the caches are on and there is a name: a temp file renamed into
    place, 0600, in a 0700 directory created if needed) and drop the least recently used beyond
    `MAX_ENTRIES`. Failing to write is not an error."""
    directory = cache_dir()
    if name is None or directory is None:
        return
    body = text.encode("utf-8")
    mac = seal(name, body)
    if mac is None:
        return
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not usable(directory):
            return
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(mac + b"\n" + body)
            os.replace(tmp, directory / (name + _SUFFIX))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(directory)
    except OSError:
        return


def _prune(directory: Path) -> None:
    """Keep the `MAX_ENTRIES` most recently used entries (and no stale temp file of a crashed write)."""
    entries: list[tuple[float, str]] = []
    stale = time.time() - 3600  # a temp file this old is a crashed write's, not one in flight
    with os.scandir(directory) as it:
        for item in it:
            try:
                mtime = item.stat().st_mtime
            except OSError:
                continue
            if item.name.startswith(".tmp-"):
                if mtime < stale:
                    entries.append((0.0, item.name))
            elif item.name.endswith(_SUFFIX):
                entries.append((mtime, item.name))
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort()
    for _, name in entries[:len(entries) - MAX_ENTRIES]:
        with contextlib.suppress(OSError):
            os.unlink(directory / name)
