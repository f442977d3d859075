"""`direct_init`: a faster `__init__` for the frozen dataclasses a plan builds once per key.

A frozen dataclass's generated `__init__` sets each field through `object.__setattr__` (its own
`__setattr__` refuses): ~1 µs of the ~2.3 µs a 12-field `Change` costs, and a 10,000-key plan
builds tens of thousands of such records. `direct_init` replaces it with one that writes the
instance's `__dict__`, with the very parameters, order, defaults and default factories the
dataclass declares: nothing else about the class changes (still frozen; `__eq__`, `__hash__`,
`__repr__` and `dataclasses.replace` are the dataclass's). For records with neither `__slots__`,
`__post_init__`, `InitVar`s, keyword-only fields nor fields left out of `__init__` (it refuses
those). tests/test_records_init.py checks each record against the generated `__init__`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def direct_init(cls: type[T]) -> type[T]:
    """Give the dataclass `cls` an `__init__` that writes its fields straight into `__dict__`."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        raise TypeError(f"direct_init: {cls.__name__} is not a plain dataclass")
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    params: list[str] = []
    lines: list[str] = []
    for f in dataclasses.fields(cls):
        if not f.init or f.kw_only is True or not f.name.isidentifier():
            raise TypeError(f"direct_init: {cls.__name__}.{f.name} is not a plain positional field")
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
            lines.append(f"    d[{f.name!r}] = {f.name}")
        elif f.default_factory is not dataclasses.MISSING:  # a new value per instance, as dataclass does
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_MISSING")
            lines.append(f"    d[{f.name!r}] = _factory_{f.name}() if {f.name} is _MISSING else {f.name}")
        else:
            params.append(f.name)
            lines.append(f"    d[{f.name!r}] = {f.name}")
    source = f"def __init__(self, {', '.join(params)}):\n    d = self.__dict__\n" + "\n".join(lines) + "\n"
    exec(compile(source, f"<direct_init {cls.__qualname__}>", "exec"), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    setattr(cls, "__init__", init)  # noqa: B010 (mypy would refuse assigning to a method)
    return cls
