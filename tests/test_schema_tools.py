"""The JSON Schemas as the tools users point at them see them: check-jsonschema (CI, pre-commit)
and yaml-language-server (editors, via `# yaml-language-server: $schema=…`).

- Every schema passes `check-jsonschema --check-metaschema`.
- Every example manifest the repository ships (examples/, and the full manifests in README.md and
  docs/) validates against schemas/manifest.schema.json with check-jsonschema.
- No `errorMessage` needs substitution: editors show it as written, so a `{value}` would appear
  literally. A pattern's message says what the value is not, and keyform puts the value in front.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keyform.errors import KeyformError
from keyform.manifest import load_workspace
from tests.workflows import FENCE, ROOT, SKIP_DIRS

SCHEMAS = sorted((ROOT / "schemas").glob("*.json"))
NODE_TOOLS = ROOT / ".ci" / "node"
MANIFEST_SCHEMA = ROOT / "schemas" / "manifest.schema.json"


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "check-jsonschema"
    if not exe.exists():
        pytest.fail("this test needs check-jsonschema (in the `test` extra: pip install -e '.[test]')", pytrace=False)
    return subprocess.run([str(exe), "--color", "never", *args], capture_output=True, text=True, timeout=120)


def example_manifests(tmp_path: Path) -> list[Path]:
    """examples/**/*.yaml manifests, and README/docs yaml blocks that are whole manifests (`version:`),
    written to tmp_path/blocks/ beside a copy of schemas/ (their `$schema=../schemas/…` resolves)."""
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas", dirs_exist_ok=True)
    (tmp_path / "blocks").mkdir(exist_ok=True)
    found = [p for p in sorted((ROOT / "examples").rglob("*.y*ml"))
             if not SKIP_DIRS.intersection(p.parts) and ".github" not in p.parts and p.suffix in (".yaml", ".yml")
             and p.relative_to(ROOT / "examples").parts[0] != "providers"]  # rest definitions, not manifests
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for n, match in enumerate(FENCE.finditer(doc.read_text()), 1):
            try:
                parsed = yaml.safe_load(match[1])
            except yaml.YAMLError:
                continue
            if isinstance(parsed, dict) and "version" in parsed and "keys" in parsed:
                block = tmp_path / "blocks" / f"{doc.stem}-{n}.yaml"
                block.write_text(match[1])
                found.append(block)
    return found


def test_every_schema_passes_the_metaschema_check() -> None:
    assert len(SCHEMAS) >= 3
    done = check_jsonschema("--check-metaschema", *map(str, SCHEMAS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_example_manifest_validates_against_the_schema(tmp_path: Path) -> None:
    manifests = example_manifests(tmp_path)
    names = [p.name for p in manifests]
    assert len(manifests) >= 3 and any(n.startswith("README-") for n in names), names
    done = check_jsonschema("--schemafile", str(MANIFEST_SCHEMA), *map(str, manifests))
    assert done.returncode == 0, done.stdout + done.stderr
    # and check-jsonschema really checks: a manifest with a bad duration is refused
    bad = check_jsonschema("--schemafile", str(MANIFEST_SCHEMA), str(ROOT / "tests/malformed/29-bad-duration.yaml"))
    assert bad.returncode == 1 and "expires_in" in bad.stdout, bad.stdout + bad.stderr


def error_messages(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if isinstance(node.get("errorMessage"), str):
            yield where, node
        for key, value in node.items():
            yield from error_messages(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from error_messages(value, f"{where}/{i}")


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda p: p.name)
def test_error_messages_read_well_without_substitution(schema: Path) -> None:
    for where, node in error_messages(json.loads(schema.read_text())):
        message = node["errorMessage"]
        assert not re.search(r"\{[A-Za-z_]+\}", message), f"{schema.name} {where}: {message!r} has a placeholder"
        if "pattern" in node:  # keyform shows "<value> is <message>"
            assert message.startswith("not "), f"{schema.name} {where}: {message!r} should start with 'not '"


MANIFEST = """\
version: 1
providers:
  q: {type: questra, token: {env: QUESTRA_TOKEN}, org_id: org_1}
sinks:
  out: {type: dotenv, path: .secrets/out.env}
keys:
  k:
    provider: q
    sink: KEY_SINK
    expires_in: KEY_EXPIRY
"""


@pytest.mark.parametrize(("sink", "expiry", "message"), [
    ("'bad sink!'", "90d", "keyform.yaml:9: keys.k.sink: 'bad sink!' is not a valid sink name (letters, digits, '_', '.', '-'; "
                           "or {use: SINK, as: ENTRY})"),
    ("out", "'90 days'", "keyform.yaml:10: keys.k.expires_in: '90 days' is not a valid duration (e.g. 90d, 12h; units s m h d w)"),
])
def test_keyform_puts_the_value_in_front_of_a_pattern_message(
        tmp_path: Path, sink: str, expiry: str, message: str) -> None:
    (tmp_path / "keyform.yaml").write_text(MANIFEST.replace("KEY_SINK", sink).replace("KEY_EXPIRY", expiry))
    with pytest.raises(KeyformError) as caught:
        load_workspace(cwd=tmp_path)
    assert [str(d) for d in caught.value.diagnostics] == [message]


def yaml_language_server(*files: Path) -> list[dict[str, Any]]:
    """Each file's diagnostics as an editor shows them (.ci/node/yaml-validate.js)."""
    if not (NODE_TOOLS / "node_modules" / "yaml-language-server").exists():
        pytest.fail("this test needs yaml-language-server; `bash .ci/run` installs it (or: npm ci --prefix .ci/node)",
                    pytrace=False)
    node = shutil.which("node")
    assert node, "this test needs node"
    done = subprocess.run([node, str(NODE_TOOLS / "yaml-validate.js"), str(MANIFEST_SCHEMA), *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_an_editor_shows_every_schema_message_as_a_sentence_and_accepts_the_examples(tmp_path: Path) -> None:
    """yaml-language-server over the malformed corpus (one-file cases) and the example manifests."""
    corpus = sorted(p for p in (ROOT / "tests" / "malformed").glob("*.yaml") if p.read_bytes().isascii())
    examples = example_manifests(tmp_path)
    diagnostics = yaml_language_server(*corpus, *examples)
    assert not [d for d in diagnostics if Path(d["file"]) in examples], diagnostics
    shown = {d["message"] for d in diagnostics}
    custom = {node["errorMessage"] for _, node in error_messages(json.loads(MANIFEST_SCHEMA.read_text()))}
    assert len(shown & custom) >= 5, shown  # the corpus makes the editor show our own messages
    assert not [m for m in shown if re.search(r"\{[A-Za-z_]+\}", m)], shown
