"""A `type: rest` listing reads its usual items on a fast path (`RestProvider._fast_key`) and any
other item with `parse_key`: whatever the item, the listing says what `parse_key` says of it (the
same key, or the same error), for a definition whose pointers are one token each and for one with
nested pointers and a flag read by `equals`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from keyform.errors import ProviderError
from keyform.manifest.restdef import load_definition
from keyform.providers.http import ShapeError
from keyform.providers.rest import RestProvider

FLAT = """\
version: 1
name: flat
auth: {type: bearer}
expiry: {supported: true}
key:
  id: /id
  created_at: /created
  expires_at: /expires
  last_used: /used
  revoked: /revoked
  expired: /expired
attributes:
  name: {type: string, path: /name, default: "${address}"}
  size: {type: integer, path: /size, default: 0}
  enabled: {type: boolean, path: /enabled, default: false}
  tags: {type: string_list, path: /tags, default: []}
  labels: {type: string_map, path: /labels, default: {}}
  headers: {type: headers, path: /headers, default: {}}
  kept: {type: string, default: x}
operations:
  list: {method: GET, path: /keys, items: /items}
  create: {method: POST, path: /keys, body: {name: "${attrs.name}", expires: "${expires_at}"}, secret: /secret}
  delete: {method: DELETE, path: "/keys/${id}"}
"""

NESTED = (FLAT.replace("name: flat", "name: nested")
          .replace("  id: /id\n", "  id: /meta/id\n  id_type: integer\n")
          .replace("  created_at: /created\n", "  created_at: /meta/created\n")
          .replace("  last_used: /used\n", "  last_used: /usage/last\n")
          .replace("  revoked: /revoked\n", "  revoked: {path: /status, equals: [revoked]}\n")
          .replace("path: /tags,", "path: /spec/tags,"))

T = "2026-03-01T10:00:00Z"
GOOD: dict[str, Any] = {"id": "k1", "name": "a", "size": 3, "enabled": True, "tags": ["x"], "labels": {"a": "b"},
                        "headers": {"H": "v"}, "created": T, "expires": "2026-04-01T00:00:00.250Z", "used": None,
                        "revoked": False, "expired": False}


def _items(nested: bool) -> list[Any]:
    variants: list[dict[str, Any]] = [
        {}, {"name": None, "size": None, "tags": None, "labels": None, "headers": None, "enabled": None},
        {"id": 7}, {"id": True}, {"id": 1.0}, {"id": ""}, {"id": "a b"}, {"id": "007"}, {"id": "-3"},
        {"name": 5}, {"size": True}, {"size": "3"}, {"enabled": 1}, {"tags": ["x", 1]}, {"tags": "x"},
        {"labels": {"a": 1}}, {"labels": []}, {"headers": {"H": {"env": "X"}}},
        {"created": None}, {"created": ""}, {"created": 1767225600}, {"created": "2026-03-01T11:00:00+01:00"},
        {"created": "yesterday"}, {"expires": "9999-12-31T23:59:59Z"}, {"expires": "0001-01-01T00:00:00Z"},
        {"used": T}, {"used": "0001-01-01T00:00:00Z"}, {"used": 3},
        {"revoked": True}, {"revoked": None}, {"revoked": "yes"}, {"expired": 0}, {"expired": True},
    ]
    out: list[Any] = []
    for change in variants:
        item = {**GOOD, **change}
        if nested:
            key_id = item.pop("id")
            item = {**item, "meta": {"id": "41" if key_id == "k1" else key_id, "created": item.pop("created")},
                    "usage": {"last": item.pop("used")}, "status": "revoked" if item.pop("revoked") else "on",
                    "spec": {"tags": item.pop("tags")}}
        out.append(item)
    out.append({k: v for k, v in GOOD.items() if k != "used"})  # usage not reported
    out.append({k: v for k, v in GOOD.items() if k not in ("revoked", "expired", "created", "expires")})
    if nested:
        out += [{**out[0], "meta": None}, {**out[0], "usage": {}}, {**out[0], "status": "revoked"},
                {**out[0], "meta": {"id": "12", "created": T}}, {**out[0], "meta": {"id": "x1", "created": T}}]
    return [*out, "not an object", None, [GOOD]]


@pytest.mark.parametrize("text", [FLAT, NESTED], ids=["flat", "nested"])
def test_a_listing_reads_each_item_as_parse_key_does(tmp_path: Path, text: str) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(text)
    d, problems = load_definition(str(path), "d.yaml")
    assert d is not None, [str(p) for p in problems]
    nested = text is NESTED
    items = _items(nested)
    fast_taken = 0
    for i, item in enumerate(items):
        def reply(request: httpx.Request, item: Any = item) -> httpx.Response:
            return httpx.Response(200, json={"items": [item]})

        p = RestProvider("t1", d, "http://127.0.0.1:9", "tok", {}, transport=httpx.MockTransport(reply),
                         max_retries=0)
        try:
            expected: Any = p.parse_key(item, "item 0")
        except ShapeError as exc:
            expected = str(exc)
        try:
            listed = p.list()
        except ProviderError as exc:
            assert isinstance(expected, str), (i, item, str(exc))
            assert expected in str(exc), (i, item)
        else:
            assert listed == [expected], (i, item)
            fast_taken += isinstance(item, dict) and p._fast_key(item) is not None
        p.close()
    assert fast_taken >= 10  # (the usual items are read on the fast path)
