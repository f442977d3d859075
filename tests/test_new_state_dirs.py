"""A command that fails on a new `--state` path leaves no directory behind.

Found by review 96: `keyform import --state new/deep/s.json k ID` with an id the API does not have
failed (rightly) and left `new/deep/`, made to hold the state lock, behind. The directories the
lock made are removed again when it is released, while empty; a command that writes the state
keeps them. Real `keyform` processes against the emulator on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator


def test_a_failed_import_leaves_no_directory(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k: {provider: qp}\n")
    res = project.run_process("import", "-f", str(project.manifest), "--state", "new/deep/s.json", "k", "nosuchid")
    assert res.exit_code == 1 and "qp has no key with id nosuchid" in res.stderr, res.stderr
    # old code: new/deep/ was left, empty
    assert not (project.root / "new").exists()


def test_a_failed_apply_leaves_no_directory_and_a_good_one_keeps_its_state(tmp_path: Path,
                                                                            emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k: {provider: qp}\n")
    res = project.run_process("apply", "-f", str(project.manifest), "--auto-approve", "--state", "new/s.json",
                              env={"QUESTRA_TOKEN": ""})
    assert res.exit_code == 1, res.stderr
    assert not (project.root / "new").exists()
    res = project.run_process("apply", "-f", str(project.manifest), "--auto-approve", "--state", "new/s.json")
    assert res.exit_code == 0, res.stderr
    assert (project.root / "new" / "s.json").is_file()
    assert sorted(p.name for p in (project.root / "new").iterdir()) == ["s.json"]


def test_a_directory_that_was_there_is_left(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k: {provider: qp}\n")
    (project.root / "there").mkdir()
    res = project.run_process("import", "-f", str(project.manifest), "--state", "there/new/s.json", "k", "nosuchid")
    assert res.exit_code == 1
    assert (project.root / "there").is_dir() and not (project.root / "there" / "new").exists()


def test_a_keyform_waiting_for_the_lock_takes_it_when_its_maker_removes_the_directory(tmp_path: Path) -> None:
    """Review s42: a second keyform waiting (--lock-timeout) on a lock whose holder made its new
    directory failed with "cannot open the state lock: No such file or directory" once that holder
    released the lock and removed the directory, empty, with it."""
    import threading

    from keyform.backends.base import LockInfo
    from keyform.backends.local import LocalBackend

    path = tmp_path / "new" / "deep" / "s.json"
    first, second = LocalBackend(path), LocalBackend(path)
    held = first.acquire_lock("import")
    got: list[LockInfo | Exception] = []

    def wait_for_it() -> None:
        try:
            got.append(second.acquire_lock("plan", timeout=10))
        except Exception as exc:  # (asserted below)
            got.append(exc)

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    time.sleep(0.5)  # the second is polling for the lock
    first.release_lock(held)
    waiter.join(15)
    assert len(got) == 1 and not isinstance(got[0], Exception), got
    second.release_lock(got[0])
