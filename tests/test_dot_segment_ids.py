"""An id of `.` or `..` names another URL: in `/api-keys/{id}/revoke` an HTTP client resolves the
segment, and the call goes elsewhere at the API with the token (`/api-keys/../revoke` is
`/revoke`). A hostile or broken API listing such an id, or a hand-edited state holding one, must
not move a call; every path is checked before it is sent (`providers.http`). Against the emulator
behind a hostile proxy on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.project import Project
from keyform.emulator import Emulator
from keyform.providers.http import id_problem, usable_id
from tests.hostile import Reply, Seen, hostile


@pytest.mark.parametrize("value", [".", ".."])
def test_a_dot_segment_is_no_usable_id(value: str) -> None:
    assert not usable_id(value) and "another URL" in id_problem(value)
    assert usable_id("...") and usable_id(".x") and usable_id("ak_1")


def test_a_listed_dot_id_is_a_shape_error(tmp_path: Path, emulator: Emulator) -> None:
    with hostile(upstream=emulator.url) as api:
        project = Project(tmp_path, api.url)
        project.questra("k: {provider: qp}\n")
        assert project.run("apply", "--auto-approve").exit_code == 0

        def dotted(seen: Seen) -> Reply | None:
            if seen.method != "GET" or not seen.path.startswith("/api-keys"):
                return None
            reply = api._forward(seen)
            doc = json.loads(reply.body)
            items = doc["data"] if isinstance(doc, dict) else doc
            items[0]["id"] = ".."
            return Reply(reply.status, json.dumps(doc).encode(), reply.headers)

        api.script = dotted
        res = project.run("plan")
        assert res.exit_code == 1 and "has the id '..', which a URL path resolves to another URL" in res.stderr


@pytest.mark.parametrize("dots", [".", ".."])
def test_a_state_s_dot_id_is_never_revoked_at_another_url(tmp_path: Path, emulator: Emulator, dots: str) -> None:
    with hostile(upstream=emulator.url) as api:
        project = Project(tmp_path, api.url)
        project.questra("k: {provider: qp}\n")
        assert project.run("apply", "--auto-approve").exit_code == 0
        state = project.state()
        state["keys"]["k"]["remote_id"] = dots  # a hand edit
        project.state_path.write_text(json.dumps(state))
        before = project.state_path.read_bytes()
        project.questra("{}\n")
        sent = len(api.seen)
        res = project.run("apply", "--auto-approve", "--no-refresh")
        assert res.exit_code == 1, res.output
        assert "has a '.' or '..' segment" in res.output and "Traceback" not in res.output
        assert not [s for s in api.seen[sent:] if s.method == "POST"], api.seen[sent:]  # no revoke went anywhere
        assert json.loads(project.state_path.read_bytes())["keys"]["k"]["remote_id"] == dots
        assert project.state_path.read_bytes() == before or "k" in project.state()["keys"]
