"""Found by an adversarial pass (stop 36): an API whose list names one id twice (an active and a revoked entry, or two different names)
is silently resolved by 'last one wins' (refresh.refresh: {k.id: k for k in listed}): the plan
then replaces a key that is active, or fights a phantom drift. Expected: one clear error naming
the API and the duplicated id, exit 1."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.project import Project
from tests.loopback import serving
from tests.test_provider_rest import ScriptServer

DEFINITION = """\
version: 1
name: dupes
auth: {type: bearer}
key: {id: /id, created_at: /created, revoked: {path: /status, equals: [revoked]}}
attributes:
  name: {type: string, path: /name, default: "${address}"}
operations:
  list: {method: GET, path: /keys, items: /items}
  create: {method: POST, path: /keys, body: {name: "${attrs.name}"}, secret: /secret}
  delete: {method: DELETE, path: "/keys/${id}", mode: revoke}
"""


def test_a_list_naming_one_id_twice_is_an_error_not_a_replace(tmp_path: Path) -> None:
    keys: list[dict[str, Any]] = []

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            keys.append({"id": "k1", "name": body["name"], "created": "2026-01-01T00:00:00Z", "status": "active"})
            return 200, {}, {**keys[0], "secret": "sk-CANARY-dupes-1"}
        if method == "GET":
            return 200, {}, {"items": keys + [{**k, "status": "revoked"} for k in keys]}
        return 200, {}, {}

    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url)
        project.rest_api(DEFINITION, "a: {provider: rp, name: Alpha}\n")
        assert project.run("apply", "--auto-approve").exit_code == 0
        plan = project.run("plan")
        assert "replaced" not in plan.output, plan.output
        assert plan.exit_code == 1 and "k1" in plan.output, plan.output
