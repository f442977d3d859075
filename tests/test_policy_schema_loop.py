"""Found by an adversarial pass (stop 36): a policy `schema` that refers to itself (`{$ref: "#"}`, or two $defs referring to each
other) passes `_json_schema`'s checks (check_schema, local refs only) and then makes every
validate/plan/apply end in `Error: internal error (RecursionError)`: the policy's own mistake should
be one message at its file:line, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator


@pytest.mark.parametrize("schema", ['{$ref: "#"}',
                                    '{$defs: {a: {$ref: "#/$defs/b"}, b: {$ref: "#/$defs/a"}}, $ref: "#/$defs/a"}'])
def test_a_self_referencing_policy_schema_is_a_clear_error(tmp_path: Path, emulator: Emulator, schema: str) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k:\n  provider: qp\n", extra=f"policies:\n  rec:\n    schema: {schema}\n")
    res = project.run("validate")
    assert res.exit_code == 1
    assert "internal error" not in res.output and "RecursionError" not in res.output, res.output
    assert "keyform.yaml:" in res.stderr and "rec" in res.stderr, res.output
