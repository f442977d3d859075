"""The semantic pass: merge the files' declarations and build the `Workspace` model.

Runs after the YAML and schema passes on every file that parsed. Entries that failed the schema are
known by name (so references to them are not reported as unknown) but not built. Each problem is
reported at its own line and the pass goes on, so one run lists them all.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from keyform.durations import parse_duration
from keyform.fsio import NAME_MAX, too_long_to_replace
from keyform.manifest.document import YamlPath
from keyform.manifest.keyspecs import KeyContext, build_keys
from keyform.manifest.references import check_references
from keyform.manifest.secretrefs import build_ref
from keyform.manifest.sources import Declaration, Declarations, ManifestFile, Report, dotted, known_names
from keyform.model import (
    EnvRef,
    FileRef,
    KeySpec,
    ProviderConfig,
    RateLimit,
    SinkConfig,
    StateConfig,
    Workspace,
    org_id_problem,
)
from keyform.sinks.registry import option_problems
from keyform.typeregistry import find_sink_type, provider_type

if TYPE_CHECKING:
    from keyform.policy import Policy

DEFAULT_STATE_PATH = "keyform.state.json"
SECTIONS = ("providers", "sinks", "keys", "policies")
_SINGULAR = {"providers": "provider", "sinks": "sink", "keys": "key", "policies": "policy"}
# Sink options holding a filesystem path, made absolute against the declaring manifest.
SINK_PATH_OPTIONS = ("path", "dir")
# exec sink options holding an argv; a program given as a relative path is resolved like a path.
EXEC_COMMAND_OPTIONS = ("command", "remove_command", "read_command")


def build_workspace(files: Sequence[ManifestFile], report: Report, *, now: datetime,
                    file_names: tuple[str, ...],
                    digest: Callable[[Mapping[str, ProviderConfig]], str],
                    state_override: str | None = None, manifests: Sequence[str] = ()) -> Workspace | None:
    """The merged model, or None when anything was reported (the caller raises). `digest` gives
    the workspace digest of the built providers: the REST definition files they were built from
    count, besides the manifests (`manifest.loader._digest`). `state_override`: the `--state FILE`
    the command will use (relative to the current directory, as the backend opens it), whose files
    no sink may write, as no sink may write those of the manifests' own local state."""
    declared = _declarations(files, report)
    state_path = _state_path(files, report)
    state_backend = _state_backend(files, report)
    fingerprint_key = _single_setting(files, ("state", "fingerprint_key"), report)
    fp_ref = build_ref(fingerprint_key[1], fingerprint_key[0]) if fingerprint_key and isinstance(
        fingerprint_key[1], dict) else None
    default_sink = _default_sink(files, declared["sinks"], report)
    providers = {name: p for name, d in declared["providers"].items() if (p := _provider(d, report))}
    sinks = {name: s for name, d in declared["sinks"].items() if (s := _sink(d, report))}
    if any(p.definition is not None for p in providers.values()):
        from keyform.manifest.restglue import check_definition_names
        check_definition_names(providers, declared["providers"], report)
    _check_shared_files(sinks, declared["sinks"], report)
    # (plain dicts of the few providers and sinks: each key asks whether its sink is declared)
    context = KeyContext(declared_providers=dict(declared["providers"]), providers=providers,
                         declared_sinks=dict(declared["sinks"]), sinks=sinks, default_sink=default_sink,
                         now=now, report=report)
    consumers: list[str] = []
    keys = build_keys(declared["keys"].groups(), context, consumers)
    check_references(keys, declared["keys"], sinks, report, consumers)
    states = [(state_path, "the manifests' local state")] if state_backend.backend == "local" else []
    if state_override:
        states.append((state_override, f"the state --state {state_override}"))
    reviewed = [(path, "a manifest file") for path in manifests] + [
        (str(p.definition.path), f"the REST definition file of provider {name}")
        for name, p in sorted(providers.items()) if p.definition is not None]
    _check_state_files(sinks, declared["sinks"], keys, states, report, reviewed)
    policies = _policies(declared["policies"], report)
    if report.diagnostics:
        return None
    return Workspace(files=file_names, digest=digest(providers), state_path=state_path, providers=providers,
                     sinks=sinks, keys=keys, default_sink=default_sink, state_backend=state_backend,
                     fingerprint_key=fp_ref if isinstance(fp_ref, (EnvRef, FileRef)) else None,
                     fingerprint_key_loc=fingerprint_key[0].loc(("state", "fingerprint_key"))
                     if fingerprint_key else None,
                     policies=policies)


def _policies(declared: Mapping[str, Declaration], report: Report) -> tuple[Policy, ...]:
    """`policies:` entries → Policy (their parameters checked here: regexes, JSON Schemas). The
    policy module is imported only by manifests that declare policies."""
    out: list[Policy] = []
    if not declared:
        return ()
    from keyform.policy import build_policy, locator

    for name, decl in declared.items():
        if not decl.valid:
            continue
        policy = build_policy(name, decl.value, locator(decl.source, decl.path), report.diagnostics)
        if policy is not None:
            out.append(policy)
    return tuple(out)


def _declarations(files: Sequence[ManifestFile], report: Report) -> dict[str, Declarations]:
    """Each section's entries across all files; a second definition is an error naming the first."""
    declared = {s: Declarations(s) for s in SECTIONS}
    for source in files:
        for section in SECTIONS:
            entries = source.data.get(section)
            if not isinstance(entries, dict) or not source.valid((section,)):
                continue
            known = declared[section]
            for name in known.add(entries, source):
                report.error(source, (section, name),
                             f"{_SINGULAR[section]} {name!r} is already defined at {known[name].loc}")
    return declared


def _single_setting(files: Sequence[ManifestFile], path: tuple[str, str],
                    report: Report) -> tuple[ManifestFile, Any] | None:
    """A workspace-wide setting (`state.path`, `defaults.sink`): set in at most one file."""
    found: tuple[ManifestFile, Any] | None = None
    for source in files:
        section = source.data.get(path[0])
        if not isinstance(section, dict) or path[1] not in section or not source.valid(path):
            continue
        if found is not None:
            report.error(source, path, f"{dotted(path)} is already set at {found[0].loc(path)}")
            continue
        found = (source, section[path[1]])
    return found


def _state_path(files: Sequence[ManifestFile], report: Report) -> str:
    """`state.path`, relative to the *first* manifest's directory (SPEC §2), made absolute."""
    setting = _single_setting(files, ("state", "path"), report)
    text = setting[1] if setting and isinstance(setting[1], str) else DEFAULT_STATE_PATH
    if setting and "\0" in text:  # no file can be named so (it was an "internal error" at the lock)
        report.error(setting[0], ("state", "path"), "state.path: holds a NUL character, which no file name can")
        text = DEFAULT_STATE_PATH
    return files[0].resolve(text) if files else text


def _state_backend(files: Sequence[ManifestFile], report: Report) -> StateConfig:
    """`state.backend` with its options: `dsn` and `workspace` belong to postgres, `path` to local."""
    settings = {name: _single_setting(files, ("state", name), report) for name in ("backend", "dsn", "workspace")}
    # state.path is read (and its duplicates reported) by _state_path
    settings["path"] = next(((f, f.data["state"]["path"]) for f in files
                             if isinstance(f.data.get("state"), dict) and "path" in f.data["state"]), None)
    backend_setting = settings["backend"]
    backend = backend_setting[1] if backend_setting and isinstance(backend_setting[1], str) else "local"
    for name, wanted in (("path", "local"), ("dsn", "postgres"), ("workspace", "postgres")):
        found = settings[name]
        if found is not None and backend != wanted:
            report.error(found[0], ("state", name),
                         f"state.{name} applies only to the {wanted} backend (state.backend is {backend})")
    if backend != "postgres":
        return StateConfig()
    dsn_setting = settings["dsn"]
    if dsn_setting is None:
        written = any(isinstance(f.data.get("state"), dict) and "dsn" in f.data["state"] for f in files)
        if backend_setting is not None and not written:  # a dsn that failed the schema is reported already
            report.error(backend_setting[0], ("state", "backend"),
                         "state.backend postgres needs state.dsn: {env: NAME} or {file: PATH} holding the "
                         "connection string")
        return StateConfig()
    source, value = dsn_setting
    ref = build_ref(value, source) if isinstance(value, dict) else None
    if not isinstance(ref, (EnvRef, FileRef)):
        return StateConfig()
    workspace_setting = settings["workspace"]
    name = workspace_setting[1] if workspace_setting and isinstance(workspace_setting[1], str) else "default"
    return StateConfig(backend="postgres", dsn=ref, workspace=name, loc=source.loc(("state", "dsn")))


def _default_sink(files: Sequence[ManifestFile], sinks: Mapping[str, Declaration],
                  report: Report) -> str | None:
    setting = _single_setting(files, ("defaults", "sink"), report)
    if setting is None or not isinstance(setting[1], str):
        return None
    source, name = setting
    if name not in sinks:
        report.error(source, ("defaults", "sink"), f"defaults.sink: unknown sink {name!r}{known_names(sinks, 'sinks')}")
    return name


def _provider(decl: Declaration, report: Report) -> ProviderConfig | None:
    if not decl.valid:
        return None
    value, source, path = decl.value, decl.source, decl.path
    ptype: str = value["type"]
    if ptype == "rest":
        from keyform.manifest.restglue import build_rest_provider
        return build_rest_provider(decl, report)
    default_url = provider_type(ptype).default_base_url  # the schema pass knows the type
    if "base_url" not in value and default_url is None:
        report.error(source, path, f"{dotted(path)}: missing required field 'base_url' "
                     f"(provider type {ptype} has no default)")
        return None
    raw_url = value.get("base_url", default_url)
    url_env = raw_url["env"] if isinstance(raw_url, dict) else None  # checked when first used
    base_url = "" if url_env else _base_url(raw_url, source, (*path, "base_url"), report)
    token = build_ref(value["token"], source)
    raw_org = value.get("org_id")
    org_id: str | EnvRef | None = EnvRef(raw_org["env"]) if isinstance(raw_org, dict) else raw_org
    org_problem = org_id_problem(decl.name, raw_org) if isinstance(raw_org, str) else None
    if org_problem:  # sent as a header: refused here as `plan` would (`resolve.provider_credentials`)
        report.error(source, (*path, "org_id"), org_problem)
    limits = _provider_limits(value, source, path, report)
    ok, rate_limit = _rate_limit(value.get("rate_limit"), source, (*path, "rate_limit"), report)
    if base_url is None or limits is None or not ok or org_problem:
        return None
    return ProviderConfig(name=decl.name, type=ptype, base_url=base_url, token=token, org_id=org_id,
                          loc=decl.loc, deadline=limits[0], max_response_bytes=limits[1], rate_limit=rate_limit,
                          token_loc=source.loc((*path, "token")),
                          org_id_loc=source.loc((*path, "org_id")) if raw_org is not None else None,
                          base_url_env=url_env, base_url_loc=source.loc((*path, "base_url")) if url_env else None,
                          options={k: v for k, v in value.items() if k not in PROVIDER_COMMON_OPTIONS})


MAX_DEADLINE = timedelta(hours=24)
# Options every provider takes; the rest are the type's own (ProviderConfig.options).
PROVIDER_COMMON_OPTIONS = ("type", "base_url", "token", "org_id", "deadline", "max_response_bytes", "rate_limit")


def _provider_limits(value: Mapping[str, Any], source: ManifestFile, path: YamlPath,
                     report: Report) -> tuple[float, int] | None:
    """(deadline seconds, body cap bytes) from the provider's options (the schema checked their form)."""
    deadline, cap = 60.0, int(value.get("max_response_bytes", 32 * 1024 * 1024))
    ok = True
    if "deadline" in value:
        where = (*path, "deadline")
        try:
            delta = parse_duration(value["deadline"])
        except ValueError as exc:
            report.error(source, where, f"{dotted(where)}: {exc}")
            delta = MAX_DEADLINE
            ok = False
        if not timedelta(0) < delta <= MAX_DEADLINE:
            report.error(source, where, f"{dotted(where)}: {value['deadline']} is not between 1s and 24h")
            ok = False
        deadline = delta.total_seconds()
    if cap < 1024:
        where = (*path, "max_response_bytes")
        report.error(source, where, f"{dotted(where)}: {source.doc.written(where, cap)} is less than 1024 bytes")
        ok = False
    if not ok:
        return None
    return deadline, cap


_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
MIN_RATE_PER_SECOND = 1 / 86400  # one call a day
MAX_RATE_PER_SECOND = 100_000.0
MAX_BURST = 10_000


def _rate_limit(raw: Any, source: ManifestFile, path: YamlPath,
                report: Report) -> tuple[bool, RateLimit | None]:
    """`20/s` or `{rate: 20/s, burst: 5}` (shape checked by the schema) → (True, RateLimit), or
    (True, None) when absent; (False, None) when a problem was reported."""
    if raw is None:
        return True, None
    text, burst = (raw["rate"], raw.get("burst", 1)) if isinstance(raw, dict) else (raw, 1)
    number, _, unit = text.partition("/")
    per_second = float(number) / _RATE_UNITS[unit]
    where = dotted(path)
    if not per_second > 0:
        report.error(source, path, f"{where}: {text} allows no calls at all; the rate must be above 0")
        return False, None
    if per_second < MIN_RATE_PER_SECOND:  # 1e-320/s: its interval is infinite, and the limiter's arithmetic NaN
        report.error(source, path, f"{where}: {text} is less than one call a day (0.042/h), the least keyform paces")
        return False, None
    if per_second > MAX_RATE_PER_SECOND:
        report.error(source, path, f"{where}: {text} is more than {MAX_RATE_PER_SECOND:,.0f}/s; "
                                   "remove rate_limit to leave the rate unlimited")
        return False, None
    if not 1 <= burst <= MAX_BURST:
        shown = source.doc.written((*path, "burst"), burst)
        report.error(source, (*path, "burst"), f"{where}.burst: {shown} is not between 1 and {MAX_BURST:,}")
        return False, None
    return True, RateLimit(per_second=per_second, burst=int(burst))


def _base_url(text: str, source: ManifestFile, path: YamlPath, report: Report) -> str | None:
    """http(s) only; plain http only for loopback hosts; no credentials, query or fragment."""
    problem = base_url_problem(text)
    if problem:
        report.error(source, path, f"{dotted(path)}: {problem}")
        return None
    return text.rstrip("/")


def base_url_problem(text: str) -> str | None:
    """What is wrong with `text` as a provider's base URL, or None (also for `{env: NAME}` values)."""
    if any(c.isspace() or not c.isprintable() for c in text):  # a lone surrogate (bytes not UTF-8 in the
        return "must be one URL with no blank, line break or control character, in UTF-8"  # environment) too
    try:
        url = urlsplit(text)
        host = url.hostname
        url.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "not a valid URL"
    problem = None
    if url.scheme.lower() not in ("http", "https") or not host:
        problem = "must be an http:// or https:// URL with a host"
    elif url.username is not None or url.password is not None:
        problem = "must not contain credentials; use the provider's token"
    elif url.query or url.fragment:
        problem = "must not have a query or a fragment"
    elif url.scheme.lower() == "http" and not _is_loopback(host):
        problem = "http:// is allowed only for loopback hosts (localhost, 127.0.0.0/8, ::1); use https://"
    return problem


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_shared_files(sinks: dict[str, SinkConfig], declared: Mapping[str, Declaration], report: Report) -> None:
    """Two sinks may name one file only as exact aliases (same type and options): otherwise each
    rewrite would put the file in its own format, or under other recipients, and lose the other's entries."""
    first: dict[str, SinkConfig] = {}
    for name in sorted(sinks, key=lambda n: (sinks[n].loc.file, sinks[n].loc.line)):
        cfg = sinks[name]
        if not cfg.file_id:  # writes no local file
            continue
        stype = find_sink_type(cfg.type)
        option = stype.required if stype is not None else "path"
        other = first.setdefault(cfg.file_id, cfg)
        if other is cfg or (other.type, _besides(other.options)) == (cfg.type, _besides(cfg.options)):
            continue
        decl = declared[name]
        how = f"a {other.type} sink" if other.type != cfg.type else "a sink of the same type with other options"
        report.error(decl.source, (*decl.path, option),
                     f"{dotted((*decl.path, option))}: the same file as sink {other.name!r} ({other.loc}), {how}; "
                     "two sinks writing one file differently would overwrite each other's entries")


# The local backend's files for a state at PATH (`backends.local.LocalBackend`): PATH + suffix.
STATE_FILES = (("", "the file"), (".backup", "the backup"), (".lock", "the lock file"),
               (".journal", "the apply journal"))


def _check_state_files(sinks: dict[str, SinkConfig], declared: Mapping[str, Declaration], keys: Mapping[str, KeySpec],
                       states: Sequence[tuple[str, str]], report: Report,
                       reviewed: Sequence[tuple[str, str]] = ()) -> None:
    """No sink may write the local state or its backup, lock or journal (`states`: each state's
    path and how to name it): its secrets would sit in them (a committed backup), and the state
    would break after the key was made. Nor a manifest or a REST definition file (`reviewed`: each
    path and what it is): the secret would be committed with it, and the next load would read a
    dotenv or JSON file as one. Compared as
    the files resolve (links followed), at the sink's `path` or `dir` line; a `file` sink's `dir`
    and each key's entry in it too."""
    if not states and not reviewed:
        return
    broken = "would put secrets in it and break the state"
    owned = _Owned()
    for path, label in states:
        for suffix, what in STATE_FILES:
            owned.add(path + suffix, f"{what} of {label}: a sink writing there {broken}")
    for path, what in reviewed:
        owned.add(path, f"{what}: a sink writing there would put secrets in it, to be committed and reviewed with it")
    entries: dict[str, list[tuple[str, str]]] = {}  # a file sink → its keys' (key, entry name)
    if any(cfg.type == "file" for cfg in sinks.values()):  # (no pass over the keys without one)
        for address, spec in keys.items():
            if spec.sink is not None and spec.sink.sink in sinks and sinks[spec.sink.sink].type == "file":
                entries.setdefault(spec.sink.sink, []).append((address, spec.sink.name))
    for name, cfg in sinks.items():
        decl = declared[name]
        for option in SINK_PATH_OPTIONS:
            written = cfg.options.get(option)
            if not isinstance(written, str):
                continue
            where = (*decl.path, option)
            taken = owned.find(written)
            if taken:
                report.error(decl.source, where, f"{dotted(where)}: {written} is {taken}; name another file")
                continue
            if option != "dir" or cfg.type != "file":
                continue
            for address, entry in sorted(entries.get(name, ())):
                if taken := owned.find(os.path.join(written, entry)):
                    report.error(decl.source, where, f"{dotted(where)}: the entry {entry!r} of key {address!r} "
                                 f"would be {os.path.join(written, entry)}, which is {taken}; name another "
                                 "directory, or set that key's sink.as")


def _resolutions(path: str) -> set[str]:
    """Where a write to `path` lands: the file a link there leads to, and the name itself in its
    directory as the kernel resolves it (a rename replaces the link)."""
    head, name = os.path.split(path.rstrip(os.sep) or os.sep)
    try:
        return {os.path.realpath(path), os.path.join(os.path.realpath(head or os.curdir), name)}
    except ValueError:  # a NUL in a --state path: no file, and the backend refuses it
        return {path}


def _file_identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the regular file at `path` (links followed), or None."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


class _Owned:
    """Files no sink may write, each with what it is and what a write there would do (the message).
    A path is one of them when it resolves to one (`_resolutions`), is the same file by device and
    inode (another hard link, or a name a case-insensitive file system such as macOS's or Windows'
    takes for it), or differs from one only in letter case: on such a file system it would be the
    same file once made, and the manifests may be applied from one."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        self.files: dict[tuple[int, int], str] = {}
        self.folded: dict[str, str] = {}

    def add(self, path: str, what: str) -> None:
        for place in _resolutions(path):
            self.paths.setdefault(place, what)
            self.folded.setdefault(place.casefold(), what)
            if (identity := _file_identity(place)) is not None:
                self.files.setdefault(identity, what)

    def find(self, path: str) -> str | None:
        places = sorted(_resolutions(path))
        if found := next((self.paths[p] for p in places if p in self.paths), None):
            return found
        if found := next((self.files[i] for p in places if (i := _file_identity(p)) in self.files), None):
            return f"the same file as {found}"
        if found := next((self.folded[p.casefold()] for p in places if p.casefold() in self.folded), None):
            return f"on a case-insensitive file system (macOS, Windows) {found}"
        return None


def _unwritable_path(path: str, *, file: bool) -> str | None:
    """Why no file can be written at `path` (a sink's `path`, or the `dir` its entries go in): a
    component over NAME_MAX bytes; a file's own name `fsio.too_long_to_replace`."""
    parts = [p for p in path.split(os.sep) if p]
    for part in parts:
        if len(part.encode("utf-8", "surrogateescape")) > NAME_MAX:
            return f"the path has a name longer than {NAME_MAX} bytes ({part[:40]}...), which no file system takes"
    too_long = too_long_to_replace(parts[-1]) if file and parts else None
    return f"the file name is {too_long}" if too_long else None


def _besides(options: Mapping[str, Any]) -> dict[str, Any]:
    """A sink's options other than where it writes."""
    return {k: v for k, v in options.items() if k not in SINK_PATH_OPTIONS}


def _sink(decl: Declaration, report: Report) -> SinkConfig | None:
    if not decl.valid:
        return None
    sink_type: str = decl.value["type"]
    options = {k: v for k, v in decl.value.items() if k != "type"}
    problems = option_problems(sink_type, options)
    for where, message in problems:
        report.error(decl.source, (*decl.path, *where), f"{dotted((*decl.path, *where))}: {message}")
    if problems:
        return None
    stype = find_sink_type(sink_type)
    for option in (*SINK_PATH_OPTIONS, *(stype.path_options if stype else ())):
        if isinstance(options.get(option), str):
            options[option] = decl.source.resolve(options[option])
    if sink_type == "exec":
        # commands run in the declaring manifest's directory; `./bin/put` is relative to it too
        options["workdir"] = str(decl.source.directory)
        for option in EXEC_COMMAND_OPTIONS:
            argv = options.get(option)
            if isinstance(argv, list) and argv and "/" in argv[0] and not os.path.isabs(argv[0]):
                options[option] = [decl.source.resolve(argv[0]), *argv[1:]]
    at = stype.required if stype is not None else "path"
    written = options.get(at)
    if isinstance(written, str) and (problem := _unwritable_path(written, file=at == "path")):
        # every write would fail (File name too long) after the key was made: that key revoked, each apply
        report.error(decl.source, (*decl.path, at), f"{dotted((*decl.path, at))}: {problem}")
        return None
    return SinkConfig(name=decl.name, type=sink_type, options=options, loc=decl.loc,
                      file_id=os.path.realpath(written) if isinstance(written, str) else "")
