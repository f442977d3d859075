"""journal.replay: folding finished changes into a State and finding the interrupted ones.

`replay` is O(1) per record (deposed keys indexed by remote id, the revoked dropped in one pass);
a property test checks it against the fold stated directly (`expected_after`) on random journals, and that
`replay(None, ...)` finds the same interrupted changes without building anything.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keyform.journal import Interrupted, replay
from keyform.state import DeposedKey, KeyState, State
from tests.factories import questra_key, recorded, state_with


def deposed(remote_id: str, address: str = "ci-bot") -> DeposedKey:
    return DeposedKey(address=address, provider="qp", provider_type="questra", remote_id=remote_id,
                      deposed_at="2026-01-01T00:00:00Z", revoke_after="2026-01-02T00:00:00Z")


def key(address: str, remote_id: str) -> KeyState:
    return recorded(questra_key(address), remote_id)


def expected_after(state: State, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What folding `records` into `state` must give, stated directly: each address keeps its last
    key record unless a later record forgets it; the deposed keys are the state's, then each newly
    deposed one in order of first appearance, minus every one revoked."""
    done = [r for r in records if r.get("op") == "done"]
    keys = {a: k.to_json() for a, k in state.keys.items()}
    for rec in done:
        if "key" in rec:
            keys[rec["address"]] = rec["key"]
        if "forget" in rec:
            keys.pop(rec["forget"], None)
    first_seen: dict[str, dict[str, Any]] = {d.remote_id: d.to_json() for d in state.deposed}
    for deposed_json in (r["deposed"] for r in done if "deposed" in r):
        first_seen.setdefault(deposed_json["remote_id"], deposed_json)
    revoked = {r["revoked_deposed"] for r in done if "revoked_deposed" in r}
    return {"keys": dict(sorted(keys.items())),
            "deposed": [d for rid, d in first_seen.items() if rid not in revoked]}


def test_replay_folds_done_records_and_returns_the_interrupted_ones() -> None:
    state = state_with(key("old", "ak_0"))
    state.deposed.append(deposed("ak_9", "old"))
    records: list[dict[str, Any]] = [
        {"op": "begin", "lineage": "lin-1", "serial": 3},
        {"op": "intent", "seq": "r.1", "action": "create", "address": "ci-bot", "provider": "qp", "label": "CI"},
        {"op": "created", "seq": "r.1", "remote_id": "ak_1"},
        {"op": "sunk", "seq": "r.1"},
        {"op": "done", "seq": "r.1", "address": "ci-bot", "key": key("ci-bot", "ak_1").to_json(),
         "deposed": deposed("ak_5").to_json()},
        {"op": "done", "seq": "r.1b", "deposed": deposed("ak_5").to_json()},  # the same deposed key twice
        {"op": "intent", "seq": "r.2", "action": "revoke-deposed", "address": "old", "provider": "qp"},
        {"op": "done", "seq": "r.2", "revoked_deposed": "ak_9"},
        {"op": "intent", "seq": "r.3", "action": "delete", "address": "old", "provider": "qp"},
        {"op": "done", "seq": "r.3", "forget": "old"},
        {"op": "intent", "seq": "r.4", "action": "create", "address": "web", "provider": "qp"},
        {"op": "created", "seq": "r.4", "remote_id": "ak_4"},
        {"op": "intent", "seq": "r.5", "action": "create", "address": "api", "provider": "qp"},
        {"op": "failed", "seq": "r.5", "message": "HTTP 400"},
    ]
    interrupted = replay(state, records)
    assert sorted(state.keys) == ["ci-bot"] and state.keys["ci-bot"].remote_id == "ak_1"
    assert [d.remote_id for d in state.deposed] == ["ak_5"]
    assert interrupted == [Interrupted("r.4", "create", "web", "qp", {}, remote_id="ak_4", sunk=False)]
    assert replay(None, records) == interrupted


ids = st.sampled_from([f"ak_{i}" for i in range(6)])
addresses = st.sampled_from(["a", "b", "c"])


@st.composite
def journals(draw: st.DrawFn) -> tuple[list[str], list[dict[str, Any]]]:
    """A starting deposed list and a journal: keys set and forgotten, each remote id deposed at most
    once and revoked only while deposed (as an apply writes them), interleaved with other records."""
    initial = draw(st.lists(ids, unique=True, max_size=3))
    live, used = set(initial), set(initial)
    records: list[dict[str, Any]] = []
    for n in range(draw(st.integers(0, 25))):
        seq = f"r.{n}"
        choice = draw(st.sampled_from(["key", "forget", "depose", "revoke", "intent", "failed"]))
        if choice == "key":
            address = draw(addresses)
            records.append({"op": "done", "seq": seq, "address": address, "key": key(address, draw(ids)).to_json()})
        elif choice == "forget":
            records.append({"op": "done", "seq": seq, "forget": draw(addresses)})
        elif choice == "depose":
            remote_id = draw(ids)
            if remote_id in used and remote_id not in live:
                continue  # a revoked key is never deposed again
            used.add(remote_id)
            live.add(remote_id)  # a repeat while deposed: the state already holds it (replay over a saved state)
            records.append({"op": "done", "seq": seq, "deposed": deposed(remote_id).to_json()})
        elif choice == "revoke" and live:
            remote_id = draw(st.sampled_from(sorted(live)))
            live.discard(remote_id)
            records.append({"op": "done", "seq": seq, "revoked_deposed": remote_id})
        elif choice == "intent":
            records.append({"op": "intent", "seq": f"i.{n}", "action": "create", "address": draw(addresses),
                            "provider": "qp"})
        elif choice == "failed" and records:
            records.append({"op": "failed", "seq": draw(st.sampled_from([r["seq"] for r in records]))})
    return initial, records


@settings(max_examples=300, deadline=None)
@given(journals())
def test_replay_matches_the_obvious_fold(journal: tuple[list[str], list[dict[str, Any]]]) -> None:
    initial, records = journal

    def start() -> State:
        state = state_with(key("a", "ak_0"))
        state.deposed = [deposed(r) for r in initial]
        return state

    state = start()
    expected = expected_after(state, records)
    interrupted = replay(state, records)
    assert {"keys": {a: k.to_json() for a, k in sorted(state.keys.items())},
            "deposed": [d.to_json() for d in state.deposed]} == expected
    assert replay(None, records) == interrupted
