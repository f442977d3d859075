"""The `acme-vault` sink: one file per secret, `<dir>/<entry>.secret`, mode 0600, written atomically."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from keyform.errors import SinkError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def name_problem(name: str) -> str | None:
    if not _NAME.fullmatch(name) or ".." in name:
        return f"{name!r} is not a vault entry name (letters, digits, '_', '.', '-'; at most 128)"
    return None


class VaultSink:
    readable = True

    def __init__(self, directory: str) -> None:
        self.dir = Path(directory)

    def _path(self, name: str) -> Path:
        problem = name_problem(name)
        if problem:
            raise SinkError(f"{self.dir}: {problem}")
        return self.dir / f"{name}.secret"

    def write(self, address: str, name: str, secret: str) -> None:
        path = self._path(name)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(secret)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise SinkError(f"{path}: cannot write the secret of key {address}: {exc.strerror}") from None
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def read(self, name: str) -> str | None:
        try:
            return self._path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"VaultSink({str(self.dir)!r})"
