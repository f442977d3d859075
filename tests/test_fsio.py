"""keyform.fsio: atomic replace, private modes, durable appends."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyform import fsio
from tests.conftest import CountFsyncs


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_atomic_write_creates_file_with_exact_bytes_and_mode_0600(tmp_path: Path, loose_umask: None) -> None:
    target = tmp_path / "out.bin"
    fsio.atomic_write(target, b"hello\x00world")
    assert target.read_bytes() == b"hello\x00world"
    assert mode_of(target) == 0o600
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_forces_mode_on_rewrite_of_a_world_readable_file(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    fsio.atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o600


def test_atomic_write_honours_an_explicit_mode_despite_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        fsio.atomic_write(tmp_path / "f", b"x", mode=0o640)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "f") == 0o640


def test_failed_rename_leaves_old_file_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state"
    target.write_bytes(b"old contents")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        fsio.atomic_write(target, b"new contents")
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["state"]


def test_failed_write_leaves_old_file_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state"
    target.write_bytes(b"old")

    def boom(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        fsio.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state"]


def test_atomic_write_through_a_symlink_replaces_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.env"
    real.write_text("A=1\n")
    link = tmp_path / "link.env"
    link.symlink_to(real)
    fsio.atomic_write(link, b"A=2\n")
    assert link.is_symlink()
    assert real.read_bytes() == b"A=2\n"


def test_atomic_write_fsyncs_file_and_directory(tmp_path: Path, count_fsyncs: CountFsyncs) -> None:
    synced = count_fsyncs()
    fsio.atomic_write(tmp_path / "f", b"x")
    assert len(synced) == 2  # the temp file's data, then the directory entry


def test_ensure_dir_creates_missing_parents_0700(tmp_path: Path, loose_umask: None) -> None:
    deep = tmp_path / "a" / "b" / "c"
    fsio.ensure_dir(deep)
    for d in (tmp_path / "a", tmp_path / "a" / "b", deep):
        assert d.is_dir()
        assert mode_of(d) == 0o700


def test_ensure_dir_leaves_existing_directories_alone(tmp_path: Path) -> None:
    existing = tmp_path / "shared"
    existing.mkdir()
    os.chmod(existing, 0o755)
    fsio.ensure_dir(existing / "private")
    assert mode_of(existing) == 0o755
    assert mode_of(existing / "private") == 0o700


def test_ensure_dir_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        fsio.ensure_dir(tmp_path / "file")
    with pytest.raises(OSError):
        fsio.ensure_dir(tmp_path / "file" / "sub")


def test_ensure_dir_walks_again_when_a_parent_is_removed_under_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """CI s45: a keyform waiting for the lock of a new `--state` path saw `new` there and made
    `new/deep`, while the holder, releasing, removed `new` (empty, made by it): "cannot make the
    directory of the state: ... No such file or directory". The walk is done again."""
    (tmp_path / "new").mkdir()
    real = os.mkdir
    calls: list[str] = []

    def racing_mkdir(path: os.PathLike[str] | str, mode: int = 0o777) -> None:
        calls.append(os.path.basename(path))
        if len(calls) == 1:
            os.rmdir(tmp_path / "new")  # the holder's release, between the walk and this mkdir
        real(path, mode)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    made = fsio.ensure_dir(tmp_path / "new" / "deep")
    assert (tmp_path / "new" / "deep").is_dir()
    assert calls == ["deep", "new", "deep"] and made == [tmp_path / "new", tmp_path / "new" / "deep"]


def test_ensure_dir_walked_again_names_each_directory_it_made_once(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory made by the first walk and removed under it (`a/b`, another keyform's release)
    is made again by the second: it was named twice (`[a, a/b, a/b, a/b/c]`), and the lock's
    release, removing them innermost first, stopped at the second `a/b` (already gone) and left `a`."""
    real = os.mkdir
    calls: list[str] = []

    def racing_mkdir(path: os.PathLike[str] | str, mode: int = 0o777) -> None:
        calls.append(os.path.basename(path))
        if calls == ["a", "b", "c"]:
            os.rmdir(tmp_path / "a" / "b")  # between the walk and this mkdir
        real(path, mode)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    made = fsio.ensure_dir(tmp_path / "a" / "b" / "c")
    assert calls == ["a", "b", "c", "b", "c"]
    assert made == [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"], made


def test_fsync_dir_accepts_a_directory_and_fails_on_a_missing_one(tmp_path: Path) -> None:
    fsio.fsync_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsio.fsync_dir(tmp_path / "missing")


def test_append_line_durably_writes_one_line_and_fsyncs(tmp_path: Path, count_fsyncs: CountFsyncs) -> None:
    path = tmp_path / "log"
    fh = fsio.open_for_append(path)
    synced = count_fsyncs()
    try:
        fsio.append_line_durably(fh, '{"a":1}')
        fsio.append_line_durably(fh, '{"b":"é"}')
    finally:
        fh.close()
    assert path.read_bytes() == '{"a":1}\n{"b":"é"}\n'.encode()
    assert len(synced) == 2
    assert mode_of(path) == 0o600


def test_append_line_durably_rejects_embedded_line_breaks(tmp_path: Path) -> None:
    with fsio.open_for_append(tmp_path / "log") as fh:
        with pytest.raises(ValueError):
            fsio.append_line_durably(fh, "one\ntwo")
        with pytest.raises(ValueError):
            fsio.append_line_durably(fh, "one\rtwo")
    assert (tmp_path / "log").read_bytes() == b""


@pytest.mark.parametrize(("before", "after"), [
    (b"", b""),
    (b"complete\n", b"complete\n"),
    (b"complete\ntorn", b"complete\n"),
    (b"torn only", b""),
    (b"a\n" + b"x" * 200_000, b"a\n"),  # the torn tail spans several read chunks
])
def test_open_for_append_cuts_a_torn_last_line(tmp_path: Path, before: bytes, after: bytes) -> None:
    path = tmp_path / "log"
    path.write_bytes(before)
    with fsio.open_for_append(path) as fh:
        assert path.read_bytes() == after
        fsio.append_line_durably(fh, "next")
    assert path.read_bytes() == after + b"next\n"


class _Trickle:
    """A file that takes at most `per_write` bytes a call, then none once `room` is used up."""

    def __init__(self, per_write: int, room: int) -> None:
        self.per_write, self.room, self.data = per_write, room, b""

    def write(self, b: memoryview) -> int:
        n = min(len(b), self.per_write, self.room - len(self.data))
        self.data += bytes(b[:n])
        return n

    def flush(self) -> None:
        pass


def test_append_lines_writes_everything_a_short_writing_file_takes(tmp_path: Path) -> None:
    """An unbuffered file may take part of a write: the rest is written, not dropped (a batch of
    journal lines that the kernel cut short was reported durable)."""
    fh = _Trickle(per_write=5, room=1000)
    fsio.append_lines(fh, ["one", "two", "three"])  # type: ignore[arg-type]
    assert fh.data == b"one\ntwo\nthree\n"
    full = _Trickle(per_write=5, room=7)
    with pytest.raises(OSError, match="took none of the bytes"):
        fsio.append_lines(full, ["one", "two"])  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["symlink", "dangling symlink", "hard link", "fifo", "directory"])
def test_open_for_append_opens_only_a_file_of_its_own(tmp_path: Path, kind: str) -> None:
    """The apply journal's open followed a link planted at its path (review): every record, and
    a torn-tail cut, went into whatever file it led to."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"IMPORTANT\ntorn")  # the torn-tail cut would have truncated it too
    path = tmp_path / "log"
    expected: type[OSError] = fsio.IsSymlinkError
    if kind == "symlink":
        path.symlink_to(victim)
    elif kind == "dangling symlink":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "hard link":
        os.link(victim, path)
        expected = fsio.HardLinkedError
    elif kind == "fifo":
        os.mkfifo(path)
        expected = fsio.NotAFileError
    else:
        path.mkdir()
        expected = IsADirectoryError
    with pytest.raises(expected):
        fsio.open_for_append(path)
    assert victim.read_bytes() == b"IMPORTANT\ntorn"
    assert not (tmp_path / "nowhere").exists()


def test_open_own_refuses_a_link_planted_after_its_lstat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check before the open is only for the message: O_NOFOLLOW refuses a link put there after it."""
    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT\n")
    path = tmp_path / "lock"
    real_lstat = os.lstat
    planted: list[bool] = []

    def lstat_then_plant(p: str, *args: object, **kwargs: object) -> os.stat_result:
        if os.fspath(p) == str(path) and not planted:
            planted.append(True)
            path.symlink_to(victim)
            raise FileNotFoundError(p)
        return real_lstat(p)

    monkeypatch.setattr(os, "lstat", lstat_then_plant)
    with pytest.raises(fsio.IsSymlinkError):
        fsio.open_own(path, os.O_RDWR | os.O_CREAT)
    assert victim.read_text() == "IMPORTANT\n"


def test_atomic_write_without_following_links_writes_where_the_kernel_resolves_the_path(tmp_path: Path) -> None:
    """`link/../f` is in the parent of link's target, as every open of it resolves it; the lexical
    `abspath` put it beside `link` instead (a `--state` so written had its backup go elsewhere)."""
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    fsio.atomic_write(tmp_path / "link" / ".." / "f", b"x", follow_symlinks=False)
    assert (tmp_path / "real" / "f").read_bytes() == b"x"
    assert not (tmp_path / "f").exists()
