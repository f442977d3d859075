"""The GitHub Actions workflows the repository ships, and how Actions would run their steps.

"Shipped" means every workflow file under `.github/workflows/` anywhere in the repository (the
GitOps kit's included) and every ```yaml block in README.md, docs/ and examples/ that is a workflow
(a mapping with `jobs:` whose jobs have `steps:`): users copy those too. Used by
tests/test_gitops_workflows.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```", re.M | re.S)
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache", "build"}


@dataclass(frozen=True)
class Workflow:
    name: str           # repository-relative path, with `#N` for the N-th yaml block of a Markdown file
    text: str
    doc: dict[Any, Any]


@dataclass(frozen=True)
class RunStep:
    workflow: Workflow
    job: str
    index: int          # position in the job's steps
    script: str
    shell: str | None   # step `shell:`, else the job's, else the workflow's `defaults: run: shell:`
    env: dict[str, str]

    @property
    def where(self) -> str:
        return f"{self.workflow.name}: jobs.{self.job}.steps[{self.index}]"


def _is_workflow(doc: Any) -> bool:
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    return isinstance(jobs, dict) and bool(jobs) and all(
        isinstance(j, dict) and ("steps" in j or "uses" in j) for j in jobs.values())


def _files(*suffixes: str) -> Iterator[Path]:
    """The repository's files with these suffixes, sorted, without descending into SKIP_DIRS."""
    found = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found += [Path(top) / f for f in files if f.endswith(suffixes)]
    return iter(sorted(found))


def shipped_workflows() -> list[Workflow]:
    found: list[Workflow] = []
    for path in _files(".yml", ".yaml"):
        parts = path.relative_to(ROOT).parts
        if len(parts) >= 3 and parts[-3:-1] == (".github", "workflows"):
            text = path.read_text()
            found.append(Workflow(str(path.relative_to(ROOT)), text, yaml.safe_load(text)))
    for path in _files(".md"):
        for n, match in enumerate(FENCE.finditer(path.read_text()), 1):
            try:
                doc = yaml.safe_load(match[1])
            except yaml.YAMLError:
                continue
            if _is_workflow(doc):
                found.append(Workflow(f"{path.relative_to(ROOT)}#{n}", match[1], doc))
    return found


def _shell_of(section: Any) -> str | None:
    run = (section.get("defaults") or {}).get("run") if isinstance(section, dict) else None
    shell = run.get("shell") if isinstance(run, dict) else None
    return str(shell) if shell is not None else None


def run_steps(workflow: Workflow) -> Iterator[RunStep]:
    top_shell = _shell_of(workflow.doc)
    for job_name, job in workflow.doc["jobs"].items():
        job_shell = _shell_of(job) or top_shell
        for i, step in enumerate(job.get("steps") or []):
            if isinstance(step, dict) and "run" in step:
                shell = step.get("shell")
                env = {**(workflow.doc.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})}
                yield RunStep(workflow, str(job_name), i, str(step["run"]),
                              str(shell) if shell is not None else job_shell, {k: str(v) for k, v in env.items()})


def actions_argv(shell: str | None, script: Path) -> list[str]:
    """The command a Linux runner uses for a `run:` step (GitHub's "Using a specific shell" table)."""
    if shell is None:
        return ["bash", "-e", str(script)]
    if shell == "bash":
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
    if shell == "sh":
        return ["sh", "-e", str(script)]
    return [w.replace("{0}", str(script)) for w in shell.split()]


def fails_on_pipe_error(shell: str | None) -> bool:
    """Whether a step run with this shell fails when any command of a pipeline fails."""
    return shell == "bash" or (shell is not None and "pipefail" in shell)


def pipes(script: str) -> list[str]:
    """The lines of a shell script that contain a pipeline (`a | b`, `a |& b`): quotes, comments,
    `||` and `${{ … }}` expressions do not count."""
    found = []
    for line in _logical_lines(re.sub(r"\$\{\{.*?\}\}", "EXPR", script, flags=re.S)):
        if _has_pipe(line):
            found.append(line.strip())
    return found


def _logical_lines(script: str) -> list[str]:
    return script.replace("\\\n", " ").splitlines()


def _has_pipe(line: str) -> bool:
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c == "\\":
            i += 2
            continue
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t;|&("):
            return False
        elif c == "|":
            if line[i + 1:i + 2] == "|":
                i += 2
                continue
            return True
        i += 1
    return False


def sets_pipefail_first(script: str) -> bool:
    """Whether the script turns pipefail on before anything else it runs."""
    for line in _logical_lines(script):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        return bool(re.match(r"set\s+(-[a-z]*o\s+pipefail|-o\s+pipefail)", stripped))
    return False
