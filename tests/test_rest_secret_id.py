"""Found by a review (finding 1): an API that answers a create with the issued secret as the key's
id, or inside it (`key-<secret>`), had that id recorded in the state, printed by apply and by
`state list`: only attributes were masked, never ids. Expected: such an id is never recorded,
journaled or shown; the new key is revoked at once, or (if that fails) the create is ambiguous and
the journal keeps it without the id, for the next apply's recovery. Against a scripted API on
127.0.0.1, through a `keyform` subprocess (a fresh process knows no secret but what it handles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
