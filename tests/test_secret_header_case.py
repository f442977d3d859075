"""Found by an adversarial pass (stop 36): a key's secret header (`headers: {X-Api-Key: {env: ...}}`) is kept out of the state and plans
by stripping that header NAME from what the list reports (refresh.strip_headers) — by exact,
case-sensitive name. HTTP header names are case-insensitive and many APIs report them normalised
(`x-api-key`): then the header is not stripped; its value is masked ('***', the input is resolved
in the same run) but every plan shows "headers modified outside keyform: - x-api-key" and every
apply sends an update that the API normalises again: a perpetual diff. Expected: header names are
compared case-insensitively (strip and diff)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.project import Project
from tests.loopback import serving
from tests.test_provider_rest import Script, ScriptServer

HEADER_SECRET = "hv-CANARY-h3-header-0123456789"

DEFINITION = """\
version: 1
name: hdr
auth: {type: bearer}
key: {id: /id, created_at: /created}
attributes:
  name: {type: string, path: /name, default: "${address}"}
  headers: {type: headers, path: /headers, default: {}, updatable: true}
operations:
  list: {method: GET, path: /keys, items: /items}
  create: {method: POST, path: /keys, body: {name: "${attrs.name}", headers: "${attrs.headers}"}, secret: /secret}
  update: {method: PATCH, path: "/keys/${id}", body: {headers: "${attrs.headers}"}}
  delete: {method: DELETE, path: "/keys/${id}"}
"""


def _lowercasing_api(keys: dict[str, dict[str, Any]]) -> Script:
    """An API that keeps the headers it is sent, with their names in lower case (as Node and Go do)."""
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            keys["k1"] = {"id": "k1", "name": body["name"], "created": "2026-01-01T00:00:00Z",
                          "headers": {k.lower(): v for k, v in (body.get("headers") or {}).items()}}
            return 200, {}, {**keys["k1"], "secret": "sk-CANARY-h3-hdr-issued-000000"}
        if method == "GET":
            return 200, {}, {"items": list(keys.values())}
        if method == "PATCH":
            keys["k1"]["headers"] = {k.lower(): v for k, v in (body.get("headers") or {}).items()}
            return 200, {}, keys["k1"]
        keys.pop(path.rsplit("/", 1)[-1], None)
        return 200, {}, {}

    return script


def test_a_secret_header_reported_in_lower_case_is_still_hidden(tmp_path: Path) -> None:
    keys: dict[str, dict[str, Any]] = {}
    script = _lowercasing_api(keys)

    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url, env={"HK": HEADER_SECRET})
        project.rest_api(DEFINITION, "a: {provider: rp, name: Alpha, headers: {X-Api-Key: {env: HK}}}\n")
        applied = project.run_process("apply", "--auto-approve")
        assert keys["k1"]["headers"] == {"x-api-key": HEADER_SECRET}, applied.output  # the header went in
        plan = project.run_process("plan")
        assert HEADER_SECRET not in applied.output + plan.output, plan.output
        assert HEADER_SECRET not in project.state_path.read_text(), project.state_path.read_text()
        project.run_process("apply", "--auto-approve")
        again = project.run_process("plan")
        assert "No changes" in again.output, again.output


def test_a_secret_header_dropped_from_the_manifest_is_not_printed(tmp_path: Path) -> None:
    """The same API; the user then removes the secret header from the key. The plan no longer
    resolves HK, so nothing masks the value the API reports under `x-api-key`: it is printed."""
    keys: dict[str, dict[str, Any]] = {}
    script = _lowercasing_api(keys)

    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url, env={"HK": HEADER_SECRET})
        project.rest_api(DEFINITION, "a: {provider: rp, name: Alpha, headers: {X-Api-Key: {env: HK}}}\n")
        assert project.run_process("apply", "--auto-approve").exit_code == 0
        project.rest_api(DEFINITION, "a: {provider: rp, name: Alpha}\n")
        plan = project.run_process("plan")
        assert HEADER_SECRET not in plan.output, plan.output
