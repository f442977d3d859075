"""Found by an adversarial pass (stop 36): one installed distribution with a malformed entry_points.txt (any package, any group) makes
`keyform providers`, and `validate` of a manifest naming a non-built-in type (even a typo), end in
"internal error (TypeError)" instead of one clear line. The package is skipped and named now."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from keyform import typeregistry
from keyform.cli import main


@pytest.fixture
def broken_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    info = site / "unrelated_pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unrelated-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[console_scripts]\nthis line has no equals sign\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(typeregistry, "_REG", typeregistry._Registry())


def test_providers_survives_a_malformed_entry_points_file(broken_dist: None) -> None:
    res = CliRunner().invoke(main, ["providers"])
    assert "internal error" not in res.output, res.output
    assert "questra" in res.output, res.output
    # listed with its problem, which makes the command exit 1 (as a broken plug-in does)
    assert res.exit_code == 1 and "unrelated-pkg 1.0 has an entry_points.txt keyform cannot read" in res.output


def test_validate_of_an_unknown_type_survives_a_malformed_entry_points_file(broken_dist: None,
                                                                            tmp_path: Path) -> None:
    path = tmp_path / "keyform.yaml"
    path.write_text("version: 1\nproviders:\n  b: {type: acme, token: {env: T}}\n")
    res = CliRunner().invoke(main, ["validate", "-f", str(path)])
    assert res.exit_code == 1
    assert "internal error" not in res.output, res.output
    assert "keyform.yaml:3" in res.output, res.output
