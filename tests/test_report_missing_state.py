"""Found by an adversarial pass (stop 36): a read-only command given a missing `--state FILE` (a
typo, or a moved path in a nightly job) read it as an empty state: every key "not created",
"Nothing is due", exit 0, for ever. A read-only command never creates the file, so an explicit
`--state` path that does not exist is one clear error (exit 1), not an all-clear."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator


def test_report_with_a_missing_state_file_is_an_error(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  expires_in: 1d\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    due = project.run("report", "-f", str(project.manifest), "--due-within", "14d")
    assert due.exit_code == 2, due.output  # with the real state: due
    res = project.run("report", "-f", str(project.manifest), "--due-within", "14d",
                      "--state", str(tmp_path / "typo.state.json"))
    assert res.exit_code == 1, res.output
    assert "typo.state.json" in res.stderr, res.output


def test_plan_and_destroy_with_a_missing_state_file_are_errors(tmp_path: Path, emulator: Emulator) -> None:
    """`plan --state typo.json` planned from an empty state: every key to be created, exit 0 (and
    its lock made the directories of the path). It never creates the file, so it is refused as the
    read-only commands are; so is `destroy`, which has nothing to destroy in a missing state."""
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    typo = tmp_path / "typo.state.json"
    res = project.run("plan", "--state", str(typo))
    assert res.exit_code == 1, res.output
    assert res.stderr == (f"Error: --state {typo}: {typo} does not exist (check the path; a read-only command "
                          "does not treat a missing state as an empty one)\n")
    assert res.stdout == ""
    nested = tmp_path / "no-such-dir" / "keyform.state.json"
    assert project.run("plan", "--state", str(nested)).exit_code == 1
    res = project.run("destroy", "--auto-approve", "--state", str(typo))
    assert res.exit_code == 1, res.output
    assert res.stderr == (f"Error: --state {typo}: {typo} does not exist (check the path; destroy does not "
                          "treat a missing state as an empty one)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no lock file, no directory made


def test_apply_with_a_new_state_file_starts_one_and_says_so(tmp_path: Path, emulator: Emulator) -> None:
    """As Terraform's `-state`: apply given a path that does not exist starts a state there, and its
    plan (shown before the question) says so, so a mistyped path is seen before anything is made."""
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n")
    fresh = tmp_path / "fresh.state.json"
    res = project.run("apply", "--auto-approve", "--state", str(fresh))
    assert res.exit_code == 0, res.output
    assert f"--state {fresh}: {fresh} does not exist yet; this apply starts a new state there" in res.stdout
    assert fresh.exists() and not project.state_path.exists()
    again = project.run("plan", "--detailed-exitcode", "--state", str(fresh))
    assert again.exit_code == 0, again.output
    assert "does not exist" not in again.output


def test_a_saved_plan_for_a_new_state_file_is_made_and_applied(tmp_path: Path, emulator: Emulator) -> None:
    """A pipeline that always passes `--state` reviews its first plan, then applies it: `plan --out`
    for a path that does not exist yet was refused as a typo (no plan file to apply)."""
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n")
    fresh, saved = tmp_path / "ci.state.json", tmp_path / "p.plan"
    res = project.run("plan", "--state", str(fresh), "--out", str(saved))
    assert res.exit_code == 0, res.output
    assert f"--state {fresh}: {fresh} does not exist yet; this saved plan's apply starts a new state there" \
        in res.stdout
    assert saved.exists() and not fresh.exists()
    res = project.run("apply", str(saved), "--state", str(fresh))
    assert res.exit_code == 0, res.output
    assert fresh.exists() and project.run("plan", "--state", str(fresh), "--detailed-exitcode").exit_code == 0


def test_a_state_path_with_only_an_interrupted_first_applys_journal_is_not_missing(
        tmp_path: Path, emulator: Emulator) -> None:
    """A first `apply --state s.json` killed before its first save leaves only `s.json.journal`:
    `plan` shows it and `apply` recovers it; `state list` and `report` said "s.json does not exist
    (check the path ...)" for a path that was right, and never gave the journal's note."""
    from keyform.backends.local import LocalBackend
    from keyform.journal import Begin
    from keyform.state import State

    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n")
    fresh = tmp_path / "s.json"
    store = LocalBackend(fresh)
    fh = store.journal_open()
    fh.append(Begin.of(State.new()))
    fh.close()
    assert not fresh.exists() and fresh.with_name("s.json.journal").exists()
    listed = project.run("state", "list", "--state", str(fresh))
    assert listed.exit_code == 0 and "or was interrupted and left a journal" in listed.stderr, listed.output
    report = project.run("report", "--no-refresh", "--state", str(fresh), "-f", str(project.manifest))
    assert report.exit_code == 0 and "or was interrupted and left a journal" in report.stdout, report.output
