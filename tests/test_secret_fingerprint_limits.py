"""Found by an adversarial review (stop 37) of the issued-secret fingerprints (`redact.watch`,
`State.secret_fingerprint`): the cost of recognising them in a huge value, a short secret's
fingerprint as a guessing aid, and `state rekey` leaving salted fingerprints in a keyed state."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.project import Project
from keyform import redact
from keyform.emulator import Emulator
from keyform.state import State

KEY = "6f1c0a9e4b7d2c58a1e3f09b7c6d5e4a"


@pytest.fixture
def state() -> Iterator[State]:
    st = State.new()
    yield st
    redact.watch(st.fingerprinter(), [])


def test_watch_costs_an_hmac_per_character_of_any_length(state: State) -> None:
    """`holds_known` fingerprinted every window of a value up to 64 KiB: an API's 1 MB name cost
    ~65,000 HMACs per value shown, per plan. Now only windows where a secret could start (after a
    space or punctuation) in the first 4,096 characters: one here, and at most 4,096 for any value."""
    fingerprint = state.fingerprinter()
    calls = 0

    def counted(value: str) -> str:
        nonlocal calls
        calls += 1
        return fingerprint(value)

    recorded = str(state.secret_fingerprint("sk_live_" + "Zq81Kp02Lm93Xv47" * 2 + "abcdefgh"))
    redact.watch(counted, [recorded])
    value = "n" * 1_000_000
    assert redact.mask(value) is value
    assert calls <= 1, calls
    redact.watch(counted, [recorded])
    calls = 0
    assert redact.mask("n " * 500_000) is not None
    assert calls <= redact.MAX_WATCH_SCAN, calls


def test_salted_fingerprint_of_a_low_entropy_secret_is_an_oracle(state: State) -> None:
    """An issued 8-digit code (a REST or plug-in API's PIN-like secret) was recorded (MIN_WATCHED was
    8) under the salt that sits in the same file: 10^8 HMACs recover it from a committed state (shown
    on the last 4 digits). Under 20 visible characters nothing is recorded now."""
    secret = "48213377"
    recorded = state.secret_fingerprint(secret)
    if recorded is not None:
        n, fp = recorded.split(":", 1)
        salt = bytes.fromhex(state.salt)
        found = [c for c in (f"4821{i:04d}" for i in range(10_000))
                 if "hmac-sha256:" + hmac.new(salt, c.encode(), hashlib.sha256).hexdigest() == fp]
        assert found == [], f"recovered {found} from the state's {n}:<fingerprint>"
    assert recorded is None
    assert state.secret_fingerprint("x" * 19) is None and state.secret_fingerprint("sk_live_" + "a1" * 6) is not None


def test_rekey_to_keyed_keeps_a_salted_secret_oracle(tmp_path: Path, emulator: Emulator) -> None:
    """`state rekey` to keyed mode (the mode for a committed state) leaves each `secret_fingerprint`
    salted (the salt still in the file): the brute-force oracle keyed mode exists to remove stays, and
    the fingerprint is no longer recognised either (docs: until the key is rotated). Expected: dropped
    or re-made from the sink, as rekey re-makes input fingerprints."""
    project = Project(tmp_path, emulator.url)
    project.questra("k1:\n  provider: qp\n", extra="state:\n  path: keyform.state.json\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.state()["keys"]["k1"]["secret_fingerprint"].startswith("48:hmac-sha256:")
    project.questra("k1:\n  provider: qp\n",
                    extra="state:\n  path: keyform.state.json\n  fingerprint_key: {env: KEYFORM_FINGERPRINT_KEY}\n")
    rekeyed = project.run("state", "rekey", "-f", str(project.manifest), env={"KEYFORM_FINGERPRINT_KEY": KEY})
    assert rekeyed.exit_code == 0, rekeyed.output
    doc = project.state()
    assert "fingerprint_key_check" in doc
    recorded = doc["keys"]["k1"].get("secret_fingerprint")
    assert recorded is None or ":hmac-sha256-keyed:" in recorded, recorded
