"""Found by an adversarial pass (stop 36): a definition may declare any status >= 400 as `gone` (delete: "already gone") or `absent`
(list: "no list endpoint"), including 401/403/429/5xx. An API that answers 403 for an unknown key
(common) leads a contributor to write `gone: [403, 404]`; then a token without delete rights (or a
500 with `gone: [500]`) makes `keyform apply` report the revoke done and forget the key, which stays
live on the server; `absent: [401]` turns a rejected token into a silent "No changes".
Expected: 401/403/429/5xx refused in `gone`/`absent` at load (file:line), or a 'gone' delete
confirmed by a list before the key leaves the state."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.project import SCRIPTED_REST, Project
from keyform.manifest.restdef import load_definition
from tests.loopback import serving
from tests.test_provider_rest import ScriptServer

DEFINITION = SCRIPTED_REST.replace('path: "/keys/${id}"}', 'path: "/keys/${id}", gone: [403, 404]}')


@pytest.mark.parametrize(("field", "value", "line"), [
    ("gone", "[403, 404]", 'gone: [403, 404]'), ("gone", "[404, 503]", 'gone: [404, 503]'),
    ("absent", "[401]", 'absent: [401]'), ("absent", "[429]", 'absent: [429]')])
def test_a_failure_status_cannot_mean_gone_or_absent(tmp_path: Path, field: str, value: str, line: str) -> None:
    text = DEFINITION if field == "gone" else DEFINITION.replace("items: /items}", f"items: /items, absent: {value}}}")
    text = text.replace("gone: [403, 404]", line if field == "gone" else "gone: [404]")
    path = tmp_path / "gone.yaml"
    path.write_text(text)
    d, problems = load_definition(str(path), "gone.yaml")
    assert d is None and len(problems) == 1, problems
    assert "is a failure, not a sign that nothing is there" in problems[0].message, problems
    assert problems[0].loc is not None and problems[0].loc.line == (text.splitlines().index(
        next(x for x in text.splitlines() if line.split(":")[0] + ":" in x)) + 1)


def test_a_gone_code_in_a_forbidden_answer_does_not_forget_a_live_key(tmp_path: Path) -> None:
    keys: dict[str, dict[str, Any]] = {}

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            keys["k1"] = {"id": "k1", "name": body["name"], "created": "2026-01-01T00:00:00Z"}
            return 200, {}, {**keys["k1"], "secret": "sk-CANARY-gone-0123456789"}
        if method == "GET":
            return 200, {}, {"items": list(keys.values())}
        return 403, {}, {"message": "this token may not delete keys", "code": "not_found"}  # the key stays

    with serving(ScriptServer(script)) as server:
        project = Project(tmp_path, server.url)
        definition = (DEFINITION.replace("gone: [403, 404]", "gone_codes: [not_found]")
                      .replace("auth: {type: bearer}", "auth: {type: bearer}\nerrors: {code: /code}"))
        project.rest_api(definition, "a: {provider: rp, name: Alpha}\n")
        applied = project.run_process("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        project.rest_api(definition, "")
        removed = project.run_process("apply", "--auto-approve")
        assert "k1" in keys  # the server still holds the live key
        assert removed.exit_code == 1 and '"k1"' in project.state_path.read_text(), removed.output


def test_a_gone_status_is_gone_whatever_error_code_its_body_carries(tmp_path: Path) -> None:
    """Found by a review (finding 7): with `errors.code` declared, a 404 whose body had a code
    (`{"error": {"code": "not_found"}}`) was an error, so destroying a key deleted outside keyform
    failed. `gone` (default [404]) means already gone, as documented; `gone_codes` adds codes."""
    from tests.test_provider_rest import provider

    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        return 404, {}, {"error": {"code": "not_found", "message": "API key not found"}}

    with provider(tmp_path, script) as (p, server):
        p.delete("k1")
    assert [m for m, *_ in server.seen] == ["DELETE"]
