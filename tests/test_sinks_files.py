"""File sinks (dotenv, json, file): durable, private, and they keep every other entry."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from keyform.errors import KeyformError, SinkError, SourceLoc
from keyform.model import SinkConfig
from keyform.sinks import Sink
from keyform.sinks.dotenv import DotenvSink, parse
from keyform.sinks.dotenv import scan as dotenv_scan
from keyform.sinks.file import FileSink
from keyform.sinks.jsonfile import JsonSink
from keyform.sinks.registry import is_readable, open_sink

CANARY = "sk-CANARY-7f3a9e1d"

SinkFactory = Callable[[Path], Sink]
FACTORIES: dict[str, SinkFactory] = {
    "dotenv": lambda root: DotenvSink(root / "secrets" / "prod.env"),
    "json": lambda root: JsonSink(root / "secrets" / "prod.json"),
    "file": lambda root: FileSink(root / "secrets" / "keys"),
}


@pytest.fixture(params=sorted(FACTORIES))
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Sink:
    return FACTORIES[request.param](tmp_path)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def entry_file(sink: Sink, name: str) -> Path:
    return sink.dir / name if isinstance(sink, FileSink) else sink.path  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------ every sink


def test_written_secret_reads_back_and_remove_deletes_it(sink: Sink) -> None:
    assert sink.readable
    assert sink.read("QUESTRA_CI_BOT") is None
    sink.write("ci-bot", "QUESTRA_CI_BOT", CANARY)
    assert sink.read("QUESTRA_CI_BOT") == CANARY
    sink.write("ci-bot", "QUESTRA_CI_BOT", CANARY + "-rotated")
    assert sink.read("QUESTRA_CI_BOT") == CANARY + "-rotated"
    sink.remove("QUESTRA_CI_BOT")
    assert sink.read("QUESTRA_CI_BOT") is None
    sink.remove("QUESTRA_CI_BOT")  # absent: not an error


def test_other_entries_survive_write_and_remove(sink: Sink) -> None:
    sink.write("a", "A_KEY", "alpha")
    sink.write("b", "B_KEY", "bravo")
    sink.write("c", "C_KEY", "charlie")
    sink.write("b", "B_KEY", "bravo-2")
    sink.remove("A_KEY")
    assert [sink.read(n) for n in ("A_KEY", "B_KEY", "C_KEY")] == [None, "bravo-2", "charlie"]


def test_files_are_0600_and_created_directories_0700(sink: Sink, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        sink.write("ci-bot", "QUESTRA_CI_BOT", CANARY)
    finally:
        os.umask(old)
    assert mode_of(entry_file(sink, "QUESTRA_CI_BOT")) == 0o600
    assert mode_of(tmp_path / "secrets") == 0o700
    if isinstance(sink, FileSink):
        assert mode_of(sink.dir) == 0o700


def test_rewriting_a_world_readable_file_makes_it_0600(sink: Sink) -> None:
    sink.write("ci-bot", "QUESTRA_CI_BOT", "one")
    path = entry_file(sink, "QUESTRA_CI_BOT")
    os.chmod(path, 0o644)
    sink.write("ci-bot", "QUESTRA_CI_BOT", "two")
    assert mode_of(path) == 0o600


def test_concurrent_writes_from_16_threads_all_land(sink: Sink) -> None:
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for j in range(5):
                sink.write(f"key-{i}-{j}", f"KEY_{i}_{j}", f"secret-{i}-{j}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(16):
        for j in range(5):
            assert sink.read(f"KEY_{i}_{j}") == f"secret-{i}-{j}"


def test_two_sink_objects_on_one_file_share_its_lock(tmp_path: Path) -> None:
    path = tmp_path / "shared.env"
    sinks = [DotenvSink(path), DotenvSink(tmp_path / "." / "shared.env")]

    def worker(i: int) -> None:
        for j in range(10):
            sinks[i % 2].write("k", f"K_{i}_{j}", "v")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([e for e in parse(path.read_text()) if e.name]) == 80


# ---------------------------------------------------------------------------------------- dotenv


ODD_VALUES = [
    "plain-token_123", 'has"double"quotes', "has'single'quotes", "both ' and \"", "dollar $HOME and $X",
    "hash # not a comment", "#leading-hash", "with spaces ", "  leading spaces", "a=b==", "back\\slash\\n",
    "multi\nline\nvalue", "tab\there", "", "ünïcødé ✓", "`backticks`", "semi;colon&amp|pipe", "~tilde",
    "abc+/==",
]  # a carriage return and `${...}` are refused (tests/test_dotenv_encoding.py)


@pytest.mark.parametrize("value", ODD_VALUES)
def test_dotenv_odd_values_round_trip(tmp_path: Path, value: str) -> None:
    sink = DotenvSink(tmp_path / ".env")
    (tmp_path / ".env").write_text("BEFORE=1\n")
    sink.write("k", "ODD", value)
    sink.write("k", "AFTER", "2")
    assert sink.read("ODD") == value
    assert DotenvSink(tmp_path / ".env").read("AFTER") == "2"
    assert sink.read("BEFORE") == "1"
    assert [e.name for e in parse((tmp_path / ".env").read_text()) if e.name] == ["BEFORE", "ODD", "AFTER"]


def test_dotenv_writes_plain_tokens_bare_and_quotes_the_rest(tmp_path: Path) -> None:
    sink = DotenvSink(tmp_path / ".env")
    sink.write("a", "PLAIN", "sk_live_abc123")
    sink.write("b", "DOLLAR", "a$b c")
    sink.write("c", "BOTH", "it's \"x\" \\ $ y\n")
    assert (tmp_path / ".env").read_text() == ('PLAIN=sk_live_abc123\nDOLLAR=\'a$b c\'\n'
                                               'BOTH="it\'s \\"x\\" \\\\ $ y\n"\n')


def test_dotenv_preserves_comments_blank_lines_order_and_replaces_in_place(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    original = ("# Production secrets\n"
                "\n"
                "DATABASE_URL=postgres://db/prod  # primary\n"
                "export QUESTRA_CI_BOT='old-secret'\n"
                "  # indented comment\n"
                "MULTI=\"first\n"
                "QUESTRA_CI_BOT=inside-a-quoted-value\"\n"
                "LAST=1")
    path.write_text(original)
    sink = DotenvSink(path)
    assert sink.read("DATABASE_URL") == "postgres://db/prod"
    assert sink.read("QUESTRA_CI_BOT") == "old-secret"
    assert sink.read("MULTI") == "first\nQUESTRA_CI_BOT=inside-a-quoted-value"
    sink.write("ci-bot", "QUESTRA_CI_BOT", "new-secret")
    sink.write("other", "NEW_ONE", "n")
    assert path.read_text() == original.replace("export QUESTRA_CI_BOT='old-secret'",
                                                "export QUESTRA_CI_BOT=new-secret") + "\nNEW_ONE=n\n"
    sink.remove("QUESTRA_CI_BOT")
    assert "new-secret" not in path.read_text()
    assert sink.read("MULTI") == "first\nQUESTRA_CI_BOT=inside-a-quoted-value"
    assert path.read_text().startswith("# Production secrets\n\nDATABASE_URL=postgres://db/prod  # primary\n"
                                       "  # indented comment\n")


@pytest.mark.parametrize(("line", "value"), [
    ("K=abc", "abc"), ("export K=abc", "abc"), ("  export   K = abc  ", "abc"), ("K='a \"b\" $c'", 'a "b" $c'),
    ('K="a\\"b\\\\c\\$d\\ne"', 'a"b\\c$d\ne'), ("K=abc # comment", "abc"), ("K=abc#not-comment", "abc#not-comment"),
    ("K='abc' # comment", "abc"), ("K=", ""), ("K=# only comment", ""),
    ("K=crlf\r", "crlf"),
])
def test_dotenv_reads_common_dialects(tmp_path: Path, line: str, value: str) -> None:
    (tmp_path / ".env").write_text(line + "\n", newline="")
    assert DotenvSink(tmp_path / ".env").read("K") == value


@pytest.mark.parametrize("line", ['NOTE="unterminated', "NOTE='unterminated"])
def test_a_dotenv_file_with_a_quote_never_closed_is_left_untouched(tmp_path: Path, line: str) -> None:
    """keyform read `NOTE="unterminated` as one line and appended the secret after it: sh, bash and
    python-dotenv stop at the open quote, so the secret was lost to every consumer."""
    path = tmp_path / ".env"
    path.write_text(f"A=1\n{line}\n")
    before = path.read_bytes()
    sink = DotenvSink(path)
    acts: list[Callable[[], object]] = [lambda: sink.write("k", "S_HEX", "0x1"), lambda: sink.read("A")]
    for act in acts:
        # (was `.env: line 2: …`: not the `file:line: problem` every other message says)
        with pytest.raises(SinkError, match=r"\.env:2: the . quote that opens the value of NOTE is never closed, so a "
                                            r"shell cannot read the file; left untouched"):
            act()
    assert path.read_bytes() == before
    config = SinkConfig("env", "dotenv", {"path": str(path)}, SourceLoc("k.yaml", 1))
    with pytest.raises(ValueError, match="line 2: "):
        dotenv_scan(config)


@pytest.mark.parametrize(("content", "said"), [
    ('{"their_limit": 1e400}', "holds the number 1e400, too large to be written back as JSON"),
    ('{"their_ratio": NaN}', "holds NaN, which is not JSON"),
    ('{"dup": "first", "dup": "second"}', "holds the name 'dup' twice in one object"),
])
def test_a_json_sink_keeps_other_entries_valid_json_or_leaves_the_file(tmp_path: Path, content: str,
                                                                     said: str) -> None:
    """1e400 was read as inf and written back as Infinity, which is not JSON; NaN likewise; a name
    twice kept the last silently. Each file is now refused and left as it is."""
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(SinkError, match=said):
        JsonSink(path).write("k", "S", "0x1")
    assert path.read_text() == content


def test_dotenv_duplicate_names_collapse_to_the_written_value(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("K=first\nX=1\nK=second\n")
    sink = DotenvSink(path)
    assert sink.read("K") == "second"  # last wins, as in dotenv loaders
    sink.write("k", "K", "third")
    assert path.read_text() == "K=third\nX=1\n"


def test_dotenv_keeps_crlf_line_endings_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes("\ufeffA=1\r\nB=2\r\n".encode())
    sink = DotenvSink(path)
    sink.write("a", "A", "one")
    sink.write("c", "C", "3")
    assert path.read_bytes() == "\ufeffA=one\r\nB=2\r\nC=3\r\n".encode()


def test_dotenv_refuses_invalid_variable_names(tmp_path: Path) -> None:
    for bad in ("1ABC", "A-B", "A B", "", "A.B"):
        with pytest.raises(SinkError, match="not a valid environment variable name"):
            DotenvSink(tmp_path / ".env").write("k", bad, CANARY)
    assert DotenvSink.name_problem("GOOD_NAME_1") is None
    assert not (tmp_path / ".env").exists()


def test_dotenv_remove_on_missing_file_creates_nothing(tmp_path: Path) -> None:
    DotenvSink(tmp_path / "none" / ".env").remove("K")
    assert not (tmp_path / "none").exists()


# ------------------------------------------------------------------------------------------ json


def test_json_file_is_a_sorted_flat_object_with_other_entries_kept(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"zeta": "z", "nested": {"kept": True}}))
    sink = JsonSink(path)
    sink.write("k", "alpha", "a\"b\n")
    assert path.read_text() == json.dumps({"alpha": "a\"b\n", "nested": {"kept": True}, "zeta": "z"},
                                          indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("content", ['{"a": "x", ', '["a"]', '"str"', "\xff"])
def test_json_refuses_a_corrupt_or_non_object_file_and_leaves_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(SinkError, match=f"{path}: not") as info:
        JsonSink(path).write("ci-bot", "QUESTRA_CI_BOT", CANARY)
    assert "QUESTRA_CI_BOT" in str(info.value) and "ci-bot" in str(info.value)
    assert path.read_bytes() == content.encode("latin-1")


def test_json_empty_file_counts_as_empty_object(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.touch()
    JsonSink(path).write("k", "K", "v")
    assert json.loads(path.read_text()) == {"K": "v"}


def test_json_non_string_entry_is_not_returned_as_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"K": 5}')
    with pytest.raises(SinkError, match="'K' is not a string"):
        JsonSink(path).read("K")


# ------------------------------------------------------------------------------------- directory


def test_file_sink_stores_exactly_the_secret_without_newline(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "keys")
    sink.write("ci-bot", "questra-ci-bot.key", CANARY)
    assert (tmp_path / "keys" / "questra-ci-bot.key").read_bytes() == CANARY.encode()


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../escape", "a\\b", "nul\0"])
def test_file_sink_refuses_unsafe_names(tmp_path: Path, bad: str) -> None:
    sink = FileSink(tmp_path / "keys")
    with pytest.raises(SinkError, match="file name"):
        sink.write("ci-bot", bad, CANARY)
    with pytest.raises(SinkError):
        sink.read(bad)
    with pytest.raises(SinkError):
        sink.remove(bad)
    assert not (tmp_path / "keys").exists()
    assert FileSink.name_problem(bad) is not None


# ---------------------------------------------------------------------------------------- errors


def break_parent(sink: Sink, tmp_path: Path) -> None:
    """Put a regular file where the sink's directory should be, so every write fails."""
    (tmp_path / "secrets").write_text("not a directory")


def test_canary_secret_never_appears_in_sink_errors(sink: Sink, tmp_path: Path) -> None:
    break_parent(sink, tmp_path)
    with pytest.raises(SinkError) as info:
        sink.write("ci-bot", "QUESTRA_CI_BOT", CANARY)
    message = str(info.value)
    assert "QUESTRA_CI_BOT" in message and "ci-bot" in message
    chain: BaseException | None = info.value
    while chain is not None:  # nor anywhere in the exception chain a traceback with -v would show
        assert CANARY not in str(chain) and CANARY not in repr(chain)
        chain = chain.__cause__ or chain.__context__


def test_canary_in_a_corrupt_file_is_not_echoed(tmp_path: Path) -> None:
    json_path = tmp_path / "s.json"
    json_path.write_text('{"OLD": "' + CANARY + '" "broken"}')
    with pytest.raises(SinkError) as jinfo:
        JsonSink(json_path).write("k", "NEW", "x")
    env_path = tmp_path / ".env"
    env_path.write_bytes(b"OLD=" + CANARY.encode() + b"\xff\n")
    with pytest.raises(SinkError) as dinfo:
        DotenvSink(env_path).write("k", "NEW", "x")
    for info in (jinfo, dinfo):
        assert CANARY not in str(info.value)


def test_dotenv_nul_in_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="NUL") as info:
        DotenvSink(tmp_path / ".env").write("k", "K", CANARY + "\0")
    assert CANARY not in str(info.value)


# -------------------------------------------------------------------------------------- registry


def config(type_: str, **options: object) -> SinkConfig:
    return SinkConfig(name="dev-env", type=type_, options=options, loc=SourceLoc("keyform.yaml", 12))


def test_open_sink_maps_each_type_to_its_class(tmp_path: Path) -> None:
    dotenv = open_sink(config("dotenv", path=str(tmp_path / ".env")))
    assert isinstance(dotenv, DotenvSink) and dotenv.path == tmp_path / ".env"
    assert isinstance(open_sink(config("json", path=tmp_path / "s.json")), JsonSink)
    files = open_sink(config("file", dir=str(tmp_path / "keys")))
    assert isinstance(files, FileSink) and files.dir == tmp_path / "keys"
    assert all(is_readable(config(t, path=str(tmp_path / "p"), dir=str(tmp_path / "d")))
               for t in ("dotenv", "json", "file"))
    assert not is_readable(config("vault"))


def test_open_sink_refuses_unknown_type_and_missing_option_with_location() -> None:
    with pytest.raises(KeyformError, match=r"keyform.yaml:12: sink dev-env: unknown type 'vault' "
                                           r"\(expected one of dotenv, exec, file, json, k8s-secret, sops\)"):
        open_sink(config("vault", path="x"))
    with pytest.raises(KeyformError, match=r"keyform.yaml:12: sink dev-env: type file needs a 'dir' option"):
        open_sink(config("file", path="x"))
