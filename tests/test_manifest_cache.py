"""keyform's caches (`keyform.cachedir`). The parsed-manifest cache (`manifest.parsecache`): a hit
gives exactly what parsing gives (values, lines, messages); a bad, foreign or hostile entry is ignored
(parsed again), never an error; nothing but a clean, schema-valid parse is stored; it can be turned
off and is private to the user. The state check's verdicts (`checkcache`, at the end). The cache key
that makes an entry unforgeable."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from keyform import cachedir, checkcache, state
from keyform.errors import KeyformError, StateError
from keyform.manifest import load_workspace, parsecache, yamlsource
from keyform.model import Workspace
from keyform.state import KeyState, State, parse_state
from tests.test_manifest_fuzz import EXAMPLES, VALID, changed_seeds

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
CANARY = "sk-live-canary-5d1c0a"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("KEYFORM_CACHE_DIR", str(directory))
    monkeypatch.delenv("KEYFORM_NO_CACHE", raising=False)
    return directory


def outcome(project: Path) -> Workspace | list[str]:
    """The workspace, or the messages (`file:line: text`) of the error."""
    try:
        return load_workspace(cwd=project, now=NOW)
    except KeyformError as exc:
        return [str(d) for d in exc.diagnostics]


def write(project: Path, text: str) -> bytes:
    project.mkdir(exist_ok=True)
    (project / "keyform.yaml").write_text(text)
    return text.encode()


def name_of(data: bytes) -> str:
    """The entry name of a file of these bytes (there is a usable cache key in tests)."""
    name = parsecache.entry_key(data)
    assert name is not None
    return name


def body(entry: Path) -> bytes:
    """An entry's content: the file after its first line (the seal, `cachedir.seal`)."""
    raw = entry.read_bytes()
    assert raw[64:65] == b"\n" and len(raw[:64]) == 64, raw[:80]
    return raw[65:]


def sealed(entry: Path, content: bytes) -> bytes:
    """`content` as this user's keyform would write it at `entry` (its seal under this user's key)."""
    mac = cachedir.seal(entry.stem, content)
    assert mac is not None
    return mac + b"\n" + content


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.json")) if cache.exists() else []


def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str, file: str) -> Any:
        raise AssertionError("parsed although cached")
    monkeypatch.setattr(yamlsource, "parse_yaml", refuse)


def test_a_second_load_is_a_hit_with_the_same_workspace(tmp_path: Path, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "p"
    data = write(project, VALID)
    first = outcome(project)
    assert isinstance(first, Workspace)
    assert [p.name for p in entries(cache)] == [name_of(data) + ".json"]
    doc = parsecache.load(data, "keyform.yaml")
    assert doc is not None and doc.schema_checked
    no_parsing(monkeypatch)
    assert outcome(project) == first


def test_a_hit_gives_every_line_the_parse_gives(tmp_path: Path, cache: Path) -> None:
    data = write(tmp_path / "p", VALID)
    parsed, problems = yamlsource.parse_yaml(VALID, "keyform.yaml")
    assert parsed is not None and not problems
    parsecache.store(data, parsed)
    cached = parsecache.load(data, "keyform.yaml")
    assert cached is not None
    assert cached.value == parsed.value
    for path in parsed.lines:  # two deep from the entry, deeper inside keys from a new parse
        assert cached.line(path) == parsed.line(path), path
    assert dict(cached.lines) == dict(parsed.lines)


def test_a_hit_gives_the_text_of_every_number_written_otherwise(tmp_path: Path, cache: Path) -> None:
    # a message about a number shows its text (`0x100000`, not 1048576) with the cache as without it
    text = VALID.replace("org_id: {env: ORG}}", "org_id: {env: ORG}, max_response_bytes: 0x100000}")
    data = write(tmp_path / "p", text)
    parsed, problems = yamlsource.parse_yaml(text, "keyform.yaml")
    assert parsed is not None and not problems
    assert parsed.texts == {("providers", "q", "max_response_bytes"): "0x100000"}
    parsecache.store(data, parsed)
    cached = parsecache.load(data, "keyform.yaml")
    assert cached is not None and cached.texts == parsed.texts
    assert cached.written(("providers", "q", "max_response_bytes"), 1048576) == "0x100000"


def test_a_semantic_error_deep_in_a_cached_key_names_the_same_line(tmp_path: Path, cache: Path) -> None:
    # valid YAML and schema (so it is cached), but the provider is unknown: reported at keys.x.provider
    text = VALID + "  late:\n    name: late\n\n    provider: nope\n"
    project = tmp_path / "p"
    write(project, text)
    cold = outcome(project)
    assert isinstance(cold, list) and any("unknown provider 'nope'" in m for m in cold), cold
    assert entries(cache), "a schema-valid file is cached even when the semantic pass refuses it"
    assert outcome(project) == cold


def test_nothing_with_a_problem_is_stored_and_no_literal_secret_ever(tmp_path: Path, cache: Path) -> None:
    project = tmp_path / "p"
    literal = VALID.replace("token: {file: t.token}", f"token: {CANARY}")
    write(project, literal)
    assert isinstance(outcome(project), list)
    write(project, VALID + "keys:\n  again: {provider: q}\n")  # duplicate section
    assert isinstance(outcome(project), list)
    assert entries(cache) == []
    write(project, VALID)
    outcome(project)
    assert all(CANARY not in p.read_text() for p in entries(cache))


def test_errors_are_the_same_with_and_without_the_cache(tmp_path: Path, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "p"
    write(project, VALID.replace("expires_in: 90d", "expires_in: 90x"))
    monkeypatch.setenv("KEYFORM_NO_CACHE", "1")
    off = outcome(project)
    monkeypatch.delenv("KEYFORM_NO_CACHE")
    assert outcome(project) == outcome(project) == off
    assert isinstance(off, list) and off


@pytest.mark.parametrize(("value", "off"), [("1", True), ("true", True), ("yes", True), ("0", False),
                                             ("false", False), ("FALSE", False), ("no", False), ("off", False),
                                             (" ", False), ("", False)])
def test_keyform_no_cache_false_leaves_the_cache_on(value: str, off: bool) -> None:
    """`KEYFORM_NO_CACHE=false` turned the cache off (any value but empty or `0` did)."""
    env = {"KEYFORM_NO_CACHE": value, "KEYFORM_CACHE_DIR": "/tmp/keyform-cache-test"}
    assert (cachedir.cache_dir(env) is None) is off


def test_the_cache_can_be_turned_off(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYFORM_NO_CACHE", "1")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    write(tmp_path / "p", VALID)
    assert isinstance(outcome(tmp_path / "p"), Workspace)
    assert not cache.exists()
    assert not (tmp_path / "state").exists(), "no cache key is made while the cache is off"


def test_the_default_place_is_the_users_cache_dir(tmp_path: Path) -> None:
    assert parsecache.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "keyform" / "manifests"
    assert parsecache.cache_dir({"KEYFORM_CACHE_DIR": "/x/y"}) == Path("/x/y")
    assert parsecache.cache_dir({"KEYFORM_NO_CACHE": "1", "KEYFORM_CACHE_DIR": "/x/y"}) is None
    assert parsecache.cache_dir({"HOME": str(tmp_path)}) is not None


def test_entries_are_private(tmp_path: Path, cache: Path) -> None:
    write(tmp_path / "p", VALID)
    outcome(tmp_path / "p")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in entries(cache)] == [0o600]


def test_a_directory_others_can_write_is_not_used(tmp_path: Path, cache: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "p"
    write(project, VALID)
    first = outcome(project)
    os.chmod(cache, 0o777)
    called: list[str] = []
    real = yamlsource.parse_yaml

    def counting(text: str, file: str) -> Any:
        called.append(file)
        return real(text, file)
    monkeypatch.setattr(yamlsource, "parse_yaml", counting)
    assert outcome(project) == first
    assert called == ["keyform.yaml"]  # parsed: the entry was not read


def hostile_entries(key: str, good: dict[str, Any]) -> list[bytes]:
    """Entries that are not what `store` writes: each must be ignored."""
    def variant(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()
    raw = json.dumps(good).encode()
    lines = good["key_lines"]
    assert lines, "the seed manifest declares keys"
    return [
        b"", raw[:len(raw) // 2], b"\xff\xfe garbage", b"[]", b"null", b'"text"', b"1e999999",
        b"[" * 100_000 + b"]" * 100_000,  # nesting beyond the JSON parser's recursion limit
        variant(format=parsecache.CACHE_FORMAT + 1), variant(key="0" * 64), variant(key=None),
        variant(value=[1, 2]), variant(value="version: 1"), variant(value=None),
        variant(lines="1,2,3"), variant(lines=[[["keys"], "3"]]), variant(lines=[[["keys"], -1]]),
        variant(lines=[[["keys"], True]]), variant(lines=[[[1.5], 3]]), variant(lines=[[[], 1, 2]]),
        variant(lines=[[{"keys": 1}, 3]]), variant(lines=[]), variant(lines=[7]),
        variant(lines=[[[], 1], [["keys", True], 3]]), variant(lines=[[[], 1], [[None], 3]]),
        variant(lines=[[[], 1], [[["keys"]], 3]]),  # a part that is a bool, a null, a list
        variant(texts=None), variant(texts="0x1F"), variant(texts=[[["keys"], 31]]), variant(texts=[[[True], "1"]]),
        variant(texts=[["keys", "0x1F"]]), variant(texts=[[["keys"], "0x1F", 1]]),
        variant(value={"version": 1, "keys": {"x": {"provider": "q"}}}, lines=[[[], 1]],
                key=key[:-1] + ("1" if key.endswith("0") else "0")),  # another file's key (never this one's)
        # `key_lines`: one line per entry of `keys:`, each an int of at least 1
        variant(key_lines=None), variant(key_lines="1"), variant(key_lines=lines[:-1]), variant(key_lines=[*lines, 9]),
        variant(key_lines=[True] * len(lines)), variant(key_lines=[float(n) for n in lines]),
        variant(key_lines=[0] * len(lines)), variant(key_lines=[str(n) for n in lines]),
        variant(key_lines=[[n] for n in lines]),
        *(variant(keys=table) for table in hostile_tables(good["keys"])),
        variant(value={**good["value"], "keys": {"x": {"provider": "q"}}}),  # a table and a section
        variant(value={**good["value"], "keys": []}),
    ]


def hostile_tables(good: dict[str, Any]) -> list[Any]:
    """`keys` tables (`parsecache._table`) that are not what `store` writes for the seed's section."""
    assert good["shape_of"] is not None and len(good["shapes"]) == 3, "the seed's keys have three shapes"

    def changed(**changes: Any) -> dict[str, Any]:
        return {**copy.deepcopy(good), **changes}

    def shape(i: int, **changes: Any) -> dict[str, Any]:
        shapes = copy.deepcopy(good["shapes"])
        shapes[i] = {**shapes[i], **changes}
        return changed(shapes=shapes)

    names, shape_of, first = good["names"], good["shape_of"], good["shapes"][0]
    return [
        None, [], "keys", {}, changed(extra=1), {k: v for k, v in good.items() if k != "shape_of"},
        changed(names=[]), changed(names=names[:-1]), changed(names=[*names, "more"]), changed(names=[names[0]] * 3),
        changed(names=[1, *names[1:]]), changed(names=None), changed(shapes=[]), changed(shapes=None),
        changed(shapes=good["shapes"][:2]), changed(shape_of=None), changed(shape_of=shape_of[:-1]),
        changed(shape_of=[3, *shape_of[1:]]), changed(shape_of=[-1, *shape_of[1:]]),
        changed(shape_of=[True if s == 1 else s for s in shape_of]), changed(shape_of=[0.0, *shape_of[1:]]),
        changed(shape_of=[0, 0, 0]), changed(shape_of="012"),
        shape(0, fields=first["fields"][:-1]), shape(0, fields=[first["fields"][0]] * len(first["fields"])),
        shape(0, fields=[1, *first["fields"][1:]]), shape(0, columns=first["columns"][:-1]),
        shape(0, columns=[[], *first["columns"][1:]]), shape(0, columns=[[1, 2], *first["columns"][1:]]),
        shape(0, columns=[{"c": {"a": 1}}, *first["columns"][1:]]), shape(0, columns=[{"c": [1]}, *first["columns"][1:]]),
        shape(0, columns=[{"c": "q", "d": 1}, *first["columns"][1:]]), shape(0, columns=None), shape(0, more=1),
    ]


def test_a_keys_section_of_one_shape_is_a_table_of_columns_read_back_as_written(tmp_path: Path, cache: Path) -> None:
    """Entries of `keys:` with the same fields are stored as columns (`{"c": VALUE}` where every one
    holds the same scalar: the same type too, `1` is not `true`), and read back equal, in order."""
    text = "version: 1\nkeys:\n" + "".join(
        f"  k{i}: {{provider: q, name: n{i}, expires_in: 90d, lifecycle: {{prevent_destroy: {flag}}}, n: {n}}}\n"
        for i, (flag, n) in enumerate([("true", 1), ("true", "true"), ("true", 1)]))
    data = write(tmp_path / "p", text)
    parsed, problems = yamlsource.parse_yaml(text, "keyform.yaml")
    assert parsed is not None and not problems
    parsecache.store(data, parsed)
    entry = json.loads(body(entries(cache)[0]))
    table = entry["keys"]
    assert entry["value"]["keys"] == {} and table["shape_of"] is None and len(table["shapes"]) == 1
    assert table["shapes"][0]["columns"][0] == {"c": "q"} and table["shapes"][0]["columns"][4] == [1, True, 1]
    cached = parsecache.load(data, "keyform.yaml")
    assert cached is not None and cached.value == parsed.value
    assert [list(v.items()) for v in cached.value["keys"].values()] == \
        [list(v.items()) for v in parsed.value["keys"].values()]
    assert list(cached.value) == list(parsed.value)


def test_corrupt_foreign_or_hostile_entries_are_ignored_and_replaced(tmp_path: Path, cache: Path) -> None:
    project = tmp_path / "p"
    data = write(project, VALID)
    reference = outcome(project)
    assert isinstance(reference, Workspace)
    key = name_of(data)
    entry = cache / (key + ".json")
    good = json.loads(body(entry))
    for bad in hostile_entries(key, good):
        # sealed with this user's key: the shape checks behind the seal still refuse each one
        for written in (sealed(entry, bad), bad):
            entry.write_bytes(written)
            assert parsecache.load(data, "keyform.yaml") is None, written[:80]
            assert outcome(project) == reference  # parsed again, no error
            assert json.loads(body(entry)) == good  # and the entry rewritten
    entry.unlink()
    entry.mkdir()  # not even a file
    assert outcome(project) == reference
    entry.rmdir()
    os.mkfifo(entry)  # opening a FIFO for reading would wait for a writer forever
    assert parsecache.load(data, "keyform.yaml") is None
    assert outcome(project) == reference
    entry.unlink()
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(sealed(entry, json.dumps(good).encode()))
    entry.symlink_to(elsewhere)  # a link is not followed, even to a good entry
    assert parsecache.load(data, "keyform.yaml") is None
    entry.unlink()
    entry.write_bytes(sealed(entry, json.dumps(good).encode() + b" " * (8 * len(data) + (1 << 20))))  # too big
    assert parsecache.load(data, "keyform.yaml") is None
    assert outcome(project) == reference


def test_another_keyform_version_never_reads_the_entry(tmp_path: Path, cache: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = write(tmp_path / "p", VALID)
    outcome(tmp_path / "p")
    key = parsecache.entry_key(data)
    parsecache._code_stamp.cache_clear()
    monkeypatch.setattr(cachedir, "__version__", "999.0")
    try:
        assert parsecache.entry_key(data) != key
        assert parsecache.load(data, "keyform.yaml") is None
    finally:
        parsecache._code_stamp.cache_clear()


def test_the_key_is_the_exact_bytes(tmp_path: Path) -> None:
    assert parsecache.entry_key(b"version: 1\n") != parsecache.entry_key(b"version: 1\n ")
    assert parsecache.entry_key(b"a") == parsecache.entry_key(b"a")


def test_the_cache_keeps_at_most_max_entries(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cachedir, "MAX_ENTRIES", 3)
    for i in range(5):
        write(tmp_path / "p", VALID + f"# {i}\n")
        outcome(tmp_path / "p")
    assert len(entries(cache)) == 3


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=changed_seeds())
def test_cached_and_parsed_loads_agree(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
                                       document: Any) -> None:
    """Whatever a variant of the seed manifest gives, the cold load, the warm load and a load with
    the cache off give the same workspace or the same messages."""
    project = tmp_path / "p"
    write(project, yaml.safe_dump(document, allow_unicode=True))
    cold = outcome(project)
    warm = outcome(project)
    monkeypatch.setenv("KEYFORM_NO_CACHE", "1")
    try:
        off = outcome(project)
    finally:
        monkeypatch.delenv("KEYFORM_NO_CACHE")
    assert cold == warm == off


# -- the cache key: an entry keyform reads can only be named by this user ------------------------------


@pytest.fixture
def key_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh XDG_STATE_HOME: the cache key is made there on first use."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the YAML parses (a cache miss parses the file)."""
    made: list[int] = []
    real = yamlsource.parse_yaml

    def counting(text: str, file: str) -> Any:
        made.append(1)
        return real(text, file)
    monkeypatch.setattr(yamlsource, "parse_yaml", counting)
    return made


def test_the_key_is_made_private_on_first_use(tmp_path: Path, cache: Path, key_home: Path) -> None:
    write(tmp_path / "p", VALID)
    outcome(tmp_path / "p")
    key = cachedir.key_path()
    assert key == key_home / "keyform" / "cache-key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert len(bytes.fromhex(key.read_text())) == 32
    assert entries(cache)


def test_a_cache_copied_from_elsewhere_is_never_read(tmp_path: Path, cache: Path, key_home: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache restored without its key (another machine, a CI cache an untrusted job wrote): its
    entries, however well formed, are never found; a planted entry with hostile values neither."""
    project = tmp_path / "p"
    data = write(project, VALID)
    reference = outcome(project)
    theirs = entries(cache)[0]
    hostile = json.loads(body(theirs))
    hostile["value"]["providers"]["q"]["base_url"] = "https://attacker.example"
    theirs.write_bytes(sealed(theirs, json.dumps(hostile).encode()))  # as the other side wrote it, under their key
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "another-home"))  # this side: its own key
    made = parses(monkeypatch)
    assert outcome(project) == reference
    assert made == [1]
    assert name_of(data) + ".json" != theirs.name
    (cache / (name_of(data) + ".json")).unlink()
    old_scheme = hashlib.sha256(parsecache._code_stamp().encode() + b"\0" + data).hexdigest()
    planted = cache / (old_scheme + ".json")
    planted.write_bytes(sealed(planted, json.dumps({**hostile, "key": old_scheme}).encode()))  # their key
    assert outcome(project) == reference
    assert made == [1, 1]


def test_an_entry_changed_under_its_name_is_never_read(tmp_path: Path, cache: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone who can write the cache directory (a shared volume, a CI cache restored from a job
    that could change it) but not read the key sees the names of this user's entries: a content
    changed under such a name, however well formed, fails its seal and is never read."""
    project = tmp_path / "p"
    data = write(project, VALID)
    reference = outcome(project)
    entry = cache / (name_of(data) + ".json")
    raw = entry.read_bytes()
    head, _, content = raw.partition(b"\n") if raw[64:65] == b"\n" else (b"", b"", raw)
    hostile = json.loads(content)
    hostile["value"]["providers"]["q"]["base_url"] = "https://attacker.example"
    forged = json.dumps(hostile).encode()
    made = parses(monkeypatch)
    for written in (head + b"\n" + forged if head else forged,  # the old seal kept
                    forged,  # no seal at all
                    b"0" * 64 + b"\n" + forged):  # a seal made up
        entry.write_bytes(written)
        assert outcome(project) == reference, written[:80]
    assert made == [1, 1, 1]  # each time parsed again
    assert b"attacker.example" not in entry.read_bytes()  # and the entry rewritten


@pytest.mark.parametrize("bad", ["loose", "link", "short", "not-hex", "directory"])
def test_a_key_that_is_not_this_users_private_key_turns_the_cache_off(
        tmp_path: Path, cache: Path, key_home: Path, monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    key = key_home / "keyform" / "cache-key"
    key.parent.mkdir(parents=True, mode=0o700)
    if bad == "loose":
        key.write_text("ab" * 32)
        key.chmod(0o644)
    elif bad == "link":
        (tmp_path / "elsewhere").write_text("ab" * 32)
        (tmp_path / "elsewhere").chmod(0o600)
        key.symlink_to(tmp_path / "elsewhere")
    elif bad == "directory":
        key.mkdir()
    else:
        key.write_text("ab" * 31 if bad == "short" else "zz" * 32)
        key.chmod(0o600)
    project = tmp_path / "p"
    write(project, VALID)
    made = parses(monkeypatch)
    first = outcome(project)
    assert isinstance(first, Workspace) and outcome(project) == first
    assert made == [1, 1], "with no usable key every load parses"
    assert entries(cache) == []
    assert parsecache.entry_key(b"version: 1\n") is None
    assert key.is_symlink() or key.is_dir() or key.read_text() in ("ab" * 32, "ab" * 31, "zz" * 32), "never replaced"


def test_a_state_home_the_file_system_cannot_name_turns_the_cache_off(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`XDG_STATE_HOME` holding a name too long for the file system (ENAMETOOLONG, where looking
    the key up raised rather than said "no key"): every command was an internal error."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / ("s" * 300)))
    project = tmp_path / "p"
    write(project, VALID)
    assert isinstance(outcome(project), Workspace)
    assert parsecache.entry_key(b"version: 1\n") is None
    assert entries(cache) == []


# -- state check verdicts (keyform.checkcache) --------------------------------------------------
# keyform.checkcache: a state file whose exact bytes passed the check before is not checked again;
# anything else (other bytes, a failing file, a bad or foreign verdict, the cache off, another
# keyform) is checked as without the cache.


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


def load_state(raw: bytes) -> State:
    return parse_state(raw, "keyform.state.json", "it was left untouched")


def test_the_second_load_of_the_same_bytes_skips_the_check(cache: Path, checks: list[int]) -> None:
    raw = a_state()
    first = load_state(raw)
    assert len(checks) == 1
    second = load_state(raw)
    assert len(checks) == 1
    assert second.keys == first.keys
    assert [p.name for p in cache.iterdir()] == [vname(raw) + ".json"]


def test_other_bytes_are_checked(cache: Path, checks: list[int]) -> None:
    raw = a_state()
    load_state(raw)
    load_state(raw + b"\n")
    assert len(checks) == 2


def test_a_failing_state_is_never_remembered_and_always_refused(cache: Path, checks: list[int]) -> None:
    doc = json.loads(a_state())
    doc["keys"]["k0"]["created_at"] = "yesterday"
    raw = json.dumps(doc).encode()
    for _ in range(2):
        with pytest.raises(StateError, match=r'keys\.k0\.created_at'):
            load_state(raw)
    assert len(checks) == 2
    assert not cache.exists() or not any(cache.iterdir())


def test_a_verdict_for_one_file_does_not_pass_another(cache: Path, checks: list[int]) -> None:
    """A hostile or stale entry renamed to another file's verdict name is not that file's verdict."""
    good = a_state()
    load_state(good)
    doc = json.loads(good)
    doc["keys"]["k0"]["created_at"] = "yesterday"
    bad = json.dumps(doc).encode()
    os.rename(cache / (vname(good) + ".json"),
              cache / (vname(bad) + ".json"))
    with pytest.raises(StateError, match=r"keys\.k0\.created_at"):
        load_state(bad)


@pytest.mark.parametrize("content", [b"", b"{}", b"passed", b"\xff\xfe", b"[" * 100_000,
                                     b'{"format":1,"key":"x","check":"state","verdict":"passed"}'])
def test_a_bad_verdict_entry_is_no_verdict(cache: Path, checks: list[int], content: bytes) -> None:
    raw = a_state()
    cache.mkdir(mode=0o700)
    (cache / (vname(raw) + ".json")).write_bytes(content)
    load_state(raw)
    assert len(checks) == 1


def test_a_verdict_that_is_a_link_or_a_fifo_is_no_verdict(cache: Path, checks: list[int], tmp_path: Path) -> None:
    raw = a_state()
    load_state(raw)
    entry = cache / (vname(raw) + ".json")
    target = tmp_path / "elsewhere"
    os.rename(entry, target)
    entry.symlink_to(target)
    load_state(raw)
    entry.unlink()
    os.mkfifo(entry)
    load_state(raw)  # never blocks
    assert len(checks) == 3


def test_the_cache_off_checks_every_time(cache: Path, checks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYFORM_NO_CACHE", "1")
    raw = a_state()
    load_state(raw)
    load_state(raw)
    assert len(checks) == 2
    assert not cache.exists()


def test_a_directory_others_can_write_is_not_trusted(cache: Path, checks: list[int]) -> None:
    raw = a_state()
    load_state(raw)
    cache.chmod(0o777)
    try:
        load_state(raw)
    finally:
        cache.chmod(0o700)
    assert len(checks) == 2


def test_another_keyform_never_trusts_the_verdict(cache: Path, checks: list[int],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    raw = a_state()
    load_state(raw)
    key = checkcache.verdict_key("state", raw)
    checkcache._stamp.cache_clear()
    monkeypatch.setattr(cachedir, "__version__", "999.0")
    try:
        assert checkcache.verdict_key("state", raw) != key
        load_state(raw)
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
    load_state(raw)
    load_state(raw)
    assert len(checks) == 2


def test_a_verdict_written_under_another_users_key_is_never_read(cache: Path, checks: list[int], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache directory restored from elsewhere holds verdicts named under another key: none is
    found, and one planted under the name an unkeyed digest would give is not read either."""
    raw = a_state()
    load_state(raw)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "another-home"))
    load_state(raw)
    assert len(checks) == 2
    doc = json.loads(raw)
    doc["keys"]["k0"]["created_at"] = "yesterday"
    bad = json.dumps(doc).encode()
    unkeyed = "check-" + hashlib.sha256(checkcache._stamp().encode() + b"\0state\0" + bad).hexdigest()
    (cache / (unkeyed + ".json")).write_text(
        json.dumps({"format": 1, "key": unkeyed, "check": "state", "verdict": "passed"}, separators=(",", ":")))
    with pytest.raises(StateError, match=r"keys\.k0\.created_at"):
        load_state(bad)


def test_the_key_lives_apart_from_the_cache_and_a_relative_state_home_is_ignored(tmp_path: Path) -> None:
    """A relative (or empty) XDG_STATE_HOME would put the key in whatever directory keyform runs
    in, a checkout for instance: it is ignored, as the XDG spec says."""
    default = Path(os.path.expanduser("~")) / ".local" / "state" / "keyform" / "cache-key"
    assert cachedir.key_path({"XDG_STATE_HOME": str(tmp_path / "s")}) == tmp_path / "s" / "keyform" / "cache-key"
    for relative in ("", "state", "./state", "../x"):
        assert cachedir.key_path({"XDG_STATE_HOME": relative}) == default


@pytest.mark.parametrize("value", ["", " ", "relcache", "./c", "/abs/with\nnewline"])
def test_a_blank_or_relative_cache_dir_is_ignored_as_the_xdg_rule_says(tmp_path: Path, value: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`KEYFORM_CACHE_DIR=relcache` (or " ", or a relative XDG_CACHE_HOME) made a directory of that name
    in the directory keyform ran in, a checkout for instance. The XDG Base Directory spec: a relative
    path in these variables is invalid and ignored; an empty one is unset. Said at -v."""
    from click.testing import CliRunner

    from keyform.cli import main
    from keyform.clikit import disable_debug_log

    default = Path(os.path.expanduser("~")) / ".cache" / "keyform" / "manifests"
    assert cachedir.cache_dir({"KEYFORM_CACHE_DIR": value}) == default
    assert cachedir.cache_dir({"XDG_CACHE_HOME": value}) == default
    assert cachedir.cache_dir({"KEYFORM_CACHE_DIR": value, "XDG_CACHE_HOME": str(tmp_path)}) == \
        tmp_path / "keyform" / "manifests"
    assert cachedir.cache_dir({"KEYFORM_NO_CACHE": " ", "KEYFORM_CACHE_DIR": "/x"}) == Path("/x")  # blank: unset
    (tmp_path / "keyform.yaml").write_text("version: 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cachedir, "_noted", set())  # (said once a process: the calls above said it)
    try:
        res = CliRunner().invoke(main, ["validate", "-v"], env={"KEYFORM_CACHE_DIR": value}, catch_exceptions=False)
    finally:
        disable_debug_log()
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyform.yaml", "xdg"]
    if value.strip():
        assert f"KEYFORM_CACHE_DIR={value!r} ignored: not an absolute path" in res.stderr


def test_a_relative_home_turns_the_caches_off_rather_than_writing_where_keyform_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "home")
    assert cachedir.cache_dir({"HOME": "home"}) is None
    assert cachedir._cache_key(cachedir.key_path({})) is None


def test_an_entry_is_sealed_and_read_as_the_hmac_of_its_name_and_content(
        tmp_path: Path, cache: Path, key_home: Path) -> None:
    """The seal is the HMAC-SHA256, under the cache key, of `keyform cache entry\\0NAME\\0CONTENT`
    (fed to the HMAC in parts: entries written before read the same), and only a file that is a
    64-digit seal, a newline and the content it seals is an entry: one cut inside or right after its
    seal, or whose seal line does not end there, is none."""
    import hmac

    name = "ab" * 32
    content = b'{"format": 1}'
    sealed_now = cachedir.seal(name, content)  # (makes the key)
    key = bytes.fromhex((key_home / "keyform" / "cache-key").read_text())
    expected = hmac.new(key, b"keyform cache entry\0" + name.encode() + b"\0" + content, "sha256").hexdigest()
    assert sealed_now == expected.encode()
    cachedir.write(name, content.decode())
    entry = cache / (name + ".json")
    assert entry.read_bytes() == sealed_now + b"\n" + content
    assert cachedir.read(name, limit=100) == content
    assert cachedir.read(name, limit=len(content)) == content
    assert cachedir.read(name, limit=len(content) - 1) is None  # larger than asked
    for cut in (sealed_now[:40], sealed_now, sealed_now + b"\n", sealed_now + b" " + content, b""):
        entry.write_bytes(cut)
        assert cachedir.read(name, limit=100) is None, cut
    empty = cachedir.seal(name, b"")
    assert empty is not None
    entry.write_bytes(empty + b"\n")  # a sealed empty content is an (empty) entry
    assert cachedir.read(name, limit=100) == b""


def test_a_column_of_zeros_of_either_sign_is_read_back_as_written(tmp_path: Path, cache: Path) -> None:
    """`0.0 == -0.0` (and their type is the same), but they are not the same number: a column holding
    both is not written once (`{"c": 0.0}` read every `-0.0` back as `0.0`, a value the file does not
    say)."""
    text = "version: 1\nkeys:\n" + "".join(f"  k{i}: {{provider: q, n: {n}}}\n" for i, n in enumerate(
        ["0.0", "-0.0", "0.0"]))
    data = write(tmp_path / "p", text)
    parsed, problems = yamlsource.parse_yaml(text, "keyform.yaml")
    assert parsed is not None and not problems
    assert [repr(v["n"]) for v in parsed.value["keys"].values()] == ["0.0", "-0.0", "0.0"]
    parsecache.store(data, parsed)
    cached = parsecache.load(data, "keyform.yaml")
    assert cached is not None
    assert json.dumps(cached.value) == json.dumps(parsed.value)
