"""The GitOps kit's runs on main, simulated step by step: the state (and the apply journal) that the
jobs commit survive the runner, a merge during an apply, and a push that cannot land.

Each "runner" is a fresh shallow clone of a bare `origin` (as `actions/checkout` makes one, no git
identity), and each step is the kit's own `run:` script run the way Actions runs it, with the real
keyform against the emulator. The `uses:` steps are stood in for: checkout is the clone, the plan
artifact is a copied file. Secrets are given as the kit names them: list-only tokens to the plan
jobs, the write token to the apply job only (the emulator refuses every write with the list-only
one, so a plan job that needed more would fail here).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from tests.workflows import RunStep, Workflow, actions_argv, run_steps, shipped_workflows

KIT = "examples/gitops/.github/workflows/keyform.yml"
WRITE = "qtok-write-0123456789abcdef"
LIST = "qtok-list-0123456789abcdef"
FINGERPRINT_KEY = "9f2c1e0d8b7a69584736251403f2e1d0"
SECRETS = {"QUESTRA_LIST_TOKEN": LIST, "TEXTQL_LIST_TOKEN": LIST, "KEYFORM_FINGERPRINT_KEY": FINGERPRINT_KEY,
           "QUESTRA_TOKEN": WRITE, "TEXTQL_TOKEN": WRITE}
STATE = "keys/keyform.state.json"
JOURNAL = "keys/keyform.state.json.journal"


@cache
def kit() -> Workflow:
    """The kit's workflow, read once (finding it parses every shipped workflow, ~0.1 s, and each step
    of every test asked for it again)."""
    return next(wf for wf in shipped_workflows() if wf.name == KIT)


def step(job: str, marker: str) -> RunStep:
    """The kit's one `run:` step of `job` whose script contains `marker`."""
    found = [s for s in run_steps(kit()) if s.job == job and marker in s.script]
    assert len(found) == 1, f"jobs.{job}: {len(found)} steps contain {marker!r}"
    return found[0]


def expand(value: str, outputs: dict[str, dict[str, str]]) -> str:
    """`${{ secrets.X }}` and `${{ needs.J.outputs.O }}` as Actions would give them (a missing
    secret is the empty string)."""
    def one(m: re.Match[str]) -> str:
        expr = m[1].strip()
        if expr.startswith("secrets."):
            return SECRETS.get(expr.removeprefix("secrets."), "")
        need = re.fullmatch(r"needs\.([\w-]+)\.outputs\.(\w+)", expr)
        assert need, f"no stand-in for ${{{{ {expr} }}}}"
        return outputs.get(need[1], {}).get(need[2], "")
    return re.sub(r"\$\{\{(.*?)\}\}", one, value)


class Origin:
    """A bare repository standing in for GitHub, with main and the manifests."""

    def __init__(self, tmp: Path, env: dict[str, str], url: str, control: EmulatorControl) -> None:
        self.tmp, self.env, self.url, self.control = tmp, env, url, control
        self.bare = tmp / "origin.git"
        self.git("init", "-q", "--bare", "-b", "main", str(self.bare), cwd=tmp)
        self.outputs: dict[str, dict[str, str]] = {}
        self._n = 0

    def git(self, *args: str, cwd: Path, check: bool = True) -> str:
        done = subprocess.run(["git", *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout

    def commit(self, files: dict[str, str], message: str) -> None:
        """A developer's merge: these files written on the tip of main, committed and pushed."""
        self._n += 1
        dev = self.tmp / f"dev{self._n}"
        if any(self.bare.glob("refs/heads/*")) or (self.bare / "packed-refs").exists():
            self.git("clone", "-q", "-b", "main", str(self.bare), str(dev), cwd=self.tmp)
        else:
            self.git("init", "-q", "-b", "main", str(dev), cwd=self.tmp)
            self.git("remote", "add", "origin", str(self.bare), cwd=dev)
        for name, text in files.items():
            (dev / name).parent.mkdir(parents=True, exist_ok=True)
            (dev / name).write_text(text)
        self.git("add", "-A", cwd=dev)
        self.git("-c", "user.name=dev", "-c", "user.email=dev@example.invalid", "commit", "-qm", message, cwd=dev)
        self.git("push", "-q", "origin", "HEAD:main", cwd=dev)

    def runner(self, name: str) -> Path:
        """A fresh runner's checkout of the tip of main: shallow, like actions/checkout's."""
        work = self.tmp / name
        self.git("clone", "-q", "--depth", "1", "-b", "main", f"file://{self.bare}", str(work), cwd=self.tmp)
        return work

    def run(self, job: str, marker: str, work: Path) -> subprocess.CompletedProcess[str]:
        """The kit's step, in `work`, as Actions runs it; its outputs are kept for later `needs`."""
        s = step(job, marker)
        script = work.parent / f"{work.name}-step.sh"
        script.write_text(s.script)
        out, summary = work.parent / f"{work.name}-output", work.parent / f"{work.name}-summary"
        out.write_text("")
        env = {**self.env, **{k: expand(v, self.outputs) for k, v in s.env.items()},
               "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
        done = subprocess.run(actions_argv(s.shell, script), cwd=work, env=env, capture_output=True, text=True,
                              timeout=120)
        for line in out.read_text().splitlines():
            key, _, value = line.partition("=")
            self.outputs.setdefault(job, {})[key] = value
        return done

    def manifest(self, keys: str) -> str:
        # the sink outlives the runners, as the kit asks (a vault, sops in git, ...): here one file
        return MANIFEST.format(url=self.url, sink=self.tmp / "durable" / "keys.env", keys=keys)

    def show(self, path: str) -> str | None:
        done = subprocess.run(["git", "show", f"main:{path}"], cwd=self.bare, env=self.env, capture_output=True,
                              text=True, timeout=60)
        return done.stdout if done.returncode == 0 else None


MANIFEST = """\
version: 1
state: {{path: keyform.state.json, fingerprint_key: {{env: KEYFORM_FINGERPRINT_KEY}}}}
providers:
  q: {{type: questra, base_url: "{url}", token: {{env: QUESTRA_TOKEN}}, org_id: org_kit}}
sinks:
  out: {{type: dotenv, path: "{sink}"}}
defaults: {{sink: out}}
keys:
{keys}"""


@pytest.fixture
def origin(tmp_path: Path, make_emulator: Callable[..., Emulator]) -> Iterator[Origin]:
    emulator = make_emulator(tokens=frozenset({WRITE}), read_only_tokens=frozenset({LIST}))
    home = tmp_path / "home"
    home.mkdir()
    no_identity = tmp_path / "gitconfig"
    no_identity.write_text("[user]\n\tuseConfigOnly = true\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "EMAIL", "QUESTRA", "TEXTQL"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL=str(no_identity), NO_COLOR="1",
               GITHUB_SHA="0123456789abcdef0123456789abcdef01234567", GITHUB_REF_NAME="main",
               GITHUB_RUN_ID="4711", GITHUB_RUN_ATTEMPT="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with EmulatorControl(emulator.url) as control:
        yield Origin(tmp_path, env, emulator.url, control)


def live(o: Origin, name: str) -> list[str]:
    return [k["id"] for k in o.control.questra_keys("org_kit") if k["name"] == name and not k.get("revoked")]


def plan_main(o: Origin, name: str) -> Path:
    """The `plan-main` job on a fresh runner: the guard, then the saved plan; returns the runner."""
    o.outputs.pop("plan-main", None)
    work = o.runner(name)
    guard = o.run("plan-main", "keyform-state-rescue", work)
    assert guard.returncode == 0, guard.stdout + guard.stderr
    done = o.run("plan-main", "keyform plan", work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "keyform.plan").is_file()
    return work


def apply_job(o: Origin, name: str, planned: Path) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """The `apply` job on a fresh runner: the guard, the saved plan (the artifact) applied, then the
    commit step, which runs whatever happened before it (`if: always()`). A failed guard stands for
    the apply, which does not run then."""
    work = o.runner(name)
    (work / "keyform.plan").write_bytes((planned / "keyform.plan").read_bytes())
    guard = o.run("apply", "git ls-remote", work)
    applied = o.run("apply", "keyform apply", work) if guard.returncode == 0 else guard
    committed = o.run("apply", "git commit", work)
    return applied, committed


# ----------------------------------------------------------------------------- the journal survives


def test_an_interrupted_first_apply_leaves_its_journal_on_main_and_the_next_run_revokes_its_key(origin: Origin) -> None:
    """The first-ever create's reply is lost: no state, only a journal. The commit step commits
    the journal (it used to die on `git add` of the absent state); the next run, on a new runner,
    finds the key that create made and revokes it instead of leaving it live and untracked."""
    o = origin
    o.commit({"keys/main.yaml": o.manifest("  svc-a: {provider: q, name: svc a}\n")}, "add svc-a")
    planned = plan_main(o, "r1-plan")
    assert o.outputs["plan-main"].get("apply") == "true"
    assert "svc-a" in (planned.parent / "r1-plan-summary").read_text()  # what the approver reads
    o.control.faults(drop_after_commit_rate=1)
    applied, committed = apply_job(o, "r1-apply", planned)
    o.control.faults(drop_after_commit_rate=0)
    assert applied.returncode != 0 and "may exist remotely" in applied.stderr
    assert committed.returncode == 0, committed.stdout + committed.stderr
    assert o.show(STATE) is None and o.show(JOURNAL)  # the journal rode along, no pathspec error
    assert len(live(o, "svc a")) == 1

    planned = plan_main(o, "r2-plan")
    assert "orphan of an interrupted create of svc-a" in (planned.parent / "r2-plan-summary").read_text()
    applied, committed = apply_job(o, "r2-apply", planned)
    assert applied.returncode == 0, applied.stderr
    assert committed.returncode == 0, committed.stdout + committed.stderr
    assert len(live(o, "svc a")) == 1  # one key named "svc a", and the state tracks it
    assert o.show(JOURNAL) is None  # the apply removed it; the commit removed it from main
    assert live(o, "svc a")[0] in (o.show(STATE) or "")
    assert "fingerprint_key_check" in (o.show(STATE) or "")  # keyed fingerprints, as the kit says


def test_a_run_with_nothing_to_change_skips_the_apply_and_commits_nothing(origin: Origin) -> None:
    o = origin
    o.commit({"keys/main.yaml": o.manifest("  svc-a: {provider: q, name: svc a}\n")}, "add svc-a")
    applied, committed = apply_job(o, "r1-apply", plan_main(o, "r1-plan"))
    assert applied.returncode == 0 and committed.returncode == 0
    head = o.git("rev-parse", "main", cwd=o.bare)
    plan_main(o, "r2-plan")
    assert o.outputs["plan-main"].get("apply", "") == ""  # `apply` is skipped: no approval asked
    work = o.runner("r2-apply")
    assert o.run("apply", "git commit", work).returncode == 0
    assert o.git("rev-parse", "main", cwd=o.bare) == head


# ------------------------------------------------------------------------- a merge during the apply


def test_a_merge_during_the_apply_does_not_lose_the_state(origin: Origin) -> None:
    """PR 2 merges while run 1 applies: run 1's state commit is rebased onto it and lands; run 2
    (the merge's own, queued behind run 1) plans the tip and creates only svc-b."""
    o = origin
    o.commit({"keys/main.yaml": o.manifest("  svc-a: {provider: q, name: svc a}\n")}, "add svc-a")
    planned = plan_main(o, "r1-plan")
    work = o.runner("r1-apply")  # run 1's apply job has checked out main...
    (work / "keyform.plan").write_bytes((planned / "keyform.plan").read_bytes())
    o.commit({"keys/main.yaml": o.manifest("  svc-a: {provider: q, name: svc a}\n"
                                           "  svc-b: {provider: q, name: svc b}\n"),
              "README.md": "docs\n"}, "add svc-b")  # ...when PR 2 merges
    assert o.run("apply", "keyform apply", work).returncode == 0
    committed = o.run("apply", "git commit", work)
    assert committed.returncode == 0, committed.stdout + committed.stderr
    assert "svc-b" in (o.show("keys/main.yaml") or "") and live(o, "svc a")[0] in (o.show(STATE) or "")

    planned = plan_main(o, "r2-plan")
    summary = (planned.parent / "r2-plan-summary").read_text()
    assert "svc-b" in summary and "svc-a" not in summary, summary
    applied, committed = apply_job(o, "r2-apply", planned)
    assert applied.returncode == 0 and committed.returncode == 0, committed.stderr
    assert len(live(o, "svc a")) == 1 and len(live(o, "svc b")) == 1


def test_a_plan_made_before_a_merge_that_changed_the_manifests_is_not_applied(origin: Origin) -> None:
    """The reviewer approves late: a merge changed the manifests since the plan was shown. The
    apply job checks out the tip, and keyform refuses the saved plan; nothing is created."""
    o = origin
    o.commit({"keys/main.yaml": o.manifest("  svc-a: {provider: q, name: svc a}\n")}, "add svc-a")
    planned = plan_main(o, "r1-plan")
    o.commit({"keys/main.yaml": o.manifest("  svc-a: {provider: q, name: svc a2}\n")}, "rename")
    applied, committed = apply_job(o, "r1-apply", planned)
    assert applied.returncode != 0 and "stale" in applied.stderr
    assert committed.returncode == 0
    assert o.control.questra_keys("org_kit") == []


# --------------------------------------------------------------------- a state that cannot land


def _reject_pushes_to_main(o: Origin) -> None:
    hook = o.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read -r old new ref; do\n"
                    "  [ \"$ref\" = refs/heads/main ] && { echo 'protected branch' >&2; exit 1; }\n"
                    "done\nexit 0\n")
    hook.chmod(0o755)


def _conflicting_state_commit(o: Origin) -> None:
    o.commit({STATE: "{}\n"}, "someone edits the state by hand")


@pytest.mark.parametrize("obstacle", [_reject_pushes_to_main, _conflicting_state_commit],
                         ids=["main-refuses-the-push", "the-state-changed-on-main"])
def test_a_state_that_cannot_land_is_kept_and_main_refuses_to_plan_without_it(
        origin: Origin, obstacle: Callable[[Origin], None]) -> None:
    o = origin
    o.commit({"keys/main.yaml": o.manifest("  svc-a: {provider: q, name: svc a}\n")}, "add svc-a")
    planned = plan_main(o, "r1-plan")
    work = o.runner("r1-apply")
    (work / "keyform.plan").write_bytes((planned / "keyform.plan").read_bytes())
    assert o.run("apply", "keyform apply", work).returncode == 0
    obstacle(o)
    committed = o.run("apply", "git commit", work)
    assert committed.returncode != 0  # the job fails, loudly
    assert "::error::the state after this apply is NOT on main" in committed.stdout
    assert "keyform-state-rescue/4711" in committed.stdout
    rescued = subprocess.run(["git", "show", f"keyform-state-rescue/4711:{STATE}"], cwd=o.bare, env=o.env,
                             capture_output=True, text=True, timeout=60)
    assert live(o, "svc a")[0] in rescued.stdout  # the state that records the new key is kept

    guard = o.run("plan-main", "keyform-state-rescue", o.runner("r2-plan"))
    assert guard.returncode != 0  # no run plans (and creates svc-a again) until the state is merged
    assert "keyform-state-rescue/4711" in guard.stdout and "::error::" in guard.stdout


def test_rerunning_the_failed_apply_job_of_a_state_that_did_not_land_creates_nothing_again(origin: Origin) -> None:
    """The state push is refused and goes to a rescue branch; someone clicks "Re-run failed jobs".
    Only `apply` runs again (plan-main passed, so its guard does not run), with the same saved plan
    on a checkout of main that still has the old state: it must not create the keys a second time."""
    o = origin
    # a write-only store (GitHub's secrets, say): nothing on the runner can tell the key was made
    manifest = o.manifest("  svc-a: {provider: q, name: svc a, sink: gh}\n").replace(
        "sinks:\n", "sinks:\n  gh: {type: exec, command: [sh, -c, 'cat >/dev/null']}\n")
    o.commit({"keys/main.yaml": manifest}, "add svc-a")
    planned = plan_main(o, "r1-plan")
    _reject_pushes_to_main(o)
    applied, committed = apply_job(o, "r1-apply", planned)
    assert applied.returncode == 0 and committed.returncode != 0
    o.env["GITHUB_RUN_ATTEMPT"] = "2"
    applied, committed = apply_job(o, "r1-apply-again", planned)
    assert applied.returncode != 0 and "::error::" in applied.stdout and "keyform-state-rescue/4711" in applied.stdout
    assert committed.returncode == 0  # nothing to commit
    assert len(live(o, "svc a")) == 1


def test_rerunning_the_failed_apply_job_of_a_state_kept_only_as_an_artifact_creates_nothing_again(
        origin: Origin) -> None:
    """Every push is refused, the rescue branch's too: the state is in the run's artifact only, and
    no branch tells a later job. "Re-run failed jobs" must still not apply the earlier attempt's
    plan on a main without that state."""
    o = origin
    manifest = o.manifest("  svc-a: {provider: q, name: svc a, sink: gh}\n").replace(
        "sinks:\n", "sinks:\n  gh: {type: exec, command: [sh, -c, 'cat >/dev/null']}\n")
    o.commit({"keys/main.yaml": manifest}, "add svc-a")
    planned = plan_main(o, "r1-plan")
    hook = o.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no pushes' >&2\nexit 1\n")
    hook.chmod(0o755)
    applied, committed = apply_job(o, "r1-apply", planned)
    assert applied.returncode == 0 and committed.returncode != 0
    assert "artifact keyform-state-4711-1 only" in committed.stdout
    o.env["GITHUB_RUN_ATTEMPT"] = "2"
    applied, committed = apply_job(o, "r1-apply-again", planned)
    assert applied.returncode != 0 and "::error::" in applied.stdout and "re-run all jobs" in applied.stdout
    assert len(live(o, "svc a")) == 1

    o.outputs.pop("plan-main", None)  # "Re-run all jobs": plan-main plans again, in attempt 2
    hook.unlink()
    work = o.runner("r2-plan")
    assert o.run("plan-main", "keyform-state-rescue", work).returncode == 0
    assert o.run("plan-main", "keyform plan", work).returncode == 0
    assert o.outputs["plan-main"]["attempt"] == "2"
