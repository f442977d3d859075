"""Found by an adversarial pass (stop 36): a definition may not put a secret input in a URL path ("URLs are logged (by -v, proxies,
servers)", restdef._operation), nor ${token} — but a `secret: true` option (e.g. Datadog's
application key) is accepted in a path, so it travels in every request line to proxies and server
access logs."""
from __future__ import annotations

from pathlib import Path

from keyform.manifest.restdef import load_definition

DEFINITION = """\
version: 1
name: optpath
options:
  app: {required: true, secret: true}
auth: {type: bearer}
key: {id: /id, created_at: /created}
attributes:
  name: {type: string, path: /name, default: "${address}"}
operations:
  list: {method: GET, path: "/accounts/${options.app}/keys", items: /items}
  create: {method: POST, path: /keys, body: {name: "${attrs.name}"}, secret: /secret}
  delete: {method: DELETE, path: "/keys/${id}"}
"""


def test_a_secret_option_in_a_path_is_refused_like_a_secret_input(tmp_path: Path) -> None:
    path = tmp_path / "optpath.yaml"
    path.write_text(DEFINITION)
    definition, problems = load_definition(str(path), "optpath.yaml")
    assert definition is None and any("optpath.yaml:10" in str(p) for p in problems), problems
