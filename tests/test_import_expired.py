"""`keyform import` of an expired key (left open in stop 36): it was adopted, and the next apply
replaced it at once, a new key made under the imported address, which is not what importing
asked for. It is refused like a revoked key, with one line saying what to do. Real HTTP on
127.0.0.1 (the emulator)."""

from __future__ import annotations

from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


def test_import_refuses_an_expired_key_and_changes_nothing(tmp_path: Path, emulator: Emulator,
                                                           emu_control: EmulatorControl) -> None:
    [key] = emu_control.bulk_questra(ORG, 1, prefix="old-")
    emu_control.expire_questra(ORG, key["id"])
    project = Project(tmp_path, emulator.url)
    project.questra("old:\n  provider: qp\n  name: old-0\n")
    res = project.run("import", "old", key["id"])
    assert res.exit_code == 1, res.output
    assert f"import: {key['id']} expired" in res.output and "apply to create old" in res.output, res.output
    assert "Traceback" not in res.output
    assert not project.state_path.exists() or project.state()["keys"] == {}


def test_an_imported_key_s_fixed_expiry_is_matched_as_a_time_not_as_text() -> None:
    """`import` records the manifest's fixed `expires_at` when the API lists the key with that time;
    it compared the texts, so an API writing `.000Z` or `+00:00` had the key recorded with another
    expiry than the manifest's (found by review s44): a change planned for nothing, and, once the
    date passed, a replacement refused on every plan instead of the key being left as it is."""
    from datetime import datetime, timezone

    from keyform.model import Expiry
    from keyform.remote import RemoteKey
    from keyform.statecmds import _record_for
    from tests.factories import questra_key, state_with

    at = datetime(2027, 6, 1, tzinfo=timezone.utc)
    spec = questra_key("a", expiry=Expiry("at", at=at, text="2027-06-01T00:00:00Z"))
    for listed in ("2027-06-01T00:00:00Z", "2027-06-01T00:00:00.000Z", "2027-06-01T00:00:00+00:00",
                   "2027-06-01T02:00:00+02:00"):
        remote = RemoteKey(id="ak_1", attrs={"name": "a"}, expires_at=listed)
        ks = _record_for(spec, remote, state_with(), {}, at)
        assert ks.expiry_spec == spec.expiry.spec, listed
