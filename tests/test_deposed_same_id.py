"""Two provider instances of one type may give their keys the same id (two hosts of one API, a
`type: rest` definition with `key.id_type: integer`: both count from 1). An old key is told by its
instance and id together: revoking the deposed key `17` of one instance left the other instance's
deposed `17` out of the state as if revoked too (its own revoke failed: live, recorded nowhere),
and an `end-grace` record (`--revoke-old` of one address) marked both, so the next apply revoked
the other one at once, under the consumers its grace was for."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from keyform.applier import ApplyContext, apply_plan
from keyform.journal import Journal, decode, replay
from keyform.model import Workspace
from keyform.planner import PlanInputs, plan
from keyform.providers.pool import ProviderPool
from keyform.refresh import instances_in_use, refresh
from keyform.remote import RemoteKey
from keyform.resolve import input_fingerprints
from keyform.sinks.pool import SinkPool
from keyform.state import DeposedKey, State
from tests.factories import T0, questra_key, recorded, state_with, workspace
from tests.fakes import FakeProvider, MemorySink

ENV = {"QT": "token-q"}


def _two_instances() -> tuple[Workspace, State, dict[str, FakeProvider], MemorySink]:
    ws = workspace(questra_key("a"), questra_key("b", provider="qp2"))
    ws = dataclasses.replace(ws, providers={**ws.providers, "qp2": dataclasses.replace(ws.providers["qp"], name="qp2")})
    clock = lambda: T0 + timedelta(days=3)  # noqa: E731 (both old keys' grace is over)
    providers = {"qp": FakeProvider("qp", "questra", clock), "qp2": FakeProvider("qp2", "questra", clock)}
    sink = MemorySink()
    st = state_with(recorded(ws.keys["a"], "ak_a"), recorded(ws.keys["b"], "ak_b"))
    for address, provider in (("a", "qp"), ("b", "qp2")):
        ks = st.keys[address]
        providers[provider].keys[ks.remote_id] = RemoteKey(ks.remote_id, dict(ks.remote), created_at="2026-01-01T00:00:00Z")
        providers[provider].keys["17"] = RemoteKey("17", {"name": address}, created_at="2025-12-01T00:00:00Z")
        sink.entries[ks.sink.name if ks.sink else ""] = f"sk_fake_{ks.remote_id}"
        st.deposed.append(DeposedKey(address=address, provider=provider, provider_type="questra", remote_id="17",
                                     deposed_at="2026-01-01T00:00:00Z", revoke_after="2026-01-02T00:00:00Z"))
    return ws, st, providers, sink


def test_a_deposed_key_revoked_at_one_instance_leaves_the_same_id_of_another_in_the_state() -> None:
    ws, st, providers, sink = _two_instances()
    providers["qp2"].fail_on = {"delete"}  # b's old key cannot be revoked now
    pool = ProviderPool(ws, lambda cfg, token, org: providers[cfg.name], ENV)
    now = T0 + timedelta(days=3)
    snapshot = refresh(ws, st, pool, instances_in_use(ws, st))
    p = plan(ws, st, snapshot, now, inputs=PlanInputs(input_fingerprints(ws, st, env=ENV), frozenset({"env"})))
    assert sorted((c.provider, c.remote_id) for c in p.actionable) == [("qp", "17"), ("qp2", "17")], p.changes
    ctx = ApplyContext(ws, st, pool, SinkPool(ws, lambda cfg: sink), Journal(None, "t"), lambda: now, env=ENV)
    report = apply_plan(p, ctx)
    assert [c.provider for c, _ in report.failed] == ["qp2"]
    assert providers["qp"].keys["17"].revoked and not providers["qp2"].keys["17"].revoked
    assert [(d.provider, d.remote_id) for d in st.deposed] == [("qp2", "17")]  # still live: still recorded


def test_an_end_grace_record_marks_the_old_key_of_its_own_instance_only() -> None:
    _, st, _, _ = _two_instances()
    records = [decode(json.dumps(r)) for r in (
        {"op": "begin", "lineage": st.lineage, "serial": st.serial},
        {"op": "intent", "seq": "r.1", "action": "end-grace", "address": "a", "provider": "qp", "remote_id": "17"},
        {"op": "done", "seq": "r.1", "revoke_requested": "17"},
        {"op": "intent", "seq": "r.2", "action": "revoke-deposed", "address": "a", "provider": "qp", "remote_id": "17"},
        {"op": "done", "seq": "r.2", "revoked_deposed": "17"},
    )]
    marked = State.from_json(st.to_json())
    assert replay(marked, records[:3]) == []
    assert [(d.provider, d.revoke_requested) for d in marked.deposed] == [("qp", True), ("qp2", False)]
    assert replay(st, records) == []
    assert [(d.provider, d.remote_id, d.revoke_requested) for d in st.deposed] == [("qp2", "17", False)]
