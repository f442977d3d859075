"""The sops sink: a SOPS-encrypted file (dotenv, YAML or JSON) meant to be committed next to the
manifests, as Flux and most GitOps tools decrypt it natively. keyform runs the real `sops` binary.

Writing merges: decrypt the file → set the entry → encrypt the whole document → `atomic_write`.
Plaintext only ever travels through pipes (stdin/stdout of `sops`), never through a file, not even a
temporary one. Entry names are cleartext in a sops file (only values are encrypted), so reading or
removing an entry the file does not hold needs no key.

Keys: with `age`/`pgp`/`kms` recipients in the manifest, those are used and `.sops.yaml` is ignored;
with none, sops applies the creation rule of the nearest `.sops.yaml` above the file that matches
the file's path. Whatever
the configuration, every output is checked before it is written: the new entry and every value that
was encrypted before must be `ENC[...]`, else nothing is written.

Without a decryption key (age: `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`, `SOPS_AGE_KEY_CMD` or the
default `~/.config/sops/age/keys.txt`) the sink cannot be read back: `readable` is False and the
planner replaces a `secret_of` source instead of reading it. Updating an existing file needs the key
too — except when the file holds nothing but the entry being replaced, which is then re-created.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from keyform.errors import SinkError
from keyform.fsio import StrPath
from keyform.groupcommit import GroupCommit
from keyform.records import record
from keyform.sinks.pathlocks import lock_for
from keyform.sinks.procs import ProgramFlooded, ProgramTimeout, describe_output, run
from keyform.sinks.sinkfs import read_file, write_file
from keyform.typeregistry import SinkType

if TYPE_CHECKING:
    from keyform.model import SinkConfig

FORMATS = ("dotenv", "yaml", "json")
INSTALL_HINT = "pip install 'keyform[sops]'"
SOPS_TIMEOUT = 120.0  # seconds; a KMS round trip can be slow, a hang must not be forever
_ENC_PREFIX = "ENC["
_DOTENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNENCRYPTED_SUFFIX = "_unencrypted"  # sops' default: values under such keys are left in cleartext

LeafPath = tuple[Any, ...]


def find_sops() -> str:
    """The `sops` executable: the one installed with keyform (`keyform[sops]`, next to the running
    Python), else the first on PATH. SinkError with install instructions when there is none."""
    beside = Path(sys.executable).parent / "sops"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("sops")
    if found:
        return found
    raise SinkError(f"the sops binary was not found (neither next to {sys.executable} nor on PATH); "
                    f"install it with: {INSTALL_HINT}  (or put sops >= 3.9 on PATH)")


def format_for(path: StrPath) -> str | None:
    """The sops format a file name implies: `.env` → dotenv, `.yaml`/`.yml` → yaml, `.json` → json."""
    name = Path(path).name.lower()
    if name.endswith((".yaml", ".yml")):
        return "yaml"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".env") or name.startswith(".env."):
        return "dotenv"
    return None


@record
class Recipients:
    """The master keys a new document is encrypted for (empty: `.sops.yaml` decides)."""

    age: tuple[str, ...] = ()
    pgp: tuple[str, ...] = ()
    kms: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Recipients:
        return cls(*(tuple(_recipient_list(options.get(kind))) for kind in ("age", "pgp", "kms")))

    def __bool__(self) -> bool:
        return bool(self.age or self.pgp or self.kms)

    def args(self) -> list[str]:
        out: list[str] = []
        for flag, values in (("--age", self.age), ("--pgp", self.pgp), ("--kms", self.kms)):
            if values:
                out += [flag, ",".join(values)]
        return out


def _recipient_list(value: Any) -> Iterator[str]:
    """A string (sops' comma-separated form allowed) or a list of them → the recipients."""
    items = [value] if isinstance(value, str) else list(value or ())
    for item in items:
        for part in str(item).split(","):
            if part.strip():
                yield part.strip()


def age_identity_available(recipients: Recipients, env: Mapping[str, str] | None = None) -> bool:
    """Whether sops would find an age identity: the places `sops decrypt` itself looks."""
    env = os.environ if env is None else env
    if env.get("SOPS_AGE_KEY") or env.get("SOPS_AGE_KEY_CMD"):
        return True
    home = env.get("HOME") or os.path.expanduser("~")
    candidates = [env.get("SOPS_AGE_KEY_FILE", "")]
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    candidates.append(os.path.join(config_home, "sops", "age", "keys.txt"))
    if sys.platform == "darwin":  # pragma: no cover - sops' macOS default
        candidates.append(os.path.join(home, "Library", "Application Support", "sops", "age", "keys.txt"))
    if any(r.startswith("ssh-") for r in recipients.age):  # ssh keys used as age identities
        candidates += [env.get("SOPS_AGE_SSH_PRIVATE_KEY_FILE", ""), os.path.join(home, ".ssh", "id_ed25519"),
                       os.path.join(home, ".ssh", "id_rsa")]
    return any(c and os.path.isfile(c) for c in candidates)


def can_decrypt(recipients: Recipients) -> bool:
    """Whether read-back is worth attempting. Only age can be ruled out locally (no identity
    anywhere sops looks); PGP (gpg-agent), KMS (cloud credentials) and `.sops.yaml` rules are left to
    sops — a read that then fails counts as a missing entry and the planner re-issues the key."""
    if not recipients or recipients.pgp or recipients.kms:
        return True
    return age_identity_available(recipients)


class SopsFile:
    """One sops-encrypted document on disk, edited as a JSON value through the `sops` binary.

    Callers hold `lock_for(path)` around a read-modify-write. The last decrypted document is kept in
    memory keyed by the exact ciphertext, so a read after a write (or two reads) decrypts once.
    """

    def __init__(self, path: StrPath, fmt: str, recipients: Recipients, encrypted_regex: str | None = None,
                 timeout: float = SOPS_TIMEOUT) -> None:
        self.path = Path(path)
        self.format = fmt
        self.recipients = recipients
        self.encrypted_regex = encrypted_regex
        self.timeout = timeout
        self._cache: tuple[bytes, str] | None = None  # (ciphertext, its plaintext as JSON text)

    def __repr__(self) -> str:
        return f"SopsFile({str(self.path)!r}, {self.format!r})"

    def raw(self, what: str) -> bytes | None:
        """The file's bytes (ciphertext), or None when it does not exist."""
        try:
            return read_file(self.path)
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot read the sops file{what}: {exc.strerror}") from None

    def visible(self, raw: bytes) -> dict[str, Any] | None:
        """The document as it is on disk (names and cleartext values, `ENC[...]` for encrypted ones),
        without sops' metadata; None when it cannot be parsed as the sink's format."""
        return _visible(raw, self.format)

    def decrypt(self, raw: bytes, what: str) -> dict[str, Any]:
        """The plaintext document (a mapping); {} for an empty file. SinkError when sops cannot."""
        if not raw.strip():
            return {}
        if self._cache is not None and self._cache[0] == raw:
            return dict(json.loads(self._cache[1]))
        argv = [find_sops(), "decrypt", "--input-type", self.format, "--output-type", "json",
                "--filename-override", str(self.path)]
        result = self._run(argv, raw, f"decrypt it{what}")
        if result.returncode != 0:
            raise SinkError(f"{self.path}: cannot decrypt it{what}: {decrypt_failure(result.stderr)}")
        try:
            text = result.stdout.decode("utf-8")
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise SinkError(f"{self.path}: sops decrypted it to something that is not JSON{what}") from None
        if not isinstance(doc, dict):
            raise SinkError(f"{self.path}: the decrypted document is not a mapping{what}; it was left untouched")
        self._cache = (raw, text)
        return doc

    def load_for_update(self, raw: bytes | None, what: str,
                        disposable: Callable[[LeafPath], bool]) -> dict[str, Any] | None:
        """The document to edit ({} when there is no file). When it cannot be decrypted but every
        value in it is `disposable` (about to be replaced), None: the caller starts afresh.
        Otherwise SinkError: a merge without the plaintext would lose the other entries."""
        if raw is None:
            return {}
        try:
            return self.decrypt(raw, what)
        except SinkError as exc:
            seen = self.visible(raw)
            if seen is not None and all(disposable(p) for p, _ in _leaves(seen)):
                return None
            raise SinkError(f"{exc}; keyform needs to decrypt an existing sops file to update it without "
                            "losing its other entries (see docs/sinks.md), so it was left untouched") from None

    def store(self, doc: Mapping[str, Any], old_raw: bytes | None, what: str,
              written: Iterable[tuple[LeafPath, str]] = ()) -> None:
        """Encrypt `doc` and replace the file atomically (0600). `written` are the (path, secret) just
        set: they, and every value encrypted in `old_raw` that is still there, must come out encrypted."""
        written = list(written)
        plaintext = json.dumps(doc, ensure_ascii=False)
        secrets = [v for _, v in _leaves(doc) if isinstance(v, str)]
        argv = [find_sops()]
        if self.recipients:
            argv += ["--config", os.devnull]  # the manifest names the keys: no .sops.yaml rule applies
        argv += ["encrypt", "--input-type", "json", "--output-type", self.format,
                 "--filename-override", str(self.path), *self.recipients.args()]
        if self.encrypted_regex:
            argv += ["--encrypted-regex", self.encrypted_regex]
        result = self._run(argv, plaintext.encode("utf-8"), f"encrypt it{what}")
        if result.returncode != 0:
            raise SinkError(f"{self.path}: sops could not encrypt it{what}: "
                            f"{describe_output(result.stderr, secrets)}; the file was left untouched")
        out = result.stdout
        required = {p for p, _ in written}
        if old_raw is not None:
            before = self.visible(old_raw)
            current = {p for p, _ in _leaves(doc)}
            if before is not None:
                required |= {p for p in _encrypted_paths(before) if p in current}
        self._check_encrypted(out, required, [s for _, s in written], what)
        try:
            write_file(self.path, out)
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot write{what}: {exc.strerror}") from None
        self._cache = (out, plaintext)

    def _check_encrypted(self, out: bytes, required: set[LeafPath], secrets: Sequence[str], what: str) -> None:
        seen = self.visible(out)
        if seen is None:
            raise SinkError(f"{self.path}: sops produced output keyform cannot parse{what}; "
                            "the file was left untouched")
        encrypted = _encrypted_paths(seen)  # once: `required` holds every encrypted entry of the file
        plain = sorted((p for p in required if p not in encrypted), key=repr)
        text = out.decode("utf-8", errors="replace")
        if plain or any(len(s) >= 8 and s in text for s in secrets):
            where = ", ".join(".".join(str(part) for part in p) for p in plain) or "a value"
            raise SinkError(f"{self.path}: sops would leave {where} unencrypted{what} (check encrypted_regex, "
                            "unencrypted_suffix or the .sops.yaml creation rule); nothing was written")

    def _run(self, argv: list[str], stdin: bytes, doing: str) -> Any:
        # sops looks for .sops.yaml upwards from its working directory: start at the file's own
        cwd = self.path.parent
        while not cwd.is_dir() and cwd.parent != cwd:
            cwd = cwd.parent
        try:
            return run(argv, stdin=stdin, timeout=self.timeout, cwd=str(cwd))
        except ProgramTimeout:
            raise SinkError(f"{self.path}: sops did not {doing} within {self.timeout:g}s") from None
        except ProgramFlooded as exc:
            raise SinkError(f"{self.path}: sops printed more than {exc.shown} as it tried to {doing}; it was "
                            "killed") from None
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot run {argv[0]}: {exc.strerror}") from None


class SopsSink:
    """A flat `{name: secret}` document, encrypted with sops."""

    def __init__(self, path: StrPath, format: str | None = None, recipients: Recipients | None = None,
                 encrypted_regex: str | None = None) -> None:
        self.path = Path(path)
        fmt = format or format_for(self.path)
        if fmt not in FORMATS:
            raise SinkError(f"{self.path}: cannot tell the sops format from the file name; set format "
                            f"({', '.join(FORMATS)})")
        self.format = fmt
        self._batches: GroupCommit[tuple[str, str]] = GroupCommit()
        self.file = SopsFile(self.path, fmt, recipients or Recipients(), encrypted_regex)
        self.readable: bool = can_decrypt(self.file.recipients)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SopsSink:
        return cls(options["path"], options.get("format"), Recipients.from_options(options),
                   options.get("encrypted_regex"))

    def name_problem(self, name: str) -> str | None:
        """Why `name` cannot be an entry of this sops file, or None if it can."""
        return entry_problem(name, self.format, self.file.encrypted_regex)

    def write(self, address: str, name: str, secret: str) -> None:
        what = f" (writing {name} for key {address})"
        self._check(name, what)
        if "\0" in secret:
            raise SinkError(f"{self.path}: cannot write {name} for key {address}: the secret contains a NUL character")
        # concurrent writers share one decrypt-merge-encrypt of the file (keyform.groupcommit):
        # one `sops encrypt` (~50 ms) per batch of secrets, not one per secret behind the file lock
        self._batches.write(lambda: lock_for(self.path, across_processes=True, create_dir=True), (name, secret),
                            lambda batch: self._set(batch, what),
                            lambda: self._set([(name, secret)], what))

    def _set(self, entries: list[tuple[str, str]], what: str) -> None:
        """Set every (name, secret) in one encryption and atomic rewrite; the caller holds the file lock."""
        names = {(n,) for n, _ in entries}
        raw = self.file.raw(what)
        doc = self.file.load_for_update(raw, what, lambda p: p[:1] in names)
        doc = {} if doc is None else doc
        doc.update(entries)
        self.file.store(doc, raw, what, written=[((n,), secret) for n, secret in entries])

    def read(self, name: str) -> str | None:
        what = f" (reading {name})"
        self._check(name, what)
        with lock_for(self.path):
            raw = self.file.raw(what)
            if raw is None or not _may_hold(self.file.visible(raw), name):
                return None
            value = self.file.decrypt(raw, what).get(name)
        if value is None or isinstance(value, str):
            return value
        raise SinkError(f"{self.path}: entry {name!r} is not a string")

    def remove(self, name: str) -> None:
        what = f" (removing {name})"
        self._check(name, what)
        with lock_for(self.path, across_processes=True):
            raw = self.file.raw(what)
            if raw is None or not _may_hold(self.file.visible(raw), name):
                return
            doc = self.file.load_for_update(raw, what, lambda p: p[:1] == (name,))
            if doc is None:
                doc = {}
            elif name not in doc:
                return
            doc.pop(name, None)
            self.file.store(doc, raw, what)

    def _check(self, name: str, what: str) -> None:
        problem = self.name_problem(name)
        if problem:
            raise SinkError(f"{self.path}: {problem}{what}")


def entry_problem(name: str, fmt: str, encrypted_regex: str | None) -> str | None:
    """Why `name` cannot be a top-level entry of a sops file of format `fmt`, or None if it can."""
    if not name:
        return "the entry name is empty"
    if fmt == "dotenv" and not _DOTENV_NAME.fullmatch(name):
        return (f"{name!r} is not a valid environment variable name "
                "(letters, digits, '_'; not starting with a digit)")
    if name == "sops" or (fmt == "dotenv" and name.startswith("sops_")):
        return f"{name!r} is reserved for sops' own metadata"
    if name.endswith(_UNENCRYPTED_SUFFIX):
        return f"{name!r} ends with {_UNENCRYPTED_SUFFIX!r}, which sops leaves unencrypted"
    if encrypted_regex:
        try:
            matches = re.search(encrypted_regex, name) is not None
        except (re.error, OverflowError, RecursionError):
            matches = True  # reported on the option itself; the output check still guards
        if not matches:
            return f"{name!r} does not match encrypted_regex {encrypted_regex!r}, so sops would leave it unencrypted"
    return None


def option_problems(options: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Semantic checks of a sops sink's options beyond the schema: (option path, message)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    path = options.get("path")
    if isinstance(path, str) and not options.get("format") and format_for(path) is None:
        problems.append((("path",), f"cannot tell the sops format from {Path(path).name!r}; "
                                    f"name it *.env, *.yaml, *.yml or *.json, or set format "
                                    f"({', '.join(FORMATS)})"))
    problems += recipient_problems(options)
    regex = options.get("encrypted_regex")
    if isinstance(regex, str):
        try:
            re.compile(regex)
        except (re.error, OverflowError, RecursionError) as exc:  # `a{99999999999}`: OverflowError
            problems.append((("encrypted_regex",), f"not a valid regular expression ({exc})"))
    return problems


def recipient_problems(options: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Recipients that cannot be right: an age recipient is `age1...` or an ssh public key."""
    problems: list[tuple[tuple[str, ...], str]] = []
    for recipient in _recipient_list(options.get("age")):
        if recipient.upper().startswith("AGE-SECRET-KEY"):
            problems.append((("age",), "this is an age secret key; list its public recipient (age1...) "
                                       "and keep the secret key out of the manifest"))
        elif not recipient.startswith(("age1", "ssh-ed25519 ", "ssh-rsa ")):
            problems.append((("age",), f"{recipient[:40]!r} is not an age recipient (age1... or an ssh "
                                       "public key)"))
    return problems


def decrypt_failure(stderr: bytes) -> str:
    """sops' (long, wrapped) decryption error in a few words."""
    lines = stderr.decode("utf-8", "replace").splitlines()
    text = " ".join(line.strip() for line in lines)
    if "Failed to get the data key" not in text:
        return describe_output(stderr)
    if "failed to load age identities" in text:
        return ("no age identity was found (set SOPS_AGE_KEY_FILE, SOPS_AGE_KEY or SOPS_AGE_KEY_CMD, or create "
                "~/.config/sops/age/keys.txt)")
    if "did not match any of the recipients" in text:
        return "the available age identities are not among the file's recipients"
    reasons: dict[str, list[str]] = {}  # master key → its wrapped error lines ("- | ...", "| ...")
    current: list[str] | None = None
    for line in lines:
        head = re.fullmatch(r"\s+(\S+): FAILED", line)
        if head:
            current = reasons.setdefault(head.group(1), [])
        elif current is not None and line.strip().startswith(("-", "|")):
            current.append(line.strip().lstrip("-| "))
        else:
            current = None
    detail = "; ".join(f"{key}: {' '.join(parts)}" for key, parts in reasons.items())
    return "no master key could decrypt it" + (f" ({detail[:300]})" if detail else "")


def _may_hold(visible: Mapping[str, Any] | None, name: str) -> bool:
    """False only when the cleartext view proves the entry absent (names are never encrypted)."""
    return visible is None or name in visible


def _visible(raw: bytes, fmt: str) -> dict[str, Any] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.strip():
        return {}
    doc: Any
    if fmt == "dotenv":
        doc = {}
        for line in text.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                return None
            if not key.startswith("sops_"):
                doc[key.strip()] = value
        return doc
    try:
        doc = json.loads(text) if fmt == "json" else yaml.load(text, Loader=_YamlLoader)
    except (ValueError, yaml.YAMLError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    doc.pop("sops", None)
    return doc


_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _leaves(value: Any, prefix: LeafPath = ()) -> Iterator[tuple[LeafPath, Any]]:
    """(path, value) of every scalar in a JSON-like document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*prefix, i))
    else:
        yield prefix, value


def _encrypted_paths(visible: Mapping[str, Any]) -> set[LeafPath]:
    return {p for p, v in _leaves(visible) if isinstance(v, str) and v.startswith(_ENC_PREFIX)}


def _entry_name_problem(config: SinkConfig, name: str) -> str | None:
    fmt = config.options.get("format") or format_for(str(config.options.get("path", "")))
    return entry_problem(name, fmt, config.options.get("encrypted_regex")) if fmt else None


TYPE = SinkType(name="sops", required="path", open=lambda config: SopsSink.from_options(config.options),
                check=option_problems,
                entry_name_problem=_entry_name_problem,
                description="a sops-encrypted YAML/JSON/dotenv file (plaintext through pipes only)")
