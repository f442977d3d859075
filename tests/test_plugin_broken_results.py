"""Found by an adversarial pass (stop 42): what a plug-in's calls *return* was never checked.

- `list()` giving a key's id as a number (an API with numbered keys: `1`, where `create()` gave
  `"1"`) made the key look deleted: the plan said `will be created [was 1, deleted outside
  keyform]`, and the apply made a second key, leaving the first live and untracked.
- `list()` giving a generator or dicts, `create()` giving a dict, `open()` giving None: keyform's
  `internal error (AttributeError)` or a bare `AttributeError: 'dict' object has no attribute
  'key'`, naming neither the plug-in nor the call.
- The conformance kit passed a provider whose `list()` returns a generator, or whose `create()`
  returns the secret as bytes, though keyform fails every run of such a type.

Each is questra with one call broken (a wrapper registered as a type), against the emulator on
127.0.0.1, through the real CLI in process."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.project import Project
from keyform.emulator import Emulator, EmulatorConfig
from keyform.remote import CreateRequest, CreateResult, Provider
from keyform.testing import CANARY, ConformanceTarget, ProviderConformance
from keyform.testing.builtin import EmulatorFaults
from keyform.typeregistry import provider_type, register, unregister


class _Wrapped:
    """questra, all but what a subclass breaks."""

    def __init__(self, inner: Provider) -> None:
        self.inner, self.name = inner, inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class NumberedIds(_Wrapped):
    """An API with numbered keys: create gives the number as a string; list gives it as it came, a
    number, once `as_numbers` is set (a plug-in's bug: before, it listed `str(number)`)."""

    as_numbers = False
    numbers: dict[str, int] = {}  # the emulator's id → its number (shared by every instance)
    counter = itertools.count(1)

    def create(self, request: CreateRequest) -> CreateResult:
        created = self.inner.create(request)
        self.numbers[created.key.id] = n = next(self.counter)
        return replace(created, key=replace(created.key, id=str(n)))

    def list(self) -> Any:
        return [replace(k, id=n if self.as_numbers else str(n))  # type: ignore[arg-type]  # the bug
                for k in self.inner.list() or [] if (n := self.numbers.get(k.id)) is not None]


class GeneratorList(_Wrapped):
    def list(self) -> Any:
        return (k for k in self.inner.list() or [])


class DictCreate(_Wrapped):
    def create(self, request: CreateRequest) -> Any:
        created = self.inner.create(request)
        return {"key": created.key, "secret": created.secret}


class BytesSecret(_Wrapped):
    def create(self, request: CreateRequest) -> Any:
        created = self.inner.create(request)
        return replace(created, secret=(created.secret or "").encode())  # type: ignore[arg-type]  # the bug


@contextmanager
def _registered(name: str, wrap: Callable[[Provider], Any]) -> Iterator[None]:
    """questra behind `wrap`, as the plug-in type `name` (its option `org` is questra's org_id)."""
    inner = provider_type("questra")

    def _open(config: Any, token: str, org: Any, **kw: Any) -> Any:
        return wrap(inner.open(config, token, config.options["org"], **kw))

    register(replace(inner, name=name, open=_open, options_schema={"required": ["org"], "properties": {
        "org": {"type": "string"}}}, key_schema={"properties": {"name": {"type": "string"}}}), origin="kf-broken 1.0")
    try:
        yield
    finally:
        unregister(provider_type(name))


def _project(tmp_path: Path, emulator: Emulator, name: str) -> Project:
    project = Project(tmp_path / "p", emulator.url)
    project._one_provider(f"  pp: {{type: {name}, base_url: \"{{url}}\", token: {{env: QUESTRA_TOKEN}}, "
                          "org: \"{org}\"}\n", "k1: {provider: pp, name: one}\n")
    return project


def test_a_listed_id_that_is_a_number_is_an_error_not_a_key_deleted_outside(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with _registered("numbered", NumberedIds):
        project = _project(tmp_path, emulator, "numbered")
        first = project.run("apply", "--auto-approve")
        assert first.exit_code == 0, first.tail()
        assert project.remote_id("k1").isdigit()
        monkeypatch.setattr(NumberedIds, "as_numbers", True)
        plan = project.run("plan")
    assert "deleted outside keyform" not in plan.output, plan.output
    assert plan.exit_code == 1, plan.output
    assert ("pp: list: the provider type 'numbered' (kf-broken 1.0) broke the provider interface: item 0 has an "
            "id that is an int, not a non-empty string (docs/providers.md)") in plan.output, plan.output


@pytest.mark.parametrize(("wrap", "command", "said"), [
    (GeneratorList, "plan", "pp: list: the provider type 'broken' (kf-broken 1.0) broke the provider interface: it "
                            "returned a generator, not a list of RemoteKey"),
    (DictCreate, "apply", "pp: create 'k1': the provider type 'broken' (kf-broken 1.0) broke the provider interface: "
                          "it returned a dict, not a keyform.remote.CreateResult (docs/providers.md); the key may "
                          "exist remotely"),
    (lambda inner: None, "plan", "pp: open: the provider type 'broken' (kf-broken 1.0) broke the provider interface: "
                                 "its open() returned None"),
])
def test_a_result_of_the_wrong_type_is_one_line_naming_the_plugin(tmp_path: Path, emulator: Emulator, wrap: Any,
                                                                   command: str, said: str) -> None:
    with _registered("broken", wrap):
        project = _project(tmp_path, emulator, "broken")
        result = project.run(command, *(["--auto-approve"] if command == "apply" else []))
    assert result.exit_code == 1, result.output
    assert said in result.output, result.output
    assert "internal error" not in result.output and "AttributeError" not in result.output


@pytest.mark.parametrize(("wrap", "said"), [
    (GeneratorList, r"list\(\) broke the provider interface: it returned a generator"),
    (BytesSecret, r"create\(\) broke the provider interface: its secret is a bytes, not a string"),
])
def test_the_kit_fails_a_provider_whose_results_break_the_interface(wrap: Any, said: str) -> None:
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0)).start()
    inner = provider_type("questra")
    t = replace(inner, name="kit-broken", open=lambda config, token, org, **kw: wrap(inner.open(config, token, org,
                                                                                                **kw)))
    register(t, origin="test")
    try:
        target = ConformanceTarget(provider_type=t.name, base_url=emu.url, token=f"tok-{CANARY}",
                                   rejected_token="no", faults=EmulatorFaults(emu.url),
                                   provider_options={"org_id": "org_kit"}, key_fields=lambda label: {"name": label})

        class Log:
            text = ""

        with pytest.raises(pytest.fail.Exception, match=said):
            ProviderConformance().test_create_list_update_delete(target, Log())
    finally:
        unregister(t)
        emu.stop()




class ListedTwiceAlike(_Wrapped):
    """A listing whose page boundary moved: the same key, alike, on two pages."""

    def list(self) -> Any:
        keys = list(self.inner.list() or [])
        return keys + keys[:1]


def test_a_key_listed_twice_alike_is_no_broken_result(tmp_path: Path, emulator: Emulator) -> None:
    """Review s42: `check_listing` refused any id listed twice, though `refresh.keys_by_id` takes
    the same key twice as harmless (a page boundary that moved between two page requests): every
    plan of such a plug-in failed with "broke the provider interface"."""
    with _registered("twice", ListedTwiceAlike):
        project = _project(tmp_path, emulator, "twice")
        first = project.run("apply", "--auto-approve")
        assert first.exit_code == 0, first.tail()
        plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "broke the provider interface" not in plan.output
