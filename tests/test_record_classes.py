"""`records.record` against `dataclasses.dataclass`: every record class in keyform, and the same class
bodies decorated both ways, take the same `__init__` parameters, keep the same fields, compare,
hash, print, freeze, replace, pickle and copy alike, and say the same in `__dataclass_params__`.
What `record` would not reproduce it refuses, naming the class."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import io
import pickle
import pkgutil
import types
import typing
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, ClassVar

import pytest

import keyform
from keyform import records
from keyform.errors import SourceLoc
from keyform.model import KeySpec
from keyform.plan import Action, Change
from keyform.records import record


def _record_classes() -> list[type]:
    """Every class in keyform (the emulator imports nothing of keyform) whose __init__ is record's."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(keyform.__path__, "keyform."):
        if ".emulator" in info.name or info.name.endswith("__main__"):
            continue
        with redirect_stdout(io.StringIO()):
            module = importlib.import_module(info.name)
        for value in vars(module).values():
            init = getattr(value, "__init__", None) if isinstance(value, type) else None
            code = getattr(init, "__code__", None)
            if code is not None and code.co_filename.startswith("<record ") and value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


RECORDS = _record_classes()


def test_the_records_are_found() -> None:
    names = {cls.__name__ for cls in RECORDS}
    assert {"KeySpec", "Change", "RemoteKey", "Declaration", "SinkTarget", "ReportRow", "KeyState", "Plan",
            "Workspace", "ProviderConfig"} <= names
    assert len(RECORDS) >= 80


def _reference(cls: type) -> type:
    """The dataclass the same fields, flags and class body make."""
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    specs = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory,
                                                 compare=f.compare, repr=f.repr, hash=f.hash))
             for f in dataclasses.fields(cls)]
    body = {name: vars(cls)[name] for name in ("__eq__", "__hash__", "__repr__") if _own(cls, name)}
    return dataclasses.make_dataclass(cls.__name__, specs, namespace=body, frozen=params.frozen, eq=params.eq,
                                      order=params.order,
                                      slots="__slots__" in vars(cls))


def _own(cls: type, name: str) -> bool:
    """Whether the class body itself defines `name` (not record, not the `None` that `__eq__` implies)."""
    value = vars(cls).get(name)
    if value is None:
        return False
    code = inspect.unwrap(value).__code__
    return not (code.co_filename.startswith("<record ") or code.co_filename == records.__file__)


def _state(obj: Any) -> dict[str, Any]:
    """The instance's attributes in order: its `__dict__`, or its slots."""
    if hasattr(obj, "__dict__"):
        return dict(vars(obj))
    return {name: getattr(obj, name) for name in type(obj).__slots__ if hasattr(obj, name)}


def _hash_of(cls: type) -> Any:
    """The class's `__hash__` as looked up on it (`None` when unhashable)."""
    return getattr(cls, "__hash__", None)


def _values(cls: type) -> dict[str, Any]:
    return {f.name: 1000 + i for i, f in enumerate(dataclasses.fields(cls))}


def _assert_like_the_dataclass(cls: type, reference: type) -> None:
    fields = dataclasses.fields(cls)
    assert [(f.name, f.default, f.default_factory, f.compare, f.repr, f.hash) for f in fields] == [
        (f.name, f.default, f.default_factory, f.compare, f.repr, f.hash) for f in dataclasses.fields(reference)]
    mine_params, ref_params = cls.__dataclass_params__, reference.__dataclass_params__  # type: ignore[attr-defined]
    for flag in ("init", "repr", "eq", "order", "unsafe_hash", "frozen"):
        assert getattr(mine_params, flag) == getattr(ref_params, flag), flag
    assert cls.__match_args__ == reference.__match_args__  # type: ignore[attr-defined]
    # __init__: the same parameters, in order, with the same plain defaults
    params = list(inspect.signature(cls).parameters.values())
    ref = list(inspect.signature(reference).parameters.values())
    assert [p.name for p in params] == [p.name for p in ref]
    assert [p.default is inspect.Parameter.empty for p in params] == [p.default is inspect.Parameter.empty for p in ref]
    for f, p in zip(fields, params):
        if f.default is not dataclasses.MISSING:
            assert p.default is f.default
    # as help() and pydoc show it: `<factory>` for a factory default, the same annotations
    assert str(inspect.signature(cls)) == str(inspect.signature(reference))
    if str(cls.__doc__).startswith(cls.__name__ + "("):  # no docstring of its own: the dataclass's
        assert cls.__doc__ == reference.__doc__
    for name in ("__eq__", "__hash__", "__repr__", "__setattr__", "__delattr__", "__lt__"):
        method = vars(cls).get(name)
        if method is not None and not _own(cls, name):
            assert typing.get_type_hints(method) == {}, name  # the dataclass's have no annotations
    # every field given: kept as given, in field order
    given = _values(cls)
    mine, theirs = cls(**given), reference(**given)
    assert _state(mine) == _state(theirs) == given and list(_state(mine)) == list(given)
    # only the required ones given: the same defaults, a new value from each factory
    required = {f.name: given[f.name] for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    a, b, r = cls(**required), cls(**required), reference(**required)
    assert list(_state(a)) == list(_state(r))
    for f in fields:
        if f.default_factory is dataclasses.MISSING:
            assert getattr(a, f.name) == getattr(r, f.name), f.name
        else:  # a new value from the factory each time
            assert type(getattr(a, f.name)) is type(getattr(r, f.name)), f.name
            assert getattr(a, f.name) is not getattr(b, f.name) or isinstance(getattr(a, f.name), (int, str, tuple,
                                                                                                  frozenset))
    # repr, eq, hash
    if not _own(cls, "__repr__"):
        assert repr(mine) == repr(theirs).replace(reference.__qualname__, cls.__qualname__, 1)
    assert (mine == cls(**given)) == (theirs == reference(**given))
    assert (mine == object()) is False and mine != theirs
    for f in fields:
        other = {**given, f.name: -1}
        assert (mine == cls(**other)) == (theirs == reference(**other)), f.name
    mine_hash, ref_hash = _hash_of(cls), _hash_of(reference)
    assert (mine_hash is None) == (ref_hash is None)
    assert (mine_hash is object.__hash__) == (ref_hash is object.__hash__)
    if mine_hash is not None and mine_hash is not object.__hash__:  # by value: equal records hash alike, and as the dataclass's
        assert hash(mine) == hash(cls(**given)) == hash(theirs)
    # frozen or not, alike; replace, pickle and copy
    first = fields[0].name
    outcomes = []
    for obj in (mine, theirs):
        try:
            setattr(obj, first, -5)
            outcomes.append("set")
        except dataclasses.FrozenInstanceError:
            outcomes.append("frozen")
    assert outcomes[0] == outcomes[1]
    mine = cls(**given)
    assert getattr(dataclasses.replace(mine, **{first: -7}), first) == -7
    assert _state(copy.copy(mine)) == _state(mine) == _state(copy.deepcopy(mine))
    if "<locals>" not in cls.__qualname__:
        assert _state(pickle.loads(pickle.dumps(mine))) == _state(mine)
    assert dataclasses.asdict(mine) == dataclasses.asdict(reference(**given))


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_record_in_keyform_behaves_as_its_dataclass(cls: type) -> None:
    _assert_like_the_dataclass(cls, _reference(cls))
    # its __init__'s annotations resolve in its module, as the dataclass's do (tools read them),
    # wherever the class's own do (a name imported only for type checkers resolves in neither)
    try:
        class_hints = typing.get_type_hints(cls)
    except NameError:
        return
    hints = typing.get_type_hints(vars(cls)["__init__"])
    assert hints == {**{f.name: class_hints[f.name] for f in dataclasses.fields(cls)}, "return": type(None)}


def _both(body: Callable[[Callable[[type], type]], type], **flags: bool) -> tuple[type, type]:
    """The class `body` makes, decorated by record and by dataclass with the same flags."""
    return body(record(**flags)), body(dataclasses.dataclass(**flags))


def _plain(deco: Callable[[type], type]) -> type:
    @deco
    class Plain:
        """A record."""

        a: str
        b: int = 0
        c: dict[str, str] = dataclasses.field(default_factory=dict)
        d: str = dataclasses.field(default="x", compare=False)
        e: str = dataclasses.field(default="y", repr=False)
        f: str = dataclasses.field(default="z", hash=False)
        kind: ClassVar[str] = "plain"

    return Plain


def _one_field(deco: Callable[[type], type]) -> type:
    @deco
    class One:
        a: str

    return One


def _own_eq(deco: Callable[[type], type]) -> type:
    @deco
    class OwnEq:
        a: int
        b: int = 0

        def __eq__(self, other: object) -> bool:
            return isinstance(other, OwnEq) and self.a == other.a

    return OwnEq


def _own_hash_and_repr(deco: Callable[[type], type]) -> type:
    @deco
    class OwnHash:
        a: int

        def __hash__(self) -> int:
            return 7

        def __repr__(self) -> str:
            return "own"

    return OwnHash


@pytest.mark.parametrize("flags", [{"frozen": True}, {"frozen": False}, {"frozen": False, "eq": False},
                                   {"frozen": True, "eq": False}, {"frozen": True, "order": True},
                                   {"frozen": False, "order": True}], ids=str)
@pytest.mark.parametrize("body", [_plain, _one_field, _own_eq, _own_hash_and_repr], ids=lambda b: b.__name__)
def test_the_same_class_body_behaves_alike_either_way(body: Callable[[Callable[[type], type]], type],
                                                       flags: dict[str, bool]) -> None:
    mine, reference = _both(body, **flags)
    _assert_like_the_dataclass(mine, reference)
    assert ("__hash__" in vars(mine)) == ("__hash__" in vars(reference))
    if body is _own_eq:
        assert mine(1, 2) == mine(1, 3)  # the class's own __eq__ is kept
    if body is _own_hash_and_repr:
        assert hash(mine(1)) == 7 and repr(mine(1)) == "own"
    if body is _plain:
        assert vars(mine)["kind"] == "plain" and "kind" not in {f.name for f in dataclasses.fields(mine)}
        assert mine.__doc__ == "A record."
    if flags.get("eq", True):  # this Python's dataclass semantics: a shared NaN, the same object
        nan = float("nan")
        assert (mine(nan) == mine(nan)) == (reference(nan) == reference(nan))
        same, ref_same = mine(nan), reference(nan)
        assert (same == same) == (ref_same == ref_same)
    if body is _one_field:  # no docstring: the dataclass's, from the signature
        assert mine.__doc__ == reference.__doc__ and str(mine.__doc__).startswith("One(a: ")


def test_frozen_refuses_new_attributes_and_deletes_as_the_dataclass_does() -> None:
    mine, reference = _both(_plain, frozen=True)
    for cls in (mine, reference):
        obj = cls("a")
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'other'"):
            obj.other = 1
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'a'"):
            del obj.a


def test_a_mutable_record_with_slots_has_no_dict_and_assigns() -> None:
    @record(frozen=False, slots=True)
    class Slotted:
        a: int
        b: list[int] = dataclasses.field(default_factory=list)

    s = Slotted(1)
    assert not hasattr(s, "__dict__") and Slotted.__slots__ == ("a", "b")
    s.a = 2
    assert s == Slotted(2, []) and _hash_of(Slotted) is None


def test_a_record_that_holds_itself_prints_without_recursing() -> None:
    @record(frozen=False)
    class Node:
        value: Any

    node = Node(None)
    node.value = node
    assert repr(node).endswith("Node(value=...)")


def test_the_hot_records_still_compare_and_hash_as_before() -> None:
    loc = SourceLoc("keys.yaml", 3)
    a = KeySpec("k", "qp", "questra", {"name": "k"}, loc, entry={"provider": "qp"})
    b = KeySpec("k", "qp", "questra", {"name": "k"}, loc, entry={"other": 1})
    assert a == b  # `entry` is not compared
    assert a != dataclasses.replace(a, attrs={"name": "other"})
    assert "entry" not in repr(a) and repr(a).startswith("KeySpec(address='k', provider='qp'")
    c = Change("k", Action.NOOP, "qp", "questra", remote_id="ak_1")
    assert c == Change(address="k", action=Action.NOOP, provider="qp", provider_type="questra", remote_id="ak_1")
    assert hash(c) == hash(Change("k", Action.NOOP, "qp", "questra", remote_id="ak_1"))
    assert repr(c).startswith("Change(address='k', action=<Action.NOOP: 'noop'>")
    given: dict[str, Any] = {}
    assert KeySpec("a", "qp", "questra", {}, loc, secret_inputs=given).secret_inputs is given
    assert KeySpec("a", "qp", "questra", {}, loc).secret_inputs is not KeySpec("b", "qp", "questra", {}, loc).secret_inputs


def test_what_record_would_not_reproduce_is_refused_by_name() -> None:
    class WithPostInit:
        x: int

        def __post_init__(self) -> None:
            pass

    class WithInitVar:
        x: int
        y: dataclasses.InitVar[int]

    class NotInInit:
        x: int
        y: int = dataclasses.field(default=0, init=False)

    class KeywordOnly:
        x: int = dataclasses.field(kw_only=True)

    class OwnSlots:
        __slots__ = ("x",)
        x: int

    class OwnSetattr:
        x: int

        def __setattr__(self, name: str, value: Any) -> None:
            pass

    class Clashing:
        self: int

    @dataclasses.dataclass(frozen=True)
    class Base:
        x: int

    class Derived(Base):
        y: int = 0

    for cls in (WithPostInit, WithInitVar, NotInInit, KeywordOnly, OwnSlots, OwnSetattr, Clashing, Derived):
        with pytest.raises(TypeError, match=rf"record: .*{cls.__name__}"):
            record(cls)

    class Plain:
        x: int

    with pytest.raises(TypeError, match="frozen with slots"):
        record(frozen=True, slots=True)(Plain)


def test_dict_init_is_for_frozen_records_and_builds_the_same_record() -> None:
    @record(dict_init=True)
    class Hot:
        a: int
        b: list[int] = dataclasses.field(default_factory=list)

    @record
    class Plain:
        a: int
        b: list[int] = dataclasses.field(default_factory=list)

    assert vars(Hot(1)) == vars(Plain(1)) == {"a": 1, "b": []}
    with pytest.raises(dataclasses.FrozenInstanceError):
        Hot(1).a = 2  # type: ignore[misc]

    class Mutable:
        a: int

    with pytest.raises(TypeError, match=r"record: .*Mutable is mutable: dict_init is for frozen records"):
        record(frozen=False, dict_init=True)(Mutable)


def test_order_compares_the_compared_fields_as_the_dataclass_does() -> None:
    mine, reference = _both(_plain, frozen=True, order=True)
    pairs = [("a", 1, "a", 2), ("b", 0, "a", 9), ("a", 1, "a", 1)]
    for a1, b1, a2, b2 in pairs:
        for op in ("__lt__", "__le__", "__gt__", "__ge__"):
            assert getattr(mine(a1, b1), op)(mine(a2, b2)) == getattr(reference(a1, b1), op)(reference(a2, b2))
    # `d` is not compared, `f` only left out of the hash: they order as the dataclass orders them
    assert (mine("a", d="1") < mine("a", d="2")) == (reference("a", d="1") < reference("a", d="2"))
    assert (mine("a", f="1") < mine("a", f="2")) == (reference("a", f="1") < reference("a", f="2"))
    assert mine("a").__lt__(reference("a")) is NotImplemented
    assert sorted([SourceLoc("b.yaml", 1), SourceLoc("a.yaml", 9), SourceLoc("a.yaml", 2)]) == [
        SourceLoc("a.yaml", 2), SourceLoc("a.yaml", 9), SourceLoc("b.yaml", 1)]

    class OwnLt:
        a: int

        def __lt__(self, other: object) -> bool:
            return True

    with pytest.raises(TypeError, match=r"record: .*OwnLt defines __lt__ itself"):
        record(order=True)(OwnLt)
    with pytest.raises(ValueError, match="eq must be true if order is true"):
        record(eq=False, order=True)(OwnLt)


def test_a_field_name_that_is_not_an_identifier_never_reaches_the_compiled_source() -> None:
    for name in ("a=0):\n  import os\n  def f(b", "class", "two words"):
        odd = type("Odd", (), {"__annotations__": {name: "int"}})
        with pytest.raises(TypeError, match=r"record: Odd field .* is not an identifier"):
            record(odd)


def _undocumented(deco: Callable[[type], type]) -> type:
    @deco
    class Bare:
        a: dict[str, int]
        b: int = 3
        c: tuple[str, ...] = ("x -> None",)
        d: list[str] = dataclasses.field(default_factory=list)

    return Bare


def _real_annotations(deco: Callable[[type], type]) -> type:
    """Annotations that are objects, not the strings this module's annotations are."""
    body = {"__annotations__": {"a": int, "b": dict[str, int], "c": typing.Optional[SourceLoc]},  # noqa: UP045
            "b": dataclasses.field(default_factory=dict), "c": None}
    return deco(type("Real", (), body))


def _own_init(deco: Callable[[type], type]) -> type:
    @deco
    class OwnInit:
        a: str

        def __init__(self, text: str, times: int = 2) -> None:
            object.__setattr__(self, "a", text * times)

    return OwnInit


def _own_new(deco: Callable[[type], type]) -> type:
    @deco
    class OwnNew:
        a: str

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return super().__new__(cls)

    return OwnNew


@pytest.mark.parametrize("body", [_undocumented, _real_annotations, _own_init, _own_new], ids=lambda b: b.__name__)
def test_a_record_without_a_docstring_gets_the_dataclass_s_text(body: Callable[[Callable[[type], type]], type]) -> None:
    """record writes the text from the fields (not inspect.signature) when the class is made by its
    own __init__: the same text, also for non-string annotations, defaults, factories, and a default
    whose repr holds ` -> None` (the dataclass cuts that too); a class's own __init__ or __new__ is
    what inspect reads, so it is read there."""
    mine, reference = _both(body, frozen=True)
    assert mine.__doc__ == reference.__doc__
    assert str(mine.__doc__).startswith(mine.__name__ + "(")


def test_the_prebuilt_inits_hold_the_shape_of_every_record_in_keyform() -> None:
    """`keyform/_record_inits.py` (the `__init__` code of each shape, imported from its .pyc rather than
    compiled at start-up) is what `python -m keyform.records` writes for keyform's records as they are
    now: a record of a new shape still works (its code is compiled), but costs every start-up that."""
    shapes = {records.shape_of(cls) for cls in RECORDS}
    assert None not in shapes
    written = Path(records.__file__).with_name("_record_inits.py").read_text()
    assert written == records.prebuilt_text(s for s in shapes if s is not None), \
        "keyform/_record_inits.py is stale: run `python -m keyform.records`"


def test_a_prebuilt_init_is_the_code_compiling_its_source_makes() -> None:
    """Same bytecode, names, constants, lines and columns as compiling the shape's source alone, so
    a record's __init__ is the same whichever way its code came."""
    from keyform._record_inits import PREBUILT

    assert PREBUILT
    for shape in PREBUILT:
        module = compile(records._template_source(shape), "<record>", "exec")
        make = next(c for c in module.co_consts if isinstance(c, types.CodeType))
        compiled = next(c for c in make.co_consts if isinstance(c, types.CodeType))
        prebuilt = records._template(*shape)
        assert prebuilt == compiled, shape
        assert (prebuilt.co_qualname, prebuilt.co_filename, prebuilt.co_firstlineno) == \
               (compiled.co_qualname, compiled.co_filename, compiled.co_firstlineno)
        assert list(prebuilt.co_positions()) == list(compiled.co_positions()), shape
