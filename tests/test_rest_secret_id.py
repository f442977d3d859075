"""Found by a review (finding 1): an API that answers a create with the issued secret as the key's
id, or inside it (`key-<secret>`), had that id recorded in the state, printed by apply and by
`state list`: only attributes were masked, never ids. Expected: such an id is never recorded,
journaled or shown; the new key is revoked at once, or (if that fails) the create is ambiguous and
the journal keeps it without the id, for the next apply's recovery. Against a scripted API on
127.0.0.1, through a `keyform` subprocess (a fresh process knows no secret but what it handles)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from harness.project import SCRIPTED_REST, Project
from tests.loopback import serving
from tests.test_provider_rest import ScriptServer

SECRET = "sk_CANARY_live_0123456789abcdef"


def _api(id_of: str, delete_status: int) -> tuple[ScriptServer, dict[str, Any]]:
    """An API whose created key's id is `id_of` with {secret} filled in; deletes answer `delete_status`."""
    keys: dict[str, Any] = {}

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            key_id = id_of.format(secret=SECRET)
            keys[key_id] = {"id": key_id, "name": body["name"], "created": "2026-01-01T00:00:00Z"}
            return 201, {}, {**keys[key_id], "secret": SECRET}
        if method == "DELETE":
            if delete_status < 300:
                keys.clear()
            return delete_status, {}, {}
        return 200, {}, {"items": list(keys.values())}

    return ScriptServer(script), keys


@pytest.mark.parametrize("id_of", ["{secret}", "key-{secret}"])
def test_an_id_holding_the_issued_secret_is_revoked_never_recorded(tmp_path: Path, id_of: str) -> None:
    server, keys = _api(id_of, 204)
    with serving(server):
        project = Project(tmp_path, server.url)
        project.rest_api(SCRIPTED_REST, "k1: {provider: rp, name: k1}\n")
        applied = project.run_process("apply", "--auto-approve")
        listed = project.run_process("state", "list")
    assert applied.exit_code == 1, applied.output
    assert "an id that holds a secret" in applied.output and "the new key was revoked" in applied.output
    assert not keys, "the key is still live"
    assert [m for m, *_ in server.seen].count("DELETE") == 1
    for text in (applied.output, listed.output, *(p.read_text() for p in tmp_path.rglob("*") if p.is_file()
                                                   and p.suffix != ".yaml")):
        assert "CANARY" not in text


def test_when_that_revoke_fails_the_create_is_ambiguous_and_the_id_is_not_journaled(tmp_path: Path) -> None:
    server, _ = _api("{secret}", 500)
    with serving(server):
        project = Project(tmp_path, server.url)
        project.rest_api(SCRIPTED_REST, "k1: {provider: rp, name: k1}\n")
        # its revokes end by a 1 s deadline: a retry or two each (the lines looked at), not five retries'
        # ~3 s of backoff
        text = project.manifest.read_text()
        assert "token: {env: QUESTRA_TOKEN}}" in text
        project.manifest.write_text(text.replace("token: {env: QUESTRA_TOKEN}}", "token: {env: QUESTRA_TOKEN}, deadline: 1s}"))
        applied = project.run_process("apply", "--auto-approve")
    assert applied.exit_code == 1 and "the key may exist remotely" in applied.output, applied.output
    journal = project.journal_path.read_text()
    assert '"abandoned"' in journal and '"created"' not in journal
    assert "CANARY" not in applied.output + journal
    assert not project.state_path.exists() or "CANARY" not in project.state_path.read_text()


def test_a_salvaged_id_holding_the_secret_is_not_journaled_but_one_inside_the_secret_is() -> None:
    """The id of an unreadable create reply is journaled for recovery: never one that holds the
    secret (in any form scrub matches). An id the secret holds (SendGrid: `SG.<id>.<...>`) is fine."""
    from keyform.providers.salvage import salvage_id

    assert salvage_id(f'{{"id": "key-{SECRET}", "x": '.encode(), (SECRET,)) is None
    assert salvage_id(b'{"id": "qfTQ6KG0QBiwWdJz-3jQ0g", "x": ', ("SG.qfTQ6KG0QBiwWdJz-3jQ0g.CANARYsecretpart",)) \
        == "qfTQ6KG0QBiwWdJz-3jQ0g"



def _refusing_api(id_of: str, refusals: int) -> tuple[ScriptServer, dict[str, Any], dict[str, bool]]:
    """An API whose created key's id is `id_of` with {secret} filled in while `mode["echo"]` (then
    `key-N`), made now (inside the create's window for the next run's recovery), that refuses the
    first `refusals` revokes (403: not retried) and then revokes the key it names."""
    keys: dict[str, Any] = {}
    mode = {"echo": True}
    deletes = [0]

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            key_id = id_of.format(secret=SECRET) if mode["echo"] else f"key-{len(keys) + 1}"
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            keys[key_id] = {"id": key_id, "name": body["name"], "created": now}
            return 201, {}, {**keys[key_id], "secret": SECRET if mode["echo"] else f"sk_issued_{len(keys)}_abcdef"}
        if method == "DELETE":
            deletes[0] += 1
            if deletes[0] <= refusals:
                return 403, {}, {"error": "revocation refused"}
            keys.pop(unquote(path.rsplit("/", 1)[1]), None)
            return 204, {}, None
        return 200, {}, {"items": list(keys.values())}

    return ScriptServer(script), keys, mode


@pytest.mark.parametrize(("id_of", "keyed", "then"), [
    ("{secret}", False, "api-fixed"), ("key-{secret}", True, "api-fixed"),
    ("{secret}", True, "key-removed"), ("key-{secret}", False, "key-removed")])
def test_an_unrevoked_secret_id_is_revoked_by_the_next_applies_and_never_shown(
        tmp_path: Path, id_of: str, keyed: bool, then: str) -> None:
    """Found by a review: when the revoke of a key whose id holds its secret failed, the create was
    journaled as ambiguous without the id, and the next run's recovery found the key by its
    attributes and printed its id (the secret) in the plan, the journal and apply's output. Now the
    journal keeps a fingerprint of the id (keyed, in keyed mode): recovery recognises the key by it,
    shows a placeholder, revokes it (again on the next apply when that revoke fails too), and lets
    the record go once it is revoked. After the first apply the API stops echoing secrets as ids,
    or the key is taken out of the manifests. The canary is looked for in every output and file."""
    server, keys, mode = _refusing_api(id_of, refusals=2)
    env = {"KEYFORM_FINGERPRINT_KEY": "6f1c0a9e4b7d2c58a1e3f09b7c6d5e4a"} if keyed else {}
    outputs: list[str] = []

    def run(*args: str) -> Any:
        result = project.run_process(*args, env=env)
        outputs.append(f"$ keyform {' '.join(args)}\n{result.output}")
        return result

    secret_id = id_of.format(secret=SECRET)
    with serving(server):
        project = Project(tmp_path, server.url)
        project.rest_api(SCRIPTED_REST, "k1: {provider: rp, name: k1}\n")
        if keyed:
            project.manifest.write_text(project.manifest.read_text().replace(
                "version: 1\n", "version: 1\nstate:\n  fingerprint_key: {env: KEYFORM_FINGERPRINT_KEY}\n", 1))
        first = run("apply", "--auto-approve")
        assert first.exit_code == 1 and "the key may exist remotely" in first.output, first.output
        assert secret_id in keys, "the first revoke was meant to fail"
        if then == "api-fixed":
            mode["echo"] = False
        else:
            project.manifest.write_text(project.manifest.read_text().replace("  k1: {provider: rp, name: k1}\n", ""))
        plans = [run("plan"), run("plan", "--format", "markdown"), run("plan", "--format", "json"),
                 run("plan", "--out", "saved.plan"), run("show", "saved.plan")]
        assert all(p.exit_code == 0 for p in plans), outputs
        assert "[id=<id withheld: it holds a secret; create " in plans[0].output, plans[0].output
        assert "will be revoked" in plans[0].output, plans[0].output
        unmanaged = [run("report", "--unmanaged"), run("report", "--unmanaged", "--format", "json")]
        assert all(r.exit_code == 0 for r in unmanaged), outputs
        second = run("-v", "apply", "saved.plan")  # the orphan's revoke is refused once more: kept for the next
        assert second.exit_code == 1 and secret_id in keys, second.output
        assert "<id withheld: it holds a secret; create " in second.output, second.output
        if then == "api-fixed":  # (a state exists now) the journal knows that key under this fingerprint mode
            rekey = run("state", "rekey")
            assert rekey.exit_code == 1 and "Run `keyform apply` first" in rekey.output, rekey.output
        again = run("-v", "plan")
        assert "will be revoked" in again.output, again.output
        third = run("-v", "apply", "--auto-approve")
        assert third.exit_code == 0, third.output
        final = run("plan", "--detailed-exitcode")
        listed = run("state", "list")
    assert secret_id not in keys, "the key whose id holds the secret is still live"
    assert final.exit_code == 0 and "No changes" in final.output, final.output
    assert listed.exit_code == 0, listed.output
    assert [m for m, *_ in server.seen].count("DELETE") == 3
    assert not project.journal_path.exists() or not project.journal_path.read_text().strip()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert project.state_path in files
    for text in (*outputs, *(p.read_text(errors="replace") for p in files)):
        assert "CANARY" not in text, text[-3000:]


def test_verbose_retry_lines_never_show_an_id_holding_the_secret(tmp_path: Path) -> None:
    """Found by review 102: with `-v`, each retry of the revoke of such a key (a 500 is retried)
    logged `delete "sk_CANARY..."`, in the apply that made it and in the recovery's revoke after:
    debug lines were escaped, not scrubbed."""
    server, _ = _api("{secret}", 500)
    with serving(server):
        project = Project(tmp_path, server.url)
        project.rest_api(SCRIPTED_REST, "k1: {provider: rp, name: k1}\n")
        # its revokes end by a 1 s deadline: a retry or two each (the lines looked at), not five retries'
        # ~3 s of backoff
        text = project.manifest.read_text()
        assert "token: {env: QUESTRA_TOKEN}}" in text
        project.manifest.write_text(text.replace("token: {env: QUESTRA_TOKEN}}", "token: {env: QUESTRA_TOKEN}, deadline: 1s}"))
        first = project.run_process("-v", "apply", "--auto-approve", "-f", str(project.manifest))
        again = project.run_process("-v", "apply", "--auto-approve", "-f", str(project.manifest))
    assert first.exit_code == 1 and "retry 1/" in first.output, first.output
    assert again.exit_code == 1 and "retry 1/" in again.output, again.output
    assert "CANARY" not in first.output + again.output
