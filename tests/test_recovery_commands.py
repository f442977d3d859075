"""Issue 14 item 4: every command that writes state resolves the journal of an interrupted apply
first, on the local and the postgres backend.

The interrupted apply left: a finished create of `d` (its key live, its secret in the sink, its
state record only in the journal) and a create of `e` whose reply was lost (the key live, its id
unknown). Before the fix, `state rm|mv` saved the state, bumped its serial, and the next run
ignored the journal: `d` was created a second time (two live keys named d0). Each command must
fold `d` into the state first and leave `e`'s orphan to be revoked; `state push` refuses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.project import ORG, Project, Result
from keyform.backends.local import LocalBackend
from keyform.durations import format_time, utcnow
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.journal import Begin, Intent, Journal, Record, Sunk
from keyform.model import SinkTarget
from keyform.sinks.dotenv import DotenvSink

FIRST = """\
a: {provider: qp, name: a0}
b: {provider: qp, name: b0}
"""
LATER = FIRST + """\
d: {provider: qp, name: d0}
e: {provider: qp, name: e0}
f: {provider: qp, name: f0}
"""
DSN_ENV = "KEYFORM_PG_DSN"


class Setup:
    def __init__(self, tmp_path: Path, url: str, backend: str, dsn: str | None) -> None:
        env = {DSN_ENV: dsn} if dsn else {}
        self.project = Project(tmp_path, url, env=env)
        self.backend = backend
        self.dsn = dsn
        self.workspace = f"w{abs(hash(tmp_path)) % 10**8}"
        self.extra = (f"state:\n  backend: postgres\n  dsn: {{env: {DSN_ENV}}}\n  workspace: {self.workspace}\n"
                      if backend == "postgres" else "")

    def write(self, keys: str) -> None:
        self.project.questra(keys, extra=self.extra)

    @contextmanager
    def store(self) -> Iterator[Any]:
        if self.backend == "postgres":
            from keyform.backends.postgres import PostgresBackend

            assert self.dsn is not None
            pg = PostgresBackend(self.dsn, self.workspace)
            try:
                with pg.lock("test"):
                    yield pg
            finally:
                pg.close()
        else:
            local = LocalBackend(self.project.state_path)
            with local.lock("test"):
                yield local

    def state(self) -> Any:
        with self.store() as st:
            return st.load()

    def journal(self) -> list[Record]:
        with self.store() as st:
            return list(st.read_journal())

    def run(self, *args: str) -> Result:
        argv = list(args)
        if argv[0] in ("state", "force-unlock") and "-f" not in argv:
            argv += ["-f", str(self.project.manifest)]
        return self.project.run(*argv)


@pytest.fixture(params=["local", "postgres"])
def setup(request: pytest.FixtureRequest, tmp_path: Path, emulator: Emulator) -> Setup:
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    return Setup(tmp_path, emulator.url, request.param, dsn)


def _interrupt(s: Setup, control: EmulatorControl) -> tuple[str, str]:
    """Apply FIRST, then leave the journal of an apply killed after finishing `d` and while `e`'s
    create had no reply. Returns (d's id, e's orphan id)."""
    s.write(FIRST)
    assert s.project.run("apply", "--auto-approve").exit_code == 0
    d = control.bulk_questra(ORG, 1, prefix="d")[0]
    e = control.bulk_questra(ORG, 1, prefix="e")[0]
    DotenvSink(s.project.root / ".secrets/keys.env").write("d", "D", d["secret"])
    with s.store() as store:
        state = store.load()
        a = state.keys["a"]
        done = dataclasses.replace(a, address="d", remote_id=d["id"], attrs={"name": "d0"}, remote={"name": "d0"},
                                   sink=SinkTarget("env", "D"), created_at=d["created_at"])
        fh = store.journal_open()
        fh.append(Begin.of(state))
        journal = Journal(fh, "killed", clock=utcnow)
        seq = journal.intent("create", "d", "qp", label="d0", at=d["created_at"], match={"name": "d0"})
        journal.created(seq, d["id"])
        fh.append(Sunk(seq, at=format_time(utcnow())))  # a journal written by an earlier keyform
        journal.done(seq, key=done)
        journal.intent("create", "e", "qp", label="e0", at=format_time(utcnow()), match={"name": "e0"})
        fh.close()
    s.write(LATER)
    return d["id"], e["id"]


def _converge_and_check(s: Setup, control: EmulatorControl, d_id: str, e_id: str, *,
                        destroyed: bool = False) -> None:
    if not destroyed:
        applied = s.project.run("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        planned = s.project.run("plan", "--detailed-exitcode")
        assert planned.exit_code == 0, planned.output
    keys = {k["id"]: k for k in control.questra_keys(ORG)}
    live_d = [k for k in keys.values() if k["name"] == "d0" and not k["revoked"]]
    assert keys[e_id]["revoked"], "the orphan of the interrupted create must be revoked"
    assert s.journal() == []
    if destroyed:
        assert live_d == [] and not s.state().keys
        return
    assert [k["id"] for k in live_d] == [d_id], "d was created twice: the journal's finished create was lost"
    assert s.state().keys["d"].remote_id == d_id


def test_state_list_and_show_note_an_unrecovered_journal(setup: Setup, emu_control: EmulatorControl) -> None:
    """They read the state as stored (no lock, no recovery), so `d`, which only the journal records
    yet, is missing: they say why on stderr, as `report` does, and exit as before."""
    _interrupt(setup, emu_control)
    note = ("Warning: an apply is running, or was interrupted and left a journal (the next plan or apply "
            "recovers it); this command shows the state before that apply\n")
    listed = setup.run("state", "list")
    assert listed.exit_code == 0 and listed.stderr == note, listed.output
    assert [row.split("\t")[0] for row in listed.stdout.splitlines()] == ["a", "b"]
    shown = setup.run("state", "show", "d")
    assert shown.exit_code == 1
    assert shown.stderr == note + "Error: state show: no key 'd' in the state\n", shown.output
    shown = setup.run("state", "show", "a")
    assert shown.exit_code == 0 and shown.stderr == note and '"remote_id"' in shown.stdout, shown.output
    report = setup.project.run("report", "--no-refresh", "-f", str(setup.project.manifest))
    assert "an apply is running, or was interrupted and left a journal (the next plan or apply recovers it); " \
           "this report shows the state before that apply" in report.stdout, report.output
    converged = setup.project.run("apply", "--auto-approve")
    assert converged.exit_code == 0, converged.output
    again = setup.run("state", "list")
    assert again.exit_code == 0 and again.stderr == "", again.output


def test_state_rm_folds_the_journal_first(setup: Setup, emu_control: EmulatorControl) -> None:
    d_id, e_id = _interrupt(setup, emu_control)
    res = setup.run("state", "rm", "b")
    assert res.exit_code == 0, res.output
    st = setup.state()
    assert "b" not in st.keys and st.keys["d"].remote_id == d_id
    assert [r.address for r in setup.journal() if isinstance(r, Intent)] == ["e"]
    # b's secret stays in the file, no longer keyform's to overwrite: the user lets it go
    env = setup.project.root / ".secrets/keys.env"
    env.write_text("".join(line for line in env.read_text().splitlines(keepends=True) if not line.startswith("B=")))
    _converge_and_check(setup, emu_control, d_id, e_id)


def test_state_mv_folds_the_journal_first(setup: Setup, emu_control: EmulatorControl) -> None:
    d_id, e_id = _interrupt(setup, emu_control)
    res = setup.run("state", "mv", "d", "f")  # d's record exists only in the journal until folded
    assert res.exit_code == 0, res.output
    assert setup.state().keys["f"].remote_id == d_id
    setup.run("state", "mv", "f", "d")
    _converge_and_check(setup, emu_control, d_id, e_id)


def test_import_folds_the_journal_first(setup: Setup, emu_control: EmulatorControl) -> None:
    d_id, e_id = _interrupt(setup, emu_control)
    f = emu_control.bulk_questra(ORG, 1, prefix="f")[0]
    res = setup.project.run("import", "f", f["id"])
    assert res.exit_code == 0, res.output
    st = setup.state()
    assert st.keys["d"].remote_id == d_id and st.keys["f"].remote_id == f["id"]
    _converge_and_check(setup, emu_control, d_id, e_id)


def test_destroy_resolves_the_journal_and_revokes_the_orphan(setup: Setup, emu_control: EmulatorControl) -> None:
    d_id, e_id = _interrupt(setup, emu_control)
    res = setup.project.run("destroy", "--auto-approve")
    assert res.exit_code == 0, res.output
    assert f"{e_id} (orphan of an interrupted create of e)" in res.stdout
    _converge_and_check(setup, emu_control, d_id, e_id, destroyed=True)
    assert all(k["revoked"] for k in emu_control.questra_keys(ORG) if k["name"] != "f0")


def test_apply_resolves_the_journal(setup: Setup, emu_control: EmulatorControl) -> None:
    d_id, e_id = _interrupt(setup, emu_control)
    _converge_and_check(setup, emu_control, d_id, e_id)


def test_state_push_refuses_and_says_to_run_apply(setup: Setup, emu_control: EmulatorControl,
                                                  tmp_path: Path) -> None:
    _interrupt(setup, emu_control)
    pulled = setup.run("state", "pull")
    assert pulled.exit_code == 0, pulled.output
    source = tmp_path / "pulled.json"
    source.write_text(pulled.stdout)
    res = setup.run("state", "push", str(source))
    assert res.exit_code == 1
    assert "keyform apply" in res.stderr and "Traceback" not in res.output
    assert len(setup.journal()) > 1  # untouched


def test_an_orphan_whose_secret_is_in_the_sink_is_kept_until_its_key_is_replaced(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    """Found by a review: an apply of `--replace src` killed after writing the new key's secret to
    the sink (before `done`) leaves that key an orphan whose secret is the one in the sink; recovery
    replaces src and revokes the orphan. When that replacement failed, the orphan was revoked all
    the same: the sink held a revoked secret, and the key the state records had none there. Now the
    orphan stays until src's replacement has written over the entry."""
    project = Project(tmp_path, emulator.url)
    project.questra("src: {provider: qp, name: src, sink: {use: env, as: SRC}}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("src")
    new = emu_control.bulk_questra(ORG, 1, prefix="src")[0]  # what the killed apply's create made
    DotenvSink(project.root / ".secrets/keys.env").write("src", "SRC", new["secret"])
    store = LocalBackend(project.state_path)
    state = store.load()
    assert state is not None
    fh = store.journal_open()
    fh.append(Begin.of(state))
    journal = Journal(fh, "killed", clock=utcnow)
    seq = journal.intent("create", "src", "qp", label="src", at=new["created_at"], replaces=old,
                         match={"name": new["name"]}, entry={"sink": "env", "as": "SRC"})
    journal.created(seq, new["id"], created_at=new["created_at"])
    fh.append(Sunk(seq, at=format_time(utcnow())))
    fh.close()

    def live() -> set[str]:
        return {k["id"] for k in emu_control.questra_keys(ORG) if not k["revoked"]}

    emu_control.faults(drop_after_commit_rate=1.0)  # the recovery's replacement fails
    res = project.run("apply", "--auto-approve")
    emu_control.faults(drop_after_commit_rate=0.0)
    assert res.exit_code == 1, res.output
    assert "skipped: its secret may be the one in the sink entry env:SRC, which the replacement of src was to " \
           "write over and did not" in res.output, res.output
    assert new["id"] in live() and project.sink()["SRC"] == new["secret"]
    res = project.run("apply", "--auto-approve")  # the next apply replaces src, then revokes the orphans
    assert res.exit_code == 0, res.output
    src = project.remote_id("src")
    secrets = {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG)}
    assert live() == {src} and project.sink()["SRC"] == secrets[src] and old not in live()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
