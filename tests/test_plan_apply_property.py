"""Property: for any two workspaces A and B, apply(plan(A)) then apply(plan(B)) leaves a state in
which plan(B) has no changes, every live secret-issuing key has its current secret in its sink,
and every TextQL key holds the current secret of its source."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keyform.applier import ApplyContext, apply_plan
from keyform.journal import Journal
from keyform.model import EnvRef, KeySpec, SecretOfRef
from keyform.planner import PlanInputs, plan
from keyform.providers.pool import ProviderPool
from keyform.refresh import instances_in_use, refresh
from keyform.sinks.pool import SinkPool
from keyform.state import State
from tests.factories import T0, expires_in, questra_key, textql_key, workspace
from tests.fakes import FakeProvider, MemorySink

ENV = {"QT": "token-q", "TT": "token-t", "AUTH_A": "value-a", "AUTH_B": "value-b"}


@st.composite
def workspaces(draw: Any) -> list[KeySpec]:
    qnames = draw(st.lists(st.sampled_from(["q1", "q2", "q3"]), unique=True, max_size=3))
    keys: list[KeySpec] = []
    for q in qnames:
        label = draw(st.sampled_from([q, f"{q} renamed"]))
        exp = draw(st.sampled_from([None, 30, 90]))
        keys.append(questra_key(q, label, expiry=expires_in(exp) if exp else questra_key(q).expiry))
    for t in draw(st.lists(st.sampled_from(["t1", "t2"]), unique=True, max_size=2)):
        sources: list[Any] = [EnvRef("AUTH_A"), EnvRef("AUTH_B")] + [SecretOfRef(q) for q in qnames]
        auth = draw(st.sampled_from(sources))
        hosts = draw(st.sampled_from([["a.example"], ["a.example", "b.example"]]))
        private = draw(st.booleans())
        keys.append(textql_key(t, auth=auth, hosts=hosts, is_private=private))
    return keys


class World:
    def __init__(self) -> None:
        self.now = T0
        self.providers = {"qp": FakeProvider("qp", "questra", lambda: self.now),
                          "tq": FakeProvider("tq", "textql", lambda: self.now)}
        self.sink = MemorySink()
        self.state = State.new()

    def converge(self, keys: list[KeySpec]) -> Any:
        ws = workspace(*keys)
        pool = ProviderPool(ws, lambda cfg, token, org: self.providers[cfg.name], ENV)
        sinks = SinkPool(ws, lambda cfg: self.sink)
        snapshot = refresh(ws, self.state, pool, instances_in_use(ws, self.state))
        from keyform.resolve import input_fingerprints

        inputs = PlanInputs(input_fingerprints(ws, self.state, env=ENV), frozenset({"env"}))
        p = plan(ws, self.state, snapshot, self.now, inputs=inputs)
        ctx = ApplyContext(ws, self.state, pool, sinks, Journal(None, "t"), lambda: self.now, env=ENV)
        report = apply_plan(p, ctx)
        assert report.ok, report.failed
        self.now += timedelta(minutes=1)
        snapshot = refresh(ws, self.state, pool, instances_in_use(ws, self.state))
        inputs = PlanInputs(input_fingerprints(ws, self.state, env=ENV), frozenset({"env"}))
        return plan(ws, self.state, snapshot, self.now, inputs=inputs)


@settings(max_examples=150, deadline=None)
@given(workspaces(), workspaces())
def test_apply_then_plan_again_reports_no_changes(first: list[KeySpec], second: list[KeySpec]) -> None:
    world = World()
    for keys in (first, second):
        again = world.converge(keys)
        assert not again.has_changes, [(c.address, c.action, c.reasons) for c in again.actionable]
        want = {k.address for k in keys}
        assert set(world.state.keys) == want
        q = world.providers["qp"]
        t = world.providers["tq"]
        for ks in world.state.keys.values():
            if ks.provider_type == "questra":
                assert not q.keys[ks.remote_id].revoked
                assert ks.sink is not None and world.sink.entries[ks.sink.name] == f"sk_fake_{ks.remote_id}"
        for spec in keys:
            ref = spec.secret_inputs.get("auth_value")
            if isinstance(ref, SecretOfRef):
                tid = world.state.keys[spec.address].remote_id
                src_id = world.state.keys[ref.address].remote_id
                assert t.inputs[tid]["auth_value"] == f"sk_fake_{src_id}"
        # nothing keyform forgot is left active
        live_q = {rid for rid, k in q.keys.items() if not k.revoked}
        assert live_q == {ks.remote_id for ks in world.state.keys.values() if ks.provider_type == "questra"}
        assert set(t.keys) == {ks.remote_id for ks in world.state.keys.values() if ks.provider_type == "textql"}
