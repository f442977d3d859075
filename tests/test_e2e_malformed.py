"""Through the CLI, every malformed manifest ends in exit 1 with `file:line: message` on stderr,
no traceback, and the state file byte-identical."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyform.cli import main
from tests.test_manifest_malformed import CASES, CORPUS

STATE = b'{"format_version": 1, "lineage": "l", "serial": 7, "fingerprint_salt": "00", "keys": {}, "deposed": []}\n'
LOCATED = re.compile(r"^Error: \S+:\d+: ", re.MULTILINE)


@pytest.mark.parametrize("name", CASES)
def test_malformed_manifest_exits_1_with_location_and_state_untouched(name: str, tmp_path: Path) -> None:
    case = tmp_path / name
    if (CORPUS / name).is_dir():
        shutil.copytree(CORPUS / name, case)
    else:
        shutil.copy(CORPUS / name, case)
    state = tmp_path / "keyform.state.json"
    state.write_bytes(STATE)
    for command in (["plan"], ["apply", "--auto-approve"], ["validate"]):
        extra = [] if command == ["validate"] else ["--state", str(state)]
        res = CliRunner().invoke(main, [*command, "-f", str(case), *extra],
                                 env={"QUESTRA_TOKEN": "t", "TEXTQL_TOKEN": "t"})
        assert res.exit_code == 1, res.output
        assert LOCATED.search(res.stderr), res.stderr
        assert "Traceback" not in res.output and "DO-NOT-LEAK" not in res.output
        assert state.read_bytes() == STATE
        assert not (tmp_path / "keyform.state.json.lock").exists()
