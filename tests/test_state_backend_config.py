"""`state:` in the manifests selects the state backend; `open_backend` builds it (without connecting).
The manifest errors themselves are in the malformed corpus (tests/malformed/97-99)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from keyform.backends import open_backend
from keyform.backends.local import LocalBackend
from keyform.backends.postgres import PostgresBackend
from keyform.errors import KeyformError
from keyform.manifest import load_workspace
from keyform.model import EnvRef, FileRef, StateConfig, Workspace

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
DSN = "postgresql://keyform:s3cret-pw@db.example.com:6543/keyform_state"


def load(tmp_path: Path, state: str) -> Workspace:
    (tmp_path / "keyform.yaml").write_text("version: 1\n" + state)
    return load_workspace(["keyform.yaml"], cwd=tmp_path, now=NOW)


def test_without_a_state_section_the_backend_is_the_local_file(tmp_path: Path) -> None:
    ws = load(tmp_path, "")
    assert ws.state_backend == StateConfig()
    backend = open_backend(ws, None)
    assert isinstance(backend, LocalBackend) and backend.path == tmp_path / "keyform.state.json"


def test_a_local_state_path_is_honoured(tmp_path: Path) -> None:
    ws = load(tmp_path, "state: {backend: local, path: st/x.json}\n")
    backend = open_backend(ws, None)
    assert isinstance(backend, LocalBackend) and backend.path == tmp_path / "st" / "x.json"


def test_a_postgres_state_reads_its_dsn_from_the_environment(tmp_path: Path) -> None:
    ws = load(tmp_path, "state:\n  backend: postgres\n  dsn: {env: KEYFORM_PG_DSN}\n  workspace: prod\n")
    config = ws.state_backend
    assert (config.backend, config.dsn, config.workspace) == ("postgres", EnvRef("KEYFORM_PG_DSN"), "prod")
    backend = open_backend(ws, None, env={"KEYFORM_PG_DSN": DSN})
    assert isinstance(backend, PostgresBackend) and backend.workspace == "prod"
    assert backend.describe() == 'postgres workspace "prod" (database keyform_state on db.example.com:6543)'
    with pytest.raises(KeyformError, match=r"keyform.yaml:4: state.dsn: environment variable KEYFORM_PG_DSN is not "
                                           r"set"):
        open_backend(ws, None, env={})


def test_a_postgres_dsn_file_is_relative_to_its_manifest_and_the_workspace_defaults(tmp_path: Path) -> None:
    (tmp_path / "pg.dsn").write_text(f"host=db.internal dbname=kf user=ci password=pw-{'x' * 8}\n")
    ws = load(tmp_path, "state: {backend: postgres, dsn: {file: pg.dsn}}\n")
    assert ws.state_backend.dsn == FileRef(str(tmp_path / "pg.dsn"))
    backend = open_backend(ws, None)
    assert isinstance(backend, PostgresBackend)
    assert backend.describe() == 'postgres workspace "default" (database kf on db.internal:5432)'


def test_an_invalid_dsn_is_reported_at_its_manifest_line_with_where_it_was_read(tmp_path: Path) -> None:
    canary = "pw-canary-31f7"
    (tmp_path / "pg.dsn").write_text(f"host=db.internal password={canary} dbname\n")
    ws = load(tmp_path, "state:\n  backend: postgres\n  dsn: {file: pg.dsn}\n")
    with pytest.raises(KeyformError) as info:
        open_backend(ws, None)
    assert str(info.value) == (f"keyform.yaml:4: state.dsn: file {tmp_path / 'pg.dsn'} does not hold "
                               "a valid PostgreSQL connection string (libpq key=value pairs or a postgresql:// URI)")
    ws = load(tmp_path, "state:\n  backend: postgres\n  dsn: {env: KEYFORM_PG_DSN}\n")
    with pytest.raises(KeyformError) as info:
        open_backend(ws, None, env={"KEYFORM_PG_DSN": f"postgresql://u:{canary}@h/db?bogus=1"})
    assert str(info.value).endswith(":4: state.dsn: environment variable KEYFORM_PG_DSN does not hold a valid "
                                    "PostgreSQL connection string (libpq key=value pairs or a postgresql:// URI)")
    assert canary not in str(info.value)


def test_the_state_flag_overrides_any_backend_with_a_local_file(tmp_path: Path) -> None:
    ws = load(tmp_path, "state: {backend: postgres, dsn: {env: KEYFORM_PG_DSN}}\n")
    backend = open_backend(ws, tmp_path / "elsewhere.json", env={})
    assert isinstance(backend, LocalBackend) and backend.path == tmp_path / "elsewhere.json"


def test_cli_start_up_and_validate_do_not_import_the_database_driver(tmp_path: Path) -> None:
    (tmp_path / "keyform.yaml").write_text("version: 1\nstate: {backend: postgres, dsn: {env: KEYFORM_PG_DSN}}\n")
    code = ("import sys; from click.testing import CliRunner; from keyform.cli import main; "
            "r = CliRunner().invoke(main, ['--version']); assert r.exit_code == 0; "
            "r = CliRunner().invoke(main, ['validate', '-f', sys.argv[1]]); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.startswith(('psycopg', 'keyform.backends.postgres'))))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "keyform.yaml")], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
