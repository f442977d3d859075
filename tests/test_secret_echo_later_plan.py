"""An API that echoes a key's secret into an ordinary attribute, seen by a LATER process (left open in
stop 36). A careless or hostile API puts the secret it issued into the key's name in its listing.
The apply that received the secret masks it (it remembers it); a later `keyform plan`, which never
held the secret, showed the drift `name: "k1" -> "sk_live_..."`: the secret in a plan posted on a
pull request. The state now records a fingerprint of each issued secret
(`KeyState.secret_fingerprint`: its visible length and HMAC under the state's salt, never the
secret), and every later mask recognises it. Real HTTP on 127.0.0.1: a hostile proxy in front of the
emulator."""

from __future__ import annotations

import json
from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator
from tests.hostile import Reply, Seen, hostile


def test_a_later_plan_does_not_show_an_issued_secret_the_api_echoes(tmp_path: Path, emulator: Emulator) -> None:
    issued: dict[str, str] = {}  # id -> secret, as the proxy saw the create replies

    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":
            reply = server.default(seen)
            doc = json.loads(reply.body)
            issued[doc["id"]] = doc["secret"]
            return reply
        if seen.method == "GET" and seen.path.startswith("/api-keys") and issued:
            reply = server.default(seen)
            keys = json.loads(reply.body)
            for k in keys if isinstance(keys, list) else keys.get("data", []):
                if k.get("id") in issued:
                    k["name"] = issued[k["id"]]  # the echo
            return Reply(reply.status, json.dumps(keys).encode(), reply.headers)
        return None

    with hostile(upstream=emulator.url) as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("k1:\n  provider: qp\n")
        applied = project.run_process("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.tail()
        [secret] = issued.values()
        state = project.state_path.read_text()
        assert secret not in state and '"secret_fingerprint"' in state
        plan = project.run_process("plan")
        report = project.run_process("report", "--format", "json")
        plan_json = project.run_process("plan", "--format", "json")
    for res in (plan, report, plan_json):
        assert secret not in res.output and secret[8:24] not in res.output, res.output[-1500:]
    assert "***" in plan.output, plan.output[-1500:]  # the drift is shown, masked


def test_watch_recognises_a_recorded_secret_however_wrapped_and_only_it() -> None:
    from keyform import redact
    from keyform.state import State

    state = State.new()
    secret = "sk_live_" + "Zq81" * 10
    recorded = state.secret_fingerprint(secret)
    assert recorded is not None and secret not in recorded and recorded.startswith(f"{len(secret)}:hmac-sha256:")
    assert state.secret_fingerprint("short") is None and state.secret_fingerprint(None) is None
    try:
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
    finally:
        redact.watch(state.fingerprinter(), [])


def test_a_hand_edited_state_with_many_secret_lengths_cannot_make_masking_slow() -> None:
    """Each recorded length costs one fingerprint per window of every value masked: a state with
    hundreds of lengths would cost ~50,000 HMACs per name. Only the 8 most used lengths count."""
    from keyform import redact
    from keyform.state import State

    state = State.new()
    fingerprint = state.fingerprinter()
    calls = 0

    def counted(value: str) -> str:
        nonlocal calls
        calls += 1
        return fingerprint(value)

    text = "a name of three hundred characters " * 9
    try:
        redact.watch(counted, [f"{n}:hmac-sha256:{'0' * 64}" for n in range(8, 600)])  # 592 lengths
        assert not redact.holds_known(text)
    finally:
        redact.watch(fingerprint, [])
    assert 0 < calls <= 8 * len(text), calls
