"""The type registry (keyform.typeregistry) and plug-in loading: every type is one object found by
name; plug-ins come from the `keyform.providers` / `keyform.sinks` entry points; a broken,
mismatched or name-squatting plug-in is reported in one line (never a traceback) and never
replaces a built-in; `keyform providers` lists everything with its origin."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyform import typeregistry
from keyform.cli import main
from keyform.errors import KeyformError
from keyform.kinds import kind
from keyform.manifest import load_workspace
from keyform.typeregistry import BUILTIN_PROVIDERS, BUILTIN_SINKS, provider_type, sink_type

PLUGIN_TYPES = '''
from keyform.typeregistry import ProviderType, SinkType
PROVIDER = ProviderType(name="fake", open=lambda *a, **k: None, returns_secret=True, attributes=("label", "tier"),
                        updatable=frozenset({"tier"}), default_base_url="https://fake.example",
                        options_schema={"required": ["region"], "properties": {"region": {"enum": ["eu", "us"]}}},
                        key_schema={"properties": {"label": {"type": "string"}, "tier": {"enum": [1, 2]}}},
                        description="a fake\\x1b[31m provider")
SINK = SinkType(name="fake-sink", required="path", open=lambda c: None, path_options=("path",),
                options_schema={"required": ["path"], "properties": {"path": {"type": "string"}}})
'''


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """`plugins(dist, version, entry_points_text, module_source)`: a distribution on sys.path, and a
    fresh registry that has not read the entry points yet."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(typeregistry, "_REG", typeregistry._Registry())
    modules: list[str] = []

    def add(dist: str, version: str, entry_points: str, module: str, source: str) -> None:
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(entry_points)
        (site / f"{module}.py").write_text(source)
        modules.append(module)

    yield add
    for module in modules:
        sys.modules.pop(module, None)


def manifest(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keyform.yaml"
    path.write_text(text)
    return path


FAKE = ("[keyform.providers]\nfake = fakeplug:PROVIDER\n\n[keyform.sinks]\nfake-sink = fakeplug:SINK\n")


def test_each_builtin_type_is_one_object_found_by_name() -> None:
    for name in BUILTIN_PROVIDERS:
        t = provider_type(name)
        assert t.name == name and t.origin == "built-in" and kind(name) is t
    for name in BUILTIN_SINKS:
        assert sink_type(name).name == name
    assert provider_type("textql").updatable == {"description", "hosts", "headers", "query_params", "auth_type"}
    assert provider_type("questra").default_base_url == "https://api.questra.ai"
    with pytest.raises(KeyError):
        provider_type("nope")


def test_a_plugin_type_is_loaded_by_name_and_its_schemas_check_the_manifest(
        plugins: Callable[..., None], tmp_path: Path) -> None:
    plugins("keyform-fake", "2.0.1", FAKE, "fakeplug", PLUGIN_TYPES)
    good = manifest(tmp_path, "version: 1\n"
                    "providers:\n  f: {type: fake, token: {env: T}, region: eu}\n"
                    "sinks:\n  s: {type: fake-sink, path: out/x}\n"
                    "keys:\n  k: {provider: f, label: hello, tier: 2, sink: s}\n")
    ws = load_workspace([good])
    assert ws.providers["f"].options == {"region": "eu"} and ws.providers["f"].base_url == "https://fake.example"
    assert ws.keys["k"].attrs == {"label": "hello", "tier": 2}
    assert ws.sinks["s"].options["path"] == str(tmp_path / "out" / "x")  # a path option, made absolute
    assert provider_type("fake").origin == "keyform-fake 2.0.1"
    bad = manifest(tmp_path, "version: 1\n"
                   "providers:\n  f: {type: fake, token: {env: T}, region: mars, colour: red}\n"
                   "sinks:\n  s: {type: fake-sink}\n"
                   "keys:\n  k: {provider: f, label: hello, tier: 3, sink: s}\n")
    with pytest.raises(KeyformError) as exc:
        load_workspace([bad])
    text = str(exc.value)
    assert "keyform.yaml:3: providers.f.region: 'mars' is not one of: eu, us" in text
    assert "keyform.yaml:3: providers.f: unknown field 'colour'" in text
    assert "keyform.yaml:5: sinks.s: missing required field 'path'" in text
    assert "keyform.yaml:7: keys.k.tier: 3 is not one of: 1, 2" in text


def test_a_key_of_a_plugin_provider_declared_in_another_file_is_checked_by_its_type(
        plugins: Callable[..., None], tmp_path: Path) -> None:
    plugins("keyform-fake", "2.0.1", FAKE, "fakeplug", PLUGIN_TYPES)
    (tmp_path / "a.yaml").write_text("version: 1\nproviders:\n  f: {type: fake, token: {env: T}, region: us}\n")
    (tmp_path / "b.yaml").write_text("version: 1\nsinks:\n  s: {type: fake-sink, path: p}\n"
                                     "keys:\n  k: {provider: f, label: x, sink: s, nmae: typo}\n")
    with pytest.raises(KeyformError, match=r"b.yaml:5: keys.k: unknown field 'nmae'"):
        load_workspace([tmp_path])


def test_providers_with_manifests_lists_the_rest_definitions_they_use(tmp_path: Path) -> None:
    """The help and docs said `keyform providers` lists definitions; it had no way to: it read no
    manifest. With -f it lists each REST definition the manifests' instances use, by file."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "examples" / "providers" / "questra.yaml", tmp_path / "questra.yaml")
    manifest = tmp_path / "keyform.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n"
        "  qa: {type: rest, definition: questra.yaml, base_url: 'http://127.0.0.1:1', token: {env: QT}, org_id: a}\n"
        "  qb: {type: rest, definition: questra.yaml, base_url: 'http://127.0.0.1:1', token: {env: QT}, org_id: b}\n")
    res = CliRunner().invoke(main, ["providers", "-f", str(manifest)])
    assert res.exit_code == 0, res.output
    assert f"  questra  {tmp_path / 'questra.yaml'}  REST definition (type: rest), used by qa, qb" in res.output \
        or "questra.yaml  REST definition (type: rest), used by qa, qb" in res.output, res.output
    listed = json.loads(CliRunner().invoke(main, ["providers", "-f", str(manifest), "--format", "json"]).output)
    assert [t["origin"].endswith("questra.yaml") for t in listed["types"] if t["description"].startswith("REST")] \
        == [True]
    manifest.write_text("version: 1\nproviders:\n  qa: {type: rest}\n")
    res = CliRunner().invoke(main, ["providers", "-f", str(manifest)])
    assert res.exit_code == 1 and "keyform.yaml:3" in res.output, res.output


def test_providers_lists_every_type_with_its_origin(plugins: Callable[..., None]) -> None:
    plugins("keyform-fake", "2.0.1", FAKE, "fakeplug", PLUGIN_TYPES)
    res = CliRunner().invoke(main, ["providers"])
    assert res.exit_code == 0, res.output
    rows = {line.split()[0]: line for line in res.output.splitlines() if line.startswith("  ")}
    assert set(rows) == {*BUILTIN_PROVIDERS, *BUILTIN_SINKS, "fake", "fake-sink"}
    assert "keyform-fake 2.0.1" in rows["fake"] and "built-in" in rows["questra"]
    assert "\x1b" not in res.output  # a plug-in's text cannot drive the terminal
    listed = json.loads(CliRunner().invoke(main, ["providers", "--format", "json"]).output)
    assert {(t["kind"], t["name"], t["origin"]) for t in listed["types"]} >= {
        ("provider", "fake", "keyform-fake 2.0.1"), ("sink", "fake-sink", "keyform-fake 2.0.1"),
        ("provider", "questra", "built-in"), ("sink", "file", "built-in")}


def test_a_broken_plugin_is_one_line_in_providers_and_at_the_manifest_line(
        plugins: Callable[..., None], tmp_path: Path) -> None:
    plugins("keyform-broken", "0.1", "[keyform.providers]\nbroken = brokenplug:PROVIDER\n", "brokenplug",
            "raise ImportError('needs libfoo')\n")
    res = CliRunner().invoke(main, ["providers"])
    assert res.exit_code == 1
    assert "keyform-broken 0.1  error: provider type 'broken' from keyform-broken 0.1 failed to load: " \
           "ImportError: needs libfoo" in res.output
    assert "questra" in res.output and "Traceback" not in res.output
    path = manifest(tmp_path, "version: 1\nproviders:\n  b: {type: broken, token: {env: T}}\n")
    res = CliRunner().invoke(main, ["validate", "-f", str(path)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "keyform.yaml:3: providers.b.type: provider type 'broken' from keyform-broken 0.1 failed to load" in res.output


@pytest.mark.parametrize(("source", "problem"), [
    ("from keyform.typeregistry import ProviderType\n"
     "PROVIDER = ProviderType(name='odd', open=print, returns_secret=False, attributes=(), interface=2)\n",
     "implements interface version 2; this keyform implements version 1"),
    ("PROVIDER = {'name': 'odd'}\n", "entry point oddplug:PROVIDER is not a keyform.typeregistry.ProviderType"),
    ("from keyform.typeregistry import ProviderType\n"
     "PROVIDER = ProviderType(name='other', open=print, returns_secret=False, attributes=())\n",
     "the object is named 'other'"),
])
def test_a_plugin_of_another_interface_or_shape_is_refused(plugins: Callable[..., None], source: str,
                                                          problem: str) -> None:
    plugins("keyform-odd", "1.0", "[keyform.providers]\nodd = oddplug:PROVIDER\n", "oddplug", source)
    with pytest.raises(typeregistry.TypeLoadError, match=problem):
        provider_type("odd")


@pytest.mark.parametrize("declared", ['attributes=("name", "sink")', 'attributes=("name",), secret_inputs=("provider",)',
                                      'attributes=("name",), key_schema={"properties": {"lifecycle": {}}}'])
def test_a_plugin_attribute_named_like_a_key_field_is_refused(plugins: Callable[..., None], declared: str) -> None:
    """Found by a review (finding 5): a plug-in attribute `sink` (or `provider`, `lifecycle`, ...)
    loaded, and keyform then sent the key's own sink name to the API as that attribute's value."""
    plugins("keyform-clash", "1.0", "[keyform.providers]\nclash = clashplug:PROVIDER\n", "clashplug",
            "from keyform.typeregistry import ProviderType\n"
            f"PROVIDER = ProviderType(name='clash', open=print, returns_secret=True, {declared})\n")
    with pytest.raises(typeregistry.TypeLoadError, match=r"declares the key attribute '(sink|provider|lifecycle)', "
                       "a field every key has"):
        provider_type("clash")


def test_an_invalid_key_schema_names_the_plugin_type(plugins: Callable[..., None], tmp_path: Path) -> None:
    """Found by a review (finding 11): the message read "the None type's own schema" (a key entry
    has `provider`, not `type`)."""
    plugins("keyform-fake", "2.0.1", FAKE, "fakeplug",
            PLUGIN_TYPES.replace('"label": {"type": "string"}', '"label": {"type": "strnig"}'))
    path = manifest(tmp_path, "version: 1\n"
                    "providers:\n  f: {type: fake, token: {env: T}, region: eu}\n"
                    "sinks:\n  s: {type: fake-sink, path: out/x}\n"
                    "keys:\n  k: {provider: f, label: hello, sink: s}\n")
    with pytest.raises(KeyformError, match=r"keyform.yaml:7: keys.k: the fake type's own schema is invalid"):
        load_workspace([path])


def test_a_plugin_cannot_replace_a_builtin_type(plugins: Callable[..., None]) -> None:
    plugins("keyform-evil", "6.6.6", "[keyform.providers]\nquestra = evilplug:PROVIDER\n", "evilplug",
            "raise SystemExit('must never be imported')\n")
    assert provider_type("questra").origin == "built-in"
    res = CliRunner().invoke(main, ["providers"])
    assert "keyform-evil 6.6.6 registers provider type 'questra', which is built in; the built-in type is used" \
           in res.output
    assert "evilplug" not in sys.modules


@pytest.mark.parametrize("name", ["rest", "rest:questra"])
def test_a_plugin_cannot_take_a_name_of_the_rest_provider(plugins: Callable[..., None], name: str) -> None:
    """`rest:NAME` types come from definition files (a plug-in named so was silently replaced by
    a definition of that name); the entry point is refused and never imported."""
    plugins("keyform-sly", "1.0", f'[keyform.providers]\n{name} = slyplug:PROVIDER\n', "slyplug",
            "raise SystemExit('must never be imported')\n")
    res = CliRunner().invoke(main, ["providers"])
    assert f"keyform-sly 1.0 registers provider type {name!r}; `rest` and `rest:NAME` belong to `type: rest` " \
           "definition files, so it is not used" in res.output
    with pytest.raises(KeyError):
        provider_type("rest:questra" if name != "rest" else "rest:nothing")
    assert "slyplug" not in sys.modules


def test_an_unknown_type_is_named_with_the_known_ones(tmp_path: Path) -> None:
    path = manifest(tmp_path, "version: 1\nproviders:\n  x: {type: nosuch, token: {env: T}}\n")
    with pytest.raises(KeyformError, match=r"keyform.yaml:3: providers.x.type: 'nosuch' is not one of: questra, textql"):
        load_workspace([path])


def test_a_new_builtin_type_is_one_module_and_one_registry_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/architecture.md's recipe, followed literally: a module defining TYPE, one line in
    BUILTIN_PROVIDERS / BUILTIN_SINKS, and nothing else changed (no schema edit)."""
    (tmp_path / "newtype_mod.py").write_text(PLUGIN_TYPES.replace("PROVIDER =", "TYPE =").split("SINK =")[0])
    (tmp_path / "newsink_mod.py").write_text(
        "from keyform.typeregistry import SinkType\n" + "TYPE =" + PLUGIN_TYPES.split("SINK =")[1])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(typeregistry, "_REG", typeregistry._Registry())
    monkeypatch.setitem(typeregistry.BUILTIN_PROVIDERS, "fake", "newtype_mod")
    monkeypatch.setitem(typeregistry.BUILTIN_SINKS, "fake-sink", "newsink_mod")
    path = manifest(tmp_path, "version: 1\nproviders:\n  f: {type: fake, token: {env: T}, region: us}\n"
                    "sinks:\n  s: {type: fake-sink, path: p}\nkeys:\n  k: {provider: f, tier: 1, sink: s}\n")
    ws = load_workspace([path])
    assert ws.keys["k"].attrs == {"label": None, "tier": 1} and provider_type("fake").origin == "built-in"
    res = CliRunner().invoke(main, ["providers"])
    assert any(line.split()[:2] == ["fake", "built-in"] for line in res.output.splitlines() if line.startswith("  "))
    sys.modules.pop("newtype_mod", None)
    sys.modules.pop("newsink_mod", None)


def test_a_type_the_state_names_but_no_package_provides_is_a_clean_error() -> None:
    with pytest.raises(KeyformError, match=r"provider type 'uninstalled' is not available: neither built in nor "
                                           r"installed \(`keyform providers` lists the types"):
        kind("uninstalled")


def test_a_plugin_may_build_on_a_builtin_type_while_it_loads(plugins: Callable[..., None]) -> None:
    plugins("keyform-wrap", "1.0", "[keyform.providers]\nwrapped = wrapplug:PROVIDER\n", "wrapplug",
            "from dataclasses import replace\nfrom keyform.typeregistry import provider_type\n"
            "PROVIDER = replace(provider_type('questra'), name='wrapped', description='questra, wrapped')\n")
    wrapped = provider_type("wrapped")
    assert wrapped.origin == "keyform-wrap 1.0" and wrapped.attributes == ("name",)


def test_two_packages_claiming_one_name_are_both_refused(plugins: Callable[..., None], tmp_path: Path) -> None:
    plugins("keyform-fake", "2.0.1", FAKE, "fakeplug", PLUGIN_TYPES)
    plugins("keyform-copycat", "0.0.1", "[keyform.providers]\nfake = copycat:PROVIDER\n", "copycat",
            "raise SystemExit('must never be imported')\n")
    res = CliRunner().invoke(main, ["providers"])
    assert res.exit_code == 1
    assert "keyform-copycat 0.0.1 and keyform-fake 2.0.1 all register provider type 'fake'; none is used" in res.output
    assert "copycat" not in sys.modules and "fake-sink" in res.output  # the uncontested sink is still there
    path = manifest(tmp_path, "version: 1\nproviders:\n  f: {type: fake, token: {env: T}, region: eu}\n")
    with pytest.raises(KeyformError, match=r"keyform.yaml:3: providers.f.type: 'fake' is not one of: questra, textql"):
        load_workspace([path])


def test_a_plugin_that_exits_while_loading_is_a_problem_not_an_exit(plugins: Callable[..., None]) -> None:
    plugins("keyform-quitter", "1.0", "[keyform.sinks]\nquitter = quitplug:SINK\n", "quitplug",
            "raise SystemExit(3)\n")
    res = CliRunner().invoke(main, ["providers"])
    assert res.exit_code == 1 and "sink type 'quitter' from keyform-quitter 1.0 failed to load: SystemExit: 3" in res.output
    assert "dotenv" in res.output


def test_a_plugin_type_may_list_its_attributes_in_a_list(plugins: Callable[..., None], tmp_path: Path) -> None:
    """`attributes` and `secret_inputs` are documented as tuples; a plug-in that gives lists still loads."""
    plugins("keyform-fake", "2.0.1", FAKE, "fakeplug",
            PLUGIN_TYPES.replace('attributes=("label", "tier")', 'attributes=["label", "tier"]'))
    good = manifest(tmp_path, "version: 1\n"
                    "providers:\n  f: {type: fake, token: {env: T}, region: eu}\n"
                    "sinks:\n  s: {type: fake-sink, path: out/x}\n"
                    "keys:\n  k: {provider: f, label: hello, tier: 2, sink: s}\n")
    assert load_workspace([good]).keys["k"].attrs == {"label": "hello", "tier": 2}
