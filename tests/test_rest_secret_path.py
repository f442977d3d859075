"""Found by an adversarial pass (stop 36): a definition attribute whose path is where the API puts the secret (create reply / a list
that echoes it) carried the secret into plans (a later run) and into the state (`keyform import`).
Such a definition is refused at the field's line."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.project import Project
from tests.loopback import serving
from tests.test_provider_rest import ScriptServer

SECRET = "sk-CANARY-h3-0123456789abcdef"

DEFINITION = """\
version: 1
name: leaky
auth: {type: bearer}
key: {id: /id, created_at: /created}
attributes:
  name: {type: string, path: /name, default: "${address}"}
  note: {type: string, path: /secret, default: ""}
operations:
  list: {method: GET, path: /keys, items: /items}
  create: {method: POST, path: /keys, body: {name: "${attrs.name}"}, secret: /secret}
  delete: {method: DELETE, path: "/keys/${id}"}
"""


def test_an_attribute_or_id_mapped_onto_the_secret_is_refused(tmp_path: Path) -> None:
    keys: dict[str, dict[str, Any]] = {}

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            keys["k1"] = {"id": "k1", "name": body["name"], "created": "2026-01-01T00:00:00Z", "secret": SECRET}
            return 200, {}, keys["k1"]
        if method == "GET":
            return 200, {}, {"items": list(keys.values())}  # an API that lists keys in full
        keys.pop(path.rsplit("/", 1)[-1], None)
        return 200, {}, {}

    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url)
        project.rest_api(DEFINITION, "a: {provider: rp, name: Alpha}\n", name="leaky")
        res = project.run_process("apply", "--auto-approve")
        assert res.exit_code == 1 and not keys, res.output  # refused before any call
        assert "leaky.yaml:7: attributes.note.path: reads /secret, where create returns the secret" in res.stderr, \
            res.stderr
        id_too = DEFINITION.replace("key: {id: /id,", "key: {id: /secret,")
        project.rest_api(id_too, "a: {provider: rp, name: Alpha}\n", name="leaky")
        res = project.run_process("validate")
        assert res.exit_code == 1 and "leaky.yaml:4: key.id: reads /secret" in res.stderr, res.stderr
