"""`keyform --help` and every subcommand's `--help`, against tests/golden/help/ (issue 15, must
show): a change to a command's options or texts shows in review. Regenerate after an intended
change with: UPDATE_GOLDEN=1 pytest tests/test_help_golden.py"""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from keyform.cli import main
from tests.test_cli_conventions import commands

GOLDEN = Path(__file__).parent / "golden" / "help"
PATHS = [(), *(p for p, _ in commands())]


def golden_name(path: tuple[str, ...]) -> str:
    return "-".join(("keyform", *path)) + ".txt"


def help_text(path: tuple[str, ...]) -> str:
    res = CliRunner().invoke(main, [*path, "--help"], terminal_width=100, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(("keyform", *p)))
def test_help_matches_its_golden_file(path: tuple[str, ...]) -> None:
    text = help_text(path)
    golden = GOLDEN / golden_name(path)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} is missing (UPDATE_GOLDEN=1 to create it)"
    assert text == golden.read_text(), f"{golden.name} differs (UPDATE_GOLDEN=1 to accept the change)"


def test_no_golden_file_is_left_for_a_command_that_is_gone() -> None:
    expected = {golden_name(p) for p in PATHS}
    assert {p.name for p in GOLDEN.glob("*.txt")} == expected


def test_every_command_is_reachable_from_the_top_level_help() -> None:
    top = help_text(())
    for name, cmd in main.commands.items():
        assert f"  {name}" in top, name
        assert isinstance(cmd, click.Command)
