"""keyform.backends.local: the local state file, its backup, lock and journal."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from keyform.backends.base import LockInfo
from keyform.backends.local import LocalBackend
from keyform.errors import LockError, LockLostError, StateError
from keyform.journal import Created, Failed, Intent, Record, Sunk
from keyform.model import SinkTarget
from keyform.state import FORMAT_VERSION, DeposedKey, KeyState, State
from tests.conftest import CountFsyncs

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "state.schema.json"


def sample_state() -> State:
    state = State.new()
    state.keys["ci-bot"] = KeyState(
        address="ci-bot", provider="questra-prod", provider_type="questra", remote_id="key_1",
        attrs={"name": "CI bot"}, remote={"name": "CI bot", "revoked": False}, expiry_spec="in:90d",
        expires_at="2027-06-01T00:00:00Z", created_at="2027-03-03T00:00:00Z",
        sink=SinkTarget("dev-env", "QUESTRA_CI_BOT"), applied_at="2027-03-03T00:00:00Z",
    )
    state.keys["ana-questra"] = KeyState(
        address="ana-questra", provider="textql", provider_type="textql", remote_id="tq_9",
        attrs={"hosts": ["api.questra.ai"], "description": "Questra access for Ana"}, remote={},
        expiry_spec="never", expires_at=None, created_at="2027-03-03T00:00:01Z", sink=None,
        fingerprints={"auth_value": state.fingerprint("not-stored")}, prevent_destroy=True,
    )
    state.deposed.append(DeposedKey(address="ci-bot", provider="questra-prod", provider_type="questra",
                                    remote_id="key_0", deposed_at="2027-03-03T00:00:00Z",
                                    revoke_after="2027-03-04T00:00:00Z", last_error="HTTP 503"))
    return state


@pytest.fixture
def store(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "keyform.state.json")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------------------------- load / save


def test_missing_state_loads_as_none(store: LocalBackend) -> None:
    assert store.load() is None


def test_saved_state_round_trips(store: LocalBackend) -> None:
    state = sample_state()
    assert store.load() is None
    store.save(state)
    loaded = LocalBackend(store.path).load()
    assert loaded == state
    assert store.path.read_text() == state.dumps()
    assert mode_of(store.path) == 0o600


def test_a_key_s_sink_is_a_sink_target_in_memory_and_sink_as_in_the_file(store: LocalBackend) -> None:
    store.save(sample_state())
    text = store.path.read_text()
    assert '"sink": {"sink": "dev-env", "as": "QUESTRA_CI_BOT"}' in text and '"sink": null' in text
    loaded = LocalBackend(store.path).load()
    assert loaded is not None
    assert loaded.keys["ci-bot"].sink == SinkTarget("dev-env", "QUESTRA_CI_BOT")
    assert loaded.keys["ana-questra"].sink is None
    assert loaded.dumps() == text  # a state file loads and saves byte-identically


def test_each_save_increments_the_serial_by_one(store: LocalBackend) -> None:
    state = State.new()
    store.save(state)
    store.save(state)
    assert state.serial == 2
    loaded = store.load()
    assert loaded is not None and loaded.serial == 2


def test_backup_holds_the_previous_version(store: LocalBackend) -> None:
    state = sample_state()
    store.save(state)
    first = store.path.read_bytes()
    assert not store.backup_path.exists()
    state.keys.pop("ci-bot")
    store.save(state)
    assert store.backup_path.read_bytes() == first
    state.deposed.clear()
    second = store.path.read_bytes()
    store.save(state)
    assert store.backup_path.read_bytes() == second
    assert json.loads(store.path.read_bytes())["serial"] == 3


def test_backup_falls_back_to_a_copy_where_hard_links_fail(store: LocalBackend,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    state = sample_state()
    store.save(state)
    first = store.path.read_bytes()

    def no_links(src: object, dst: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    store.save(state)
    assert store.backup_path.read_bytes() == first
    assert mode_of(store.backup_path) == 0o600


@pytest.mark.parametrize("links", ["hard links", "no hard links"])
def test_a_symlink_at_the_backup_is_replaced_never_written_through(store: LocalBackend, links: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy made where hard links fail followed a link at `<state>.backup` (review): the
    previous state overwrote the file it led to."""
    state = sample_state()
    store.save(state)
    first = store.path.read_bytes()
    victim = store.path.with_name("victim.txt")
    victim.write_text("IMPORTANT\n")
    store.backup_path.symlink_to(victim)
    if links == "no hard links":
        def no_links(src: object, dst: object) -> None:
            raise OSError(1, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
    store.save(state)
    assert victim.read_text() == "IMPORTANT\n"
    assert not store.backup_path.is_symlink() and store.backup_path.read_bytes() == first


def test_crash_during_rename_leaves_the_old_state_intact(store: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    state = sample_state()
    store.save(state)
    before = store.path.read_bytes()
    real_replace = os.replace

    def crash_on_state(src: str, dst: str) -> None:
        if os.path.realpath(dst) == os.path.realpath(store.path):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_state)
    state.keys.clear()
    with pytest.raises(StateError, match=r"No space left on device.*previous version is intact"):
        store.save(state)
    assert store.path.read_bytes() == before
    assert state.serial == 1  # restored: the failed write did not consume a serial
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["keyform.state.json", "keyform.state.json.backup"]


def test_save_creates_missing_state_directory_0700(tmp_path: Path) -> None:
    store = LocalBackend(tmp_path / "nested" / "dir" / "keyform.state.json")
    store.save(State.new())
    assert mode_of(tmp_path / "nested") == 0o700
    assert store.load() is not None


def test_save_refuses_when_the_file_changed_on_disk_since_load(store: LocalBackend) -> None:
    store.save(State.new())
    state = store.load()
    assert state is not None
    other = LocalBackend(store.path)
    other_state = other.load()
    assert other_state is not None
    other.save(other_state)
    after_other = store.path.read_bytes()
    with pytest.raises(StateError, match="changed on disk"):
        store.save(state)
    assert store.path.read_bytes() == after_other


def test_save_refuses_when_a_state_appeared_after_loading_none(store: LocalBackend) -> None:
    assert store.load() is None
    LocalBackend(store.path).save(State.new())
    with pytest.raises(StateError, match="was not read first"):
        store.save(State.new())


def test_save_refuses_to_overwrite_a_state_it_has_not_loaded(store: LocalBackend) -> None:
    LocalBackend(store.path).save(sample_state())
    before = store.path.read_bytes()
    with pytest.raises(StateError, match="was not read first"):
        store.save(State.new())
    assert store.path.read_bytes() == before
    loaded = store.load()
    assert loaded is not None
    store.save(loaded)


def test_saved_file_validates_against_the_schema(store: LocalBackend) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for state in (State.new(), sample_state()):
        store.save(state)
        validator.validate(json.loads(store.path.read_bytes()))


def test_schema_rejects_unknown_fields_and_a_newer_format() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    doc = sample_state().to_json()
    jsonschema.validate(doc, schema)
    for bad in ({**doc, "secret": "x"}, {**doc, "format_version": 3},
                {**doc, "keys": {"ci-bot": {**doc["keys"]["ci-bot"], "secret": "x"}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_schema_lists_exactly_the_fields_state_writes() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    doc = sample_state().to_json()
    # fingerprint_key_check: written only in keyed fingerprint mode (keyform.fingerprintkey);
    # written_entries: only when keyform wrote sink entries no key records (issue 14);
    # stale_entries: only when a sink move's old entry could not be removed yet
    optional = {"fingerprint_key_check", "written_entries", "stale_entries"}
    assert set(schema["properties"]) - optional == set(doc) == set(schema["required"])
    keyed = sample_state()
    keyed.key_check = "0123456789abcdef"
    keyed.written = {"env": {"LEFT_BY_A_CRASH"}}
    keyed.note_stale(SinkTarget("env", "OLD_NAME"), "ci-bot")
    assert set(keyed.to_json()) == set(schema["properties"])
    jsonschema.validate(keyed.to_json(), schema)
    key_def, deposed_def = schema["$defs"]["key"], schema["$defs"]["deposed_key"]
    # applied_at is optional: records written before keyform kept it lack it (and stay valid);
    # secret_fingerprint: only for a key whose create issued a secret (stop 37)
    assert set(key_def["properties"]) - {"secret_fingerprint"} == set(key_def["required"]) | {"applied_at"} \
        == set(doc["keys"]["ci-bot"])
    with_fp = {**doc["keys"]["ci-bot"], "secret_fingerprint": "48:hmac-sha256:" + "0" * 64}
    jsonschema.validate({**doc, "keys": {"ci-bot": with_fp}}, schema)
    for bad in ("sk_live_0123456789", "48:" + "0" * 64, "0:hmac-sha256:" + "0" * 64):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**doc, "keys": {"ci-bot": {**with_fp, "secret_fingerprint": bad}}}, schema)
    # fed_by: only for an old key issued with secret_of inputs (stop 40); revoke_requested: only for
    # one a `--revoke-old` set out to revoke and did not (review s45)
    assert set(deposed_def["properties"]) - {"secret_fingerprint", "fed_by", "revoke_requested"} \
        == set(doc["deposed"][0])
    jsonschema.validate({**doc, "deposed": [{**doc["deposed"][0], "revoke_requested": True}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "deposed": [{**doc["deposed"][0], "revoke_requested": False}]}, schema)
    with_fed = {**doc["deposed"][0], "fed_by": ["secret_of:src@ak_1"]}
    jsonschema.validate({**doc, "deposed": [with_fed]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "deposed": [{**with_fed, "fed_by": ["env:HOME"]}]}, schema)
    # the usage rule came later: states written before it (without these fields) stay valid
    assert set(deposed_def["required"]) == set(doc["deposed"][0]) - {"unused_for", "on_grace_end"}


def write_raw(store: LocalBackend, text: str) -> bytes:
    store.path.write_text(text)
    return store.path.read_bytes()


def valid_doc() -> dict[str, object]:
    return sample_state().to_json()


def with_key(**fields: object) -> dict[str, object]:
    doc = valid_doc()
    keys = doc["keys"]
    assert isinstance(keys, dict)
    keys["ci-bot"] = {**keys["ci-bot"], **fields}
    return doc


def with_deposed(**fields: object) -> dict[str, object]:
    doc = valid_doc()
    deposed = doc["deposed"]
    assert isinstance(deposed, list) and deposed
    deposed[0] = {**deposed[0], **fields}
    return doc


@pytest.mark.parametrize(("content", "message"), [
    ('{\n  "format_version": 1,\n', r"not valid JSON \(truncated\?\): line 3 column 1; it was left untouched — "
                                    r"fix it, or restore it from a copy$"),  # no backup to name
    ("", r"not valid JSON \(truncated\?\): line 1 column 1"),
    ("[]", "does not hold a JSON object"),
    (json.dumps({**valid_doc(), "format_version": 3}),
     r"was written by a newer keyform \(format 3; this keyform reads 1 and 2\)"),
    (json.dumps({k: v for k, v in valid_doc().items() if k != "lineage"}), 'missing required field "lineage"'),
    (json.dumps({k: v for k, v in valid_doc().items() if k != "format_version"}),
     'missing required field "format_version"'),
    (json.dumps({**valid_doc(), "serial": "7"}), """field "serial": '7' is not of type 'integer'"""),
    (json.dumps({**valid_doc(), "fingerprint_salt": "zz"}), """field "fingerprint_salt": 'zz' does not match"""),
    (json.dumps({**valid_doc(), "format_version": 0}), "unsupported format_version 0"),
    # '1' (this keyform reads 1) read as a contradiction: it is the type that is wrong
    (json.dumps({**valid_doc(), "format_version": "1"}),
     r"unsupported format_version '1' \(this keyform reads 1 and 2, a number\)"),
    (json.dumps({**valid_doc(), "keys": {"ci-bot": {"provider": "p", "provider_type": "questra",
                                                    "created_at": "2027-01-01T00:00:00Z"}}}),
     'missing required field "keys.ci-bot.remote_id"'),
    (json.dumps({**valid_doc(), "deposed": [{"address": "x"}]}), r'missing required field "deposed\[0\].provider"'),
    (json.dumps({**valid_doc(), "keys": []}), """field "keys": \\[\\] is not of type 'object'"""),
    # issue 14: each of these once loaded, then crashed later (or planned a create of every key)
    (json.dumps({k: v for k, v in valid_doc().items() if k != "keys"}), 'missing required field "keys"'),
    (json.dumps({**valid_doc(), "fingerprint_salt": ""}), """field "fingerprint_salt": '' does not match"""),
    (json.dumps(with_key(sink="x")), """field "keys.ci-bot.sink": 'x' is not valid"""),
    (json.dumps(with_key(sink={"sink": "env"})), 'missing required field "keys.ci-bot.sink.as"'),
    (json.dumps(with_key(expiry_spec=5)), """field "keys.ci-bot.expiry_spec": 5 is not of type 'string'"""),
    (json.dumps(with_key(created_at="2027-13-45T00:00:00Z")),
     'field "keys.ci-bot.created_at": "2027-13-45T00:00:00Z" is not a timestamp keyform can use'),
    (json.dumps(with_deposed(revoke_after="garbage")), """field "deposed\\[0\\].revoke_after": 'garbage' does not match"""),
    (json.dumps(with_deposed(revoke_after="0001-01-01T00:00:00Z")),
     r'field "deposed\[0\].revoke_after": "0001-01-01T00:00:00Z" is not a timestamp keyform can use'),
    # a second record of one address was kept silently, the first key (live) untracked
    (json.dumps(with_key()).replace('"keys": {', '"keys": {"ci-bot": {}, ', 1),
     "has the key 'ci-bot' twice in one object \\(a hand edit or a merge\\?\\): keyform would keep only the last"),
    ('{"serial": 1, "serial": 2}', "has the key 'serial' twice in one object"),
])
def test_unusable_state_is_refused_and_left_byte_for_byte(store: LocalBackend, content: str, message: str) -> None:
    before = write_raw(store, content)
    with pytest.raises(StateError, match=message) as info:
        store.load()
    assert str(info.value).startswith(f"{store.path}: ")
    with pytest.raises(StateError, match="was not read first; refusing to overwrite it"):
        store.save(State.new())
    assert store.path.read_bytes() == before
    assert not store.backup_path.exists()


def test_a_refused_state_names_its_backup_only_when_there_is_one(store: LocalBackend) -> None:
    """The advice 'restore it from keyform.state.json.backup' was given after a single save (no
    backup yet), and for the file `state push` was given (no backup of that file at all)."""
    store.load()
    store.save(State.new())
    write_raw(store, "{")
    with pytest.raises(StateError, match=r"fix it, or restore it from a copy$"):
        store.load()
    store.backup_path.write_text("{}")
    with pytest.raises(StateError, match=r"restore it from .*keyform.state.json.backup or fix it$"):
        store.load()


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_state_path_that_is_a_link_or_a_fifo_is_refused_without_blocking(store: LocalBackend, kind: str) -> None:
    """A symlinked state was read and saved: the save renamed a new file over the link, and the
    backup was a hard link to the link itself, so the last version was lost. A FIFO blocked the
    read forever, with the state lock held."""
    if kind == "symlink":
        real = store.path.with_name("real.json")
        real.write_text(json.dumps(valid_doc()))
        store.path.symlink_to(real)
        expected = "the state file is a symbolic link"
    else:
        os.mkfifo(store.path)
        expected = "the state path is not a regular file"
    with pytest.raises(StateError, match=expected):
        store.load()
    journal = store.journal_path
    store.path.unlink()
    os.mkfifo(journal)
    with pytest.raises(StateError, match="the apply journal is not a regular file"):
        store.read_journal()


def test_invalid_utf8_state_is_refused(store: LocalBackend) -> None:
    store.path.write_bytes(b'{"lineage": "\xff"}')
    with pytest.raises(StateError, match="not valid UTF-8"):
        store.load()


def test_unreadable_state_is_refused(store: LocalBackend) -> None:
    store.path.mkdir()  # a directory where the file should be: unreadable even for root
    with pytest.raises(StateError, match=f"{store.path}: cannot read the state file"):
        store.load()


# ----------------------------------------------------------------------------------------- lock


def test_lock_file_is_exclusive_private_and_describes_the_holder(store: LocalBackend) -> None:
    with store.lock("apply") as info:
        assert mode_of(store.lock_path) == 0o600
        held = json.loads(store.lock_path.read_text())
        assert held == {"id": info.id, "pid": os.getpid(), "host": socket.gethostname(), "operation": "apply",
                        "created_at": info.created_at, "version": info.version}
        assert held["created_at"].endswith("Z")
        with pytest.raises(LockError, match=f"lock ID {info.id}"):
            store.acquire_lock("plan")
    assert not store.lock_path.exists()


def test_lock_waits_until_a_holder_releases_within_the_timeout(store: LocalBackend) -> None:
    first = store.acquire_lock("apply")
    timer = threading.Timer(0.3, store.release_lock, args=(first,))
    started = time.monotonic()  # before the timer starts: a stall in between cannot shorten the wait seen
    timer.start()
    with store.lock("apply", timeout=5) as second:
        assert time.monotonic() - started >= 0.25
        assert second.id != first.id
    timer.join()


HOLD_LOCK = """
import sys, time
from pathlib import Path
from keyform.backends.local import LocalBackend
info = LocalBackend(Path(sys.argv[1])).acquire_lock("apply")
print(info.id, flush=True)
time.sleep(60)
"""


def test_lock_held_by_another_process_times_out_naming_pid_and_id(store: LocalBackend) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        lock_id = child.stdout.readline().strip()
        started = time.monotonic()
        with pytest.raises(LockError) as info:
            store.acquire_lock("plan", timeout=0.5)
        waited = time.monotonic() - started
        assert 0.5 <= waited < 3
        message = str(info.value)
        assert f"state is locked by pid {child.pid} on {socket.gethostname()} (operation \"apply\", since " in message
        assert f"lock ID {lock_id}. Wait for it to finish (its lock is released when it exits" in message
        # alive on this host: force-unlock refuses, naming it, and the lock stays
        with pytest.raises(LockError, match=f"refusing to force-unlock: pid {child.pid} on .* is still running"):
            store.force_unlock(lock_id)
        assert store.lock_path.exists()
    finally:
        child.kill()
        child.wait()
    # The holder died without releasing: its OS lock went with it; the file is taken over silently.
    assert json.loads(store.lock_path.read_text())["id"] == lock_id
    with store.lock("plan") as mine:
        assert json.loads(store.lock_path.read_text())["id"] == mine.id
    assert not store.lock_path.exists()


def test_force_unlock_removes_only_a_matching_lock_of_a_holder_not_alive(store: LocalBackend) -> None:
    with pytest.raises(StateError, match="state is not locked"):
        store.force_unlock("nope")
    info = store.acquire_lock("apply")
    with pytest.raises(StateError, match=f"lock ID does not match: the state is locked with ID {info.id}"):
        store.force_unlock("nope")
    with pytest.raises(LockError, match=f"refusing to force-unlock: pid {os.getpid()} .*lock ID {info.id}"):
        store.force_unlock(info.id)
    assert store.lock_path.exists()
    store.release_lock(info)
    # a record left with no OS lock held (a dead holder's): force-unlock removes it
    store.lock_path.write_text(json.dumps(info.to_json()))
    assert store.force_unlock(info.id) == info
    assert not store.lock_path.exists()


def test_release_after_force_unlock_from_another_host_leaves_the_new_holders_lock(
        store: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = store.acquire_lock("apply")
    with monkeypatch.context() as m:  # another machine on a shared filesystem cannot tell it is alive
        m.setattr(socket, "gethostname", lambda: "elsewhere")
        store.force_unlock(mine.id)
    assert not store.lock_path.exists()
    other = LocalBackend(store.path)
    theirs = other.acquire_lock("apply")
    store.release_lock(mine)
    assert LockInfo.from_json(json.loads(store.lock_path.read_text())) == theirs
    other.release_lock(theirs)
    assert not store.lock_path.exists()


def test_unreadable_lock_file_with_no_holder_is_taken_over(store: LocalBackend) -> None:
    store.lock_path.write_text("garbage")
    with pytest.raises(StateError, match="lock file is not readable"):
        store.force_unlock("x")
    with store.lock("apply") as info:
        assert json.loads(store.lock_path.read_text())["id"] == info.id
    assert not store.lock_path.exists()


def _plant(path: Path, kind: str, victim: Path) -> None:
    if kind == "symlink":
        path.symlink_to(victim.name)
    elif kind == "hard link":
        os.link(victim, path)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()


@pytest.mark.parametrize(("kind", "what"), [
    ("symlink", "is a symbolic link"), ("hard link", "has other hard links"),
    ("fifo", "is not a regular file"), ("directory", "is not a regular file"),
])
def test_a_lock_path_that_is_not_keyform_s_own_file_is_refused_untouched(store: LocalBackend, kind: str,
                                                                         what: str) -> None:
    """The lock was opened through a link planted at `<state>.lock` (review): a symlink to the state
    had the lock record written over it (every key lost), a hard link had it written over another
    file; a FIFO said `cannot write the state lock: Invalid argument`."""
    store.save(sample_state())
    victim = store.path.with_name("victim.txt")
    victim.write_text("IMPORTANT\n")
    state = store.path.read_bytes()
    _plant(store.lock_path, kind, victim)
    for target in (victim, store.path):
        if kind == "symlink":
            store.lock_path.unlink()
            store.lock_path.symlink_to(target.name)
        with pytest.raises(StateError) as exc:
            store.acquire_lock("plan")
        assert str(exc.value) == (f"{store.lock_path}: the state lock {what}; keyform writes its lock only in "
                                  "a file of its own and has left this one untouched: remove it if no "
                                  "keyform is running")
        with pytest.raises(StateError, match="the state lock"), store.lock("apply"):
            pass
        assert victim.read_text() == "IMPORTANT\n" and store.path.read_bytes() == state
        assert os.path.lexists(store.lock_path)  # not removed either
    with pytest.raises(StateError):
        store.force_unlock("x")
    assert victim.read_text() == "IMPORTANT\n" and os.path.lexists(store.lock_path)


def test_a_lock_linked_to_another_name_between_open_and_lock_is_not_written(store: LocalBackend,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is checked again once locked: a second name made for it after the open is refused."""
    import fcntl

    real_flock = fcntl.flock

    def flock_then_link(fd: int, op: int) -> None:
        real_flock(fd, op)
        if not store.lock_path.with_name("other").exists():
            os.link(store.lock_path, store.lock_path.with_name("other"))

    monkeypatch.setattr(fcntl, "flock", flock_then_link)
    store.lock_path.write_text("previous\n")
    with pytest.raises(StateError, match="the state lock has other hard links"):
        store.acquire_lock("apply")
    assert store.lock_path.with_name("other").read_text() == "previous\n"


@pytest.mark.parametrize(("kind", "what"), [
    ("symlink", "is a symbolic link"), ("hard link", "has other hard links"), ("fifo", "is not a regular file"),
])
def test_a_journal_path_that_is_not_keyform_s_own_file_is_never_appended_to(store: LocalBackend, kind: str,
                                                                            what: str) -> None:
    """`read_journal` checked the path, the append's open followed it (review): an empty file
    hard-linked as the journal passed the read and then took every record of the apply."""
    victim = store.path.with_name("victim.txt")
    victim.write_text("")
    _plant(store.journal_path, kind, victim)
    with pytest.raises(StateError) as exc:
        store.journal_open()
    assert str(exc.value).startswith(f"{store.journal_path}: the apply journal {what}; ")
    assert victim.read_text() == ""
    if kind == "symlink":  # nor is it rewritten through the link (it replaced the file linked to)
        with pytest.raises(StateError, match=r"cannot rewrite the apply journal: .* is a symbolic link"):
            store.replace_journal([Intent("r.1", "create", "ci-bot", "qp")])
        assert victim.read_text() == ""


def test_every_write_is_fenced_on_the_lock(store: LocalBackend) -> None:
    """A store whose lock file was removed (and taken by another) writes nothing more: LockLostError."""
    store.load()
    info = store.acquire_lock("apply")
    store.save(State.new())
    journal = store.journal_open()
    journal.append(Sunk("r.1"))
    store.lock_path.unlink()  # force-unlocked from elsewhere, or deleted by hand
    other = LocalBackend(store.path)
    theirs = other.acquire_lock("plan")
    before = store.path.read_bytes()
    with pytest.raises(LockLostError, match=f"lock ID {info.id}\\) was lost: .* now held by pid {os.getpid()}.*"
                                            f"lock ID {theirs.id}.*refusing to write the apply journal"):
        journal.append(Sunk("r.2"))
    journal.close()
    with pytest.raises(LockLostError, match="refusing to write the state"):
        store.save(State.new())
    with pytest.raises(LockLostError, match="refusing to write the apply journal"):
        store.replace_journal([Sunk("r.3")])
    with pytest.raises(LockLostError, match="refusing to write the apply journal"):
        store.clear_journal()
    assert store.path.read_bytes() == before
    assert store.read_journal() == [Sunk("r.1")]
    store.release_lock(info)
    assert LockInfo.from_json(json.loads(store.lock_path.read_text())) == theirs
    other.release_lock(theirs)


# -------------------------------------------------------------------------------------- journal


def test_journal_appends_are_read_back_in_order(store: LocalBackend) -> None:
    assert store.read_journal() == []
    records: list[Record] = [Intent("r.1", "create", "ci-bot", "qp"), Created("r.1", "k"),
                             Failed("r.1", "multi\nline é")]
    with store.journal_open() as journal:
        for rec in records:
            journal.append(rec)
    assert store.read_journal() == records
    assert mode_of(store.journal_path) == 0o600
    assert store.journal_path.read_text().count("\n") == 3


def test_journal_append_is_durable_when_it_returns(store: LocalBackend, count_fsyncs: CountFsyncs) -> None:
    journal = store.journal_open()
    synced = count_fsyncs()
    journal.append(Sunk("r.1"))
    assert len(synced) == 1
    assert LocalBackend(store.path).read_journal() == [Sunk("r.1")]  # visible before close
    journal.close()


def test_journal_ignores_a_torn_last_line(store: LocalBackend) -> None:
    with store.journal_open() as journal:
        journal.append(Sunk("1"))
    with open(store.journal_path, "ab") as fh:
        fh.write(b'{"op": "created", "se')
    assert store.read_journal() == [Sunk("1")]
    with store.journal_open() as journal:  # reopening cuts the torn tail so new lines start clean
        journal.append(Failed("1"))
    assert store.read_journal() == [Sunk("1"), Failed("1")]


@pytest.mark.parametrize(("line", "message"), [
    ('{"op": "done", "seq": "r.1", "key": {}}', 'missing required field "address"'),  # issue 14
    ('{"op": "done", "seq": "r.1", "address": "a", "key": {"provider": "p"}}', 'missing required field "key.'),
    ('{"op": "intent", "seq": "r.1", "action": "create", "address": "a", "provider": "p", "at": "0001-01-01T00:00:00Z"}',
     'field "at": "0001-01-01T00:00:00Z" is not a timestamp keyform can use'),
    ('{"op": "created", "seq": "r.1", "remote_id": 7}', "field \"remote_id\": 7 is not of type 'string'"),
    ('{"op": "begin", "lineage": "l", "serial": 0, "salt": ""}', 'field "salt"'),
    ('{"op": "vanish"}', 'field "op": \'vanish\' is not one of'),
])
def test_journal_refuses_a_record_that_does_not_match_its_schema(store: LocalBackend, line: str, message: str) -> None:
    store.journal_path.write_text('{"op": "sunk", "seq": "r.0"}\n' + line + "\n")
    with pytest.raises(StateError, match=r"keyform.state.json.journal:2: apply journal record ") as info:
        store.read_journal()
    assert message in str(info.value)


def test_journal_refuses_a_corrupt_middle_line(store: LocalBackend) -> None:
    store.journal_path.write_text('{"op": "sunk", "seq": "1"}\nnot json\n{"op": "done", "seq": "1"}\n')
    with pytest.raises(StateError, match=r"keyform.state.json.journal:2: apply journal record is not a JSON object"):
        store.read_journal()


def test_journal_appends_from_many_threads_all_land_whole(store: LocalBackend) -> None:
    journal = store.journal_open()

    def worker(t: int) -> None:
        for i in range(50):
            journal.append(Failed(f"{t}.{i}", "x" * 500))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    journal.close()
    records = store.read_journal()
    assert len(records) == 16 * 50
    for t in range(16):
        assert [r.seq for r in records if isinstance(r, Failed) and r.seq.startswith(f"{t}.")] == \
            [f"{t}.{i}" for i in range(50)]


def test_clear_journal_removes_it_and_refuses_while_open(store: LocalBackend) -> None:
    store.clear_journal()  # nothing to clear: fine
    journal = store.journal_open()
    journal.append(Sunk("1"))
    with pytest.raises(RuntimeError):
        store.clear_journal()
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(RuntimeError):
        journal.append(Sunk("late"))
    store.clear_journal()
    assert not store.journal_path.exists()
    assert store.read_journal() == []


def test_format_version_constant_matches_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert max(schema["properties"]["format_version"]["enum"]) == FORMAT_VERSION
