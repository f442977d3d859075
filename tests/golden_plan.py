"""One plan with every action kind and every reason kind, built through the pure planner, for the
renderers' golden files."""

from __future__ import annotations

from datetime import timedelta

from keyform.durations import format_time
from keyform.model import EnvRef, Rotation, SecretOfRef, SinkTarget
from keyform.plan import Plan
from keyform.planner import PlanInputs, plan
from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot
from keyform.state import DeposedKey, secret_of_fingerprint
from tests.factories import T0, expires_in, questra_key, recorded, state_with, textql_key, workspace

NOW = T0 + timedelta(days=40)


def every_kind_plan() -> Plan:
    steady = questra_key("steady", "Steady")
    new = questra_key("new-key", "New key", expiry=expires_in(90))
    renamed_old, renamed_new = questra_key("renamed", "Old name"), questra_key("renamed", "New name")
    revoked = questra_key("revoked-key")
    expired = questra_key("expired-key", expiry=expires_in(30))
    rotating = questra_key("rotating", expiry=expires_in(45), rotation=Rotation(before_expiry=timedelta(days=14)))
    # (a grace as long as its old key's recorded one, or the plan notes it was shortened)
    aged = questra_key("aged", rotation=Rotation(max_age=timedelta(days=30), grace=timedelta(days=41)))
    gone = questra_key("gone-remotely")
    removed = questra_key("removed")
    moved_old = questra_key("moved")
    moved_new = questra_key("moved")
    moved_state = recorded(moved_old, "ak_moved")
    moved_state.sink = SinkTarget("env", "OLD_ENTRY")
    hosts_old = textql_key("tq-hosts", hosts=["a.example"], headers={"X-Org-Id": "org_1"})
    hosts_new = textql_key("tq-hosts", hosts=["a.example", "b.example"], headers={"X-Org-Id": "org_2", "X-Env": "prod"})
    drifted = textql_key("tq-drift", hosts=["a.example"])
    auth = textql_key("tq-auth", auth=EnvRef("TQ_AUTH"))
    private_old, private_new = textql_key("tq-private"), textql_key("tq-private", is_private=True)
    dep = textql_key("tq-dep", auth=SecretOfRef("renamed"))

    st = state_with(
        recorded(steady, "ak_steady"), recorded(renamed_old, "ak_renamed"), recorded(revoked, "ak_revoked"),
        recorded(expired, "ak_expired"), recorded(rotating, "ak_rotating"), recorded(aged, "ak_aged"),
        recorded(gone, "ak_gone"), recorded(removed, "ak_removed"), moved_state,
        recorded(hosts_old, "tq_hosts"), recorded(drifted, "tq_drift"),
        recorded(auth, "tq_auth", fingerprints={"auth_value": "hmac-sha256:old"}),
        recorded(private_old, "tq_private"),
        recorded(dep, "tq_dep", fingerprints={"auth_value": secret_of_fingerprint("renamed", "ak_renamed")}),
    )
    st.deposed += [
        DeposedKey("steady", "qp", "questra", "ak_old_steady", format_time(T0), format_time(NOW - timedelta(hours=2))),
        DeposedKey("aged", "qp", "questra", "ak_old_aged", format_time(T0), format_time(NOW + timedelta(hours=5))),
    ]
    st.note_stale(SinkTarget("env", "STEADY_BEFORE_ITS_MOVE"), "steady")  # a sink move cut short left it
    remote: dict[str, dict[str, RemoteKey]] = {"qp": {}, "tq": {}}
    for ks in st.keys.values():
        if ks.address == "gone-remotely":
            continue
        attrs = dict(ks.remote)
        if ks.address == "tq-drift":
            attrs["hosts"] = ["evil.example"]
        remote[ks.provider][ks.remote_id] = RemoteKey(ks.remote_id, attrs, ks.created_at, ks.expires_at,
                                                      revoked=ks.address == "revoked-key")
    snap = RemoteSnapshot({n: InstanceSnapshot(v) for n, v in remote.items()}, refreshed=True)
    ws = workspace(steady, new, renamed_new, revoked, expired, rotating, aged, gone, moved_new, hosts_new, drifted,
                   auth, private_new, dep)
    inputs = PlanInputs({"tq-auth": {"auth_value": "hmac-sha256:new"}}, readable_sinks=frozenset({"env"}))
    return plan(ws, st, snap, NOW, inputs=inputs)
