"""Found by an adversarial pass (stop 36): a REST definition with `key.last_used`
(examples/providers/questra.yaml, openai-admin-keys.yaml) made the type `reports_usage` (so `unused_for`, `max_idle` and `report --idle` are accepted), but the
REST provider stored the value in `RestKey.last_used` and never set `last_used_at` / `usage_reported`:
every key read "unknown (did not report last_used_at)"."""

from __future__ import annotations

import json
from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


def test_rest_definition_last_used_reaches_report_idle(tmp_path: Path, emulator: Emulator,
                                                       emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url, rest=True)
    project.questra("k:\n  provider: qp\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    key_id = project.remote_id("k")
    emu_control.use_questra(ORG, key_id, "2020-01-01T00:00:00Z")
    result = project.run("report", "-f", str(project.manifest), "--idle", "30d", "--format", "json")
    assert result.stdout.strip().startswith("{"), result.tail()
    doc = json.loads(result.stdout)
    [row] = doc["keys"]
    assert row["last_used_at"] == "2020-01-01T00:00:00Z", row["usage"]
    assert row["usage"].startswith("last used") and doc["idle"]["not_judged"] == []  # judged: usage reported
    # (not idle: idleness counts from the later of the last use and the key's creation, today)


def test_rest_definition_unused_for_revokes_an_unused_deposed_key(tmp_path: Path, emulator: Emulator,
                                                                  emu_control: EmulatorControl) -> None:
    from datetime import timedelta

    from keyform import operations
    from keyform.durations import utcnow

    project = Project(tmp_path, emulator.url, rest=True)
    project.questra("k:\n  provider: qp\n  rotation: {grace: 7d, unused_for: 1h}\n")
    base = utcnow().replace(microsecond=0)
    offset = [timedelta(0)]

    def clock():  # type: ignore[no-untyped-def]
        return base + offset[0]

    def converge(replace: tuple[str, ...] = ()) -> None:
        opts = operations.Options(files=[str(project.manifest)], clock=clock, env=project.env)
        with operations.session(opts, "apply") as sess:
            assert operations.apply(sess, operations.plan(sess, replace=replace)).ok

    converge()
    old = project.remote_id("k")
    converge(("k",))
    offset[0] = timedelta(hours=2)  # never used since the replacement, 2h > unused_for 1h
    opts = operations.Options(files=[str(project.manifest)], clock=clock, env=project.env)
    with operations.session(opts, "plan") as sess:
        plan = operations.plan(sess)
    assert [c.remote_id for c in plan.actionable if c.deposed] == [old], plan.notes
