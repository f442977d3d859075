"""CLI conventions a pipeline and a new user rely on (issue 15 items 1-3, 5, 12, 13, 19; issue 21
item 7): usage errors are one line and exit 1, `-v`/`--no-color` work on every subcommand, a saved
plan refuses planning flags, `plan --out` names a bad path, every option says what it takes,
`keyform show` renders a saved plan, the emulator's options are click options (so they complete),
and shell completion works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from harness.project import Project
from keyform.cli import main
from keyform.emulator import Emulator
from keyform.emulator.__main__ import build_parser, parse_args

KEYS = "ci-bot: {provider: qp, name: CI bot}\n"


def run(*args: str, env: dict[str, str] | None = None) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every (sub)command of keyform, with its path (`("state", "mv")`)."""
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield (*path, name), cmd
            yield from commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


LEAVES = [p for p, c in commands() if not isinstance(c, click.Group)]


# ---------------------------------------------------------------------------- 1. usage errors


@pytest.mark.parametrize("args", [
    ["plan", "--detailed-exitcode", "--bogus"],
    ["plan", "--replace"],
    ["bogus"],
    ["--bogus", "plan"],
    ["state", "mv", "only-one"],
    ["apply", "--parallelism", "0"],
    ["plan", "--format", "yaml"],
    ["emulator", "--port", "notaport"],
    ["show"],
    ["-v"],  # options and no command: click's "Missing command." exited 2, the changes code
    ["--no-color"],
    ["state", "-v"],
])
def test_a_usage_error_is_one_line_and_exits_1_not_the_changes_code(args: list[str]) -> None:
    res = run(*args)
    assert res.exit_code == 1, res.output
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "Usage:" not in res.stderr and "--help" in lines[0]


def test_a_typo_in_a_ci_job_with_detailed_exitcode_is_not_read_as_changes(tmp_path: Path) -> None:
    """The issue's case, as a pipeline runs it: a real process, its exit code."""
    res = subprocess.run([sys.executable, "-m", "keyform", "plan", "--detailed-exitcode", "--bogus"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert res.returncode == 1
    assert res.stderr.startswith("Error: No such option '--bogus'")


@pytest.mark.parametrize("args", [[], ["state"]])
def test_a_group_alone_shows_its_help_on_stderr_and_fails(args: list[str]) -> None:
    """`keyform $CMD` in a pipeline with CMD unset printed the help and exited 0: the step passed
    having done nothing. As git (1) and terraform (127): the help on stderr, exit 1; `--help` is
    still the help on stdout, exit 0."""
    asked = run(*args, "--help")
    assert asked.exit_code == 0 and asked.stdout.startswith("Usage: keyform") and asked.stderr == ""
    res = run(*args)
    assert res.exit_code == 1 and res.stdout == "" and res.stderr == asked.stdout


def test_a_bare_keyform_in_a_pipeline_fails(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "keyform"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert res.returncode == 1 and res.stdout == "" and res.stderr.startswith("Usage: keyform")


def test_terraform_style_single_dash_option_gets_a_hint() -> None:
    res = run("plan", "-out=x.plan")
    assert res.exit_code == 1
    assert "(did you mean '--out=x.plan'? keyform's long options take two dashes)" in res.stderr


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["apply", "--parallelism", "abc"], None, "--parallelism: 'abc' is not an integer from 1 to 256"),
    (["apply", "--parallelism", "0"], None, "--parallelism: '0' is not an integer from 1 to 256"),
    (["destroy", "--parallelism", "٣"], None,
     "--parallelism: '٣' is not an integer from 1 to 256 (in ASCII digits 0-9)"),
    (["apply", "--parallelism", "1_0"], None, "--parallelism: '1_0' is not an integer from 1 to 256"),
    (["plan", "--format", "yaml"], None, "--format: 'yaml' is not one of: text, markdown, json."),
    (["plan", "-f", ""], None, "-f/--file: an empty path (is the variable it came from unset?)"),
    (["plan", "--target", ""], None, "--target: an empty address (is the variable it came from unset?)"),
    (["apply", "--replace", " "], None, "--replace: an address of 1 blank character(s) only"),
    (["state", "rm", ""], None, "ADDRESS: an empty address"),
    (["import", "k", " "], None, "REMOTE_ID: a remote id of 1 blank character(s) only"),
    (["plan", "--frmat", "json"], None, "No such option '--frmat' (did you mean '--format'?)"),
    (["plna"], None, "No such command 'plna' (did you mean 'plan'?)"),
    (["emulator"], {"KEYFORM_EMULATOR_PORT": "٣"},
     "KEYFORM_EMULATOR_PORT: '٣' is not an integer from 0 to 65535 (in ASCII digits 0-9)"),
    (["emulator", "--port", "٣٠٠٠"], None, "--port: '٣٠٠٠' is not an integer"),
    (["emulator", "--seed", "٣"], None, "--seed: '٣' is not an integer (in ASCII digits 0-9)"),
    (["emulator", "--latency-ms", "٣"], None, "--latency-ms: '٣' is not a number from 0 to 86400000"),
    (["emulator", "--error-rate", "nan"], None, "--error-rate: 'nan' is not a number from 0 to 1"),
    (["emulator", "--clock-offset", "inf"], None, "--clock-offset: 'inf' is not a number"),
    (["emulator", "--host", ""], None, "--host: an empty host"),  # it listened on every interface
    (["emulator", "--token", ""], None, "--token: an empty token"),
    (["emulator", "--org-rate-limit", "org_a=٣"], None, "--org-rate-limit: 'org_a=٣' is not ORG=RPS"),
    (["apply", "--parallelism", "9" * 5000], None, "--parallelism: '" + "9" * 59 + "\u2026' is not an integer"),
    (["emulator", "--seed", "9" * 5000], None, "--seed: '" + "9" * 59 + "\u2026' is not an integer"),
    (["emulator", "--port", "x" * 10_000], None, "--port: '" + "x" * 59 + "…' is not an integer"),
])
def test_a_bad_flag_or_variable_value_is_one_line_in_keyform_s_words(args: list[str], env: dict[str, str] | None,
                                                                       expected: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """click's own wording (`Invalid value for '-f' / '--file': ...`, `. Did you mean '--format'?`)
    and what int() and float() accept (an Arabic-Indic `٣`, `1_0`, `nan`), found by review:
    every bad value is `NAME: what is wrong`, a suggestion `(did you mean 'x'?)` as in a manifest's
    messages, and a number is written in ASCII digits."""
    import keyform.emulator.__main__ as emulator_main

    monkeypatch.setattr(emulator_main, "serve", lambda config: 0)  # a value taken: exit 0, not serving forever
    res = run(*args, env=env)
    assert res.exit_code == 1 and res.stdout == "", res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {expected}"), res.stderr
    assert "Invalid value" not in res.stderr and "Did you mean" not in res.stderr


@pytest.mark.parametrize("argv", [["--port", "٣٠٠٠"], ["--seed", "1_0"], ["--latency-ms", "nan"],
                                  ["--host", ""], ["--token", " "], ["--org-rate-limit", "org_a=٣"],
                                  ["--seed", "9" * 5000]])
def test_python_m_keyform_emulator_refuses_the_same_values(argv: list[str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args(["--port", "0", *argv])
    assert caught.value.code == 1  # one line and exit 1, as `keyform emulator` (argparse's own: usage, exit 2)
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert "9" * 100 not in err  # (a 5,000-digit value is not repeated whole)


# ------------------------------------------------------------------ 5. -v / --no-color anywhere


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_verbose_and_no_color_are_accepted_on_every_subcommand(path: tuple[str, ...]) -> None:
    res = run(*path, "-v", "--no-color", "--help")
    assert res.exit_code == 0, res.output
    assert "--no-color" in res.stdout and "-v, --verbose" in res.stdout


def test_no_color_after_the_subcommand_turns_colour_off(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    res = project.run("plan", "--no-color", "-v")
    assert res.exit_code == 0, res.output
    assert "\x1b[" not in res.output
    assert "keyform: qp: GET " in res.stderr  # -v after the subcommand took effect


# ------------------------------------------------------------- 2. a saved plan and planning flags


@pytest.mark.parametrize("flags", [["--replace", "ci-bot"], ["--target", "ci-bot"], ["--no-refresh"],
                                   ["--refresh"]])
def test_apply_of_a_saved_plan_refuses_planning_flags(tmp_path: Path, emulator: Emulator, flags: list[str]) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    saved = tmp_path / "keyform.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    res = project.run("apply", str(saved), *flags)
    assert res.exit_code == 1
    flag = flags[0] if flags[0] not in ("--refresh", "--no-refresh") else "--refresh/--no-refresh"
    # the option as typed: it said `--targets` for --target
    assert res.stderr.startswith(f"Error: {flag} cannot be used with a saved plan ({saved}): "), res.stderr
    assert not project.state_path.exists()  # nothing was applied


def test_apply_of_a_saved_plan_names_every_planning_flag_given(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    saved = tmp_path / "keyform.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    res = project.run("apply", str(saved), "--target", "ci-bot", "--replace", "ci-bot", "--no-refresh")
    assert res.exit_code == 1
    assert res.stderr.startswith("Error: --target, --replace, --refresh/--no-refresh cannot be used with a saved "
                                 f"plan ({saved}): "), res.stderr


# --------------------------------------------------------------------- 3. plan --out bad paths


@pytest.mark.parametrize("where,expected", [
    ("missing/dir/keyform.plan", "the directory missing/dir does not exist"),
    (".", "is a directory"),
    ("file.txt/keyform.plan", "the directory file.txt is not a directory"),
])
def test_plan_out_to_a_bad_path_names_it(tmp_path: Path, emulator: Emulator, where: str, expected: str) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    (tmp_path / "file.txt").write_text("x")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        res = project.run("plan", "--out", where)
    finally:
        os.chdir(cwd)
    assert res.exit_code == 1
    assert res.stderr.startswith(f"Error: --out {where}: {expected}"), res.stderr
    assert "internal error" not in res.output


def test_a_state_path_where_no_directory_can_be_made_is_a_message(tmp_path: Path, emulator: Emulator) -> None:
    """`--state keyform.yaml/keyform.state.json` (a path through a file) and a path under /proc
    were 'internal error (NotADirectoryError)' and '(FileNotFoundError)'. (apply: it starts a state
    at a new `--state` path; plan refuses a path that does not exist before taking any lock.)"""
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    for state, said in ((f"{project.manifest}/keyform.state.json", "not a directory"),
                        ("/proc/sys/keyform-none/state.json", "/proc/sys/keyform-none: No such file or directory")):
        res = project.run("apply", "--auto-approve", "--state", state)
        assert res.exit_code == 1, res.output
        assert res.stderr.startswith(f"Error: {state}.lock: cannot make the directory of the state: "), res.stderr
        assert said in res.stderr and "internal error" not in res.output
        res = project.run("plan", "--state", state)
        assert res.exit_code == 1 and res.stderr.startswith(f"Error: --state {state}: {state} does not exist"), \
            res.output


def test_plan_out_never_replaces_a_file_that_is_not_an_earlier_plan(tmp_path: Path, emulator: Emulator) -> None:
    """`plan --out keyform.state.json` (or a sink file, a manifest, /dev/null as root) put the plan
    in place of the file: the state or the secrets were lost. Only an earlier plan is replaced."""
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    assert project.run("apply", "--auto-approve").exit_code == 0
    fifo, link = tmp_path / "pipe", tmp_path / "link.plan"
    os.mkfifo(fifo)
    sink = next((tmp_path / ".secrets").iterdir())
    files = {p: p.read_bytes() for p in (project.state_path, sink, project.manifest)}
    for where in (*files, fifo):
        res = project.run("plan", "--out", str(where))
        assert res.exit_code == 1, res.output
        assert res.stderr.startswith(f"Error: --out {where}: "), res.stderr
        assert "Traceback" not in res.output and "Saved" not in res.output
    assert {p: p.read_bytes() for p in files} == files and fifo.is_fifo()
    saved = tmp_path / "k.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    assert project.run("plan", "--out", str(saved)).exit_code == 0  # an earlier plan is replaced
    link.symlink_to(saved)
    res = project.run("plan", "--out", str(link))
    assert res.exit_code == 1 and "is a symbolic link" in res.stderr, res.output
    assert project.run("apply", str(saved)).exit_code == 0


# ------------------------------------------------------------------ 12. plurals, lock-timeout hint


def test_validate_counts_in_singular_and_plural(tmp_path: Path) -> None:
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.questra(KEYS)
    res = project.run("validate")
    assert res.stdout.strip() == "The manifests are valid: 1 key, 1 provider, 1 sink."
    project.questra(KEYS + "web: {provider: qp}\n")
    assert "2 keys, 1 provider, 1 sink." in project.run("validate").stdout


def test_a_bare_number_lock_timeout_suggests_seconds(tmp_path: Path) -> None:
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.questra(KEYS)
    res = project.run("plan", "--lock-timeout", "30")
    assert res.exit_code == 1
    assert "(e.g. 30s)" in res.stderr and "90d" not in res.stderr


def test_a_lock_timeout_in_other_digits_does_not_suggest_them(tmp_path: Path) -> None:
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.questra(KEYS)
    res = project.run("plan", "--lock-timeout", "\u0663")  # isdigit(): the hint said `(e.g. ٣s)`, refused too
    assert res.exit_code == 1 and "(e.g. 30s)" in res.stderr, res.stderr


LONG = "x" * 5000


@pytest.mark.parametrize("args", [
    ["plan", "--lock-timeout", LONG], ["report", "--due-within", LONG], ["report", "--idle", LONG],
    ["plan", "--target", LONG], ["apply", "--replace", LONG], ["state", "show", LONG], ["state", "rm", LONG],
    ["state", "mv", LONG, "k2"], ["state", "rekey", "--old-key-env", "-" + LONG],
])
def test_a_very_long_value_is_not_repeated_whole(tmp_path: Path, emulator: Emulator, args: list[str]) -> None:
    """A 5,000-character value was repeated whole in its one-line message: it is cut."""
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    assert project.run("apply", "--auto-approve").exit_code == 0
    res = project.run(*args, "-f", str(project.manifest))
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and len(lines[0]) < 300, res.stderr[:400]


@pytest.mark.parametrize("value", ["999999999999999d", "36501d", "9999999999999999999999w"])
def test_a_too_long_lock_timeout_says_the_maximum(tmp_path: Path, value: str) -> None:
    """It said `expected an integer and a unit`, which the value is: the problem is its length."""
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.questra(KEYS)
    res = project.run("plan", "--lock-timeout", value)
    assert res.exit_code == 1
    assert res.stderr == f"Error: --lock-timeout: duration {value[:40]!r} is too long: at most 36500d (100 years)\n"


# ---------------------------------------------------------------------- 13. help and metavars


@pytest.mark.parametrize("path", [p for p, _ in commands()], ids=" ".join)
def test_every_option_has_a_description_and_a_metavar(path: tuple[str, ...]) -> None:
    cmd = dict(commands())[path]
    assert cmd.help, f"keyform {' '.join(path)} has no description"
    for param in cmd.params:
        if not isinstance(param, click.Option):
            continue
        assert param.help, f"keyform {' '.join(path)} {param.opts[0]} has no help"
        if not param.is_flag and not isinstance(param.type, click.Choice):
            assert param.metavar, f"keyform {' '.join(path)} {param.opts[0]} has no metavar"
        if param.name == "state_path":
            assert "state file" in param.help


def test_emulator_help_is_click_and_shows_defaults_and_the_port_variable() -> None:
    res = run("emulator", "--help")
    assert res.exit_code == 0
    assert "--port PORT" in res.stdout and "default: 8787" in res.stdout
    assert "KEYFORM_EMULATOR_PORT" in res.stdout
    assert "--questra-list-shape [array|data|none]" in res.stdout


def test_emulator_click_options_match_python_m_keyform_emulator() -> None:
    """`keyform emulator` (click) and `python -m keyform.emulator` (argparse, stdlib only) take the
    same options with the same defaults: a knob added to one must be added to the other."""
    cmd = main.commands["emulator"]
    click_opts = {p.opts[0]: p.default for p in cmd.params
                  if isinstance(p, click.Option) and p.name not in ("verbose", "no_color", "help")}
    parser_defaults = {a.option_strings[0]: a.default for a in build_parser()._actions
                       if a.option_strings and a.dest != "help"}
    assert set(click_opts) == set(parser_defaults)
    for opt, default in click_opts.items():
        other = parser_defaults[opt]
        if opt in ("--token", "--read-only-token"):
            assert other is None  # repeatable, none given: any token / no read-only token
        elif opt == "--org-rate-limit":
            assert other == [] and not isinstance(default, str)  # repeatable, none given
        elif opt == "--log-requests":
            assert other is False  # a flag, off by default
        else:
            assert default == other, opt
    assert parse_args(["--port", "0"]).port == 0


def test_emulator_port_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYFORM_EMULATOR_PORT", "18799")
    assert parse_args([]).port == 18799
    res = run("emulator", "--help", env={"KEYFORM_EMULATOR_PORT": "18799"})
    assert "default: 8787" in res.stdout  # help shows the built-in default; the variable overrides it


@pytest.mark.parametrize("blank", ["", " ", "\t"])
def test_a_blank_emulator_port_variable_is_an_unset_one(blank: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`KEYFORM_EMULATOR_PORT=" "` was an error for `keyform emulator` and the default for `python -m
    keyform.emulator` (and for an empty value in both): blank is unset in both."""
    import keyform.emulator.__main__ as emulator_main

    ports: list[int] = []

    def serve(config: Any) -> int:
        ports.append(config.port)
        return 0

    monkeypatch.setattr(emulator_main, "serve", serve)
    monkeypatch.setenv("KEYFORM_EMULATOR_PORT", blank)
    assert run("emulator", env={"KEYFORM_EMULATOR_PORT": blank}).exit_code == 0
    assert ports == [8787] and parse_args([]).port == 8787


def test_emulator_on_a_taken_port_fails_at_once_with_a_reason(emulator: Emulator) -> None:
    port = emulator.url.rsplit(":", 1)[1]
    res = subprocess.run([sys.executable, "-m", "keyform", "emulator", "--port", port],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert res.stderr.strip() == f"Error: keyform emulator cannot listen on 127.0.0.1:{port}: address already in use"


# -------------------------------------------------------------------------- keyform show PLANFILE


def test_show_renders_a_saved_plan_in_every_format_without_manifests_or_state(tmp_path: Path,
                                                                             emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    saved = tmp_path / "keyform.plan"
    planned = project.run("plan", "--out", str(saved))
    assert planned.exit_code == 0
    project.manifest.unlink()  # a reviewer has only the artifact
    text = run("show", str(saved))
    assert text.exit_code == 0, text.output
    assert text.stdout == planned.stdout.split("\nSaved the plan to")[0]
    md = run("show", str(saved), "--format", "markdown")
    assert md.exit_code == 0 and "| `ci-bot` |" in md.stdout
    js = run("show", str(saved), "--format", "json")
    assert json.loads(js.stdout) == json.loads(saved.read_text())


def test_show_does_not_pass_terminal_escapes_from_a_plan_file_through(tmp_path: Path, emulator: Emulator) -> None:
    """A plan artifact is input from a pipeline: its strings must not drive the reviewer's terminal."""
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    saved = tmp_path / "keyform.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    doc = json.loads(saved.read_text())
    doc["changes"][0]["reasons"] = ["new key\x1b[31m"]
    saved.write_text(json.dumps(doc))
    for fmt in ("text", "markdown", "json"):
        res = run("show", str(saved), "--format", fmt)
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    assert "new key\ufffd[31m" in run("show", str(saved)).stdout
    # an address no manifest allows (escapes, a bidi override) makes the file no plan: said without them
    doc["changes"][0]["address"] = "ci-bot\x1b]0;pwned\x07\x1b[2J"
    saved.write_text(json.dumps(doc))
    res = run("show", str(saved))
    assert res.exit_code == 1 and "not a keyform plan file" in res.stderr, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output


def test_show_of_a_file_that_is_not_a_plan_says_so(tmp_path: Path) -> None:
    bogus = tmp_path / "x.plan"
    bogus.write_text("{}")
    res = run("show", str(bogus))
    assert res.exit_code == 1 and res.stderr.startswith(f"Error: {bogus}: not a keyform plan file")
    res = run("show", str(tmp_path / "missing.plan"))
    assert res.exit_code == 1 and "cannot read the saved plan" in res.stderr
    # a state file (its format_version is the plan's too) was read as an empty plan, and `apply`
    # of it said the "plan" was stale
    state = tmp_path / "state-copy.json"
    state.write_text(json.dumps({"format_version": 1, "serial": 1, "lineage": "x", "keys": {}}))
    (tmp_path / "keyform.yaml").write_text("version: 1\n")
    for args in (("show", str(state)), ("apply", "-f", str(tmp_path / "keyform.yaml"), str(state))):
        res = run(*args)
        assert res.exit_code == 1 and res.stderr.startswith(f"Error: {state}: not a keyform plan file"), res.output


def test_a_manifest_given_where_a_plan_or_nothing_goes_is_told_to_name_it_with_f(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new user's `keyform plan keyform.yaml` got only "Got unexpected extra argument", and
    `keyform apply keyform.yaml` "not a keyform plan file (Expecting value: line 1 column 1 (char
    0))", the JSON parser's words: both now say that manifests are named with -f."""
    monkeypatch.chdir(tmp_path)
    Path("keyform.yaml").write_text("version: 1\n")
    for command in ("plan", "validate"):
        res = run(command, "keyform.yaml")
        assert res.exit_code == 1
        assert res.stderr == (f"Error: Got unexpected extra argument (keyform.yaml): manifests are named with -f "
                              f"(`keyform {command} -f keyform.yaml`). See `keyform {command} --help`.\n")
    res = run("state", "rm", "a", "b")  # an extra argument that is no manifest: no hint
    assert res.stderr == "Error: Got unexpected extra argument (b). See `keyform state rm --help`.\n"
    for command in ("apply", "show"):
        res = run(command, "keyform.yaml")
        assert res.exit_code == 1
        assert res.stderr.startswith("Error: keyform.yaml: not a keyform plan file but a manifest: manifests are "
                                     "named with -f (`keyform plan -f keyform.yaml`)"), res.stderr
    Path("notes.txt").write_text("sk_live_CANARY_0123 is not JSON\n")
    res = run("show", "notes.txt")
    assert res.stderr == ("Error: notes.txt: not a keyform plan file (not JSON; a saved plan is the file "
                          "`keyform plan --out FILE` writes)\n")


# -------------------------------------------------------------------------- 19. shell completion


def complete(words: str, shell: str = "bash") -> subprocess.CompletedProcess[str]:
    """What the shell's completion function gets from keyform for the command line `words`."""
    env = {**os.environ, "_KEYFORM_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    return subprocess.run([sys.executable, "-c", "from keyform.cli import main; main(prog_name='keyform')"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_bash_completion_script_is_generated() -> None:
    env = {**os.environ, "_KEYFORM_COMPLETE": "bash_source"}
    res = subprocess.run([sys.executable, "-c", "from keyform.cli import main; main(prog_name='keyform')"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "_keyform_completion()" in res.stdout and "complete -o nosort -F _keyform_completion keyform" in res.stdout


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion_scripts_are_generated(shell: str) -> None:
    env = {**os.environ, "_KEYFORM_COMPLETE": f"{shell}_source"}
    res = subprocess.run([sys.executable, "-c", "from keyform.cli import main; main(prog_name='keyform')"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "keyform" in res.stdout and len(res.stdout) > 200


def test_completion_offers_commands_and_options() -> None:
    assert "plan" in complete("keyform pl").stdout
    out = complete("keyform plan --").stdout
    assert "--detailed-exitcode" in out and "--no-color" in out


def test_emulator_options_complete() -> None:
    """Issue 21 item 7: `keyform emulator --<TAB>` completed nothing while its options bypassed click."""
    out = complete("keyform emulator --").stdout
    for option in ("--port", "--latency-ms", "--error-rate", "--questra-list-shape", "--token"):
        assert option in out
    assert "array" in complete("keyform emulator --questra-list-shape ").stdout
