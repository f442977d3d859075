"""An API echoing the secret it issued, seen by a LATER process (left open in stop 36). A careless or
hostile API puts the secret into the key's name in its listing. The apply that received the secret
masks it (it remembers it); a later `keyform plan`, which never held the secret, showed the drift
`name: "k1" -> "sk_live_..."`: the secret in a plan posted on a pull request. The state now records a
fingerprint of each issued secret (`KeyState.secret_fingerprint`: its visible length and HMAC
under the state's fingerprint mode, never the secret), and every later mask recognises it.

An adversarial review of that change (stop 37) found it still reached the output in these cases: a
keyed state's report; two secrets in one value; the old key of a rotation during its grace; an
error message.
Real HTTP on 127.0.0.1: a hostile proxy in front of the emulator, keyform as a subprocess (a later
process that never held the secret). Not covered, by design (docs/security.md): an echo cut short,
or glued to letters before it; only the process that received the secret masks those."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.project import Project
from keyform.emulator import Emulator
from tests.hostile import Reply, Seen, hostile

KEY = "6f1c0a9e4b7d2c58a1e3f09b7c6d5e4a"


def _captured(server: Any, seen: Seen, issued: dict[str, str]) -> Reply | None:
    """A create forwarded to the emulator, its secret noted in `issued` (id -> secret); else None."""
    if seen.method == "POST" and seen.path == "/api-keys":
        reply = server.default(seen)
        doc = json.loads(reply.body)
        issued[doc["id"]] = doc["secret"]
        return reply
    return None


def _echoing(server: Any, issued: dict[str, str],
             name_of: Callable[[dict[str, Any], dict[str, str]], str | None]) -> Callable[[Seen], Reply | None]:
    """A script recording each create's secret, and rewriting each listed key's name with `name_of`."""

    def script(seen: Seen) -> Reply | None:
        created = _captured(server, seen, issued)
        if created is not None:
            return created
        if seen.method == "GET" and seen.path.startswith("/api-keys") and issued:
            reply = server.default(seen)
            keys = json.loads(reply.body)
            for k in keys if isinstance(keys, list) else keys.get("data", []):
                name = name_of(k, issued)
                if name is not None:
                    k["name"] = name
            return Reply(reply.status, json.dumps(keys).encode(), reply.headers)
        return None

    return script


def _own_secret(k: dict[str, Any], issued: dict[str, str]) -> str | None:
    return issued.get(str(k.get("id")))


def _run_echo(tmp_path: Path, emulator: Emulator, keys: str,
              name_of: Callable[[dict[str, Any], dict[str, str]], str | None], *,
              rotate: str | None = None) -> tuple[dict[str, str], list[Any], Project]:
    issued: dict[str, str] = {}
    with hostile(upstream=emulator.url) as server:
        echo_now = {"on": False}
        script = _echoing(server, issued, lambda k, i: name_of(k, i) if echo_now["on"] else None)
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra(keys)
        applied = project.run_process("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.tail()
        if rotate:
            rotated = project.run_process("apply", "--auto-approve", "--replace", rotate)
            assert rotated.exit_code == 0, rotated.tail()
        echo_now["on"] = True
        outs = [project.run_process("plan"), project.run_process("plan", "--format", "json"),
                project.run_process("report"), project.run_process("report", "--format", "json")]
    return issued, outs, project


def test_a_later_plan_does_not_show_an_issued_secret_the_api_echoes(tmp_path: Path, emulator: Emulator) -> None:
    issued, outs, project = _run_echo(tmp_path, emulator, "k1:\n  provider: qp\n", _own_secret)
    [secret] = issued.values()
    state = project.state_path.read_text()
    assert secret not in state and '"secret_fingerprint"' in state
    for res in outs:
        assert secret not in res.output and secret[8:24] not in res.output, res.output[-1500:]
    assert "***" in outs[0].output, outs[0].output[-1500:]  # the drift is shown, masked


def test_keyed_state_report_shows_the_echoed_secret(tmp_path: Path, emulator: Emulator) -> None:
    """Keyed mode (the mode docs/security.md says to use for a committed state): `report` never
    attaches the fingerprint key (`read_session`), so every watched fingerprint raises inside
    `_recognised` and is silently 'not recognised'; `plan` masks it, `report` prints it."""
    issued: dict[str, str] = {}
    env = {"KEYFORM_FINGERPRINT_KEY": KEY}
    with hostile(upstream=emulator.url) as server:
        server.script = _echoing(server, issued, _own_secret)
        project = Project(tmp_path, server.url, env=env)
        project.questra("k1:\n  provider: qp\n",
                        extra="state:\n  path: keyform.state.json\n  fingerprint_key: {env: KEYFORM_FINGERPRINT_KEY}\n")
        applied = project.run_process("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.tail()
        [secret] = issued.values()
        assert '"secret_fingerprint": "48:hmac-sha256-keyed:' in project.state_path.read_text()
        plan = project.run_process("plan")
        report = project.run_process("report")
        report_json = project.run_process("report", "--format", "json")
    assert secret not in plan.output, plan.output[-1500:]  # the plan masks it
    for res in (report, report_json):
        assert secret not in res.output, res.output[-1500:]


def test_two_echoed_secrets_in_one_value_only_one_masked(tmp_path: Path, emulator: Emulator) -> None:
    """`redact._recognised` stops at the first watched window it finds (and `holds_known` returns on
    a remembered one before looking at the watched ones): the scrub then removes only that secret.
    An API echoing every secret it issued into each name shows all but one of them."""
    issued, outs, _ = _run_echo(tmp_path, emulator, "k1:\n  provider: qp\nk2:\n  provider: qp\n",
                                lambda k, i: " ".join(i.values()) if k.get("id") in i else None)
    assert len(issued) == 2
    for res in outs:
        for secret in issued.values():
            assert secret not in res.output, res.output[-1500:]


def test_deposed_key_secret_not_watched_during_grace(tmp_path: Path, emulator: Emulator) -> None:
    """A rotation with a grace keeps the old key live (its secret still authenticates), but its
    `secret_fingerprint` goes with the replaced KeyState (DeposedKey has none, `watch_secrets` reads
    state.keys only): an echo of the still-valid old secret is shown by every later report."""
    issued, outs, project = _run_echo(tmp_path, emulator, "k1:\n  provider: qp\n  rotation: {grace: 7d}\n",
                                      _own_secret, rotate="k1")
    assert len(issued) == 2 and len(project.state()["deposed"]) == 1
    old = project.state()["deposed"][0]["remote_id"]
    for res in outs:
        assert issued[old] not in res.output, res.output[-1500:]


def test_later_error_message_echoing_the_issued_secret(tmp_path: Path, emulator: Emulator) -> None:
    """The provider error path (`providers/http.py`: `redact.redact(detail, secrets)`) scrubs only what
    this process remembered; it never consults the watched fingerprints (only `holds_known` does).
    A later `destroy` whose revoke is refused with a body quoting the key's secret prints it, in
    the error line and the JSON events (and the journal's `failed` record)."""
    issued: dict[str, str] = {}

    def script(seen: Seen) -> Reply | None:
        created = _captured(server, seen, issued)
        if created is not None:
            return created
        if seen.method == "POST" and seen.path.endswith("/revoke"):
            kid = seen.path.split("/")[2]
            body = {"error": {"code": "conflict", "message": f"key {issued.get(kid)} is still in use"}}
            return Reply(409, json.dumps(body).encode())
        return None

    with hostile(upstream=emulator.url) as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("k1:\n  provider: qp\n")
        applied = project.run_process("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.tail()
        [secret] = issued.values()
        destroyed = project.run_process("destroy", "--auto-approve")
        destroyed_json = project.run_process("destroy", "--auto-approve", "--format", "json")
    assert destroyed.exit_code != 0 and "still in use" in destroyed.output, destroyed.tail()
    for res in (destroyed, destroyed_json):
        assert secret not in res.output, res.output[-1500:]
    for name in (project.journal_path, project.state_path):
        if name.exists():
            assert secret not in name.read_text(), name


@pytest.mark.parametrize("before", ["https://x/cb?next=%2Fok%3Ftoken%3D", "detail: line one\\n"])
def test_echo_behind_an_escape_is_recognised(tmp_path: Path, emulator: Emulator, before: str) -> None:
    """Found by a later review: a window starts only after a character that is not a letter or
    digit, so an echo behind `%3D` (an echoed redirect URL) or a JSON `\\n` was not recognised."""
    issued, outs, _ = _run_echo(tmp_path, emulator, "k1:\n  provider: qp\n",
                                lambda k, i: before + i[k["id"]] if k.get("id") in i else None)
    [secret] = issued.values()
    for res in outs:
        assert secret not in res.output, res.output[-1500:]
