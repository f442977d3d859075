"""Found by feeding keyform a hostile API (review s41): what an issued secret may be.

- A secret of a million characters (the body cap, 32 MiB, allows it) was sunk and recorded as
  `secret_fingerprint: "1000000:<hmac>"`, a length of 7 digits, which the state schema (6 at
  most) refuses: every later plan, report, `state list`, `state rm` and destroy failed, and keyform could
  not even revoke the key. Now a secret over `remote.MAX_SECRET` (64 Ki characters) is unusable, as
  a missing one: the new key is revoked, nothing recorded, exit 1.
- The same secret, remembered by `redact` before the applier saw it, made every 16-character window
  of every form of it: an 8 MB secret cost 1.5 GB and 13 s. Now only the windows of its first
  `redact.MAX_RAW` characters (all that `scrub` ever looks at).
- A secret of whitespace only (`"   \\t  "`) was written to the sink. It is refused like a missing one.

Against the emulator behind a hostile proxy on 127.0.0.1 that rewrites the create reply's secret.
The big secrets run in a `keyform` subprocess: `redact` remembers secrets per process."""

from __future__ import annotations

import json
import os
import re
import resource
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform import redact
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.remote import MAX_SECRET
from keyform.state import State
from tests.hostile import HostileServer, Reply, Seen, hostile


def _issuing(api: HostileServer, secret: str, to: str = "k1") -> None:
    """Every create is forwarded to the emulator, and the secret of key `to`'s reply replaced by `secret`."""

    def script(seen: Seen) -> Reply | None:
        if seen.method != "POST" or seen.path != "/api-keys" or json.loads(seen.body).get("name") != to:
            return None
        reply = api._forward(seen)
        doc = json.loads(reply.body)
        if reply.status in (200, 201):
            doc["secret"] = secret
        return Reply(reply.status, json.dumps(doc).encode(), reply.headers)

    api.script = script


def _remote(emulator: Emulator) -> list[dict[str, object]]:
    with EmulatorControl(emulator.url) as control:
        return control.questra_keys(ORG)


def _refused(project: Project, emulator: Emulator, output: str, why: str) -> None:
    """The create was refused as `why`: its key revoked, nothing recorded or sunk, later commands work."""
    assert f"create 'k1' returned {why}" in output, output
    assert "was revoked" in output, output
    [key] = _remote(emulator)
    assert key["revoked"] is True, key
    assert project.sink() == {}
    assert not project.state_path.exists() or "k1" not in project.state()["keys"]
    for res in (project.run_process("plan", "-f", str(project.manifest)), project.run_process("state", "list")):
        assert res.exit_code == 0, res.output


def test_a_secret_of_a_million_characters_is_refused_and_its_key_revoked(tmp_path: Path,
                                                                         emulator: Emulator) -> None:
    secret = "sk_" + secrets.token_hex(500_000) + "x"  # 1,000,004 characters
    with hostile(upstream=emulator.url) as api:
        _issuing(api, secret)
        project = Project(tmp_path, api.url)
        project.questra("k1: {provider: qp, name: k1}\n")
        applied = project.run_process("apply", "-f", str(project.manifest), "--auto-approve")
        assert applied.exit_code == 1, applied.output
        assert secret[:40] not in applied.output
        _refused(project, emulator, applied.output,
                 f"a secret of {len(secret)} characters, more than the {MAX_SECRET} keyform accepts")


def test_an_eight_megabyte_secret_costs_no_gigabytes(tmp_path: Path, emulator: Emulator) -> None:
    """The keyform process's peak memory (its own `ru_maxrss`, from `wait4`) stays far from the 1.5 GB
    an 8 MB secret's windows took, built once anything is scrubbed after it: here the error of the
    refused key's revoke, which the API refuses once (the next apply's recovery revokes it). The
    bound is loose: about 60 MB now, 1.2 GB before."""
    secret = "sk_" + secrets.token_hex(4_000_000)
    with hostile(upstream=emulator.url) as api:
        _issuing(api, secret)
        issuing = api.script
        refused: list[str] = []

        def once(seen: Seen) -> Reply | None:
            if seen.path.endswith("/revoke") and not refused:
                refused.append(seen.path)
                return Reply(400, b'{"error": "bad_request", "message": "not now"}')
            return issuing(seen) if len(api.seen) <= 2 else None  # the first create only

        api.script = once
        project = Project(tmp_path, api.url)
        project.questra("k1: {provider: qp, name: k1}\n")
        out = tmp_path / "apply.out"
        with out.open("w") as sink:
            proc = subprocess.Popen(project.argv("apply", "-f", str(project.manifest), "--auto-approve"),
                                    cwd=tmp_path, env=project.process_env(), stdin=subprocess.DEVNULL,
                                    stdout=sink, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        output = out.read_text()
        assert usage.ru_maxrss < 400 * 1024, f"peak RSS {usage.ru_maxrss // 1024} MB"  # KiB on Linux
        assert proc.returncode == 1, output
        assert f"returned a secret of {len(secret)} characters" in output, output
        assert "revoking the new key" in output and "also failed" in output and refused, output
        again = project.run_process("apply", "-f", str(project.manifest), "--auto-approve")
        assert again.exit_code == 0, again.output
    keys = {k["id"]: k["revoked"] is True for k in _remote(emulator)}
    assert len(keys) == 2 and keys[project.remote_id("k1")] is False and sum(keys.values()) == 1, keys


@pytest.mark.parametrize("blank", ["   \t  ", "\n", "\u2003\u00a0"])
def test_a_secret_of_whitespace_only_is_refused_like_a_missing_one(tmp_path: Path, emulator: Emulator,
                                                                  blank: str) -> None:
    with hostile(upstream=emulator.url) as api:
        _issuing(api, blank)
        project = Project(tmp_path, api.url)
        project.questra("k1: {provider: qp, name: k1}\n")
        applied = project.run("apply", "--auto-approve")
        assert applied.exit_code == 1, applied.output
        _refused(project, emulator, applied.output, "a secret with no visible characters")


def test_the_longest_secret_accepted_is_recorded_as_the_state_schema_allows(tmp_path: Path) -> None:
    """MAX_SECRET characters are recorded with a 5-digit length (the schema allows no more than 6);
    a longer value, which the applier refuses, is never fingerprinted."""
    state = State.new()
    recorded = state.secret_fingerprint("k" * MAX_SECRET)
    assert recorded is not None and recorded.startswith(f"{MAX_SECRET}:")
    assert state.secret_fingerprint("k" * (MAX_SECRET + 1)) is None
    schema = json.loads((Path(__file__).parents[1] / "schemas" / "state.schema.json").read_text())
    assert re.fullmatch(schema["$defs"]["secret_fingerprint"]["pattern"], recorded)
    assert redact.MAX_RAW >= MAX_SECRET  # every window of every secret keyform accepts is masked


@pytest.fixture
def own_redact(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`redact`'s remembered secrets, for this test only (they are global to the process)."""
    monkeypatch.setattr(redact, "_known", set())
    monkeypatch.setattr(redact, "_known_patterns", {})
    monkeypatch.setattr(redact, "_unpatterned", [])
    monkeypatch.setattr(redact, "_known_items", ())
    yield


def _built() -> int:
    return sum(len(p) for p in redact._known_patterns.values())


def test_remembering_a_megabytes_secret_builds_the_windows_of_its_first_max_raw_characters(own_redact: None) -> None:
    secret = secrets.token_hex(2_000_000)  # 4 MB: the old code built 4 million windows (~600 MB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    redact.remember(secret)
    assert redact.scrub(f"rejected: {secret[1000:1040]} (echoed)", ()) == "rejected: *** (echoed)"
    assert redact.scrub(f"{secret[:redact.MAX_RAW]}", ()) == "***"
    assert _built() <= redact.MAX_RAW, _built()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 300 * 1024, f"peak RSS grew {grown // 1024} MB"  # KiB on Linux; loose


def test_each_form_of_a_long_secret_is_bounded_and_its_start_still_masked(own_redact: None) -> None:
    """A secret with characters JSON and URLs escape has five forms: each gives at most MAX_RAW windows."""
    secret = ('é"/+' + secrets.token_hex(8)) * 10_000  # 240,000 characters
    redact.remember(secret)
    echoed = json.dumps({"error": f"bad key {secret[:300]}"})  # JSON-escaped, non-ASCII as \\u00e9
    assert secret[:20] not in redact.scrub(echoed, ()) and "***" in redact.scrub(echoed, ())
    assert _built() <= 5 * redact.MAX_RAW, _built()


def test_holds_whole_builds_no_form_of_a_secret_longer_than_the_text() -> None:
    big = ('é"/+' + "0123456789abcdef") * 200_000
    assert not redact.holds_whole("ak_0123456789abcdef", (big,))
    assert redact.holds_whole('id-é\\"/+0123456789abcdef-x', ('é"/+0123456789abcdef',))
