"""Manifest loading, happy paths: what a valid set of manifest files turns into."""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from keyform.errors import KeyformError, SourceLoc
from keyform.manifest import load_workspace
from keyform.model import EnvRef, FileRef, SecretOfRef, SinkTarget

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)

PROVIDERS = """\
version: 1
providers:
  questra-prod:
    type: questra
    token: {env: QUESTRA_TOKEN}
    org_id: org_123
  textql:
    type: textql
    token: {file: secrets/textql.token}
sinks:
  dev-env:
    type: dotenv
    path: .secrets/prod.env
defaults:
  sink: dev-env
"""

KEYS = """\
version: 1
keys:
  ci-bot:
    provider: questra-prod
    name: CI bot
    expires_in: 90d
    rotation: {before_expiry: 14d, max_age: 60d, grace: 24h}
  ana-questra:
    provider: textql
    description: Questra access for Ana
    hosts: [api.questra.ai]
    headers: {X-Org-Id: org_123, X-Api-Key: {secret_of: ci-bot}}
    api_provider: questra
    auth_value: {env: ANA_TOKEN}
    lifecycle: {prevent_destroy: true}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def big_manifest(path: Path, keys: int) -> Path:
    """A manifest with `keys` keys, half questra (with rotation), half textql (with secret refs)."""
    lines = ["version: 1", "providers:", "  q: {type: questra, token: {env: QT}, org_id: org_1}",
             "  t: {type: textql, token: {env: TT}}", "sinks:", "  s: {type: dotenv, path: out.env}",
             "defaults: {sink: s}", "keys:"]
    for i in range(keys // 2):
        lines += [f"  q-{i}:", "    provider: q", f"    name: Q key {i}", "    expires_in: 90d",
                  "    rotation: {before_expiry: 14d, grace: 1h}"]
        lines += [f"  t-{i}:", "    provider: t", "    description: d", "    hosts: [api.questra.ai]",
                  "    headers: {X-Org: o, X-K: {env: K}}", f"    auth_value: {{secret_of: q-{i}}}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_files_merge_into_one_workspace(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", PROVIDERS)
    write(tmp_path / "b.yaml", KEYS)
    ws = load_workspace(["a.yaml", "b.yaml"], cwd=tmp_path, now=NOW)
    assert ws.files == ("a.yaml", "b.yaml")
    assert set(ws.providers) == {"questra-prod", "textql"}
    assert set(ws.keys) == {"ci-bot", "ana-questra"}
    assert ws.default_sink == "dev-env"
    assert ws.keys["ci-bot"].loc == SourceLoc("b.yaml", 3)
    assert ws.providers["textql"].loc == SourceLoc("a.yaml", 7)


def test_a_directory_contributes_its_yaml_files_sorted(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "2-keys.yml", KEYS)
    write(tmp_path / "conf" / "1-providers.yaml", PROVIDERS)
    write(tmp_path / "conf" / "notes.txt", "not a manifest")
    write(tmp_path / "conf" / "nested" / "ignored.yaml", "this: is not read")
    ws = load_workspace(["conf"], cwd=tmp_path, now=NOW)
    assert ws.files == ("conf/1-providers.yaml", "conf/2-keys.yml")


def test_default_manifest_is_keyform_yaml_in_cwd(tmp_path: Path) -> None:
    write(tmp_path / "keyform.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    ws = load_workspace(cwd=tmp_path, now=NOW)
    assert ws.files == ("keyform.yaml",)
    assert ws.state_path == str(tmp_path / "keyform.state.json")


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyformError, match=r"nope\.yaml: no such file or directory"):
        load_workspace(["nope.yaml"], cwd=tmp_path)


def test_digest_covers_names_and_bytes(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", PROVIDERS)
    write(tmp_path / "b.yaml", KEYS)
    first = load_workspace(["b.yaml", "a.yaml"], cwd=tmp_path, now=NOW).digest
    assert first == load_workspace(["a.yaml", "b.yaml"], cwd=tmp_path, now=NOW).digest
    assert len(first) == 64 and int(first, 16) >= 0
    write(tmp_path / "b.yaml", KEYS.replace("CI bot", "CI robot"))
    assert load_workspace(["a.yaml", "b.yaml"], cwd=tmp_path, now=NOW).digest != first
    assert first != hashlib.sha256(b"").hexdigest()


def test_relative_paths_resolve_against_their_manifest(tmp_path: Path) -> None:
    write(tmp_path / "infra" / "providers.yaml", PROVIDERS + "state: {path: ../state/ks.json}\n")
    write(tmp_path / "teams" / "keys.yaml", KEYS.replace("{env: ANA_TOKEN}", "{file: ana.token}"))
    ws = load_workspace(["infra/providers.yaml", "teams/keys.yaml"], cwd=tmp_path, now=NOW)
    assert ws.state_path == str(tmp_path / "state" / "ks.json")
    assert ws.sinks["dev-env"].options == {"path": str(tmp_path / "infra" / ".secrets" / "prod.env")}
    assert ws.providers["textql"].token == FileRef(str(tmp_path / "infra" / "secrets" / "textql.token"))
    assert ws.keys["ana-questra"].secret_inputs["auth_value"] == FileRef(str(tmp_path / "teams" / "ana.token"))


def test_two_sinks_may_name_one_file_as_exact_aliases(tmp_path: Path) -> None:
    """Same type and options: one file under two names is fine (the file lock serialises them); a
    sink writing it differently is refused (tests/malformed/100-two-sinks-one-file.yaml)."""
    write(tmp_path / "infra" / "providers.yaml", PROVIDERS + "state: {path: ../state/ks.json}\n")
    write(tmp_path / "teams" / "sinks.yaml", "version: 1\nsinks:\n  same-env: {type: dotenv, path: ../infra/.secrets/prod.env}\n")
    write(tmp_path / "teams" / "keys.yaml", KEYS.replace("{env: ANA_TOKEN}", "{file: ana.token}"))
    ws = load_workspace(["infra/providers.yaml", "teams/sinks.yaml", "teams/keys.yaml"], cwd=tmp_path, now=NOW)
    assert ws.sinks["same-env"].options == ws.sinks["dev-env"].options


def test_file_names_outside_cwd_are_absolute(tmp_path: Path) -> None:
    manifest = write(tmp_path / "elsewhere" / "keyform.yaml", PROVIDERS)
    (tmp_path / "here").mkdir()
    ws = load_workspace([manifest], cwd=tmp_path / "here", now=NOW)
    assert ws.files == (str(manifest),)


def test_questra_key_model(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", PROVIDERS)
    write(tmp_path / "b.yaml", KEYS)
    key = load_workspace(["a.yaml", "b.yaml"], cwd=tmp_path, now=NOW).keys["ci-bot"]
    assert key.provider == "questra-prod" and key.provider_type == "questra"
    assert key.attrs == {"name": "CI bot"}
    assert key.expiry.kind == "in" and key.expiry.duration == timedelta(days=90)
    assert key.expiry.spec == "in:90d"
    assert key.rotation.before_expiry == timedelta(days=14)
    assert key.rotation.max_age == timedelta(days=60)
    assert key.rotation.grace == timedelta(hours=24)
    assert key.sink == SinkTarget("dev-env", "CI_BOT")  # defaults.sink, UPPER_SNAKE address
    assert key.secret_inputs == {}
    assert not key.prevent_destroy


def test_textql_key_model_splits_secret_headers_out(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", PROVIDERS)
    write(tmp_path / "b.yaml", KEYS)
    key = load_workspace(["a.yaml", "b.yaml"], cwd=tmp_path, now=NOW).keys["ana-questra"]
    assert key.attrs == {
        "description": "Questra access for Ana", "hosts": ["api.questra.ai"], "headers": {"X-Org-Id": "org_123"},
        "query_params": {}, "api_provider": "questra", "auth_type": "token", "is_private": False,
    }
    assert key.secret_inputs == {"headers.X-Api-Key": SecretOfRef("ci-bot"), "auth_value": EnvRef("ANA_TOKEN")}
    assert key.dependencies() == ["ci-bot"]
    assert key.sink is None
    assert key.prevent_destroy
    assert key.expiry.kind == "never"


def test_textql_defaults(tmp_path: Path) -> None:
    write(tmp_path / "k.yaml", PROVIDERS + "keys:\n  bare: {provider: textql}\n")
    key = load_workspace(["k.yaml"], cwd=tmp_path, now=NOW).keys["bare"]
    assert key.attrs == {"description": "", "hosts": [], "headers": {}, "query_params": {}, "api_provider": "",
                         "auth_type": "token", "is_private": False}
    assert key.secret_inputs == {}



def test_a_keys_list_and_mapping_attributes_are_its_own_not_its_entrys(tmp_path: Path) -> None:
    """Attributes are taken from the entry as written, in the type's order; a list or a mapping is
    a new one (nothing that reads a key's attributes can change its entry, or another key's)."""
    write(tmp_path / "k.yaml", PROVIDERS + "keys:\n  full: {provider: textql, is_private: true, hosts: [h.io], "
          "query_params: {a: b}, headers: {X-A: a}, description: d, auth_type: oauth_u2m}\n")
    key = load_workspace(["k.yaml"], cwd=tmp_path, now=NOW).keys["full"]
    assert list(key.attrs.items()) == [("description", "d"), ("hosts", ["h.io"]), ("headers", {"X-A": "a"}),
                                       ("query_params", {"a": "b"}), ("api_provider", ""),
                                       ("auth_type", "oauth_u2m"), ("is_private", True)]
    for name in ("hosts", "headers", "query_params"):
        assert key.attrs[name] is not key.entry[name]

def test_providers_default_base_urls(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", PROVIDERS)
    ws = load_workspace(["p.yaml"], cwd=tmp_path, now=NOW)
    assert ws.providers["questra-prod"].base_url == "https://api.questra.ai"
    assert ws.providers["questra-prod"].org_id == "org_123"
    assert ws.providers["questra-prod"].token == EnvRef("QUESTRA_TOKEN")
    assert ws.providers["textql"].base_url == "https://app.textql.com"
    assert ws.providers["textql"].org_id is None


@pytest.mark.parametrize("url", ["http://localhost:8787", "http://127.0.0.2", "http://[::1]:9000/api/"])
def test_plain_http_is_allowed_for_loopback_hosts(tmp_path: Path, url: str) -> None:
    write(tmp_path / "p.yaml", f"""\
        version: 1
        providers:
          emu: {{type: textql, base_url: "{url}", token: {{env: T}}}}
        """)
    ws = load_workspace(["p.yaml"], cwd=tmp_path, now=NOW)
    assert ws.providers["emu"].base_url == url.rstrip("/")


def test_sink_shorthand_and_explicit_entry_names(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", PROVIDERS)
    write(tmp_path / "k.yaml", """\
        version: 1
        sinks:
          out: {type: json, path: out.json}
        keys:
          api.v2-bot: {provider: questra-prod, sink: dev-env}
          named: {provider: questra-prod, sink: {use: out, as: custom-name}}
          by-default: {provider: questra-prod, sink: {use: out}}
        """)
    ws = load_workspace(["p.yaml", "k.yaml"], cwd=tmp_path, now=NOW)
    assert ws.keys["api.v2-bot"].sink == SinkTarget("dev-env", "API_V2_BOT")
    assert ws.keys["named"].sink == SinkTarget("out", "custom-name")
    assert ws.keys["by-default"].sink == SinkTarget("out", "BY_DEFAULT")
    assert ws.keys["named"].attrs == {"name": "named"}  # the remote name defaults to the address
    assert ws.providers["questra-prod"].org_id == "org_123"


def test_org_id_from_the_environment(tmp_path: Path) -> None:
    write(tmp_path / "p.yaml", """\
        version: 1
        providers:
          q: {type: questra, token: {env: T}, org_id: {env: QUESTRA_ORG}}
        """)
    assert load_workspace(["p.yaml"], cwd=tmp_path, now=NOW).providers["q"].org_id == EnvRef("QUESTRA_ORG")


def test_expires_at_and_file_sink(tmp_path: Path) -> None:
    write(tmp_path / "k.yaml", PROVIDERS.replace("type: dotenv\n    path: .secrets/prod.env",
                                                 "type: file\n    dir: secrets.d") + """\
keys:
  pinned:
    provider: questra-prod
    expires_at: 2027-06-01T00:00:00Z
""")
    ws = load_workspace(["k.yaml"], cwd=tmp_path, now=NOW)
    key = ws.keys["pinned"]
    assert key.expiry.kind == "at"
    assert key.expiry.at == datetime(2027, 6, 1, tzinfo=timezone.utc)
    assert key.expiry.text == "2027-06-01T00:00:00Z"
    assert ws.sinks["dev-env"].options == {"dir": str(tmp_path / "secrets.d")}
    assert ws.sinks["dev-env"].type == "file"


def test_anchors_and_aliases_are_accepted(tmp_path: Path) -> None:
    write(tmp_path / "k.yaml", PROVIDERS + """\
keys:
  one: &common {provider: textql, hosts: [a.example]}
  two: *common
""")
    ws = load_workspace(["k.yaml"], cwd=tmp_path, now=NOW)
    assert ws.keys["two"].attrs["hosts"] == ["a.example"]
    assert ws.keys["two"].loc == SourceLoc("k.yaml", 18)


def test_ten_thousand_keys_load(tmp_path: Path) -> None:
    """Not a timed assertion (CI machines vary); prints the time for the record (`pytest -s`)."""
    big_manifest(tmp_path / "keyform.yaml", 10_000)
    started = time.perf_counter()
    ws = load_workspace(cwd=tmp_path, now=NOW)
    elapsed = time.perf_counter() - started
    print(f"\n10,000 keys loaded in {elapsed:.2f} s")
    assert len(ws.keys) == 10_000
    assert ws.keys["t-4999"].dependencies() == ["q-4999"]


# ------------------------------------------------------------------------ how problems are reported


def test_every_problem_in_every_file_is_reported_in_file_and_line_order(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", PROVIDERS + "keys:\n  one: {provider: nope}\n  two: {provider: textql, nmae: x}\n")
    write(tmp_path / "b.yaml", "version: 1\nkeys:\n  three: {provider: questra-prod, expires_in: 1y}\n")
    with pytest.raises(KeyformError) as caught:
        load_workspace(["b.yaml", "a.yaml"], cwd=tmp_path, now=NOW)
    assert [str(d.loc) for d in caught.value.diagnostics] == ["a.yaml:17", "a.yaml:18", "b.yaml:3"]
    assert "unknown provider 'nope'" in str(caught.value)


def test_the_same_file_named_twice_is_read_once(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "keyform.yaml", PROVIDERS)
    ws = load_workspace(["conf", "conf/keyform.yaml"], cwd=tmp_path, now=NOW)
    assert ws.files == ("conf/keyform.yaml",)


def test_a_directory_without_manifests_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyformError, match=r"empty: no manifest files \(\*\.yaml, \*\.yml\)"):
        load_workspace(["empty"], cwd=tmp_path)


def test_loading_leaves_the_garbage_collector_as_it_was(tmp_path: Path) -> None:
    write(tmp_path / "keyform.yaml", "version: 1\nkeys: [\n")
    assert gc.isenabled()
    with pytest.raises(KeyformError):
        load_workspace(cwd=tmp_path)
    assert gc.isenabled()


def test_a_literal_secret_is_never_repeated_in_a_message(tmp_path: Path) -> None:
    write(tmp_path / "keyform.yaml", """\
        version: 1
        providers:
          q: {type: questra, token: sk-live-abc123, org_id: o, base_url: "ftp://u:pw-xyz@h"}
        keys:
          k: {provider: q, auth_value: hunter2}
        """)
    with pytest.raises(KeyformError) as caught:
        load_workspace(cwd=tmp_path, now=NOW)
    text = str(caught.value)
    assert "a literal secret is not allowed here" in text
    for secret in ("sk-live-abc123", "pw-xyz", "hunter2"):
        assert secret not in text


def test_empty_sections_mean_nothing_declared(tmp_path: Path) -> None:
    write(tmp_path / "keyform.yaml", "version: 1\nstate:\nproviders:\nsinks:\ndefaults:\nkeys:\n")
    ws = load_workspace(cwd=tmp_path, now=NOW)
    assert (ws.providers, ws.sinks, ws.keys, ws.default_sink) == ({}, {}, {}, None)


def test_a_tilde_path_of_an_unknown_user_stays_as_written(tmp_path: Path) -> None:
    # Path.expanduser raised RuntimeError (a traceback) for `~user` of a user that does not exist
    user = "~keyform-no-such-user-0"
    write(tmp_path / "keyform.yaml", PROVIDERS.replace(".secrets/prod.env", f"{user}/prod.env"))
    ws = load_workspace(cwd=tmp_path, now=NOW)
    assert ws.sinks["dev-env"].options == {"path": str(tmp_path / user / "prod.env")}
    with pytest.raises(KeyformError, match=f"{user}/keyform.yaml: no such file"):
        load_workspace([f"{user}/keyform.yaml"], cwd=tmp_path, now=NOW)


def test_before_expiry_with_a_fixed_expires_at_is_refused_at_its_line(tmp_path: Path) -> None:
    """Every replacement got the same fixed expiry: once within before_expiry of it, each apply made
    a new key and revoked the old one, forever. The relative form was refused; this one passed."""
    write(tmp_path / "keyform.yaml", PROVIDERS)
    write(tmp_path / "keys.yaml", "\n".join([
        "version: 1", "keys:",
        "  a: {provider: questra-prod, expires_at: '2027-06-01T00:00:00Z', rotation: {before_expiry: 14d}}",
        "  b: {provider: questra-prod, expires_at: '2027-06-01T00:00:00Z', rotation: {max_age: 30d}}"]) + "\n")
    with pytest.raises(KeyformError) as err:
        load_workspace([str(tmp_path)], cwd=tmp_path, now=NOW)
    [text] = [str(d) for d in err.value.diagnostics]
    assert text.split(":")[1] == "3", text
    assert ("keys.a.rotation.before_expiry: cannot work with a fixed expires_at: each replacement would expire "
            "at the same 2027-06-01T00:00:00Z, so every plan within 14d of it would replace the key again") in text


@pytest.mark.parametrize(("entry", "message"), [
    ("expire_in: 90d", "keys.a: unknown field 'expire_in'"),
    ("expires_in: 0d", "keys.a.expires_in: must be longer than 0"),
])
def test_one_mistake_is_one_message_not_a_second_about_the_rotation(tmp_path: Path, entry: str, message: str) -> None:
    """A misspelt or bad expiry also gave `rotation.before_expiry: has no effect because the key never
    expires` (or `... must be shorter than expires_in (0d)`): two messages for one mistake."""
    write(tmp_path / "keyform.yaml", PROVIDERS)
    write(tmp_path / "keys.yaml", "version: 1\nkeys:\n  a: {provider: questra-prod, " + entry
          + ", rotation: {before_expiry: 14d}}\n")
    with pytest.raises(KeyformError) as err:
        load_workspace([str(tmp_path)], cwd=tmp_path, now=NOW)
    [text] = [str(d) for d in err.value.diagnostics]
    assert message in text, text


@pytest.mark.parametrize(("entry", "messages"), [
    ("{type: file, path: out}", ["sinks.s: unknown field 'path' (a file sink takes: dir)"]),
    ("{type: file, dri: out}", ["sinks.s: unknown field 'dri' (did you mean 'dir'?)"]),
    # two mistakes, two messages: a misspelt optional field does not stand for a missing one
    ("{type: exec, timout: 5s}", ["sinks.s: missing required field 'command'",
                                  "sinks.s: unknown field 'timout' (did you mean 'timeout'?)"]),
    ("{type: k8s-secret, nmae: x}", ["sinks.s: missing required field 'path'",
                                     "sinks.s: unknown field 'nmae' (did you mean 'name'?)"]),
    ("{type: dotenv}", ["sinks.s: missing required field 'path'"]),
])
def test_a_field_under_the_wrong_name_is_one_message_not_also_the_missing_one(
        tmp_path: Path, entry: str, messages: list[str]) -> None:
    """`{type: file, path: x}` (a file sink takes `dir`) said both "missing required field 'dir'" and
    "unknown field 'path'": one mistake, two messages."""
    write(tmp_path / "keyform.yaml", PROVIDERS.replace("sinks:\n", "sinks:\n  s: " + entry + "\n", 1))
    with pytest.raises(KeyformError) as err:
        load_workspace(cwd=tmp_path, now=NOW)
    assert sorted(d.message for d in err.value.diagnostics) == sorted(messages)


def test_a_value_of_the_wrong_type_is_one_message_not_also_its_value_rule(tmp_path: Path) -> None:
    """`version: "1"` said both "expected an integer, got a string" and "must be 1"."""
    write(tmp_path / "keyform.yaml", PROVIDERS.replace("version: 1", 'version: "1"', 1))
    with pytest.raises(KeyformError) as err:
        load_workspace(cwd=tmp_path, now=NOW)
    assert [d.message for d in err.value.diagnostics] == [
        "version: expected an integer, got a string (write it without quotes: 1)"]


def test_a_repeated_rotation_rule_is_checked_for_each_key(tmp_path: Path) -> None:
    """Rotation rules repeated across keys share one value once checked clean, but a rule is judged
    with each key's own expiry: the same rule is fine on one key and reported on another, every time."""
    rule = "rotation: {before_expiry: 14d, grace: 1h}"
    write(tmp_path / "keyform.yaml", PROVIDERS)
    write(tmp_path / "keys.yaml", "\n".join([
        "version: 1", "keys:",
        "  a: {provider: questra-prod, expires_in: 90d, " + rule + "}",
        "  b: {provider: questra-prod, expires_in: 90d, " + rule + "}",
        "  c: {provider: questra-prod, " + rule + "}",
        "  d: {provider: questra-prod, expires_in: 7d, " + rule + "}",
        "  e: {provider: questra-prod, " + rule + "}"]) + "\n")
    with pytest.raises(KeyformError) as err:
        load_workspace([str(tmp_path)], cwd=tmp_path, now=NOW)
    text = [str(d) for d in err.value.diagnostics]
    assert [t.split(":")[1] for t in text] == ["5", "6", "7"], text
    assert "keys.c.rotation.before_expiry: has no effect" in text[0]
    assert "keys.d.rotation.before_expiry: 14d must be shorter than expires_in (7d)" in text[1]
    assert "keys.e.rotation.before_expiry: has no effect" in text[2]
    write(tmp_path / "keys.yaml", "\n".join([
        "version: 1", "keys:",
        "  a: {provider: questra-prod, expires_in: 90d, " + rule + "}",
        "  b: {provider: questra-prod, expires_in: 90d, " + rule + "}"]) + "\n")
    ws = load_workspace([str(tmp_path)], cwd=tmp_path, now=NOW)
    assert ws.keys["a"].rotation == ws.keys["b"].rotation
    assert ws.keys["a"].rotation.before_expiry == timedelta(days=14)
    assert ws.keys["a"].expiry == ws.keys["b"].expiry



def test_a_rotation_rule_repeated_on_another_type_or_written_in_another_order_is_judged_again(tmp_path: Path) -> None:
    """The next key's rule equal to the last clean one is that value only for the same expiry and
    provider type: `unused_for` is fine on a Questra key and refused on the TextQL key after it."""
    rule = "rotation: {grace: 2h, unused_for: 1h}"
    write(tmp_path / "keyform.yaml", PROVIDERS)
    write(tmp_path / "keys.yaml", "\n".join([
        "version: 1", "keys:",
        "  a: {provider: questra-prod, expires_in: 90d, " + rule + "}",
        "  b: {provider: questra-prod, expires_in: 90d, rotation: {unused_for: 1h, grace: 2h}}",
        "  c: {provider: textql, expires_in: 90d, " + rule + "}"]) + "\n")
    with pytest.raises(KeyformError) as err:
        load_workspace([str(tmp_path)], cwd=tmp_path, now=NOW)
    assert [str(d) for d in err.value.diagnostics] == [
        "keys.yaml:5: keys.c.rotation.unused_for: textql does not report when a key was last used, so keyform "
        "cannot tell when the old key is unused; use grace alone"]
    write(tmp_path / "keys.yaml", "\n".join([
        "version: 1", "keys:",
        "  a: {provider: questra-prod, expires_in: 90d, " + rule + "}",
        "  b: {provider: questra-prod, expires_in: 90d, rotation: {unused_for: 1h, grace: 2h}}"]) + "\n")
    ws = load_workspace([str(tmp_path)], cwd=tmp_path, now=NOW)
    assert ws.keys["a"].rotation == ws.keys["b"].rotation
    assert ws.keys["b"].rotation.unused_for == timedelta(hours=1)


@pytest.mark.parametrize("provider", ["type: textql", "type: rest\n    definition: DEFINITION"])
def test_a_secret_of_an_unknown_key_is_reported_from_a_built_in_or_a_rest_key(tmp_path: Path, provider: str) -> None:
    """The keys with a `secret_of` input are found as their inputs are made, a rest key's too."""
    from harness.project import DEFINITIONS

    write(tmp_path / "keyform.yaml", "\n".join([
        "version: 1", "providers:", "  t:", "    " + provider.replace("DEFINITION", str(DEFINITIONS / "textql.yaml")),
        "    token: {env: TT}", "keys:", "  fine: {provider: t, auth_value: {env: A}}",
        "  k: {provider: t, auth_value: {secret_of: ghost}}"]) + "\n")
    with pytest.raises(KeyformError) as err:
        load_workspace(cwd=tmp_path, now=NOW)
    assert [str(d) for d in err.value.diagnostics] == [
        f"keyform.yaml:{7 + len(provider.splitlines())}: keys.k.auth_value: secret_of names an unknown key 'ghost'"]


def test_a_loaded_keys_loc_is_its_source_loc_however_it_is_read(tmp_path: Path) -> None:
    """The loader leaves a key's line to its first read (`KeySpec.loc`): a copy, a pickle, `replace`,
    `==` and `repr` of a key whose line nobody asked for yet see the same `SourceLoc`."""
    import copy
    import dataclasses
    import pickle

    write(tmp_path / "a.yaml", PROVIDERS)
    write(tmp_path / "b.yaml", KEYS)
    ws = load_workspace(["a.yaml", "b.yaml"], cwd=tmp_path, now=NOW)
    other = load_workspace(["a.yaml", "b.yaml"], cwd=tmp_path, now=NOW)
    spec = ws.keys["ana-questra"]
    assert ws == other  # (no line read on either side before)
    assert copy.copy(ws.keys["ci-bot"]).loc == pickle.loads(pickle.dumps(ws.keys["ci-bot"])).loc == SourceLoc("b.yaml", 3)
    assert dataclasses.replace(spec, prevent_destroy=False).loc == SourceLoc("b.yaml", 8)
    assert "loc=SourceLoc(file='b.yaml', line=8)" in repr(other.keys["ana-questra"])
    assert spec.loc == SourceLoc("b.yaml", 8) and spec.input_loc("auth_value") == SourceLoc("b.yaml", 14)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.loc = SourceLoc("x", 1)  # type: ignore[misc]

# -------------------------------------------- what a directory holds besides manifest files (issue: broken symlink)

def test_a_broken_symlink_in_a_directory_is_an_error_not_a_file_whose_keys_are_gone(tmp_path: Path) -> None:
    """A `-f` directory's `team.yaml` symlink whose target moved away was passed over, so its keys
    were planned for deletion."""
    write(tmp_path / "keys" / "main.yaml", PROVIDERS)
    write(tmp_path / "common" / "team.yaml", KEYS)
    (tmp_path / "keys" / "team.yaml").symlink_to("../common/team.yaml")
    assert "ci-bot" in load_workspace(["keys"], cwd=tmp_path, now=NOW).keys
    (tmp_path / "common").rename(tmp_path / "moved")
    with pytest.raises(KeyformError) as caught:
        load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert [str(d) for d in caught.value.diagnostics] == [
        "keys/team.yaml: broken symlink (-> ../common/team.yaml): the file it points to does not exist"]


def test_a_broken_symlink_named_on_the_command_line_says_so(tmp_path: Path) -> None:
    (tmp_path / "keyform.yaml").symlink_to("gone.yaml")
    with pytest.raises(KeyformError, match=r"^keyform\.yaml: broken symlink \(-> gone\.yaml\)"):
        load_workspace(["keyform.yaml"], cwd=tmp_path, now=NOW)


def test_entries_named_like_manifests_that_are_not_regular_files_are_errors(tmp_path: Path) -> None:
    write(tmp_path / "keys" / "main.yaml", PROVIDERS)
    (tmp_path / "keys" / "sub.yaml").mkdir()
    os.mkfifo(tmp_path / "keys" / "pipe.yml")  # read, it would block the command forever
    (tmp_path / "keys" / "loop.yaml").symlink_to("loop.yaml")
    with pytest.raises(KeyformError) as caught:
        load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert [str(d) for d in caught.value.diagnostics] == [
        "keys/loop.yaml: a symlink loop",
        "keys/pipe.yml: a FIFO, not a regular file",
        "keys/sub.yaml: a directory, not a manifest file (directories are not searched recursively)"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_manifest_in_a_directory_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "keys" / "main.yaml", PROVIDERS)
    write(tmp_path / "keys" / "team.yaml", KEYS)
    (tmp_path / "keys" / "team.yaml").chmod(0)
    with pytest.raises(KeyformError) as caught:
        load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert [str(d) for d in caught.value.diagnostics] == ["keys/team.yaml:1: cannot read the file: Permission denied"]


def test_emacs_lock_files_and_other_names_in_a_directory_are_passed_over(tmp_path: Path) -> None:
    write(tmp_path / "keys" / "main.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    (tmp_path / "keys" / ".#main.yaml").symlink_to("me@host.4242:1700000000")  # Emacs, while editing
    (tmp_path / "keys" / "notes.txt").symlink_to("gone.txt")
    (tmp_path / "keys" / "old.yaml~").write_text("version: [\n")
    ws = load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert ws.files == ("keys/main.yaml",)


def test_hidden_files_in_a_directory_are_passed_over_as_terraform_does(tmp_path: Path) -> None:
    """A `-f` directory's hidden `*.yaml` was read as a manifest: `-f .` at a repository's root read
    `.pre-commit-config.yaml` and failed on it, and a hidden one that was not a readable file (a
    dangling `.old.yaml` link, an Emacs lock that is a regular file) was an error. Terraform passes
    over `.NAME`, `NAME~` and `#NAME#` in a configuration directory (configs/parser_config_dir.go,
    IsIgnoredFile); keyform does the same. A hidden file named with -f is read."""
    write(tmp_path / "keys" / "main.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    write(tmp_path / "keys" / ".pre-commit-config.yaml", "repos:\n  - repo: local\n    hooks: []\n")
    write(tmp_path / "keys" / ".gitlab-ci.yml", "version: 3\nbuild:\n  script: [make]\n")
    (tmp_path / "keys" / ".old.yaml").symlink_to("gone.yaml")
    (tmp_path / "keys" / ".#main.yml").write_text("version: [\n")
    ws = load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert ws.files == ("keys/main.yaml",)


@pytest.mark.parametrize("text", [
    "version: 1\nkeys:\n  draft: {provider: questra-prod, name: Draft}\n",
    "keys:\n  draft: {provider: questra-prod, name: Draft}\n",  # a fragment, its version elsewhere
    "# team keys\nversion: '1'  # pinned\n",
])
def test_a_hidden_manifest_in_a_directory_is_an_error_never_skipped_in_silence(tmp_path: Path, text: str) -> None:
    """Passing over a hidden file that keyform read before (or one named `.keys.yaml` on purpose)
    would plan its keys for deletion with nothing said: a hidden file that reads like a keyform
    manifest is an error at its name. Named with -f, it is read."""
    write(tmp_path / "keys" / "main.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    write(tmp_path / "keys" / ".draft.yaml", text)
    with pytest.raises(KeyformError) as caught:
        load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert [str(d) for d in caught.value.diagnostics] == [
        "keys/.draft.yaml: a hidden file that reads like a keyform manifest: keyform passes over hidden files in "
        "a directory, as Terraform does, and would plan its keys for deletion; rename it to be read (or give it "
        "with -f), or move it out of the directory"]
    if text.startswith("version"):
        assert "draft" in load_workspace(["keys/main.yaml", "keys/.draft.yaml"], cwd=tmp_path, now=NOW).keys


@pytest.mark.parametrize("text", [
    "version: 1\nprovider:\n  qp: {type: questra, org_id: o, token: {env: T}}\nkeys: {}\n",  # singular
    "version: 1\nproviders: {}\nkeys: {}\npolicy:\n  - deny_never_expiring\n",
    "keys:\n  draft: {provider: questra-prod, name: Draft}\ndefualts:\n  rotation: {max_age: 30d}\n",
    "version: 1\nKeys:\n  draft: {provider: questra-prod}\nsinks: {}\n",
    "version: 1\nkeys: {}\nsinkss: {}\n",
    "version: 1\nkeys: {}\nsinsk: {}\n",  # two letters swapped
    "version: 1\nporviders: {}\nkeys: {}\n",
    "version: 1\nprovdiers: {}\nkeys: {}\npolicise: []\n",  # two slips in a long name, one in another
    # two letters swapped in a name of four, under difflib's 0.8 (0.75): found by an adversarial review
    "version: 1\nproviders: {}\nkyes:\n  draft: {provider: questra-prod}\n",
    "version: 1\nproviders: {}\nekys:\n  draft: {provider: questra-prod}\n",
    "version: 1\nkeys: {}\nsikn:\n  f: {type: dotenv, path: .env}\n",
])
def test_a_hidden_manifest_with_a_misspelled_section_is_still_an_error(tmp_path: Path, text: str) -> None:
    """A hidden manifest with one top-level name a manifest does not have was taken for another
    tool's file and passed over in silence, its keys planned for deletion: a slip in a section's
    name (`provider:`, `policy:`, `defualts:`, `sinkss:`) still reads like a keyform manifest."""
    write(tmp_path / "keys" / "main.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    write(tmp_path / "keys" / ".draft.yaml", text)
    with pytest.raises(KeyformError) as caught:
        load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert [str(d) for d in caught.value.diagnostics] == [
        "keys/.draft.yaml: a hidden file that reads like a keyform manifest: keyform passes over hidden files in "
        "a directory, as Terraform does, and would plan its keys for deletion; rename it to be read (or give it "
        "with -f), or move it out of the directory"]


@pytest.mark.parametrize("text", [
    # a quoted description's second line at the line's start: YAML reads one value, not a name `Note`
    'version: 1\nkeys:\n  draft:\n    provider: questra-prod\n    name: "Draft key.\nNote: rotate monthly"\n',
    '{"version": 1, "keys": {"draft": {"provider": "questra-prod", "name": "Draft"}}}\n',  # written as JSON
    '"version": 1\n"keys":\n  draft: {provider: questra-prod, name: Draft}\n',  # quoted names
    "version : 1\nkeys :\n  draft: {provider: questra-prod, name: Draft}\n",  # a space before the colon
])
def test_a_hidden_manifest_is_an_error_however_its_top_level_is_written(tmp_path: Path, text: str) -> None:
    """Its top-level names were read from its lines: a quoted value whose second line starts
    `Note: ...` gave it a name no manifest has, and a manifest written as JSON, with quoted names or
    `keys :` had no line a manifest starts; each was passed over in silence (each loads when not
    hidden), its keys planned for deletion. They are the names YAML reads now."""
    write(tmp_path / "keys" / "main.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    (tmp_path / "keys" / "draft.yaml").write_text(text)
    assert "draft" in load_workspace(["keys"], cwd=tmp_path, now=NOW).keys
    (tmp_path / "keys" / "draft.yaml").rename(tmp_path / "keys" / ".draft.yaml")
    with pytest.raises(KeyformError) as caught:
        load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert [str(d) for d in caught.value.diagnostics] == [
        "keys/.draft.yaml: a hidden file that reads like a keyform manifest: keyform passes over hidden files in "
        "a directory, as Terraform does, and would plan its keys for deletion; rename it to be read (or give it "
        "with -f), or move it out of the directory"]


def test_common_dot_files_are_passed_over(tmp_path: Path) -> None:
    """The other side of a misspelled section being caught: real tools' dot-files in a `-f .`
    directory, those with a keyform-like line (GoReleaser v1's `version: 1` with `signs:`, sops'
    `keys:`) included, are skipped; so is a `.github` directory (never searched)."""
    write(tmp_path / "main.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    files = {
        ".goreleaser.yaml": "version: 1\nproject_name: tool\nbefore:\n  hooks: [go mod tidy]\nbuilds:\n"
                            "  - env: [CGO_ENABLED=0]\nsigns:\n  - artifacts: checksum\nrelease:\n  draft: true\n",
        ".goreleaser.yml": "version: 2\nbuilds: []\n",
        ".sops.yaml": "keys:\n  - &admin 2504791468b153b8\ncreation_rules:\n  - key_groups:\n      - pgp: [*admin]\n",
        ".pre-commit-config.yaml": "default_stages: [pre-commit]\nrepos:\n  - repo: local\n    hooks: []\n",
        ".yamllint.yaml": "extends: default\nrules:\n  line-length: {max: 120}\n",
        ".gitlab-ci.yml": "stages: [test]\ndefault:\n  image: python\nkeys:\n  script: [make keys]\n",
        ".codecov.yml": "coverage:\n  status: {project: off}\ncomment: false\n",
        ".golangci.yml": "version: \"2\"\nlinters:\n  default: standard\n",
        # read as YAML: another tool's tags, quoted names, several documents
        ".gitlab-ci.yaml": "stages: [build]\nkeys:\n  script:\n    - !reference [.setup, script]\n",
        ".lintstagedrc.yaml": "'*.js': eslint --fix\n'*.{json,md}': prettier --write\n",
        ".mergify.yml": "defaults:\n  actions: {}\npull_request_rules: []\n",
        ".markdownlint.yaml": "default: true\nMD013: false\n",
        ".kubeconfig.yaml": "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\n",
        ".docker-compose.override.yml": "version: '3.8'\nservices:\n  web: {environment: [KEYS=1]}\n",
        ".two.yaml": "version: 1\n---\nbuilds: []\n",
    }
    for name, text in files.items():
        write(tmp_path / name, text)
    write(tmp_path / ".github" / "dependabot.yml", "version: 2\nupdates: []\n")
    write(tmp_path / ".yamllint", "extends: default\n")
    assert load_workspace(["."], cwd=tmp_path, now=NOW).files == ("main.yaml",)


def test_other_tools_hidden_files_with_a_keyform_like_line_are_still_passed_over(tmp_path: Path) -> None:
    """GoReleaser v1's `.goreleaser.yaml` starts `version: 1`, and sops-nix's `.sops.yaml` keeps its
    key anchors under a top-level `keys:`: each was refused as a hidden keyform manifest, and `-f .`
    at such a repository's root could not plan. A top-level name no keyform manifest has (`builds:`,
    `creation_rules:`) says it is another tool's."""
    write(tmp_path / "keys" / "main.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    write(tmp_path / "keys" / ".goreleaser.yaml", "version: 1\nproject_name: tool\nbuilds:\n  - env: [CGO_ENABLED=0]\n")
    write(tmp_path / "keys" / ".sops.yaml", "keys:\n  - &admin 2504791468b153b8\ncreation_rules:\n"
                                            "  - path_regex: secrets/.*\n    key_groups:\n      - pgp: [*admin]\n")
    ws = load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert ws.files == ("keys/main.yaml",)


def test_goreleasers_signs_is_not_taken_for_a_misspelled_sinks(tmp_path: Path) -> None:
    """GoReleaser's `signs:` is at difflib's 0.8 from `sinks` and was taken for a slip in it: a
    `.goreleaser.yaml` holding only `version: 1` and `signs:` (a signing-only config) was refused as
    a hidden keyform manifest, and `-f .` at such a repository's root could not plan. A slip is a
    letter added, dropped or changed or two swapped, once in a short name: `signs` is two changed."""
    write(tmp_path / "main.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    write(tmp_path / ".goreleaser.yaml", "version: 1\nsigns:\n  - artifacts: checksum\n    args: [--batch, -u, "
                                         "'{{ .Env.GPG_FINGERPRINT }}', --output, $signature, --detach-sign, $artifact]\n")
    assert load_workspace(["."], cwd=tmp_path, now=NOW).files == ("main.yaml",)


def test_verbose_lists_every_file_named_like_a_manifest_that_a_directory_skipped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`-v` named only the hidden `*.yaml` files a directory passed over: a backup `keys.yaml~`, an
    autosave `#keys.yaml#`, Vim's `.keys.yaml.swp`, a `keys.yaml.bak` or a `keys.YAML` was skipped
    with nothing said even there. Each is now listed with why; `notes.txt` is not."""
    write(tmp_path / "keys" / "main.yaml", PROVIDERS + KEYS.replace("version: 1\n", ""))
    names = [".keys.yaml", "keys.yaml~", "#keys.yaml#", ".keys.yaml.swp", "keys.yaml.bak", "keys.YAML",
             ".pre-commit-config.yaml", "notes.txt"]
    for name in names:
        write(tmp_path / "keys" / name, "repos: []\n")
    (tmp_path / "keys" / ".#main.yaml").symlink_to("me@host.4242:1700000000")
    with caplog.at_level(logging.DEBUG, logger="keyform.manifest.loader"):
        assert load_workspace(["keys"], cwd=tmp_path, now=NOW).files == ("keys/main.yaml",)
    said = sorted(r.getMessage() for r in caplog.records if "skipped" in r.getMessage())
    assert said == sorted([
        "manifests: keys/.keys.yaml skipped: a hidden file (.NAME)",
        "manifests: keys/keys.yaml~ skipped: an editor's backup (NAME~)",
        "manifests: keys/#keys.yaml# skipped: an Emacs autosave (#NAME#)",
        "manifests: keys/.keys.yaml.swp skipped: a hidden file (.NAME)",
        "manifests: keys/keys.yaml.bak skipped: not named *.yaml or *.yml",
        "manifests: keys/keys.YAML skipped: not named *.yaml or *.yml",
        "manifests: keys/.pre-commit-config.yaml skipped: a hidden file (.NAME)",
        "manifests: keys/.#main.yaml skipped: an Emacs lock file (.#NAME)"])


def test_a_directory_of_backups_only_says_they_are_skipped(tmp_path: Path) -> None:
    """Only hidden `*.yaml` files earned the hint; a directory holding only an editor's backup
    `keys.yaml~` said nothing of it."""
    write(tmp_path / "keys" / "keys.yaml~", "version: 1\n")
    with pytest.raises(KeyformError) as caught:
        load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert [str(d) for d in caught.value.diagnostics] == [
        "keys: no manifest files (*.yaml, *.yml) in this directory; hidden, backup and autosave files "
        "(.NAME, NAME~, #NAME#) are skipped"]


def test_a_directory_of_hidden_files_only_says_they_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / "keys" / ".pre-commit-config.yaml", "repos: []\n")
    with pytest.raises(KeyformError) as caught:
        load_workspace(["keys"], cwd=tmp_path, now=NOW)
    assert [str(d) for d in caught.value.diagnostics] == [
        "keys: no manifest files (*.yaml, *.yml) in this directory; hidden, backup and autosave files "
        "(.NAME, NAME~, #NAME#) are skipped"]


def test_a_write_only_input_is_located_at_its_own_field(tmp_path: Path) -> None:
    """A message about a TextQL key's input (plan's note, apply's refusal: `unresolved_inputs`) named
    the key's line; it names the field's, as schema errors do, from a fresh parse and a cached one."""
    from keyform.resolve import unresolved_inputs

    keys = KEYS.replace("X-Api-Key: {secret_of: ci-bot}", "X-Api-Key: {file: missing.key}")
    write(tmp_path / "k.yaml", PROVIDERS + keys.replace("version: 1\n", ""))
    lines = (tmp_path / "k.yaml").read_text().splitlines()
    line = {field: next(i for i, text in enumerate(lines, 1) if text.startswith(f"    {field}:"))
            for field in ("headers", "auth_value")}
    for _ in range(2):  # the second load may come from the manifest cache
        spec = load_workspace(["k.yaml"], cwd=tmp_path, now=NOW).keys["ana-questra"]
        assert spec.input_loc("auth_value") == SourceLoc("k.yaml", line["auth_value"])
        assert spec.input_loc("headers.X-Api-Key") == SourceLoc("k.yaml", line["headers"])
        assert [str(d.loc) for d in unresolved_inputs(spec, {})] == [
            f"k.yaml:{line['auth_value']}", f"k.yaml:{line['headers']}"]
