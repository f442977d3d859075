"""Pointing the conformance kit at a declarative provider: a `type: rest` definition file.

    ptype, definition = load_rest_type("examples/providers/questra.yaml")
    ConformanceTarget(provider_type=ptype, definition=definition,
                      manifest_provider=rest_manifest_entry("examples/providers/questra.yaml"), ...)
"""

from __future__ import annotations

import os
from typing import Any

from keyform.errors import KeyformError
from keyform.manifest.restdef import RestDefinition, load_definition
from keyform.typeregistry import register_loaded


def load_rest_type(path: str) -> tuple[str, RestDefinition]:
    """Load a definition file and register its type (`rest:NAME`); KeyformError if it is invalid."""
    full = os.path.abspath(path)
    definition, problems = load_definition(full, path)
    if definition is None:
        raise KeyformError(problems or f"{path}: not a usable definition")
    ptype = f"rest:{definition.name}"
    register_loaded(definition.kind(ptype), origin=definition.file)
    return ptype, definition


def rest_manifest_entry(path: str) -> dict[str, Any]:
    """The provider entry a manifest names that definition with."""
    return {"type": "rest", "definition": os.path.abspath(path)}
