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


# The start of a test plug-in's source that wraps keyform's own Questra client: `Wrapped` passes
# every call to it, a test's class overriding what it changes; `questra_client` opens the client
# (it takes the limiter keyform offers); `questra_type(name, open, description)` is the type.
QUESTRA_WRAPPER = '''
from dataclasses import replace

from keyform.typeregistry import provider_type


class Wrapped:
    """A built-in Questra client's calls as they are."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name

    def list(self):
        return self.inner.list()

    def create(self, request):
        return self.inner.create(request)

    def update(self, remote_id, attrs, expires_at):
        return self.inner.update(remote_id, attrs, expires_at)

    def delete(self, remote_id):
        self.inner.delete(remote_id)

    def close(self):
        self.inner.close()


def questra_client(config, token, *, timeout=30.0, max_retries=5):
    from keyform.providers.questra import QuestraProvider

    return QuestraProvider(config.name, config.base_url, token, config.options["org"], timeout=timeout,
                           max_retries=max_retries)


def questra_type(name, open_, description):
    return replace(provider_type("questra"), name=name, open=open_, description=description,
                   options_schema={"required": ["org"], "properties": {"org": {"type": "string"}}},
                   key_schema={"properties": {"name": {"type": "string"}}})
'''
