"""The hot records whose `__init__` is `records.direct_init`'s (a frozen dataclass's generated one
sets each field through `object.__setattr__`): each takes the parameters, defaults and gives the
fields the generated one would, and stays frozen. The reference is the generated `__init__` of a
dataclass made from the very same fields. `direct_init` refuses what it does not reproduce."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from keyform.errors import SourceLoc
from keyform.manifest.sources import Declaration
from keyform.model import KeySpec, SinkTarget
from keyform.plan import Action, Change
from keyform.records import direct_init
from keyform.remote import RemoteKey
from keyform.report import ReportRow

RECORDS = [RemoteKey, KeySpec, Change, Declaration, SinkTarget, ReportRow]


def _generated(cls: type) -> type:
    """A frozen dataclass with `cls`'s fields (defaults and factories included), generated `__init__`."""
    specs = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory,
                                                 compare=f.compare, repr=f.repr))
             for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(f"Generated{cls.__name__}", specs, frozen=True)


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_init_takes_every_field_in_order_with_the_same_defaults(cls: type) -> None:
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    given = {name: object() for name in required}
    mine, reference = cls(**given), _generated(cls)(**given)
    assert list(vars(mine)) == list(vars(reference))
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:  # a new value each time, as the factory makes it
            assert getattr(mine, f.name) == f.default_factory() and getattr(mine, f.name) is not getattr(
                cls(**given), f.name)
        else:
            assert getattr(mine, f.name) == getattr(reference, f.name)


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_every_field_given_is_kept_as_given_and_the_record_stays_frozen(cls: type) -> None:
    values: dict[str, Any] = {f.name: object() for f in dataclasses.fields(cls)}
    record = cls(**values)
    assert vars(record) == vars(_generated(cls)(**values)) == values and list(vars(record)) == list(values)
    first = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, first, "other")
    assert getattr(dataclasses.replace(record, **{first: "other"}), first) == "other"


def test_equality_and_repr_are_still_the_generated_ones() -> None:
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


def test_a_factory_default_is_called_per_record_and_an_explicit_value_kept() -> None:
    loc = SourceLoc("keys.yaml", 3)
    a, b = KeySpec("a", "qp", "questra", {}, loc), KeySpec("b", "qp", "questra", {}, loc)
    assert a.secret_inputs == {} and a.secret_inputs is not b.secret_inputs and a.entry is not b.entry
    given: dict[str, Any] = {}
    assert KeySpec("a", "qp", "questra", {}, loc, secret_inputs=given).secret_inputs is given


def test_what_direct_init_would_not_reproduce_is_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class WithPostInit:
        x: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True)
    class NotInInit:
        x: int
        y: int = dataclasses.field(default=0, init=False)

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class KeywordOnly:
        x: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        x: int

    class NotADataclass:
        pass

    for cls in (WithPostInit, NotInInit, KeywordOnly, Slotted, NotADataclass):
        with pytest.raises(TypeError, match="direct_init"):
            direct_init(cls)
