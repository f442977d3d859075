"""refresh: which instances are listed, and secret header values never kept from a listing."""

from __future__ import annotations

from keyform.model import EnvRef, header_input
from keyform.providers.pool import ProviderPool
from keyform.refresh import instances_in_use, refresh, secret_header_names
from keyform.remote import RemoteKey
from keyform.state import DeposedKey
from tests.factories import T0, questra_key, recorded, state_with, textql_key, workspace
from tests.fakes import FakeProvider

ENV = {"QT": "token-q", "TT": "token-t"}


def test_instances_in_use_counts_desired_recorded_and_deposed_keys() -> None:
    ws = workspace(questra_key("q1"))
    state = state_with(recorded(textql_key("t1"), "k_t1"))
    assert instances_in_use(ws, state) == {"qp", "tq"}
    assert instances_in_use(workspace(), state_with()) == set()
    assert instances_in_use(ws, state, {"q1"}) == {"qp"}
    assert instances_in_use(ws, state, {"t1"}) == {"tq"}
    assert instances_in_use(ws, state, set()) == set()
    state.deposed.append(DeposedKey("q9", "other", "questra", "k_9", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"))
    assert instances_in_use(workspace(), state) == {"tq", "other"}
    assert instances_in_use(workspace(), state, {"q9"}) == {"other"}


def test_secret_header_names_from_desired_inputs_and_recorded_fingerprints() -> None:
    ws = workspace(textql_key("t1", auth=EnvRef("A"), secret_headers={"X-Secret": EnvRef("S")}),
                   textql_key("t2"), questra_key("q1"))
    state = state_with(recorded(textql_key("t3"), "k_3", fingerprints={header_input("X-Old"): "h",
                                                                       "auth_value": "h"}))
    assert secret_header_names(ws, state) == {"tq": {"X-Secret", "X-Old"}}
    assert secret_header_names(workspace(textql_key("t1", auth=EnvRef("A"))), state_with()) == {}


def test_refresh_strips_secret_headers_and_keeps_the_rest() -> None:
    ws = workspace(textql_key("t1", secret_headers={"X-Secret": EnvRef("S")}), questra_key("q1"))
    tq, qp = FakeProvider("tq", "textql", lambda: T0), FakeProvider("qp", "questra", lambda: T0)
    listed = RemoteKey("k1", {"headers": {"X-Secret": "v", "X-Team": "a"}, "hosts": ["h"]})
    plain = RemoteKey("k2", {"headers": {"X-Team": "b"}})
    tq.keys = {"k1": listed, "k2": plain}
    qp.keys = {"q": RemoteKey("q", {"name": "n", "headers": {"X-Secret": "kept: not a secret here"}})}
    pool = ProviderPool(ws, lambda cfg, token, org: {"tq": tq, "qp": qp}[cfg.name], ENV)
    snap = refresh(ws, state_with(), pool, instances_in_use(ws, state_with()))
    keys = snap.instances["tq"].keys
    assert keys is not None
    assert keys["k1"] == RemoteKey("k1", {"headers": {"X-Team": "a"}, "hosts": ["h"]})
    assert keys["k2"] is plain
    assert listed.attrs["headers"] == {"X-Secret": "v", "X-Team": "a"}  # the listing itself is not changed
    assert snap.instances["qp"].keys == qp.keys
    assert snap.lookup("qp", "q") == (True, qp.keys["q"])
    assert snap.lookup("nope", "q") == (False, None)
