"""Found by an adversarial pass (stop 36): `keyform import` adopted a key that another postgres
workspace in the same database already managed. `report --unmanaged` treats such a key as tracked ("one team's keys are not another team's
orphans"), but import checks only its own state: two workspaces then manage one key, and the first
rotation or delete by team A revokes the key team B's consumers use."""

from __future__ import annotations

from pathlib import Path

from keyform.emulator import Emulator
from tests.test_usage_report import pg_project


def test_import_refuses_a_key_another_workspace_manages(tmp_path: Path, emulator: Emulator, pg_dsn: str) -> None:
    team_a = pg_project(tmp_path / "a", emulator.url, pg_dsn, "team-a", "a-bot: {provider: qp, name: A bot}\n")
    assert team_a.run("apply", "--auto-approve").exit_code == 0
    a_id = team_a.run("state", "list", "-f", str(team_a.manifest)).stdout.split()[2]
    team_b = pg_project(tmp_path / "b", emulator.url, pg_dsn, "team-b", "stolen: {provider: qp, name: A bot}\n")
    res = team_b.run("import", "stolen", a_id)
    assert res.exit_code == 1, res.output  # it is team-a's key
    assert "team-a" in res.output
