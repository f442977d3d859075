"""Issue 13, defect 3: redaction scrubs the raw text first (every known secret, its whitespace-altered
forms, every 16-character window of it), then collapses whitespace and cuts. Unit checks of
`keyform.redact` and of `status_error`, and a hostile server on 127.0.0.1 that echoes a TextQL
auth value back in its 4xx body: neither the error printed nor the journal's `failed` record holds it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from harness.project import Project
from keyform import redact
from keyform.providers.http import HttpClient, status_error
from tests.loopback import LoopbackServer, QuietHandler, serving

PEM = ("-----BEGIN PRIVATE KEY-----\n" + "\n".join(
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC" + str(i) * 13 for i in range(4))
       + "\n-----END PRIVATE KEY-----\n")
SPACED = "SUPERSECRET  VALUE123"


def _windows(secret: str, size: int = 16) -> list[str]:
    core = "".join(secret.split())
    return [core[i:i + size] for i in range(len(core) - size + 1)]


def _leaks(text: str, secret: str) -> list[str]:
    visible = "".join(text.split())
    return [w for w in _windows(secret) if w in visible] + ([secret] if secret in text else [])


def _error(detail: str, secrets: tuple[str, ...]) -> str:
    client = HttpClient("tq", "http://127.0.0.1:9", {}, transport=httpx.MockTransport(lambda r: httpx.Response(400)))
    response = httpx.Response(400, request=httpx.Request("POST", "http://127.0.0.1:9/x"))
    return str(status_error(client, "create", response, detail, secrets=secrets))


@pytest.mark.parametrize("echo", [
    f"authValue '{SPACED}' is invalid",  # the raw echo
    "authValue 'SUPERSECRET VALUE123' is invalid",  # the server collapsed the spaces itself
    "authValue 'SUPERSECRET\n\tVALUE123' is invalid",  # ... or re-wrapped them
    "SUPERSECRETVALUE123 was rejected",  # ... or dropped them
])
def test_a_secret_with_inner_whitespace_is_scrubbed_whatever_the_server_did_to_its_blanks(echo: str) -> None:
    message = _error(echo, (SPACED,))
    assert "SUPERSECRET" not in message and "VALUE123" not in message, message
    assert "***" in message


@pytest.mark.parametrize("shape", ["raw", "json-escaped", "one-line"])
def test_a_multi_line_pem_echoed_back_prints_no_line_of_it(shape: str) -> None:
    echoed = {"raw": PEM, "json-escaped": json.dumps(PEM)[1:-1], "one-line": " ".join(PEM.split())}[shape]
    message = _error(f"invalid certificate: {echoed}", (PEM,))
    assert _leaks(message, PEM) == [], message
    assert "MIIEvQ" not in message


@pytest.mark.parametrize("offset", [250, 270, 284, 290, 299])
def test_a_secret_straddling_the_cut_leaves_no_16_characters_behind(offset: int) -> None:
    secret = "sk_live_" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
    message = _error("x" * offset + secret + " trailing words", (secret,))
    assert _leaks(message, secret) == [], message
    assert "sk_live_0123456" not in message


NON_ASCII = "cnry-ünï-ä1ö2ü3ß4é5è6à7ç8ñ9-end"
B64ISH = "cnry+qtok/AAAA+1111/BBBB+2222/CCCC+3333/DDDD"


@pytest.mark.parametrize(("secret", "echo"), [
    (NON_ASCII, json.dumps({"authValue": NON_ASCII})),  # Python's default: \u00fc escapes
    (NON_ASCII, json.dumps({"authValue": NON_ASCII}, ensure_ascii=False)),
    (B64ISH, "token not accepted: Bearer%20" + B64ISH.replace("+", "%2B")),  # quoted, `/` kept
    (B64ISH, "see https://x.example/?t=" + B64ISH.replace("+", "%2B").replace("/", "%2F")),
])
def test_an_escaped_or_percent_encoded_echo_prints_no_part_of_the_secret(secret: str, echo: str) -> None:
    """A server's error may carry the secret JSON-escaped to ASCII or percent-encoded; both used to
    print whole (every 16-character window of the raw secret broken by the escapes)."""
    message = _error(echo, (secret,))
    assert "cnry" not in message and "AAAA" not in message and "\\u00" not in message, message
    assert "***" in message


CYRILLIC = "cnry-пароль-секретный-ключ-номер"


def _jackson(text: str) -> str:
    """JSON as Jackson (and other Java encoders) write it: non-ASCII as `\\u` escapes in upper-case hex."""
    return "".join(c if c.isascii() else f"\\u{ord(c):04X}" for c in json.dumps(text, ensure_ascii=False))


@pytest.mark.parametrize(("secret", "echo"), [
    ("cnry_AbCdEfGh12345678IjKlMnOp", "name CNRY_ABCDEFGH12345678IJKLMNOP taken"),  # an API upper-casing a name
    ("cnry_AbCdEfGh12345678IjKlMnOp", "cnry_abcdefgh12345678ijklmnop"),
    (CYRILLIC, f"description {CYRILLIC.upper()} is too long"),
    (CYRILLIC, f"tail: {CYRILLIC[-20:].upper()}"),  # the tail of a non-ASCII secret, upper-cased
    (CYRILLIC, f"body: {_jackson(CYRILLIC)}"),  # `\\u043F`, not Python's `\\u043f`
    (NON_ASCII, f"url: https://x.example/?v={quote(NON_ASCII).lower()}"),  # `%c3%bc`, not `%C3%BC`
])
def test_an_echo_in_another_case_prints_no_part_of_the_secret(secret: str, echo: str) -> None:
    """Matching was case-sensitive: an API that upper-cased a name holding a secret, a Java JSON
    encoder's upper-case `\\u` escapes and lower-case percent-encoding all printed the secret whole
    (every 16-character window broken by the case). Both `scrub` and `mask` (via `holds_known`)
    catch them now, and `holds_whole`."""
    message = _error(echo, (secret,))
    assert "cnry" not in message.lower() and "пароль" not in message.lower(), message
    assert "\\u04" not in message.lower() and "%c3" not in message.lower(), message
    assert "***" in message
    assert redact.holds_whole(echo, [secret]) is not echo.startswith("tail:")  # (a tail: not the whole)
    redact.remember(secret)
    assert redact.holds_known(echo) and redact.mask(echo) == redact.scrub(echo, ()) and "***" in redact.mask(echo)


@pytest.mark.parametrize(
    ("secret", "echo"),
    [
        ("dtls_ıQ7wZ2ıP4kR9ıM3xV8ıN6bT1ıY5h", "DTLS_IQ7WZ2IP4KR9IM3XV8IN6BT1IY5H"),  # `ı` upper-cased: `I`
        ("trki_iQ7wZ2iP4kR9iM3xV8iN6bT1iY5h", "TRKİ_İQ7WZ2İP4KR9İM3XV8İN6BT1İY5H"),  # a Turkish-locale upper case: `İ`
        ("trki_IQ7WZ2IP4KR9IM3XV8IN6BT1IY5H", "trkı_ıq7wz2ıp4kr9ım3xv8ın6bt1ıy5h"),  # a Turkish-locale lower case: `ı`
    ],
)
def test_an_echo_in_another_case_with_dotless_or_dotted_i_prints_no_part_of_the_secret(secret: str, echo: str) -> None:
    """`ı` folds to itself but upper-cases to `I` (which folds to `i`), and `İ` folds to two
    characters (`i̇`) so it was kept as it was: a secret holding `ı` upper-cased, or one holding `i`/`I`
    in a Turkish locale's upper or lower case, matched none of its windows (an `i` every 6
    characters) and was printed whole."""
    out = redact.scrub(f"name {echo} taken", [secret])
    assert out == "name *** taken", out
    assert redact.holds_whole(echo, [secret])
    assert all(redact._fold(c) == "i" for c in "iIıİ")


def test_a_remembered_secret_is_scrubbed_from_any_later_text() -> None:
    """`remember` only records a secret (an apply remembers every one it issues); the next scrub
    builds its patterns, and a secret remembered after that scrub is caught by the one after."""
    first, second = "rmbr_" + "Qx7" * 12 + "_first", "rmbr_" + "Zk9" * 12 + "_second"
    redact.remember(first)
    assert redact.scrub(f"echo {first} end", []) == "echo *** end"
    redact.remember(second)
    assert redact.scrub(f"{second[3:30]} and {first[8:]}", []) == "*** and ***"


def test_short_secrets_and_ordinary_text_are_left_alone() -> None:
    from keyform.redact import redact, scrub

    assert scrub("hosts must not be empty", ("tok1",)) == "hosts must not be empty"
    assert scrub("the tok1 here", ("tok1",)) == "the *** here"
    assert redact("a \n\n b", ()) == "a b"
    assert redact("x" * 500, ()) == "x" * 300


class _EchoingTextql(QuietHandler):
    """A TextQL API that lists nothing and answers every create with a 400 quoting the request body."""

    server: LoopbackServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/v1/api-keys":
            body = b'{"apiKeys": []}'
            status = 200
        else:
            sent = json.loads(raw or b"{}")
            message = f"authValue '{sent.get('authValue')}' rejected; extra  {sent.get('authValueExtra')}"
            body = json.dumps({"code": "invalid_argument", "message": message}).encode()
            status = 400
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echoing() -> Iterator[LoopbackServer]:
    with serving(LoopbackServer(_EchoingTextql)) as server:
        yield server


def test_a_server_echoing_the_auth_value_reaches_neither_the_terminal_nor_the_journal(
        tmp_path: Path, echoing: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from keyform.journal import Journal

    failed: list[str] = []  # every `failed` record's message, as written (the journal is compacted at the end)
    original = Journal.failed

    def record(self: Journal, seq: str, message: str) -> None:
        failed.append(message)
        original(self, seq, message)

    monkeypatch.setattr(Journal, "failed", record)
    long_secret = "hunter2-" + "Zq9" * 40  # straddles the 300-character cut
    project = Project(tmp_path, echoing.url, env={"AV": SPACED, "AX": long_secret})
    project.write("""\
        version: 1
        providers:
          tq: {type: textql, base_url: "{url}", token: {env: TEXTQL_TOKEN}}
        sinks:
          env: {type: dotenv, path: .secrets/keys.env}
        defaults: {sink: env}
        keys:
          t:
            provider: tq
            hosts: [api.questra.ai]
            auth_value: {env: AV}
            auth_value_extra: {env: AX}
        """)
    result = project.run("apply", "--auto-approve")
    assert result.exit_code == 1 and "invalid_argument" in result.stderr, result.output
    journal = tmp_path / "keyform.state.json.journal"
    files = "".join(p.read_text() for p in (journal, project.state_path) if p.exists())
    assert failed and all("invalid_argument" in m for m in failed)
    for text in (result.output, files, *failed):
        assert "SUPERSECRET" not in text and "VALUE123" not in text
        assert _leaks(text, long_secret) == []


def test_a_remembered_secret_with_a_lone_surrogate_is_scrubbed_without_an_error() -> None:
    """An API may issue a secret holding a \\ud800 escape: its percent-encoded forms raised
    UnicodeEncodeError in every later scrub of the process ('internal error')."""
    secret = "sk_live_0001\ud800tail_abcdefghijkl"
    redact.remember(secret)
    assert redact.scrub(f"x {secret} y", []) == "x *** y"
    assert redact.scrub("nothing here", []) == "nothing here"
