"""`keyform.lazyre.LazyPattern`: module-level patterns compiled on first use. Every one in keyform
compiles (a bad pattern fails here, not in a user's command), and each method answers as the
compiled pattern's does."""

from __future__ import annotations

import importlib
import io
import pkgutil
import re
from contextlib import redirect_stdout

import keyform
from keyform.lazyre import LazyPattern


def _lazy_patterns() -> dict[str, LazyPattern[str] | LazyPattern[bytes]]:
    found: dict[str, LazyPattern[str] | LazyPattern[bytes]] = {}
    for info in pkgutil.walk_packages(keyform.__path__, "keyform."):
        if info.name.endswith("__main__"):
            continue
        with redirect_stdout(io.StringIO()):
            module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, LazyPattern):
                found[f"{info.name}.{name}"] = value
    return found


def test_every_lazy_pattern_in_keyform_compiles() -> None:
    found = _lazy_patterns()
    assert "keyform.render.safe.UNSAFE" in found and "keyform.manifest.loader._KEYFORM_LINE" in found
    for name, pattern in found.items():
        compiled = pattern.compiled()
        assert (compiled.pattern, compiled.flags & ~re.UNICODE) == (pattern.pattern, pattern.flags & ~re.UNICODE), name


def test_a_lazy_pattern_answers_as_the_compiled_one() -> None:
    lazy, compiled = LazyPattern(r"(a+)(b)?", re.IGNORECASE), re.compile(r"(a+)(b)?", re.IGNORECASE)
    assert lazy._compiled is None  # not compiled until used
    text = "xAab aa AB"
    for method in ("match", "fullmatch", "search"):
        for args in ((text,), (text, 1), (text, 1, 3), ("aab",)):
            got, want = getattr(lazy, method)(*args), getattr(compiled, method)(*args)
            assert (got and (got.span(), got.groups())) == (want and (want.span(), want.groups())), (method, args)
    assert lazy.sub("-", text) == compiled.sub("-", text)
    assert lazy.sub(lambda m: m[1].upper(), text, 1) == compiled.sub(lambda m: m[1].upper(), text, 1) == "xAA aa AB"
    assert [m.span() for m in lazy.finditer(text, 2)] == [m.span() for m in compiled.finditer(text, 2)]
    assert lazy.findall(text) == compiled.findall(text)
    assert lazy.compiled() is lazy.compiled()  # compiled once
    assert LazyPattern(rb"^v", re.MULTILINE).search(b"x\nv") is not None
