"""`record`: a dataclass whose methods cost a tenth as much to create, and whose `__init__` is cheaper.

`@dataclass(frozen=True)` compiles five or six functions from source for each class it decorates
(`__init__`, `__repr__`, `__eq__`, `__hash__`, `__setattr__`, `__delattr__`, one `exec` each):
~0.6–1.4 ms per class on this project's machines, and a `keyform plan` creates ~70 such classes
before it reads a manifest: 45–65 ms of every command's start-up, more than a 1-key plan's model,
state and planner together. `record` lets `dataclasses.dataclass` do what it does cheaply (find the
fields, defaults, `ClassVar`s, `__match_args__`, `__dataclass_fields__`) with no methods, then
compiles only `__init__`, and gives the class plain closures for the rest:

- `order=True` adds `__lt__`, `__le__`, `__gt__` and `__ge__` over the same tuple, as the
  dataclass's (a class that defines one of them itself is refused, as the dataclass refuses it).
- `__init__` has the fields as parameters, in order, with the same defaults and default factories
  (an omitted factory field gets a new value; an explicit value is kept as given). It sets each
  field as the dataclass's does: a frozen record's through `object.__setattr__`, a mutable one's
  by assignment. `@record(dict_init=True)` makes a frozen record's write the instance's `__dict__`
  instead, ~1 µs less for a 12-field `Change` (of ~2.3 µs): for the records a plan builds tens of
  thousands of. Only for those: CPython (3.11+) keeps an instance's attributes inline, and reads
  them fastest, until its `__dict__` is asked for, so every later read of such a record costs a
  little more (made the default, it cost a 10,000-key plan 4 % more instructions than it saved).
- `__eq__` compares the `compare` fields when both sides are of the same class, as this Python's
  dataclass does (one tuple up to 3.12, field by field from 3.13: `_eq`); `__hash__` hashes the
  `hash` (else `compare`) fields' tuple, or is `None` for a mutable record with `eq`, following the
  dataclass's own rules, including a `__hash__` or `__eq__` the class body defines itself.
  `__repr__` is the dataclass's text, recursion-safe.
- A frozen record refuses `setattr`/`delattr` of any attribute with `FrozenInstanceError`, as the
  dataclass does; `dataclasses.fields`, `replace`, `asdict`, `is_dataclass`, pickle and copy work
  unchanged, and `__dataclass_params__` says what the class is.

It refuses, with `TypeError`, what it would not reproduce: `__post_init__`, `InitVar`s, fields
left out of `__init__` or keyword-only, a field name that is not an identifier (names are written
into `__init__`'s source), a dataclass base class, `__slots__` in the class body, a
frozen record that defines `__setattr__`/`__delattr__`, a frozen record with `slots`. Those stay
plain dataclasses. tests/test_record_classes.py checks every record in keyform against the dataclass
the same fields would make. Imports nothing of keyform but `keyform._record_inits`: the code of
each `__init__` shape keyform's records have, written by `python -m keyform.records` and loaded
from its .pyc (~0.3 ms for all) rather than compiled at each start-up (~0.1 ms a shape); a shape
it lacks is compiled, and tests/test_record_classes.py fails until the file is written again.
"""

from __future__ import annotations

import copy
import dataclasses
import keyword
import operator
import reprlib
import sys
import types
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, dataclass_transform, overload

from keyform._record_inits import PREBUILT

T = TypeVar("T")

_PREFIX = "__kf_"  # the generated __init__'s own names; no field may start with it


@overload
def record(cls: type[T], /) -> type[T]: ...


@overload
def record(*, frozen: bool = True, eq: bool = True, order: bool = False, slots: bool = False,
           dict_init: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: type[T] | None = None, /, *, frozen: bool = True, eq: bool = True, order: bool = False,
           slots: bool = False, dict_init: bool = False) -> type[T] | Callable[[type[T]], type[T]]:
    """`@record` (frozen) or `@record(frozen=..., eq=..., order=..., slots=..., dict_init=...)`: see
    the module docstring."""

    def wrap(c: type[T]) -> type[T]:
        return _build(c, frozen=frozen, eq=eq, order=order, slots=slots, dict_init=dict_init)

    return wrap if cls is None else wrap(cls)


def _refuse(cls: type, why: str) -> TypeError:
    return TypeError(f"record: {cls.__qualname__} {why}; use dataclasses.dataclass")


def _build(cls: type[T], *, frozen: bool, eq: bool, order: bool, slots: bool, dict_init: bool) -> type[T]:
    body = dict(cls.__dict__)
    if any(dataclasses.is_dataclass(base) for base in cls.__mro__[1:]):
        raise _refuse(cls, "has a dataclass base class")
    if hasattr(cls, "__post_init__"):
        raise _refuse(cls, "has __post_init__")
    if "__slots__" in body:
        raise _refuse(cls, "defines __slots__ (pass slots=True)")
    if frozen and ("__setattr__" in body or "__delattr__" in body):
        raise _refuse(cls, "is frozen but defines __setattr__ or __delattr__")
    if frozen and slots:
        raise _refuse(cls, "is frozen with slots")
    if order and not eq:
        raise ValueError("eq must be true if order is true")  # the dataclass's own check and words
    if order and (own := [name for name in _ORDER if name in body]):
        raise _refuse(cls, f"defines {own[0]} itself (order=True would replace it)")
    if dict_init and not frozen:
        raise _refuse(cls, "is mutable: dict_init is for frozen records")
    # the dataclass's rule: an explicit __hash__ is kept, but not the None that defining __eq__ sets
    explicit_hash = "__hash__" in body and not (body["__hash__"] is None and "__eq__" in body)
    had_doc = bool(body.get("__doc__"))
    if not had_doc:  # else the dataclass writes one from object's signature (tokenize and ast: ~0.2 ms); ours is below
        cls.__doc__ = "record"
    cls = dataclasses.dataclass(init=False, repr=False, eq=False, slots=slots)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]  # a dataclass from the line above
    names = {f.name for f in fields}
    for name, f in getattr(cls, "__dataclass_fields__", {}).items():
        if name not in names and f._field_type is not dataclasses._FIELD_CLASSVAR:  # type: ignore[attr-defined]
            raise _refuse(cls, f"has the InitVar {name!r}")
    for f in fields:
        if not f.init or f.kw_only is True:
            raise _refuse(cls, f"field {f.name!r} is not a positional __init__ parameter")
        if not f.name.isidentifier() or keyword.iskeyword(f.name):  # it is written into __init__'s source
            raise _refuse(cls, f"field {f.name!r} is not an identifier")
        if f.name.startswith(_PREFIX) or f.name == "self":
            raise _refuse(cls, f"field {f.name!r} clashes with a name of the generated __init__")
    methods: dict[str, Callable[..., Any]] = {"__init__": _init(cls, fields, style="dict" if dict_init else
                                                                            "setattr" if frozen else "assign"),
                                               "__repr__": _repr(tuple(f.name for f in fields if f.repr))}
    if eq:
        names_compared = [f.name for f in fields if f.compare]
        compared = _fields_tuple(names_compared)
        methods["__eq__"] = _eq(compared, names_compared)
        if order:
            methods.update((name, _compare(compared, op)) for name, op in _ORDER.items())
    if frozen:
        methods["__setattr__"], methods["__delattr__"] = _frozen(cls, frozenset(names))
        if eq and not explicit_hash:
            methods["__hash__"] = _hash(_fields_tuple([f.name for f in fields
                                                       if (f.compare if f.hash is None else f.hash)]))
    for name, fn in methods.items():
        if name in body and (name != "__hash__" or explicit_hash):  # the class's own, as the dataclass keeps it
            continue
        fn.__name__, fn.__qualname__, fn.__module__ = name, f"{cls.__qualname__}.{name}", cls.__module__
        if name != "__init__":
            fn.__annotations__ = {}  # as the dataclass's: none (these closures' own are records.py's)
        setattr(cls, name, fn)
    if eq and not frozen and not explicit_hash:
        cls.__hash__ = None  # type: ignore[assignment]  # mutable and compared by value: unhashable
    params = copy.copy(cls.__dataclass_params__)  # type: ignore[attr-defined]
    params.init = params.repr = True
    params.eq, params.frozen, params.order = eq, frozen, order
    cls.__dataclass_params__ = params  # type: ignore[attr-defined]
    if not had_doc:  # the dataclass's: the class's name and __init__'s signature
        cls.__doc__ = cls.__name__ + _signature_text(cls, fields, ours=vars(cls)["__init__"] is methods["__init__"])
    return cls


def _signature_text(cls: type, fields: tuple[dataclasses.Field[Any], ...], *, ours: bool) -> str:
    """`str(inspect.signature(cls))` without its ` -> None`, as the dataclass's docstring has it;
    written from the fields when the class is made by the `__init__` made here (`ours`: not its own,
    nor a `__new__` or a metaclass that inspect would read instead), ~30 us less a class."""
    import inspect

    new: object = cls.__new__
    if not ours or type(cls) is not type or new is not object.__new__:
        return str(inspect.signature(cls)).replace(" -> None", "")
    params = []
    for f in fields:  # inspect.Parameter's text: `name: annotation` and ` = repr(default)`
        text = f"{f.name}: {inspect.formatannotation(f.type)}"
        if f.default is not dataclasses.MISSING:
            text += f" = {f.default!r}"
        elif f.default_factory is not dataclasses.MISSING:
            text += f" = {_FACTORY!r}"
        params.append(text)
    return f"({', '.join(params)}) -> None".replace(" -> None", "")


class _Factory:
    """The default an `__init__` shows for a field with a default factory (the dataclass's is alike)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def _init(cls: type, fields: tuple[dataclasses.Field[Any], ...], *, style: str) -> Callable[..., None]:
    """The one compiled method: parameters need a real signature (and it is the hot one). `style`:
    "setattr" (frozen: `object.__setattr__`), "dict" (frozen: the `__dict__`) or "assign" (mutable).
    As the dataclass's, it is made in the class's module (its string annotations resolve there:
    `typing.get_type_hints(cls.__init__)`), its defaults the function's own, its factories closed over.

    Compiling is most of a record's cost (~0.1 ms), and its code depends only on the style, the
    number of fields and which of them have a factory, not on their names: that code is compiled
    once per such shape (`_template`), and each class gets a copy with its field names put in."""
    names = [f.name for f in fields]
    factories = tuple(i for i, f in enumerate(fields) if f.default_factory is not dataclasses.MISSING)
    template = _template(style, len(fields), factories)
    renamed = dict(zip(_placeholders(len(fields)), names))
    code = template.replace(
        co_varnames=tuple(renamed.get(n, n) for n in template.co_varnames),
        co_names=tuple(renamed.get(n, n) for n in template.co_names),
        co_consts=tuple(renamed.get(c, c) if type(c) is str else c for c in template.co_consts),
        co_filename=f"<record {cls.__qualname__}>")
    closed: dict[str, Any] = {f"{_PREFIX}FACTORY": _FACTORY, f"{_PREFIX}set": object.__setattr__}
    closed.update((f"{_PREFIX}factory_{i}", fields[i].default_factory) for i in factories)
    defaults = tuple(_FACTORY if f.default_factory is not dataclasses.MISSING else f.default
                     for f in fields if f.default is not dataclasses.MISSING
                     or f.default_factory is not dataclasses.MISSING)
    module = sys.modules.get(cls.__module__)
    init: Callable[..., None] = types.FunctionType(code, vars(module) if module else {}, None, defaults or None,
                                                   tuple(types.CellType(closed[n]) for n in code.co_freevars))
    init.__annotations__ = {**{f.name: f.type for f in fields}, "return": None}
    return init


def _placeholders(count: int) -> list[str]:
    """The template's names for `count` fields (no field may start with _PREFIX, so none clashes)."""
    return [f"{_PREFIX}{i}" for i in range(count)]


Shape = tuple[str, int, tuple[int, ...]]  # an __init__'s style, field count and the fields with a factory
_TEMPLATES: dict[Shape, types.CodeType] = {}
_MAKER = f"{_PREFIX}make"


def _template(style: str, count: int, factories: tuple[int, ...]) -> types.CodeType:
    """The code of an `__init__` of `count` fields in `style`, those at `factories` with a default
    factory, its fields named by `_placeholders` (the defaults are the function's, not its code's).

    Taken from `keyform._record_inits` (made by `python -m keyform.records`; it arrives from its
    .pyc: no compiling) when that holds the shape, else compiled; either way the code of
    `_template_source`, as if compiled from it alone (same names, lines and columns)."""
    shape = (style, count, factories)
    found = _TEMPLATES.get(shape)
    if found is None:
        maker = PREBUILT.get(shape)
        if maker is not None:
            make = maker.__code__
            line = make.co_firstlineno - 1  # the prebuilt maker's lines are the compiled one's, moved
        else:
            module = compile(_template_source(shape), "<record>", "exec")
            make, line = next(c for c in module.co_consts if isinstance(c, types.CodeType)), 0
        code = next(c for c in make.co_consts if isinstance(c, types.CodeType))
        found = _TEMPLATES[shape] = code.replace(co_filename="<record>", co_firstlineno=code.co_firstlineno - line,
                                                 co_qualname=f"{_MAKER}.<locals>.__init__")
    return found


def _template_source(shape: Shape, maker: str = _MAKER) -> str:
    """The source of a maker function `maker` whose call returns the `__init__` of `shape` (see `_template`)."""
    style, count, factories = shape
    params: list[str] = []
    lines: list[str] = [f"    {_PREFIX}d = self.__dict__"] if style == "dict" else []
    store = {"dict": f"    {_PREFIX}d[{{name!r}}] = {{value}}",
             "setattr": f"    {_PREFIX}set(self, {{name!r}}, {{value}})",
             "assign": "    self.{name} = {value}"}[style]
    for i, name in enumerate(_placeholders(count)):
        value = name
        if i in factories:  # a new value per instance, as dataclass does
            value = f"{_PREFIX}factory_{i}() if {name} is {_PREFIX}FACTORY else {name}"
        params.append(name)
        lines.append(store.format(name=name, value=value))
    given = [f"{_PREFIX}FACTORY", f"{_PREFIX}set", *(f"{_PREFIX}factory_{i}" for i in factories)]
    return (f"def {maker}({', '.join(given)}):\n"
            f"  def __init__(self, {', '.join(params)}):\n" + ("\n".join(lines) or "    pass") + "\n"
            "  return __init__\n")


def shape_of(cls: type) -> Shape | None:
    """The shape of `cls`'s `__init__` when it is one made here (else None)."""
    init = vars(cls).get("__init__")
    code = getattr(init, "__code__", None)
    if code is None or not code.co_filename.startswith("<record "):
        return None
    fields = dataclasses.fields(cls)
    frozen = cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    style = ("dict" if f"{_PREFIX}d" in code.co_varnames else "setattr") if frozen else "assign"
    return style, len(fields), tuple(i for i, f in enumerate(fields) if f.default_factory is not dataclasses.MISSING)


def prebuilt_text(shapes: Iterable[Shape]) -> str:
    """The text of `keyform/_record_inits.py` holding the makers of `shapes`."""
    out = ['"""The `__init__` code of the shapes of keyform\'s records, for `keyform.records`: written by',
           "`python -m keyform.records` (tests/test_record_classes.py says when it is due), never by hand.",
           "Imported from its .pyc, it spares compiling them at every start-up (~0.1 ms each).",
           '"""',
           "# ruff: noqa",
           "# mypy: ignore-errors",
           "# fmt: off",
           "",
           "from __future__ import annotations  # (compiled as records.py compiles them: the same flags)",
           ""]
    names = {}
    for shape in sorted(set(shapes)):
        style, count, factories = shape
        names[shape] = name = f"_{style}_{count}" + "".join(f"_f{i}" for i in factories)
        out += ["", _template_source(shape, name)]
    out += ["", "PREBUILT = {"] + [f"    {shape!r}: {name}," for shape, name in names.items()] + ["}", ""]
    return "\n".join(out)


def _fields_tuple(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The named attributes as one tuple (attrgetter returns a bare value for one name)."""
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    if not names:
        return lambda obj: ()
    return operator.attrgetter(*names)


def _eq(values: Callable[[Any], tuple[Any, ...]], names: list[str]) -> Callable[[Any, Any], Any]:
    """The dataclass's `__eq__` of this Python: the compared fields as one tuple up to 3.12; from
    3.13, `self is other`, else each field in turn (`a == a2 and b == b2 ...`: a NaN is unequal to
    itself, and a non-bool result is returned as it is)."""
    if sys.version_info >= (3, 13):
        def __eq__(self: Any, other: Any) -> Any:
            if self is other:
                return True
            if other.__class__ is self.__class__:
                result: Any = True
                for name in names:
                    result = getattr(self, name) == getattr(other, name)
                    if not result:
                        return result
                return result
            return NotImplemented

        return __eq__

    def __eq__(self: Any, other: Any) -> Any:
        if self is other:  # the tuples would compare equal item by item (identity first)
            return True
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    return __eq__


_ORDER = {"__lt__": operator.lt, "__le__": operator.le, "__gt__": operator.gt, "__ge__": operator.ge}


def _compare(values: Callable[[Any], tuple[Any, ...]], op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def method(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return op(values(self), values(other))
        return NotImplemented

    return method


def _hash(values: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(values(self))

    return __hash__


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    @reprlib.recursive_repr("...")
    def __repr__(self: Any) -> str:
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    return __repr__


def _frozen(cls: Any, names: frozenset[str]) -> tuple[Callable[[Any, str, Any], None], Callable[[Any, str], None]]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __setattr__, __delattr__


def _main() -> None:
    """`python -m keyform.records`: write `keyform/_record_inits.py` for every record in keyform."""
    import importlib
    import pkgutil
    from pathlib import Path

    import keyform
    from keyform import records  # (this module runs as __main__: the classes were made by that one)

    shapes = set()
    for info in pkgutil.walk_packages(keyform.__path__, "keyform."):
        if ".emulator" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                shape = records.shape_of(value)
                if shape is not None:
                    shapes.add(shape)
    Path(records.__file__).with_name("_record_inits.py").write_text(records.prebuilt_text(shapes))


if __name__ == "__main__":
    _main()
