"""`keyform report --idle / --unmanaged` (keyform.usage): pure rows first, then the CLI against the
emulator, with keys created outside keyform, and two postgres workspaces in one org."""

from __future__ import annotations

import json
import shlex
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from harness.project import ORG, TOKENS, Project
from keyform import operations
from keyform.durations import format_time, utcnow
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.providers import QuestraProvider
from keyform.remote import CreateRequest, InstanceSnapshot, RemoteKey, RemoteSnapshot
from keyform.render.usage import render_markdown, render_text
from keyform.state import DeposedKey, KeyState, State
from keyform.usage import build_report, idle_for, key_idle_for, suggest_address, unmanaged_rows
from tests import gfm

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)
SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "usage-report.schema.json").read_text())


def validate_report(doc: Any) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(doc)


def t(days: float) -> str:
    """NOW minus `days`, as the wire writes it."""
    return format_time(NOW - timedelta(days=days))


def qkey(key_id: str, name: str, created: float, used: float | None, **kw: Any) -> RemoteKey:
    return RemoteKey(id=key_id, attrs={"name": name}, created_at=t(created),
                     last_used_at=None if used is None else t(used), usage_reported=True, **kw)


def kstate(address: str, remote_id: str, provider: str = "qp", ptype: str = "questra") -> KeyState:
    return KeyState(address=address, provider=provider, provider_type=ptype, remote_id=remote_id, attrs={},
                    remote={}, expiry_spec="never", expires_at=None, created_at=t(200))


# ------------------------------------------------------------------------------------------ pure


def test_idle_for_counts_from_the_later_of_last_use_and_creation() -> None:
    created, used = NOW - timedelta(days=100), NOW - timedelta(days=10)
    assert idle_for(used, created, NOW) == timedelta(days=10)
    assert idle_for(None, created, NOW) == timedelta(days=100)  # never used: idle since creation
    assert idle_for(NOW + timedelta(minutes=5), created, NOW) == timedelta(0)  # a clock ahead of ours
    assert idle_for(None, None, NOW) is None


def test_key_idle_for_is_none_when_usage_cannot_be_known() -> None:
    used = qkey("ak_1", "a", 100, 10)
    assert key_idle_for(used, "questra", NOW) == timedelta(days=10)
    assert key_idle_for(qkey("ak_2", "b", 100, None), "questra", NOW) == timedelta(days=100)
    textql = RemoteKey(id="t1", attrs={}, created_at=t(100))
    assert key_idle_for(textql, "textql", NOW) is None  # the type does not report usage
    assert key_idle_for(RemoteKey(id="ak_3", attrs={}, created_at=t(100)), "questra", NOW) is None  # field absent
    assert key_idle_for(None, "questra", NOW) is None  # not listed


def test_idle_report_lists_the_idle_longest_first_and_says_textql_does_not_report_usage() -> None:
    state = State.new()
    state.keys = {"busy": kstate("busy", "ak_busy"), "stale": kstate("stale", "ak_stale"),
                  "never": kstate("never", "ak_never"), "tq": kstate("tq", "t-1", "tq", "textql")}
    state.deposed = [DeposedKey("busy", "qp", "questra", "ak_old", t(1), t(-6))]
    snap = RemoteSnapshot({
        "qp": InstanceSnapshot({k.id: k for k in (qkey("ak_busy", "busy", 200, 0.01), qkey("ak_stale", "s", 200, 95),
                                                  qkey("ak_never", "n", 120, None), qkey("ak_old", "o", 300, 1))}),
        "tq": InstanceSnapshot({"t-1": RemoteKey(id="t-1", attrs={"description": "tq"}, created_at=t(400))}),
    }, refreshed=True)
    report = build_report(state, snap, NOW, idle=timedelta(days=90))
    assert [(r.address, r.usage) for r in report.idle] == [("never", "never used"), ("stale", "last used 95d ago")]
    assert [(r.address, r.usage) for r in report.not_judged] == [("tq", "provider does not report usage")]
    text = render_text(report)
    assert "Idle keys (unused for 90d or more): 2" in text and "provider does not report usage" in text
    assert "never used" not in text.split("Not judged")[1]
    rows = {r.address + ("~" if r.deposed else ""): r for r in report.rows}
    assert rows["busy~"].usage == "last used 1d ago" and rows["busy"].idle == timedelta(minutes=14, seconds=24)
    assert json.loads(json.dumps(report.to_json()))["idle"]["keys"][0]["idle_seconds"] == 120 * 86400
    validate_report(report.to_json())


def test_unmanaged_rows_oldest_activity_first_skip_revoked_and_tracked() -> None:
    snap = RemoteSnapshot({"qp": InstanceSnapshot({k.id: k for k in (
        qkey("ak_mine", "mine", 300, None),                 # tracked by this state
        qkey("ak_team", "team", 300, None),                 # tracked by another workspace
        qkey("ak_recent", "recent", 400, 1),                # created long ago, used yesterday
        qkey("ak_old", "old", 200, 150),                    # last used 150 days ago
        qkey("ak_never", "never used", 180, None),          # created 180 days ago, never used
        qkey("ak_rev", "revoked", 500, None, revoked=True),
        qkey("ak_exp", "expired", 500, None, expired=True),
    )}), "down": InstanceSnapshot(None, "the API has no list endpoint (404/405)")}, refreshed=True)
    report = unmanaged_rows(snap, {"qp": "questra", "down": "questra"},
                            {("questra", "ak_mine"), ("questra", "ak_team")}, NOW, taken={"old"},
                            files=["conf dir/keys.yaml"])
    assert [r.remote_id for r in report.rows["qp"]] == ["ak_never", "ak_old", "ak_recent"]
    assert report.skipped == 2 and report.count == 3
    assert report.notes == ("down: the API has no list endpoint (404/405); its unmanaged keys are unknown",)
    never, old, _ = report.rows["qp"]
    tq = RemoteKey(id="0b7c", attrs={"description": "Ana's Questra access"}, created_at=t(30))
    textql = unmanaged_rows(RemoteSnapshot({"tq": InstanceSnapshot({tq.id: tq})}, refreshed=True),
                            {"tq": "textql"}, set(), NOW)
    [row] = textql.rows["tq"]
    assert (row.usage, row.last_used, row.address) == ("provider does not report usage", None, "ana-s-questra-access")
    assert never.import_command == "keyform import never-used ak_never -f 'conf dir/keys.yaml'"
    assert old.address == "old-2"  # `old` is taken


def test_hostile_remote_names_cannot_inject_into_the_shell_the_terminal_or_markdown() -> None:
    hostile = "x'; touch /tmp/pwned; echo '\x1b[31m| `code` <b>\n\r"
    key = RemoteKey(id="ak_$(reboot)", attrs={"name": hostile}, created_at=t(3), usage_reported=True)
    snap = RemoteSnapshot({"qp": InstanceSnapshot({key.id: key})}, refreshed=True)
    report = build_report(State.new(), snap, NOW, unmanaged=True, provider_types={"qp": "questra"})
    [row] = report.unmanaged.rows["qp"] if report.unmanaged else []
    validate_report(report.to_json())
    argv = shlex.split(row.import_command)
    assert argv[:2] == ["keyform", "import"] and argv[3] == "ak_$(reboot)" and len(argv) == 4
    assert all(c.isalnum() or c in "-_." for c in argv[2])
    text = render_text(report)
    assert "\x1b" not in text and "\r" not in text and "\\u001b[31m" in text
    md = render_markdown(report)
    [cells] = gfm.cells(md, "reboot")
    assert len(cells) == 6 and "\x1b" not in md
    outside, shown = gfm.split(md)
    assert "<b>" not in outside and "x'; touch /tmp/pwned; echo '\\u001b[31m| `code` <b>\\n\\u000d" in shown


def test_remote_names_cannot_mention_link_or_hide_text_in_the_usage_report() -> None:
    """A listing's name in `report --unmanaged`/`--idle`: no @mention, issue link, link or emphasis
    in the PR comment (the name is a code span: `tests.gfm`), no zero-width or bidi character left
    to hide text (the plan's and the inventory's rules, `render.safe`)."""
    name = "[x](https://evil.example) _legacy_ @octo #12 \u200b\u202e"
    key = RemoteKey(id="ak_1", attrs={"name": name}, created_at=t(3), usage_reported=True)
    snap = RemoteSnapshot({"qp": InstanceSnapshot({key.id: key})}, refreshed=True)
    report = build_report(State.new(), snap, NOW, unmanaged=True, provider_types={"qp": "questra"})
    md, text = render_markdown(report), render_text(report)
    outside, shown = gfm.split(md)
    assert not any(said in outside for said in ("@octo", "#12", "_legacy", "[x]", "evil.example")), outside
    assert "[x](https://evil.example) _legacy_ @octo #12 \\u200b\\u202e" in shown
    for out in (md, text):
        assert not any(c in out for c in "\u200b\u202e"), out
    assert "\\u200b\\u202e" in text


def test_suggested_addresses_are_valid_and_unique() -> None:
    taken: set[str] = set()
    assert [suggest_address(n, taken) for n in ("CI bot", "ci bot", "...", "Ünïcode ✓", "-x-")] == \
        ["ci-bot", "ci-bot-2", "imported", "n-code", "x"]


# ----------------------------------------------------------------------------------- end to end


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def outside_key(emulator: Emulator, name: str, org: str = ORG) -> tuple[str, str]:
    """A key created outside keyform (straight through the API), as a colleague would."""
    provider = QuestraProvider("outside", emulator.url, "someone-elses-token", org, sleep=lambda _s: None)
    result = provider.create(CreateRequest(address=name, attrs={"name": name}, expires_at=None))
    provider.close()
    assert result.secret is not None
    return result.key.id, result.secret


def use(control: EmulatorControl, key_id: str, at: datetime) -> None:
    control.use_questra(ORG, key_id, format_time(at))


def report(project: Project, *args: str) -> Any:
    return project.run("report", "-f", str(project.manifest), *args)


def test_report_idle_with_a_moved_clock(project: Project, emu_control: EmulatorControl) -> None:
    project.questra("busy: {provider: qp}\nquiet: {provider: qp}\nstale: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    now = utcnow()
    use(emu_control, project.remote_id("busy"), now + timedelta(days=99))
    use(emu_control, project.remote_id("stale"), now + timedelta(days=5))
    opts = operations.Options(files=[str(project.manifest)], clock=lambda: now + timedelta(days=100),
                              env=project.env)
    with operations.session(opts, "report") as sess:
        result = operations.usage_report(sess, idle=timedelta(days=90))
    assert [r.address for r in result.idle] == ["quiet", "stale"]
    assert [r.usage for r in result.idle] == ["never used", "last used 95d ago"]


def test_report_idle_cli_exits_2_when_a_key_is_idle_and_0_otherwise(
        project: Project, emulator: Emulator, emu_control: EmulatorControl) -> None:
    project.questra("busy: {provider: qp}\nquiet: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert report(project, "--idle", "1d").exit_code == 0
    time.sleep(1.1)
    # used "now" as the API records it: whole seconds, so a report a moment later (across a second
    # boundary) found it unused for 1 s; a use a little ahead of the clock is unused for 0 s
    use(emu_control, project.remote_id("busy"), utcnow() + timedelta(seconds=30))
    result = report(project, "--idle", "1s")
    assert result.exit_code == 2, result.output
    assert "Idle keys (unused for 1s or more): 1" in result.stdout and "quiet" in result.stdout
    assert "busy" not in result.stdout.split("Idle keys")[1]
    doc = json.loads(report(project, "--idle", "1s", "--format", "json").stdout)
    validate_report(doc)
    assert [k["address"] for k in doc["idle"]["keys"]] == ["quiet"]
    assert "| `quiet` |" in report(project, "--idle", "1s", "--format", "markdown").stdout
    for value in TOKENS.values():
        assert value not in result.output


@pytest.mark.parametrize("bad", ["90", "ninety days", "0d", "-1d", "99999999999999w"])
def test_report_idle_refuses_a_bad_duration(project: Project, bad: str) -> None:
    project.questra("k: {provider: qp}\n")
    result = report(project, "--idle", bad)
    assert result.exit_code == 1 and result.stderr.startswith("Error: --idle: ") and "Traceback" not in result.output


def test_report_unmanaged_finds_keys_created_outside_keyform_and_import_adopts_them(
        project: Project, emulator: Emulator) -> None:
    project.questra("managed: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    stray_id, stray_secret = outside_key(emulator, "Legacy integration")
    revoked_id, _ = outside_key(emulator, "Old and revoked")
    provider = QuestraProvider("outside", emulator.url, "tok", ORG, sleep=lambda _s: None)
    provider.delete(revoked_id)
    provider.close()

    result = report(project, "--unmanaged")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Unmanaged keys (no state tracks them), most likely forgotten first: 1" in out
    assert stray_id in out and "Legacy integration" in out and project.remote_id("managed") not in out
    assert revoked_id not in out and "(1 revoked or expired key not shown" in out
    assert stray_secret not in out
    command = next(line.strip() for line in out.splitlines() if line.strip().startswith("keyform import"))
    argv = shlex.split(command)
    assert argv[2:4] == ["legacy-integration", stray_id] and argv[4] == "-f"

    project.questra("managed: {provider: qp}\nlegacy-integration: {provider: qp, name: Legacy integration}\n")
    adopted = project.run(*argv[1:])
    assert adopted.exit_code == 0, adopted.output
    after = report(project, "--unmanaged", "--format", "json")
    assert json.loads(after.stdout)["unmanaged"]["count"] == 0
    before_doc = json.loads(report(project, "--unmanaged", "--idle", "1d", "--format", "json").stdout)
    validate_report(before_doc)


def test_report_unmanaged_suggests_the_declared_key_a_remote_key_belongs_to(
        project: Project, emulator: Emulator) -> None:
    """A key declared in the manifests (`legacy`, named like the remote key) but in no state was
    suggested as `keyform import legacy-integration ID`: a new address to declare, while `legacy`
    stayed planned for a create. The declared key is the address to import into."""
    stray_id, _ = outside_key(emulator, "Legacy integration")
    other_id, _ = outside_key(emulator, "Legacy integration")  # a second of that name: a new address
    project.questra("legacy: {provider: qp, name: Legacy integration}\n")
    result = report(project, "--unmanaged")
    assert result.exit_code == 0, result.output
    commands = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("keyform import")]
    suggested = {shlex.split(c)[3]: shlex.split(c)[2] for c in commands}
    # the first one listed (the older) goes to the declared key, the other to a new address
    assert sorted(suggested.values()) == ["legacy", "legacy-integration"] and set(suggested) == {stray_id, other_id}
    [declared] = [c for c in commands if c.endswith("(declared; not in the state yet)")]
    argv = shlex.split(declared.split("   (")[0])
    assert argv[2] == "legacy"
    adopted = project.run(*argv[1:])
    assert adopted.exit_code == 0, adopted.output
    assert "to create" not in project.run("plan").stdout


def test_a_key_whose_instance_changed_type_is_not_unmanaged_nor_imported_twice(
        project: Project, emulator: Emulator) -> None:
    """An instance switched from `type: questra` to the Questra definition under `type: rest` lists
    the same keys, which the state records under the old type until the next apply replaces them:
    `report --unmanaged` listed every managed key as unmanaged, with an import command that adopted
    it under a second address (the apply then revoked it as the old key of the first one's
    replacement). A key is tracked by its provider instance too; the import is refused."""
    project.questra("web: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    managed = project.remote_id("web")
    stray_id, _ = outside_key(emulator, "Legacy integration")
    (project.root / "defs").mkdir()
    (project.root / "defs" / "questra.yaml").write_text(
        (Path(__file__).resolve().parents[1] / "examples" / "providers" / "questra.yaml").read_text())
    rest = project.manifest.read_text().replace("    type: questra\n", "    type: rest\n    definition: defs/questra.yaml\n")
    project.manifest.write_text(rest)
    result = report(project, "--unmanaged", "--format", "json")
    assert result.exit_code == 0, result.output
    listed = [r["remote_id"] for rows in json.loads(result.stdout)["unmanaged"]["instances"].values() for r in rows]
    assert listed == [stray_id]
    project.manifest.write_text(rest.replace("  web: {provider: qp}\n", "  web: {provider: qp}\n  web-2: {provider: qp}\n"))
    state = project.state()
    adopted = project.run("import", "web-2", managed)
    assert adopted.exit_code == 1 and f"import: {managed} is already managed as web" in adopted.stderr, adopted.output
    assert project.state() == state


def test_report_unmanaged_without_refresh_says_it_cannot_tell(project: Project) -> None:
    project.questra("k: {provider: qp}\n")
    result = report(project, "--unmanaged", "--no-refresh")
    assert result.exit_code == 0 and "unmanaged keys cannot be found without listing" in result.stdout


def test_report_takes_no_lock_and_mentions_an_unrecovered_apply(project: Project) -> None:
    from keyform.backends.local import LocalBackend
    from keyform.journal import Begin

    project.questra("k: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    store = LocalBackend(project.state_path)
    with store.lock("apply"):  # an apply in progress elsewhere
        held = report(project, "--idle", "1d")
        assert held.exit_code == 0, held.output
        with store.journal_open() as journal:
            journal.append(Begin("x", 1))
        pending = report(project, "--unmanaged")
    assert pending.exit_code == 0 and "an interrupted apply has not been recovered yet" in pending.stdout
    assert store.read_journal()  # left for plan/apply to recover


def test_report_never_changes_anything(project: Project, emulator: Emulator, emu_control: EmulatorControl) -> None:
    project.questra("k: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    outside_key(emulator, "stray")
    before_state, before_keys = project.state_path.read_bytes(), emu_control.questra_keys(ORG)
    requests = emu_control.requests()
    assert report(project, "--unmanaged", "--idle", "1s").exit_code in (0, 2)
    assert project.state_path.read_bytes() == before_state and emu_control.questra_keys(ORG) == before_keys
    after = emu_control.requests()
    assert {k: v - requests.get(k, 0) for k, v in after.items() if v != requests.get(k, 0)} == {"questra.list": 1}


# ------------------------------------------------------------------------ two postgres workspaces

DSN_ENV = "KEYFORM_PG_DSN"


def pg_project(root: Path, url: str, dsn: str, workspace: str, keys: str) -> Project:
    root.mkdir()
    p = Project(root, url, env={DSN_ENV: dsn})
    p.questra(keys, extra=f"state:\n  backend: postgres\n  dsn: {{env: {DSN_ENV}}}\n  workspace: {workspace}\n")
    return p


def test_two_postgres_workspaces_in_one_org_are_not_each_others_orphans(
        tmp_path: Path, emulator: Emulator, pg_dsn: str) -> None:
    team_a = pg_project(tmp_path / "a", emulator.url, pg_dsn, "team-a", "a-bot: {provider: qp, name: A bot}\n")
    team_b = pg_project(tmp_path / "b", emulator.url, pg_dsn, "team-b", "b-bot: {provider: qp, name: B bot}\n")
    for p in (team_a, team_b):
        assert p.run("apply", "--auto-approve").exit_code == 0
    stray_id, _ = outside_key(emulator, "Nobody's key")

    for p, other in ((team_a, "B bot"), (team_b, "A bot")):
        result = report(p, "--unmanaged", "--format", "json")
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)["unmanaged"]["instances"]["qp"]
        assert [r["remote_id"] for r in rows] == [stray_id], (other, rows)
        assert pg_dsn not in result.output

    # the same org seen from a local state file: the other teams' keys are unmanaged from there
    local = Project(tmp_path, emulator.url)
    local.questra("")
    names = {r["name"] for r in json.loads(report(local, "--unmanaged", "--format", "json").stdout)
             ["unmanaged"]["instances"]["qp"]}
    assert names == {"A bot", "B bot", "Nobody's key"}


def test_an_unreadable_other_workspace_is_an_error_naming_it(
        tmp_path: Path, emulator: Emulator, pg_dsn: str) -> None:
    import psycopg

    team_a = pg_project(tmp_path / "a", emulator.url, pg_dsn, "team-a", "a-bot: {provider: qp}\n")
    team_b = pg_project(tmp_path / "b", emulator.url, pg_dsn, "team-b", "b-bot: {provider: qp}\n")
    for p in (team_a, team_b):
        assert p.run("apply", "--auto-approve").exit_code == 0
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE keyform_states SET state = '{\"truncated' WHERE workspace = 'team-b'")
    result = report(team_a, "--unmanaged")
    assert result.exit_code == 1 and 'postgres workspace "team-b"' in result.stderr, result.output
    assert "not valid JSON" in result.stderr and "Traceback" not in result.output and pg_dsn not in result.output
    assert report(team_a, "--idle", "1d").exit_code == 0  # --idle alone does not need the other workspaces


def test_backends_other_workspace_states(tmp_path: Path, pg_dsn: str) -> None:
    from keyform.backends.local import LocalBackend
    from keyform.backends.postgres import PostgresBackend

    assert LocalBackend(tmp_path / "keyform.state.json").other_workspace_states() == {}
    saved = {}
    for ws in ("a", "b", "c"):
        backend = PostgresBackend(pg_dsn, ws)
        state = State.new()
        state.keys["k"] = kstate("k", f"ak_{ws}")
        with backend.lock("apply"):
            backend.load()
            backend.save(state)
        backend.close()
        saved[ws] = state.lineage
    me = PostgresBackend(pg_dsn, "b")
    others = me.other_workspace_states()
    me.close()
    assert {ws: (s.lineage, s.keys["k"].remote_id) for ws, s in others.items()} == \
        {"a": (saved["a"], "ak_a"), "c": (saved["c"], "ak_c")}


def test_one_long_remote_name_does_not_pad_every_row_of_the_unmanaged_report(
        project: Project, emulator: Emulator, emu_control: EmulatorControl) -> None:
    """One 200,000-character name, which anyone with an org token can give a key, padded every row
    of the table: 2,000 keys made 400 MB. Cells are cut at `safe.MAX_CELL` in text and Markdown, as
    in the key report; JSON keeps the name whole (a program reads it, and it is there once)."""
    project.questra("k1: {provider: qp}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    outside_key(emulator, "A" * 20_000)
    # 200, not 300: the Markdown comment holds ~275 rows, and a key made in the same second as the
    # bulk ones sorts among them by id, so with 300 it was sometimes among those cut (a flaky run)
    emu_control.bulk_questra(ORG, 200, prefix="b")
    text = report(project, "--unmanaged")
    assert text.exit_code == 0, text.output[-2000:]
    assert len(text.stdout) < 200_000, len(text.stdout)  # was 200 rows × 20,000 characters
    assert "A" * 59 + "…" in text.stdout and "A" * 61 not in text.stdout
    md = report(project, "--unmanaged", "--format", "markdown").stdout
    assert "A" * 59 + "…" in md and "A" * 61 not in md and len(md) < 60_000 and "more keys, too many" not in md
    doc = json.loads(report(project, "--unmanaged", "--format", "json").stdout)
    assert "A" * 20_000 in [r["name"] for rows in doc["unmanaged"]["instances"].values() for r in rows]
