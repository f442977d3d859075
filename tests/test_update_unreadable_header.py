"""An in-place update of a TextQL key whose secret header is fed (`secret_of`) by a key whose
secret no sink gives back (an `exec` sink without `read_command`), against the emulator. The
update re-sends every secret header (`applier._update_remote`; proto3 JSON reads an absent
`headers` as empty, so it cannot be left out), so such a plan failed at apply, every run; now the
plan is refused at the key's line, and `--replace src` re-issues both."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


def manifest(project: Project, store: Path, description: str) -> None:
    project.write(f"""\
        version: 1
        providers:
          qp: {{type: questra, base_url: "{{url}}", token: {{env: QUESTRA_TOKEN}}, org_id: {{org}}}}
          tq: {{type: textql, base_url: "{{url}}", token: {{env: TEXTQL_TOKEN}}}}
        sinks:
          vault:
            type: exec
            command: [sh, -c, 'cat > "{store}/$KEYFORM_SINK_NAME"']
        defaults: {{sink: vault}}
        keys:
          src: {{provider: qp, name: src}}
          t:
            provider: tq
            description: {description}
            hosts: [api.questra.ai]
            headers: {{X-Questra-Key: {{secret_of: src}}}}
        """)


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    return Project(tmp_path / "p", emulator.url)


def test_an_update_re_sending_an_unreadable_secret_header_is_refused_at_plan(
        project: Project, emu_control: EmulatorControl, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    manifest(project, store, "Questra access")
    assert project.run("apply", "--auto-approve").exit_code == 0
    src, t = project.remote_id("src"), project.remote_id("t")

    manifest(project, store, "Questra access (ops)")
    line = project.manifest.read_text().splitlines().index("  t:") + 1
    res = project.run("plan")
    assert res.exit_code == 1, res.output
    assert f"keyform.yaml:{line}: key 't': its in-place update (description) sends header X-Questra-Key again, " \
           "the secret of 'src', and sink vault cannot give it back" in res.output, res.output
    assert "Traceback" not in res.output
    res = project.run("apply", "--auto-approve")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert (project.remote_id("src"), project.remote_id("t")) == (src, t)

    res = project.run("apply", "--auto-approve", "--replace", "src")
    assert res.exit_code == 0, res.output
    new_src, new_t = project.remote_id("src"), project.remote_id("t")
    assert new_src != src and new_t != t
    [key] = [k for k in emu_control.textql_keys() if k["id"] == new_t]
    assert key["description"] == "Questra access (ops)"
    assert key["headers"]["X-Questra-Key"] == (store / "SRC").read_text()
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
