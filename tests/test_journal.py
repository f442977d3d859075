"""keyform.journal: the records' stored format (`encode`/`decode`), and `replay`: folding finished
changes into a State and finding the interrupted ones.

`replay` is O(1) per record (deposed keys indexed by remote id, the revoked dropped in one pass);
a property test checks it against the fold stated directly (`expected_after`) on random journals, and that
`replay(None, ...)` finds the same interrupted changes without building anything.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyform.durations import format_time
from keyform.journal import (
    Begin,
    Created,
    Done,
    Failed,
    Intent,
    Interrupted,
    Journal,
    JournalRecordError,
    Record,
    Sunk,
    compacted,
    decode,
    encode,
    from_json,
    replay,
    unresolved,
)
from keyform.state import DeposedKey, KeyState, State
from tests.factories import ListWriter, questra_key, recorded, state_with


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
    interrupted = replay(state, [from_json(r) for r in records])
    assert sorted(state.keys) == ["ci-bot"] and state.keys["ci-bot"].remote_id == "ak_1"
    assert [d.remote_id for d in state.deposed] == ["ak_5"]
    assert interrupted == [Interrupted("r.4", "create", "web", "qp", {}, remote_id="ak_4", sunk=False)]
    assert replay(None, [from_json(r) for r in records]) == interrupted


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
    interrupted = replay(state, [from_json(r) for r in records])
    assert {"keys": {a: k.to_json() for a, k in sorted(state.keys.items())},
            "deposed": [d.to_json() for d in state.deposed]} == expected
    assert replay(None, [from_json(r) for r in records]) == interrupted


def test_records_are_stored_in_the_format_earlier_keyforms_wrote_and_read_back_unchanged() -> None:
    """`encode` writes, byte for byte, the lines keyform wrote before the records were typed (so a
    journal left by an older keyform, or by this one for an older one, reads the same), and
    `decode(encode(r)) == r` for every record type."""
    now = datetime(2027, 3, 3, tzinfo=timezone.utc)
    writer = ListWriter([Begin("lin-1", 3, "00ff")])
    journal = Journal(writer, "r", clock=lambda: now)
    ks, dep = key("ci-bot", "ak_1"), deposed("ak_0")
    first = journal.intent("create", "ci-bot", "qp", label="CI é", at="2027-03-03T00:00:00Z", replaces=None,
                           match={"name": "CI"})
    journal.created(first, "ak_1", created_at="2027-03-03T00:00:01Z")
    writer.append(Sunk(first, at=format_time(now)))  # as earlier keyform versions journaled it
    journal.done(first, key=ks, deposed=dep)
    update = journal.intent("update", "ci-bot", "qp", remote_id="ak_1")
    journal.failed(update, "HTTP 500\nretry")
    journal.abandoned(journal.intent("create", "web", "qp", label="web", at="2027-03-03T00:00:00Z"))
    journal.resolved("old.1", "gone")
    journal.done(journal.intent("revoke-orphan", "web", "qp", remote_id="ak_9", resolves="old.2"), resolves="old.2")
    journal.done(journal.intent("revoke-deposed", "ci-bot", "qp", remote_id="ak_0"), revoked_deposed="ak_0")
    journal.done(journal.intent("delete", "old", "qp", remote_id="ak_7"), forget="old")
    at = ',"at":"2027-03-03T00:00:00Z"'
    key_json = json.dumps(ks.to_json(), ensure_ascii=False, separators=(",", ":"))
    dep_json = json.dumps(dep.to_json(), ensure_ascii=False, separators=(",", ":"))
    assert [encode(r) for r in writer.records] == [
        '{"op":"begin","lineage":"lin-1","serial":3,"salt":"00ff"}',
        '{"op":"intent","seq":"r.1","action":"create","address":"ci-bot","provider":"qp","label":"CI é",'
        '"at":"2027-03-03T00:00:00Z","replaces":null,"match":{"name":"CI"}}',
        '{"op":"created","seq":"r.1","remote_id":"ak_1","created_at":"2027-03-03T00:00:01Z"' + at + "}",
        '{"op":"sunk","seq":"r.1"' + at + "}",
        '{"op":"done","seq":"r.1","address":"ci-bot","key":' + key_json + ',"deposed":' + dep_json + at + "}",
        '{"op":"intent","seq":"r.2","action":"update","address":"ci-bot","provider":"qp","remote_id":"ak_1"' + at + "}",
        '{"op":"failed","seq":"r.2","message":"HTTP 500\\nretry"' + at + "}",
        '{"op":"intent","seq":"r.3","action":"create","address":"web","provider":"qp","label":"web",'
        '"at":"2027-03-03T00:00:00Z"}',
        '{"op":"abandoned","seq":"r.3"' + at + "}",
        '{"op":"resolved","seq":"old.1","message":"gone"' + at + "}",
        '{"op":"intent","seq":"r.4","action":"revoke-orphan","address":"web","provider":"qp","remote_id":"ak_9",'
        '"resolves":"old.2"' + at + "}",
        '{"op":"done","seq":"r.4","resolves":"old.2"' + at + "}",
        '{"op":"intent","seq":"r.5","action":"revoke-deposed","address":"ci-bot","provider":"qp",'
        '"remote_id":"ak_0"' + at + "}",
        '{"op":"done","seq":"r.5","revoked_deposed":"ak_0"' + at + "}",
        '{"op":"intent","seq":"r.6","action":"delete","address":"old","provider":"qp","remote_id":"ak_7"' + at + "}",
        '{"op":"done","seq":"r.6","forget":"old"' + at + "}",
    ]
    for record in writer.records:
        assert decode(encode(record)) == record
        assert decode(encode(record).encode("utf-8")) == record


def test_decode_refuses_what_is_not_a_valid_record_saying_what_is_wrong() -> None:
    with pytest.raises(JournalRecordError, match=r"^is not a JSON object$"):
        decode(b"[1, 2]")
    with pytest.raises(JournalRecordError, match=r"^is not a JSON object$"):
        decode('{"op": "sunk", "se')
    with pytest.raises(JournalRecordError, match='missing required field "address"'):
        decode('{"op": "done", "seq": "r.1", "key": {}}')


def test_a_created_record_carries_what_its_done_will_record_and_is_checked_on_decode() -> None:
    """A create whose secret goes to a sink journals, in `created`, the key record its `done` will
    carry (with the secret's fingerprint) and the key it deposes: read back as written, replayed
    onto its interrupted change, and refused on decode when malformed; a `created` record of an
    earlier keyform (without them) reads as before."""
    ks = replace(key("ci-bot", "ak_1"), secret_fingerprint="36:hmac-sha256:" + "ab" * 32)
    dep = deposed("ak_0")
    writer = ListWriter([Begin("lin-1", 3, "00ff")])
    journal = Journal(writer, "r")
    seq = journal.intent("create", "ci-bot", "qp", replaces="ak_0", match={"name": "CI"})
    journal.created(seq, "ak_1", key=ks, deposed=dep)
    line = encode(writer.records[-1])
    assert json.loads(line) == {"op": "created", "seq": seq, "remote_id": "ak_1", "address": "ci-bot",
                                "key": ks.to_json(), "deposed": dep.to_json()}
    assert decode(line) == writer.records[-1]
    it, = unresolved(writer.records)
    assert (it.remote_id, it.key, it.deposed) == ("ak_1", ks, dep)
    old = decode('{"op":"created","seq":"r.1","remote_id":"ak_1"}')
    assert isinstance(old, Created) and old.key is None and old.deposed is None
    doc = json.loads(line)
    for broken, said in [({**doc, "address": None}, '"address"'),
                         ({k: v for k, v in doc.items() if k != "address"}, 'missing required field "address"'),
                         ({**doc, "key": {**doc["key"], "secret_fingerprint": "sk_live_the_secret"}},
                          "secret_fingerprint"),
                         ({**doc, "key": {**doc["key"], "created_at": "2026-13-45T00:00:00Z"}}, "created_at"),
                         ({**doc, "deposed": {**doc["deposed"], "revoke_after": "soon"}}, "revoke_after")]:
        with pytest.raises(JournalRecordError, match=said):
            decode(json.dumps(broken))


def test_unresolved_and_compacted_keep_only_the_interrupted_changes() -> None:
    state = state_with(key("a", "ak_0"))
    records: list[Record] = [
        Begin("lin-0", 0), Intent("r.1", "create", "a", "qp", {"match": {"name": "a"}}), Created("r.1", "ak_1"),
        Intent("r.2", "create", "b", "qp"), Done("r.2", key=key("b", "ak_2")),
        Intent("r.3", "delete", "c", "qp"), Failed("r.3", "HTTP 500"), Intent("r.4", "update", "a", "qp")]
    open_ = unresolved(records)
    assert [(it.seq, it.remote_id) for it in open_] == [("r.1", "ak_1"), ("r.4", None)]
    assert state.keys["a"].remote_id == "ak_0" and "b" not in state.keys  # nothing was folded
    kept = compacted(state, records, {"r.1"})
    assert kept == [Begin(state.lineage, state.serial, state.salt), records[1], records[2]]
    assert compacted(state, records, {"r.9"}) == []
    assert compacted(state, records, set()) == []


def test_an_end_grace_record_marks_its_deposed_key_and_holds_together_only_for_its_own_key() -> None:
    """`--revoke-old` journals each old key it is about to revoke (`end-grace`, then `done` with
    `revoke_requested`): folded, the state marks that key, and the next plain apply revokes it. A
    `done` marking another key than its intent names does not hold together (`problem`)."""
    from keyform.journal import problem

    state = state_with(key("k", "ak_1"))
    state.deposed += [deposed("ak_8", "k"), deposed("ak_9", "k")]
    records = [decode(json.dumps(r)) for r in (
        {"op": "begin", "lineage": state.lineage, "serial": state.serial},
        {"op": "intent", "seq": "r.1", "action": "end-grace", "address": "k", "provider": "qp", "remote_id": "ak_9"},
        {"op": "done", "seq": "r.1", "revoke_requested": "ak_9"},
    )]
    assert problem(records) is None
    assert replay(state, records) == []
    assert [(d.remote_id, d.revoke_requested) for d in state.deposed] == [("ak_8", False), ("ak_9", True)]
    assert DeposedKey.from_json(state.deposed[1].to_json()).revoke_requested
    forged = [*records[:2], decode(json.dumps({"op": "done", "seq": "r.1", "revoke_requested": "ak_8"}))]
    found = problem(forged)
    assert found is not None and found[0] == 2 and "not that request" in found[1]
