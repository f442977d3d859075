"""The k8s-secret sink: one YAML file holding a Kubernetes Secret (`apiVersion: v1`, `kind: Secret`,
`type: Opaque`), one key of `stringData` (or base64 `data`) per secret; other keys are kept.

keyform owns the Secret's identity: `metadata.name`, `metadata.namespace` and `metadata.labels` are
set from the manifest on every write (other metadata, such as annotations, is kept). Keys are sorted,
so a rotation changes one line. A key moves between `data` and `stringData` when `field` changes.

With `encrypt: sops` the file goes through sops (see `keyform.sinks.sops`) with
`encrypted_regex: ^(data|stringData)$`: the values are encrypted, the rest stays readable, and the
file can be committed for Flux or any sops-aware GitOps tool to apply.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from keyform.errors import SinkError
from keyform.fsio import StrPath
from keyform.groupcommit import GroupCommit
from keyform.sinks.pathlocks import lock_for
from keyform.sinks.sinkfs import read_file, write_file
from keyform.sinks.sops import LeafPath, Recipients, SopsFile, can_decrypt, recipient_problems
from keyform.strictjson import LongNumber
from keyform.typeregistry import ScannedEntries, SinkType

if TYPE_CHECKING:
    pass

FIELDS = ("stringData", "data")
ENCRYPTED_REGEX = "^(data|stringData)$"
_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, except that a scalar Python cannot make a value of (an integer of more
    than 4300 digits, a date that does not exist: YAML reads `2024-02-30` as one) is a `_BadScalar`
    at its line, not a bare ValueError that would reach the user as its type name."""


class _BadScalar(yaml.YAMLError):
    """A scalar of the Secret file that has no value in Python; the message never quotes it (a
    stringData value is a secret)."""

    def __init__(self, node: yaml.Node, problem: str) -> None:
        super().__init__(problem)
        self.line = node.start_mark.line + 1


def _int(loader: Any, node: yaml.ScalarNode) -> int:
    try:
        return int(yaml.SafeLoader.construct_yaml_int(loader, node))
    except ValueError:  # the resolver matched its syntax: only Python's digit limit is left
        digits = sum(c.isdigit() for c in node.value)
        raise _BadScalar(node, str(LongNumber(digits, sys.get_int_max_str_digits()))) from None


def _timestamp(loader: Any, node: yaml.ScalarNode) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        raise _BadScalar(node, "holds a date that does not exist (YAML reads an unquoted date as one; quote it "
                               "if it is text)") from None


_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Multi-line values (PEM keys, JSON credentials) as literal blocks, one line per line; every
    other string double-quoted."""


def _str(dumper: Any, value: str) -> Any:
    """A string as no YAML reader can take for anything else. PyYAML leaves a plain scalar plain
    when *its* YAML 1.1 rules read it as a string, but kubectl (go-yaml) and YAML 1.2 readers
    do not share them: `0o17` became 15, `1e3` 1000 and `y` true, in the secret and in the other
    entries of the file, and the API server refuses a Secret whose value is not a string."""
    style = "|" if "\n" in value else None if _PLAIN_WORD.fullmatch(value) and value.lower() not in _YAML_WORDS \
        else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


# a word every YAML reader takes as a string (names such as apiVersion, Secret, v1, default stay plain)
_PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


_Dumper.add_representer(str, _str)
_RECIPIENT_OPTIONS = ("age", "pgp", "kms")


class K8sSecretSink:
    def __init__(self, path: StrPath, name: str, namespace: str = "default", labels: Mapping[str, str] | None = None,
                 field: str = "stringData", sops: Recipients | None = None) -> None:
        """`sops` None: a plaintext manifest; else encrypted for these recipients (empty: .sops.yaml)."""
        if field not in FIELDS:
            raise SinkError(f"{path}: field must be one of {', '.join(FIELDS)}")
        self.path = Path(path)
        self.name = name
        self.namespace = namespace
        self.labels = dict(labels or {})
        self.field = field
        # concurrent writers share one rewrite and encryption (groupcommit)
        self._batches: GroupCommit[tuple[str, str]] = GroupCommit()
        self.sops = SopsFile(self.path, "yaml", sops, ENCRYPTED_REGEX) if sops is not None else None
        self.readable: bool = self.sops is None or can_decrypt(self.sops.recipients)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> K8sSecretSink:
        encrypted = options.get("encrypt") == "sops"
        return cls(options["path"], options["name"], options.get("namespace") or "default",
                   options.get("labels"), options.get("field") or "stringData",
                   Recipients.from_options(options) if encrypted else None)

    @staticmethod
    def name_problem(name: str) -> str | None:
        """Why `name` cannot be a key of a Secret's data, or None if it can."""
        if not _KEY.fullmatch(name) or len(name) > 253:
            return (f"{name!r} is not a valid Kubernetes Secret key "
                    "(letters, digits, '-', '_', '.'; at most 253 characters)")
        if name in (".", "..") or name.startswith(".."):
            return f"{name!r} is not a valid Kubernetes Secret key (it must not be '.' or start with '..')"
        return None

    def write(self, address: str, name: str, secret: str) -> None:
        what = f" (writing {name} for key {address})"
        self._check(name, what)
        self._batches.write(lambda: lock_for(self.path, across_processes=True, create_dir=True), (name, secret),
                            lambda batch: self._set(batch, what),
                            lambda: self._set([(name, secret)], what))

    def _set(self, entries: list[tuple[str, str]], what: str) -> None:
        """Set every (name, secret) in one rewrite; the caller holds the file lock."""
        raw, doc, _ = self._load({n for n, _ in entries}, what)
        data, string_data = _section(doc, "data", self.path), _section(doc, "stringData", self.path)
        written: list[tuple[LeafPath, str]] = []
        for name, secret in entries:
            if self.field == "stringData":
                stored = string_data[name] = secret
                data.pop(name, None)
            else:
                stored = data[name] = base64.b64encode(secret.encode("utf-8")).decode("ascii")
                string_data.pop(name, None)
            written.append(((self.field, name), stored))
        self._store(doc, raw, what, written)

    def read(self, name: str) -> str | None:
        what = f" (reading {name})"
        self._check(name, what)
        with lock_for(self.path):
            raw = self._raw(what)
            if raw is None:
                return None
            if self.sops is not None:
                seen = self.sops.visible(raw)
                if seen is not None and not _holds(seen, name):
                    return None
                doc = self.sops.decrypt(raw, what)
            else:
                doc = self._parse(raw, what)
        _check_kind(doc, self.path, what)
        string_data, data = _section(doc, "stringData", self.path), _section(doc, "data", self.path)
        if name in string_data:
            value = string_data[name]
            if not isinstance(value, str):
                raise SinkError(f"{self.path}: stringData.{name} is not a string")
            return value
        if name not in data:
            return None
        try:
            return base64.b64decode(str(data[name]), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise SinkError(f"{self.path}: data.{name} is not base64-encoded UTF-8 text") from None

    def remove(self, name: str) -> None:
        what = f" (removing {name})"
        self._check(name, what)
        with lock_for(self.path, across_processes=True):
            raw = self._raw(what)
            if raw is None:
                return
            if self.sops is not None:
                seen = self.sops.visible(raw)
                if seen is not None and not _holds(seen, name):
                    return
            raw, doc, fresh = self._load({name}, what, raw=raw)
            sections = [_section(doc, f, self.path) for f in FIELDS]
            if not fresh and not any(name in s for s in sections):
                return
            for s in sections:
                s.pop(name, None)
            self._store(doc, raw, what)

    # ------------------------------------------------------------------------------------ helpers

    def _check(self, name: str, what: str) -> None:
        problem = self.name_problem(name)
        if problem:
            raise SinkError(f"{self.path}: {problem}{what}")

    def _raw(self, what: str) -> bytes | None:
        try:
            return read_file(self.path)
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot read the Secret manifest{what}: {exc.strerror}") from None

    def _load(self, names: set[str], what: str, raw: bytes | None = None
              ) -> tuple[bytes | None, dict[str, Any], bool]:
        """(the file's bytes, the Secret to edit, whether it replaces an undecryptable file): a new
        Secret when there is no file or, encrypted, when the file cannot be decrypted but nothing in
        it except keyform's own fields and these keys would be lost by starting afresh."""
        raw = raw if raw is not None else self._raw(what)
        if raw is None:
            return None, {}, False
        if self.sops is None:
            doc: dict[str, Any] | None = self._parse(raw, what)
        else:
            doc = self.sops.load_for_update(raw, what, lambda p: _disposable(p, names))
        if doc is None:
            return raw, {}, True
        _check_kind(doc, self.path, what)
        return raw, doc, False

    def _parse(self, raw: bytes, what: str) -> dict[str, Any]:
        """The plaintext Secret file as a mapping ({} when empty). SinkError, the file named (at its
        line where there is one), for one keyform could not write back: not YAML, not a mapping,
        or a `data`/`stringData` key YAML reads as something other than a string."""
        try:
            node, doc = _yaml_document(raw.decode("utf-8"))
        except _BadScalar as exc:
            raise SinkError(f"{self.path}:{exc.line}: {exc}{_left(what)}") from None
        except (UnicodeDecodeError, yaml.YAMLError, RecursionError):
            raise SinkError(f"{self.path}: not a valid YAML file{_left(what)}") from None
        if doc is None:
            return {}
        if not isinstance(doc, dict):
            raise SinkError(f"{self.path}: not a Kubernetes Secret manifest (a mapping){_left(what)}")
        bad = _non_string_key(node)
        if bad is not None:
            field, key = bad
            raise SinkError(f"{self.path}:{key.start_mark.line + 1}: {field} has a key that YAML reads as "
                            f"{_TAG_WORDS.get(key.tag, 'something')}, not a string ({key.value[:40]!r}); a Secret's "
                            f"keys are strings: quote it{_left(what)}")
        return doc

    def entries(self) -> dict[str, int] | None:
        """Every key of the Secret file (`SinkType.scan`; {} when there is no file), after the same
        checks as a write makes, so that `plan` refuses a file the write would; None when it is
        encrypted (reading it needs sops and the key: not scanned)."""
        if self.sops is not None:
            return None
        raw = self._raw("")
        doc = {} if raw is None else self._parse(raw, "")
        _check_kind(doc, self.path, "")
        sections = {f: _section(doc, f, self.path) for f in FIELDS}
        blank = {name for f, section in sections.items() for name, value in section.items()
                 if _blank(value, encoded=f == "data")}
        blank -= {n for n, v in sections["stringData"].items() if not _blank(v, encoded=False)}  # (read first)
        return ScannedEntries({name: 0 for section in sections.values() for name in section}, blank)

    def _store(self, doc: dict[str, Any], raw: bytes | None, what: str,
               written: Sequence[tuple[LeafPath, str]] = ()) -> None:
        out = self._render(doc)
        if self.sops is not None:
            self.sops.store(out, raw, what, written=written)
            return
        data = yaml.dump(out, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                         width=1 << 20).encode("utf-8")
        try:
            write_file(self.path, data)
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot write{what}: {exc.strerror}") from None

    def _render(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The Secret in canonical order, with keyform's metadata and keys sorted; empty sections dropped."""
        old_meta = doc.get("metadata")
        if not isinstance(old_meta, dict):
            old_meta = {}
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            meta["labels"] = dict(sorted(self.labels.items()))
        meta.update({k: v for k, v in old_meta.items() if k not in ("name", "namespace", "labels")})
        out: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                               "type": doc.get("type") or "Opaque"}
        out.update({k: v for k, v in doc.items() if k not in (*out, *FIELDS)})
        for f in ("data", "stringData"):
            section = doc.get(f)
            if isinstance(section, dict) and section:
                out[f] = dict(sorted(section.items()))
        return out


def _yaml_document(text: str) -> tuple[yaml.Node | None, Any]:
    """The YAML document's node tree and its value, from one parse: the nodes tell what the value
    no longer does, the tag a key was read with and its line. (Constructing the value flattens
    `<<` merge keys into the nodes, so the tree has every key the value has.)"""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return node, None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _non_string_key(node: yaml.Node | None) -> tuple[str, yaml.ScalarNode] | None:
    """(field, key node) of the first key of `data` or `stringData` that YAML does not read as a
    string (`123`, and in YAML 1.1 `yes` or `null`): Kubernetes refuses such a Secret, and a
    rewrite, which sorts the keys, could not order it among the others."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if key.tag == _STR_TAG and key.value in FIELDS and isinstance(value, yaml.MappingNode):
            for entry, _ in value.value:
                if entry.tag != _STR_TAG:  # a scalar: a sequence or mapping as a key failed the parse
                    return key.value, entry
    return None


_STR_TAG = "tag:yaml.org,2002:str"
_TAG_WORDS = {f"tag:yaml.org,2002:{t}": w for t, w in (("int", "a number"), ("float", "a number"),
                                                       ("bool", "a boolean"), ("null", "null"),
                                                       ("timestamp", "a date"))}


def _left(what: str) -> str:
    """The end of a message about the file: what keyform was doing, and that it did not touch the
    file; nothing for the plan's scan (which never writes)."""
    return f"{what}; it was left untouched" if what else ""


def _blank(value: Any, *, encoded: bool) -> bool:
    """Whether a Secret entry holds nothing but whitespace (null, "", or `data` that decodes so)."""
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    if not encoded:
        return not value.strip()
    try:
        return not base64.b64decode(value, validate=True).strip()
    except (binascii.Error, ValueError):
        return False


def _section(doc: dict[str, Any], field: str, path: Path) -> dict[str, Any]:
    """`doc[field]` as a mapping of its own. A YAML alias makes one mapping of two places
    (`stringData: &a {...}` and `data: *a`, or `annotations: &a` and `stringData: *a`): edited
    in place, a new secret was popped from `data` as it went into `stringData` (written nowhere,
    yet recorded as stored), or copied into the Secret's cleartext annotations."""
    section = doc.get(field)
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise SinkError(f"{path}: {field} is not a mapping; the Secret was left untouched")
    section = doc[field] = dict(section)
    return section


def _check_kind(doc: Mapping[str, Any], path: Path, what: str) -> None:
    if not doc:
        return
    if doc.get("kind") != "Secret" or doc.get("apiVersion") != "v1":
        raise SinkError(f"{path}: not a v1 Kubernetes Secret (apiVersion {doc.get('apiVersion')!r}, "
                        f"kind {doc.get('kind')!r}){_left(what)}")


def _holds(visible: Mapping[str, Any], name: str) -> bool:
    return any(isinstance(visible.get(f), dict) and name in visible[f] for f in FIELDS)


def _disposable(path: LeafPath, names: set[str]) -> bool:
    """Values keyform would write again itself when re-creating the Secret with only `names`."""
    return (path in (("apiVersion",), ("kind",), ("type",), ("metadata", "name"), ("metadata", "namespace"))
            or path[:2] == ("metadata", "labels")
            or (len(path) == 2 and path[0] in ("data", "stringData") and path[1] in names))


def option_problems(options: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Semantic checks of a k8s-secret sink's options beyond the schema: (option path, message)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    name = options.get("name")
    if isinstance(name, str) and (len(name) > 253 or not _SUBDOMAIN.fullmatch(name)):
        problems.append((("name",), f"{name!r} is not a valid Kubernetes object name (lowercase letters, "
                                    "digits, '-' and '.', starting and ending with a letter or digit)"))
    namespace = options.get("namespace")
    if isinstance(namespace, str) and (len(namespace) > 63 or not _LABEL.fullmatch(namespace)):
        problems.append((("namespace",), f"{namespace!r} is not a valid Kubernetes namespace (lowercase "
                                         "letters, digits and '-', at most 63 characters)"))
    labels = options.get("labels")
    for key, value in (labels.items() if isinstance(labels, dict) else ()):
        problem = _label_key_problem(str(key))
        if problem:
            problems.append((("labels", key), problem))
        if isinstance(value, str) and value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
            problems.append((("labels", key), f"label value {value!r} is not valid (at most 63 letters, digits, "
                                              "'-', '_' or '.', starting and ending with a letter or digit)"))
    if options.get("encrypt") == "sops":
        problems += recipient_problems(options)
    else:
        problems += [((option,), f"{option} recipients need encrypt: sops")
                     for option in _RECIPIENT_OPTIONS if option in options]
    return problems


def _label_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        return f"label key {key!r}: the prefix must be a DNS subdomain (e.g. example.com/)"
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (f"label key {key!r} is not valid (a name of at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit, with an optional DNS prefix/)")
    return None


TYPE = SinkType(name="k8s-secret", required="path", open=lambda config: K8sSecretSink.from_options(config.options),
                check=option_problems, scan=lambda config: K8sSecretSink.from_options(config.options).entries(),
                entry_name_problem=lambda config, name: K8sSecretSink.name_problem(name),
                description="a Kubernetes Secret manifest, optionally sops-encrypted")
