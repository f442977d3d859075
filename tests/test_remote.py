"""RemoteKey's `__init__` (`records.record`'s) takes what the one dataclass would generate takes."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from keyform.remote import RemoteKey


def test_init_takes_every_field_with_its_default_in_order() -> None:
    params = list(inspect.signature(RemoteKey).parameters.values())
    fields = dataclasses.fields(RemoteKey)
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]
    assert all(f.default_factory is dataclasses.MISSING for f in fields)


def test_init_sets_every_field_and_the_key_stays_frozen() -> None:
    values: dict[str, Any] = {f.name: object() for f in dataclasses.fields(RemoteKey)}
    key = RemoteKey(**values)
    assert vars(key) == values and list(vars(key)) == list(values)
    assert RemoteKey("k", {}) == RemoteKey(id="k", attrs={})
    assert dataclasses.replace(RemoteKey("k", {}), revoked=True).revoked is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.id = "other"  # type: ignore[misc]
    assert repr(RemoteKey("k", {})).startswith("RemoteKey(id='k', attrs={}, created_at=None")
