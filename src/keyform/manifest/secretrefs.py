"""`{env: NAME}`, `{file: PATH}`, `{secret_of: ADDRESS}` mappings → model references.

The schema has already checked the shape (exactly one of the three). Values are not read here:
that happens at resolve time. File paths become absolute against the declaring manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keyform.manifest.sources import ManifestFile
from keyform.model import EnvRef, FileRef, SecretOfRef, SecretRef


def build_ref(value: Mapping[str, Any], source: ManifestFile) -> SecretRef:
    if "env" in value:
        return EnvRef(value["env"])
    if "file" in value:
        return FileRef(source.resolve(value["file"]))
    return SecretOfRef(value["secret_of"])
