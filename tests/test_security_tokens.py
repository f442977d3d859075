"""Issue 13, defect 1: provider tokens of every shape. One trailing newline is stripped (as a token
mounted from a file or pasted into a CI secret often has); a token that still cannot be an HTTP
header value is refused naming the reference, never the value, and never as an internal error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator

TOKEN = "qtok-SECRET-1234"
KEYS = "ci-bot: {provider: qp}\n"


def _project(tmp_path: Path, url: str, token_ref: str = "{env: QUESTRA_TOKEN}") -> Project:
    project = Project(tmp_path, url)
    project.questra(KEYS)
    project.manifest.write_text(project.manifest.read_text().replace("{env: QUESTRA_TOKEN}", token_ref))
    return project


@pytest.mark.parametrize("value", [TOKEN + "\n", TOKEN + "\r\n", TOKEN])
def test_one_trailing_newline_is_stripped_from_an_env_token(
        tmp_path: Path, make_emulator: Callable[..., Emulator], value: str) -> None:
    emulator = make_emulator(tokens=frozenset({TOKEN}))
    project = _project(tmp_path, emulator.url)
    result = project.run("apply", "--auto-approve", env={"QUESTRA_TOKEN": value})
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output


@pytest.mark.parametrize(("value", "why"), [
    (TOKEN + "\n\n", "a line break"),
    (TOKEN + "\r", "a line break"),
    ("qtok-SECRET\n-1234", "a line break"),
    ("qtok-SECRET\r\nX-Evil: 1", "a line break"),
    ("qtök-SECRET-1234", "a non-ASCII character"),
    ("qtok-SECRET-1234\u2028", "a non-ASCII character"),
    ("qtok-SECRET\x01-1234", "a control character"),
    ("qtok-SECRET\x7f-1234", "a control character"),
    (" qtok-SECRET-1234", "leading or trailing whitespace"),
    ("qtok-SECRET-1234\t", "leading or trailing whitespace"),
])
def test_a_token_that_cannot_be_a_header_is_refused_naming_the_variable_never_the_value(
        tmp_path: Path, make_emulator: Callable[..., Emulator], value: str, why: str) -> None:
    emulator = make_emulator()
    project = _project(tmp_path, emulator.url)
    for command in (("plan",), ("-v", "plan", "-f", str(project.manifest)), ("apply", "--auto-approve")):
        result = project.run(*command, env={"QUESTRA_TOKEN": value})
        assert result.exit_code == 1, result.output
        assert f"providers.qp.token: QUESTRA_TOKEN holds a character a header cannot carry ({why})" in result.stderr
        assert "SECRET" not in result.output and "internal error" not in result.output.lower()
    assert not project.state_path.exists() or "SECRET" not in project.state_path.read_text()


def test_a_token_file_that_cannot_be_a_header_is_refused_naming_the_file(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator()
    (tmp_path / "token.txt").write_text("qtok-SECRET-\u00e9\n")
    project = _project(tmp_path, emulator.url, "{file: token.txt}")
    result = project.run("plan")
    assert result.exit_code == 1
    assert "token.txt holds a character a header cannot carry (a non-ASCII character)" in result.stderr
    assert "SECRET" not in result.output


def test_an_org_id_from_the_environment_is_checked_the_same_way(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator()
    project = _project(tmp_path, emulator.url)
    project.manifest.write_text(project.manifest.read_text().replace("org_id: org_e2e", "org_id: {env: ORG}"))
    assert project.run("plan", env={"ORG": "org_e2e\n"}).exit_code == 0
    result = project.run("plan", env={"ORG": "org\r\nX: y"})
    assert result.exit_code == 1 and "ORG holds a character a header cannot carry (a line break)" in result.stderr


def test_header_problem_accepts_exactly_what_a_header_can_carry() -> None:
    from keyform.model import header_problem

    assert header_problem("a") is None and header_problem("tok en\twith inner blanks") is None
    assert header_problem("".join(chr(c) for c in range(0x21, 0x7F))) is None
    for bad in ("", " a", "a ", "a\x0b", "\u00a0", "a\nb"):
        assert header_problem(bad) is not None


@pytest.mark.parametrize(("literal", "why"), [
    ('"org x\\n"', "a line break"), ('"org\\x01"', "a control character"), ("orgé", "a non-ASCII character"),
    ('"org "', "leading or trailing whitespace"),
])
def test_a_literal_org_id_that_cannot_be_a_header_is_refused_by_validate_as_plan_would(
        tmp_path: Path, make_emulator: Callable[..., Emulator], literal: str, why: str) -> None:
    """validate passed `org_id: "org x\\n"` and plan then refused it: a literal is the manifest's own
    content, so validate refuses it, with plan's message at the org_id line."""
    emulator = make_emulator()
    project = _project(tmp_path, emulator.url)
    text = project.manifest.read_text()
    project.manifest.write_text(text.replace("org_id: org_e2e", f"org_id: {literal}"))
    line = text.splitlines().index("    org_id: org_e2e") + 1
    expected = f"{project.manifest}:{line}: providers.qp.org_id holds a character a header cannot carry ({why})"
    for command in (("validate",), ("plan",)):
        result = project.run(*command)
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == f"Error: {expected}", result.stderr
    assert not project.state_path.exists()
