"""Recovery of a create answered with an id that holds a secret, whose immediate revoke failed
(`applier._refuse_secret_id`): the journal keeps the id's fingerprint, never the id, and recovery
recognises the key by it alone. Its id appears in no orphan's shown id, evidence, note or
candidate list; a key it cannot fingerprint blinds the other lost creates of that provider
instance rather than being shown as their candidate. End to end: tests/test_rest_secret_id.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from keyform.durations import format_time
from keyform.journal import Abandoned, Journal, Record, decode, encode
from keyform.journal import Begin as BeginRecord
from keyform.pending import Orphan
from keyform.plan import Action
from keyform.planner import PlanInputs
from keyform.planner import plan as make_plan
from keyform.recovery import Recovery, assess, pending_seqs, withheld_matcher
from keyform.remote import RemoteKey, RemoteSnapshot
from keyform.state import State
from tests.factories import T0, ListWriter, questra_key, state_with, workspace

SECRET_ID = "key-sk_CANARY_live_0123456789abcdef"


class _Pool:
    def __init__(self, keys: list[RemoteKey]) -> None:
        self.keys = keys

    def get(self, name: str) -> Any:
        return self

    def list(self) -> list[RemoteKey]:
        return list(self.keys)


def _key(key_id: str, created: timedelta = timedelta(seconds=1), revoked: bool = False) -> RemoteKey:
    return RemoteKey(key_id, {"name": "ci-bot"}, created_at=format_time(T0 + created), revoked=revoked)


def _journal(state: State, *, other_lost: bool = False) -> list[Record]:
    """A run whose create of ci-bot was answered with SECRET_ID and whose revoke failed; with
    `other_lost`, a second create of the same attributes lost its reply."""
    records: list[Record] = [BeginRecord.of(state)]
    now = [T0]
    journal = Journal(ListWriter(records), "run1", clock=lambda: now[0])
    seq = journal.intent("create", "ci", "qp", label="ci-bot", at=format_time(T0), match={"name": "ci-bot"})
    now[0] = T0 + timedelta(seconds=2)
    journal.abandoned(seq, id_fingerprint=state.fingerprint(SECRET_ID))
    if other_lost:
        lost = journal.intent("create", "ci2", "qp", label="ci-bot", at=format_time(now[0]), match={"name": "ci-bot"})
        journal.abandoned(lost)
    return records


def _shown(rec: Recovery) -> str:
    """Everything of `rec` a plan or message could show."""
    return " ".join([*rec.notes, *(o.shown_id + o.evidence for o in rec.orphans),
                     *(u.advice() for u in rec.uncertain)])


def test_the_fingerprint_is_journaled_and_read_back_never_the_id() -> None:
    st = state_with()
    record = Abandoned("run1.1", at=format_time(T0), id_fingerprint=st.fingerprint(SECRET_ID))
    line = encode(record)
    assert "CANARY" not in line and decode(line) == record
    assert decode('{"op":"abandoned","seq":"run1.1"}') == Abandoned("run1.1")  # an older journal


def test_the_key_with_that_fingerprint_is_a_withheld_orphan_and_no_other_creates_candidate() -> None:
    st = state_with()
    theirs = _key("ak_theirs", timedelta(seconds=3))
    rec = assess(st, _journal(st, other_lost=True), _Pool([_key(SECRET_ID), theirs]),  # type: ignore[arg-type]
                 {"qp": "questra"})
    withheld = [o for o in rec.orphans if o.withheld]
    assert [(o.address, o.remote_id) for o in withheld] == [("ci", SECRET_ID)]
    assert withheld[0].shown_id == "<id withheld: it holds a secret; create run1.1>"
    # the lost create's only candidate is the other key: the secret one was never among them
    assert [o.remote_id for o in rec.orphans if not o.withheld] + [c for u in rec.uncertain
                                                                   for c in u.candidates] == ["ak_theirs"]
    assert "CANARY" not in _shown(rec)
    assert pending_seqs(rec) == {"run1.1", "run1.2"}


def test_the_plan_names_it_by_its_placeholder() -> None:
    st = state_with()
    rec = assess(st, _journal(st), _Pool([_key(SECRET_ID)]), {"qp": "questra"})  # type: ignore[arg-type]
    ws = workspace(questra_key("ci", "ci-bot"))
    result = make_plan(ws, st, RemoteSnapshot(), T0, inputs=PlanInputs({}, frozenset(), orphans=tuple(rec.orphans)))
    orphans = [c for c in result.changes if c.orphan]
    assert [(c.action, c.remote_id) for c in orphans] == [(Action.DELETE, rec.orphans[0].shown_id)]
    assert "CANARY" not in result.dumps()


def test_a_revoked_or_unlisted_key_leaves_nothing_to_do() -> None:
    st = state_with()
    for listed in ([], [_key(SECRET_ID, revoked=True)], [_key("ak_unrelated")]):
        rec = assess(st, _journal(st), _Pool(listed), {"qp": "questra"})  # type: ignore[arg-type]
        assert not [o for o in rec.orphans if o.withheld] and rec.unresolved == []
        assert pending_seqs(rec) == set() and "CANARY" not in _shown(rec)
        assert any("whose id holds a secret, is revoked or gone" in n for n in rec.notes)


def test_ids_that_cannot_be_fingerprinted_keep_the_create_and_show_no_candidate() -> None:
    """A keyed state without its key (or a journal of the other fingerprint mode): the create stays
    journaled, and the other lost create of that instance is not matched either, since the secret
    key could not be told from its candidates (whose ids a plan shows)."""
    st = state_with()
    records = _journal(st, other_lost=True)
    keyed = state_with()
    keyed.key_check, keyed.mac_key = "0" * 16, None
    for state in (keyed, State(lineage="lin-1", serial=3, salt="00" * 16, key_check="0" * 16, mac_key=b"k" * 32)):
        rec = assess(state, records, _Pool([_key(SECRET_ID), _key("ak_theirs")]),  # type: ignore[arg-type]
                     {"qp": "questra"})
        assert rec.orphans == [] and rec.uncertain == []
        assert sorted(it.seq for it in rec.unresolved) == ["run1.1", "run1.2"]
        assert "CANARY" not in _shown(rec)


def test_a_listing_without_recovery_hides_that_key() -> None:
    """`keyform report --unmanaged` reads the journal without recovering it."""
    st = state_with()
    hidden = withheld_matcher(st, _journal(st))
    assert hidden is not None and hidden("qp", SECRET_ID) and not hidden("qp", "ak_other")
    assert not hidden("another-instance", SECRET_ID)
    keyless = state_with()
    keyless.key_check = "0" * 16
    blind = withheld_matcher(keyless, _journal(st))
    assert blind is not None and blind("qp", "ak_other")  # not told apart: not shown either
    assert withheld_matcher(st, [BeginRecord.of(st)]) is None


def test_an_orphan_known_by_id_is_shown_by_it() -> None:
    orphan = Orphan("ci", "qp", "questra", "ak_1", "run1.1", "evidence")
    assert orphan.shown_id == "ak_1"


def test_a_key_recognised_by_its_fingerprint_but_listed_otherwise_is_no_other_creates_candidate() -> None:
    """Review 119: the key with a journaled fingerprint is revoked only if it is listed with the
    attributes its create sent; one listed otherwise is kept journaled, and must still be no
    candidate of another lost create (whose orphan's id a plan shows): its id holds a secret."""
    st = state_with()
    records: list[Record] = [BeginRecord.of(st)]
    now = [T0]
    journal = Journal(ListWriter(records), "run1", clock=lambda: now[0])
    seq = journal.intent("create", "ci", "qp", label="ci-bot", at=format_time(T0), match={"name": "ci-bot"})
    lost = journal.intent("create", "dp", "qp", label="deploy", at=format_time(T0), match={"name": "deploy"})
    now[0] = T0 + timedelta(seconds=2)
    journal.abandoned(seq, id_fingerprint=st.fingerprint(SECRET_ID))
    journal.abandoned(lost)
    listed = RemoteKey(SECRET_ID, {"name": "deploy"}, created_at=format_time(T0 + timedelta(seconds=1)))
    rec = assess(st, records, _Pool([listed]), {"qp": "questra"})  # type: ignore[arg-type]
    assert rec.orphans == [] and rec.uncertain == [] and [it.seq for it in rec.unresolved] == ["run1.1"]
    assert "CANARY" not in _shown(rec)
