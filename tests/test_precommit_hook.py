"""The `keyform-validate` pre-commit hook, run by the real pre-commit in scratch git repositories.

`pre-commit run` installs the hook the way a user's pre-commit does (a virtualenv with keyform
pip-installed from the hook repository) from a temporary git repository holding this checkout's
files as they are now, so the test needs neither a clone of a remote nor this worktree's path.
The hook environment is installed once per run (PRE_COMMIT_HOME in a temporary directory) and
reused by every layout: good, broken, nested, `keys/`, and a custom layout configured with `args:`.
(Not `pre-commit try-repo`: it writes the same one-repository config, but into a store of its own
in a new temporary directory each time, so it installed the environment anew for every call.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyform.precommit import main as hook_main
from keyform.precommit import workspaces
from tests.workflows import ROOT

PROVIDERS = """\
version: 1
providers:
  questra:
    type: questra
    token: {env: QUESTRA_TOKEN}
    org_id: org_1
sinks:
  env:
    type: dotenv
    path: .secrets/prod.env
defaults:
  sink: env
"""

KEYS = """\
version: 1
keys:
  ci-bot:
    provider: questra
    expires_in: 90d
  deploy-bot:
    provider: questra
    expires_in: EXPIRY
"""

ROOT_MANIFEST = PROVIDERS + KEYS.removeprefix("version: 1\n")


# --------------------------------------------------------------------------- which workspaces


def test_a_file_in_keys_stands_for_its_directory_any_other_manifest_for_itself() -> None:
    assert workspaces(["keyform.yaml", "keys/prod.yaml", "keys/providers.yaml", "sub/keyform.yaml",
                       "infra/keys/a.yml", "keys/prod/keyform.yaml"]) == [
        ("keyform.yaml",), ("keys/",), ("sub/keyform.yaml",), ("infra/keys/",), ("keys/prod/keyform.yaml",)]
    assert workspaces(["a/x.yaml", "a/y.yaml", "b/keyform.yaml", "keyform.yaml"], directories=True) == [
        ("a/",), ("b/",), ("./",)]


def test_fixed_workspace_from_args_is_validated_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "providers.yaml").write_text(PROVIDERS)
    (tmp_path / "infra" / "keys.yaml").write_text(KEYS.replace("EXPIRY", "30d"))
    assert hook_main(["-f", "infra/", "infra/keys.yaml", "infra/providers.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.count("keyform validate -f infra/") == 1 and "2 keys, 1 provider, 1 sink" in out
    (tmp_path / "infra" / "keys.yaml").write_text(KEYS.replace("EXPIRY", "soon"))
    assert hook_main(["-f", "infra/", "infra/providers.yaml"]) == 1
    assert "infra/keys.yaml:8: keys.deploy-bot.expires_in: 'soon' is not a valid duration" in capsys.readouterr().err


def test_a_file_name_that_looks_like_an_option_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """pre-commit appends file names after `args:` with no `--`: a changed `-f/keyform.yaml` (a
    directory named `-f`) must be validated as that file, not read as `-f /keyform.yaml`."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-f").mkdir()
    (tmp_path / "-f" / "keyform.yaml").write_text(ROOT_MANIFEST.replace("EXPIRY", "soon"))
    assert hook_main(["-f/keyform.yaml"]) == 1
    captured = capsys.readouterr()
    assert "keyform validate -f ./-f/keyform.yaml" in captured.out
    assert "keyform.yaml:19: keys.deploy-bot.expires_in: 'soon' is not a valid duration" in captured.err
    assert hook_main(["--bogus", "keyform.yaml"]) == 1  # a usage error: one line, exit 1 (was 2, with the usage)
    err = capsys.readouterr().err
    assert err.startswith("Error: keyform-pre-commit: unknown option '--bogus' (usage: keyform-pre-commit ") \
        and err.count("\n") == 1, err
    assert hook_main(["-f"]) == 1
    assert "-f needs a PATH" in capsys.readouterr().err


def test_help_is_printed_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """`keyform-pre-commit --help` prints its usage on stdout, exit 0, as `keyform --help` and `python -m
    keyform.emulator --help` do (it went to stderr: `keyform-pre-commit --help | less` showed nothing)."""
    assert hook_main(["--help"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: keyform-pre-commit ") and captured.err == "", captured


@pytest.mark.parametrize("layout", ["keys", "keyform"])
def test_a_file_name_with_a_newline_is_shown_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    """A file name is the committer's text. Printed raw, its newline started a line of the CI log
    with `::warning::…` (or `::stop-commands::`, `::add-mask::`): a command to the GitHub Actions
    runner, not text. Every line the hook and keyform print is one line: the newline as `\\n`."""
    monkeypatch.chdir(tmp_path)
    odd = "x\n::warning title=pwned::hijacked\n.yaml"
    if layout == "keys":
        (tmp_path / "keys").mkdir()
        (tmp_path / "keys" / odd).write_text(ROOT_MANIFEST.replace("EXPIRY", "soon"))
        changed = f"keys/{odd}"
    else:
        changed = f"keyform-{odd}"
        (tmp_path / changed).write_text(ROOT_MANIFEST.replace("EXPIRY", "soon"))
    assert hook_main([changed]) == 1
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert not [line for line in lines if line.lstrip().startswith("::")], lines
    assert "x\\n::warning title=pwned::hijacked\\n.yaml:19: keys.deploy-bot.expires_in" in captured.err, captured.err


# ------------------------------------------------------------------------------ real pre-commit


@dataclass(frozen=True)
class HookRepo:
    path: Path
    rev: str
    env: dict[str, str]
    pre_commit: str


def _git(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookRepo]:
    pre_commit = Path(sys.executable).parent / "pre-commit"
    if not pre_commit.exists():
        pytest.fail("this test needs pre-commit (in the `test` extra: pip install -e '.[test]')", pytrace=False)
    base = tmp_path_factory.mktemp("pre-commit")
    gitconfig = base / "gitconfig"
    gitconfig.write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(PRE_COMMIT_HOME=str(base / "cache"), GIT_CONFIG_GLOBAL=str(gitconfig), GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid")
    # The hook repository: this checkout's files as they are (tracked, and new ones not ignored).
    repo = base / "keyform"
    listed = _git(ROOT, env, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in sorted(set(filter(None, listed.split("\0")))):
        src = ROOT / name
        if src.is_symlink() or (src.exists() and not src.is_dir()):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name, follow_symlinks=False)
    _git(repo, env, "init", "-q")
    _git(repo, env, "add", "-A")
    _git(repo, env, "commit", "-q", "-m", "keyform as checked out")
    yield HookRepo(repo, _git(repo, env, "rev-parse", "HEAD"), env, str(pre_commit))


def scratch(tmp_path: Path, hook: HookRepo, files: dict[str, str]) -> Path:
    """A git repository with `files` staged, as before `git commit`."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, hook.env, "init", "-q")
    write(repo, files)
    _git(repo, hook.env, "add", "-A")
    return repo


def write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)


@dataclass(frozen=True)
class Run:
    code: int
    output: str


def try_repo(hook: HookRepo, repo: Path, *args: str) -> Run:
    """What `pre-commit try-repo HOOK_REPO keyform-validate` does (a config of that one repository at
    its HEAD, outside `repo`), with the module's PRE_COMMIT_HOME, where the environment stays."""
    config = repo.parent / "try-repo-config.yaml"
    config.write_text(f"repos:\n- repo: {hook.path}\n  rev: {hook.rev}\n  hooks:\n  - id: keyform-validate\n")
    done = subprocess.run([hook.pre_commit, "run", "-c", str(config), "keyform-validate", "--verbose", *args],
                          cwd=repo, env=hook.env, capture_output=True, text=True, timeout=900)
    return Run(done.returncode, done.stdout + done.stderr)


GOOD = ROOT_MANIFEST.replace("EXPIRY", "30d")
WORKFLOW = (ROOT / "examples/gitops/.github/workflows/keyform.yml").read_text()


def test_good_nested_and_keys_layouts_pass_each_as_its_own_workspace(tmp_path: Path, hook_repo: HookRepo) -> None:
    """A root manifest, a nested one with the same addresses (not one workspace with it), and the
    kit's layout: manifests under keys/ (the old hook never matched them and failed on a missing
    ./keyform.yaml) beside the kit's workflow (not a manifest)."""
    repo = scratch(tmp_path, hook_repo, {
        "keyform.yaml": GOOD, "sub/keyform.yaml": GOOD,
        "keys/providers.yaml": PROVIDERS, "keys/prod.yaml": KEYS.replace("EXPIRY", "30d"),
        ".github/workflows/keyform.yml": WORKFLOW})
    run = try_repo(hook_repo, repo, "--all-files")
    assert run.code == 0, run.output
    for workspace in ("keyform.yaml", "sub/keyform.yaml", "keys/"):
        assert f"keyform validate -f {workspace}\nThe manifests are valid: 2 keys, 1 provider, 1 sink." in run.output
    assert run.output.count("keyform validate -f") == 3, run.output


def test_broken_nested_and_keys_manifests_fail_the_commit_each_at_its_line(tmp_path: Path, hook_repo: HookRepo) -> None:
    """As `git commit` runs it (the staged files): the changed root manifest, a nested one (the old
    hook validated only ./keyform.yaml, so a broken sub/keyform.yaml passed) and keys/ whose
    unchanged prod.yaml is broken once providers.yaml changes; an unchanged broken workspace is not
    validated."""
    repo = scratch(tmp_path, hook_repo, {
        "keyform.yaml": GOOD, "sub/keyform.yaml": GOOD,
        "keys/providers.yaml": PROVIDERS, "keys/prod.yaml": KEYS.replace("EXPIRY", "90 days"),
        "other/keyform.yaml": "version: 1\nkeys: [not, a, mapping]\n"})
    _git(repo, hook_repo.env, "commit", "-q", "-m", "before the hook was installed")
    write(repo, {
        "keyform.yaml": ROOT_MANIFEST.replace("EXPIRY", "a while"),
        "sub/keyform.yaml": GOOD.replace("ci-bot:\n    provider: questra", "ci-bot:\n    provider: qestra"),
        "keys/providers.yaml": PROVIDERS.replace("org_1", "org_2")})
    _git(repo, hook_repo.env, "add", "keyform.yaml", "sub/keyform.yaml", "keys/providers.yaml")
    run = try_repo(hook_repo, repo)
    assert run.code == 1, run.output
    assert "Error: keyform.yaml:19: keys.deploy-bot.expires_in: 'a while' is not a valid duration" in run.output
    assert "Error: sub/keyform.yaml:15: keys.ci-bot.provider: unknown provider 'qestra'" in run.output
    assert "Error: keys/prod.yaml:8: keys.deploy-bot.expires_in: '90 days' is not a valid duration" in run.output
    assert "other/" not in run.output


def test_custom_layout_with_args(tmp_path: Path, hook_repo: HookRepo) -> None:
    """`files:` + `args: [--directories]` in .pre-commit-config.yaml: one workspace per directory."""
    config = textwrap.dedent(f"""\
        repos:
          - repo: {hook_repo.path}
            rev: {hook_repo.rev}
            hooks:
              - id: keyform-validate
                files: ^infra/keyform/
                args: [--directories]
        """)
    repo = scratch(tmp_path, hook_repo, {
        ".pre-commit-config.yaml": config,
        "infra/keyform/prod/providers.yaml": PROVIDERS, "infra/keyform/prod/keys.yaml": KEYS.replace("EXPIRY", "1d"),
        "infra/keyform/staging/providers.yaml": PROVIDERS,
        "infra/keyform/staging/keys.yaml": KEYS.replace("EXPIRY", "2 days")})
    done = subprocess.run([hook_repo.pre_commit, "run", "--all-files", "--verbose"], cwd=repo, env=hook_repo.env,
                          capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "keyform validate -f infra/keyform/prod/\nThe manifests are valid: 2 keys" in out
    assert "Error: infra/keyform/staging/keys.yaml:8: keys.deploy-bot.expires_in: '2 days'" in out
