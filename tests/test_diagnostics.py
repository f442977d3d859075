"""Diagnostics with a severity (issue 16 item 6): errors and warnings are `Diagnostic`s printed
through one place (`clikit.print_diagnostics`), and a call that may have taken effect remotely is
an `AmbiguousProviderError`, a ProviderError subclass (no flag read with getattr)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.project import Project
from keyform import operations
from keyform.clikit import print_diagnostics
from keyform.durations import utcnow
from keyform.errors import (
    AmbiguousProviderError,
    Diagnostic,
    KeyformError,
    ProviderError,
    Severity,
    SourceLoc,
    has_errors,
    warning,
    warnings,
)
from keyform.model import ProviderConfig
from keyform.remote import CreateRequest, CreateResult
from tests.fakes import FakeProvider


def test_a_diagnostic_is_an_error_unless_said_otherwise() -> None:
    assert Diagnostic("boom").severity is Severity.ERROR
    assert warning("careful").severity is Severity.WARNING
    assert [d.severity for d in warnings(["a", "b"])] == [Severity.WARNING, Severity.WARNING]
    assert not has_errors(warnings(["a"])) and has_errors([warning("a"), Diagnostic("b")])
    assert KeyformError("boom").diagnostics == (Diagnostic("boom"),)


def test_errors_and_warnings_print_through_one_place(capsys: pytest.CaptureFixture[str]) -> None:
    print_diagnostics([warning("the secret cannot be recovered"),
                       Diagnostic("unknown field", SourceLoc("keyform.yaml", 3))])
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "Warning: the secret cannot be recovered\nError: keyform.yaml:3: unknown field\n"
    print_diagnostics([Diagnostic("boom"), warning("careful")], color=True)  # not a terminal: click strips it
    assert capsys.readouterr().err == "Error: boom\nWarning: careful\n"


def test_an_ambiguous_provider_error_is_a_subclass() -> None:
    flagged = ProviderError("qp: create: connection reset", status=None, ambiguous=True)  # the plug-in contract
    assert isinstance(flagged, AmbiguousProviderError) and flagged.ambiguous
    assert flagged.status is None and str(flagged) == "qp: create: connection reset"
    direct = AmbiguousProviderError("qp: create: 502", status=502)
    assert direct.ambiguous and direct.status == 502 and direct.remote_id is None
    plain = ProviderError("qp: create: 400 bad", status=400)
    assert type(plain) is ProviderError and plain.ambiguous is False


class _LostReply(FakeProvider):
    """Creates the key, then raises the error the test gives (the reply was lost)."""

    error: ProviderError

    def create(self, request: CreateRequest) -> CreateResult:
        result = super().create(request)
        self.error.remote_id = result.key.id if "salvage" in str(self.error) else None
        raise self.error


def _apply_with(tmp_path: Path, error: ProviderError) -> list[dict[str, Any]]:
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.questra("  ci-bot: {provider: qp, name: CI bot}\n")
    providers: list[_LostReply] = []

    def factory(config: ProviderConfig, token: str, org_id: str | None) -> Any:
        provider = _LostReply(config.name, config.type, utcnow)
        provider.error = error
        providers.append(provider)
        return provider

    opts = operations.Options(files=[str(project.manifest)], env=project.env, provider_factory=factory)
    with operations.session(opts, "apply") as sess:
        report = operations.apply(sess, operations.plan(sess))
    assert not report.ok
    assert [p.calls.count("create") for p in providers] == [1]  # never retried
    journal = tmp_path / "keyform.state.json.journal"  # compacted: only unresolved creates stay
    return [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []


@pytest.mark.parametrize("salvage", [False, True])
def test_the_applier_journals_an_ambiguous_create_as_abandoned_by_its_type(tmp_path: Path, salvage: bool) -> None:
    """An AmbiguousProviderError raised as such (no `ambiguous=` flag) leaves the create to
    recovery: journaled `abandoned` (with `created` when the lost reply named the id), never `failed`."""
    records = _apply_with(tmp_path, AmbiguousProviderError("qp: create: salvage" if salvage else "qp: create: reset"))
    ops = [r["op"] for r in records]
    assert "abandoned" in ops and "failed" not in ops
    assert ("created" in ops) is salvage


def test_the_applier_journals_a_plain_provider_error_as_failed(tmp_path: Path) -> None:
    records = _apply_with(tmp_path, ProviderError("qp: create: 400 bad request", status=400))
    assert "abandoned" not in [r["op"] for r in records]  # failed: resolved, nothing left for recovery


def test_a_create_journals_intent_created_done_and_nothing_between(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Three fsynced appends per create: `done` follows the sink write directly (no `sunk` record,
    which cost every create one more fenced append and group-commit round)."""
    from keyform.backends.local import LocalJournal

    appended: list[str] = []
    real = LocalJournal.append

    def append(self: LocalJournal, record: Any) -> None:
        appended.append(record.op)
        real(self, record)

    monkeypatch.setattr(LocalJournal, "append", append)
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.questra("  ci-bot: {provider: qp, name: CI bot}\n")

    def factory(config: ProviderConfig, token: str, org_id: str | None) -> Any:
        return FakeProvider(config.name, config.type, utcnow)

    opts = operations.Options(files=[str(project.manifest)], env=project.env, provider_factory=factory)
    with operations.session(opts, "apply") as sess:
        assert operations.apply(sess, operations.plan(sess)).ok
    assert appended == ["begin", "intent", "created", "done"]
    assert project.sink_path.read_text().count("=") == 1  # the secret is in its sink all the same
