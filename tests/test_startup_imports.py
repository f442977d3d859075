"""What each command imports (issue #7: lazy imports keep start-up fast), read from
`python -X importtime -m keyform ...` in a fresh process, exactly as a user runs keyform.

- `--version` imports click and keyform's CLI, nothing heavier (no YAML, HTTP, schema or diff library);
- `validate` of a valid manifest imports the YAML loader but neither httpx, jsonschema nor deepdiff;
- a no-change `plan` talks HTTP, but imports neither jsonschema (the manifest is valid) nor deepdiff
  (no attribute changed, so there is no diff to render), nor httpcore (no proxy: the direct transport),
  nor PyYAML (the manifest comes from the parse cache);
- an invalid manifest does import jsonschema, to word the problem: the check sees real imports.
The YAML loader is libyaml's C loader whenever PyYAML has it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from harness.project import ORG, TOKENS
from keyform.emulator import Emulator
from keyform.manifest import yamlsource
from tests import fakedist

HEAVY = ("httpx", "httpcore", "jsonschema", "deepdiff", "yaml")


def imported(args: list[str], cwd: Path, expect_code: int = 0) -> set[str]:
    env = {**os.environ, **TOKENS, "TEXTQL_AUTH": "an-upstream-credential", "NO_COLOR": "1"}
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "keyform", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == expect_code, res.stderr[-2000:]
    names = set()
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "keyform.cli" in names  # the importtime report was read
    return names


def top_level(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def manifest(tmp_path: Path, url: str, keys: str = "  ci-bot: {provider: qp, name: CI bot}\n") -> Path:
    path = tmp_path / "keyform.yaml"
    path.write_text(
        "version: 1\n"
        "providers:\n"
        f"  qp: {{type: questra, base_url: '{url}', token: {{env: QUESTRA_TOKEN}}, org_id: {ORG}}}\n"
        "sinks:\n"
        "  env: {type: dotenv, path: .secrets/keys.env}\n"
        "defaults: {sink: env}\n"
        "keys:\n" + keys)
    return path


def test_version_imports_nothing_heavy(tmp_path: Path) -> None:
    names = top_level(imported(["--version"], tmp_path))
    assert names.isdisjoint(HEAVY), sorted(names & set(HEAVY))
    assert "click" in names


def test_validate_of_a_valid_manifest_needs_no_http_schema_or_diff_library(tmp_path: Path) -> None:
    manifest(tmp_path, "http://127.0.0.1:9")
    names = top_level(imported(["validate"], tmp_path))
    assert "yaml" in names
    assert names.isdisjoint({"httpx", "httpcore", "jsonschema", "deepdiff"})


def test_an_invalid_manifest_imports_jsonschema_to_word_the_problem(tmp_path: Path) -> None:
    manifest(tmp_path, "http://127.0.0.1:9", keys="  ci-bot: {provider: qp, rotation: {bogus: 1d}}\n")
    names = top_level(imported(["validate"], tmp_path, expect_code=1))
    assert "jsonschema" in names
    assert names.isdisjoint({"httpx", "deepdiff"})


def test_a_no_change_plan_imports_no_schema_or_diff_library(tmp_path: Path, emulator: Emulator) -> None:
    manifest(tmp_path, emulator.url)
    with (tmp_path / "keyform.yaml").open("a") as fh:  # a TextQL key too: its provider module is imported
        fh.write("  tq-key: {provider: tq, description: an upstream, hosts: [api.example.com],\n"
                 "           api_provider: questra, auth_type: token, auth_value: {env: TEXTQL_AUTH}}\n")
    text = (tmp_path / "keyform.yaml").read_text()
    (tmp_path / "keyform.yaml").write_text(text.replace(
        "sinks:\n", f"  tq: {{type: textql, base_url: '{emulator.url}', token: {{env: TEXTQL_TOKEN}}}}\nsinks:\n", 1))
    imported(["apply", "--auto-approve"], tmp_path)
    modules = imported(["plan", "--detailed-exitcode"], tmp_path)
    names = top_level(modules)
    assert "httpx" in names
    assert names.isdisjoint({"jsonschema", "deepdiff"})
    # the manifest comes from the parse cache (warmed by the apply): PyYAML stays unloaded
    assert "yaml" not in names
    # TextQL's listing check needs JSON Pointers (keyform.pointers), not the REST definition loader
    assert "keyform.manifest.restdef" not in modules
    # with no proxy the direct transport talks HTTP: httpcore and h11 (~20 ms) stay unloaded
    assert names.isdisjoint({"httpcore", "h11"}), sorted(names & {"httpcore", "h11"})


def test_a_plan_does_not_import_httpx_s_own_command_line(tmp_path: Path, emulator: Emulator) -> None:
    """httpx's `__init__` imports its CLI (click, pygments, rich) whenever they are installed: ~40 ms
    of every HTTP command's start-up with rich. A fake `rich` on the path marks whether it was
    imported; pygments is there (pytest needs it)."""
    site = tmp_path / "site"
    (site / "rich").mkdir(parents=True)
    (site / "rich" / "__init__.py").write_text(
        "import os\nwith open(os.environ['RICH_MARK'], 'a') as fh: fh.write('imported\\n')\n")
    for sub in ("console", "markup", "progress", "syntax", "table"):
        (site / "rich" / f"{sub}.py").write_text("")
    mark = tmp_path / "rich.imported"
    manifest(tmp_path, emulator.url)
    imported(["apply", "--auto-approve"], tmp_path)
    names = imported_with({"PYTHONPATH": str(site), "RICH_MARK": str(mark)}, ["plan", "--detailed-exitcode"],
                          tmp_path)
    assert "httpx" in top_level(names)
    assert not mark.exists()
    assert "pygments" not in top_level(names)  # (-X importtime lists the refused `httpx._main` itself)


def test_the_manifest_loader_uses_libyaml_whenever_pyyaml_has_it() -> None:
    assert yamlsource._BASE_LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


def fake_plugin(tmp_path: Path) -> dict[str, str]:
    """A plug-in distribution on PYTHONPATH (dist-info with entry points in both groups). Its module
    appends a line to a marker file when imported (entry points are loaded by importlib, which
    `-X importtime` does not report), so the test sees exactly when keyform loads a plug-in."""
    env = fakedist.install(
        tmp_path / "site", "keyform-fakeplug", "1.2.3",
        "[keyform.providers]\nfake = fakeplug:PROVIDER\n\n[keyform.sinks]\nfake-sink = fakeplug:SINK\n", "fakeplug",
        "import os\n"
        "with open(os.environ['FAKEPLUG_MARK'], 'a') as fh: fh.write('loaded\\n')\n"
        "from keyform.typeregistry import ProviderType, SinkType\n"
        "PROVIDER = ProviderType(name='fake', open=lambda *a, **k: None, returns_secret=False,\n"
        "                        attributes=('label',), default_base_url='https://fake.example')\n"
        "SINK = SinkType(name='fake-sink', required='path', open=lambda c: None)\n")
    return {**env, "FAKEPLUG_MARK": str(tmp_path / "fakeplug.loaded")}


def imported_with(env: dict[str, str], args: list[str], cwd: Path, expect_code: int = 0) -> set[str]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return imported(args, cwd, expect_code)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_version_and_a_builtin_validate_load_no_plugin_but_a_plugin_manifest_does(tmp_path: Path) -> None:
    env = fake_plugin(tmp_path)
    manifest(tmp_path, "http://127.0.0.1:9")
    mark = Path(env["FAKEPLUG_MARK"])
    for args in (["--version"], ["validate"]):
        imported_with(env, args, tmp_path)
        assert not mark.exists(), args
    (tmp_path / "keyform.yaml").write_text(
        "version: 1\nproviders:\n  f: {type: fake, token: {env: QUESTRA_TOKEN}}\nkeys:\n  k: {provider: f, label: x}\n")
    names = imported_with(env, ["validate"], tmp_path)
    assert mark.read_text() == "loaded\n"  # loaded once, when the manifest named its type
    assert "httpx" not in top_level(names)
