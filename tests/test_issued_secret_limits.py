"""Found by feeding keyform a hostile API (review s41): what an issued secret may be.

- A secret of a million characters (the body cap, 32 MiB, allows it) was sunk and recorded as
  `secret_fingerprint: "1000000:<hmac>"`, a length of 7 digits, which the state schema (6 at
  most) refuses: every later plan, report, `state list`, `state rm` and destroy failed, and keyform could
  not even revoke the key. Now a secret over `remote.MAX_SECRET` (64 Ki characters) is unusable, as
  a missing one: the new key is revoked, nothing recorded, exit 1.
- A secret of whitespace only (`"   \\t  "`) was written to the sink. It is refused like a missing one.

Against the emulator behind a hostile proxy on 127.0.0.1 that rewrites the create reply's secret.
The big secrets run in a `keyform` subprocess: `redact` remembers secrets per process."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest

from harness.project import ORG, Project
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
