"""Found by an adversarial pass (stop 36): `require: {name_pattern: REGEX}` ran `fullmatch` on the
name with no bound on time, and a policy `schema` with a `pattern` keyword did the same through
jsonschema. A common-looking pattern (`([a-z0-9]+-?)+`) backtracks exponentially on a 34-character
name that ends in a character it rejects: `keyform validate` (the pre-commit hook, CI) ran for
minutes. The policy file is the org's; the name is a contributor's pull request. The manifest-phase
checks now have a time budget (`policy.MANIFEST_CHECK_BUDGET`, 10 s). The real `keyform validate`
process runs here with that budget cut to 1 s (the same SIGALRM path and message, 9 s less per
case: the pattern takes minutes either way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.project import Project
from keyform import policy as policy_module
from keyform.emulator import Emulator

POLICIES = {
    "name_pattern": "policies:\n  names:\n    require: {name_pattern: '([a-z0-9]+-?)+'}\n",
    "schema_pattern": "policies:\n  names:\n    schema: {properties: {name: {pattern: '^([a-z0-9]+-?)+$'}}}\n",
}
# `python -m keyform` with the budget cut to 1 s before the CLI starts (cli.console, as __main__ runs it)
KEYFORM_WITH_1S_BUDGET = (sys.executable, "-c",
                          "import keyform.policy; keyform.policy.MANIFEST_CHECK_BUDGET = 1.0\n"
                          "from keyform.cli import console; console()")


def test_the_budget_is_10_s() -> None:
    assert policy_module.MANIFEST_CHECK_BUDGET == 10.0  # as README.md and docs/security.md say


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_name_pattern_is_checked_in_bounded_time(tmp_path: Path, emulator: Emulator, policy: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n  name: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!'\n", extra=POLICIES[policy])
    monkeypatch.setattr(project, "argv", lambda *args: (*KEYFORM_WITH_1S_BUDGET, *args))
    try:  # the budget (1 s here) ends the check; the process is given a lot more
        res = project.run_process("validate", "-f", str(project.manifest), timeout=40)
    except subprocess.TimeoutExpired:
        pytest.fail("keyform validate did not finish: catastrophic backtracking in the policy's regex")
    assert res.exit_code == 1, res.stderr  # a timeout shows as -1
    assert "policy names:" in res.stderr and "took more than 1 s (on key k)" in res.stderr, res.stderr
    assert "keyform.yaml:" in res.stderr and "Traceback" not in res.stderr
