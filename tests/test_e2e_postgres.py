"""keyform end to end with `state: {backend: postgres}`: the CLI against the emulator, the state in the
tests' own PostgreSQL cluster. In-process runs (click's CliRunner) for the commands; subprocesses for
two applies at once and for kill -9 of an apply holding the lock."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.project import ORG, TOKENS, Project, Result
from keyform.backends.local import LocalBackend
from keyform.backends.postgres import PostgresBackend
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.journal import Begin
from keyform.sinks.dotenv import DotenvSink
from keyform.state import State
from tests.pgcluster import PASSWORD, PgCluster, running_cluster
from tests.test_backend_postgres import SPECIAL_PASSWORDS, assert_no_piece

DSN_ENV = "KEYFORM_PG_DSN"
KEYS = """\
ci-bot:
  provider: qp
  name: CI bot
web:
  provider: qp
  name: Web key
"""


def pg_state(workspace: str) -> str:
    return f"state:\n  backend: postgres\n  dsn: {{env: {DSN_ENV}}}\n  workspace: {workspace}\n"


class PgProject(Project):
    """A Project whose manifest keeps its state in postgres (workspace `self.workspace`)."""

    def __init__(self, root: Path, url: str, dsn: str) -> None:
        super().__init__(root, url, env={DSN_ENV: dsn})
        self.dsn = dsn
        self.workspace = f"e2e-{uuid.uuid4().hex[:8]}"

    def use_postgres(self, keys: str = KEYS) -> None:
        self.questra(keys, extra=pg_state(self.workspace))

    def use_local(self, keys: str = KEYS) -> None:
        self.questra(keys)

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        res = super().run(*args, input=input, env=env)
        assert PASSWORD not in res.output and self.dsn not in res.output
        return res

    def cmd(self, *args: str) -> Result:
        """A command that takes -f (state, force-unlock) with this project's manifest."""
        return self.run(*args, "-f", str(self.manifest))

    def pg(self) -> PostgresBackend:
        return PostgresBackend(self.dsn, self.workspace)

    def pg_state(self) -> State | None:
        backend = self.pg()
        try:
            return backend.load()
        finally:
            backend.close()


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator, pg_dsn: str) -> PgProject:
    p = PgProject(tmp_path, emulator.url, pg_dsn)
    p.use_postgres()
    return p


def sql(dsn: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return list(cur.fetchall()) if cur.description else []


# -------------------------------------------------------------------------------------- commands


def test_apply_plan_and_state_commands_keep_the_state_in_postgres(project: PgProject,
                                                                  emu_control: EmulatorControl) -> None:
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Apply complete: 2 created" in applied.stdout
    assert not project.state_path.exists()  # nothing local but the sink
    assert not list(project.root.glob("keyform.state.json*"))
    state = project.pg_state()
    assert state is not None and set(state.keys) == {"ci-bot", "web"} and state.serial == 1
    secrets = {k["id"]: k["secret"] for k in emu_control.questra_keys(ORG)}
    assert project.sink()["CI_BOT"] == secrets[state.keys["ci-bot"].remote_id]
    [(text,)] = sql(project.dsn, "SELECT state FROM keyform_states WHERE workspace = %s", project.workspace)
    assert not any(secret in text for secret in secrets.values())
    assert sql(project.dsn, "SELECT count(*) FROM keyform_journal") == [(0,)]  # compacted after the apply
    assert sql(project.dsn, "SELECT count(*) FROM keyform_locks") == [(0,)]

    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    listed = project.cmd("state", "list")
    assert listed.exit_code == 0 and listed.stdout.splitlines() == [
        f"ci-bot\tqp\t{state.keys['ci-bot'].remote_id}", f"web\tqp\t{state.keys['web'].remote_id}"]
    shown = project.cmd("state", "show", "web")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["remote_id"] == state.keys["web"].remote_id
    moved = project.cmd("state", "mv", "web", "web2")
    assert moved.exit_code == 0, moved.output
    removed = project.cmd("state", "rm", "ci-bot")
    assert removed.exit_code == 0, removed.output
    after = project.pg_state()
    assert after is not None and set(after.keys) == {"web2"} and after.serial == 3

    pulled = project.cmd("state", "pull")
    assert pulled.exit_code == 0
    assert pulled.stdout == after.dumps()


def test_a_missing_dsn_variable_is_an_error_at_its_manifest_line(project: PgProject) -> None:
    res = project.run("plan", env={DSN_ENV: ""})
    assert res.exit_code == 1
    assert f"keyform.yaml:16: state.dsn: environment variable {DSN_ENV} is set but empty" in res.stderr, res.output


@pytest.mark.parametrize("bad", ["host=127.0.0.1 password={canary} dbname", "postgresql://keyform:{canary}@h/db?bogus=1",
                                 "postgresql://keyform:{canary}@h/db?{canary}"])
def test_an_invalid_dsn_is_an_error_at_its_manifest_line_naming_its_variable(project: PgProject, bad: str) -> None:
    """It was `Error: env:KEYFORM_PG_DSN: not a valid ...`, unlike the DSN's other errors: now the
    manifest line of `state.dsn` and where the value was read, never the value."""
    canary = "dsn-canary-" + uuid.uuid4().hex[:8]
    for args in (("plan",), ("plan", "-v")):
        res = project.run(*args, env={DSN_ENV: bad.format(canary=canary)})
        assert res.exit_code == 1
        assert (f"Error: {project.manifest}:16: state.dsn: environment variable {DSN_ENV} does not hold a valid "
                "PostgreSQL connection string (libpq key=value pairs or a postgresql:// URI)\n") in res.stderr, res.output
        assert canary not in res.output and f"env:{DSN_ENV}" not in res.output
        assert canary not in res.output


def test_an_unreachable_database_is_an_error_without_the_password(project: PgProject) -> None:
    bad = f"postgresql://keyform:{PASSWORD}@127.0.0.1:1/nowhere"
    res = project.run("plan", env={DSN_ENV: bad})
    assert res.exit_code == 1
    assert 'postgres workspace "' in res.stderr and "(database nowhere on 127.0.0.1:1): cannot connect" in res.stderr
    assert PASSWORD not in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("password", SPECIAL_PASSWORDS)
def test_a_uri_password_with_unencoded_special_characters_is_never_printed(project: PgProject, pg_cluster: Any,
                                                                           password: str) -> None:
    """`KEYFORM_PG_DSN='postgresql://keyform:Xy7kQ9#pL2/mN4@HOST:PORT/DB' keyform plan` printed
    `(database mN4@HOST:PORT/DB on keyform:Xy7kQ9#pL2)`: no piece of such a password is printed by any
    command, on stdout or stderr, with -v or without, and the error says to percent-encode it."""
    dsn = f"postgresql://keyform:{password}@127.0.0.1:{pg_cluster.port}/postgres"
    manifest = str(project.manifest)
    for args in (("plan",), ("plan", "-v"), ("apply", "--auto-approve", "-v"), ("state", "list", "-v"),
                 ("state", "pull"), ("force-unlock", "-v", "0" * 32)):
        res = project.run_process(*args, "-f", manifest, env={DSN_ENV: dsn})
        assert res.exit_code == 1, res.tail()
        assert_no_piece(password, res.stdout + "\n" + res.stderr)
        assert "***" not in res.output, res.tail()
        assert ("Traceback" in res.stderr) == ("-v" in args), res.tail()  # -v shows it: its code, no value
        assert f'Error: postgres workspace "{project.workspace}" (the database state.dsn names): ' in res.stderr or \
            (f"keyform.yaml:16: state.dsn: environment variable {DSN_ENV} does not hold a valid PostgreSQL "
             "connection string") in res.stderr, res.tail()
        assert "must be percent-encoded (%2F %40 %23 %3F)" in res.stderr, res.tail()


def test_a_lock_timeout_of_more_than_24_days_works(project: PgProject) -> None:
    """`keyform plan --lock-timeout 30d` failed on postgres with the lock free: `cannot take the state
    lock: invalid value for parameter "lock_timeout": "2592000000"` (PostgreSQL stops at ~24.8 days)."""
    for timeout in ("30d", "36500d"):
        res = project.run("plan", "--lock-timeout", timeout)
        assert res.exit_code == 0, res.output
        assert "lock_timeout" not in res.output
    res = project.run("apply", "--auto-approve", "--lock-timeout", "30d")
    assert res.exit_code == 0 and "Apply complete: 2 created" in res.stdout, res.output


def test_a_state_or_journal_larger_than_the_cap_is_one_clear_error(project: PgProject,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As with the local backend's 256 MiB files (lowered here to 64 KiB): refused unread, by every
    command that reads it, in one message naming the row."""
    from keyform.backends import postgres

    assert project.run("apply", "--auto-approve").exit_code == 0
    monkeypatch.setattr(postgres, "MAX_STATE_BYTES", 64 * 1024, raising=False)
    assert project.run("plan").exit_code == 0
    sql(project.dsn, "UPDATE keyform_states SET state = state || repeat(' ', 70000) WHERE workspace = %s",
        project.workspace)
    for args in (("plan",), ("apply", "--auto-approve"), ("state", "list", "-f", str(project.manifest))):
        res = project.run(*args)
        assert res.exit_code == 1, res.output
        assert f'Error: postgres workspace "{project.workspace}" (database ' in res.stderr
        assert ": the state is larger than 65536 bytes (" in res.stderr, res.stderr
        assert "keyform will not read it (its rows in keyform_states" in res.stderr, res.stderr
    sql(project.dsn, "UPDATE keyform_states SET state = rtrim(state) WHERE workspace = %s", project.workspace)
    sql(project.dsn, "INSERT INTO keyform_journal (workspace, record) VALUES (%s, repeat('x', 70000))",
        project.workspace)
    res = project.run("plan")
    assert res.exit_code == 1 and "the apply journal is larger than" in res.stderr, res.output
    assert "keyform will not read it (its rows in keyform_journal" in res.stderr, res.stderr


def test_a_lock_record_larger_than_its_cap_is_one_clear_error_and_nothing_is_written(project: PgProject) -> None:
    """A broken or hostile `keyform_locks` row (a 16 MiB host name) was read whole by every command that
    takes the lock, and `plan` went on: it is refused unread past 64 KiB, in one message naming the
    row, exit 1, nothing written (no state, no journal, the row as it was)."""
    project.pg().read_journal()  # the tables exist
    sql(project.dsn, "INSERT INTO keyform_locks VALUES (%s, 'broken-lock', 4242, repeat('h', 16 * 1024 * 1024), "
                     "'apply', '2027-01-01T00:00:00Z', '0.1.0', 999999)", project.workspace)
    for args in (("plan",), ("apply", "--auto-approve"), ("apply", "--auto-approve", "-v"),
                 ("force-unlock", "broken-lock", "-f", str(project.manifest))):
        res = project.run(*args)
        assert res.exit_code == 1, res.output
        [error] = [line for line in res.stderr.splitlines() if line.startswith("Error: ")]
        assert error.startswith(f'Error: postgres workspace "{project.workspace}" (database '), error
        assert (f": the lock record is larger than 65536 bytes ({16 * 1024 * 1024 + 41} bytes), more than any "
                "keyform lock holder's details; keyform will not read it (its row in keyform_locks, workspace "
                f"'{project.workspace}')") in error, error
        assert "hhhh" not in res.output and "created" not in res.stdout
    assert project.pg_state() is None and project.pg().read_journal() == []
    assert sql(project.dsn, "SELECT lock_id, octet_length(host) FROM keyform_locks WHERE workspace = %s",
               project.workspace) == [("broken-lock", 16 * 1024 * 1024)]
    sql(project.dsn, "DELETE FROM keyform_locks WHERE workspace = %s", project.workspace)
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0 and "Apply complete: 2 created" in res.stdout, res.output


def test_push_moves_a_local_state_into_postgres_and_pull_brings_it_back(project: PgProject,
                                                                        emu_control: EmulatorControl) -> None:
    project.use_local()
    assert project.run("apply", "--auto-approve").exit_code == 0
    local = json.loads(project.state_path.read_text())
    creates = emu_control.requests()["questra.create"]

    project.use_postgres()
    # an empty backend would create every key again, over the .env entries it has no record of: refused
    empty = project.run("plan", "--detailed-exitcode")
    assert empty.exit_code == 1 and "already holds CI_BOT" in empty.stderr, empty.output
    pushed = project.cmd("state", "push", str(project.state_path))
    assert pushed.exit_code == 0, pushed.output
    assert f"(serial {local['serial'] + 1}, lineage {local['lineage']})" in pushed.stdout
    state = project.pg_state()
    assert state is not None and state.lineage == local["lineage"] and state.serial == local["serial"] + 1
    assert project.run("plan", "--detailed-exitcode").exit_code == 0  # the keys are known: nothing to do
    assert emu_control.requests()["questra.create"] == creates

    # the backend now has a newer serial than the file: pushing the file again would lose it
    again = project.cmd("state", "push", str(project.state_path))
    assert again.exit_code == 1
    assert f"refusing to push: it holds a newer state (serial {local['serial'] + 1}" in again.stderr

    # postgres -> local: pull into a file, push it into another local state with --state
    pulled = project.cmd("state", "pull")
    copy = project.root / "pulled.json"
    copy.write_text(pulled.stdout)
    other = project.root / "other.state.json"
    into_local = project.run("state", "push", str(copy), "--state", str(other))
    assert into_local.exit_code == 0, into_local.output
    moved = LocalBackend(other).load()
    assert moved is not None and moved.lineage == local["lineage"] and set(moved.keys) == {"ci-bot", "web"}


def test_push_refuses_another_lineage_unless_forced(project: PgProject) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    stranger = project.root / "stranger.json"
    LocalBackend(stranger).save(State.new())
    refused = project.cmd("state", "push", str(stranger))
    assert refused.exit_code == 1
    assert "refusing to push: it holds a state of another lineage" in refused.stderr
    assert "Use --force to push anyway." in refused.stderr
    current = project.pg_state()
    assert current is not None and set(current.keys) == {"ci-bot", "web"}

    forced = project.cmd("state", "push", str(stranger), "--force")
    assert forced.exit_code == 0, forced.output
    assert "pushed anyway (--force): it holds a state of another lineage" in forced.stderr
    replaced = project.pg_state()
    assert replaced is not None and replaced.keys == {} and replaced.serial == current.serial + 1


def test_push_refuses_a_local_state_with_an_unrecovered_journal(project: PgProject) -> None:
    source = project.root / "old.state.json"
    store = LocalBackend(source)
    store.save(State.new())
    with store.journal_open() as journal:
        journal.append(Begin("x", 1))
    res = project.cmd("state", "push", str(source))
    assert res.exit_code == 1 and "an interrupted apply left" in res.stderr and "--force" in res.stderr
    assert project.pg_state() is None


def test_state_pull_without_a_state_fails(project: PgProject) -> None:
    res = project.cmd("state", "pull")
    assert res.exit_code == 1 and "there is no state yet" in res.stderr and res.stdout == ""


def test_force_unlock_on_the_command_line(project: PgProject) -> None:
    holder = project.pg()
    info = holder.acquire_lock("apply")
    try:
        locked = project.run("plan", "--lock-timeout", "1s")
        assert locked.exit_code == 1
        assert f'state is locked by pid {os.getpid()} on' in locked.stderr and f"lock ID {info.id}" in locked.stderr
        live = project.cmd("force-unlock", info.id)
        assert live.exit_code == 1 and "but the state is still locked" in live.stderr
        assert "pg_terminate_backend(" in live.stderr
    finally:
        holder.release_lock(info)
        holder.close()
    # a stale record (its session gone) is what force-unlock is for: it clears it
    sql(project.dsn, "INSERT INTO keyform_locks VALUES (%s, 'dead-lock-id', 4242, 'gone-host', 'apply', "
                     "'2027-01-01T00:00:00Z', '0.1.0', 999999)", project.workspace)
    cleared = project.cmd("force-unlock", "dead-lock-id")
    assert cleared.exit_code == 0, cleared.output
    assert "unlocked (lock ID dead-lock-id)" in cleared.stdout
    assert project.run("apply", "--auto-approve").exit_code == 0


# ------------------------------------------------------------------------------- two processes


KEYFORM = (sys.executable, "-m", "keyform")
COMMAND_TIMEOUT = 180.0
N_KEYS = 6


def subprocess_project(root: Path, url: str, dsn: str, n_keys: int = N_KEYS) -> tuple[dict[str, str], str]:
    """A manifest of `n_keys` Questra keys with postgres state; returns (env, workspace)."""
    workspace = f"proc-{uuid.uuid4().hex[:8]}"
    keys = "".join(f"k{i}:\n  provider: qp\n  name: key {i}\n" for i in range(n_keys))
    body = textwrap.dedent(f"""\
        version: 1
        {pg_state(workspace).replace(chr(10), chr(10) + '        ')}
        providers:
          qp:
            type: questra
            base_url: {url}
            token: {{env: QUESTRA_TOKEN}}
            org_id: {ORG}
        sinks:
          env:
            type: dotenv
            path: .secrets/keys.env
        defaults:
          sink: env
        keys:
        """) + textwrap.indent(keys, "  ")
    (root / "keyform.yaml").write_text(body)
    prepare = PostgresBackend(dsn, workspace)
    prepare.read_journal()  # the tables exist before the test looks at them
    prepare.close()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QUESTRA_", "TEXTQL_"))}
    return {**base, **TOKENS, DSN_ENV: dsn, "NO_COLOR": "1"}, workspace


def spawn(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*KEYFORM, *args], cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KEYFORM, *args], cwd=root, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT, check=False)


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def lock_holder(dsn: str, workspace: str) -> tuple[Any, ...] | None:
    rows = sql(dsn, "SELECT lock_id, pid, operation FROM keyform_locks WHERE workspace = %s", workspace)
    return rows[0] if rows else None


def creates(control: EmulatorControl) -> int:
    return int(control.requests().get("questra.create", 0))


def check_converged(root: Path, dsn: str, workspace: str, control: EmulatorControl, n_keys: int = N_KEYS) -> list[str]:
    """The invariants after convergence: the state holds every key once, each active remote key is
    in the state (no orphan), each sink entry holds its key's current secret, no journal, no lock."""
    backend = PostgresBackend(dsn, workspace)
    try:
        state = backend.load()
        journal = backend.read_journal()
    finally:
        backend.close()
    problems = []
    if state is None:
        return ["no state"]
    if set(state.keys) != {f"k{i}" for i in range(n_keys)}:
        problems.append(f"state holds {sorted(state.keys)}")
    remote = control.questra_keys(ORG)
    active = [k for k in remote if not k["revoked"]]
    tracked = {ks.remote_id for ks in state.keys.values()} | {d.remote_id for d in state.deposed}
    problems += [f"orphaned active key {k['id']} ({k['name']})" for k in active if k["id"] not in tracked]
    problems += [f"duplicate active {n!r} x{c}" for n, c in Counter(k["name"] for k in active).items() if c > 1]
    by_id = {k["id"]: k for k in remote}
    sink = DotenvSink(root / ".secrets/keys.env")
    for address, ks in sorted(state.keys.items()):
        rk = by_id.get(ks.remote_id)
        if rk is None or rk["revoked"]:
            problems.append(f"{address}: its key {ks.remote_id} is not active")
        elif ks.sink is None or sink.read(ks.sink.name) != rk["secret"]:
            problems.append(f"{address}: its sink entry does not hold the current secret")
    if journal:
        problems.append(f"{len(journal)} journal record(s) left")
    if lock_holder(dsn, workspace) is not None:
        problems.append("the lock record is left")
    return problems


def test_two_applies_at_once_one_waits_for_the_other_and_nothing_is_created_twice(
        tmp_path: Path, make_emulator: Callable[..., Emulator], pg_dsn: str) -> None:
    emulator = make_emulator(latency_ms=200)
    env, workspace = subprocess_project(tmp_path, emulator.url, pg_dsn)
    started = time.monotonic()
    procs = [spawn(tmp_path, env, "apply", "--auto-approve", "--parallelism", "1", "--lock-timeout", "120s")
             for _ in range(2)]
    assert wait_for(lambda: lock_holder(pg_dsn, workspace) is not None)
    holder = lock_holder(pg_dsn, workspace)
    assert holder is not None and holder[2] == "apply"
    finished: dict[int, float] = {}
    outputs: dict[int, tuple[int, str, str]] = {}

    def finish(p: subprocess.Popen[str]) -> None:
        out, err = p.communicate(timeout=COMMAND_TIMEOUT)
        finished[p.pid] = time.monotonic() - started
        outputs[p.pid] = (p.returncode, out, err)

    waiters = [threading.Thread(target=finish, args=(p,)) for p in procs]
    for t in waiters:
        t.start()
    for t in waiters:
        t.join()
    first = outputs[holder[1]]
    second_pid = next(pid for pid in outputs if pid != holder[1])
    second = outputs[second_pid]
    assert first[0] == 0 and second[0] == 0, (first, second)
    assert f"Apply complete: {N_KEYS} created" in first[1]
    assert "No changes." in second[1] and "created" not in second[1]
    assert finished[second_pid] > finished[holder[1]]  # it ran after the first one released the lock
    with EmulatorControl(emulator.url) as control:
        assert creates(control) == N_KEYS
        assert check_converged(tmp_path, pg_dsn, workspace, control) == []
    print(f"\n[figure] two applies at once: first done after {finished[holder[1]]:.2f}s, the waiting one "
          f"after {finished[second_pid]:.2f}s; {N_KEYS} creates in the emulator")


def test_two_applies_at_once_the_loser_times_out_naming_the_holder(
        tmp_path: Path, make_emulator: Callable[..., Emulator], pg_dsn: str) -> None:
    emulator = make_emulator(latency_ms=300)
    env, workspace = subprocess_project(tmp_path, emulator.url, pg_dsn)
    started = time.monotonic()
    procs = [spawn(tmp_path, env, "apply", "--auto-approve", "--parallelism", "1", "--lock-timeout", "1s")
             for _ in range(2)]
    assert wait_for(lambda: lock_holder(pg_dsn, workspace) is not None)
    holder = lock_holder(pg_dsn, workspace)
    assert holder is not None
    results = {p.pid: (*p.communicate(timeout=COMMAND_TIMEOUT), p.returncode, time.monotonic() - started)
               for p in procs}
    winner = results[holder[1]]
    loser = next(r for pid, r in results.items() if pid != holder[1])
    assert winner[2] == 0, winner
    assert loser[2] == 1 and loser[0] == "", loser
    for part in (f"state is locked by pid {holder[1]} on", 'operation "apply"', f"lock ID {holder[0]}"):
        assert part in loser[1], loser[1]
    assert loser[3] >= 1.0 and "Traceback" not in loser[1]
    with EmulatorControl(emulator.url) as control:
        assert creates(control) == N_KEYS
        assert check_converged(tmp_path, pg_dsn, workspace, control) == []


def journal_ops(dsn: str, workspace: str) -> list[str]:
    rows = sql(dsn, "SELECT record FROM keyform_journal WHERE workspace = %s ORDER BY seq", workspace)
    return [json.loads(r[0]).get("op", "") for r in rows]


@pytest.mark.parametrize(("kill_at", "count"), [("intent", 1), ("created", 1), ("done", 2), ("intent", 4)],
                         ids=["first-create-in-flight", "created-not-done", "two-done", "fourth-create-in-flight"])
def test_kill_9_of_the_lock_holder_releases_the_lock_and_the_next_apply_recovers(
        tmp_path: Path, make_emulator: Callable[..., Emulator], pg_dsn: str, kill_at: str, count: int) -> None:
    emulator = make_emulator(latency_ms=250)
    env, workspace = subprocess_project(tmp_path, emulator.url, pg_dsn)
    first = spawn(tmp_path, env, "apply", "--auto-approve", "--parallelism", "1")
    try:
        assert wait_for(lambda: journal_ops(pg_dsn, workspace).count(kill_at) >= count or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        os.kill(first.pid, signal.SIGKILL)
        killed = time.monotonic()
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    records = journal_ops(pg_dsn, workspace)
    assert records and records[0] == "begin"
    assert lock_holder(pg_dsn, workspace) is not None  # the dead holder's record is still there...
    # ...but its advisory lock ended with its database session: the next apply needs no force-unlock
    retry = run(tmp_path, env, "apply", "--auto-approve", "--lock-timeout", "10s")
    assert retry.returncode == 0, retry.stdout + retry.stderr
    freed = time.monotonic() - killed
    assert "state is locked" not in retry.stderr
    plan = run(tmp_path, env, "plan", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    with EmulatorControl(emulator.url) as control:
        assert check_converged(tmp_path, pg_dsn, workspace, control) == []
        total_creates = creates(control)
        revoked = sum(1 for k in control.questra_keys(ORG) if k["revoked"])
    print(f"\n[figure] kill -9 at {kill_at} #{count} ({len(records)} journal records): recovering apply done "
          f"{freed:.2f}s after the kill; {total_creates} creates, {revoked} orphan(s) revoked")


# ------------------------------------------------------------------------- the database lost mid-apply


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of the test's own, which it stops and starts again (the shared one,
    `pg_cluster`, serves the other tests meanwhile)."""
    with running_cluster() as cluster:
        yield cluster


def terminate_sessions(dsn: str, application_name: str) -> None:
    """End keyform's sessions on the database of `dsn` (as a database administrator would): those
    whose application_name is LIKE `application_name`."""
    sql(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
             "AND application_name LIKE %s AND pid <> pg_backend_pid()", application_name)


@pytest.mark.parametrize(("failure", "verbose"), [("server-stopped", False), ("server-stopped", True),
                                                  ("sessions-terminated", False), ("data-session-terminated", True)])
def test_the_database_lost_mid_apply_stops_it_with_one_message_and_the_next_run_recovers(
        tmp_path: Path, make_emulator: Callable[..., Emulator], request: pytest.FixtureRequest, failure: str,
        verbose: bool) -> None:
    """The database went away after two of six creates (the server stopped, or keyform's sessions
    ended with pg_terminate_backend): each remaining change was still started and failed with the
    same error, one after the other, and no summary was printed. Now nothing starts after the
    journal could not be written: the change in flight ends (its key revoked if its record failed),
    the summary and what was not started are printed, then the database's error once (no
    password, with -v or without), exit 1; once the database is back, `plan` and `apply` recover."""
    cluster: PgCluster = request.getfixturevalue("own_cluster" if failure == "server-stopped" else "pg_cluster")
    dsn = cluster.dsn(cluster.create_database())
    emulator = make_emulator(latency_ms=400)
    env, workspace = subprocess_project(tmp_path, emulator.url, dsn)
    first = spawn(tmp_path, env, "apply", "--auto-approve", "--parallelism", "1", *(["-v"] if verbose else []))
    try:
        assert wait_for(lambda: journal_ops(dsn, workspace).count("done") >= 2 or first.poll() is not None)
        assert first.poll() is None, first.communicate()
        if failure == "server-stopped":
            cluster.halt()
        else:  # every session of keyform's (its lock's too), or only the one it writes on
            terminate_sessions(dsn, "keyform%" if failure == "sessions-terminated" else "keyform")
        out, err = first.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    output = out + err
    assert first.returncode == 1, output
    assert PASSWORD not in output and "Traceback" not in err if not verbose else PASSWORD not in output
    [error] = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert error.startswith(f'Error: postgres workspace "{workspace}" (database kf_'), error
    assert ": cannot write the apply journal: " in error, error
    assert "The apply stopped there: no change started after it (those already running ran to their end)." in error
    if not verbose:  # the database's problem said once (with -v, its debug lines and the traceback say it too)
        assert err.count("postgres workspace") == 1, err
    summary = re.search(r"^Apply failed: (\d+) created, 0 updated, 0 replaced, 0 deleted, (\d+) failed\.$", out, re.M)
    assert summary is not None, out
    created, failed = int(summary[1]), int(summary[2])
    stopped = re.search(r"^Stopped: (\d+) change\(s\) not started \(\d+ create\): k", err, re.M)
    assert stopped is not None, err
    assert created >= 2 and failed <= 1 and created + failed + int(stopped[1]) == N_KEYS, output
    assert out.count(": Creating...") <= created + 1, out  # nothing started after the failure
    with EmulatorControl(emulator.url) as control:
        assert creates(control) <= created + 1  # no create sent for a change not started
    if failure == "data-session-terminated":  # the lock's session lived on: the state was saved at the end
        assert f"{created} change(s) had finished; the state was saved with them. Run `keyform apply` again" in error
        state = PostgresBackend(dsn, workspace)
        try:
            loaded = state.load()
        finally:
            state.close()
        assert loaded is not None and len(loaded.keys) == created
    else:
        assert f"{created} change(s) had finished; the state was not saved (" in error, error
        assert ("what finished is in the apply journal, and the next `keyform plan` or `keyform apply` recovers "
                "it once the state can be written again.") in error, error
    if failure == "server-stopped":
        cluster.resume()
    with EmulatorControl(emulator.url) as control:  # the slow API was for the failing apply; the recovery need not wait
        control.faults(latency_ms=0)
    plan = run(tmp_path, env, "plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert re.search(rf"^Plan: {N_KEYS - created} to create, 0 to update, 0 to replace, [01] to delete\.", plan.stdout,
                     re.M), plan.stdout
    retry = run(tmp_path, env, "apply", "--auto-approve")
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert f"Apply complete: {N_KEYS - created} created" in retry.stdout, retry.stdout
    again = run(tmp_path, env, "plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    for res in (plan, retry, again):
        assert PASSWORD not in res.stdout + res.stderr
    with EmulatorControl(emulator.url) as control:
        assert check_converged(tmp_path, dsn, workspace, control) == []
