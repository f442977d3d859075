"""The k8s-secret sink: a Kubernetes Secret manifest that validates as core/v1 Secret, keeps other
keys, and round-trips through the real sops with `encrypted_regex: ^(data|stringData)$`."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from keyform.errors import SinkError, SourceLoc
from keyform.model import SinkConfig
from keyform.sinks.k8s import K8sSecretSink, option_problems
from keyform.sinks.registry import is_readable, open_sink
from keyform.sinks.sops import Recipients
from tests.sinkkit import AgeKey, sops_decrypt, visible

SECRET = "sk-CANARY-k8s-4d2e9f"
OTHER = "sk-CANARY-k8s-other-77aa"

_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_VALUE = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# core/v1 Secret (the fields of io.k8s.api.core.v1.Secret and the ObjectMeta parts keyform writes),
# with the API server's validation rules for names, keys, labels and base64 `data`.
SECRET_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "Secret"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 253, "pattern": f"^{_DNS_LABEL}(\\.{_DNS_LABEL})*$"},
                "namespace": {"type": "string", "maxLength": 63, "pattern": f"^{_DNS_LABEL}$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63,
                                                                      "pattern": _LABEL_VALUE}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "type": {"type": "string", "minLength": 1},
        "immutable": {"type": "boolean"},
        "data": {
            "type": "object",
            "propertyNames": {"pattern": "^[-._a-zA-Z0-9]+$", "maxLength": 253},
            "additionalProperties": {
                "type": "string",
                "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
            },
        },
        "stringData": {
            "type": "object",
            "propertyNames": {"pattern": "^[-._a-zA-Z0-9]+$", "maxLength": 253},
            "additionalProperties": {"type": "string"},
        },
    },
}


def assert_valid_secret(doc: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(SECRET_SCHEMA).iter_errors(doc)]
    assert not errors, errors


def plain_sink(tmp_path: Path, **kw: Any) -> K8sSecretSink:
    args: dict[str, Any] = {"name": "app-keys", "namespace": "prod", "labels": {"app.kubernetes.io/name": "web"}}
    return K8sSecretSink(tmp_path / "k8s" / "app-keys.secret.yaml", **{**args, **kw})


def test_writes_a_valid_kubernetes_secret_with_string_data(tmp_path: Path) -> None:
    sink = plain_sink(tmp_path)
    sink.write("ci-bot", "CI_BOT", SECRET)
    sink.write("deploy", "deploy.token", OTHER)
    doc = yaml.safe_load(sink.path.read_text())
    assert_valid_secret(doc)
    assert doc == {"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "app-keys", "namespace": "prod", "labels": {"app.kubernetes.io/name": "web"}},
                   "type": "Opaque", "stringData": {"CI_BOT": SECRET, "deploy.token": OTHER}}
    assert stat.S_IMODE(os.stat(sink.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sink.path.parent).st_mode) == 0o700


# YAML 1.2's core schema (what go-yaml v3 and other YAML 1.2 readers use) and YAML 1.1's extras
# (go-yaml v2, kubectl's sigs.k8s.io/yaml): a plain scalar matching any of these is not a string
_NOT_A_STRING = re.compile(
    r"[-+]?(0|[1-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+|0b[01]+|[0-9][0-9_]*(:[0-5]?[0-9])+)"
    r"|[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
    r"|y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|")


def test_every_value_reads_back_as_a_string_in_any_yaml_reader(tmp_path: Path) -> None:
    """PyYAML left `0o17`, `1e3` and `y` plain, strings to its YAML 1.1 rules: kubectl and YAML 1.2
    readers took 15, 1000 and true, in the new secret and in entries already in the file."""
    path = tmp_path / "s.yaml"
    path.write_text('apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {OTHER: "0o17", FLAG: "y"}\n')
    sink = K8sSecretSink(path, "s", labels={"on": "true"})
    odd = ["1e3", "0x1F", "12345e678", "-.5", ".inf", "~", "yes", "Off", "NULL", "1:30", "0b101", "007", "+1"]
    for i, value in enumerate(odd):
        sink.write(f"k{i}", f"K{i}", value)
    text = path.read_text()
    doc = yaml.safe_load(text)
    assert doc["stringData"] == {"OTHER": "0o17", "FLAG": "y", **{f"K{i}": v for i, v in enumerate(odd)}}
    assert doc["metadata"]["labels"] == {"on": "true"}
    plain = [m for line in text.splitlines() for m in re.findall(r"(?:^\s*|:\s+)([^\s\"'|:][^:]*?)\s*$", line)]
    assert [p for p in plain if _NOT_A_STRING.fullmatch(p)] == [], text


def test_data_field_is_base64_and_reads_back(tmp_path: Path) -> None:
    sink = plain_sink(tmp_path, field="data")
    multi = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
    sink.write("a", "PEM", multi)
    sink.write("b", "TOKEN", SECRET)
    doc = yaml.safe_load(sink.path.read_text())
    assert_valid_secret(doc)
    assert base64.b64decode(doc["data"]["TOKEN"]).decode() == SECRET
    assert SECRET not in sink.path.read_text()  # only base64 on disk (not encryption: see encrypt: sops)
    assert sink.read("PEM") == multi and sink.read("TOKEN") == SECRET and sink.read("NONE") is None


def test_other_keys_and_foreign_metadata_are_kept_and_identity_follows_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: old-name\n  namespace: default\n"
                    "  annotations: {reflector/allowed: 'true'}\n  labels: {stale: yes-old}\n"
                    "type: Opaque\nimmutable: false\ndata:\n  LEGACY: aGVsbG8=\nstringData:\n  HAND: written\n")
    sink = K8sSecretSink(path, "app-keys", "prod", {"team": "core"})
    sink.write("a", "CI_BOT", SECRET)
    doc = yaml.safe_load(path.read_text())
    assert_valid_secret(doc)
    assert doc["metadata"] == {"name": "app-keys", "namespace": "prod", "labels": {"team": "core"},
                               "annotations": {"reflector/allowed": "true"}}
    assert doc["data"] == {"LEGACY": "aGVsbG8="} and doc["stringData"] == {"CI_BOT": SECRET, "HAND": "written"}
    assert doc["immutable"] is False
    assert sink.read("LEGACY") == "hello"


def test_changing_field_moves_the_key_and_remove_drops_it_from_both(tmp_path: Path) -> None:
    plain_sink(tmp_path).write("a", "A", SECRET)
    as_data = plain_sink(tmp_path, field="data")
    as_data.write("a", "A", OTHER)
    doc = yaml.safe_load(as_data.path.read_text())
    assert "stringData" not in doc and base64.b64decode(doc["data"]["A"]).decode() == OTHER
    as_data.remove("A")
    as_data.remove("A")
    assert "data" not in yaml.safe_load(as_data.path.read_text())
    assert_valid_secret(yaml.safe_load(as_data.path.read_text()))


def test_a_file_that_is_not_a_secret_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n")
    with pytest.raises(SinkError, match=r"not a v1 Kubernetes Secret \(apiVersion 'v1', kind 'ConfigMap'\)"):
        K8sSecretSink(path, "x").write("a", "A", SECRET)
    assert "ConfigMap" in path.read_text()
    path.write_text("- a list\n")
    with pytest.raises(SinkError, match="left untouched"):
        K8sSecretSink(path, "x").write("a", "A", SECRET)


@pytest.mark.parametrize(("name", "ok"), [("API_KEY", True), ("tls.crt", True), ("a-b_c.d", True),
                                          ("a/b", False), ("with space", False), (".", False), ("..x", False),
                                          ("", False), ("x" * 254, False)])
def test_entry_names_must_be_valid_secret_keys(name: str, ok: bool) -> None:
    assert (K8sSecretSink.name_problem(name) is None) is ok


def test_option_checks() -> None:
    assert option_problems({"path": "p", "name": "app-keys", "namespace": "prod", "labels": {"a.io/b": "c"}}) == []
    found = dict(option_problems({"path": "p", "name": "App_Keys", "namespace": "Prod",
                                  "labels": {"bad key!": "v", "ok": "-bad-"}, "age": "age1x"}))
    assert set(found) == {("name",), ("namespace",), ("labels", "bad key!"), ("labels", "ok"), ("age",)}
    assert found[("age",)] == "age recipients need encrypt: sops"
    secret_key = option_problems({"path": "p", "name": "n", "encrypt": "sops", "age": "AGE-SECRET-KEY-1QQQ"})
    assert secret_key and "AGE-SECRET-KEY-1QQQ" not in secret_key[0][1]


# ------------------------------------------------------------------------------ with encrypt: sops


def sops_sink(tmp_path: Path, key: AgeKey, **kw: Any) -> K8sSecretSink:
    args: dict[str, Any] = {"name": "app-keys", "namespace": "prod", "labels": {"app": "web"}}
    return K8sSecretSink(tmp_path / "app-keys.enc.yaml", sops=Recipients(age=(key.recipient,)), **{**args, **kw})


@pytest.mark.parametrize("field", ["stringData", "data"])
def test_sops_encrypted_secret_round_trips_and_decrypts_to_a_valid_secret(tmp_path: Path, age_key: AgeKey,
                                                                          field: str) -> None:
    sink = sops_sink(tmp_path, age_key, field=field)
    sink.write("ci-bot", "CI_BOT", SECRET)
    sink.write("deploy", "DEPLOY", OTHER)
    raw = sink.path.read_text()
    assert SECRET not in raw and OTHER not in raw
    assert base64.b64encode(SECRET.encode()).decode() not in raw
    on_disk = visible(sink.path)
    assert on_disk["sops"]["encrypted_regex"] == "^(data|stringData)$"
    assert on_disk["metadata"] == {"name": "app-keys", "namespace": "prod", "labels": {"app": "web"}}  # cleartext
    assert all(v.startswith("ENC[AES256_GCM,") for v in on_disk[field].values())
    plain = sops_decrypt(sink.path, age_key)
    assert_valid_secret(plain)
    values = plain[field] if field == "stringData" else {k: base64.b64decode(v).decode() for k, v in
                                                          plain[field].items()}
    assert values == {"CI_BOT": SECRET, "DEPLOY": OTHER}
    fresh = sops_sink(tmp_path, age_key, field=field)
    assert fresh.read("CI_BOT") == SECRET and fresh.read("NONE") is None
    fresh.write("ci-bot", "CI_BOT", SECRET + "-2")
    fresh.remove("DEPLOY")
    again = sops_decrypt(sink.path, age_key)
    assert_valid_secret(again)
    assert set(again[field]) == {"CI_BOT"}


def test_sops_secret_without_a_key_is_write_only_and_refuses_to_merge(tmp_path: Path, age_key: AgeKey,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sops_sink(tmp_path, age_key).write("a", "A", OTHER)
    sops_sink(tmp_path, age_key).write("b", "B", OTHER)
    before = (tmp_path / "app-keys.enc.yaml").read_bytes()
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    keyless = sops_sink(tmp_path, age_key)
    config = SinkConfig("k", "k8s-secret", {"path": str(keyless.path), "name": "app-keys", "encrypt": "sops",
                                            "age": age_key.recipient}, SourceLoc("k.yaml", 1))
    assert not keyless.readable and not is_readable(config)
    with pytest.raises(SinkError, match="needs to decrypt an existing sops file"):
        keyless.write("a", "A", SECRET)
    assert (tmp_path / "app-keys.enc.yaml").read_bytes() == before
    assert keyless.read("C") is None  # key names are cleartext


def test_sops_secret_holding_only_this_key_is_recreated_without_a_key(tmp_path: Path, age_key: AgeKey,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sops_sink(tmp_path, age_key).write("a", "A", OTHER)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    sops_sink(tmp_path, age_key).write("a", "A", SECRET)
    assert sops_decrypt(tmp_path / "app-keys.enc.yaml", age_key)["stringData"] == {"A": SECRET}


def test_registry_builds_plain_and_encrypted_secrets(tmp_path: Path) -> None:
    plain = open_sink(SinkConfig("k", "k8s-secret", {"path": str(tmp_path / "s.yaml"), "name": "n"},
                                 SourceLoc("k.yaml", 1)))
    assert isinstance(plain, K8sSecretSink) and plain.sops is None and plain.namespace == "default"
    assert plain.field == "stringData" and plain.readable
    enc = open_sink(SinkConfig("k", "k8s-secret", {"path": str(tmp_path / "s.yaml"), "name": "n", "encrypt": "sops",
                                                   "age": ["age1a"], "field": "data"}, SourceLoc("k.yaml", 1)))
    assert isinstance(enc, K8sSecretSink) and enc.sops is not None and enc.sops.recipients.age == ("age1a",)



@pytest.mark.parametrize("field", ["stringData", "data"])
def test_a_section_aliased_elsewhere_in_the_file_gets_the_secret_and_nothing_else_does(tmp_path: Path,
                                                                                      field: str) -> None:
    # `data: *a` made data and stringData one mapping: the secret written to one was popped from the
    # other, so the write succeeded and the file did not hold it
    path = tmp_path / "s.yaml"
    path.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: &a {OTHER: b3RoZXI=}\n"
                    "data: *a\n")
    sink = K8sSecretSink(path, "x", field=field)
    sink.write("a", "CI_BOT", SECRET)
    assert sink.read("CI_BOT") == SECRET
    doc = yaml.safe_load(path.read_text())
    other = "data" if field == "stringData" else "stringData"
    assert "CI_BOT" in doc[field] and "CI_BOT" not in doc[other] and doc[other]["OTHER"] == "b3RoZXI="
    # a section sharing the annotations' mapping: the secret went into the metadata too, in clear text
    path.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  annotations: &n {note: hi}\n"
                    f"{field}: *n\n")
    sink.write("a", "CI_BOT", SECRET)
    doc = yaml.safe_load(path.read_text())
    assert doc["metadata"]["annotations"] == {"note": "hi"} and "CI_BOT" in doc[field]
