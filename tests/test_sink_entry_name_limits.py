"""An entry name a sink can never write is refused by `validate`, at its line, before any remote call.

A `file` sink entry named by a key of 300 'k's passed `validate` and `plan`; every `apply` created
the key, failed to write it (`File name too long`) and revoked it: a new revoked key each run. The
file is written through a temp file `.NAME.<12 hex>.tmp`, so the longest name that can be written is
255 - 18 = 237 bytes, counted in bytes, not characters. An `exec` sink passes the name as
`KEYFORM_SINK_NAME`, one environment string, which execve takes only up to 128 KiB."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path, emulator.url)


def _file_sink(project: Project, key: str, entry: str | None = None) -> None:
    sink = f"sink: {{use: f, as: '{entry}'}}" if entry is not None else ""
    project.write(
        "version: 1\n"
        "providers:\n"
        "  qp: {type: questra, base_url: {url}, token: {env: QUESTRA_TOKEN}, org_id: {org}}\n"
        "sinks:\n"
        "  f: {type: file, dir: .secrets/dir}\n"
        "defaults: {sink: f}\n"
        "keys:\n"
        f"  {key}: {{provider: qp, name: K, {sink}}}\n")


def test_the_reported_manifest_is_refused_by_validate_plan_and_apply_before_any_call(
        project: Project, emu_control: EmulatorControl) -> None:
    _file_sink(project, "k" * 300)
    for command in (("validate",), ("plan",), ("apply", "--auto-approve")):
        res = project.run(*command)
        assert res.exit_code == 1, res.output
        assert re.fullmatch(r"Error: .*keyform\.yaml:8: keys\.k{300}: sink entry 'K{300}' cannot be used in sink "
                            r"'f' \(file\): the entry name is longer than 237 bytes \(300\): a file name is at most "
                            r"255 bytes, .*; set sink\.as\n", res.stderr), res.stderr
        assert "Traceback" not in res.output
    assert emu_control.requests().get("questra.create", 0) == 0
    assert emu_control.questra_keys(ORG) == []
    assert not project.state_path.exists()


def test_the_longest_file_entry_name_is_written_and_one_byte_more_is_refused(
        project: Project, emu_control: EmulatorControl) -> None:
    _file_sink(project, "k", "é" * 119)  # 238 bytes in 119 characters: bytes are what a file name holds
    res = project.run("validate")
    assert res.exit_code == 1 and "the entry name is longer than 237 bytes (238)" in res.stderr, res.output
    _file_sink(project, "k", "e" * 237)
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 0, res.output
    written = project.root / ".secrets" / "dir" / ("e" * 237)
    assert written.read_text().strip()
    assert emu_control.requests().get("questra.revoke", 0) == 0


def test_an_exec_entry_name_longer_than_one_environment_variable_is_refused(project: Project) -> None:
    project.write(
        "version: 1\n"
        "providers:\n"
        "  qp: {type: questra, base_url: {url}, token: {env: QUESTRA_TOKEN}, org_id: {org}}\n"
        "sinks:\n"
        "  x: {type: exec, command: [sh, -c, 'cat > /dev/null']}\n"
        "defaults: {sink: x}\n"
        "keys:\n"
        f"  k: {{provider: qp, name: K, sink: {{use: x, as: {'n' * 131_054}}}}}\n")
    res = project.run("validate")
    assert res.exit_code == 1, res.output
    assert "keyform.yaml:8: keys.k: sink entry" in res.stderr
    assert "the entry name is longer than 131053 bytes: it is passed as KEYFORM_SINK_NAME" in res.stderr, res.stderr


@pytest.mark.parametrize(("sink", "message"), [
    ("{type: dotenv, path: 'out/" + "a" * 245 + ".env'}", "sinks.s.path: the file name is longer than 237 bytes (249)"),
    ("{type: json, path: 'out/" + "b" * 260 + "/keys.json'}", "sinks.s.path: the path has a name longer than 255 bytes"),
    ("{type: file, dir: 'out/" + "c" * 256 + "'}", "sinks.s.dir: the path has a name longer than 255 bytes"),
])
def test_a_sink_path_no_file_can_be_written_at_is_refused_at_its_line(
        project: Project, emu_control: EmulatorControl, sink: str, message: str) -> None:
    """A dotenv `path` of a 249-byte file name passed validate; every apply made the key, failed to
    write its temp file beside it (`File name too long`) and revoked it."""
    project.write("version: 1\n"
                  "providers:\n  qp: {type: questra, base_url: {url}, token: {env: QUESTRA_TOKEN}, org_id: {org}}\n"
                  f"sinks:\n  s: {sink}\n"
                  "defaults: {sink: s}\n"
                  "keys:\n  k: {provider: qp, name: K, sink: {use: s, as: K}}\n")
    for command in (("validate",), ("apply", "--auto-approve")):
        res = project.run(*command)
        assert res.exit_code == 1, res.output
        assert "keyform.yaml:5: " + message in res.stderr and "Traceback" not in res.output, res.stderr
    assert emu_control.requests().get("questra.create", 0) == 0
