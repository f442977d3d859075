"""An apply killed after a create's new secret reached its sink, before the change's `done`: recovery
finishes that create (rolls it forward) instead of revoking its key.

Before, the next apply revoked the key as an orphan and created (or rotated) again: a consumer that
had read the sink in between (a deploy that picked up the new secret) was left with a revoked one.
Now the `created` record carries what the `done` would record (the key, its secret's fingerprint
under the state's salt, the key it deposes); recovery reads the entry back and, only when it holds
a secret with that fingerprint and the API lists the key live with the attributes its create sent,
records the key as that `done` would have, the replaced key deposed with its grace. Otherwise (the
entry absent or holding another secret) the key is revoked as an orphan, as before. A journal
edited to name another key with a secret the state records already is refused: nothing adopted,
nothing revoked.

The killed apply is a real `keyform apply` subprocess killed with SIGKILL by its own `exec` sink's
program, right after that program stored the secret.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.project import ORG, Project
from keyform.durations import parse_time
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.state import State
from tests.test_recovery_forged_journal import two_workspaces

GRACE_NOTE = "keyform finishes that create instead of revoking a key whose secret may be in use"


def _vault(project: Project, store: Path, *, kill: bool, grace: str = "0s", readable: bool = True,
           sealed: bool = False, keyed: bool = False) -> None:
    """One Questra key q0 whose secret goes to an `exec` sink storing each entry as a file in
    `store`; with `kill`, the sink's program kills keyform (its parent) with SIGKILL once the secret
    is stored; not `readable`: the sink has no `read_command`; `sealed`: its `read_command` fails
    (exit 3), its error quoting the entry where keyform's message about it cuts the program's
    stderr (its last 800 characters: 770 more follow); `keyed`: fingerprints keyed by $FPK."""
    write = f'cat > "{store}/$KEYFORM_SINK_NAME"' + ("; kill -9 $PPID" if kill else "")
    read = f"""read_command: [sh, -c, 'cat "{store}/$KEYFORM_SINK_NAME" 2>/dev/null || true']""" if readable else ""
    if sealed:
        read = (f"""read_command: [sh, -c, 'echo sealed: $(cat "{store}/$KEYFORM_SINK_NAME") >&2; """
                """head -c 770 /dev/zero | tr "\\0" x >&2; exit 3']""")
    project.write(f"""
        version: 1
        {"state: {fingerprint_key: {env: FPK}}" if keyed else ""}
        providers:
          qp: {{type: questra, base_url: "{{url}}", token: {{env: QUESTRA_TOKEN}}, org_id: {{org}}}}
        sinks:
          vault:
            type: exec
            command: [sh, -c, '{write}']
            {read}
            remove_command: [sh, -c, 'rm -f "{store}/$KEYFORM_SINK_NAME"']
        defaults: {{sink: vault}}
        keys:
          q0: {{provider: qp, name: q0, rotation: {{grace: {grace}}}}}
        """)


def _killed_after_the_sink_write(project: Project, store: Path, *args: str, grace: str = "0s") -> None:
    """`keyform apply --auto-approve ARGS` as a subprocess, killed by its sink's program once q0's
    new secret is stored; the manifests then get a sink that only stores."""
    _vault(project, store, kill=True, grace=grace)
    killed = project.run_process("apply", "--auto-approve", *args)
    assert killed.exit_code == -9, killed.tail()
    assert project.journal_path.exists()
    _vault(project, store, kill=False, grace=grace)


def _a_vault(tmp_path: Path, make_emulator: Callable[..., Emulator]) -> tuple[EmulatorControl, Project, Path]:
    """A fresh emulator, its control, a project and the empty store of its `exec` sink (`_vault`)."""
    emu = make_emulator()
    store = tmp_path / "store"
    store.mkdir()
    return EmulatorControl(emu.url), Project(tmp_path / "proj", emu.url), store


def _rotation_killed_after_the_sink_write(control: EmulatorControl, project: Project,
                                          store: Path) -> tuple[str, dict[str, Any]]:
    """q0 made (grace 2h), then `apply --replace q0` killed once its new secret is stored: (the old
    key's id, the new key as the emulator lists it)."""
    _vault(project, store, kill=False, grace="2h")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("q0")
    _killed_after_the_sink_write(project, store, "--replace", "q0", grace="2h")
    return old, _new_key(control, {old})


def _keys(control: EmulatorControl) -> dict[str, dict[str, Any]]:
    return {k["id"]: k for k in control.questra_keys(ORG)}


def _new_key(control: EmulatorControl, before: set[str]) -> dict[str, Any]:
    made = [k for i, k in _keys(control).items() if i not in before]
    assert len(made) == 1, made
    return made[0]


def _plans_the_roll_forward(project: Project, key_id: str) -> None:
    """Every plan format shows the roll forward, and none plans a revocation; nothing is written."""
    state = project.state_path.read_bytes() if project.state_path.exists() else None
    journal = project.journal_path.read_bytes()
    text = project.run("plan", "--detailed-exitcode")
    # 2: only `apply` records the key, and a pipeline that applies on changes only must apply (it was 0)
    assert text.exit_code == 2, text.output
    assert GRACE_NOTE in text.stdout and f"records {key_id} as q0" in text.stdout, text.stdout
    assert "No changes to keys, but the state does not record yet what an interrupted apply did" in text.stdout
    assert "orphan of an interrupted create" not in text.stdout, text.stdout
    markdown = project.run("plan", "--format", "markdown")
    assert GRACE_NOTE in markdown.stdout, markdown.stdout
    shown = json.loads(project.run("plan", "--format", "json").stdout)
    assert any(GRACE_NOTE in n and key_id in n for n in shown["notes"]), shown["notes"]
    assert not any(c.get("orphan") for c in shown["changes"]), shown["changes"]
    assert shown["state"]["unsaved_changes"] is True, shown["state"]
    assert project.journal_path.read_bytes() == journal
    assert (project.state_path.read_bytes() if project.state_path.exists() else None) == state


def _settled(project: Project) -> None:
    again = project.run("plan", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert not project.journal_path.exists()


def test_a_create_killed_after_its_sink_write_is_finished_not_revoked(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    control, project, store = _a_vault(tmp_path, make_emulator)
    _killed_after_the_sink_write(project, store)  # the first apply: no state saved yet
    made = _new_key(control, set())
    assert (store / "Q0").read_text() == made["secret"]

    _plans_the_roll_forward(project, made["id"])
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert project.state()["keys"]["q0"]["remote_id"] == made["id"]
    assert _keys(control) == {made["id"]: made}  # not revoked, and no other key made
    assert (store / "Q0").read_text() == made["secret"]  # what a consumer read is still live
    _settled(project)
    assert made["secret"] not in applied.output


def test_a_rotation_killed_after_its_sink_write_is_finished_and_the_old_key_deposed_with_its_grace(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    control, project, store = _a_vault(tmp_path, make_emulator)
    old, made = _rotation_killed_after_the_sink_write(control, project, store)
    created = next(r for r in project.journal_records() if r["op"] == "created")

    _plans_the_roll_forward(project, made["id"])
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    state = project.state()
    assert state["keys"]["q0"]["remote_id"] == made["id"]
    deposed, = state["deposed"]
    assert deposed["remote_id"] == old
    # its grace counted from the killed apply's create, as that apply would have
    assert parse_time(deposed["revoke_after"]) - parse_time(created["at"]) == \
        parse_time("2026-01-01T02:00:00Z") - parse_time("2026-01-01T00:00:00Z")
    keys = _keys(control)
    assert not keys[old]["revoked"] and not keys[made["id"]]["revoked"]
    assert set(keys) == {old, made["id"]}
    assert (store / "Q0").read_text() == made["secret"]
    _settled(project)


@pytest.mark.parametrize("entry", ["holds another secret", "is missing", "cannot be read back"])
def test_a_create_whose_entry_does_not_hold_its_secret_is_revoked_as_before(
        tmp_path: Path, make_emulator: Callable[..., Emulator], entry: str) -> None:
    control, project, store = _a_vault(tmp_path, make_emulator)
    _killed_after_the_sink_write(project, store)
    made = _new_key(control, set())
    if entry == "is missing":
        (store / "Q0").unlink()
    elif entry == "holds another secret":
        (store / "Q0").write_text("sk_someone_else_wrote_this_0123456789")
    else:  # (the sink's read_command removed from the manifests)
        _vault(project, store, kill=False, readable=False)

    planned = project.run("plan")
    assert f"{made['id']} (orphan of an interrupted create of q0) will be revoked" in planned.stdout, planned.output
    assert GRACE_NOTE not in planned.stdout
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    keys = _keys(control)
    assert keys[made["id"]]["revoked"]
    now = project.remote_id("q0")
    assert now != made["id"] and (store / "Q0").read_text() == keys[now]["secret"]
    _settled(project)


def test_a_rotation_whose_entry_cannot_be_read_now_is_neither_finished_nor_revoked(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    """The vault is sealed when the next plan reads q0's entry back: its `read_command` fails (its
    error quoting what the entry holds). Before, the new key was revoked as an orphan under any
    consumer that had read the entry, and q0 rotated again (into a vault that may take no write).
    Now that create is kept journaled, neither finished nor revoked, a note says why (never the
    secret), and nothing else is planned for q0; once the vault reads again, the rotation is finished."""
    control, project, store = _a_vault(tmp_path, make_emulator)
    old, made = _rotation_killed_after_the_sink_write(control, project, store)
    _vault(project, store, kill=False, grace="2h", sealed=True)

    for command in (("plan",), ("apply", "--auto-approve")):
        ran = project.run(*command)
        assert ran.exit_code == 0, ran.output
        assert f"{made['id']} and may have written its secret to vault:Q0, which cannot be read back now" in \
            ran.stdout, ran.stdout
        assert "orphan of an interrupted create" not in ran.stdout and GRACE_NOTE not in ran.stdout, ran.stdout
        assert "No changes" in ran.stdout, ran.stdout
        assert not any(made["secret"][i:i + 16] in ran.output for i in range(len(made["secret"]) - 15)), ran.output
    keys = _keys(control)
    assert set(keys) == {old, made["id"]} and not keys[old]["revoked"] and not keys[made["id"]]["revoked"]
    assert project.remote_id("q0") == old and project.journal_path.exists()
    # a rekey would leave the journaled fingerprint under the old mode: no later read could match it
    _vault(project, store, kill=False, grace="2h", sealed=True, keyed=True)
    kept = project.state_path.read_bytes(), project.journal_path.read_bytes()
    rekey = project.run("state", "rekey", "-f", str(project.manifest), env={"FPK": "0123456789abcdef" * 2})
    assert rekey.exit_code == 1 and "the journal keeps the fingerprint of the secret" in rekey.stderr, rekey.output
    assert (project.state_path.read_bytes(), project.journal_path.read_bytes()) == kept

    _vault(project, store, kill=False, grace="2h")  # unsealed
    _plans_the_roll_forward(project, made["id"])
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.remote_id("q0") == made["id"] and [d["remote_id"] for d in project.state()["deposed"]] == [old]
    _settled(project)


@pytest.mark.parametrize("forged", ["another key's attributes", "a secret the state records"])
def test_a_journal_edited_to_adopt_another_workspaces_key_adopts_and_revokes_nothing(
        tmp_path: Path, make_emulator: Callable[..., Emulator], forged: str) -> None:
    """A pull request edits `mine`'s journal: a create of a2 whose `created` record names `theirs`'s
    key b1, with the fingerprint of a secret that mine's sink holds.

    - with a2's own name in the intent, the API lists b1 with another: refused, as before (a secret
      put in the entry A2 stands in for one the forger knows);
    - with b1's name copied into the intent (it passes the attribute check), and the fingerprint of
      a1's secret, which the state records (its salt is committed: anyone can copy both): the
      fingerprint gives it away. Before, b1 was revoked as an orphan; rolled forward, it would be
      adopted as a2."""
    control, mine, theirs = two_workspaces(tmp_path, make_emulator)
    state = mine.state()
    victim, a1 = theirs.remote_id("b1"), state["keys"]["a1"]
    salted = State(state["lineage"], state["serial"], state["fingerprint_salt"])
    if forged == "another key's attributes":
        name, entry = "a-two", "A2"
        mine.sink_path.write_text(mine.sink_path.read_text() + "A2=sk_forged_entry_0123456789abcdef\n")
        fingerprint = salted.secret_fingerprint("sk_forged_entry_0123456789abcdef")
        said = "the API lists that key with another name than that create sent"
    else:
        name, entry = "b-one", "A1"
        fingerprint = salted.secret_fingerprint(mine.sink()["A1"])
        assert fingerprint == a1["secret_fingerprint"]
        said = "issued it a secret that the state records for another key"
    mine.questra(f"a1: {{provider: qp, name: a-one}}\na2: {{provider: qp, name: {name}}}\n")
    key = {**a1, "remote_id": victim, "attributes": {"name": name}, "remote_attributes": {"name": name},
           "sink": {"sink": "env", "as": entry}, "secret_fingerprint": fingerprint}
    records = [{"op": "begin", "lineage": state["lineage"], "serial": state["serial"]},
               {"op": "intent", "seq": "r1.1", "action": "create", "address": "a2", "provider": "qp",
                "at": a1["created_at"], "match": {"name": name}, "entry": {"sink": "env", "as": entry}},
               {"op": "created", "seq": "r1.1", "remote_id": victim, "address": "a2", "key": key}]
    mine.journal_path.write_text("".join(json.dumps(r) + "\n" for r in records))

    planned = mine.run("plan")
    assert planned.exit_code == 0 and said in planned.stdout, planned.output
    assert "orphan of an interrupted create" not in planned.stdout and GRACE_NOTE not in planned.stdout, \
        planned.stdout
    applied = mine.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert not _keys(control)[victim]["revoked"]
    after = mine.state()
    assert victim not in {k["remote_id"] for k in after["keys"].values()} | {d["remote_id"] for d in after["deposed"]}
    assert theirs.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_forged_create_copying_the_fingerprint_another_created_record_carries_adopts_nothing(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    """`mine`'s apply creating a2 was killed once a2's secret was in the entry A2: its `created`
    record carries that secret's fingerprint, which the state does not record. A pull request puts
    a create of `zz` first, naming `theirs`'s key b1 (its name copied into the intent), entry A2 and
    that fingerprint. Before, b1 was adopted as zz (the entry holds that secret), and the next apply
    destroyed zz, which no manifest declares: b1 revoked. Now a fingerprint two creates' records
    carry is no create's: both kept, neither adopted nor revoked."""
    control, mine, theirs = two_workspaces(tmp_path, make_emulator)
    state = mine.state()
    victim, a1 = theirs.remote_id("b1"), state["keys"]["a1"]
    salted = State(state["lineage"], state["serial"], state["fingerprint_salt"])
    issued = "sk_live_the_killed_create_wrote_0123456789"  # (a2's key itself is gone: not listed)
    mine.sink_path.write_text(mine.sink_path.read_text() + f"A2={issued}\n")
    fingerprint = salted.secret_fingerprint(issued)
    mine.questra("a1: {provider: qp, name: a-one}\na2: {provider: qp, name: a-two}\n")

    def create(seq: str, address: str, name: str, remote_id: str) -> list[dict[str, Any]]:
        entry = {"sink": "env", "as": "A2"}
        key = {**a1, "remote_id": remote_id, "attributes": {"name": name}, "remote_attributes": {"name": name},
               "sink": entry, "secret_fingerprint": fingerprint}
        return [{"op": "intent", "seq": seq, "action": "create", "address": address, "provider": "qp",
                 "at": a1["created_at"], "match": {"name": name}, "entry": entry},
                {"op": "created", "seq": seq, "remote_id": remote_id, "address": address, "key": key}]

    records = [{"op": "begin", "lineage": state["lineage"], "serial": state["serial"]},
               *create("r1.1", "zz", "b-one", victim), *create("r1.2", "a2", "a-two", "ak_killed_create_01")]
    mine.journal_path.write_text("".join(json.dumps(r) + "\n" for r in records))

    planned = mine.run("plan")
    assert planned.exit_code == 0, planned.output
    assert "that another interrupted create of that journal says it issued" in planned.stdout, planned.stdout
    assert GRACE_NOTE not in planned.stdout and f"[id={victim}]" not in planned.stdout, planned.stdout
    applied = mine.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert not _keys(control)[victim]["revoked"]
    after = mine.state()
    assert victim not in {k["remote_id"] for k in after["keys"].values()} | {d["remote_id"] for d in after["deposed"]}
    assert theirs.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_create_is_finished_only_when_every_part_of_it_is_proven() -> None:
    """`recovery._roll_forward` on its own: the rotation of ci-bot (ak_0 → ak_1), its entry holding
    ak_1's secret, is finished (ak_1 recorded, ak_0 deposed as its `created` record says); each
    part of the proof missing leaves it an orphan (None), the state untouched."""

    from keyform.journal import Interrupted
    from keyform.model import SinkTarget
    from keyform.recovery import _roll_forward
    from keyform.remote import RemoteKey
    from keyform.state import DeposedKey
    from tests.factories import questra_key, recorded, state_with

    secret = "sk_live_0123456789abcdefghijklmnop"
    spec = questra_key("ci-bot", "CI")
    new = replace(recorded(spec, "ak_1"), secret_fingerprint=state_with().secret_fingerprint(secret))
    dep = DeposedKey("ci-bot", "qp", "questra", "ak_0", "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z")
    details = {"at": "2026-01-01T00:00:00Z", "replaces": "ak_0", "match": {"name": "CI"},
               "entry": {"sink": "env", "as": "CI_BOT"}}
    it = Interrupted("r.1", "create", "ci-bot", "qp", details, remote_id="ak_1", key=new, deposed=dep)
    listed = [RemoteKey(id="ak_1", attrs={"name": "CI"})]

    def outcome(it: Interrupted = it, listing: list[RemoteKey] | None = listed, held: str | None = secret,
                current: str = "ak_0") -> tuple[Any, Any]:
        state = state_with(recorded(spec, current))
        found = _roll_forward(it, state, "questra", lambda p: listing, lambda entry, fingerprint: held)
        return found, state

    found, state = outcome()
    assert isinstance(found, str) and "records ak_1 as ci-bot, and deposes ak_0" in found
    assert state.keys["ci-bot"] == new and state.deposed == [dep]
    unproven = {
        "the entry holds another secret": outcome(held="sk_live_another_secret_0123456789"),
        "the entry is empty": outcome(held=None),
        "the provider cannot list keys": outcome(listing=None),
        "the key is not listed": outcome(listing=[]),
        "the key is listed revoked": outcome(listing=[RemoteKey(id="ak_1", attrs={"name": "CI"}, revoked=True)]),
        "the address holds another key now": outcome(current="ak_9"),
        "the key record has other attributes": outcome(
            replace(it, key=replace(new, attrs={"name": "other"}))),
        "the key record has another entry": outcome(
            replace(it, key=replace(new, sink=SinkTarget("env", "OTHER")))),
        "the key record is of another provider": outcome(replace(it, key=replace(new, provider="qp2"))),
        "an earlier keyform's created record": outcome(replace(it, key=None, deposed=None)),
        "a rotation that deposes nothing": outcome(replace(it, deposed=None)),
    }
    for why, (found, state) in unproven.items():
        assert found is None, why
        assert state.keys["ci-bot"].remote_id != "ak_1" and state.deposed == [], why


def test_a_sink_read_that_fails_or_gives_no_text_keeps_the_create_and_one_that_cannot_read_revokes_it() -> None:
    """`_roll_forward` when reading the entry back fails: a sink that cannot give a secret back at
    all (`EntryUnreadable`) leaves the key an orphan, as before; any other failure, a plug-in's
    `sys.exit()` included (before, it ended keyform there, with the plug-in's exit status), keeps
    the create (`_Held`), the state untouched; a plug-in's read that returns bytes is such a
    failure (`operations._read_entry`), never remembered as a secret nor fingerprinted."""
    from types import SimpleNamespace
    from typing import cast

    from keyform import redact
    from keyform.errors import SinkError
    from keyform.journal import Interrupted
    from keyform.model import SinkTarget
    from keyform.operations import Session, _read_entry
    from keyform.recovery import EntryUnreadable, _Held, _roll_forward
    from keyform.remote import RemoteKey
    from tests.factories import questra_key, recorded, state_with

    secret = "sk_live_0123456789abcdefghijklmnop"
    spec = questra_key("ci-bot", "CI")
    new = replace(recorded(spec, "ak_1"), secret_fingerprint=state_with().secret_fingerprint(secret))
    details = {"at": "2026-01-01T00:00:00Z", "match": {"name": "CI"}, "entry": {"sink": "env", "as": "CI_BOT"}}
    it = Interrupted("r.1", "create", "ci-bot", "qp", details, remote_id="ak_1", key=new)

    def outcome(error: BaseException) -> object:
        def read(entry: SinkTarget, fingerprint: str) -> str | None:
            raise error
        state = state_with()
        found = _roll_forward(it, state, "questra", lambda p: [RemoteKey(id="ak_1", attrs={"name": "CI"})], read)
        assert "ci-bot" not in state.keys
        return found

    assert outcome(EntryUnreadable("sink env cannot be read back")) is None
    for error in (SinkError(f"vault sealed: {secret}"), SystemExit(0), RuntimeError("plug-in bug")):
        held = outcome(error)
        assert isinstance(held, _Held) and "cannot be read back now" in held.why, error
        assert secret not in held.why

    class BytesSink:
        readable = True

        def read(self, name: str) -> object:
            return secret.encode()

    sinks = SimpleNamespace(readable=lambda: frozenset({"env"}), get=lambda name: BytesSink())
    sess = cast(Session, SimpleNamespace(workspace=SimpleNamespace(sinks={"env": object()}), sinks=sinks,
                                         state=state_with()))
    with pytest.raises(SinkError, match="returned a bytes, not text"):
        _read_entry(sess, SinkTarget("env", "CI_BOT"), str(new.secret_fingerprint))
    with pytest.raises(EntryUnreadable):
        _read_entry(sess, SinkTarget("gone", "CI_BOT"), str(new.secret_fingerprint))
    redact.watch(str, [])  # (what `_read_entry` watched for: no other test's)
