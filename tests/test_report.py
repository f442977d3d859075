"""`keyform report`: the pure row builder (rotation rules, statuses, deposed keys, urgency order,
`--due-within`), the four formats (JSON against its schema; hostile names from a remote), and the
command end to end against the emulator over real HTTP, with a moved clock."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.project import ORG, Project
from keyform import cli
from keyform.durations import format_time, maybe_time, parse_time
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.model import Rotation
from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot
from keyform.render.report import RENDERERS, render_csv, render_json, render_markdown, render_text
from keyform.render.safe import escaped
from keyform.report import NOT_CREATED, NOT_REFRESHED, Report, ReportRow, build_report
from keyform.state import DeposedKey, State
from tests import gfm
from tests.factories import T0, expires_in, questra_key, recorded, state_with, textql_key, workspace

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "report.schema.json").read_text())
NOW = T0 + timedelta(days=40)


def validate(doc: Any) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)


def snapshot_of(state: State, **changes: dict[str, Any]) -> RemoteSnapshot:
    """Every state key listed as it was recorded, with per-address field overrides (`None` drops it)."""
    listed: dict[str, dict[str, RemoteKey]] = {}
    for ks in state.keys.values():
        over = changes.get(ks.address, {})
        if over.get("gone"):
            listed.setdefault(ks.provider, {})
            continue
        key = RemoteKey(ks.remote_id, dict(ks.remote), ks.created_at, ks.expires_at,
                        revoked=bool(over.get("revoked")), expired=bool(over.get("expired")))
        listed.setdefault(ks.provider, {})[ks.remote_id] = key
    return RemoteSnapshot({p: InstanceSnapshot(keys) for p, keys in listed.items()}, refreshed=True)


def mixed() -> tuple[Any, State]:
    soon = questra_key("soon", "Soon", expiry=expires_in(45), rotation=Rotation(before_expiry=timedelta(days=14)))
    aged = questra_key("aged", rotation=Rotation(max_age=timedelta(days=60)))
    forever = questra_key("forever")
    revoked = questra_key("revoked-key")
    tq = textql_key("tq", description="TextQL access", expiry=expires_in(90))
    planned = questra_key("planned")
    ws = workspace(soon, aged, forever, revoked, tq, planned)
    st = state_with(recorded(soon, "ak_soon"), recorded(aged, "ak_aged"), recorded(forever, "ak_forever"),
                    recorded(revoked, "ak_revoked"), recorded(tq, "tq_1"),
                    recorded(questra_key("orphan"), "ak_orphan"))
    st.deposed.append(DeposedKey("aged", "qp", "questra", "ak_old", format_time(T0), format_time(NOW + timedelta(hours=5))))
    return ws, st


def test_rows_carry_every_column_and_the_rule_causing_the_next_rotation() -> None:
    ws, st = mixed()
    report = build_report(ws, st, snapshot_of(st, **{"revoked-key": {"revoked": True}}), NOW)
    rows = {(r.address, r.kind): r for r in report.rows}
    soon = rows[("soon", "key")]
    assert (soon.remote_id, soon.name, soon.provider, soon.provider_type) == ("ak_soon", "Soon", "qp", "questra")
    assert soon.created_at == "2026-01-01T00:00:00Z" and soon.age_days == 40
    assert soon.expires_at == "2026-02-15T00:00:00Z" and soon.expires_in_days == 5
    assert (soon.rotation_due_at, soon.rotation_rule) == ("2026-02-01T00:00:00Z", "before_expiry 14d")
    assert soon.rotation_due_in_days == -9  # overdue: the next apply rotates it
    assert (soon.sink, soon.sink_entry, soon.status) == ("env", "SOON", "active")
    aged = rows[("aged", "key")]
    assert (aged.rotation_due_at, aged.rotation_rule, aged.expires_at) == ("2026-03-02T00:00:00Z", "max_age 60d", None)
    assert rows[("tq", "key")].name == "TextQL access" and rows[("tq", "key")].sink is None
    assert rows[("revoked-key", "key")].status == "revoked"
    assert rows[("orphan", "key")].in_manifests is False
    assert rows[("planned", "key")].status == NOT_CREATED and rows[("planned", "key")].remote_id is None
    deposed = rows[("aged", "deposed")]
    # the old key is not in the listing: it is gone already (a listed one shows `deposed`)
    assert (deposed.remote_id, deposed.status, deposed.rotation_rule) == ("ak_old", "missing", "revoked after grace")
    assert [r.status for r in build_report(ws, st, RemoteSnapshot(), NOW).rows if r.kind == "deposed"] == ["deposed"]
    assert deposed.rotation_due_at == format_time(NOW + timedelta(hours=5))


def test_an_old_key_whose_revocation_was_asked_for_is_due_now() -> None:
    """A deposed key an apply with `--revoke-old` set out to revoke and did not (killed, or its revoke
    failed) is revoked by the next apply (`revoke_requested`); the report said it waited for its
    grace (`in 5h: revoked after grace`)."""
    ws, st = mixed()
    st.deposed[0].revoke_requested = True
    report = build_report(ws, st, snapshot_of(st), NOW)
    row = next(r for r in report.rows if r.kind == "deposed")
    assert (row.rotation_due_at, row.rotation_due_in_days) == (format_time(NOW), 0)
    assert row.rotation_rule == "revocation requested (--revoke-old)"
    assert f"{format_time(NOW)[:10]} (now): revocation requested (--revoke-old)" in render_text(report)
    validate(report.to_json())


def test_a_consumer_of_a_rotating_source_shows_the_sources_rotation() -> None:
    """A key fed by `auth_value: {secret_of: src}` is replaced whenever src is; the report showed no
    next rotation for it, and `--due-within` named only src, so a mass rotation's lead did not see
    the consumers to re-deploy that day. Two steps down the chain, and an earlier own rule wins."""
    from keyform.model import SecretOfRef

    src = questra_key("src", expiry=expires_in(45), rotation=Rotation(before_expiry=timedelta(days=14)))
    consumer = textql_key("consumer", auth=SecretOfRef("src"))
    second = textql_key("second", auth=SecretOfRef("consumer"))
    early = questra_key("early", rotation=Rotation(max_age=timedelta(days=10)))
    own = textql_key("own", auth=SecretOfRef("early"), expiry=expires_in(90))
    ws = workspace(src, consumer, second, early, own)
    st = state_with(*(recorded(k, f"id_{k.address}") for k in (src, consumer, second, early, own)))
    rows = {r.address: r for r in build_report(ws, st, snapshot_of(st), NOW).rows}
    assert (rows["consumer"].rotation_due_at, rows["consumer"].rotation_rule, rows["consumer"].rotation_due_in_days) \
        == ("2026-02-01T00:00:00Z", "depends on src (before_expiry 14d)", -9)
    assert rows["second"].rotation_rule == "depends on consumer, which depends on src (before_expiry 14d)"
    assert rows["second"].rotation_due_at == "2026-02-01T00:00:00Z"
    assert (rows["own"].rotation_due_at, rows["own"].rotation_rule) == ("2026-01-11T00:00:00Z", "depends on early "
                                                                       "(max_age 10d)")
    assert (rows["src"].rotation_rule, rows["early"].rotation_rule) == ("before_expiry 14d", "max_age 10d")


def test_a_long_secret_of_chain_declared_consumer_first_is_reported() -> None:
    """Each key's inherited rotation was found by recursing into its source: a chain of 1,500 keys
    declared consumer first (a REST type that takes a secret and issues one) ended `keyform report`
    in a RecursionError ("internal error"). Sources are now settled first, without recursion."""
    from keyform.model import SecretOfRef

    n = 1500
    src = questra_key("k0", rotation=Rotation(max_age=timedelta(days=60)))
    chain = [textql_key(f"k{i}", auth=SecretOfRef(f"k{i - 1}")) for i in range(1, n)]
    ws = workspace(*reversed([src, *chain]))
    rows = {r.address: r for r in build_report(ws, State.new(), RemoteSnapshot(), NOW).rows}
    assert len(rows) == n and rows[f"k{n - 1}"].status == NOT_CREATED
    st = state_with(recorded(src, "id_k0"), *(recorded(k, f"id_{k.address}") for k in chain))
    rows = {r.address: r for r in build_report(ws, st, snapshot_of(st), NOW).rows}
    assert rows[f"k{n - 1}"].rotation_due_at == rows["k0"].rotation_due_at == "2026-03-02T00:00:00Z"
    assert rows["k2"].rotation_rule == "depends on k1, which depends on k0 (max_age 60d)"


def test_rows_are_sorted_by_urgency() -> None:
    ws, st = mixed()
    report = build_report(ws, st, snapshot_of(st, **{"revoked-key": {"revoked": True}}), NOW)
    order = [(r.address, r.kind) for r in report.rows]
    assert order == [("revoked-key", "key"), ("soon", "key"), ("aged", "key"), ("tq", "key"),
                     ("forever", "key"), ("orphan", "key"), ("planned", "key"), ("aged", "deposed")]


def test_live_status_from_the_listing_and_none_without_refresh() -> None:
    ws, st = mixed()
    snap = snapshot_of(st, soon={"expired": True}, aged={"gone": True})
    rows = {r.address: r.status for r in build_report(ws, st, snap, NOW).rows if r.kind == "key"}
    assert (rows["soon"], rows["aged"], rows["forever"]) == ("expired", "missing", "active")
    stale = build_report(ws, st, RemoteSnapshot(), NOW)
    assert {r.status for r in stale.rows if r.kind == "key" and r.in_manifests and r.remote_id} == {NOT_REFRESHED}
    unlisted = RemoteSnapshot({"qp": InstanceSnapshot(None, "no list endpoint")}, refreshed=True)
    assert {r.status for r in build_report(ws, st, unlisted, NOW).rows if r.provider == "qp" and r.kind == "key"
            and r.remote_id} == {"not listed"}


def test_remote_expiry_wins_over_the_recorded_one() -> None:
    spec = textql_key("tq", expiry=expires_in(90))
    st = state_with(recorded(spec, "tq_1"))
    later = RemoteKey("tq_1", {}, format_time(T0), "2026-12-01T00:00:00Z")
    snap = RemoteSnapshot({"tq": InstanceSnapshot({"tq_1": later})}, refreshed=True)
    [row] = build_report(workspace(spec), st, snap, NOW).rows
    assert row.expires_at == "2026-12-01T00:00:00Z"


def test_keys_sharing_their_times_each_get_their_own_row_and_an_unhashable_expiry_is_no_time() -> None:
    """build_report works out each distinct stored time once (`_Times`, and the next rotation times by `_Memo`): keys made in the
    same second with the same rule get the same dates, one with other dates its own; a plug-in's
    listing whose expires_at is not text (a list: not even hashable) is an unreadable time, as it
    was, not a TypeError."""
    a, b, c, d = (questra_key(n, expiry=expires_in(90), rotation=Rotation(max_age=timedelta(days=d)))
                  for n, d in (("a", 30), ("b", 30), ("c", 40), ("d", 30)))
    st = state_with(recorded(a, "tq_a"), recorded(b, "tq_b"), recorded(c, "tq_c"), recorded(d, "tq_d"))
    odd = RemoteKey("tq_d", {}, format_time(T0), ["2026-12-01T00:00:00Z"])  # type: ignore[arg-type]
    listed = {"tq_a": RemoteKey("tq_a", {}, format_time(T0), "2026-12-01T00:00:00Z"),
              "tq_b": RemoteKey("tq_b", {}, format_time(T0), "2026-12-01T00:00:00Z"),
              "tq_c": RemoteKey("tq_c", {}, format_time(T0), "2026-11-01T00:00:00Z"), "tq_d": odd}
    snap = RemoteSnapshot({"qp": InstanceSnapshot(listed)}, refreshed=True)
    rows = {r.address: r for r in build_report(workspace(a, b, c, d), st, snap, NOW).rows}
    assert rows["a"].expires_at == rows["b"].expires_at == "2026-12-01T00:00:00Z"
    assert rows["c"].expires_at == "2026-11-01T00:00:00Z" and rows["c"].expires_in_days != rows["a"].expires_in_days
    assert (rows["a"].rotation_due_at, rows["a"].rotation_rule) == (rows["b"].rotation_due_at, "max_age 30d")
    assert rows["c"].rotation_due_at != rows["a"].rotation_due_at and rows["c"].rotation_rule == "max_age 40d"
    assert rows["a"].rotation_due_in_days == rows["b"].rotation_due_in_days != rows["c"].rotation_due_in_days
    assert rows["d"].expires_at is None and rows["d"].expires_in_days is None
    assert rows["d"].rotation_due_at == rows["a"].rotation_due_at


def test_due_within_counts_expiry_rotation_and_broken_keys_but_not_deposed_or_planned() -> None:
    ws, st = mixed()
    report = build_report(ws, st, snapshot_of(st), NOW)
    assert [r.address for r in report.due_within(timedelta(days=0), NOW)] == ["soon"]  # overdue rotation
    assert [r.address for r in report.due_within(timedelta(days=21), NOW)] == ["soon", "aged"]
    assert [r.address for r in report.due_within(timedelta(days=90), NOW)] == ["soon", "aged", "tq"]
    broken = build_report(ws, st, snapshot_of(st, forever={"gone": True}), NOW)
    assert "forever" in [r.address for r in broken.due_within(timedelta(days=0), NOW)]


def test_a_rotation_requested_by_import_is_due_now() -> None:
    spec = questra_key("imp")
    ks = recorded(spec, "ak_imp")
    ks.rotation_requested = True
    [row] = build_report(workspace(spec), state_with(ks), RemoteSnapshot(), NOW).rows
    assert (row.rotation_due_at, row.rotation_rule) == (format_time(NOW), "rotation requested")


def test_times_just_past_or_within_a_day_read_right_in_every_format() -> None:
    """Day counts were rounded down: a key that expired 30 s ago said `1d ago` (-1 in JSON) and one
    expiring in 23 h said `in 0d`. Now whole days round toward zero (as `2d ago` says -2), and the
    text and Markdown say a time under a day in its largest unit, as the plan's notes do."""
    just = questra_key("just-expired", expiry=expires_in(10))
    later = questra_key("later", expiry=expires_in(12), rotation=Rotation(before_expiry=timedelta(days=2)))
    old = questra_key("long-expired", expiry=expires_in(8))
    now = T0 + timedelta(days=10, seconds=30)
    st = state_with(recorded(just, "ak_just"), recorded(later, "ak_later", created=T0 + timedelta(hours=23, seconds=30)),
                    recorded(old, "ak_old"))
    report = build_report(workspace(just, later, old), st, snapshot_of(st), now)
    rows = {r.address: r for r in report.rows}
    assert (rows["just-expired"].status, rows["just-expired"].expires_in_days) == ("expired", 0)
    assert rows["long-expired"].expires_in_days == -2
    # expires 2026-01-13T23:00:30Z; its rotation 2d before it, in 23h
    assert (rows["later"].rotation_due_in_days, rows["later"].expires_in_days) == (0, 2)
    text = render_text(report)
    assert "2026-01-11 (30s ago)" in text and "2026-01-09 (2d ago)" in text
    assert "2026-01-11 (in 23h): before_expiry 2d" in text and "2026-01-13 (in 2d)" in text
    assert "1d ago" not in text and "0d)" not in text
    markdown = render_markdown(report)
    assert "2026-01-11 (30s ago)" in markdown and "(in 23h): before_expiry 2d" in markdown
    doc = json.loads(render_json(report))
    validate(doc)
    assert {k["address"]: k["expires_in_days"] for k in doc["keys"]} == \
        {"just-expired": 0, "later": 2, "long-expired": -2}
    overdue = build_report(workspace(later), st, snapshot_of(st), T0 + timedelta(days=11, hours=2, seconds=30))
    assert "2026-01-11 (3h overdue): before_expiry 2d" in render_text(overdue)
    assert [r.rotation_due_in_days for r in overdue.rows if r.address == "later"] == [0]


def test_json_follows_its_schema_and_csv_has_the_same_fields() -> None:
    ws, st = mixed()
    report = build_report(ws, st, snapshot_of(st), NOW, notes=["a note"])
    doc = json.loads(render_json(report, timedelta(days=14), NOW))
    validate(doc)
    assert doc["due_within"] == {"window": "14d", "due": ["soon"]}
    assert len(doc["keys"]) == len(report.rows)
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert list(rows[0]) == list(doc["keys"][0]) and len(rows) == len(doc["keys"])
    assert rows[0]["address"] == doc["keys"][0]["address"]


def test_every_format_over_a_thousand_keys() -> None:
    specs = [questra_key(f"key-{i:04}", expiry=expires_in(30 + i % 90), rotation=Rotation(before_expiry=timedelta(days=7)))
             for i in range(1000)]
    st = state_with(*(recorded(s, f"ak_{i}") for i, s in enumerate(specs)))
    report = build_report(workspace(*specs), st, snapshot_of(st), T0 + timedelta(days=1))
    assert len(report.rows) == 1000
    for fmt, render in RENDERERS.items():
        text = render(report, timedelta(days=14), T0)
        assert "key-0000" in text and "key-0999" in text, fmt
    assert render_text(report).count("\n") == 1000 + 3
    doc = json.loads(render_json(report))
    validate({**doc, "keys": doc["keys"][:20]})
    assert len(doc["keys"]) == 1000


def _report_of_remote_name(name: str) -> Report:
    """The report of one recorded key whose listing names it `name`."""
    spec = questra_key("k")
    snap = RemoteSnapshot({"qp": InstanceSnapshot({"ak_1": RemoteKey("ak_1", {"name": name}, format_time(T0))})},
                          refreshed=True)
    return build_report(workspace(spec), state_with(recorded(spec, "ak_1")), snap, NOW)


def test_hostile_remote_names_cannot_break_any_format() -> None:
    report = _report_of_remote_name("\x1b[31mred\x1b]0;title\x07 | <img src=x> `x`\nnext=cmd|' /C calc'!A0")
    text, md = render_text(report), render_markdown(report)
    for out in (text, md):
        assert "\x1b" not in out and "\x07" not in out
    assert len(text.splitlines()) == 4  # header, one row, blank, summary: the newline started no row
    assert len(md.splitlines()) == 7
    outside, shown = gfm.split(md)
    assert "<img" not in outside and any(c.startswith("?[31mred?]0;title? | <img src=x> `x`") for c in shown), shown
    assert "next=" in text.splitlines()[1]
    csv_row = next(iter(csv.DictReader(io.StringIO(render_csv(dataclasses.replace(report, rows=(
        dataclasses.replace(report.rows[0], name="=HYPERLINK(\"http://evil\")"),)))))))
    assert csv_row["name"].startswith("'=")


def test_zero_width_and_bidi_marks_in_remote_names_are_shown_in_every_format() -> None:
    """The inventory blanks the characters the plan escapes (`render.safe.UNSAFE`): a zero-width
    space, word joiner, byte-order mark or Arabic letter mark hid text before."""
    report = _report_of_remote_name("ci\u200bbot\u2060prod\ufeffkey\u061cx\u202e")
    for out in (render_text(report), render_markdown(report)):
        assert "ci?bot?prod?key?x?" in out, out


# ----------------------------------------------------------------------------------- end to end

KEYS = """\
ci-bot:
  provider: qp
  name: CI bot
  expires_in: 30d
  rotation: {before_expiry: 7d}
web:
  provider: qp
  sink: {use: env, as: WEB_KEY}
"""


class Clock:
    def __init__(self) -> None:
        from keyform.durations import utcnow

        self.base = utcnow()
        self.offset = timedelta(0)

    def __call__(self) -> Any:
        return self.base + self.offset


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    p = Project(tmp_path, emulator.url)
    p.questra(KEYS)
    return p


def test_report_every_format_end_to_end_no_secret_and_no_refresh_makes_no_call(
        project: Project, emu_control: EmulatorControl) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    secrets = [k["secret"] for k in emu_control.questra_keys(ORG)]
    before = emu_control.requests()
    for fmt in ("text", "markdown", "json", "csv"):
        res = project.run("report", "-f", str(project.manifest), "--format", fmt)
        assert res.exit_code == 0, res.output
        assert "ci-bot" in res.stdout and project.remote_id("ci-bot") in res.stdout
        assert not any(s in res.output for s in secrets)
    doc = json.loads(project.run("report", "-f", str(project.manifest), "--format", "json").stdout)
    validate(doc)
    assert {r["address"]: r["status"] for r in doc["keys"]} == {"ci-bot": "active", "web": "active"}
    assert all(r["applied_at"] for r in doc["keys"])
    after = emu_control.requests()
    assert after.get("questra.list", 0) - before.get("questra.list", 0) == 5  # one list call per report
    quiet = project.run("report", "-f", str(project.manifest), "--no-refresh", "--format", "json")
    assert emu_control.requests() == after  # --no-refresh: the state alone, no remote call
    assert {r["status"] for r in json.loads(quiet.stdout)["keys"]} == {"not refreshed"}


def test_due_within_exits_0_then_2_as_the_moved_clock_crosses_the_window(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    state_before = project.state_path.read_bytes()
    clock = Clock()
    options = cli._options
    monkeypatch.setattr(cli, "_options", lambda *a, **k: dataclasses.replace(options(*a, **k), clock=clock))
    # ci-bot's rotation is due at day 23 (30d expiry - 7d before_expiry); the window is 14d
    clock.offset = timedelta(days=8)
    first = project.run("report", "-f", str(project.manifest), "--due-within", "14d")
    assert first.exit_code == 0, first.output
    assert "Nothing is due within 14d" in first.stdout
    clock.offset = timedelta(days=10)
    second = project.run("report", "-f", str(project.manifest), "--due-within", "14d")
    assert second.exit_code == 2, second.output
    assert "Due: ci-bot" in second.stdout
    doc = json.loads(project.run("report", "-f", str(project.manifest), "--due-within", "14d", "--format", "json").stdout)
    assert doc["due_within"]["due"] == ["ci-bot"]
    assert project.state_path.read_bytes() == state_before  # read-only


def test_report_errors_are_one_line_exit_1(project: Project, emu_control: EmulatorControl) -> None:
    bad = project.run("report", "-f", str(project.manifest), "--due-within", "two weeks")
    assert bad.exit_code == 1 and bad.stderr.startswith("Error: --due-within: invalid duration")
    assert "Traceback" not in bad.output
    missing = project.run("report", "-f", str(project.root / "nope.yaml"))
    assert missing.exit_code == 1 and "no such file" in missing.stderr
    emu_control.faults(error_rate=1.0)
    down = project.run("report", "-f", str(project.manifest))
    assert down.exit_code == 1 and "Traceback" not in down.output and "internal error" not in down.output


def test_report_with_a_journal_left_by_an_interrupted_apply_says_so(project: Project) -> None:
    assert project.run("apply", "--auto-approve").exit_code == 0
    journal = project.root / "keyform.state.json.journal"
    journal.write_text('{"op": "begin", "lineage": "x", "serial": 1}\n')
    res = project.run("report", "-f", str(project.manifest), "--no-refresh")
    assert res.exit_code == 0 and "or was interrupted and left a journal" in res.stdout
    assert journal.read_text().startswith('{"op": "begin"')  # untouched: report never recovers


def test_report_of_a_thousand_key_workspace_in_every_format(project: Project, emu_control: EmulatorControl) -> None:
    """1,000 Questra keys minted in the emulator, declared in the manifests and recorded in a state
    written directly (an apply of 1,000 would cost seconds): every format lists every key, live."""
    listed = emu_control.bulk_questra(ORG, 1000, prefix="bulk-")
    keys = "".join(f"b{i:04}:\n  provider: qp\n  name: {k['name']}\n  rotation: {{max_age: {1 + i % 60}d}}\n"
                   for i, k in enumerate(listed))
    project.questra(keys)
    state = State.new()
    for i, k in enumerate(listed):
        spec = questra_key(f"b{i:04}", k["name"], sink="env")
        rec = recorded(spec, k["id"], created=T0)
        rec.created_at = k["created_at"]
        state.keys[spec.address] = rec
    project.state_path.write_text(state.dumps())
    secrets = {k["secret"] for k in listed[:50]}
    for fmt in ("text", "markdown", "json", "csv"):
        res = project.run("report", "-f", str(project.manifest), "--format", fmt)
        assert res.exit_code == 0, res.output[-2000:]
        assert "b0000" in res.stdout and not any(s in res.stdout for s in secrets)
        if fmt == "markdown":  # the most urgent keys that fit in a comment, the rest counted
            assert len(res.stdout) < 60_000 and re.search(r"\*…and \d+ more keys, too many", res.stdout)
        else:
            assert "b0999" in res.stdout
    doc = json.loads(project.run("report", "-f", str(project.manifest), "--format", "json").stdout)
    validate({**doc, "keys": doc["keys"][:20]})  # the schema check is slow; the rows share one shape
    assert len(doc["keys"]) == 1000 and {r["status"] for r in doc["keys"]} == {"active"}
    days = [r["rotation_due_in_days"] for r in doc["keys"]]
    assert days == sorted(days)  # most urgent first


# The report's shortcuts (a string already in `format_time`'s form is reused, not parsed and
# formatted again) against the round trip they skip, on well-formed, ill-formed and near-miss text.
_TIME_SHAPED = st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", fullmatch=True)
_NEAR_MISSES = st.sampled_from(["2027-06-01T00:00:00z", " 2027-06-01T00:00:00Z", "2027-06-01T00:00:00.5Z",
                                "2027-06-01T00:00:00+00:00", "2027-06-01T02:00:00+02:00", "2027-02-30T00:00:00Z",
                                "2027-06-01T24:00:00Z", "0000-01-01T00:00:00Z", "2027-06-01T00:00:60Z", ""])


def _round_trip(text: str) -> str:
    try:
        return format_time(parse_time(text))
    except ValueError:
        return text


@given(st.one_of(_TIME_SHAPED, _NEAR_MISSES, st.text(max_size=30)))
def test_a_stored_time_sorts_as_its_round_trip_would(text: str) -> None:
    from keyform.report import _utc

    assert _utc(text) == _round_trip(text)


@given(st.one_of(_TIME_SHAPED, _NEAR_MISSES))
def test_a_shown_time_is_the_formatted_time_it_was_parsed_from(text: str) -> None:
    from keyform.report import _shown

    when = maybe_time(text)
    assert _shown(text, when) == (format_time(when) if when is not None else None)


def test_json_rows_are_what_json_dumps_makes_of_each() -> None:
    """render_json's one encoder writes each row (non-ASCII, quotes, control characters) as
    json.dumps(row, ensure_ascii=False) did, one row per line, with the characters that would
    reorder or hide text in a terminal (U+2028 here; `safe.escaped`) as JSON \\u escapes."""
    rows = (ReportRow(address="a", kind="key", provider="qp", provider_type="questra", status="active",
                      name="ключ \"ü\"\n\t\u2028", created_at="2026-01-01T00:00:00Z", age_days=3),
            ReportRow(address="b", kind="deposed", provider="qp", provider_type="questra", status="deposed"))
    text = render_json(Report(generated_at="2026-01-05T00:00:00Z", refreshed=True, rows=rows, notes=("nöte",)))
    lines = text.split("\n")  # not splitlines: a name may hold U+2028
    assert [f"    {escaped(json.dumps(r.to_json(), ensure_ascii=False))}" for r in rows] == \
        [line.removesuffix(",") for line in lines if line.startswith("    {")]
    assert "\u2028" not in text and "\\u2028" in text
    assert json.loads(text)["keys"] == [r.to_json() for r in rows] and json.loads(text)["notes"] == ["nöte"]


_CELL = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["\0", "%s", "%", "}, {", "\0{", "\ud800", "a\u2028b"]))


@given(st.lists(st.tuples(_CELL, _CELL, st.one_of(st.none(), st.integers(-10**6, 10**6)), st.booleans()), max_size=4))
def test_json_rows_encoded_together_are_each_rows_own_encoding(cells: list[tuple[Any, Any, Any, bool]]) -> None:
    """render_json encodes every row's values in one call cut at NULs (`_json_rows`): a value holding
    a NUL, `%s`, `}, {`, a lone surrogate or nothing still makes each row's line what
    json.dumps(row.to_json(), ensure_ascii=False) writes, and a report of no rows `"keys": []`."""
    rows = tuple(ReportRow(address=f"k{i}", kind="key", provider="qp", provider_type="questra", status="active",
                           name=name, remote_id=rid, age_days=age, in_manifests=kept)
                 for i, (name, rid, age, kept) in enumerate(cells))
    text = render_json(Report(generated_at="2026-01-05T00:00:00Z", refreshed=True, rows=rows))
    lines = text.split("\n")
    assert [f"    {escaped(json.dumps(r.to_json(), ensure_ascii=False))}" for r in rows] == \
        [line.removesuffix(",") for line in lines if line.startswith("    {")]
    assert ('  "keys": []' in lines) == (not rows)
    assert json.loads(text)["keys"] == [r.to_json() for r in rows]


def test_the_summary_counts_one_key_in_the_singular() -> None:
    """`keyform report` of one key said "1 keys."."""
    from keyform.render.report import summary
    from keyform.report import Report, ReportRow

    row = ReportRow(address="a", kind="key", provider="p", provider_type="questra", status="active")
    assert summary(Report("2027-01-01T00:00:00Z", False, (row,))) == "1 key."
    assert summary(Report("2027-01-01T00:00:00Z", False, (row, row))) == "2 keys."
