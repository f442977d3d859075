"""`load_workspace`: manifest paths → a validated `Workspace`, or a KeyformError listing every problem.

Passes, each collecting all of its diagnostics before the next: find and read the files; parse YAML
(syntax, duplicate keys); check each file against the JSON Schema; then the semantic pass across
files (`build`). A file that fails to parse is left out of the later passes.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import stat
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from keyform.durations import utcnow
from keyform.errors import Diagnostic, KeyformError, SourceLoc
from keyform.fsio import MiB, NotAFileError, TooLargeError, read_capped
from keyform.gcpause import paused
from keyform.lazyre import LazyPattern
from keyform.manifest import parsecache
from keyform.manifest.build import build_workspace
from keyform.manifest.document import YamlDocument, YamlPath
from keyform.manifest.plugintypes import plugin_provider_names
from keyform.manifest.schema import schema_problems, uses_plugins
from keyform.manifest.sources import ManifestFile, Report
from keyform.model import ProviderConfig, Workspace
from keyform.render.safe import one_line

DEFAULT_MANIFEST = "keyform.yaml"
MANIFEST_SUFFIXES = (".yaml", ".yml")
_VERSION_LINE = LazyPattern(rb"^version:", re.MULTILINE)
# a line only a keyform manifest starts (`version: 1`, or one of its own top-level sections)
_KEYFORM_LINE = LazyPattern(rb"^(?:version:[ \t]*[\"']?1[\"']?[ \t]*(?:#.*)?\r?$|(?:keys|providers|sinks|policies):)",
                            re.MULTILINE)
# a plain top-level name (a line's start); a hidden file with one no manifest has is another tool's
_TOP_LEVEL_NAME = LazyPattern(rb"^([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*:(?=[ \t]|\r?$)", re.MULTILINE)
_MANIFEST_SECTIONS = ("version", "providers", "sinks", "keys", "policies", "defaults", "state")
# ... and what a hand typing one writes instead: a singular, a slip of a letter or two
_SECTION_LOOKALIKES = (*_MANIFEST_SECTIONS, "provider", "sink", "key", "policy", "default")
log = logging.getLogger(__name__)


def looks_like_manifest(path: str, data: bytes) -> bool:
    """Whether a file given where JSON goes (a PLANFILE, `--state FILE`) that is not JSON is most
    likely a manifest (`keyform apply keyform.yaml`): named like one, or with a `version:` line."""
    return bool(data.strip()) and (path.endswith(MANIFEST_SUFFIXES) or _VERSION_LINE.search(data[:65536]) is not None)


def load_workspace(paths: Sequence[str | Path] = (), *, now: datetime | None = None,
                   cwd: Path | None = None, state_override: str | None = None) -> Workspace:
    """Load and validate the manifests at `paths` (files or directories) into one Workspace.

    A directory contributes its `*.yaml` and `*.yml` files, sorted by name; it is not searched
    recursively, and an entry of that name that is not a regular file (a broken symlink, a
    directory, a FIFO) is an error, not passed over (`_directory_members`). With no paths,
    `keyform.yaml` in `cwd` (default: the current directory) is read.
    Relative paths inside a manifest are relative to that manifest's directory; the state path is
    relative to the first manifest's. Raises KeyformError with every problem found, each at
    `file:line` (file names relative to `cwd` where possible). `state_override`: the `--state FILE`
    the command uses (as the backend opens it: relative to the current directory), whose files no
    sink may write, besides the manifests' own local state's.
    """
    base = Path(os.path.abspath(cwd or Path.cwd()))
    files = manifest_files(paths, base)
    with paused():  # ~10 objects per manifest line, none in cycles (keyform.gcpause)
        return _load(files, base, now or utcnow(), state_override)


def _load(files: Sequence[Path], base: Path, now: datetime, state_override: str | None = None) -> Workspace:
    report = Report()
    parsed: list[ManifestFile] = []
    contents: dict[str, bytes] = {}
    docs: list[tuple[YamlDocument, Path]] = []
    fresh: dict[str, bool] = {}  # file → parsed now without a problem (worth caching)
    for path in files:
        name = display_name(path, base)
        data = _read(path, name, report)
        if data is None:
            continue
        contents[name] = data
        doc = parsecache.load(data, name)
        if doc is None:
            before = len(report.diagnostics)
            doc = _parse_yaml(data, name, report)
            fresh[name] = len(report.diagnostics) == before
        if doc is not None:
            docs.append((doc, path.parent))
    # keys may use a plug-in provider declared in another file: the schema pass needs them all
    plugin_providers = {n: t for doc, _ in docs for n, t in plugin_provider_names(doc.value).items()}
    for doc, directory in docs:
        before = len(report.diagnostics)
        parsed.append(_check_schema(doc, directory, report, plugin_providers))
        if not doc.schema_checked and fresh.get(doc.file) and len(report.diagnostics) == before \
                and not uses_plugins(doc.value, plugin_providers):
            parsecache.store(contents[doc.file], doc)  # clean, and valid against the built-in schema
    workspace = None
    # A file that did not parse would make the cross-file checks misleading: stop before them.
    if len(parsed) == len(files):
        # digest names relative to the first manifest's directory: a saved plan stays valid when
        # applied from another working directory or another checkout of the same repository
        anchor = files[0].parent
        stable = {os.path.relpath(path, anchor): contents[display_name(path, base)] for path in files}
        workspace = build_workspace(parsed, report, now=now, file_names=tuple(contents),
                                    digest=lambda providers: _digest(stable, _definitions(providers, anchor)),
                                    state_override=state_override, manifests=tuple(map(str, files)))
    else:
        from keyform.manifest.restglue import unknown_key_fields
        unknown_key_fields(parsed, report)
    if workspace is None or report.diagnostics:
        raise KeyformError(sorted(report.diagnostics, key=_order))
    return workspace


def _order(diagnostic: Diagnostic) -> tuple[str, int, str]:
    loc = diagnostic.loc
    return (loc.file, loc.line, diagnostic.message) if loc else ("", 0, diagnostic.message)


def manifest_files(paths: Sequence[str | Path], cwd: Path) -> list[Path]:
    """The manifest files named by `paths`, absolute, in order, each once."""
    if not paths:
        paths = [DEFAULT_MANIFEST]
    found: list[Path] = []
    problems: list[Diagnostic] = []
    for given in paths:
        path = Path(os.path.normpath(cwd / os.path.expanduser(given)))  # `~nosuchuser` stays as written
        shown = one_line(str(given))  # (a newline or escape in it: one line)
        if path.is_dir():
            members, refused = _directory_members(path, cwd)
            if not members and not refused:
                skipped = any(ignored_name(p.name) and _NEAR_MANIFEST.search(p.name) for p in _listing(path))
                problems.append(Diagnostic(f"{shown}: no manifest files (*.yaml, *.yml) in this directory"
                                           + ("; hidden, backup and autosave files (.NAME, NAME~, #NAME#) are "
                                              "skipped" if skipped else "")))
            found.extend(members)
            problems.extend(refused)
        elif path.exists():
            found.append(path)
        elif path.is_symlink():
            problems.append(Diagnostic(f"{shown}: broken symlink (-> {_link_target(path)}): "
                                       "the file it points to does not exist"))
        else:
            problems.append(Diagnostic(f"{shown}: no such file or directory"))
    if problems:
        raise KeyformError(problems)
    return list(dict.fromkeys(found))


_NOT_REGULAR = ((stat.S_ISDIR, "a directory, not a manifest file (directories are not searched recursively)"),
                (stat.S_ISFIFO, "a FIFO, not a regular file"), (stat.S_ISSOCK, "a socket, not a regular file"),
                (stat.S_ISCHR, "a character device, not a regular file"),
                (stat.S_ISBLK, "a block device, not a regular file"))


def _directory_members(directory: Path, cwd: Path) -> tuple[list[Path], list[Diagnostic]]:
    """(the manifest files directly in `directory`, sorted by name; a problem for every entry named
    like one that cannot be read as one). Each `*.yaml` / `*.yml` entry must be a regular file or
    a symlink to one: a broken symlink, a directory, a FIFO, a socket or a device is an error, never
    passed over (the keys a file declares would be planned for deletion). Names Terraform passes
    over in a configuration directory are skipped (`ignored_name`): hidden files (an Emacs lock
    `.#keys.yaml`, a dangling symlink, was an error while the file was being edited), backups
    ending in `~` and Emacs autosaves `#NAME#`. A file that cannot be read is reported by `_read`."""
    members: list[Path] = []
    problems: list[Diagnostic] = []
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        return [], [Diagnostic(f"{display_name(directory, cwd)}: cannot list the directory: {exc.strerror or exc}")]
    for path in entries:
        if path.suffix not in MANIFEST_SUFFIXES or ignored_name(path.name):
            if path.suffix in MANIFEST_SUFFIXES and _hidden_manifest(path):
                problems.append(Diagnostic(
                    f"{display_name(path, cwd)}: a hidden file that reads like a keyform manifest: "
                    "keyform passes over hidden files in a directory, as Terraform does, and would plan its keys "
                    "for deletion; rename it to be read (or give it with -f), or move it out of the directory"))
            elif _NEAR_MANIFEST.search(path.name):  # (`notes.txt` and the like: nobody wonders)
                log.debug("manifests: %s skipped: %s", display_name(path, cwd), skip_reason(path.name))
            continue
        shown = display_name(path, cwd)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            if path.is_symlink():
                problems.append(Diagnostic(f"{shown}: broken symlink (-> {_link_target(path)}): "
                                           "the file it points to does not exist"))
            continue  # removed since the listing: not a manifest any more
        except OSError as exc:
            what = "a symlink loop" if exc.errno == errno.ELOOP else f"cannot read the file: {exc.strerror or exc}"
            problems.append(Diagnostic(f"{shown}: {what}"))
            continue
        if stat.S_ISREG(mode):
            members.append(path)
            continue
        words = next((words for test, words in _NOT_REGULAR if test(mode)), "not a regular file")
        problems.append(Diagnostic(f"{shown}: {words}"))
    return members, problems


def _hidden_manifest(path: Path) -> bool:
    """Whether a hidden regular file (not a link: an Emacs lock `.#NAME` is one) reads like a keyform
    manifest: a mapping with `version: 1`, or `keys:`, `providers:`, `sinks:` or `policies:` at the
    top level, and no top-level name a manifest does not have (a misspelling of a section's name
    counts as one: `_section_name`). Passing over a manifest that keyform read before (or one a user
    named `.keys.yaml`) would plan its keys for deletion: such a file is an error, never skipped in
    silence. `.pre-commit-config.yaml` and other tools' dot-files have no such name, or (GoReleaser's
    `version: 1`, sops-nix's `keys:` anchors) names of their own (`builds:`, `creation_rules:`).

    The top-level names are those YAML reads (`_top_level`): a quoted description whose second
    line starts `Note: ...`, a manifest written as JSON or with quoted names, were passed over. A
    file that YAML does not read as one mapping (a syntax error, several documents), or is larger
    than 64 KiB (a megabyte of another tool's YAML takes a second to read), is judged by its lines
    in its first 64 KiB."""
    try:  # (never following a link, never blocking on a FIFO put there since the listing)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.read(fd, 65536)
        if _SECTION_WORD.search(head) is None:  # (most tools' files: not read further)
            return False
        whole = not os.read(fd, 1)
    except OSError:
        return False
    finally:
        os.close(fd)
    read = _top_level(head) if whole else None
    if read is None:
        return _KEYFORM_LINE.search(head) is not None and all(
            _section_name(name.decode("ascii")) for name in {m.group(1) for m in _TOP_LEVEL_NAME.finditer(head)})
    version, names = read
    return (version or not _KEYFORM_SECTIONS.isdisjoint(names)) and all(_section_name(name) for name in names)


# a word every keyform manifest holds, however written
_SECTION_WORD = LazyPattern(rb"version|keys|providers|sinks|policies")
_KEYFORM_SECTIONS = frozenset({"keys", "providers", "sinks", "policies"})


def _top_level(data: bytes) -> tuple[bool, set[str]] | None:
    """(whether the document says `version: 1`, its top-level names) when `data` is one YAML
    mapping of plain names; None when YAML reads it otherwise (a syntax error, another kind of
    document, a name that is not text). Composed, not built: another tool's tags and anchors cost
    nothing."""
    import yaml  # (a hidden file with a manifest's word only: not at every start-up)

    loader = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    try:
        root = yaml.compose(data.decode("utf-8"), Loader=loader)
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    names: set[str] = set()
    version = False
    for key, value in root.value:
        if not isinstance(key, yaml.ScalarNode):
            return None
        names.add(key.value)
        if key.value == "version" and isinstance(value, yaml.ScalarNode):
            version = value.value.strip() in ("1", "1.0")
    return version, names


def _section_name(name: str) -> bool:
    """Whether a top-level `name` is a manifest's section, or a misspelling of one (`provider:`,
    `Keys:`, `polices:`, `defualts:`): close to one of `_SECTION_LOOKALIKES` by difflib's ratio
    (0.8 or more) and a slip of the hand away from it, a letter added, dropped or changed or two
    next to each other swapped (once in a name of up to six letters, twice in a longer one); or
    two letters next to each other swapped, whatever difflib says (`kyes`, `ekys`, `sikn` fall
    under 0.8: a four-letter name's swap is 0.75; found by an adversarial review). A
    hidden manifest with a slip in a section's name is still one (it was passed over in silence,
    its keys planned for deletion); other tools' names (`builds:`, `creation_rules:`, `repos:`,
    `stages:`, `project_name:`) are not that close to any, and GoReleaser's `signs:`, at difflib's
    0.8 from `sinks`, is two letters changed in a five-letter name: a `.goreleaser.yaml` holding
    `version: 1` and `signs:` only was refused as a hidden keyform manifest."""
    text = name.lower()
    if text in _MANIFEST_SECTIONS:
        return True
    import difflib  # (a hidden file with a keyform line only: not at every start-up)

    if any(_swapped(text, section) for section in _SECTION_LOOKALIKES):
        return True  # (`kyes`: at difflib's 0.75 from `keys`, a short name's swap falls under 0.8)
    return any(_slips_within(text, section, 1 if len(section) <= 6 else 2)
               for section in difflib.get_close_matches(text, _SECTION_LOOKALIKES, n=len(_SECTION_LOOKALIKES),
                                                        cutoff=0.8))


def _swapped(text: str, word: str) -> bool:
    """Whether `text` is `word` with two letters next to each other swapped (`kyes`, `ekys`, `sikn`)."""
    if len(text) != len(word) or text == word:
        return False
    i = next(i for i, (a, b) in enumerate(zip(text, word)) if a != b)
    return i + 1 < len(word) and text[i] == word[i + 1] and text[i + 1] == word[i] and text[i + 2:] == word[i + 2:]


def _slips_within(text: str, word: str, most: int) -> bool:
    """Whether `text` is at most `most` slips from `word`: letters added, dropped or changed, or two
    adjacent ones swapped (the optimal string alignment distance)."""
    if abs(len(text) - len(word)) > most:  # (each added or dropped letter is a slip: a long name costs nothing)
        return False
    before: list[int] = []
    row = list(range(len(word) + 1))
    for i in range(1, len(text) + 1):
        current = [i] + [0] * len(word)
        for j in range(1, len(word) + 1):
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (text[i - 1] != word[j - 1]))
            if i > 1 and j > 1 and text[i - 1] == word[j - 2] and text[i - 2] == word[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        before, row = row, current
    return row[-1] <= most


def _listing(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


# a name a manifest's would be but for a mark around it: `.keys.yaml`, `keys.yaml~`, `#keys.yaml#`,
# Vim's swap `.keys.yaml.swp`, `keys.yaml.bak`, `keys.YAML` (names are matched case-sensitively)
_NEAR_MANIFEST = LazyPattern(r"\.ya?ml(?:$|[.~#])", re.IGNORECASE)


def skip_reason(name: str) -> str:
    """Why a directory's entry named like a manifest (`_NEAR_MANIFEST`) is not read, as `-v` says it."""
    if name.startswith(".#"):
        return "an Emacs lock file (.#NAME)"
    if name.startswith("."):
        return "a hidden file (.NAME)"
    if name.endswith("~"):
        return "an editor's backup (NAME~)"
    if name.startswith("#") and name.endswith("#"):
        return "an Emacs autosave (#NAME#)"
    return "not named *.yaml or *.yml"


def ignored_name(name: str) -> bool:
    """Whether a directory's entry `name` is passed over, as Terraform passes it over in a
    configuration directory (hashicorp/terraform, configs/parser_config_dir.go, `IsIgnoredFile`): a
    hidden file (`.NAME`: also an Emacs lock `.#NAME`), an editor's backup (`NAME~`) or an Emacs
    autosave (`#NAME#`). A file named with `-f` is read whatever its name."""
    return name.startswith(".") or name.endswith("~") or (name.startswith("#") and name.endswith("#"))


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:  # pragma: no cover - replaced since it was seen as a symlink
        return "?"


def display_name(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it lies below it, else absolute."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def _digest(contents: Mapping[str, bytes], definitions: Mapping[str, str]) -> str:
    """The workspace digest a saved plan is checked against (`Workspace.digest`): sha256 over the
    manifest files' names and bytes, in sorted name order, then over each REST definition file the
    providers use (`_definitions`). Everything else that shapes an apply is either checked again
    at apply (policies, env and file inputs, the state) or code (plug-ins, exec sink programs),
    which no digest covers. Without definitions the digest is what it was before they counted."""
    digest = hashlib.sha256()
    for name in sorted(contents):
        data = contents[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    for name in sorted(definitions):
        digest.update(f"definition\0{name}\0{definitions[name]}\0".encode())
    return digest.hexdigest()


def _definitions(providers: Mapping[str, ProviderConfig], anchor: Path) -> dict[str, str]:
    """The REST definition files `providers` were built from, each named relative to `anchor` (as
    the manifests are) → the sha256 of the bytes it was built from. A definition decides the host,
    the paths and the bodies an apply sends the token and the key's attributes to, so editing one
    after `plan --out` must make that plan stale."""
    # `definition` is a RestDefinition, set for `type: rest` only (keyform.manifest.restdef is not
    # imported here: it brings PyYAML, which a load from the parse cache never needs otherwise)
    return {os.path.relpath(config.definition.path, anchor): config.definition.sha256
            for config in providers.values() if config.definition is not None}


MAX_MANIFEST_BYTES = 64 * MiB  # ~30 times the benchmark's 10,000 keys; /dev/zero or a huge file is refused


def _read(path: Path, name: str, report: Report) -> bytes | None:
    """The file's bytes, within `MAX_MANIFEST_BYTES`, from a regular file or a pipe named with `-f`
    (`-f <(render-manifests)`; a directory's pipes are refused before this, `_directory_members`),
    never a device (`-f /dev/zero` ran out of memory)."""
    try:
        return read_capped(path, MAX_MANIFEST_BYTES, fifo=True)[0]
    except NotAFileError:
        problem = "not a regular file or a pipe (a device or a socket): manifests are read from files"
    except TooLargeError as exc:
        problem = f"{exc.strerror}: too large for a manifest"
    except OSError as exc:
        problem = f"cannot read the file: {exc.strerror}"
    report.diagnostics.append(Diagnostic(problem, SourceLoc(name, 1)))
    return None


def _parse(data: bytes, name: str, directory: Path, report: Report) -> ManifestFile | None:
    """YAML and schema passes for one file; None when it cannot take part in the semantic pass."""
    doc = _parse_yaml(data, name, report)
    return None if doc is None else _check_schema(doc, directory, report, plugin_provider_names(doc.value))


def _parse_yaml(data: bytes, name: str, report: Report) -> YamlDocument | None:
    """The YAML pass for one file; None when it cannot take part in the schema and semantic passes."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        report.diagnostics.append(Diagnostic("the file is not valid UTF-8", SourceLoc(name, line)))
        return None
    from keyform.manifest.yamlsource import parse_yaml  # PyYAML: only when a file is not cached

    doc, problems = parse_yaml(text, name)
    report.extend(problems)
    if doc is None:
        return None
    if doc.value is None:
        report.diagnostics.append(Diagnostic("the file is empty; a manifest starts with `version: 1`",
                                             SourceLoc(name, 1)))
        return None
    if not isinstance(doc.value, dict):
        kind = "a list" if isinstance(doc.value, list) else "a single value"
        report.diagnostics.append(Diagnostic(
            f"the top level must be a mapping of sections (version, providers, keys, ...), not {kind}",
            doc.loc(())))
        return None
    return doc


def _check_schema(doc: YamlDocument, directory: Path, report: Report,
                  plugin_providers: Mapping[str, str]) -> ManifestFile:
    """The schema pass for one parsed file."""
    # Entries the YAML pass already reported as damaged are skipped later, and schema complaints
    # about them (a follow-on of the same problem) are not repeated.
    broken: set[YamlPath] = {path[:2] for path in doc.damaged}
    for path, diagnostic in schema_problems(doc, plugin_providers):
        if not any(path[:len(d)] == d for d in doc.damaged):
            report.diagnostics.append(diagnostic)
        broken.add(path[:2])
    broken.discard(())
    return ManifestFile(doc, directory, frozenset(broken))
