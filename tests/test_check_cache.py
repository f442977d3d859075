"""keyform.checkcache: a state file whose exact bytes passed the check before is not checked again;
anything else (other bytes, a failing file, a bad or foreign verdict, the cache off, another
keyform) is checked as without the cache."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from keyform import cachedir, checkcache, state
from keyform.errors import StateError
from keyform.state import KeyState, State, parse_state


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("KEYFORM_CACHE_DIR", str(directory))
    monkeypatch.delenv("KEYFORM_NO_CACHE", raising=False)
    return directory


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the full state checks made (`statecheck.state_problem` through keyform.state)."""
    made: list[int] = []
    from keyform import statecheck

    real = statecheck.state_problem

    def counting(doc: object) -> str | None:
        made.append(1)
        return real(doc)
    monkeypatch.setattr(state, "state_problem", counting)
    return made


def a_state(keys: int = 3) -> bytes:
    s = State.new()
    for i in range(keys):
        s.keys[f"k{i}"] = KeyState(address=f"k{i}", provider="q", provider_type="questra", remote_id=f"ak_{i}",
                                   attrs={"name": f"k{i}"}, remote={"name": f"k{i}"}, expiry_spec="never",
                                   expires_at=None, created_at="2026-01-01T00:00:00Z", sink=None,
                                   fingerprints={})
    return s.dumps().encode()


def vname(raw: bytes) -> str:
    name = checkcache.verdict_key("state", raw)
    assert name is not None
    return name


def load(raw: bytes) -> State:
    return parse_state(raw, "keyform.state.json", "it was left untouched")


def test_the_second_load_of_the_same_bytes_skips_the_check(cache: Path, checks: list[int]) -> None:
    raw = a_state()
    first = load(raw)
    assert len(checks) == 1
    second = load(raw)
    assert len(checks) == 1
    assert second.keys == first.keys
    assert [p.name for p in cache.iterdir()] == [vname(raw) + ".json"]


def test_other_bytes_are_checked(cache: Path, checks: list[int]) -> None:
    raw = a_state()
    load(raw)
    load(raw + b"\n")
    assert len(checks) == 2


def test_a_failing_state_is_never_remembered_and_always_refused(cache: Path, checks: list[int]) -> None:
    doc = json.loads(a_state())
    doc["keys"]["k0"]["created_at"] = "yesterday"
    raw = json.dumps(doc).encode()
    for _ in range(2):
        with pytest.raises(StateError, match=r'keys\.k0\.created_at'):
            load(raw)
    assert len(checks) == 2
    assert not cache.exists() or not any(cache.iterdir())


def test_a_verdict_for_one_file_does_not_pass_another(cache: Path, checks: list[int]) -> None:
    """A hostile or stale entry renamed to another file's verdict name is not that file's verdict."""
    good = a_state()
    load(good)
    doc = json.loads(good)
    doc["keys"]["k0"]["created_at"] = "yesterday"
    bad = json.dumps(doc).encode()
    os.rename(cache / (vname(good) + ".json"),
              cache / (vname(bad) + ".json"))
    with pytest.raises(StateError, match=r"keys\.k0\.created_at"):
        load(bad)


@pytest.mark.parametrize("content", [b"", b"{}", b"passed", b"\xff\xfe", b"[" * 100_000,
                                     b'{"format":1,"key":"x","check":"state","verdict":"passed"}'])
def test_a_bad_verdict_entry_is_no_verdict(cache: Path, checks: list[int], content: bytes) -> None:
    raw = a_state()
    cache.mkdir(mode=0o700)
    (cache / (vname(raw) + ".json")).write_bytes(content)
    load(raw)
    assert len(checks) == 1


def test_a_verdict_that_is_a_link_or_a_fifo_is_no_verdict(cache: Path, checks: list[int], tmp_path: Path) -> None:
    raw = a_state()
    load(raw)
    entry = cache / (vname(raw) + ".json")
    target = tmp_path / "elsewhere"
    os.rename(entry, target)
    entry.symlink_to(target)
    load(raw)
    entry.unlink()
    os.mkfifo(entry)
    load(raw)  # never blocks
    assert len(checks) == 3


def test_the_cache_off_checks_every_time(cache: Path, checks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYFORM_NO_CACHE", "1")
    raw = a_state()
    load(raw)
    load(raw)
    assert len(checks) == 2
    assert not cache.exists()


def test_a_directory_others_can_write_is_not_trusted(cache: Path, checks: list[int]) -> None:
    raw = a_state()
    load(raw)
    cache.chmod(0o777)
    try:
        load(raw)
    finally:
        cache.chmod(0o700)
    assert len(checks) == 2


def test_another_keyform_never_trusts_the_verdict(cache: Path, checks: list[int],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    raw = a_state()
    load(raw)
    key = checkcache.verdict_key("state", raw)
    checkcache._stamp.cache_clear()
    monkeypatch.setattr(cachedir, "__version__", "999.0")
    try:
        assert checkcache.verdict_key("state", raw) != key
        load(raw)
        assert len(checks) == 2
    finally:
        checkcache._stamp.cache_clear()


def test_an_edited_check_module_never_trusts_the_verdict(cache: Path) -> None:
    """The stamp names the check's modules and schema: an editable install's edit is a new stamp."""
    stamp = checkcache._stamp()
    for producer in ("statecheck.py", "state.py", "manifest/fastcheck.py", "schemas/state.schema.json"):
        assert f"\n{producer}=" in stamp
    assert "=missing" not in stamp


def test_an_unwritable_cache_is_not_an_error(cache: Path, checks: list[int], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("KEYFORM_CACHE_DIR", str(blocker / "cache"))
    raw = a_state()
    load(raw)
    load(raw)
    assert len(checks) == 2


def test_a_verdict_written_under_another_users_key_is_never_read(cache: Path, checks: list[int], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache directory restored from elsewhere holds verdicts named under another key: none is
    found, and one planted under the name an unkeyed digest would give is not read either."""
    raw = a_state()
    load(raw)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "another-home"))
    load(raw)
    assert len(checks) == 2
    doc = json.loads(raw)
    doc["keys"]["k0"]["created_at"] = "yesterday"
    bad = json.dumps(doc).encode()
    unkeyed = "check-" + hashlib.sha256(checkcache._stamp().encode() + b"\0state\0" + bad).hexdigest()
    (cache / (unkeyed + ".json")).write_text(
        json.dumps({"format": 1, "key": unkeyed, "check": "state", "verdict": "passed"}, separators=(",", ":")))
    with pytest.raises(StateError, match=r"keys\.k0\.created_at"):
        load(bad)
