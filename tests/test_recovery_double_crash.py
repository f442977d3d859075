"""A double crash left a live key no state tracked, for ever (found by a randomized adversarial
crash campaign in stop 36, seed 6 iteration 47, then reduced to this journal).

Apply #1 (`--replace a`) is killed after its create's reply arrived (`created` journaled, no `done`):
key K1 is a known orphan. The recovery apply #2 starts the replacement again and is killed right
after sending its create (intent only): key K2 exists, its reply was lost. Apply #3 then:
- revokes K1 as the orphan of #1's create (it knows K1's id), but
- for #2's lost reply it lists the untracked keys named `deploy-bot` and finds K1 AND K2: two
  candidates for one create, so "keyform cannot tell which, if any, is its own, so it revokes none",
  warns once and lets the record go. K1 is the journal's own orphan (revoked by the same apply), so
  K2 was the only candidate. K2 stays live and untracked; the next plan says "No changes".

Expected: keys the journal itself names (`created` records) are not candidates for another
create's lost reply (`recovery._match_group` excludes `tracked` only), so K2 is revoked.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.emulator import EmulatorProcess
from harness.project import ORG, TOKENS, Project
from keyform.backends.local import LocalBackend
from keyform.durations import format_time
from keyform.emulator.client import EmulatorControl
from keyform.journal import Begin, Journal


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    process = EmulatorProcess()
    try:
        yield process
    finally:
        process.stop()


KEYS = """\
a: {provider: qp, name: deploy-bot}
"""


def _create(url: str, name: str) -> dict[str, Any]:
    """What the killed applies' create calls did at the provider (the plain Questra API)."""
    req = urllib.request.Request(f"{url}/api-keys", data=json.dumps({"name": name}).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {TOKENS['QUESTRA_TOKEN']}", "X-Org-Id": ORG,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def _two_crashes(project: Project, url: str, *, second_sent: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Apply #1 (`--replace a`) killed after its create's reply was journaled (K1), then apply #2 (the
    recovery) killed right after sending its create (K2, when `second_sent`) or before: the journal
    the two leave, forged. Returns (K1, K2)."""
    project.questra(KEYS)
    first = project.run_process("apply", "--auto-approve")
    assert first.exit_code == 0, first.tail()
    old = project.remote_id("a")
    store = LocalBackend(project.state_path)
    state = store.load()
    assert state is not None
    fh = store.journal_open()
    fh.append(Begin.of(state))
    run1 = Journal(fh, "crash1")
    seq1 = run1.intent("create", "a", "qp", label="deploy-bot", at=format_time(datetime.now(UTC)), replaces=old,
                       match={"name": "deploy-bot"})
    k1 = _create(url, "deploy-bot")
    run1.created(seq1, k1["id"], k1.get("created_at"))
    fh.append(Begin.of(state))
    Journal(fh, "crash2").intent("create", "a", "qp", label="deploy-bot", at=format_time(datetime.now(UTC)),
                                 replaces=old, match={"name": "deploy-bot"})
    k2 = _create(url, "deploy-bot") if second_sent else None
    fh.close()
    return k1, k2


def test_second_crash_during_recovery_leaves_no_untracked_live_key(tmp_path: Path, emulator: Any) -> None:
    project = Project(tmp_path, emulator.url)
    k1, k2 = _two_crashes(project, emulator.url, second_sent=True)
    assert k2 is not None

    third = project.run_process("apply", "--auto-approve")
    print(third.tail(3000))
    assert third.exit_code == 0, third.tail()
    plan = project.run_process("plan", "--detailed-exitcode")
    with EmulatorControl(emulator.url) as control:
        live = {k["id"] for k in control.questra_keys(ORG) if not k["revoked"]}
    st = project.state()
    tracked = {ks["remote_id"] for ks in st["keys"].values()} | {d["remote_id"] for d in st["deposed"]}
    assert k1["id"] not in live  # revoked as the orphan of apply #1: fine
    assert live - tracked == set(), (
        f"{sorted(live - tracked)} live and untracked (K2={k2['id']}); the next plan (exit {plan.exit_code}) "
        f"says: {plan.tail(150)!r}")


def test_second_crash_before_its_create_was_sent_converges_in_one_apply(tmp_path: Path,
                                                                      emulator: EmulatorProcess) -> None:
    """The same two crashes, but apply #2 was killed before its create reached the provider (only the
    intent is journaled, no key K2). #2's lost reply is then matched to K1 (the journal's own orphan of
    #1: the only untracked key named deploy-bot), so K1 is the orphan of both creates. Apply #3
    revokes it once and exits 0, but keeps #1's `created` record: the next plan (seed 7 iteration 25
    of the campaign) revokes the already revoked K1 again and rotates the fresh key `a` once more
    ("its sink entry may hold the secret of the orphan ...")."""
    project = Project(tmp_path, emulator.url)
    _two_crashes(project, emulator.url, second_sent=False)

    third = project.run_process("apply", "--auto-approve")
    assert third.exit_code == 0, third.tail()
    plan = project.run_process("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, f"not converged after a successful apply:\n{plan.tail(1500)}"


def test_two_crashed_runs_each_losing_a_create_reply_revoke_both_keys(tmp_path: Path,
                                                                    emulator: EmulatorProcess) -> None:
    """Campaign seed 9 iteration 5: apply #1 (`--replace a`) stopped by a double Ctrl-C, the recovery
    apply #2 killed by SIGTERM; each had sent its create and journaled no reply. Two interrupted
    creates of `deploy-bot`, two untracked keys named `deploy-bot` in the window: by
    docs/recovery.md ("no more candidates than interrupted creates with the same attributes: they are
    keyform's; each is an orphan and apply revokes it") both are revoked."""
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    assert project.run_process("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("a")
    store = LocalBackend(project.state_path)
    state = store.load()
    assert state is not None
    fh = store.journal_open()
    made = []
    for run in ("crash1", "crash2"):
        fh.append(Begin.of(state))
        Journal(fh, run).intent("create", "a", "qp", label="deploy-bot", at=format_time(datetime.now(UTC)),
                                replaces=old, match={"name": "deploy-bot"})
        made.append(_create(emulator.url, "deploy-bot")["id"])
    fh.close()

    third = project.run_process("apply", "--auto-approve")
    print(third.tail(3000))
    assert third.exit_code == 0, third.tail()
    with EmulatorControl(emulator.url) as control:
        live = {k["id"] for k in control.questra_keys(ORG) if not k["revoked"]}
    assert not live & set(made), f"left live and untracked: {sorted(live & set(made))}"
