"""The small conventions of the model and the state, each with one home: the secret-input path of a
header (`model.header_input` / `header_of`), the fingerprint of a `secret_of` input
(`state.secret_of_fingerprint` / `secret_of_edge`), and the record of a key (`KeyState.of`)."""

from __future__ import annotations

from keyform.model import EnvRef, SinkTarget, header_input, header_of
from keyform.state import KeyState, State, secret_of_edge, secret_of_fingerprint
from keyform.statecmds import state_mv
from tests.factories import expires_in, questra_key, recorded, state_with, textql_key


def test_a_header_input_path_names_its_header_and_no_other_input_does() -> None:
    assert header_input("X-Api-Key") == "headers.X-Api-Key"
    assert header_of(header_input("X-Api-Key")) == "X-Api-Key"
    assert header_of("auth_value") is None and header_of("auth_value_extra") is None


def test_a_secret_of_fingerprint_gives_back_its_source_and_remote_id() -> None:
    fp = secret_of_fingerprint("ci-bot", "ak_1")
    assert fp == "secret_of:ci-bot@ak_1"  # the form state files hold
    assert secret_of_edge(fp) == ("ci-bot", "ak_1")
    assert secret_of_edge(State.new().fingerprint("value")) is None
    assert secret_of_edge("unknown") is None and secret_of_edge("secret_of:no-remote-id") is None


def test_state_mv_repoints_the_secret_of_fingerprints_of_the_moved_source_only() -> None:
    q, qq = questra_key("q"), questra_key("qq")
    t = textql_key("t", secret_headers={"X-A": EnvRef("A"), "X-B": EnvRef("B")})
    st = state_with(recorded(q, "ak_1"), recorded(qq, "ak_2"), recorded(t, "tq_1", fingerprints={
        "auth_value": secret_of_fingerprint("q", "ak_1"), "headers.X-A": secret_of_fingerprint("qq", "ak_2"),
        "headers.X-B": "hmac-sha256:ab"}))
    moved = state_mv(st, "q", "renamed", sink_name="RENAMED")
    assert moved.sink == SinkTarget("env", "RENAMED")
    assert st.keys["t"].fingerprints == {"auth_value": secret_of_fingerprint("renamed", "ak_1"),
                                         "headers.X-A": secret_of_fingerprint("qq", "ak_2"),
                                         "headers.X-B": "hmac-sha256:ab"}


def test_a_key_record_takes_the_key_s_identity_and_declared_settings_from_its_spec() -> None:
    spec = questra_key("ci-bot", "CI bot", provider="qp2", expiry=expires_in(90), prevent_destroy=True)
    ks = KeyState.of(spec, "ak_1", remote={"name": "CI bot"}, expires_at="2027-06-01T00:00:00Z",
                     created_at="2027-03-03T00:00:00Z", sink=spec.sink, fingerprints={"auth": "hmac-sha256:ab"},
                     applied_at="2027-03-03T00:00:00Z")
    assert (ks.address, ks.provider, ks.provider_type, ks.remote_id, ks.attrs, ks.expiry_spec, ks.prevent_destroy) \
        == ("ci-bot", "qp2", "questra", "ak_1", {"name": "CI bot"}, "in:90d", True)
    assert (ks.sink, ks.secret_in_sink, ks.rotation_requested) == (SinkTarget("env", "CI_BOT"), True, False)
    assert ks.attrs is not spec.attrs  # its own copy: the record is mutated, the spec is frozen
    imported = KeyState.of(spec, "ak_1", attrs={"name": "as listed"}, expiry_spec="at:2027-06-01T00:00:00Z",
                           remote={}, expires_at="2027-06-01T00:00:00Z", created_at="2027-03-03T00:00:00Z",
                           sink=None, fingerprints={}, applied_at=None, secret_in_sink=False)
    assert (imported.attrs, imported.expiry_spec, imported.secret_in_sink, imported.applied_at) == (
        {"name": "as listed"}, "at:2027-06-01T00:00:00Z", False, None)
