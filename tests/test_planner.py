"""The planner's promises, one per test: pure inputs in, a Plan out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from keyform.durations import format_time
from keyform.errors import KeyformError
from keyform.model import EnvRef, Expiry, Rotation, SecretOfRef, SinkTarget
from keyform.plan import Action, Plan
from keyform.planner import PlanInputs, plan
from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot
from keyform.state import DeposedKey, State, secret_of_fingerprint
from tests.factories import LOC, T0, expires_in, questra_key, recorded, state_with, textql_key, workspace

NOW = T0 + timedelta(days=1)
READABLE = PlanInputs(readable_sinks=frozenset({"env"}))


def remote_of(st: State, **overrides: Mapping[str, Any] | None) -> RemoteSnapshot:
    """The remote exactly as state last saw it, with per-address overrides (None → deleted)."""
    by_instance: dict[str, dict[str, RemoteKey]] = {"qp": {}, "tq": {}}
    for ks in st.keys.values():
        change = overrides.get(ks.address, {})
        if change is None:
            continue
        key = RemoteKey(ks.remote_id, dict(ks.remote), created_at=ks.created_at, expires_at=ks.expires_at)
        attrs = dict(key.attrs)
        attrs.update(change.get("attrs", {}))
        key = replace(key, attrs=attrs, revoked=bool(change.get("revoked")), expired=bool(change.get("expired")))
        by_instance[ks.provider][ks.remote_id] = key
    return RemoteSnapshot({n: InstanceSnapshot(v) for n, v in by_instance.items()}, refreshed=True)


def one(p: Plan, address: str) -> tuple[Action, tuple[str, ...]]:
    [c] = [c for c in p.changes if c.address == address and not c.deposed]
    return c.action, c.reasons


def test_new_key_is_created_and_its_secret_goes_to_its_sink() -> None:
    p = plan(workspace(questra_key("ci-bot")), State.new(), RemoteSnapshot(), NOW)
    [c] = p.changes
    assert c.action is Action.CREATE and c.reasons == ("new key",)
    assert c.sink == "env:CI_BOT"
    assert {a.name: a.after for a in c.attrs}["name"] == "ci-bot"


def test_unchanged_key_is_noop_and_plan_has_no_changes() -> None:
    spec = questra_key("ci-bot")
    st = state_with(recorded(spec, "ak_1"))
    p = plan(workspace(spec), st, remote_of(st), NOW)
    assert one(p, "ci-bot") == (Action.NOOP, ())
    assert not p.has_changes


def test_a_recorded_provider_type_that_differs_is_named_as_the_type() -> None:
    """A state recording another type under the same instance name said 'provider changed from
    questra-dev to questra-dev'."""
    from dataclasses import replace

    spec = questra_key("ci-bot")
    st = state_with(replace(recorded(spec, "ak_1"), provider_type="nope"))
    action, reasons = one(plan(workspace(spec), st, remote_of(st), NOW), "ci-bot")
    assert action is Action.REPLACE and reasons == ("provider type changed from nope to questra",)


def test_renamed_key_is_replaced_because_name_is_create_only() -> None:
    st = state_with(recorded(questra_key("ci-bot", "CI bot"), "ak_1"))
    p = plan(workspace(questra_key("ci-bot", "CI robot")), st, remote_of(st), NOW)
    action, reasons = one(p, "ci-bot")
    assert action is Action.REPLACE and "name cannot be changed in place" in reasons
    [attr] = [a for a in p.changes[0].attrs if a.name == "name"]
    assert (attr.before, attr.after, attr.forces_replacement) == ("CI bot", "CI robot", True)


DEAD = "the old key {} is revoked in this apply, not kept for a grace: the API says it cannot be used any more"


def test_key_revoked_outside_keyform_is_replaced() -> None:
    spec = questra_key("ci-bot")
    st = state_with(recorded(spec, "ak_1"))
    p = plan(workspace(spec), st, remote_of(st, **{"ci-bot": {"revoked": True}}), NOW)
    assert one(p, "ci-bot") == (Action.REPLACE, ("revoked outside keyform", DEAD.format("ak_1")))
    assert p.changes[0].dead


def test_key_deleted_outside_keyform_is_created_again() -> None:
    spec = questra_key("ci-bot")
    st = state_with(recorded(spec, "ak_1"))
    p = plan(workspace(spec), st, remote_of(st, **{"ci-bot": None}), NOW)
    assert one(p, "ci-bot") == (Action.CREATE, ("deleted outside keyform",))


def test_expired_key_is_replaced() -> None:
    spec = questra_key("ci-bot", expiry=expires_in(1))
    st = state_with(recorded(spec, "ak_1"))
    p = plan(workspace(spec), st, remote_of(st, **{"ci-bot": {"expired": True}}), T0 + timedelta(days=2))
    assert one(p, "ci-bot") == (Action.REPLACE, ("expired", DEAD.format("ak_1")))
    assert p.changes[0].dead
    # past its expiry by keyform's clock only (listed with no expired flag, as TextQL lists, or an
    # API whose clock is behind ours), or by the state's record alone: deposed through its grace
    for snapshot in (remote_of(st), RemoteSnapshot()):
        p = plan(workspace(spec), st, snapshot, T0 + timedelta(days=2))
        assert one(p, "ci-bot") == (Action.REPLACE, ("expired",)) and not p.changes[0].dead


def test_changed_expiry_spec_replaces_questra_key_but_updates_textql_key() -> None:
    q, t = questra_key("q"), textql_key("t", auth=SecretOfRef("q"))
    st = state_with(recorded(q, "ak_1"), recorded(t, "tq_1", fingerprints={"auth_value": secret_of_fingerprint("q", "ak_1")}))
    p = plan(workspace(questra_key("q", expiry=expires_in(30)), textql_key("t", auth=SecretOfRef("q"),
                                                                          expiry=expires_in(30))),
             st, remote_of(st), NOW)
    assert one(p, "q")[0] is Action.REPLACE
    assert "expiry cannot be changed in place" in one(p, "q")[1]
    # t's source is replaced, so t is replaced too, and says why
    assert one(p, "t")[0] is Action.REPLACE
    assert "depends on q, which is replaced" in one(p, "t")[1]


def test_expires_in_does_not_cause_a_diff_on_later_plans() -> None:
    spec = questra_key("ci-bot", expiry=expires_in(90))
    st = state_with(recorded(spec, "ak_1"))
    for days in (1, 30, 80):
        assert not plan(workspace(spec), st, remote_of(st), T0 + timedelta(days=days)).has_changes


def test_textql_hosts_change_is_an_in_place_update_with_before_and_after() -> None:
    old = textql_key("t", hosts=["a.example"])
    st = state_with(recorded(old, "tq_1"))
    p = plan(workspace(textql_key("t", hosts=["a.example", "b.example"])), st, remote_of(st), NOW)
    assert one(p, "t") == (Action.UPDATE, ("hosts changed",))
    [attr] = p.changes[0].attrs
    assert (attr.before, attr.after, attr.forces_replacement) == (["a.example"], ["a.example", "b.example"], False)


def test_textql_modified_outside_keyform_is_updated_back() -> None:
    spec = textql_key("t", hosts=["a.example"])
    st = state_with(recorded(spec, "tq_1"))
    p = plan(workspace(spec), st, remote_of(st, t={"attrs": {"hosts": ["evil.example"]}}), NOW)
    assert one(p, "t") == (Action.UPDATE, ("hosts modified outside keyform",))
    assert p.changes[0].attrs[0].before == ["evil.example"]


def test_textql_is_private_change_forces_replacement() -> None:
    st = state_with(recorded(textql_key("t"), "tq_1"))
    p = plan(workspace(textql_key("t", is_private=True)), st, remote_of(st), NOW)
    assert one(p, "t") == (Action.REPLACE, ("is_private cannot be changed in place",))


def test_changed_auth_value_env_plans_replace_by_fingerprint() -> None:
    spec = textql_key("t", auth=EnvRef("TOKEN"))
    st = state_with(recorded(spec, "tq_1", fingerprints={"auth_value": "hmac-sha256:old"}))
    same = PlanInputs({"t": {"auth_value": "hmac-sha256:old"}})
    new = PlanInputs({"t": {"auth_value": "hmac-sha256:new"}})
    unknown = PlanInputs({"t": {"auth_value": None}})
    assert not plan(workspace(spec), st, remote_of(st), NOW, inputs=same).has_changes
    assert one(plan(workspace(spec), st, remote_of(st), NOW, inputs=new), "t") == \
        (Action.REPLACE, ("auth_value changed (fingerprint)",))
    assert not plan(workspace(spec), st, remote_of(st), NOW, inputs=unknown).has_changes


def test_secret_header_change_is_an_update_in_place() -> None:
    spec = textql_key("t", secret_headers={"X-Api-Key": EnvRef("K")})
    st = state_with(recorded(spec, "tq_1", fingerprints={"headers.X-Api-Key": "hmac-sha256:a"}))
    p = plan(workspace(spec), st, remote_of(st), NOW, inputs=PlanInputs({"t": {"headers.X-Api-Key": "hmac-sha256:b"}}))
    assert one(p, "t")[0] is Action.UPDATE


def test_removed_key_is_deleted_and_its_sink_entry_named() -> None:
    st = state_with(recorded(questra_key("old"), "ak_9"))
    p = plan(workspace(), st, remote_of(st), NOW)
    [c] = p.changes
    assert (c.action, c.remote_id, c.sink, c.reasons) == (Action.DELETE, "ak_9", "env:OLD", ("removed from the manifests",))


def test_a_deleted_key_names_a_sink_entry_only_where_its_apply_removes_one() -> None:
    """An imported key's entry was never keyform's: the apply leaves it, so the plan does not say
    it is removed. An entry another key records (left by an earlier rename) stays, and says why;
    one that only a key this plan does not apply would write (`--target`) goes; one in a sink the
    manifests no longer declare cannot be reached, and the plan says so."""
    imported = replace(recorded(questra_key("imp"), "ak_1"), secret_in_sink=False)
    shared = SinkTarget("env", "SHARED")
    old = replace(recorded(questra_key("old"), "ak_2"), sink=shared)
    keeper = replace(recorded(questra_key("keeper"), "ak_3"), sink=shared)
    st = state_with(imported, old, keeper)
    p = plan(workspace(replace(questra_key("keeper"), sink=shared)), st, remote_of(st), NOW, inputs=READABLE)
    by = {c.address: c for c in p.changes}
    assert by["imp"].sink is None and by["imp"].reasons == (
        "removed from the manifests", f"its sink entry {imported.sink} is left as it is: keyform did not write it "
                                      "(an imported key)")
    assert by["old"].sink is None
    assert by["old"].reasons == ("removed from the manifests", "its sink entry env:SHARED stays: key 'keeper' records it")
    st = state_with(recorded(questra_key("old"), "ak_2"))
    new = replace(questra_key("new"), sink=SinkTarget("env", "OLD"))
    assert one(plan(workspace(new), st, remote_of(st), NOW, inputs=READABLE), "old")[1] == (
        "removed from the manifests", "its sink entry env:OLD stays: key 'new' writes it in this apply")
    [c] = plan(workspace(new), st, remote_of(st), NOW, inputs=READABLE, targets=["old"]).changes
    assert (c.sink, c.reasons) == ("env:OLD", ("removed from the manifests",))
    st = state_with(replace(recorded(questra_key("old"), "ak_2"), sink=SinkTarget("gone", "OLD")))
    [c] = plan(workspace(), st, remote_of(st), NOW, inputs=READABLE).changes
    assert (c.sink, c.reasons[-1]) == (None, "its sink entry gone:OLD is left as it is: sink gone is no longer in "
                                             "the manifests")


def test_destroy_of_a_target_takes_what_depends_on_it_not_what_it_depends_on() -> None:
    """As Terraform's `destroy -target`: the TextQL key that holds q's secret goes with q, and
    destroying that TextQL key alone leaves q (it deleted q too, a key other keys may read)."""
    q, t = questra_key("q"), textql_key("t", auth=SecretOfRef("q"))
    st = state_with(recorded(q, "ak_1"), recorded(t, "tq_1"))
    ws = workspace(q, t)
    only_t = plan(ws, st, remote_of(st), NOW, destroy=True, targets=["t"])
    assert [(c.address, c.action) for c in only_t.changes] == [("t", Action.DELETE)]
    both = plan(ws, st, remote_of(st), NOW, destroy=True, targets=["q"])
    assert sorted((c.address, c.action) for c in both.changes) == [("q", Action.DELETE), ("t", Action.DELETE)]


def test_removing_a_prevent_destroy_key_fails_the_plan_clearly() -> None:
    st = state_with(recorded(questra_key("keep", prevent_destroy=True), "ak_1"))
    with pytest.raises(KeyformError, match="prevent_destroy"):
        plan(workspace(), st, remote_of(st), NOW)


def test_destroy_deletes_everything_but_refuses_prevent_destroy() -> None:
    a, b = questra_key("a"), questra_key("b", prevent_destroy=True)
    st = state_with(recorded(a, "ak_1"))
    p = plan(workspace(a), st, remote_of(st), NOW, destroy=True)
    assert [(c.address, c.action) for c in p.changes] == [("a", Action.DELETE)]
    st2 = state_with(recorded(a, "ak_1"), recorded(b, "ak_2"))
    with pytest.raises(KeyformError, match=r"'b' has lifecycle\.prevent_destroy"):
        plan(workspace(a, b), st2, remote_of(st2), NOW, destroy=True)


def test_replaced_source_cascades_replace_to_dependants_in_order() -> None:
    src, dep = questra_key("ci-bot", "CI"), textql_key("ana", auth=SecretOfRef("ci-bot"))
    st = state_with(recorded(src, "ak_1"), recorded(dep, "tq_1", fingerprints={
        "auth_value": secret_of_fingerprint("ci-bot", "ak_1")}))
    p = plan(workspace(questra_key("ci-bot", "CI 2"), dep), st, remote_of(st), NOW)
    assert [c.address for c in p.actionable] == ["ci-bot", "ana"]
    assert one(p, "ana") == (Action.REPLACE, ("depends on ci-bot, which is replaced",))


def test_dependant_recreated_reads_source_back_when_sink_is_readable() -> None:
    src, dep = questra_key("ci-bot"), textql_key("ana", auth=SecretOfRef("ci-bot"))
    st = state_with(recorded(src, "ak_1"), recorded(dep, "tq_1", fingerprints={
        "auth_value": secret_of_fingerprint("ci-bot", "ak_1")}))
    snap = remote_of(st, ana=None)
    p = plan(workspace(src, dep), st, snap, NOW, inputs=READABLE)
    assert one(p, "ana") == (Action.CREATE, ("deleted outside keyform",))
    assert one(p, "ci-bot")[0] is Action.NOOP


def test_dependant_recreated_replaces_source_when_no_sink_can_give_it_back() -> None:
    src, dep = questra_key("ci-bot"), textql_key("ana", auth=SecretOfRef("ci-bot"))
    st = state_with(recorded(src, "ak_1"), recorded(dep, "tq_1", fingerprints={
        "auth_value": secret_of_fingerprint("ci-bot", "ak_1")}))
    p = plan(workspace(src, dep), st, remote_of(st, ana=None), NOW, inputs=PlanInputs())
    assert one(p, "ci-bot") == (Action.REPLACE, ("ana needs its secret and no sink can give it back",))
    assert one(p, "ana")[0] is Action.CREATE


def test_rotation_before_expiry_replaces_on_day_24_not_day_22() -> None:
    spec = questra_key("k", expiry=expires_in(30), rotation=Rotation(before_expiry=timedelta(days=7)))
    st = state_with(recorded(spec, "ak_1"))
    assert not plan(workspace(spec), st, remote_of(st), T0 + timedelta(days=22)).has_changes
    p = plan(workspace(spec), st, remote_of(st), T0 + timedelta(days=24))
    assert one(p, "k") == (Action.REPLACE, ("expires in 6d (< before_expiry 7d)",))


def test_rotation_max_age_replaces_after_60_days() -> None:
    spec = questra_key("k", rotation=Rotation(max_age=timedelta(days=60)))
    st = state_with(recorded(spec, "ak_1"))
    assert not plan(workspace(spec), st, remote_of(st), T0 + timedelta(days=59)).has_changes
    assert one(plan(workspace(spec), st, remote_of(st), T0 + timedelta(days=61)), "k") == \
        (Action.REPLACE, ("age 61d (>= max_age 60d)",))


def test_deposed_key_waits_for_grace_then_is_revoked() -> None:
    spec = questra_key("k")
    st = state_with(recorded(spec, "ak_2"))
    st.deposed.append(DeposedKey("k", "qp", "questra", "ak_1", format_time(T0), format_time(T0 + timedelta(hours=24))))
    early = plan(workspace(spec), st, remote_of(st), T0 + timedelta(hours=2))
    assert not early.has_changes and any("ak_1" in n and "grace ends in 22h" in n for n in early.notes)
    late = plan(workspace(spec), st, remote_of(st), T0 + timedelta(hours=26))
    [c] = late.actionable
    assert (c.action, c.deposed, c.remote_id, c.reasons) == (Action.DELETE, True, "ak_1", ("grace ended 2h ago",))


def test_a_shortened_grace_says_the_waiting_old_key_keeps_its_recorded_one() -> None:
    """The recorded `revoke_after` caps an old key's grace (docs/lifecycle.md): shortening
    `rotation.grace` from 7d to 1d left it waiting 5 more days, and the plan said only when it
    would go. It now says why and how to revoke it now; a grace as long or longer, a key revoked
    by this plan (its grace over, or `--revoke-old`) and a destroy say nothing of it."""
    def state_for(spec: Any) -> State:
        st = state_with(recorded(spec, "ak_2"))
        st.deposed.append(DeposedKey("k", "qp", "questra", "ak_1", format_time(T0), format_time(T0 + timedelta(days=7))))
        return st

    def noted(rotation: Rotation, at: timedelta, **kw: Any) -> list[str]:
        spec = replace(questra_key("k"), rotation=rotation)
        st = state_for(spec)
        return [n for n in plan(workspace(spec), st, remote_of(st), T0 + at, **kw).notes if "rotation.grace" in n]

    assert noted(Rotation(grace=timedelta(days=1)), timedelta(days=2)) == [
        "k (deposed ak_1): rotation.grace is now 1d, shorter than the 7d recorded when it was replaced: this old "
        "key stays until 2026-01-08T00:00:00Z at the latest (a grace counts from the replacement it was set "
        "for); `keyform apply --revoke-old k` revokes it now"]
    # under a usage rule too (the key is used: it waits)
    assert len(noted(Rotation(grace=timedelta(days=1), unused_for=timedelta(hours=1)), timedelta(days=2))) == 1
    # under on_grace_end: keep the recorded end is no latest: a key in use is kept past it (the
    # note said "stays until ... at the latest", beside the usage note saying it is kept while used)
    assert noted(Rotation(grace=timedelta(days=1), unused_for=timedelta(hours=1), on_grace_end="keep"),
                 timedelta(days=2)) == [
        "k (deposed ak_1): rotation.grace is now 1d, shorter than the 7d recorded when it was replaced: its grace "
        "ends 2026-01-08T00:00:00Z, and it is kept past it while in use (on_grace_end: keep) (a grace counts from "
        "the replacement it was set for); `keyform apply --revoke-old k` revokes it now"]
    assert noted(Rotation(grace=timedelta(days=7)), timedelta(days=2)) == []
    assert noted(Rotation(grace=timedelta(days=9)), timedelta(days=2)) == []
    assert noted(Rotation(grace=timedelta(days=1)), timedelta(days=8)) == []  # revoked now: grace over
    assert noted(Rotation(grace=timedelta(days=1)), timedelta(days=2), revoke_old=["k"]) == []
    assert noted(Rotation(grace=timedelta(days=1)), timedelta(days=2), destroy=True) == []


def test_no_refresh_and_unlistable_providers_are_said_in_the_plan() -> None:
    spec = questra_key("k")
    st = state_with(recorded(spec, "ak_1"))
    assert any("refresh disabled" in n for n in plan(workspace(spec), st, RemoteSnapshot(), NOW).notes)
    snap = RemoteSnapshot({"qp": InstanceSnapshot(None, "the API has no list endpoint (404/405)")}, refreshed=True)
    p = plan(workspace(spec), st, snap, NOW)
    assert not p.has_changes
    assert p.notes == ("qp: the API has no list endpoint (404/405); planned from the state alone",)


def test_target_limits_the_plan_to_the_target_and_its_sources() -> None:
    src, dep, other = questra_key("ci-bot"), textql_key("ana", auth=SecretOfRef("ci-bot")), questra_key("x")
    p = plan(workspace(src, dep, other), State.new(), RemoteSnapshot(), NOW, targets=["ana"])
    assert sorted(c.address for c in p.changes) == ["ana", "ci-bot"]
    with pytest.raises(KeyformError, match="--target nope"):
        plan(workspace(src), State.new(), RemoteSnapshot(), NOW, targets=["nope"])


def test_sink_move_is_an_update_when_the_old_sink_is_readable() -> None:
    spec = questra_key("k")
    st = state_with(recorded(spec, "ak_1"))
    st.keys["k"].sink = SinkTarget("env", "OLD_NAME")
    assert one(plan(workspace(spec), st, remote_of(st), NOW, inputs=READABLE), "k")[0] is Action.UPDATE
    assert one(plan(workspace(spec), st, remote_of(st), NOW), "k")[0] is Action.REPLACE


def test_plan_round_trips_through_json() -> None:
    src, dep = questra_key("ci-bot"), textql_key("ana", auth=SecretOfRef("ci-bot"))
    p = plan(workspace(src, dep), State.new(), RemoteSnapshot(), NOW)
    assert Plan.from_json(p.to_json()) == p


def test_a_plugin_type_whose_remote_attributes_is_a_tuple_plans_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """`ProviderType.remote_attributes` is typed a frozenset, but nothing checks what a plug-in
    gives: a tuple is read as the same set of names (the planner once called `.intersection` on it)."""
    from keyform import typeregistry

    builtin = typeregistry.provider_type("textql")
    names: Any = tuple(builtin.remote_attributes)
    monkeypatch.setitem(typeregistry._REG.providers, "textql", replace(builtin, remote_attributes=names))
    spec = textql_key("tq-bot", hosts=["a.example.com"])
    st = state_with(recorded(spec, "k1"))
    assert one(plan(workspace(spec), st, remote_of(st), NOW), "tq-bot") == (Action.NOOP, ())
    drifted = remote_of(st, **{"tq-bot": {"attrs": {"hosts": ["evil.example.com"]}}})
    assert one(plan(workspace(spec), st, drifted, NOW), "tq-bot") == (Action.UPDATE, ("hosts modified outside keyform",))


def test_an_old_source_key_goes_with_the_deposed_consumer_it_feeds() -> None:
    """A deposed consumer lives through its grace sending the old source key's secret (`fed_by`):
    that key is kept while it lives, and both are revoked in the plan where its grace has ended."""
    src, cons = questra_key("src"), textql_key("cons", auth=SecretOfRef("src"))
    st = state_with(recorded(src, "ak_new"), recorded(cons, "tk_new"))
    st.keys["cons"].fingerprints["auth_value"] = secret_of_fingerprint("src", "ak_new")
    ended, later = format_time(NOW - timedelta(hours=1)), format_time(NOW + timedelta(hours=1))
    st.deposed.append(DeposedKey("src", "qp", "questra", "ak_old", format_time(T0), ended))
    st.deposed.append(DeposedKey("cons", "tq", "textql", "tk_old", format_time(T0), later,
                                 fed_by=(secret_of_fingerprint("src", "ak_old"),)))
    p = plan(workspace(src, cons), st, remote_of(st), NOW, inputs=READABLE)
    assert [c.key for c in p.changes if c.deposed] == []
    assert "src (deposed ak_old) is kept: key 'cons (deposed tk_old)' still uses its secret" in " ".join(p.notes)
    st.deposed[1] = replace(st.deposed[1], revoke_after=ended)
    p = plan(workspace(src, cons), st, remote_of(st), NOW, inputs=READABLE)
    assert sorted(c.key for c in p.changes if c.deposed) == ["cons (deposed tk_old)", "src (deposed ak_old)"]


def test_an_old_source_key_listed_as_expired_is_revoked_whatever_key_it_feeds() -> None:
    """The same, the old source key listed as expired (or revoked): its secret authenticates nobody,
    so the old consumer in its grace does not keep it (it was kept, `still uses its secret`, on
    every plan after an apply that replaced an expired source)."""
    src, cons = questra_key("src"), textql_key("cons", auth=SecretOfRef("src"))
    st = state_with(recorded(src, "ak_new"), recorded(cons, "tk_new"))
    st.keys["cons"].fingerprints["auth_value"] = secret_of_fingerprint("src", "ak_new")
    ended, later = format_time(NOW - timedelta(hours=1)), format_time(NOW + timedelta(hours=1))
    st.deposed.append(DeposedKey("src", "qp", "questra", "ak_old", format_time(T0), ended))
    st.deposed.append(DeposedKey("cons", "tq", "textql", "tk_old", format_time(T0), later,
                                 fed_by=(secret_of_fingerprint("src", "ak_old"),)))
    for revoked, reason in ((False, "already expired"), (True, "already revoked remotely")):
        snapshot = remote_of(st)
        old = RemoteKey("ak_old", {"name": "src"}, created_at=format_time(T0), revoked=revoked, expired=not revoked)
        snapshot.instances["qp"].keys["ak_old"] = old  # type: ignore[index]
        p = plan(workspace(src, cons), st, snapshot, NOW, inputs=READABLE)
        assert [(c.key, c.reasons) for c in p.changes if c.deposed] == [("src (deposed ak_old)", (reason,))]
        assert not any("is kept" in n for n in p.notes), p.notes


def _fixed(address: str, at: Any) -> Any:
    from keyform.model import Expiry

    return replace(questra_key(address), expiry=Expiry("at", at=at, text=format_time(at)))


def test_a_key_made_with_a_fixed_expires_at_that_passed_is_left_as_it_is_whatever_the_api_says() -> None:
    """Made to expire at T, planned after T: no replace loop (each new key would expire at T too),
    even when the API lists it revoked, or a max_age is due; one note at the key."""
    spec = replace(_fixed("k", T0 + timedelta(hours=1)), rotation=Rotation(max_age=timedelta(hours=2)))
    st = state_with(recorded(spec, "ak_1"))
    for remote in (remote_of(st), remote_of(st, k={"revoked": True}), remote_of(st, k={"expired": True})):
        p = plan(workspace(spec), st, remote, NOW)
        assert one(p, "k") == (Action.NOOP, ()) and not p.has_changes
        assert p.notes == (f"k (ak_1) expired at {format_time(T0 + timedelta(hours=1))}, its fixed expires_at "
                           f"({spec.loc}): keyform will not replace it, a new key would expire at the same time; "
                           "move expires_at later, or use expires_in, to have it replaced",)


def test_a_held_keys_note_names_its_edited_sink_and_secret_inputs_too() -> None:
    """A key left as it is past its fixed expires_at: its note named its edited attributes, not
    applied to it, but not an edited sink or secret input (`auth_value` fed by another `secret_of`
    source, a secret header's env value that changed), which were dropped unseen just the same. A
    source re-issued since is no edit of its held consumer (it is not re-issued with it: no word)."""
    at = T0 + timedelta(hours=1)
    fixed = Expiry("at", at=at, text=format_time(at))
    src, other = questra_key("src"), questra_key("other")
    held = _fixed("k", at)  # (a Questra key: its secret is in a sink)
    t = textql_key("t", auth=SecretOfRef("src"), description="d", expiry=fixed, secret_headers={"X-Token": EnvRef("TOK")})
    st = state_with(recorded(src, "ak_1"), recorded(other, "ak_2"), recorded(held, "ak_k"),
                    recorded(t, "tk_1", fingerprints={"auth_value": secret_of_fingerprint("src", "ak_1"),
                                                      "headers.X-Token": "fp-tok"}))
    ending = "move expires_at later, or use expires_in, to have it replaced"

    def notes(*keys: Any, token: str = "fp-tok") -> dict[str, str]:
        inputs = PlanInputs(readable_sinks=frozenset({"env"}), fingerprints={"t": {"headers.X-Token": token}})
        p = plan(workspace(src, other, *keys), st, remote_of(st), NOW, inputs=inputs)
        assert one(p, "t") == one(p, "k") == (Action.NOOP, ()) and not p.has_changes
        return {n.split(" ", 1)[0]: n[n.index(ending) + len(ending):] for n in p.notes}

    assert notes(held, t) == {"k": "", "t": ""}
    assert notes(replace(held, attrs={"name": "renamed"}, sink=SinkTarget("env", "MOVED")),
                 replace(t, attrs={**t.attrs, "description": "e"},
                         secret_inputs={**t.secret_inputs, "auth_value": SecretOfRef("other")})) == {
        "k": "; its edited name, sink are not applied to it either, and the key made then has them",
        "t": "; its edited description, auth_value are not applied to it either, and the key made then has them"}
    assert notes(held, t, token="fp-new") == {
        "k": "", "t": "; its edited headers.X-Token is not applied to it either, and the key made then has it"}
    st.keys["src"] = recorded(src, "ak_3")  # re-issued: the held consumer's auth_value is not edited
    assert notes(held, t) == {"k": "", "t": ""}


def test_a_held_keys_note_names_a_secret_of_input_moved_to_a_source_being_created() -> None:
    """Found by an adversarial review (stop 46): a held key's `auth_value` moved to the `secret_of`
    of a key this plan creates was no edit in its note (`_diff_secret_inputs` leaves an input whose
    source is not made yet to propagation, which re-issues no held key): dropped unseen, as every
    edit was before the note named them. Its own source, not made yet, is still no edit."""
    at = T0 + timedelta(hours=1)
    src, new = questra_key("src"), questra_key("new")
    t = textql_key("t", auth=SecretOfRef("src"), description="d", expiry=Expiry("at", at=at, text=format_time(at)))
    st = state_with(recorded(src, "ak_1"),
                    recorded(t, "tk_1", fingerprints={"auth_value": secret_of_fingerprint("src", "ak_1")}))
    moved = replace(t, secret_inputs={"auth_value": SecretOfRef("new")})
    p = plan(workspace(src, new, moved), st, remote_of(st), NOW, inputs=PlanInputs(readable_sinks=frozenset({"env"})))
    assert one(p, "new")[0] is Action.CREATE and one(p, "t") == (Action.NOOP, ())
    assert next(n for n in p.notes if n.startswith("t ")).endswith(
        "; its edited auth_value is not applied to it either, and the key made then has it")
    del st.keys["src"]  # its own source, gone from the state and made again by this plan: no edit
    p = plan(workspace(src, t), st, remote_of(st), NOW, inputs=PlanInputs(readable_sinks=frozenset({"env"})))
    assert next(n for n in p.notes if n.startswith("t ")).endswith("to have it replaced")


@pytest.mark.parametrize("how", ["--replace", "dependant needs its secret"])
def test_a_replacement_of_a_key_whose_fixed_expires_at_passed_is_an_error_at_that_key(how: str) -> None:
    spec = _fixed("k", T0 + timedelta(hours=1))
    st = state_with(recorded(spec, "ak_1"))
    if how == "--replace":
        with pytest.raises(KeyformError) as exc:
            plan(workspace(spec), st, remote_of(st), NOW, replace=["k"])
        [d] = exc.value.diagnostics
        assert d.loc == spec.loc and d.message.startswith(
            "key 'k': expires_at 2026-01-01T01:00:00Z has passed (23h ago), so keyform will not replace it "
            "(replacement requested (--replace)): "), d.message
        return
    # a new key reading k's secret, which no sink gives back: k would have to be replaced
    t = textql_key("t", auth=SecretOfRef("k"))
    with pytest.raises(KeyformError) as exc:
        plan(workspace(spec, t), st, remote_of(st), NOW, inputs=PlanInputs())
    assert [d.message.split(":")[0] for d in exc.value.diagnostics] == ["key 'k'"], exc.value.diagnostics


def test_a_consumer_due_whose_held_source_secret_no_sink_gives_back_is_left_as_it_is() -> None:
    """`t` (in the state) is due (max_age) and reads `k`'s secret, which no sink gives back; `k` is
    held past its fixed expires_at, so it cannot be replaced to feed `t`: `t` is left as it is, with
    a note (the plan was refused at `k`). `--replace t` is still refused at `k`."""
    spec = _fixed("k", T0 + timedelta(hours=1))
    t = replace(textql_key("t", auth=SecretOfRef("k")), rotation=Rotation(max_age=timedelta(hours=2)))
    st = state_with(recorded(spec, "ak_1"), recorded(t, "tk_1"))
    p = plan(workspace(spec, t), st, remote_of(st), NOW, inputs=PlanInputs())
    assert one(p, "k") == (Action.NOOP, ()) and one(p, "t") == (Action.NOOP, ()) and not p.has_changes
    assert p.notes[1].startswith("t (tk_1) is left as it is: it needs the secret of k, which no sink gives back"), \
        p.notes
    with pytest.raises(KeyformError) as exc:
        plan(workspace(spec, t), st, remote_of(st), NOW, inputs=PlanInputs(), replace=["t"])
    assert [d.message.split(":")[0] for d in exc.value.diagnostics] == ["key 'k'"], exc.value.diagnostics


def test_an_updatable_expiry_moved_to_a_fixed_time_that_passed_is_an_error_at_the_key() -> None:
    """TextQL updates an expiry in place, but not to a time that has passed: the replacement that
    would take its place is refused at the key, and the reason reads as a fixed time (it said
    `2026-… after its creation`, the wording of an `expires_in`)."""
    from keyform.model import Expiry

    before, after = T0 + timedelta(days=30), T0 + timedelta(hours=1)
    spec = textql_key("t", expiry=Expiry("at", at=before, text=format_time(before)))
    st = state_with(recorded(spec, "tq_1"))
    moved = textql_key("t", expiry=Expiry("at", at=after, text=format_time(after)))
    with pytest.raises(KeyformError) as exc:
        plan(workspace(moved), st, remote_of(st), NOW)
    [d] = exc.value.diagnostics
    assert d.message.startswith("key 't': expires_at 2026-01-01T01:00:00Z has passed (23h ago), so keyform will not "
                                "replace it (expiry changed to 2026-01-01T01:00:00Z, which has passed): "), d.message


def test_a_consumer_left_as_it_is_for_a_held_source_still_plans_its_in_place_update() -> None:
    """`t` is due (max_age) and left as it is (it needs the secret of `k`, held past its fixed
    expires_at, which no sink gives back); its manifest also changed its description, which TextQL
    updates in place. The stuck consumer's decision was emptied whole, so the update was dropped
    from every plan: it is planned (an update, no secret needed), with the note for the rest."""
    spec = _fixed("k", T0 + timedelta(hours=1))
    fed = {"auth_value": secret_of_fingerprint("k", "ak_1")}
    t = replace(textql_key("t", auth=SecretOfRef("k")), rotation=Rotation(max_age=timedelta(hours=2)))
    st = state_with(recorded(spec, "ak_1"), recorded(t, "tk_1", fingerprints=fed))
    edited = textql_key("t", auth=SecretOfRef("k"), description="Questra access (ops)")
    edited = replace(edited, rotation=t.rotation)
    p = plan(workspace(spec, edited), st, remote_of(st), NOW, inputs=PlanInputs())
    [c] = [c for c in p.changes if c.address == "t"]
    assert (c.action, c.reasons) == (Action.UPDATE, ("description changed",)), c
    assert [(a.name, a.before, a.after, a.forces_replacement) for a in c.attrs] == [
        ("description", "", "Questra access (ops)", False)], c.attrs
    assert any(n.startswith("t (tk_1) is left as it is: it needs the secret of k") for n in p.notes), p.notes
    # a secret header fed by `k` cannot be updated without its secret: the update waits, and the note says so
    hdr = replace(textql_key("t", auth=SecretOfRef("k"), description="Questra access (ops)",
                             secret_headers={"X-Questra-Key": SecretOfRef("k")}), rotation=t.rotation)
    fed_h = {**fed, "headers.X-Questra-Key": secret_of_fingerprint("k", "ak_1")}
    st = state_with(recorded(spec, "ak_1"), recorded(replace(hdr, attrs=t.attrs), "tk_1", fingerprints=fed_h))
    p = plan(workspace(spec, hdr), st, remote_of(st), NOW, inputs=PlanInputs())
    assert one(p, "t") == (Action.NOOP, ()) and not p.has_changes
    [note] = [n for n in p.notes if n.startswith("t (tk_1) is left as it is")]
    assert "its in-place update (description) waits with it" in note, note


@pytest.fixture
def relay() -> Iterator[Any]:
    """A provider type that both reads a secret (`auth_value`) and issues one: the middle of a
    `secret_of` chain (no built-in type is both; a plug-in or a REST definition can be)."""
    from keyform.typeregistry import ProviderType, provider_type, register, unregister

    # (never opened: the planner asks a type only what it is)
    t = ProviderType(name="relay-test", open=provider_type("questra").open, returns_secret=True, attributes=("name",),
                     secret_inputs=("auth_value",), remote_attributes=frozenset({"name"}))
    register(t, "tests")
    yield t
    unregister(t)


def _relay(address: str, src: str, sink: str) -> Any:
    from keyform.model import KeySpec

    return KeySpec(address=address, provider="qp", provider_type="relay-test", attrs={"name": address}, loc=LOC,
                   secret_inputs={"auth_value": SecretOfRef(src)}, sink=SinkTarget(sink, address.upper()))


def test_a_chain_over_a_held_source_rotates_no_consumer_of_a_key_left_as_it_is(relay: Any) -> None:
    """h (held past its fixed expires_at) → m → r → t, each reading the one before's secret; h and
    m write their secrets to a sink that cannot give them back. `r` is due: it cannot be made (m
    would have to be replaced, and m needs h's secret), so it waits. The planner first replaced m
    for r's sake, which re-issued r, which re-issued t (`depends on r, which is replaced`), then
    found m waiting and took m and r back, but not t: `t` was rotated for nothing, every plan,
    and m was noted as waiting though nothing was due for it. And beside a waiting key, a consumer
    never due (`t2`, reading m's secret too) was noted as waiting as well."""
    at = T0 + timedelta(hours=1)
    h = replace(questra_key("h", sink="wo"), expiry=Expiry("at", at=at, text=format_time(at)))
    m, r = _relay("m", "h", "wo"), _relay("r", "m", "env")
    t = textql_key("t", auth=SecretOfRef("r"))
    recs = [recorded(h, "ak_h"), recorded(m, "rk_m", fingerprints={"auth_value": secret_of_fingerprint("h", "ak_h")}),
            recorded(r, "rk_r", fingerprints={"auth_value": secret_of_fingerprint("m", "rk_m")}),
            recorded(t, "tk_t", fingerprints={"auth_value": secret_of_fingerprint("r", "rk_r")})]
    recs[2].rotation_requested = True
    st = state_with(*recs)
    p = plan(workspace(h, m, r, t), st, remote_of(st), NOW, inputs=READABLE)
    assert [(c.address, c.action) for c in p.changes if c.action is not Action.NOOP] == [], p.changes
    assert [n.split(" ")[0] for n in p.notes] == ["h", "r"], p.notes
    assert p.notes[1].startswith("r (rk_r) is left as it is: it needs the secret of m, which no sink gives back")

    # m (not due) and two consumers reading its secret, one due: only that one is said to wait
    t2 = textql_key("t2", auth=SecretOfRef("m"))
    t1 = replace(textql_key("t1", auth=SecretOfRef("m")), rotation=Rotation(max_age=timedelta(hours=2)))
    fed = {"auth_value": secret_of_fingerprint("m", "rk_m")}
    st = state_with(*recs[:2], recorded(t1, "tk_1", fingerprints=fed), recorded(t2, "tk_2", fingerprints=fed))
    p = plan(workspace(h, m, t1, t2), st, remote_of(st), NOW, inputs=READABLE)
    assert not p.has_changes and [n.split(" ")[0] for n in p.notes] == ["h", "t1"], p.notes


def _header_fed(description: str = "", src_spec: Any = None) -> tuple[Any, Any, State]:
    """`k` (Questra, its secret in sink `env`) feeds `t`'s secret header `X-Questra-Key`; `t`'s
    description is edited in the manifests (TextQL updates it in place)."""
    k = src_spec or questra_key("k")
    t = textql_key("t", secret_headers={"X-Questra-Key": SecretOfRef("k")})
    fed = {"headers.X-Questra-Key": secret_of_fingerprint("k", "ak_1")}
    st = state_with(recorded(k, "ak_1"), recorded(t, "tk_1", fingerprints=fed))
    edited = textql_key("t", secret_headers={"X-Questra-Key": SecretOfRef("k")}, description=description)
    return k, edited, st


def test_an_update_sending_a_secret_header_no_sink_gives_back_is_refused_at_the_key() -> None:
    """`t`'s description changed: an in-place update, which re-sends its secret header, the secret
    of `k`, whose sink cannot give it back (an exec sink without read_command) and which this plan
    does not re-issue. It was planned, and every apply failed reading that secret; now the plan is
    refused at `t`, saying what to do. Readable, it is planned; `--replace k` re-issues both."""
    k, t, st = _header_fed("Questra access (ops)")
    with pytest.raises(KeyformError) as exc:
        plan(workspace(k, t), st, remote_of(st), NOW, inputs=PlanInputs())
    [d] = exc.value.diagnostics
    assert d.loc == t.loc and d.message.startswith(
        "key 't': its in-place update (description) sends header X-Questra-Key again, the secret of 'k', and sink "
        "env cannot give it back"), d.message
    assert "`--replace k`" in d.message, d.message
    assert one(plan(workspace(k, t), st, remote_of(st), NOW, inputs=READABLE), "t")[0] is Action.UPDATE
    p = plan(workspace(k, t), st, remote_of(st), NOW, inputs=PlanInputs(), replace=["k"])
    assert (one(p, "k")[0], one(p, "t")[0]) == (Action.REPLACE, Action.REPLACE), p.changes
    # an update sending nothing to the API (prevent_destroy only) needs no secret
    _, same, st2 = _header_fed("")
    guarded = replace(same, prevent_destroy=True)
    assert one(plan(workspace(k, guarded), st2, remote_of(st2), NOW, inputs=PlanInputs()), "t")[0] is Action.UPDATE


def test_an_update_sending_a_held_source_secret_in_a_header_waits_with_a_note() -> None:
    """The same with `k` held past its fixed expires_at (its secret in no readable sink): `k`
    cannot be re-issued, so the update is not refused (that would refuse every plan until someone
    moved `k`'s expires_at) but waits, said in `t`'s note; other keys go on."""
    k = _fixed("k", T0 + timedelta(hours=1))
    _, t, st = _header_fed("Questra access (ops)", k)
    p = plan(workspace(k, t), st, remote_of(st), NOW, inputs=PlanInputs())
    assert one(p, "t") == (Action.NOOP, ()) and not p.has_changes, p.changes
    # (due for nothing but the update: its note said "to have both made again", and that the update
    # waited "with it", as of a key due a replacement)
    [note] = [n for n in p.notes if n.startswith("t (tk_1) is left as it is")]
    assert note == (
        "t (tk_1) is left as it is: its in-place update (description) would send the secret of k in a header, which "
        "no sink gives back, and k cannot be replaced (its fixed expires_at has passed, or it needs such a key's "
        "secret itself); move k's expires_at later, or use expires_in, to have k made again and t re-issued with its "
        "new secret, the update included"), note
    # as said: k's expires_at moved later, k is replaced and t re-issued, its description with it
    later = _fixed("k", NOW + timedelta(days=30))
    p = plan(workspace(later, t), st, remote_of(st), NOW, inputs=PlanInputs())
    assert (one(p, "k")[0], one(p, "t")) == (Action.REPLACE, (Action.REPLACE, (
        "description changed", "depends on k, which is replaced")))


def test_a_waiting_key_the_api_lists_as_revoked_is_sent_no_update() -> None:
    """`t` reads `k`'s secret (held past its fixed expires_at, no sink gives it back) and the API
    lists `t` as revoked: its replacement waits for `k`. Its edited description was still planned
    as an update, sent to the revoked key; now nothing is sent to it, and its note says it is
    revoked and that the update waits."""
    k = _fixed("k", T0 + timedelta(hours=1))
    fed = {"auth_value": secret_of_fingerprint("k", "ak_1")}
    t = textql_key("t", auth=SecretOfRef("k"))
    st = state_with(recorded(k, "ak_1"), recorded(t, "tk_1", fingerprints=fed))
    edited = textql_key("t", auth=SecretOfRef("k"), description="Questra access (ops)")
    for how in ("revoked", "expired"):
        p = plan(workspace(k, edited), st, remote_of(st, t={how: True}), NOW, inputs=PlanInputs())
        assert one(p, "t") == (Action.NOOP, ()) and not p.has_changes, p.changes
        [note] = [n for n in p.notes if n.startswith("t (tk_1) is left as it is")]
        assert note.startswith(f"t (tk_1) is left as it is, though the API lists it as {how}: it authenticates "
                               "nobody until it is replaced; it needs the secret of k"), note
        assert note.endswith(f"its in-place update (description) waits with it, since nothing is sent to a key the "
                             f"API lists as {how}"), note
    # listed live, the update goes out as before
    p = plan(workspace(k, edited), st, remote_of(st), NOW, inputs=PlanInputs())
    assert one(p, "t") == (Action.UPDATE, ("description changed",)), p.changes
