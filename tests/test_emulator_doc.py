"""docs/emulator.md documents every option of `keyform emulator` in its options table, and names
every fault knob `POST /_emulator/faults` takes: the rate-limit options and knobs were missing."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import click
import pytest

from keyform.cli import emulator
from keyform.emulator.faults import FaultSettings

DOC = Path(__file__).resolve().parents[1] / "docs" / "emulator.md"
COMMON = {"verbose", "no_color", "help"}  # every subcommand's (keyform.clikit), documented in the README


def _section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def _options() -> list[str]:
    return [p.opts[0] for p in emulator.params if isinstance(p, click.Option) and p.name not in COMMON]


@pytest.mark.parametrize("option", _options())
def test_every_emulator_option_is_in_the_options_table(option: str) -> None:
    rows = [line for line in _section("Options").splitlines() if line.startswith("| `")]
    assert any(re.match(rf"\| `{re.escape(option)}[ `]", row) for row in rows), \
        f"keyform emulator {option} is not in docs/emulator.md's options table"


@pytest.mark.parametrize("knob", [f.name for f in fields(FaultSettings)])
def test_every_fault_knob_is_named_for_post_faults(knob: str) -> None:
    [row] = [line for line in _section("The control API").splitlines() if line.startswith("| `POST /_emulator/faults`")]
    assert f"`{knob}`" in row, f"{knob} is not named in docs/emulator.md's POST /_emulator/faults row"
