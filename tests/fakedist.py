"""A plug-in distribution written to a directory for a `keyform` subprocess to find on PYTHONPATH:
its dist-info (METADATA, entry points) and its package, as pip would have installed it."""

from __future__ import annotations

import os
from pathlib import Path


def install(site: Path, dist: str, version: str, entry_points: str, package: str, source: str) -> dict[str, str]:
    """Write distribution `dist` with module `package` (`source`) into `site`; the environment that
    puts it on a subprocess's path (after any PYTHONPATH already set)."""
    (site / package).mkdir(parents=True, exist_ok=True)
    (site / package / "__init__.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(entry_points)
    return {"PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(site)) if p)}
