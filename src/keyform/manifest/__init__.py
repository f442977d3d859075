"""Manifest loading: YAML files → a validated `keyform.model.Workspace` (SPEC §2).

`load_workspace` is the one entry point (`keyform validate` is just a call to it).
"""

from keyform.manifest.loader import load_workspace

__all__ = ["load_workspace"]
