"""Validate JSON bodies against the OpenAPI documents in ``docs/api/`` (the ones the README links).

Each spec file is loaded once and registered as one JSON Schema resource (draft 2020-12, which
OpenAPI 3.1 uses), so the documents' own ``#/components/schemas/...`` refs resolve unchanged.
``nullable: true`` is an OpenAPI 3.0 keyword that 3.1 — and therefore this helper — ignores: a
field marked so (TextQL ``expiresAt``) must be a string or absent, never ``null``. ``format:
date-time`` is checked (RFC 3339 with a zone).

    validate(QUESTRA, "ApiKeyWithSecret", body)
    validate(TEXTQL, "CreateApiAccessKeyRequest", body)      # short name of a dotted component
    validate_response(QUESTRA, "/api-keys", "get", 200, body) # inline schemas and $ref'd responses
    validate_request(TEXTQL, "/v1/api-keys/update", "post", body)
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_DIR = Path(__file__).resolve().parents[1] / "docs" / "api"
QUESTRA = "questra-api-keys.openapi.yaml"
TEXTQL = "textql-api-access-key-v1.openapi.yaml"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMAT_CHECKER = jsonschema.FormatChecker()


def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or _RFC3339.match(value) is not None


FORMAT_CHECKER.checks("date-time")(_is_date_time)


def _uri(spec_file: str) -> str:
    return f"urn:keyform:spec:{spec_file}"


@cache
def load_spec(spec_file: str) -> dict[str, Any]:
    """The parsed OpenAPI document ``docs/api/<spec_file>``."""
    with (SPEC_DIR / spec_file).open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document


@cache
def _registry(spec_file: str) -> Registry:
    resource = Resource.from_contents(load_spec(spec_file), default_specification=DRAFT202012)
    return Registry().with_resource(_uri(spec_file), resource)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _component_name(spec_file: str, schema_name: str) -> str:
    """``schema_name`` itself, or the one component whose dotted name ends with ``.schema_name``."""
    names = load_spec(spec_file)["components"]["schemas"]
    if schema_name in names:
        return schema_name
    matches = [name for name in names if name.endswith("." + schema_name)]
    if len(matches) != 1:
        raise KeyError(f"{spec_file}: no single schema named {schema_name!r}")
    return matches[0]


def _validate_pointer(spec_file: str, pointer: str, instance: Any) -> None:
    schema = {"$ref": f"{_uri(spec_file)}#{pointer}"}
    validator = jsonschema.Draft202012Validator(schema, registry=_registry(spec_file), format_checker=FORMAT_CHECKER)
    validator.validate(instance)


def validate(spec_file: str, schema_name: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` fits ``components/schemas/<schema_name>``."""
    name = _component_name(spec_file, schema_name)
    _validate_pointer(spec_file, f"/components/schemas/{_escape(name)}", instance)


def _follow(document: dict[str, Any], pointer: str) -> tuple[str, Any]:
    """Follow local ``$ref`` objects from ``pointer``; return the final pointer and node."""
    node: Any = document
    for token in pointer.lstrip("/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    if isinstance(node, dict) and set(node) == {"$ref"}:
        return _follow(document, node["$ref"].lstrip("#"))
    return pointer, node


def _json_schema_pointer(spec_file: str, pointer: str) -> str:
    """The pointer of the ``application/json`` schema inside the request/response object at ``pointer``."""
    pointer, _ = _follow(load_spec(spec_file), pointer)
    return f"{pointer}/content/application~1json/schema"


def validate_response(spec_file: str, path: str, method: str, status: int, instance: Any) -> None:
    """Validate a response body against the spec's schema for ``method path`` → ``status`` (or ``default``)."""
    responses = load_spec(spec_file)["paths"][path][method.lower()]["responses"]
    key = str(status) if str(status) in responses else "default"
    base = f"/paths/{_escape(path)}/{method.lower()}/responses/{key}"
    _validate_pointer(spec_file, _json_schema_pointer(spec_file, base), instance)


def validate_request(spec_file: str, path: str, method: str, instance: Any) -> None:
    """Validate a request body against the spec's ``requestBody`` schema for ``method path``."""
    base = f"/paths/{_escape(path)}/{method.lower()}/requestBody"
    _validate_pointer(spec_file, _json_schema_pointer(spec_file, base), instance)
