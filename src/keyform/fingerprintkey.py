"""Keyed fingerprints: `state.fingerprint_key: {env: KEYFORM_FINGERPRINT_KEY}` (or `{file: PATH}`).

keyform detects a changed write-only input (`auth_value: {env: AV}`) by an HMAC fingerprint kept in
the state. Two modes:

- **salted** (the default): HMAC-SHA256 keyed by a random salt stored *in the state*. It hides the
  value from someone who only sees fingerprints from different states, but whoever reads the state
  file has the salt too: a low-entropy input (a password, an e-mail) falls to a word list in
  milliseconds.
- **keyed**: HMAC-SHA256 keyed by `HMAC-SHA256(K, "keyform fingerprint v1" || salt)`, where K is the
  fingerprint key, resolved from the environment or a file at run time and never stored. Without
  K, a state file reveals nothing about any input, whatever its entropy (as long as K itself is
  random: at least 16 characters are required; use `openssl rand -hex 32`). The state records a
  16-hex-digit *check value* (an HMAC under the derived key, not the key), so a missing or wrong
  key is refused instead of making every input look changed.

`keyform state rekey` moves a state between the modes (and from one key to another): it re-reads
every input the manifests reference, checks it against its fingerprint under the old mode, and
re-fingerprints it under the new one, so the next plan shows no diff. An input that has changed
since the last apply keeps a fingerprint that cannot match, so the next plan still shows that
change; an input that cannot be read now makes rekey fail, naming it (nothing is written).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import field

from keyform.errors import Diagnostic, KeyformError, SourceLoc
from keyform.model import EnvRef, FileRef, SecretOfRef, Workspace
from keyform.records import record
from keyform.state import State

MIN_KEY_LENGTH = 16
CHANGED_BEFORE_REKEY = "changed-before-rekey"  # a fingerprint no input can produce: the plan shows the change


def derive(key: str, salt: str) -> bytes:
    """The HMAC key of keyed mode: the external key bound to this state's salt."""
    return hmac.new(key.encode("utf-8"), b"keyform fingerprint v1" + bytes.fromhex(salt), hashlib.sha256).digest()


def check_value(mac_key: bytes) -> str:
    """16 hex digits that identify the derived key without revealing it."""
    return hmac.new(mac_key, b"keyform fingerprint key check", hashlib.sha256).hexdigest()[:16]


def _at(loc: SourceLoc | None, message: str) -> KeyformError:
    return KeyformError([Diagnostic(message, loc)])


def read_key(ref: EnvRef | FileRef, loc: SourceLoc | None, env: Mapping[str, str] | None,
             what: str = "state.fingerprint_key") -> str:
    """The fingerprint key behind `ref` (one trailing newline stripped), checked for length."""
    from keyform.resolve import read_ref

    try:
        key = read_ref(ref, what, env)
    except KeyformError as exc:
        raise KeyformError([Diagnostic(d.message, loc) for d in exc.diagnostics]) from None
    if isinstance(ref, EnvRef):
        key = key[:-2] if key.endswith("\r\n") else key[:-1] if key.endswith("\n") else key
    if len(key) < MIN_KEY_LENGTH:
        source = ref.name if isinstance(ref, EnvRef) else ref.path
        raise _at(loc, f"{what}: {source} holds fewer than {MIN_KEY_LENGTH} characters; a fingerprint key must be "
                       "random and long (e.g. `openssl rand -hex 32`)")
    return key


def attach(workspace: Workspace, state: State, env: Mapping[str, str] | None, *, new_state: bool) -> None:
    """Make `state` compute fingerprints the way the manifests say, or refuse a mismatch.

    A new state takes the manifests' mode. An existing one must already be in it (else: run
    `keyform state rekey`), and in keyed mode the key must be the one its check value names."""
    ref, loc = workspace.fingerprint_key, workspace.fingerprint_key_loc
    if ref is None:
        if state.key_check is not None and not new_state:
            raise KeyformError("the state's fingerprints are keyed, but the manifests set no state.fingerprint_key; "
                               "set it to the same key, or run `keyform state rekey --old-key-env NAME` to move the "
                               "state back to salted fingerprints")
        return
    mac_key = derive(read_key(ref, loc, env), state.salt)
    if new_state:
        state.key_check, state.mac_key = check_value(mac_key), mac_key
        return
    if state.key_check is None:
        raise _at(loc, "state.fingerprint_key is set, but the state's fingerprints are salted; run "
                       "`keyform state rekey` once to key them (no plan diff follows)")
    if not hmac.compare_digest(check_value(mac_key), state.key_check):
        raise _at(loc, f"state.fingerprint_key: {_source(ref)} is not the key this state's fingerprints were made "
                       "with (its check value differs); use that key, or move to this one with "
                       "`keyform state rekey --old-key-env NAME`")
    state.mac_key = mac_key


def adopt_journaled_key_check(state: State, key_check: str) -> None:
    """Recovery rebuilds a never-saved keyed state from its journal: keep the journal's mode, and
    keep the derived key only if it is the one that journal was written under."""
    state.key_check = key_check
    if state.mac_key is not None and check_value(state.mac_key) != key_check:
        state.mac_key = None


def _source(ref: EnvRef | FileRef) -> str:
    from keyform.render.safe import one_line

    return ref.name if isinstance(ref, EnvRef) else one_line(ref.path)  # (a path typed with a newline)


@record(frozen=False)
class RekeyReport:
    mode: str  # "keyed" | "salted"
    converted: int = 0  # fingerprints re-made under the new mode
    changed: list[str] = field(default_factory=list)  # inputs that changed since the last apply
    dropped: int = 0  # fingerprints of keys no longer in the manifests (they will be deleted)
    written: bool = True  # False: the state was in this mode, under this key, already (nothing saved)


def rekey(workspace: Workspace, state: State, env: Mapping[str, str] | None, *,
          old_key: EnvRef | FileRef | None = None) -> RekeyReport:
    """Re-make every env/file fingerprint of `state` under the manifests' mode (see the module).
    `old_key` is the key of a keyed state (default: the manifests' key). Changes `state` in memory;
    raises (changing nothing) when an input cannot be read or the old key does not fit."""
    from keyform.resolve import read_ref

    old = State(lineage=state.lineage, serial=state.serial, salt=state.salt, key_check=state.key_check)
    if old_key is not None and state.key_check is None:  # it would be ignored: the user believes otherwise
        raise KeyformError(f"the state's fingerprints are salted, not keyed: the old key ({_source(old_key)}) "
                           "is not used; run it without --old-key-env / --old-key-file")
    if state.key_check is not None:
        ref = old_key or workspace.fingerprint_key
        if ref is None:
            raise KeyformError("the state's fingerprints are keyed: give its key with --old-key-env NAME "
                               "(or --old-key-file PATH)")
        old.mac_key = derive(read_key(ref, None, env, "the old fingerprint key"), state.salt)
        if not hmac.compare_digest(check_value(old.mac_key), state.key_check):
            raise KeyformError(f"the old fingerprint key ({_source(ref)}) is not the key this state's fingerprints "
                               "were made with")
    new = State(lineage=state.lineage, serial=state.serial, salt=state.salt)
    if workspace.fingerprint_key is not None:
        new.mac_key = derive(read_key(workspace.fingerprint_key, workspace.fingerprint_key_loc, env), state.salt)
        new.key_check = check_value(new.mac_key)
    report = RekeyReport("keyed" if new.key_check else "salted")
    updates: dict[str, dict[str, str]] = {}
    problems: list[Diagnostic] = []
    for address, ks in sorted(state.keys.items()):
        spec = workspace.keys.get(address)
        fps = dict(ks.fingerprints)
        for path, fp in ks.fingerprints.items():
            if not fp.startswith("hmac-sha256"):
                continue  # secret_of edges and `unknown` do not depend on the mode
            input_ref = spec.secret_inputs.get(path) if spec else None
            if input_ref is None or isinstance(input_ref, SecretOfRef):
                fps[path] = CHANGED_BEFORE_REKEY  # the input is gone: the plan removes or replaces it anyway
                report.dropped += 1
                continue
            try:
                value = read_ref(input_ref, f"keys.{address}.{path}", env)
            except KeyformError as exc:
                problems.extend(Diagnostic(d.message, spec.input_loc(path) if spec else None) for d in exc.diagnostics)
                continue
            if hmac.compare_digest(old.fingerprint(value), fp):
                fps[path] = new.fingerprint(value)
                report.converted += 1
            else:
                fps[path] = CHANGED_BEFORE_REKEY
                report.changed.append(f"{address}.{path}")
        updates[address] = fps
    if problems:
        raise KeyformError([*problems, Diagnostic("rekey needs every input the state has a fingerprint of; "
                                                  "nothing was changed")])
    for address, fps in updates.items():
        state.keys[address].fingerprints = fps
    # issued secrets' fingerprints cannot be re-made (keyform never keeps the secret): dropped, so no
    # fingerprint under the old mode (a salted one beside its salt) stays in a state meant to be keyed;
    # those keys' echoes are recognised again once they are rotated
    for ks in state.keys.values():
        ks.secret_fingerprint = None
    for dep in state.deposed:
        dep.secret_fingerprint = None
    state.key_check, state.mac_key = new.key_check, new.mac_key
    return report
