"""Copies of a live secret that a sink move left behind (`State.stale`).

A key's secret moves from one sink entry to another (its `as:` or `sink:` changed). The old entry is
removed only once the journal records the new one; a crash in between, or a removal the sink
refuses, left the old entry holding the key's live secret, recorded only as keyform's own entry
(`written_entries`): no plan or apply ever removed it. Now such an entry is a stale copy
(`stale_entries`): the next plan shows its removal, the apply removes it, and an entry a key of the
manifests writes or the state records is never removed (that key's write replaces it).
(tests/test_crash.py has the crash; here the sink refuses the removal.)
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import jsonschema
import pytest

from harness.project import ORG, Project
from keyform.backends.local import LocalBackend
from keyform.emulator import Emulator
from keyform.errors import StateError
from keyform.journal import Begin, Journal
from keyform.model import SinkTarget
from keyform.plan import Action
from keyform.state import State, parse_state
from keyform.statecmds import state_mv, state_rm

# An exec sink keeping each entry as a file in $STORE; its remove fails while $STORE/SEALED exists.
VAULT = """\
#!/bin/sh
store="$STORE"
mkdir -p "$store"
case "$1" in
  put) cat > "$store/$KEYFORM_SINK_NAME" ;;
  get) if [ -f "$store/$KEYFORM_SINK_NAME" ]; then cat "$store/$KEYFORM_SINK_NAME"; fi ;;
  rm) if [ -f "$store/SEALED" ]; then echo "the vault is sealed" >&2; exit 3; fi
      rm -f "$store/$KEYFORM_SINK_NAME" ;;
esac
"""


def _manifest(entry: str, other: str = "") -> str:
    return (
        "version: 1\n"
        "providers:\n"
        "  qp: {type: questra, base_url: '{url}', token: {env: QUESTRA_TOKEN}, org_id: {org}}\n"
        "sinks:\n"
        "  vault:\n"
        "    type: exec\n"
        "    command: [./vault, put]\n"
        "    read_command: [./vault, get]\n"
        "    remove_command: [./vault, rm]\n"
        "keys:\n"
        f"  ci-bot: {{provider: qp, name: CI bot, sink: {{use: vault, as: {entry}}}}}\n" + other)


@pytest.fixture
def vault(tmp_path: Path, emulator: Emulator) -> tuple[Project, Path]:
    project = Project(tmp_path / "repo", emulator.url)
    project.root.mkdir(parents=True)
    script = project.root / "vault"
    script.write_text(VAULT)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    store = tmp_path / "store"
    project.env["STORE"] = str(store)
    return project, store


def _move_while_sealed(project: Project, store: Path, other: str = "") -> None:
    """ci-bot applied at CI_BOT, then moved to CI_BOT_V2 while the vault refuses removals: the old
    entry stays behind, marked as a stale copy (the apply fails on that removal alone)."""
    project.write(_manifest("CI_BOT", other))
    assert project.run("apply", "--auto-approve").exit_code == 0
    (store / "SEALED").touch()
    project.write(_manifest("CI_BOT_V2", other))
    assert project.run("apply", "--auto-approve").exit_code == 1
    (store / "SEALED").unlink()


def test_a_move_whose_old_entry_the_sink_would_not_remove_is_cleaned_up_by_the_next_apply(
        vault: tuple[Project, Path]) -> None:
    project, store = vault
    project.write(_manifest("CI_BOT"))
    first = project.run("apply", "--auto-approve")
    assert first.exit_code == 0, first.output
    secret = (store / "CI_BOT").read_text()
    assert secret

    (store / "SEALED").touch()
    project.write(_manifest("CI_BOT_V2"))
    moved = project.run("apply", "--auto-approve")
    assert moved.exit_code == 1, moved.output  # the move is done and recorded; the old entry could not go
    assert "the vault is sealed" in moved.output
    assert (store / "CI_BOT").read_text() == secret and (store / "CI_BOT_V2").read_text() == secret
    doc = project.state()
    assert doc["keys"]["ci-bot"]["sink"] == {"sink": "vault", "as": "CI_BOT_V2"}
    assert doc["stale_entries"] == {"vault": {"CI_BOT": "ci-bot"}}

    sealed = project.run("plan", "--detailed-exitcode")
    assert sealed.exit_code == 2, sealed.output
    assert "ci-bot (stale copy at vault:CI_BOT) will be removed" in sealed.output
    assert "secret = (sink entry vault:CI_BOT is removed)" in sealed.output
    failed = project.run("apply", "--auto-approve")  # still sealed: the copy stays recorded
    assert failed.exit_code == 1 and "could not be removed" in failed.output, failed.output
    assert project.state()["stale_entries"] == {"vault": {"CI_BOT": "ci-bot"}}

    (store / "SEALED").unlink()
    cleaned = project.run("apply", "--auto-approve")
    assert cleaned.exit_code == 0, cleaned.output
    assert "ci-bot (stale copy at vault:CI_BOT): removed" in cleaned.output
    assert "0 deleted, 1 stale secret copy removed, 0 failed." in cleaned.output
    assert not (store / "CI_BOT").exists() and (store / "CI_BOT_V2").read_text() == secret
    assert "stale_entries" not in project.state() and "written_entries" not in project.state()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    for res in (first, moved, sealed, failed, cleaned):
        assert secret not in res.output


def test_a_stale_copy_a_key_writes_again_is_left_to_that_key(vault: tuple[Project, Path]) -> None:
    """The manifests put another key at the old entry: its create writes there, so the plan does
    not remove it (nor does the apply, checking again), and the record goes once that key holds it."""
    project, store = vault
    _move_while_sealed(project, store)
    project.write(_manifest("CI_BOT_V2", "  deploy-bot: {provider: qp, name: deploy, sink: {use: vault, as: CI_BOT}}\n"))
    planned = project.run("plan", "--format", "json")
    assert planned.exit_code == 0, planned.output
    assert [c["address"] for c in json.loads(planned.stdout)["changes"] if c["action"] != "noop"] == ["deploy-bot"]
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert (store / "CI_BOT").read_text() != (store / "CI_BOT_V2").read_text()  # deploy-bot's own secret now
    assert "stale_entries" not in project.state()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_plan_for_other_keys_leaves_the_stale_copy_for_later(vault: tuple[Project, Path]) -> None:
    project, store = vault
    _move_while_sealed(project, store, "  deploy-bot: {provider: qp, name: deploy, sink: {use: vault, as: DEPLOY}}\n")
    other = project.run("plan", "--target", "deploy-bot", "--detailed-exitcode")
    assert other.exit_code == 0 and "stale copy" not in other.output, other.output
    mine = project.run("plan", "--target", "ci-bot", "--detailed-exitcode")
    assert mine.exit_code == 2 and "ci-bot (stale copy at vault:CI_BOT) will be removed" in mine.output
    markdown = project.run("plan", "--format", "markdown")
    assert "| `ci-bot (stale copy at vault:CI_BOT)` | remove (stale copy) |" in markdown.output, markdown.output
    # the JSON events of its removal, each valid against schemas/apply-events.schema.json
    applied = project.run("apply", "--auto-approve", "--format", "json", "--target", "ci-bot")
    assert applied.exit_code == 0, applied.output
    events = [json.loads(line) for line in applied.stdout.splitlines()]
    for event in events:
        _validator("apply-events.schema.json").validate(event)
        if event["type"] == "planned":
            _validator("plan.schema.json").validate(event["plan"])
    done = [e for e in events if e["type"] == "apply_complete"]
    assert [(e["address"], e["action"], e.get("stale"), e.get("sink")) for e in done] == \
        [("ci-bot", "delete", True, "vault:CI_BOT")]
    assert not (store / "CI_BOT").exists()


def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((Path(__file__).resolve().parents[1] / "schemas" / name).read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _state_with(stale: object) -> bytes:
    doc = json.loads(State.new().dumps())
    doc["stale_entries"] = stale
    return json.dumps(doc).encode()


@pytest.mark.parametrize("stale", [[], {"env": ["A"]}, {"env": {"A": 5}}, {"env": {"A": "not an address!"}},
                                   {"env": {"": "k"}}, "env:A", {"env": {"A": None}}])
def test_a_malformed_stale_entries_record_is_refused(stale: object) -> None:
    with pytest.raises(StateError) as err:
        parse_state(_state_with(stale), "keyform.state.json", "it was not changed")
    assert "keyform.state.json" in str(err.value) and "it was not changed" in str(err.value)


def test_stale_entries_round_trip_and_drop_what_a_key_records() -> None:
    state = parse_state(_state_with({"env": {"A\nB": "k1", "C": "k2"}}), "s", "u")
    assert state.stale_copies() == [(SinkTarget("env", "A\nB"), "k1"), (SinkTarget("env", "C"), "k2")]
    again = parse_state(state.dumps().encode(), "s", "u")
    assert again.stale == state.stale
    state.note_stale(SinkTarget("other", "D"), "k3")
    assert SinkTarget("other", "D") in state.owned_entries()  # keyform's own as well
    state.forget_entry(SinkTarget("env", "C"))
    assert [a for _, a in state.stale_copies()] == ["k1", "k3"]
    assert "C" not in state.written.get("env", set())


def test_state_rm_forgets_a_keys_stale_copies_and_state_mv_carries_them(tmp_path: Path) -> None:
    """`state rm` forgets a key and leaves its entries as they are (still keyform's own, never
    removed); `state mv` renames whose copy each is."""
    from keyform.state import KeyState

    state = State.new()
    for address in ("a", "b"):
        state.keys[address] = KeyState(address=address, provider="qp", provider_type="questra",
                                       remote_id=f"ak_{address}", attrs={}, remote={}, expiry_spec="never",
                                       expires_at=None, created_at="2026-01-01T00:00:00Z",
                                       sink=SinkTarget("env", address.upper()))
    state.note_stale(SinkTarget("env", "A_OLD"), "a")
    state.note_stale(SinkTarget("env", "B_OLD"), "b")
    state_rm(state, "a")
    assert state.stale_copies() == [(SinkTarget("env", "B_OLD"), "b")]
    assert SinkTarget("env", "A_OLD") in state.owned_entries()
    state_mv(state, "b", "c")
    assert state.stale_copies() == [(SinkTarget("env", "B_OLD"), "c")]


PLAN_MANIFEST = """\
version: 1
providers:
  qp: {type: questra, base_url: "http://127.0.0.1:1", token: {env: QT}, org_id: org_1}
sinks:
  env: {type: dotenv, path: .secrets/keys.env}
defaults: {sink: env}
keys:
  a: {provider: qp, name: a}
  b: {provider: qp, name: b, sink: {use: env, as: TAKEN}}
"""


def test_the_planner_removes_only_what_it_can_and_says_why_for_the_rest(tmp_path: Path) -> None:
    """Pure planner: a copy of a known key's secret in a declared sink is removed (in scope); one
    another key writes is left to it; one of a key the state no longer has, or in a sink the
    manifests dropped, gets a note naming the entry instead of a change keyform cannot carry out."""
    from datetime import UTC, datetime

    from keyform.manifest import load_workspace
    from keyform.planner import plan
    from keyform.remote import RemoteSnapshot
    from keyform.state import KeyState

    (tmp_path / "keyform.yaml").write_text(PLAN_MANIFEST)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    ws = load_workspace([tmp_path / "keyform.yaml"], now=now, cwd=tmp_path)
    state = State.new()
    for address, entry in (("a", "A"), ("b", "TAKEN")):
        state.keys[address] = KeyState(address=address, provider="qp", provider_type="questra",
                                       remote_id=f"ak_{address}", attrs={"name": address}, remote={},
                                       expiry_spec="never", expires_at=None, created_at="2026-05-01T00:00:00Z",
                                       sink=SinkTarget("env", entry))
    state.note_stale(SinkTarget("env", "A_OLD"), "a")      # removed
    state.note_stale(SinkTarget("env", "TAKEN"), "a")      # b writes it: left alone (and not even listed)
    state.note_stale(SinkTarget("env", "GONE_OLD"), "gone")  # its key is no longer in the state
    state.note_stale(SinkTarget("old-sink", "X"), "a")     # its sink left the manifests
    result = plan(ws, state, RemoteSnapshot(), now)
    stale = [(c.key, c.action, c.remote_id, c.sink) for c in result.changes if c.stale]
    assert stale == [("a (stale copy at env:A_OLD)", Action.DELETE, "ak_a", "env:A_OLD")]
    assert [n for n in result.notes if "by hand" in n] == [
        "the sink entry env:GONE_OLD may still hold a copy of the secret of gone (a sink move left it there) and "
        "keyform no longer manages gone: remove that entry by hand (the next apply stops tracking it)",
        "the sink entry old-sink:X may still hold a copy of the secret of a (a sink move left it there) and "
        "sink old-sink is no longer in the manifests: remove that entry by hand (the next apply stops tracking it)"]
    assert [c.key for c in plan(ws, state, RemoteSnapshot(), now, targets=["b"]).changes if c.stale] == []
    destroyed = plan(ws, state, RemoteSnapshot(), now, destroy=True)
    assert [c.key for c in destroyed.changes if c.stale] == ["a (stale copy at env:A_OLD)"]


# ------------------------------------------------- found by an adversarial review of the change


def _remote_key(url: str, name: str) -> tuple[str, str]:
    r = httpx.post(f"{url}/api-keys", json={"name": name}, headers={"Authorization": "Bearer x", "X-Org-Id": ORG})
    r.raise_for_status()
    d = r.json()
    return str(d["id"]), str(d.get("secret") or d.get("key") or "")


def test_an_imported_keys_entry_is_never_a_stale_copy(tmp_path: Path, emulator: Emulator) -> None:
    """An imported key (`secret_in_sink: false`) whose variable the user keeps by hand is rotated
    into another entry and the apply is killed after its `done`: the fold marked the user's own
    entry a stale copy and the next apply deleted it (adversarial review). Only an entry that held
    the key's own secret is one now."""
    project = Project(tmp_path / "repo", emulator.url)
    rid, secret = _remote_key(emulator.url, "Legacy key")
    project.questra("legacy: {provider: qp, name: Legacy key}\n")
    project.sink_path.parent.mkdir(parents=True, exist_ok=True)
    # the user's own .env: the imported key's secret, by hand
    project.sink_path.write_text(f"LEGACY=user-managed-{secret[:4]}\nOTHER=x\n")
    assert project.run("import", "legacy", rid).exit_code == 0
    assert project.state()["keys"]["legacy"]["secret_in_sink"] is False
    project.questra("legacy: {provider: qp, name: Legacy key, sink: {use: env, as: LEGACY_V2}}\n")
    before_text = project.state_path.read_text()
    # a normal (uninterrupted) replace leaves the user's LEGACY entry alone
    ok = project.run("apply", "--auto-approve", "--replace", "legacy")
    assert ok.exit_code == 0, ok.output
    assert "LEGACY" in project.sink(), project.sink()
    after = parse_state(project.state_path.read_bytes(), "s", "u")
    # now re-create what a kill -9 after the create's `done` (before the state save) leaves
    pre = parse_state(before_text.encode(), "s", "u")
    store = LocalBackend(project.state_path)
    project.state_path.write_text(before_text)
    fh = store.journal_open()
    fh.append(Begin.of(pre))
    j = Journal(fh, "killed")
    seq = j.intent("create", "legacy", "qp", label="Legacy key", replaces=rid, match={}, entry={"sink": "env", "as": "LEGACY_V2"})
    j.created(seq, after.keys["legacy"].remote_id)
    from keyform.state import DeposedKey
    dep = DeposedKey(address="legacy", provider="qp", provider_type="questra", remote_id=rid,
                     deposed_at="2026-01-01T00:00:00Z", revoke_after="2099-01-01T00:00:00Z")
    j.done(seq, key=after.keys["legacy"], deposed=dep)
    fh.close()
    planned = project.run("plan")
    assert planned.exit_code == 0 and "stale copy at env:LEGACY" not in planned.output, planned.output
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert project.sink()["LEGACY"] == f"user-managed-{secret[:4]}" and "stale_entries" not in project.state()


def test_a_swap_killed_after_both_moves_then_state_rm_never_removes_the_forgotten_keys_entry(
        tmp_path: Path, emulator: Emulator) -> None:
    """Two keys swap entries and the apply dies after both `done`s: the fold marked each old entry
    a stale copy, though the other key records it. `state rm a` then left B (holding a's live
    secret) unrecorded but still marked, and the next apply removed it (adversarial review). A
    mark at an entry a key records is now dropped by the fold itself."""
    project = Project(tmp_path / "repo", emulator.url)
    project.questra("a: {provider: qp, name: a, sink: {use: env, as: A}}\n"
                    "b: {provider: qp, name: b, sink: {use: env, as: B}}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    pre_text = project.state_path.read_text()
    pre = parse_state(pre_text.encode(), "s", "u")
    sec = project.sink()
    # the swap: a -> B, b -> A; run it for real, then replay it as killed after both `done`s
    project.questra("a: {provider: qp, name: a, sink: {use: env, as: B}}\n"
                    "b: {provider: qp, name: b, sink: {use: env, as: A}}\n")
    ok = project.run("apply", "--auto-approve")
    assert ok.exit_code == 0, ok.output
    assert project.sink() == {"A": sec["B"], "B": sec["A"]}
    post = parse_state(project.state_path.read_bytes(), "s", "u")
    project.state_path.write_text(pre_text)
    store = LocalBackend(project.state_path)
    fh = store.journal_open()
    fh.append(Begin.of(pre))
    j = Journal(fh, "killed")
    for addr, new in (("a", "B"), ("b", "A")):
        seq = j.intent("update", addr, "qp", remote_id=pre.keys[addr].remote_id, entry={"sink": "env", "as": new})
        j.done(seq, key=post.keys[addr])
    fh.close()
    # the user stops managing a (keeps it live, in B, by hand): state rm, and drops it from the manifests
    rm = project.run("state", "rm", "a", "-f", str(project.manifest))
    assert rm.exit_code == 0, rm.output
    project.questra("b: {provider: qp, name: b, sink: {use: env, as: A}}\n")
    assert "stale_entries" not in project.state()  # each mark's entry is the other key's
    planned = project.run("plan")
    assert planned.exit_code == 0 and "stale copy" not in planned.output, planned.output
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert project.sink().get("B") == sec["A"], "a's live secret (a was state rm-ed) was removed from B"


def test_a_move_out_of_a_dropped_sink_leaves_no_mark_and_no_note(tmp_path: Path, emulator: Emulator) -> None:
    """A key moves from sink `old` to `new` while `old` leaves the manifests: keyform cannot touch
    `old` any more, so it keeps no mark there (a note about it used to repeat in every plan, even
    after the file was gone)."""
    project = Project(tmp_path / "repo", emulator.url)
    head = ("version: 1\nproviders:\n  qp: {type: questra, base_url: '{url}', token: {env: QUESTRA_TOKEN}, org_id: {org}}\n"
            "sinks:\n")
    project.write(head + "  old: {type: dotenv, path: old.env}\n  new: {type: dotenv, path: new.env}\n"
                  "keys:\n  k: {provider: qp, name: k, sink: {use: old, as: K}}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.write(head + "  new: {type: dotenv, path: new.env}\n"
                  "keys:\n  k: {provider: qp, name: k, sink: {use: new, as: K}}\n")
    moved = project.run("apply", "--auto-approve")
    assert moved.exit_code == 0, moved.output
    assert "stale_entries" not in project.state()
    (project.root / "old.env").unlink()  # the user removes it by hand, as told
    for _ in range(2):
        planned = project.run("plan", "--detailed-exitcode")
        assert planned.exit_code == 0 and "by hand" not in planned.output, planned.output
    assert "stale_entries" not in project.state()




def test_a_copy_keyform_cannot_remove_is_named_once_and_then_no_longer_tracked(vault: tuple[Project, Path]) -> None:
    """A stale mark of a key the state no longer has: the plan names the entry (remove it by hand),
    the next apply stops tracking it, and later plans are quiet (a --target plan that leaves the key
    out keeps it)."""
    project, _store = vault
    project.write(_manifest("CI_BOT"))
    assert project.run("apply", "--auto-approve").exit_code == 0
    doc = project.state()
    doc["stale_entries"] = {"vault": {"OLD_GONE": "gone"}}
    project.state_path.write_text(json.dumps(doc))
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output  # a note, not a change
    assert "the sink entry vault:OLD_GONE may still hold a copy of the secret of gone" in planned.output
    targeted = project.run("apply", "--auto-approve", "--target", "ci-bot")
    assert targeted.exit_code == 0 and project.state()["stale_entries"] == {"vault": {"OLD_GONE": "gone"}}
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "stale_entries" not in project.state()
    quiet = project.run("plan", "--detailed-exitcode")
    assert quiet.exit_code == 0 and "OLD_GONE" not in quiet.output, quiet.output


def test_a_hostile_entry_name_in_stale_entries_removes_nothing_outside_the_sink(
        tmp_path: Path, emulator: Emulator) -> None:
    """A hand-edited `stale_entries` naming `../outside` in a `file` sink: the sink's own name check
    refuses it, the apply says so and fails that change alone, and the file outside stays."""
    project = Project(tmp_path / "repo", emulator.url)
    project.write("version: 1\nproviders:\n  qp: {type: questra, base_url: '{url}', token: {env: QUESTRA_TOKEN}, "
                  "org_id: {org}}\nsinks:\n  files: {type: file, dir: secrets.d}\n"
                  "keys:\n  k: {provider: qp, name: k, sink: {use: files, as: K}}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    outside = project.root / "outside"
    outside.write_text("keep me")
    doc = project.state()
    doc["stale_entries"] = {"files": {"../outside": "k"}}
    project.state_path.write_text(json.dumps(doc))
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 1 and "could not be removed" in applied.output, applied.output
    assert outside.read_text() == "keep me" and (project.root / "secrets.d" / "K").exists()


def test_a_saved_plan_forging_a_stale_removal_removes_nothing_keyform_did_not_mark(
        vault: tuple[Project, Path]) -> None:
    """A plan file edited to remove `vault:OTHER` as a stale copy: no plan made now has that change,
    so apply refuses the file (and the applier removes only entries the state marks as stale
    copies anyway)."""
    project, store = vault
    project.write(_manifest("CI_BOT"))
    assert project.run("apply", "--auto-approve").exit_code == 0
    (store / "OTHER").write_text("someone else's")
    saved = project.root / "plan.json"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    doc = json.loads(saved.read_text())
    doc["changes"].append({"address": "ci-bot", "action": "delete", "provider": "qp", "provider_type": "questra",
                           "remote_id": project.state()["keys"]["ci-bot"]["remote_id"], "deposed": False,
                           "reasons": [], "attributes": [], "sink": "vault:OTHER", "depends_on": [], "stale": True})
    saved.write_text(json.dumps(doc))
    applied = project.run("apply", str(saved))
    assert applied.exit_code == 1, applied.output
    assert ("Saved plan: ci-bot (stale copy at vault:OTHER): it says will be removed; a plan made now has no such "
            "change") in applied.stderr, applied.output
    assert (store / "OTHER").read_text() == "someone else's" and (store / "CI_BOT").exists()


def test_a_stale_copy_is_counted_apart_from_key_deletions(vault: tuple[Project, Path]) -> None:
    """A stale copy's removal deletes no key: the plan, its JSON summary, the apply's last line and
    its change_summary event count it on its own, never under delete."""
    project, store = vault
    _move_while_sealed(project, store)

    text = project.run("plan")
    assert "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete, 1 stale secret copy to remove." in text.output
    saved = project.root / "plan.json"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    summary = json.loads(saved.read_text())["summary"]
    assert summary == {"create": 0, "update": 0, "replace": 0, "delete": 0, "noop": 1, "stale_copies": 1}
    schema = json.loads((Path(__file__).parents[1] / "schemas" / "plan.schema.json").read_text())
    jsonschema.validate(json.loads(saved.read_text()), schema)

    applied = project.run("apply", "--auto-approve", "--format", "json")
    assert applied.exit_code == 0, applied.output
    events = [json.loads(line) for line in applied.output.splitlines() if line.startswith("{")]
    assert events[-1]["type"] == "change_summary", events
    events_schema = json.loads((Path(__file__).parents[1] / "schemas" / "apply-events.schema.json").read_text())
    for event in events:
        jsonschema.validate(event, events_schema)
    assert (events[-1]["deleted"], events[-1]["stale_copies_removed"]) == (0, 1)
    assert not (store / "CI_BOT").exists()


def test_a_saved_plan_marking_a_key_change_stale_is_refused(vault: tuple[Project, Path]) -> None:
    """`stale` on anything but the removal of a sink entry makes the file no plan: on a replace it
    read "1 stale secret copy to remove" in `show` and "removed" in the apply's totals (and passed a
    `forbid_actions` policy) while the apply rotated the key."""
    project, _ = vault
    project.write(_manifest("CI_BOT"))
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = project.state()
    saved = project.root / "plan.json"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    doc = json.loads(saved.read_text())
    doc["changes"] = [{"address": "ci-bot", "action": "replace", "provider": "qp", "provider_type": "questra",
                       "remote_id": before["keys"]["ci-bot"]["remote_id"], "deposed": False,
                       "reasons": ["rotation requested"], "attributes": [], "sink": "vault:CI_BOT",
                       "depends_on": [], "stale": True}]
    saved.write_text(json.dumps(doc))
    for args in (("show", str(saved)), ("apply", str(saved))):
        res = project.run(*args)
        assert res.exit_code == 1, res.output
        assert "not a keyform plan file" in res.output and 'field "changes[0].action": \'delete\' was expected' \
            in res.output, res.output
    assert project.state() == before
    schema = json.loads((Path(__file__).parents[1] / "schemas" / "plan.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_a_forged_stale_removal_with_control_characters_never_reaches_the_terminal_raw(
        vault: tuple[Project, Path]) -> None:
    """Progress lines echo a change's address and sink from the plan file: an escape sequence planted
    there made it to the terminal of whoever applied the file (`show` already replaced them). Such a
    file, and a `stale` change without a string sink, is no plan."""
    project, store = vault
    project.write(_manifest("CI_BOT"))
    assert project.run("apply", "--auto-approve").exit_code == 0
    saved = project.root / "plan.json"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    doc = json.loads(saved.read_text())
    rid = project.state()["keys"]["ci-bot"]["remote_id"]
    forged = {"address": "ci-bot", "action": "delete", "provider": "qp", "provider_type": "questra",
              "remote_id": rid, "deposed": False, "reasons": [], "attributes": [], "depends_on": [], "stale": True}
    saved.write_text(json.dumps({**doc, "changes": [*doc["changes"], {**forged, "sink": "vault:\x1b]0;owned\x07X"}]}))
    applied = project.run("apply", str(saved))
    assert applied.exit_code == 1 and "not a keyform plan file" in applied.output, applied.output
    assert "\x1b" not in applied.output and "\x07" not in applied.output, repr(applied.output)
    assert (store / "CI_BOT").exists()
    for sink in (None, 5, ""):
        saved.write_text(json.dumps({**doc, "changes": [{**forged, "sink": sink}]}))
        res = project.run("apply", str(saved))
        assert res.exit_code == 1 and "not a keyform plan file" in res.output, res.output
