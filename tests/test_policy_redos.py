"""Found by an adversarial pass (stop 36): `require: {name_pattern: REGEX}` ran `fullmatch` on the
name with no bound on time, and a policy `schema` with a `pattern` keyword did the same through
jsonschema. A common-looking pattern (`([a-z0-9]+-?)+`) backtracks exponentially on a 34-character
name that ends in a character it rejects: `keyform validate` (the pre-commit hook, CI) ran for
minutes. The policy file is the org's; the name is a contributor's pull request. The manifest-phase
checks now have a time budget (`policy.MANIFEST_CHECK_BUDGET`, 10 s): each case takes that long."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator

POLICIES = {
    "name_pattern": "policies:\n  names:\n    require: {name_pattern: '([a-z0-9]+-?)+'}\n",
    "schema_pattern": "policies:\n  names:\n    schema: {properties: {name: {pattern: '^([a-z0-9]+-?)+$'}}}\n",
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_name_pattern_is_checked_in_bounded_time(tmp_path: Path, emulator: Emulator, policy: str) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  name: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!'\n", extra=POLICIES[policy])
    try:  # the budget (10 s) ends the check; the process is given a little more
        res = project.run_process("validate", "-f", str(project.manifest), timeout=40)
    except subprocess.TimeoutExpired:
        pytest.fail("keyform validate did not finish: catastrophic backtracking in the policy's regex")
    assert res.exit_code == 1, res.stderr  # a timeout shows as -1
    assert "policy names:" in res.stderr and "took more than 10 s (on key k)" in res.stderr, res.stderr
    assert "keyform.yaml:" in res.stderr and "Traceback" not in res.stderr
