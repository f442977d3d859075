"""Stop 46, redaction of encoded echoes: a secret base64-encoded inside a longer base64 text at any
byte offset (a helper's stderr, a plug-in's exception, a server's body), and the shapes an
adversarial pass tried on every output path (see docs/security.md, "Stop 46")."""

from __future__ import annotations

import base64
import os

import pytest

from keyform import redact
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
