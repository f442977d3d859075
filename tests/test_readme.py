"""The README is true (issue 15 items 14, 15, 18, must show): its CLI synopsis matches the click
commands (a new command or option must be documented), the API descriptions it links are in the
repository and are the ones the tests validate against, nothing points outside the repository,
the Python version it claims is the one the package declares, and its shell blocks marked
`<!-- runnable -->` run as written in a fresh copy of the repository against the emulator."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

from keyform.cli import main
from keyform.emulator import Emulator
from tests import openapi_schemas
from tests.test_cli_conventions import commands

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
COMMON = {"verbose", "no_color", "help"}


def fenced_after(marker: str, text: str) -> list[str]:
    """The bodies of the fenced code blocks that directly follow a line `marker`."""
    pattern = re.compile(re.escape(marker) + r"[^\n]*\n```[a-z]*\n(.*?)\n```", re.DOTALL)
    return pattern.findall(text)


# ------------------------------------------------------------------------------------ synopsis


def synopsis() -> dict[tuple[str, ...], str]:
    """README synopsis lines by command path: `("state", "mv") -> "OLD NEW [--sink-name NAME] ..."`."""
    [block] = fenced_after("<!-- synopsis", README.read_text())
    entries: dict[tuple[str, ...], str] = {}
    current: tuple[str, ...] | None = None
    for line in block.splitlines():
        if line.startswith("keyform "):
            words = line.split()[1:]
            name = tuple(w for w in words[:2] if re.fullmatch(r"[a-z][a-z-]*", w))
            if not name:  # the global line: `keyform [-v] [--no-color] COMMAND ...`
                current = ()
                entries[()] = " ".join(words)
                continue
            if len(name) == 2 and not isinstance(main.commands.get(name[0]), click.Group):
                name = name[:1]  # `keyform plan ...`; only a group's line names a subcommand
            current = name
            entries[name] = " ".join(words[len(name):])
        elif current is not None:
            entries[current] += " " + line.strip()
    return entries


OPTION = re.compile(r"(?<![\w-])(--?[a-z][a-z-]*(?:/--[a-z-]+)?)(?: ([A-Z][A-Z_]*(?:=[A-Z][A-Z_]*)?|[a-z]+(?:\|[a-z]+)+))?")


def documented(text: str) -> tuple[dict[str, str | None], list[str]]:
    """(options with the metavar written after them, positional argument names) of one synopsis entry."""
    options = {m[1]: m[2] or None for m in OPTION.finditer(text)}
    rest = OPTION.sub(" ", text)
    arguments = re.findall(r"\b([A-Z][A-Z_]*)\b", rest)
    return options, arguments


def expected_metavar(param: click.Option) -> str | None:
    if param.is_flag:
        return None
    if isinstance(param.type, click.Choice):
        return "|".join(str(c) for c in param.type.choices)
    return param.metavar


LEAVES = [(p, c) for p, c in commands() if not isinstance(c, click.Group)]


def test_every_command_is_in_the_synopsis_and_nothing_else() -> None:
    assert set(synopsis()) - {()} == {p for p, _ in LEAVES}


@pytest.mark.parametrize("path,cmd", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_the_synopsis_lists_exactly_the_commands_options_and_arguments(path: tuple[str, ...],
                                                                       cmd: click.Command) -> None:
    options, arguments = documented(synopsis()[path])
    for param in cmd.params:
        if isinstance(param, click.Argument):
            assert param.human_readable_name.strip("[]") in arguments, f"{param.name} missing in the synopsis"
            continue
        if not isinstance(param, click.Option) or param.name in COMMON:
            continue
        spellings = ["/".join(param.opts + param.secondary_opts)] if param.secondary_opts else param.opts
        written = [s for s in spellings if s in options]
        assert written, f"keyform {' '.join(path)}: {param.opts[-1]} is not in the README synopsis"
        assert options[written[0]] == expected_metavar(param), f"{written[0]}: metavar differs"
    known = {s for p in cmd.params if isinstance(p, click.Option)
             for s in (p.opts + p.secondary_opts + ["/".join(p.opts + p.secondary_opts)])}
    assert set(options) <= known, f"the synopsis documents options keyform {' '.join(path)} lacks"
    names = {p.human_readable_name.strip("[]") for p in cmd.params if isinstance(p, click.Argument)}
    assert set(arguments) <= names | {"PATH"}, arguments


def test_the_global_line_lists_the_global_options() -> None:
    text = synopsis()[()]
    assert "[-v]" in text and "[--no-color]" in text and "keyform --version" in text


def test_every_environment_variable_an_option_reads_is_in_the_readme() -> None:
    readme = README.read_text()
    for path, cmd in LEAVES:
        for param in cmd.params:
            if isinstance(param, click.Option) and param.envvar:
                assert str(param.envvar) in readme, (path, param.envvar)


# ------------------------------------------------------------------ files the README points at


def test_the_api_descriptions_are_in_the_repository_and_are_the_ones_tests_use() -> None:
    readme = README.read_text()
    for name in (openapi_schemas.QUESTRA, openapi_schemas.TEXTQL):
        assert f"docs/api/{name}" in readme
        assert (ROOT / "docs" / "api" / name).is_file()
    assert openapi_schemas.SPEC_DIR == ROOT / "docs" / "api"
    assert "shared/specs" not in readme


def test_every_relative_link_in_the_docs_exists() -> None:
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def tracked_files() -> list[str]:
    res = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return [f for f in res.stdout.splitlines() if (ROOT / f).is_file()]


def test_nothing_in_the_repository_points_outside_it() -> None:
    offenders = []
    for name in tracked_files():
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".toml", ".yaml", ".yml", ".sh", ".json", ".txt", "") or \
                name.startswith("tests/golden/"):
            continue
        text = path.read_text(errors="replace")
        if "../shared/" in text or "shared/specs" in text or "shared/seeds" in text:
            offenders.append(name)
    assert offenders == [] or offenders == ["tests/test_readme.py"], offenders


def test_the_python_version_claimed_is_the_one_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["mypy"]["python_version"] == "3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    readme = README.read_text()
    assert "Python 3.11" in readme and "3.10" not in readme


def test_the_readme_documents_shell_completion_for_bash_zsh_and_fish() -> None:
    readme = README.read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_KEYFORM_COMPLETE={shell}_source keyform" in readme


def test_the_emulator_control_api_is_documented() -> None:
    doc = (ROOT / "docs" / "emulator.md").read_text()
    assert "docs/emulator.md" in README.read_text()
    control = (ROOT / "src" / "keyform" / "emulator" / "control.py").read_text()
    routes = re.findall(r"^    (GET|POST) +(/_emulator/\S+)", control, re.MULTILINE)
    assert len(routes) >= 10
    for method, route in routes:
        assert f"`{method} {route}`" in doc, route


# --------------------------------------------------------------------- runnable shell blocks


def fresh_copy(dest: Path) -> Path:
    """The repository's files (as a clone would have them) copied to `dest`."""
    for name in tracked_files():
        if name.startswith(("examples/quickstart/.secrets", "walkthrough/")):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return dest


RUNNABLE = fenced_after("<!-- runnable -->", README.read_text())


def test_the_readme_has_runnable_blocks() -> None:
    assert len(RUNNABLE) >= 2
    assert any("examples/run.sh examples/quickstart" in b for b in RUNNABLE)
    assert any("keyform apply keyform.plan" in b for b in RUNNABLE)


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.splitlines()[0][:40] for b in RUNNABLE])
def test_readme_runnable_block_runs_as_written(block: str, tmp_path: Path, emulator: Emulator) -> None:
    run_block(block, fresh_copy(tmp_path / "clone"), emulator)


def test_the_readme_blocks_run_one_after_another_in_one_clone(tmp_path: Path, emulator: Emulator) -> None:
    """As a reader runs them: the walk-through copied the quickstart's directory, state and secrets
    included, so its first plan said both keys were "deleted outside keyform"."""
    clone = fresh_copy(tmp_path / "clone")
    outputs = [run_block(block, clone, emulator) for block in RUNNABLE]
    walk = next(out for block, out in zip(RUNNABLE, outputs) if "keyform apply keyform.plan" in block)
    assert "# new key" in walk and "deleted outside keyform" not in walk, walk


def run_block(block: str, clone: Path, emulator: Emulator) -> str:
    """Run one README shell block in `clone` as written (bash -euo pipefail); its stdout."""
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUESTRA_", "TEXTQL_", "KEYFORM_"))}
    env.update(PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1",
               KEYFORM_EMULATOR_PORT="0",            # run.sh: any free port
               KEYFORM_EMULATOR_URL=emulator.url)    # the walk-through: the emulator "in another terminal"
    install = "python3.11 -m venv .venv && . .venv/bin/activate && pip install . && "
    if block.startswith(install):  # set-up command 1: keyform is installed here already (as .ci/run does it)
        block = block[len(install):]
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=clone, env=env, capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"{block}\n--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr
    return res.stdout
