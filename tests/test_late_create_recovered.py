"""A create keyform stopped waiting for that makes its key later (review s45): a plug-in's create
abandoned at its bound (`keyform.bounded`, `Overdue`) still runs, and may make the key after the
window recovery matched a lost reply's candidates in (its run's last record + 5 min): a slow
server, an API that creates asynchronously. The key was then outside that window, named at most as
an uncertain candidate, and let go: live and untracked for good (only `report --unmanaged` showed
it). The journal now records that keyform stopped waiting while the call ran (`abandoned` with
`running`), and that create's window stays open for an hour (`recovery.LATE_CREATE`): a plan finds
the late key as its orphan, and one made before it appears keeps the create journaled to look again.
A second Ctrl-C journals the plug-in creates it leaves running the same way (a real process).

In-process with a plug-in provider type registered for the test (its bound cut to 0.3 s), against
the emulator on 127.0.0.1; both clocks moved together (`tests.movedclock`), never a sleep."""

from __future__ import annotations

import signal
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.project import ORG, Project, wait_for
from keyform import bounded, operations
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError
from keyform.plan import Action
from keyform.providers import foreign
from keyform.providers.questra import QuestraProvider
from keyform.remote import CreateRequest
from keyform.typeregistry import register, unregister
from tests import fakedist
from tests.movedclock import MovedClock, options


@dataclass
class _Late:
    """The plug-in's first create of `k1`: held until `release`, then made with a client of its own
    (the session that called it is closed by then); `made` once it returned."""

    held: bool = False

    release: threading.Event = field(default_factory=threading.Event)
    made: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def late(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Late]:
    monkeypatch.setattr(foreign, "bound_of", lambda deadline: 0.3)  # (2 x deadline otherwise: 2 s at least)
    ns: dict[str, Any] = {}
    exec(fakedist.QUESTRA_WRAPPER, ns)  # (the test plug-ins' shared source)
    hold = _Late()

    wrapped: Any = ns["Wrapped"]

    class Late(wrapped):  # type: ignore[misc]
        def __init__(self, inner: Any, config: Any, token: str) -> None:
            super().__init__(inner)
            self.config, self.token = config, token

        def create(self, request: Any) -> Any:
            if request.address != "k1" or hold.held:
                return self.inner.create(request)
            hold.held = True  # (the first create of k1 only)
            hold.release.wait(30)
            client = ns["questra_client"](self.config, self.token)
            try:
                made = client.create(request)
            finally:
                client.close()
                hold.made.set()
            return made

    def _open(config: Any, token: str, org_id: Any, **kw: Any) -> Any:
        return Late(ns["questra_client"](config, token), config, token)

    ptype = ns["questra_type"]("late-q", _open, "test plug-in: a create that lands late")
    register(ptype, origin="kf-late 1.0")
    try:
        yield hold
    finally:
        hold.release.set()
        unregister(ptype)
        # the abandoned call ends before the next test: one still running makes an in-process
        # `keyform` command leave at once (`cli._exit_hard_if`), taking pytest with it
        assert wait_for(lambda: bounded.running() == 0, 30)


def _project(tmp_path: Path, emulator: Emulator) -> Project:
    project = Project(tmp_path, emulator.url)
    project._one_provider(textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: late-q
          base_url: {emulator.url}
          token: {{env: QUESTRA_TOKEN}}
          org: {ORG}
        """), "  "), "k0: {provider: pp, name: k0}\nk1: {provider: pp, name: k1}\n")
    return project


def _live(control: EmulatorControl) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k in control.questra_keys(ORG):
        if not k.get("revoked"):
            out.setdefault(k["name"], []).append(k["id"])
    return out


def _abandoned_apply(project: Project, clock: MovedClock) -> None:
    with operations.session(options(project, clock), "apply") as sess:
        report = operations.apply(sess, operations.plan(sess))
    assert [c.address for c, _ in report.failed] == ["k1"], report.failed
    assert "did not return within" in report.failed[0][1]
    ops = [(r["op"], r.get("running")) for r in project.journal_records() if r.get("op") != "begin"]
    assert ops[-1] == ("abandoned", True), ops  # keyform stopped waiting while the create ran


def _interrupted_twice(project: Project, ready: Callable[[], bool], *args: str, env: dict[str, str]) -> None:
    """`keyform ARGS` as a real process, sent Ctrl-C once `ready()` (and again until keyform gives
    up: two sent at once may count as one); it must end "Interrupted twice", exit 1."""
    proc = project.spawn(*args, env=env)
    try:
        assert wait_for(lambda: ready() or proc.poll() is not None, 60)
        assert proc.poll() is None, proc.communicate()
        for _ in range(100):
            proc.send_signal(signal.SIGINT)
            if wait_for(lambda: proc.poll() is not None, 0.2):
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1 and "Interrupted twice" in err, (out, err)


def _left_running_beside_theirs(tmp_path: Path, emulator: Emulator,
                                emu_control: EmulatorControl) -> tuple[Project, MovedClock, str]:
    """A project, its moved clock, and the id of another workspace's key named k1, made half an
    hour before an apply whose create of k1 keyform stopped waiting for (`_abandoned_apply`)."""
    project = _project(tmp_path, emulator)
    clock = MovedClock(emu_control)
    other_id = _their_k1(project, emulator)
    clock.move(minutes=30)
    _abandoned_apply(project, clock)
    return project, clock, other_id


def _apply_naming_it_uncertain(project: Project, clock: MovedClock, other_id: str) -> None:
    """An apply whose recovery finds k1's create uncertain, the other workspace's key its one candidate."""
    with operations.session(options(project, clock), "apply") as sess:
        plan = operations.plan(sess)
        assert [u.candidates for u in sess.recovery.uncertain] == [(other_id,)]
        assert operations.apply(sess, plan).ok


def _their_k1(project: Project, emulator: Emulator) -> str:
    """The id of a key named k1 that another workspace makes in the same org (untracked here)."""
    theirs = QuestraProvider("other", emulator.url, project.env["QUESTRA_TOKEN"], ORG)
    try:
        return theirs.create(CreateRequest("other", {"name": "k1"}, None, {})).key.id
    finally:
        theirs.close()


def test_a_create_that_lands_after_keyform_stopped_waiting_is_found_as_its_orphan(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, late: _Late) -> None:
    project = _project(tmp_path, emulator)
    clock = MovedClock(emu_control)
    _abandoned_apply(project, clock)
    clock.move(minutes=10)  # the API makes the key ten minutes later: past the run's last record + 5 min
    late.release.set()
    assert late.made.wait(30)
    late_id = _live(emu_control)["k1"][0]

    with operations.session(options(project, clock), "plan") as sess:
        plan = operations.plan(sess)
    orphans = [c for c in plan.changes if c.orphan]
    assert [(c.address, c.remote_id) for c in orphans] == [("k1", late_id)], plan.changes
    assert sess.recovery.uncertain == []
    with operations.session(options(project, clock), "apply") as sess:
        report = operations.apply(sess, operations.plan(sess))
    assert report.ok, report.failed
    live = _live(emu_control)
    assert late_id not in live["k1"] and len(live["k1"]) == 1 and live["k1"][0] == project.remote_id("k1")
    assert project.journal_records() == []


def test_a_create_not_landed_yet_stays_journaled_until_its_key_appears(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, late: _Late) -> None:
    project = _project(tmp_path, emulator)
    clock = MovedClock(emu_control)
    _abandoned_apply(project, clock)
    clock.move(minutes=2)
    with operations.session(options(project, clock), "apply") as sess:  # before the key is made
        plan = operations.plan(sess)
        report = operations.apply(sess, plan)
    assert report.ok, report.failed
    assert any("keyform stopped waiting for its create while it still ran" in w for w in map(str, sess.warnings))
    assert [r["op"] for r in project.journal_records() if r.get("op") != "begin"] == ["intent", "abandoned"]
    clock.move(minutes=20)
    late.release.set()
    assert late.made.wait(30)
    assert wait_for(lambda: len(_live(emu_control)["k1"]) == 2, 10)
    late_id = next(i for i in _live(emu_control)["k1"] if i != project.remote_id("k1"))
    with operations.session(options(project, clock), "apply") as sess:
        plan = operations.plan(sess)
        assert [(c.address, c.remote_id) for c in plan.changes if c.orphan] == [("k1", late_id)]
        assert operations.apply(sess, plan).ok
    assert _live(emu_control)["k1"] == [project.remote_id("k1")]
    assert project.journal_records() == []


def test_a_create_that_never_lands_is_let_go_once_its_window_ends(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, late: _Late) -> None:
    project = _project(tmp_path, emulator)
    clock = MovedClock(emu_control)
    _abandoned_apply(project, clock)
    clock.move(hours=1, minutes=6)  # (the hour and, the offset not measured, its 5 min margin)
    with operations.session(options(project, clock), "apply") as sess:
        assert operations.apply(sess, operations.plan(sess)).ok
    assert any("an interrupted create left no key behind" in str(w) for w in sess.warnings)
    assert project.journal_records() == []
    assert sorted(_live(emu_control)) == ["k0", "k1"]


def test_an_unplaced_window_still_names_candidates_without_revoking(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, late: _Late) -> None:
    """The ambiguity rule holds in the longer window: another untracked key with k1's name (another
    workspace's, made before the create) shows someone else makes such keys, so the late key is
    not revoked on its own: both are named, with their `keyform import` commands."""
    project, clock, other_id = _left_running_beside_theirs(tmp_path, emulator, emu_control)
    clock.move(minutes=40)
    late.release.set()
    assert late.made.wait(30)
    with operations.session(options(project, clock), "plan") as sess:
        plan = operations.plan(sess)
    assert [c for c in plan.changes if c.orphan] == []
    assert [u.address for u in sess.recovery.uncertain] == ["k1"]
    assert other_id in sess.recovery.uncertain[0].candidates and len(sess.recovery.uncertain[0].candidates) == 2
    assert "`keyform import k1 " in sess.recovery.uncertain[0].advice()
    assert not any(c.action is Action.DELETE for c in plan.changes)



CTRL_C_PLUGIN = fakedist.QUESTRA_WRAPPER + '''
import threading


class Late(Wrapped):
    def create(self, request):
        if request.address == "k1":
            threading.Event().wait()  # runs on; its key is made after keyform left (by the test)
        return self.inner.create(request)


def _open(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    return Late(questra_client(config, token, timeout=timeout, max_retries=max_retries))


LATE = questra_type("late-q", _open, "test plug-in: a create that runs on")
'''


def test_a_create_a_second_ctrl_c_left_running_is_found_when_it_lands_late(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, late: _Late) -> None:
    """A second Ctrl-C leaves a plug-in's create running as its bound does, and journals it so:
    its key, made ten minutes after keyform left (an API that creates asynchronously), is the orphan
    the next plan finds. (Before, the create's intent alone was left: a window ending 5 minutes
    after the run's last record.) A real `keyform apply` process and real signals."""
    env = fakedist.install(tmp_path / "site", "kf-late", "1.0", "[keyform.providers]\nlate-q = kf_late:LATE\n",
                           "kf_late", CTRL_C_PLUGIN)
    project = _project(tmp_path, emulator)
    clock = MovedClock(emu_control)
    def started() -> bool:
        ops = {(r["op"], r.get("address")) for r in project.journal_records()}
        return ("done", "k0") in ops and ("intent", "k1") in ops

    _interrupted_twice(project, started, "apply", "--auto-approve", env=env)
    ops = [(r["op"], r.get("running")) for r in project.journal_records() if r.get("op") != "begin"]
    assert ops[-1] == ("abandoned", True), ops
    clock.move(minutes=10)
    theirs = QuestraProvider("api", emulator.url, project.env["QUESTRA_TOKEN"], ORG)  # the API makes the key now
    try:
        late_id = theirs.create(CreateRequest("k1", {"name": "k1"}, None, {})).key.id
    finally:
        theirs.close()
    late.held = True  # (the plug-in registered in this process creates k1 at once)
    with operations.session(options(project, clock), "apply") as sess:
        plan = operations.plan(sess)
        assert [(c.address, c.remote_id) for c in plan.changes if c.orphan] == [("k1", late_id)], plan.changes
        assert operations.apply(sess, plan).ok
    assert _live(emu_control)["k1"] == [project.remote_id("k1")] and sorted(project.state()["keys"]) == ["k0", "k1"]


def test_a_create_uncertain_while_its_window_is_open_stays_journaled(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, late: _Late) -> None:
    """Another workspace's key with k1's name makes the late create uncertain (never revoked); while
    its hour is not over, its own key may be made yet, so the apply that reported the candidates
    keeps the create journaled: the key made twenty minutes later is named by the next plan, with
    its `keyform import` command. (Before, the apply let the create go, as for a killed apply's
    uncertain create, and the late key stayed live and untracked, named nowhere.) Once the hour is
    over, the uncertain create is reported and let go as before."""
    project, clock, other_id = _left_running_beside_theirs(tmp_path, emulator, emu_control)
    clock.move(minutes=32)
    _apply_naming_it_uncertain(project, clock, other_id)
    assert [r["op"] for r in project.journal_records() if r.get("op") != "begin"] == ["intent", "abandoned"]
    clock.move(minutes=50)
    late.release.set()
    assert late.made.wait(30)
    assert wait_for(lambda: len(_live(emu_control)["k1"]) == 3, 10)
    late_id = next(i for i in _live(emu_control)["k1"] if i not in (other_id, project.remote_id("k1")))
    with operations.session(options(project, clock), "plan") as sess:
        plan = operations.plan(sess)
    assert [c for c in plan.changes if c.orphan] == []
    assert not plan.has_changes and not plan.unsaved  # (plan --detailed-exitcode: 0, nothing to apply)
    assert [sorted(u.candidates) for u in sess.recovery.uncertain] == [sorted([other_id, late_id])]
    assert f"`keyform import k1 {late_id}`" in sess.recovery.uncertain[0].advice()
    clock.move(hours=1, minutes=40)  # its window is over: reported once more, and let go
    with operations.session(options(project, clock), "apply") as sess:
        plan = operations.plan(sess)
        assert any(f"`keyform import k1 {late_id}`" in n for n in plan.notes), plan.notes
        assert operations.apply(sess, plan).ok
    assert project.journal_records() == []


def test_importing_the_late_key_settles_its_create(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, late: _Late) -> None:
    """The plan names the key a create left running made as its orphan, and the user adopts it
    instead (`keyform import k1 ID`, k1 being untracked since its create was abandoned): that
    settles the create. Before, the create stayed journaled with its window open for the rest of
    the hour, its key now tracked and so no candidate: another workspace's key named k1, made in
    that hour, was the only candidate left and revoked as its orphan."""
    project = _project(tmp_path, emulator)
    clock = MovedClock(emu_control)
    _abandoned_apply(project, clock)
    clock.move(minutes=10)
    late.release.set()
    assert late.made.wait(30)
    late_id = _live(emu_control)["k1"][0]
    operations.import_key(options(project, clock), "k1", late_id, lambda diagnostics: None)
    assert project.remote_id("k1") == late_id
    assert project.journal_records() == []
    clock.move(minutes=20)
    other_id = _their_k1(project, emulator)
    clock.move(minutes=25)
    with operations.session(options(project, clock), "apply") as sess:
        plan = operations.plan(sess)
        assert [c for c in plan.changes if c.orphan] == [] and not plan.has_changes, plan.changes
        assert operations.apply(sess, plan).ok
    assert sorted(_live(emu_control)["k1"]) == sorted([late_id, other_id])


def test_state_rm_refuses_a_key_the_journaled_create_would_take_for_its_orphan(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, late: _Late) -> None:
    """After a create left running, the next apply makes k1 anew (tracked) while the create stays
    journaled for its window. `state rm k1` (to hand the key over) would leave that key untracked,
    with k1's name, made inside the window: the only candidate, revoked as the create's orphan by
    the next apply. It is refused, nothing changed (`recovery.would_take`)."""
    project = _project(tmp_path, emulator)
    clock = MovedClock(emu_control)
    _abandoned_apply(project, clock)
    clock.move(minutes=2)
    with operations.session(options(project, clock), "apply") as sess:
        assert operations.apply(sess, operations.plan(sess)).ok
    ours = project.remote_id("k1")
    raw = project.state_path.read_bytes()
    with pytest.raises(KeyformError, match=r"state rm: k1's key .* would be taken for that create's orphan"):
        operations.state_rm(options(project, clock), "k1")
    assert project.state_path.read_bytes() == raw
    clock.move(minutes=10)
    with operations.session(options(project, clock), "apply") as sess:
        plan = operations.plan(sess)
        assert [c for c in plan.changes if c.orphan] == [], plan.changes
    assert ours in _live(emu_control)["k1"]


HOLD_ALL_PLUGIN = fakedist.QUESTRA_WRAPPER + '''
import os
import threading


class Late(Wrapped):
    def create(self, request):
        open(os.path.join(os.environ["KF_SENT"], request.address), "w").close()  # (the call went out)
        threading.Event().wait()  # runs on
        return self.inner.create(request)


def _open(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    return Late(questra_client(config, token, timeout=timeout, max_retries=max_retries))


LATE = questra_type("late-q", _open, "test plug-in: creates that run on")
'''


def test_a_second_ctrl_c_journals_only_the_creates_it_sent_as_left_running(
        tmp_path: Path, emulator: Emulator) -> None:
    """--parallelism 2: two plug-in creates go out and run on, the third waits for a slot (its
    intent journaled, never sent). A second Ctrl-C journals the two as left running (their window
    an hour), not the third: it never reached the API, and an hour's window for it would have
    taken another key of its name made in that hour for its orphan. A real process, real signals."""
    env = fakedist.install(tmp_path / "site", "kf-late", "1.0", "[keyform.providers]\nlate-q = kf_late:LATE\n",
                           "kf_late", HOLD_ALL_PLUGIN)
    sent = tmp_path / "sent"
    sent.mkdir()
    project = Project(tmp_path, emulator.url)
    project._one_provider(textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: late-q
          base_url: {emulator.url}
          token: {{env: QUESTRA_TOKEN}}
          org: {ORG}
        """), "  "), "".join(f"k{i}: {{provider: pp, name: k{i}}}\n" for i in range(3)))
    def waiting() -> bool:
        intents = [r for r in project.journal_records() if r["op"] == "intent"]
        return len(intents) == 3 and len(list(sent.iterdir())) == 2

    _interrupted_twice(project, waiting, "apply", "--auto-approve", "--parallelism", "2",
                       env={**env, "KF_SENT": str(sent)})
    went = sorted(p.name for p in sent.iterdir())
    records = project.journal_records()
    seq_of = {r["address"]: r["seq"] for r in records if r["op"] == "intent"}
    assert sorted(seq_of) == ["k0", "k1", "k2"] and len(went) == 2
    running = {r["seq"] for r in records if r["op"] == "abandoned" and r.get("running")}
    assert running == {seq_of[a] for a in went}, records


def test_importing_a_candidate_id_at_another_instance_does_not_settle_the_create(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, late: _Late) -> None:
    """Two instances may use the same ids (an API counting integer ids per account): the create of
    k1 at `pp`, uncertain with another workspace's key as its candidate and journaled while its
    window is open, is no business of `keyform import k2 ID` adopting the key of that id at `qq`.
    Before, any uncertain create naming the id was settled: let go from the journal with its window
    open, so the key it made later was named by no plan (live and untracked)."""
    project, clock, other_id = _left_running_beside_theirs(tmp_path, emulator, emu_control)
    clock.move(minutes=32)
    _apply_naming_it_uncertain(project, clock, other_id)
    kept = [r["op"] for r in project.journal_records() if r.get("op") != "begin"]
    assert kept == ["intent", "abandoned"], kept
    # org_b's own key with the same id (the emulator mints random ids: given the other's here)
    store = emulator._backend.questra_store
    theirs = store.create("org_b", "k2", None)
    del store.orgs["org_b"][theirs.id]
    theirs.id = other_id
    store.orgs["org_b"][other_id] = theirs
    project._one_provider(textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: late-q
          base_url: {emulator.url}
          token: {{env: QUESTRA_TOKEN}}
          org: {ORG}
        qq: {{type: questra, base_url: "{emulator.url}", token: {{env: QUESTRA_TOKEN}}, org_id: org_b}}
        """), "  "), "k0: {provider: pp, name: k0}\nk1: {provider: pp, name: k1}\nk2: {provider: qq, name: k2}\n")
    operations.import_key(options(project, clock), "k2", other_id, lambda diagnostics: None)
    assert project.remote_id("k2") == other_id
    kept = [r["op"] for r in project.journal_records() if r.get("op") != "begin"]
    assert kept == ["intent", "abandoned"], kept  # pp's create: still looked for until its window ends
