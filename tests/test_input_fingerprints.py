"""`State.fingerprinter` (an HMAC keyed once, copied per value) and `input_fingerprints` (each
distinct reference read once per call) give exactly what `State.fingerprint` per input gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyform import fingerprintkey, redact
from keyform.errors import KeyformError
from keyform.model import EnvRef, FileRef, SecretOfRef, SecretRef
from keyform.resolve import input_fingerprints, read_ref
from keyform.state import State
from tests.factories import textql_key, workspace

VALUES = ["hunter2", "", "ünïcødé", "x" * 200, "line\nbreak"]


def _keyed() -> State:
    state = State.new()
    state.mac_key = fingerprintkey.derive("k" * 32, state.salt)
    state.key_check = fingerprintkey.check_value(state.mac_key)
    return state


@pytest.mark.parametrize("state", [State.new(), _keyed()], ids=["salted", "keyed"])
def test_fingerprinter_makes_what_fingerprint_makes(state: State) -> None:
    fingerprint = state.fingerprinter()
    for value in VALUES:
        assert fingerprint(value) == state.fingerprint(value)
    assert fingerprint("a") == state.fingerprint("a")  # the keyed HMAC is not consumed by a use


def test_fingerprinter_raises_where_fingerprint_raises() -> None:
    keyed = _keyed()
    keyed.mac_key = None
    fingerprint = keyed.fingerprinter()  # making it does not raise: calling it does, as fingerprint does
    with pytest.raises(KeyformError, match=r"state\.fingerprint_key is needed"):
        fingerprint("x")
    bad_salt = State(lineage="l", serial=0, salt="not hex")
    fingerprint = bad_salt.fingerprinter()
    with pytest.raises(ValueError):
        fingerprint("x")
    for salt in (None, 123):  # not a string (a state built by hand): raised when called, not when made
        odd: Any = salt
        fingerprint = State(lineage="l", serial=0, salt=odd).fingerprinter()
        with pytest.raises(TypeError):
            fingerprint("x")


def _per_key(ws_keys: dict[str, dict[str, SecretRef]], state: State, env: dict[str, str]) -> dict[str, dict[str, str | None]]:
    """What input_fingerprints gave when it read every input of every key on its own."""
    out: dict[str, dict[str, str | None]] = {}
    for address, inputs in ws_keys.items():
        fps: dict[str, str | None] = {}
        for path, ref in inputs.items():
            if isinstance(ref, SecretOfRef):
                continue
            try:
                fps[path] = state.fingerprint(read_ref(ref, f"keys.{address}.{path}", env))
            except KeyformError:
                fps[path] = None
        if fps:
            out[address] = fps
    return out


@pytest.mark.parametrize("state", [State.new(), _keyed(), State(lineage="l", serial=0, salt="00", key_check="0" * 16)],
                         ids=["salted", "keyed", "keyed-without-key"])
def test_shared_references_are_read_once_with_the_same_fingerprints(tmp_path: Path, state: State) -> None:
    shared = tmp_path / "shared.txt"
    shared.write_text("  from a file  \n")
    refs: list[SecretRef] = [EnvRef("AV"), EnvRef("AV"), EnvRef("UNSET"), EnvRef("EMPTY"), FileRef(str(shared)),
                             FileRef(str(tmp_path / "missing")), SecretOfRef("k0"), EnvRef("OTHER")]
    specs = [textql_key(f"k{i}", auth=ref, secret_headers={"X-Extra": refs[(i + 3) % len(refs)]})
             for i, ref in enumerate(refs)]
    specs.append(textql_key("plain"))
    ws = workspace(*specs)
    env = {"AV": "hunter2", "EMPTY": "", "OTHER": "ünïcødé-value"}
    got = input_fingerprints(ws, state, env=env)
    assert got == _per_key({a: dict(s.secret_inputs) for a, s in ws.keys.items()}, state, env)
    assert list(got) == [a for a in ws.keys if a in got]  # keys in manifest order
    assert input_fingerprints(ws, state, ["k1", "k0"], env=env) == {a: got[a] for a in ("k1", "k0")}
    assert {"hunter2", "from a file", "ünïcødé-value"} <= redact._known


def test_a_bad_salt_still_raises_once_an_input_is_read() -> None:
    ws = workspace(textql_key("a", auth=EnvRef("UNSET")), textql_key("b", auth=EnvRef("AV")))
    bad = State(lineage="l", serial=0, salt="not hex")
    assert input_fingerprints(ws, bad, ["a"], env={}) == {"a": {"auth_value": None}}
    with pytest.raises(ValueError):
        input_fingerprints(ws, bad, env={"AV": "v"})


def test_one_reference_object_shared_by_keys_in_a_row_gives_each_its_fingerprint(tmp_path: Path) -> None:
    """The loader gives keys reading one variable one EnvRef (`secretrefs.build_ref`): found again
    by identity, it still gives each key (and each of a key's inputs) that reference's fingerprint,
    None for one that cannot be read, and nothing for a `secret_of` between them."""
    state = State.new()
    shared, unset, missing, source = EnvRef("AV"), EnvRef("UNSET"), FileRef(str(tmp_path / "missing")), SecretOfRef("k0")
    order: list[SecretRef] = [shared, shared, unset, unset, source, source, missing, missing, shared]
    specs = [textql_key(f"k{i}", auth=ref, secret_headers={"X-Extra": ref}) for i, ref in enumerate(order)]
    ws = workspace(*specs)
    env = {"AV": "hunter2"}
    got = input_fingerprints(ws, state, env=env)
    assert got == _per_key({a: dict(s.secret_inputs) for a, s in ws.keys.items()}, state, env)
    assert got["k0"]["auth_value"] == got["k8"]["auth_value"] is not None and got["k2"]["auth_value"] is None
