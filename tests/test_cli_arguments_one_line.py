"""Found by review 95 (stop 41): a path or address argument holding a newline (or a terminal
escape) split the one-line `Error:` message in two, the newline printed raw; `keyform emulator
--host` printed its escape raw as well. An argument is now shown on one line, its newline as `\\n`
and an escape as `\\u001b`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.project import Project, Result
from keyform.emulator import Emulator

ODD = "x\x1b[31m\n"


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    p = Project(tmp_path, emulator.url)
    p.questra("web:\n  provider: qp\n")
    return p


def _one_error_line(project: Project, args: tuple[str, ...]) -> Result:
    """`keyform ARGS` (a `graph` or `state` command told the project's manifest), which must fail
    with exit 1 and one `Error:` line; its result."""
    if args[0] in ("graph", "state") and args[1] != "push":
        args = (*args[:2], "-f", str(project.manifest), *args[2:]) if args[0] == "state" else \
            ("graph", "-f", str(project.manifest), *args[1:])
    res = project.run(*args)
    assert res.exit_code == 1, res.output
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("Error: "), repr(res.stderr)
    return res


@pytest.mark.parametrize("args", [
    ("plan", "-f", ODD), ("plan", "--policy", ODD), ("plan", "--target", ODD), ("plan", "--replace", ODD),
    ("plan", "--state", ODD), ("apply", ODD), ("show", ODD), ("graph", "--plan", ODD), ("state", "push", ODD),
    # found by review 102: these were left
    ("plan", "--out", "missing-dir/" + ODD), ("import", "web", ODD),
    ("state", "rekey", "--old-key-file", ODD),
])
def test_an_argument_with_a_newline_is_shown_on_one_line(project: Project, args: tuple[str, ...]) -> None:
    if args[:2] in (("plan", "--replace"), ("state", "rekey")):
        assert project.run("apply", "--auto-approve").exit_code == 0
    res = _one_error_line(project, args)
    assert "\x1b" not in res.stderr and "x\\u001b[31m\\n" in res.stderr, repr(res.stderr)


@pytest.mark.parametrize("args", [
    ("plan", "--state", ""), ("plan", "-f", ""), ("plan", "--out", ""), ("plan", "--policy", ""),
    ("apply", "--state", ""), ("apply", ""), ("show", ""), ("graph", "--plan", ""), ("state", "push", ""),
    ("state", "list", "--state", ""), ("state", "rekey", "--old-key-file", ""), ("state", "rekey", "--old-key-env", ""),
    ("plan", "--state", " "), ("apply", "-f", "  "),  # (spaces only: refused as blank, named as such)
])
def test_an_empty_path_or_name_is_refused_not_taken_as_none_given(project: Project, args: tuple[str, ...]) -> None:
    """Found by review 43-fxF: `--state "$STATE"` with the variable unset used the manifests' own
    backend, `plan --out ""` made a plan, saved nothing and exited 0, `-f ""` read the directory."""
    assert project.run("apply", "--auto-approve").exit_code == 0
    before = project.state_path.read_bytes()
    res = _one_error_line(project, args)
    if args[-1] and not args[-1].strip():  # spaces only: said so, not "does not exist" with a blank path
        assert "a path of" in res.stderr and "blank character(s) only" in res.stderr, res.stderr
    else:
        assert "empty" in res.stderr or "--old-key-env '' is not an environment variable name" in res.stderr, \
            res.stderr
    assert project.state_path.read_bytes() == before


def test_a_saved_plans_path_is_shown_on_one_line_and_quoted_for_the_shell(project: Project) -> None:
    out = project.root / "my plan"
    res = project.run("plan", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert f"  keyform apply '{out}'\n" in res.stdout, res.stdout
    odd = project.root / ODD
    res = project.run("plan", "--out", str(odd))
    assert res.exit_code == 0 and "\x1b" not in res.stdout, res.output
    assert f"Saved the plan to {project.root}/x\\u001b[31m\\n. To perform" in res.stdout, res.stdout


def test_the_emulators_host_is_shown_on_one_line_without_its_escape() -> None:
    res = subprocess.run([sys.executable, "-m", "keyform.emulator", "--host", ODD, "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "\x1b" not in res.stderr, repr(res.stderr)
    assert "cannot listen on 'x\\x1b[31m\\n':0" in res.stderr
