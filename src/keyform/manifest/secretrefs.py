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
        name = value["env"]
        if type(name) is not str:
            return EnvRef(name)
        # one (frozen) EnvRef per variable name: 5,000 keys reading one variable share it
        found = _env_refs.get(name)
        if found is None:
            found = EnvRef(name)
            if len(_env_refs) < 1024:
                _env_refs[name] = found
        return found
    if "file" in value:
        return FileRef(source.resolve(value["file"]))
    return SecretOfRef(value["secret_of"])


_env_refs: dict[str, EnvRef] = {}
