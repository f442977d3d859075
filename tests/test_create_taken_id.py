"""Found by an adversarial pass (stop 36): a hostile or buggy API answers two creates with the
same id. keyform recorded both addresses with that one remote_id; later removing one address revokes the key the other address (and its
sink) still uses. Expected: a create whose id is already another address's key is an error (the
new key may be anything) and the state never holds one remote id under two addresses."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.project import SCRIPTED_REST, Project
from tests.loopback import serving
from tests.test_provider_rest import ScriptServer


def test_two_creates_answered_with_one_id_are_not_both_recorded(tmp_path: Path) -> None:
    keys: dict[str, dict[str, Any]] = {}
    n = [0]

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            n[0] += 1
            keys["k1"] = {"id": "k1", "name": body["name"], "created": "2026-01-01T00:00:00Z"}
            return 200, {}, {**keys["k1"], "secret": f"sk-CANARY-same-{n[0]}-0123456789"}
        if method == "GET":
            return 200, {}, {"items": list(keys.values())}
        keys.pop(path.rsplit("/", 1)[-1], None)
        return 200, {}, {}

    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url)
        project.rest_api(SCRIPTED_REST, "a: {provider: rp, name: Alpha}\nb: {provider: rp, name: Beta}\n")
        result = project.run_process("apply", "--auto-approve")
        state = json.loads(project.state_path.read_text()) if project.state_path.exists() else {"keys": {}}
        ids = [k["remote_id"] for k in state["keys"].values()]
        assert len(ids) == len(set(ids)) == 1, (result.output, ids)
        assert result.exit_code == 1 and "already holds; not recorded, and nothing revoked" in result.output
