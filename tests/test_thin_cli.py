"""A thin CLI (issue 16 item 7): `keyform.cli` parses arguments, calls one `keyform.operations`
entry per command and renders through a view chosen once (`keyform.render.views`). The state
commands are library calls (no backend opened or lock taken in cli.py), and `keyform report`
in all its modes reads through one read-only session."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from pathlib import Path

import pytest

import keyform.cli
from harness.project import Project
from keyform import operations
from keyform.applier import ApplyEvent
from keyform.emulator import Emulator
from keyform.errors import Diagnostic, KeyformError, LockError
from keyform.operations import ApplyRequest
from keyform.plan import Change, Plan
from keyform.providers.ratelimit import RateEvent
from keyform.render.views import JSONView, MarkdownView, TextView, view


def test_cli_opens_no_backend_takes_no_lock_and_branches_on_no_format() -> None:
    tree = ast.parse(Path(keyform.cli.__file__).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & {"open_backend", "LocalBackend", "PostgresBackend", "StateBackend", "fold_journal", "keep_journal", "session"}
    assert not attrs & {"lock", "save", "read_journal", "journal_open", "replace_journal"}
    assert not attrs & {"session", "commit_recovery", "check_saved_plan"}  # one operations entry per command
    json_branches = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)
                     and any(isinstance(c, ast.Constant) and c.value in ("json", "text") for c in n.comparators)]
    assert json_branches == [], [ast.unparse(n) for n in json_branches]
    state_options = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == "--state"]
    assert len(state_options) == 1  # one --state option, shared by every command


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    p = Project(tmp_path, emulator.url)
    p.questra("  ci-bot: {provider: qp, name: CI bot}\n  deploy: {provider: qp, name: Deploy}\n")
    assert p.run("apply", "--auto-approve").exit_code == 0
    return p


def _options(project: Project) -> operations.Options:
    return operations.Options(files=[str(project.manifest)], env=project.env)


def test_state_commands_are_operations_entries(project: Project, tmp_path: Path) -> None:
    opts = _options(project)
    assert sorted(operations.read_state(opts).keys) == ["ci-bot", "deploy"]
    moved = operations.state_mv(opts, "deploy", "deployer")
    assert moved.address == "deployer" and sorted(operations.pull_state(opts).keys) == ["ci-bot", "deployer"]
    removed = operations.state_rm(opts, "ci-bot")
    assert sorted(operations.read_state(opts).keys) == ["deployer"] and removed.remote_id
    with pytest.raises(KeyformError, match="no key 'ci-bot' in the state"):
        operations.state_rm(opts, "ci-bot")
    # --state FILE needs no manifests at all
    copy = tmp_path / "copy.state.json"
    copy.write_text(project.state_path.read_text())
    assert sorted(operations.read_state(operations.Options(state_path=str(copy))).keys) == ["deployer"]
    pushed = operations.push_state(opts, str(copy))
    assert pushed.warnings == [] and pushed.state.serial == operations.pull_state(opts).serial


def test_state_edits_wait_for_the_lock_as_sessions_do(project: Project) -> None:
    opts = _options(project)
    with operations.session(opts, "apply"), pytest.raises(LockError):
        operations.state_rm(opts, "ci-bot")
    assert "ci-bot" in operations.read_state(opts).keys  # nothing written


def test_force_unlock_asks_before_breaking_and_a_refusal_changes_nothing(project: Project) -> None:
    asked: list[str] = []

    def refuse() -> None:
        asked.append("asked")
        raise KeyformError("force-unlock cancelled.")

    with pytest.raises(KeyformError, match="cancelled"):
        operations.force_unlock(_options(project), "no-such-lock", refuse)
    assert asked == ["asked"]


def test_import_sends_recovery_warnings_first_and_returns_its_own(project: Project) -> None:
    opts = _options(project)
    rid = operations.state_rm(opts, "deploy").remote_id
    sent: list[object] = []
    record, warnings = operations.import_key(opts, "deploy", rid, warn=sent.append)
    assert record.remote_id == rid and sent == [[]]  # no interrupted apply: nothing to warn about
    assert [w.severity.value for w in warnings] == ["Warning"]  # Questra shows a secret only once
    assert "cannot be recovered" in warnings[0].message


def test_both_reports_read_through_one_read_only_session(project: Project) -> None:
    opts = _options(project)
    got = operations.run_report(opts, refresh_remote=False)
    assert [r.address for r in got.report.rows] == ["ci-bot", "deploy"]
    with operations.read_session(opts) as sess:  # no lock: a report never waits for an apply
        with operations.session(opts, "apply"):
            pass
        assert not sess.unrecovered and sorted(sess.state.keys) == ["ci-bot", "deploy"]
        usage = operations.usage_report(sess, refresh_remote=False)
    assert not usage.idle


class _UI:
    """An ApplyUI that records what run_apply showed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def planned(self, plan: Plan) -> None:
        self.seen.append(f"planned {len(plan.actionable)}")

    def applying_saved(self, plan: Plan) -> None:
        self.seen.append(f"saved {len(plan.actionable)}")

    def diagnostics(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.seen.extend(f"{d.severity.value}: {d}" for d in diagnostics)

    def event(self, event: ApplyEvent) -> None:
        self.seen.append(f"{event.kind} {event.change.address}")

    def rate(self, event: RateEvent) -> None:
        self.seen.append("rate")

    def abandoned(self, in_flight: list[Change]) -> None:
        self.seen.append(f"abandoned {len(in_flight)}")


def test_apply_and_destroy_are_one_operations_entry(project: Project, tmp_path: Path) -> None:
    opts = _options(project)
    ui = _UI()
    assert operations.run_apply(opts, ApplyRequest(), ui, confirm=lambda: pytest.fail("nothing to confirm")) is None
    assert ui.seen == ["planned 0"]

    def cancel() -> None:
        ui.seen.append("asked")
        raise KeyformError("Apply cancelled.")

    with pytest.raises(KeyformError, match="cancelled"):
        operations.run_apply(opts, ApplyRequest(destroy=True), ui, confirm=cancel)
    assert ui.seen[1:] == ["planned 2", "asked"] and len(operations.read_state(opts).keys) == 2
    ui.seen.clear()
    report = operations.run_apply(opts, ApplyRequest(destroy=True, targets=("deploy",)), ui)
    assert report is not None and report.ok and sorted(operations.read_state(opts).keys) == ["ci-bot"]
    assert ui.seen == ["planned 1", "start deploy", "done deploy"]
    # a saved plan is applied as it is: not shown again, not asked
    saved = tmp_path / "destroy.plan"
    saved.write_text(operations.run_plan(opts, destroy=True).dumps())
    ui.seen.clear()
    report = operations.run_apply(opts, ApplyRequest(plan_file=str(saved)), ui,
                                  confirm=lambda: pytest.fail("a saved plan is not confirmed again"))
    assert report is not None and report.ok and operations.read_state(opts).keys == {}
    assert ui.seen == ["saved 1", "start ci-bot", "done ci-bot"]


def _plan() -> Plan:
    return Plan(changes=(), notes=("a note",), lineage=None, serial=0, manifest_digest="d")


def test_views_are_chosen_once_per_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(view("text"), TextView) and isinstance(view("markdown"), MarkdownView)
    assert isinstance(view("json"), JSONView)
    plan = _plan()
    view("json").planned(plan)
    assert json.loads(capsys.readouterr().out) == {"type": "planned", "plan": plan.to_json()}
    view("json").plan(plan)
    assert capsys.readouterr().out == plan.dumps()
    view("json").saved("x.plan")
    view("json").confirming()  # the JSON stream has no blank line before the question
    view("markdown").saved("x.plan")
    assert capsys.readouterr().out == ""
    view("text").saved("x.plan")
    assert capsys.readouterr().out == ("\nSaved the plan to x.plan. To perform exactly these actions, run:\n"
                                       "  keyform apply x.plan\n")
