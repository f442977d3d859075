"""Found by review 96 (stop 41): `import` took the first of two different copies of one id in a
listing (live then revoked: imported; revoked then live: refused), while `plan` refuses such a
listing: it cannot tell which copy is current. `import` now refuses it the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.project import Project
from tests.loopback import LoopbackServer, QuietHandler, serving

LIVE = {"id": "ak_dup", "name": "dup", "created_at": "2026-01-01T00:00:00Z", "revoked": False}
REVOKED = {**LIVE, "revoked": True}


def _listing(items: list[dict[str, object]]) -> type[QuietHandler]:
    class Listing(QuietHandler):
        def do_GET(self) -> None:
            body = json.dumps(items).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Listing


@pytest.mark.parametrize("items", [[LIVE, REVOKED], [REVOKED, LIVE]], ids=["live-first", "revoked-first"])
def test_import_refuses_a_listing_with_two_different_copies_of_the_id(tmp_path: Path,
                                                                     items: list[dict[str, object]]) -> None:
    with serving(LoopbackServer(_listing(items))) as api:
        project = Project(tmp_path, api.url)
        project.questra("a:\n  provider: qp\n  name: dup\n")
        res = project.run("import", "a", "ak_dup")
        plan = project.run("plan")
    assert res.exit_code == 1, res.output
    assert "the API listed key ak_dup twice, and the two copies differ" in res.stderr, res.stderr
    assert "the API listed key ak_dup twice, and the two copies differ" in plan.stderr, plan.stderr
    assert not project.state_path.exists() or "ak_dup" not in project.state_path.read_text()


def test_import_takes_a_key_listed_twice_alike(tmp_path: Path) -> None:
    with serving(LoopbackServer(_listing([LIVE, LIVE]))) as api:
        project = Project(tmp_path, api.url)
        project.questra("a:\n  provider: qp\n  name: dup\n")
        res = project.run("import", "a", "ak_dup")
    assert res.exit_code == 0, res.output
