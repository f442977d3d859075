"""A saved plan is stale once a REST definition file it was made with changes (review finding 4).

`keyform plan --out p.plan`, then an edit of the `type: rest` definition (its default `base_url`
moved to another host, its create body changed), then `keyform apply p.plan`: the apply sent the
token to the new host with a body nobody reviewed, because the workspace digest a saved plan is
checked against covered only the manifest files. Now the digest covers each definition file the
providers use, so the apply is refused before any call; the real CLI (subprocesses, the manifest
parse cache of the test session in use) against two scripted APIs on 127.0.0.1.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.project import SCRIPTED_REST, TOKENS, Project
from keyform.manifest import parsecache
from tests.loopback import serving
from tests.test_provider_rest import ScriptServer

# the harness's scripted definition, with the base URL in the definition itself (the one edit
# the attack makes: another host)
DEFINITION = SCRIPTED_REST.replace("name: scripted\n", "name: scripted\nbase_url: BASE_URL\n", 1)


def _api() -> ScriptServer:
    """A key API that lists, creates and deletes keys in memory."""
    keys: dict[str, dict[str, Any]] = {}

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "GET":
            return 200, {}, {"items": list(keys.values())}
        if method == "POST":
            key = {"id": f"k{len(keys) + 1}", "name": body["name"], "created": "2026-01-01T00:00:00Z"}
            keys[key["id"]] = key
            return 201, {}, {**key, "secret": f"sk-issued-{key['id']}-0123456789"}
        keys.pop(path.rsplit("/", 1)[-1], None)
        return 204, {}, None

    return ScriptServer(script)


@pytest.fixture
def apis() -> Iterator[tuple[ScriptServer, ScriptServer]]:
    """(the API the plan was made against, another host)."""
    with serving(_api()) as reviewed, serving(_api()) as other:
        yield reviewed, other


def _project(root: Path, url: str) -> Project:
    """A workspace whose rest provider takes its base_url from the definition (`api.yaml`)."""
    project = Project(root, url)
    root.mkdir(parents=True, exist_ok=True)
    (root / "api.yaml").write_text(DEFINITION.replace("BASE_URL", url))
    project.write("""
        version: 1
        providers:
          rp: {type: rest, definition: api.yaml, token: {env: QUESTRA_TOKEN}}
        sinks:
          env: {type: dotenv, path: .secrets/keys.env}
        defaults: {sink: env}
        keys:
          k1: {provider: rp, name: k1}
        """)
    return project


@pytest.mark.parametrize("edit", ["another host", "another body", "same size, another byte"])
def test_a_saved_plan_is_stale_when_its_rest_definition_changed(tmp_path: Path, apis: tuple[ScriptServer,
                                                                ScriptServer], edit: str) -> None:
    reviewed, other = apis
    project = _project(tmp_path, reviewed.url)
    planned = project.run_process("plan", "--out", "p.plan")
    assert planned.exit_code == 0 and "k1" in planned.stdout, planned.output
    # the apply reads the manifest from the parse cache (its bytes did not change): the digest must
    # still cover the definition, which is read afresh every time
    assert parsecache.load(project.manifest.read_bytes(), "keyform.yaml") is not None
    definition = tmp_path / "api.yaml"
    text = definition.read_text()
    if edit == "another host":
        text = text.replace(reviewed.url, other.url)
    elif edit == "another body":
        text = text.replace('body: {name: "${attrs.name}"}', 'body: {name: "${attrs.name}-EDITED"}')
    else:
        text = text.replace("/keys, items", "/kezs, items")
    definition.write_text(text)
    sent = len(reviewed.seen)
    applied = project.run_process("apply", "p.plan")
    assert applied.exit_code == 1, applied.output
    assert "Saved plan is stale: the manifests (or a REST definition file they use) changed since it was made" \
        in applied.stderr, applied.stderr
    assert other.seen == [] and len(reviewed.seen) == sent  # refused before any call, to either host
    assert TOKENS["QUESTRA_TOKEN"] not in applied.output


def test_an_unchanged_definition_keeps_the_plan_valid_in_another_checkout(
        tmp_path: Path, apis: tuple[ScriptServer, ScriptServer]) -> None:
    """The digest names a definition relative to the first manifest, as it names the manifests: a
    plan made in one checkout applies in another (CI plans in one job, applies in the next)."""
    reviewed, _ = apis
    project = _project(tmp_path / "plan-job", reviewed.url)
    assert project.run_process("plan", "--out", "p.plan").exit_code == 0
    checkout = Project(shutil.copytree(project.root, tmp_path / "apply-job"), reviewed.url)
    applied = checkout.run_process("apply", "p.plan")
    assert applied.exit_code == 0, applied.output
    assert [method for method, *_ in reviewed.seen].count("POST") == 1
