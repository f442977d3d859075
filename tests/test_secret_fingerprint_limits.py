"""The issued-secret fingerprints (`State.secret_fingerprint`, `redact.watch`) as units: what is
recognised and what is not, and, found by an adversarial review (stop 37), the cost of recognising
them in a huge value or with a hand-edited state's many lengths, a short secret's fingerprint as a
guessing aid, and `state rekey` leaving salted fingerprints in a keyed state."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from harness.project import Project
from keyform import redact
from keyform.emulator import Emulator
from keyform.state import State

KEY = "6f1c0a9e4b7d2c58a1e3f09b7c6d5e4a"


class _Counted:
    """`state`'s fingerprint function, counting its calls (what a watch costs)."""

    def __init__(self, state: State) -> None:
        self.fingerprint, self.calls = state.fingerprinter(), 0

    def __call__(self, value: str) -> str:
        self.calls += 1
        return self.fingerprint(value)


@pytest.fixture
def state() -> Iterator[State]:
    st = State.new()
    yield st
    redact.watch(st.fingerprinter(), [])


def test_watch_costs_an_hmac_per_character_of_any_length(state: State) -> None:
    """`holds_known` fingerprinted every window of a value up to 64 KiB: an API's 1 MB name cost
    ~65,000 HMACs per value shown, per plan. Now only windows where a secret could start (after a
    space or punctuation) in the first 4,096 characters: one here (in both cases), and at most 8,192 for any value
    (a window whose letters are all of one case is fingerprinted in the other case too)."""
    counted = _Counted(state)
    recorded = str(state.secret_fingerprint("sk_live_" + "Zq81Kp02Lm93Xv47" * 2 + "abcdefgh"))
    redact.watch(counted, [recorded])
    value = "n" * 1_000_000
    assert redact.mask(value) is value
    assert counted.calls <= 2, counted.calls  # (its one window, in both cases)
    redact.watch(counted, [recorded])
    counted.calls = 0
    assert redact.mask("n " * 500_000) is not None
    assert counted.calls <= 2 * redact.MAX_WATCH_SCAN, counted.calls  # (a single-case window: in both cases)


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


def test_watch_recognises_a_recorded_secret_however_wrapped_and_only_it(state: State) -> None:
    secret = "sk_live_" + "Zq81" * 10
    recorded = state.secret_fingerprint(secret)
    assert recorded is not None and secret not in recorded and recorded.startswith(f"{len(secret)}:hmac-sha256:")
    assert state.secret_fingerprint("short") is None and state.secret_fingerprint(None) is None
    redact.watch(state.fingerprinter(), [recorded, "garbage", "x:y"])
    wrapped = f"key for {secret[:20]}\n  {secret[20:]} (echoed)"
    assert redact.mask(wrapped) == "key for *** (echoed)"
    assert redact.mask("an ordinary name") == "an ordinary name"
    unseen = "sk_live_" + "Yy77" * 10  # never remembered by this process
    other = State.new()  # under another salt, its fingerprint does not match
    redact.watch(other.fingerprinter(), [str(state.secret_fingerprint(unseen))])
    assert not redact.holds_known(f"name {unseen}")
    redact.watch(state.fingerprinter(), [str(state.secret_fingerprint(unseen))])
    assert redact.holds_known(f"name {unseen}")


def test_a_hand_edited_state_with_many_secret_lengths_cannot_make_masking_slow(state: State) -> None:
    """Each recorded length costs one fingerprint per window of every value masked: a state with
    hundreds of lengths would cost ~50,000 HMACs per name. Only the 8 most used lengths count."""
    counted = _Counted(state)
    text = "a name of three hundred characters " * 9
    redact.watch(counted, [f"{n}:hmac-sha256:{'0' * 64}" for n in range(8, 600)])  # 592 lengths
    assert not redact.holds_known(text)
    assert 0 < counted.calls <= 8 * len(text), counted.calls


@pytest.mark.parametrize("encode", [lambda s: quote(s, safe=""), lambda s: json.dumps(s)[1:-1]],
                         ids=["percent-encoded", "json-escaped"])
def test_watch_recognises_the_encoded_forms_scrub_catches(state: State, encode: Callable[[str], str]) -> None:
    """Found by an adversarial review (stop 37): a REST provider's secret with `/ + =` (base64) or a
    quote echoed percent-encoded (a callback URL) or JSON-escaped (a raw body) was not recognised by
    a later process, though `scrub` of a known secret matches those forms. The value is now also
    scanned decoded; what is found there is remembered, and `scrub` removes its encoded forms."""
    import secrets as rnd

    secret = f'sk/live+"{rnd.token_hex(16)}/=='  # never remembered by this process (redact._known is global)
    redact.watch(state.fingerprinter(), [str(state.secret_fingerprint(secret))])
    echoed = f"callback {encode(secret)}"
    assert secret not in echoed
    assert redact.mask(echoed) == "callback ***", redact.mask(echoed)


@pytest.mark.parametrize("upper", [True, False], ids=["upper-cased", "lower-cased"])
def test_a_single_case_secret_echoed_in_the_other_case_is_recognised_by_its_fingerprint(
        state: State, upper: bool) -> None:
    """A process that knows an issued secret only by its fingerprint matched it in its exact case:
    a hex token an API upper-cased into a name (or an upper-case one it lower-cased) was shown whole
    by every later plan, while the process that held it masked it in any case."""
    issued = "sk_live_" + "3f9a0c7e" * 5 if upper else "SK_LIVE_" + "3F9A0C7E" * 5
    redact.watch(state.fingerprinter(), [str(state.secret_fingerprint(issued))])
    echo = f"name {issued.upper() if upper else issued.lower()} taken"
    assert redact.mask(echo) == "name *** taken"
    assert redact.mask(f"name {issued} taken") == "name *** taken"
