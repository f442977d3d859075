"""Stop 46, redaction of encoded echoes: a secret base64-encoded inside a longer base64 text at any
byte offset (a helper's stderr, a plug-in's exception, a server's body), and the shapes an
adversarial pass tried on every output path (see docs/security.md, "Stop 46")."""

from __future__ import annotations

import base64
import html
import json
import os
import secrets
import unicodedata
from pathlib import Path

import pytest

from harness.project import Project
from keyform import redact
from keyform.emulator import Emulator
from keyform.sinks.procs import describe_output


def _determined(blob: bytes, start: int, length: int) -> str:
    """The characters of `blob`'s base64 that only the bytes `blob[start:start + length]` decide."""
    encoded = base64.b64encode(blob).decode("ascii")
    first = -(-8 * start // 6)
    last = 8 * (start + length) // 6
    return encoded[first:last]


@pytest.mark.parametrize("length", [7, 10, 12, 20])
@pytest.mark.parametrize("before", [0, 1, 2])
@pytest.mark.parametrize("after", [0, 1, 2])
@pytest.mark.parametrize("urlsafe", [False, True], ids=["standard", "urlsafe"])
def test_a_short_secret_base64_encoded_inside_a_longer_blob_is_masked_at_any_offset(
        length: int, before: int, after: int, urlsafe: bool) -> None:
    """A secret of 12 bytes or less, base64-encoded inside a longer encoded text (a helper printing a
    Kubernetes Secret's `data` back, `printf 'user:%s\\n' | base64`), was masked only where the blob
    ended with it, padded: its pattern was its whole padded encoding (16 characters at most, so no
    16-character window of it was matched), and the characters the next bytes change broke it."""
    secret = "Qz7#kP2!mW9$xR4&vT6*"[:length]
    prefix, suffix = os.urandom(30 + before), os.urandom(30 + after)
    blob = prefix + secret.encode() + suffix
    encoded = base64.b64encode(blob).decode("ascii")
    core = _determined(blob, len(prefix), len(secret))
    if urlsafe:
        encoded, core = encoded.translate(str.maketrans("+/", "-_")).rstrip("="), core.translate(str.maketrans("+/", "-_"))
    shown = "".join(describe_output(f"kubectl: error: data {encoded}\n".encode(), [secret]).split())
    kept = [core[i:i + 8] for i in range(len(core) - 8 + 1)]  # (`redact.MIN_BASE64`)
    assert not [piece for piece in kept if piece in shown], (core, shown)
    assert "***" in shown and shown.startswith("kubectl:error:data")


def test_a_remembered_secret_base64_encoded_in_a_plugin_exception_is_masked() -> None:
    """Every scrub matches the base64 cores of every remembered secret, not only a helper's stderr
    for the secret it was given: a plug-in's exception quoting `Authorization: Basic base64(user:token)`."""
    token = "plg-Tq81xZ0v"  # 12 characters: its whole encoding is 16, no window of it was matched
    redact.remember(token)
    header = "Basic " + base64.b64encode(f"api-user:{token}\n".encode()).decode()
    line = redact.exception_line(RuntimeError(f"401 from upstream for Authorization: {header}"))
    core = _determined(f"api-user:{token}\n".encode(), len("api-user:"), len(token))
    assert core[:8] not in line and core[-8:] not in line and "***" in line, line


def test_a_short_base64_core_does_not_mask_ordinary_text() -> None:
    """The minimum core: a 4- or 5-byte secret's cores (4 to 7 characters) are not matched, so
    ordinary text and unrelated base64 are left alone; the secret itself still is."""
    text = "dG9rMQ== dG9rMTI= and tok1, b2sxMg and tok12"
    assert redact.scrub(text, ["tok1", "ok12"]) == "dG9rMQ== dG9rMTI= and ***, b2sxMg and ***"


def _shapes(n: int) -> dict[str, tuple[str, str]]:
    """Each shape with a secret of its own (`n`: a distinct one per test; every secret a test
    scrubs is remembered by the process)."""
    r = f"{n:02d}{secrets.token_hex(1)}"  # (no escaped form of one shares 16 characters with another's)
    short = f"cnry_{r}Zq"  # 11 characters: no 16-character window of it exists
    accented = f"c{r}-café-{r}ñu"  # NFC, as a manifest usually holds it
    amp = f"tok&<{r}>Zq"
    return {
        "hex": (short, "helper: stdin was " + short.encode().hex()),
        "HEX at an odd offset": (short, "dump: 0" + short.encode().hex().upper() + "0a"),
        "hex of a non-ASCII secret": (accented, "bytes " + accented.encode().hex()),
        "NFD echo of an NFC secret": (accented, "name " + unicodedata.normalize("NFD", accented) + " taken"),
        "NFC echo of an NFD secret": (unicodedata.normalize("NFD", accented), "name " + accented + " taken"),
        "NFD, JSON-escaped": (accented, json.dumps({"v": unicodedata.normalize("NFD", accented)})),
        "Go's JSON": (amp, _go_json(amp)),
        "an HTML error page": (amp, "<p>bad token " + html.escape(amp) + "</p>"),
        "ANSI escapes inside": (short, "\x1b[1m" + short[:5] + "\x1b[0m" + short[5:] + "\x1b[K"),
        "an escape ending in its first letter": (f"Kcnry_{r}", f"\x1b[Kcnry_{r}"),
    }


def _go_json(text: str) -> str:
    """JSON as Go's encoding/json writes it: `<`, `>`, `&` as `\\u003c`, `\\u003e`, `\\u0026`."""
    return json.dumps(text, ensure_ascii=False).replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


SHAPES = list(_shapes(0))


def _bare(text: str) -> str:
    return "".join(text.split()).lower()


@pytest.mark.parametrize("shape", SHAPES)
def test_an_adversarial_shape_of_a_secret_is_masked_on_every_scrubbed_path(shape: str) -> None:
    """Each of these printed the secret (readable: decoded, normalised or unescaped by the reader)
    in a helper's stderr, a server's error, a plug-in's exception and a `-v` log line: hex (`xxd`, Go's
    `%x`), another Unicode normal form than the manifest's, Go's JSON escapes, an HTML page's
    entities, and a terminal colour code in the middle of it (the 16-character windows of a short
    secret do not exist; a long one's were split)."""
    secret, echo = _shapes(1 + SHAPES.index(shape))[shape]
    hidden = secret.encode().hex() if "hex" in shape.lower() else None
    plain = _bare(unicodedata.normalize("NFC", secret))[:8]
    for said in (describe_output(echo.encode(), [secret]), _status_error(echo, secret),
                 _exception_line(echo, secret)):
        bare = _bare(unicodedata.normalize("NFC", html.unescape(said)))
        assert plain not in bare and ("***" in said or "[redacted]" in said), said
        assert hidden is None or hidden[2:14] not in bare, said


@pytest.mark.parametrize("shape", [s for s in SHAPES if "hex" not in s.lower()])
def test_an_adversarial_shape_of_a_secret_is_masked_in_plans_and_the_state(shape: str) -> None:
    """`mask` (plans in every format, `report`, what the state records of an API's answer) matches
    the same forms; hex is matched only where text is scrubbed (errors, logs, helpers' output), not
    in every name a listing holds: see docs/security.md."""
    secret, echo = _shapes(100 + SHAPES.index(shape))[shape]
    redact.remember(secret)
    masked = redact.mask({"name": echo})["name"]
    assert "***" in masked and _bare(unicodedata.normalize("NFC", secret))[:8] not in _bare(
        unicodedata.normalize("NFC", html.unescape(masked))), masked


def _status_error(detail: str, secret: str) -> str:
    import httpx

    from keyform.providers.http import HttpClient, status_error

    client = HttpClient("tq", "http://127.0.0.1:9", {}, transport=httpx.MockTransport(lambda r: httpx.Response(400)))
    response = httpx.Response(400, request=httpx.Request("POST", "http://127.0.0.1:9/x"))
    return str(status_error(client, "create", response, detail, secrets=(secret,)))


def _exception_line(detail: str, secret: str) -> str:
    redact.remember(secret)
    return redact.exception_line(RuntimeError(detail.replace("\n", " ")))


def test_a_secret_repeated_ten_thousand_times_is_scrubbed_in_linear_time() -> None:
    """A helper that prints its stdin in a loop: 10,000 copies, raw and base64-encoded, split across
    lines and with CRLF line ends; every copy masked. (No timing asserted: the machine is shared;
    the work is one pass per pattern length over at most `MAX_RAW` characters.)"""
    secret = "cnry_Kx81Zq02"
    raw = (f"try {secret}\r\n" * 10_000).encode()
    encoded = base64.b64encode((secret * 10_000).encode())
    for out in (raw, encoded, raw.replace(b"Kx81", b"Kx\n81")):
        said = describe_output(out, [secret])
        assert "Kx81" not in said.replace(" | ", "") and ("***" in said or "[redacted]" in said), said[:200]
        assert base64.b64encode(secret.encode())[:8].decode() not in said


HELPER = r"""s=$(cat); printf '%s' "$s" > "$GOT"
{ printf 'ansi: \033[1m%s\033[0m%s\n' "$(printf %s "$s" | cut -c1-12)" "$(printf %s "$s" | cut -c13-)"
  printf 'blob: '; printf 'x%s\n' "$s" | base64 | tr -d '\n'; echo
  printf 'hex: '; printf '%s' "$s" | od -An -tx1 | tr -d ' \n'; echo; } >&2
exit 3
"""


def test_a_failing_exec_helper_printing_the_secret_hex_base64_and_coloured_leaks_nothing(
        tmp_path: Path, emulator: Emulator) -> None:
    """End to end, `apply -v`: an `exec` sink's helper that fails after printing the issued secret
    coloured in the middle, base64-encoded after a byte of its own, and in hex. The hex and the
    coloured parts (each shorter than 16 characters) were printed in the error and the `-v` output."""
    (tmp_path / "helper.sh").write_text(HELPER)
    got = tmp_path / "got"
    project = Project(tmp_path, emulator.url, env={"GOT": str(got)})
    project.exec_vault(f"sh, {tmp_path / 'helper.sh'}", tmp_path)
    result = project.run("apply", "-v", "--auto-approve")
    assert result.exit_code == 1 and "failed with exit status 3" in result.stderr, result.output
    secret = got.read_text()
    assert len(secret) >= 24, secret
    journal = tmp_path / "keyform.state.json.journal"
    texts = [result.output] + [p.read_text() for p in (journal, project.state_path) if p.exists()]
    hexed = secret.encode().hex()
    blob = base64.b64encode(b"x" + secret.encode() + b"\n").decode()
    for text in texts:
        bare = "".join(text.split())
        assert not [hexed[i:i + 12] for i in range(0, len(hexed) - 12, 2) if hexed[i:i + 12] in bare.lower()], text
        assert not [blob[i:i + 8] for i in range(2, len(blob) - 10) if blob[i:i + 8] in bare], text
        assert not [secret[i:i + 8] for i in range(len(secret) - 8) if secret[i:i + 8] in bare], text
    assert "ansi:" in result.stderr and "blob:" in result.stderr and "hex: ***" in result.stderr, result.stderr


@pytest.mark.parametrize("case", ["narrow prefixed lines", "a truncated echo", "a 5-byte secret whole"])
def test_a_helpers_own_secret_in_base64_is_masked_as_before_stop_46(case: str) -> None:
    """Found by an adversarial review (stop 46): a helper's stderr was scrubbed of any 16 characters
    of the base64 of the secret it was given (`procs.base64_forms`, dropped for `_decoded_hits`,
    which needs 16 decoded bytes of a long secret, 22 characters, and 6 of a short one). A logger
    wrapping `base64` of its stdin at 20 characters a line with a prefix printed the whole secret,
    15 bytes a line; a 20-character truncated echo showed 15 bytes of it; a 5-byte secret's padded
    encoding was shown whole."""
    secret = "5byte" if case == "a 5-byte secret whole" else "sk_live_" + "Qz7kP2mW9xR4vT6aB8cD1eF3gH5j"
    encoded = base64.b64encode(secret.encode()).decode()
    if case == "narrow prefixed lines":
        err = "\n".join(f"helper[77]: {encoded[i:i + 20]}" for i in range(0, len(encoded), 20))
    elif case == "a truncated echo":
        err = f"refused: data {encoded[4:24]}... (truncated)"
    else:
        err = f"refused: data {encoded}"
    shown = "".join(describe_output(err.encode(), [secret]).split())
    kept = [encoded[i:i + 16] for i in range(len(encoded) - 16 + 1)] if len(encoded) > 16 else [encoded]
    assert not [piece for piece in kept if piece in shown], shown
    assert "***" in shown and shown.startswith(("helper[77]:", "refused:"))


def test_a_secret_with_slashes_in_json_that_escapes_them_is_masked() -> None:
    """Found by an adversarial review (stop 46): PHP's `json_encode` (and other encoders: some Java
    ones, Ruby's `to_json` with escape_slash) writes `/` as `\\/`; a base64-alphabet secret (an AWS
    secret access key) echoed so was cut by each `\\` into parts shorter than 16 characters, and a
    short one was not matched at all: each part was printed."""
    for secret in ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq", f"k/{secrets.token_hex(3)}/z9"):
        echo = '{"error": "bad key ' + secret.replace("/", "\\/") + '"}'
        redact.remember(secret)
        for said in (describe_output(echo.encode(), [secret]), _status_error(echo, secret),
                     _exception_line(echo, secret), redact.mask({"name": echo})["name"]):
            parts = [p for p in secret.split("/") if len(p) >= 4]
            assert "***" in said and not [p for p in parts if p in said], said
