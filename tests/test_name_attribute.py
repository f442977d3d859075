"""The attribute that names a key is the provider type's own data (`ProviderType.name_attribute`), so
a new provider type needs no table in policy.py or report.py: a policy's `name_pattern` and the
report's name column read it through `keyform.kinds.name_attribute`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from keyform.errors import SourceLoc
from keyform.kinds import name_attribute
from keyform.model import KeySpec
from keyform.policy import KeyFacts, _check_name
from keyform.report import _name
from keyform.typeregistry import ProviderType, provider_type, register, unregister


@pytest.fixture
def titled() -> Iterator[ProviderType]:
    t = replace(provider_type("questra"), name="titled", name_attribute="title")
    register(t, origin="test")
    yield t
    unregister(t)


def test_each_type_names_its_own_attribute(titled: ProviderType) -> None:
    assert name_attribute("questra") == "name"
    assert name_attribute("textql") == "description"
    assert name_attribute("titled") == "title"
    assert name_attribute("no-such-type") == "name"  # a type the state names but nothing provides


def test_report_and_policy_read_the_types_attribute(titled: ProviderType) -> None:
    assert _name("titled", {"title": "Deploy bot", "name": "other"}) == "Deploy bot"
    assert _name("textql", {"description": "shared"}) == "shared"
    assert _name("questra", {"name": "svc"}) == "svc"


def test_name_pattern_matches_the_types_attribute(titled: ProviderType) -> None:
    spec = KeySpec("deploy", "acme", "titled", {"title": "team-deploy", "name": "Deploy"}, SourceLoc("keyform.yaml", 7))
    facts = KeyFacts("deploy", "acme", "titled", datetime(2026, 6, 1, tzinfo=timezone.utc), spec=spec)
    assert _check_name(re.compile("team-.*"), facts) is None
    assert _check_name(re.compile("Deploy"), facts) == "title 'team-deploy' does not match 'Deploy'"
