"""Policies: rules every matching key must follow, checked by `validate`, `plan` and `apply`.

A policy comes from a `policies:` section of the manifests (several files may contribute) or from
an org-wide `--policy FILE`. It names which keys it applies to (`match`), rule words the keys must
satisfy (`require`), a JSON Schema over the key's manifest entry (`schema`) and plan actions it
refuses (`forbid_actions`).

Rule words are a registry, `RULES` (word → `RuleWord`): a word has a phase, a parser for its
parameter (run when the policy is loaded: a bad parameter is an error at its `file:line`) and a
checker over `KeyFacts`. Phase `manifest` rules need only the manifests and run before any remote
call; phase `plan` rules run on the plan, with the state record and the remote key at hand (a
usage rule such as `max_idle` reads `facts.remote`; plan-phase rules see every key of the state,
changed or not). To add a word: `register(RuleWord(...))`
and list it under `$defs.policy.properties.require` in `schemas/manifest.schema.json` (a test
checks that both agree).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from keyform.durations import format_duration, parse_duration
from keyform.errors import Diagnostic, KeyformError, SourceLoc
from keyform.fsio import MiB, NotAFileError, TooLargeError, read_capped
from keyform.kinds import name_attribute
from keyform.model import KeySpec, Workspace
from keyform.plan import Action, Change, Plan
from keyform.records import record
from keyform.remote import RemoteKey, RemoteSnapshot
from keyform.render.safe import one_line
from keyform.state import KeyState, State

ERROR, WARNING = "error", "warning"
MANIFEST, PLAN = "manifest", "plan"


@record
class KeyFacts:
    """What a rule may look at for one key. `spec` and `entry` (the key's manifest entry as written)
    are None/empty for a key in the state only; `change`, `state` and `remote` only in the plan
    phase (`remote` only when the plan refreshed)."""

    address: str
    provider: str
    provider_type: str
    now: datetime
    spec: KeySpec | None = None
    entry: Mapping[str, Any] = field(default_factory=dict)
    sink_type: str | None = None
    change: Change | None = None
    state: KeyState | None = None
    remote: RemoteKey | None = None
    clock_offset: float | None = None  # the remote's API clock minus keyform's (RemoteSnapshot.clock_offset)


# A checker returns what is wrong (shown after the policy's message), or None when the key complies.
Checker = Callable[[Any, KeyFacts], "str | None"]


@record
class RuleWord:
    word: str
    phase: str  # MANIFEST | PLAN
    parse: Callable[[Any], Any]  # the written value → the checker's parameter; ValueError: invalid
    check: Checker
    declared_only: bool = True  # skip keys that are not in the manifests (state-only keys being deleted)


RULES: dict[str, RuleWord] = {}
# Words written at the policy's top level rather than under `require`.
TOP_LEVEL_WORDS = ("schema", "forbid_actions")


def register(rule: RuleWord) -> None:
    RULES[rule.word] = rule


@record
class Rule:
    word: RuleWord
    param: Any
    loc: SourceLoc


@record
class Policy:
    name: str
    loc: SourceLoc
    rules: tuple[Rule, ...]
    severity: str = ERROR
    message: str = ""
    providers: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()

    def matches(self, address: str, provider: str, provider_type: str) -> bool:
        if self.providers and not named_or_typed(provider, provider_type, self.providers, "provider"):
            return False
        return not self.addresses or any(fnmatch.fnmatchcase(address, g) for g in self.addresses)


def named_or_typed(name: str, type_: str | None, listed: Iterable[str], kind: str) -> bool:
    """Whether a provider instance or sink (`kind`) is one of `listed`, which names instances or
    types. A name that is also a type's name counts as that type only: a plaintext dotenv sink
    *named* `sops`, or a TextQL instance named `questra`, met an org-wide `allowed_sinks: [sops]`
    (or `allowed_providers: [questra]`, `match: {providers: [textql]}`) it was meant to fail."""
    from keyform import typeregistry

    listed = set(listed)
    if type_ is not None and type_ in listed:
        return True
    if name not in listed:  # most calls: the registry is not asked
        return False
    return name not in (typeregistry.provider_names() if kind == "provider" else typeregistry.sink_names())


@record
class Violation:
    policy: Policy
    address: str
    detail: str
    loc: SourceLoc | None

    @property
    def severity(self) -> str:
        return self.policy.severity

    @property
    def text(self) -> str:
        said = f"{self.policy.message} ({self.detail})" if self.policy.message else self.detail
        kind = " (warning)" if self.severity == WARNING else ""
        return f"policy {self.policy.name!r}{kind}: key {self.address!r}: {said}"

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.text, self.loc)

    def note(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        return f"{where}{self.text}"


# ------------------------------------------------------------------------------------ the rules


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _duration(value: Any) -> timedelta:
    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise ValueError("must be longer than 0")
    return delta


def _names(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of names")
    if not value:
        raise ValueError("an empty list would allow nothing; name at least one")
    return frozenset(value)


def _regex(value: Any) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except (re.error, TypeError, OverflowError, RecursionError) as exc:  # `a{99999999999}`: OverflowError
        raise ValueError(f"not a valid regular expression: {exc}") from None


def _json_schema(value: Any) -> Any:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise ValueError(f"not a valid JSON Schema{' (at ' + where + ')' if where else ''}: {exc.message}") from None
    except (OverflowError, RecursionError) as exc:  # a `pattern` of `a{99999999999}`, compiled by the check
        raise ValueError(f"not a valid JSON Schema: a pattern in it is not a valid regular expression ({exc})"
                         ) from None
    outside = sorted(r for r in _refs(value) if not r.startswith("#"))
    if outside:
        raise ValueError(f"$ref {outside[0]!r}: only references inside the schema (#/...) are allowed; "
                         "keyform fetches nothing")
    dangling = _dangling_ref(value)
    if dangling:
        raise ValueError(f"$ref {dangling!r} points at nothing in the schema")
    validator = Draft202012Validator(value)
    try:  # a loop every key would hit (`$ref: "#"`): said at the policy's line, once
        next(validator.iter_errors({}), None)
    except RecursionError:
        raise ValueError("a $ref leads back to itself without end") from None
    except Exception:  # anything else shows per key (`_check_schema`)
        pass
    return validator


def _dangling_ref(schema: Any) -> str | None:
    """The first `$ref` inside `schema` that resolves to nothing (`#/$defs/x` with no such
    definition), or None: said once at the policy's line, not as a failure of every key. A schema
    with an `$id` of its own somewhere is left to the per-key check (a nested `$id` moves the base
    that its refs resolve against)."""
    from referencing import Registry, Resource
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    if not isinstance(schema, dict) or any(k == "$id" for k in _keys(schema)):
        return None
    resolver = Registry().with_resource("", Resource.from_contents(schema, default_specification=DRAFT202012)) \
        .resolver()
    for ref in sorted(set(_refs(schema))):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            return ref
    return None


def _keys(schema: Any) -> Iterator[str]:
    """Every mapping key in a schema, at any depth."""
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            yield from node
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)


def _refs(schema: Any) -> Iterable[str]:
    """Every `$ref` / `$dynamicRef` string in a schema, at any depth."""
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("$ref", "$dynamicRef") and isinstance(v, str):
                    yield v
                else:
                    todo.append(v)
        elif isinstance(node, list):
            todo.extend(node)


def _actions(value: Any) -> frozenset[Action]:
    try:
        return frozenset(Action(v) for v in value)
    except (ValueError, TypeError):
        raise ValueError("expected a list of: create, update, replace, delete") from None


def _check_expiry(required: bool, f: KeyFacts) -> str | None:
    if required and f.spec is not None and f.spec.expiry.kind == "never":
        return "no expiry; set expires_in or expires_at"
    return None


def _check_rotation(required: bool, f: KeyFacts) -> str | None:
    if required and f.spec is not None and f.spec.rotation.before_expiry is None and f.spec.rotation.max_age is None:
        return "no rotation rule; set rotation.before_expiry or rotation.max_age"
    return None


def _check_max_lifetime(limit: timedelta, f: KeyFacts) -> str | None:
    if f.spec is None:
        return None
    expiry = f.spec.expiry
    if expiry.kind == "in" and expiry.duration is not None and expiry.duration > limit:
        return f"expires_in {expiry.text} is longer than {format_duration(limit)}"
    if expiry.kind == "at" and expiry.at is not None and expiry.at - f.now > limit:
        return f"expires_at {expiry.text} is more than {format_duration(limit)} away"
    if expiry.kind == "never":
        return f"no expiry, so no lifetime limit of {format_duration(limit)}"
    return None


def _check_max_age(limit: timedelta, f: KeyFacts) -> str | None:
    if f.spec is None:
        return None
    age = f.spec.rotation.max_age
    if age is None:
        return f"rotation.max_age is not set (at most {format_duration(limit)} required)"
    if age > limit:
        return f"rotation.max_age {format_duration(age)} is longer than {format_duration(limit)}"
    return None


def _check_name(pattern: re.Pattern[str], f: KeyFacts) -> str | None:
    attr = name_attribute(f.provider_type)
    name = f.spec.attrs.get(attr) if f.spec is not None else None
    if not isinstance(name, str) or pattern.fullmatch(name) is None:
        return f"{attr} {name!r} does not match {pattern.pattern!r}"
    return None


def _check_sinks(allowed: frozenset[str], f: KeyFacts) -> str | None:
    sink = f.spec.sink if f.spec is not None else None
    if sink is None or named_or_typed(sink.sink, f.sink_type, allowed, "sink"):
        return None
    return f"sink {sink.sink} ({f.sink_type}) is not one of: {', '.join(sorted(allowed))}"


def _check_providers(allowed: frozenset[str], f: KeyFacts) -> str | None:
    if named_or_typed(f.provider, f.provider_type, allowed, "provider"):
        return None
    return f"provider {f.provider} ({f.provider_type}) is not one of: {', '.join(sorted(allowed))}"


def _check_schema(validator: Any, f: KeyFacts) -> str | None:
    from jsonschema.exceptions import best_match
    from referencing.exceptions import Unresolvable

    try:
        error = best_match(validator.iter_errors(dict(f.entry)))
    except Unresolvable as exc:  # a local $ref to nowhere: the policy's own mistake
        return f"schema: cannot be evaluated ({type(exc).__name__}: {str(exc)[:120]})"
    except RecursionError:  # `$ref: "#"` reached again and again (for this key's fields)
        return "schema: cannot be evaluated: a $ref leads back to itself without end"
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path)
    message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return f"schema: {where + ': ' if where else ''}{message}"


def _check_forbidden(actions: frozenset[Action], f: KeyFacts) -> str | None:
    change = f.change
    if change is None or change.deposed or change.action not in actions:
        return None
    return f"the plan would {change.action.value} it, and this policy forbids that"


def _check_max_idle(limit: timedelta, f: KeyFacts) -> str | None:
    """Unused for `limit` or longer, by the provider's own usage data (keyform.usage). A key whose
    provider does not report usage (TextQL), or that the plan did not list, never violates it; nor
    does a key the plan deletes or replaces (that is the fix: the idle key does not stay)."""
    from keyform.usage import key_idle_for

    if f.change is not None and f.change.action in (Action.DELETE, Action.REPLACE, Action.CREATE):
        return None
    idle = key_idle_for(f.remote, f.provider_type, f.now, f.state.created_at if f.state is not None else None,
                        f.clock_offset)
    if idle is None or idle < limit:
        return None
    used = f.remote.last_used_at if f.remote is not None else None
    since = f"last used {used}" if used else "never used"
    return f"unused for {format_duration(idle)}, {since}; at most {format_duration(limit)} allowed"


for _rule in (
    RuleWord("expiry", MANIFEST, _flag, _check_expiry),
    RuleWord("max_lifetime", MANIFEST, _duration, _check_max_lifetime),
    RuleWord("rotation", MANIFEST, _flag, _check_rotation),
    RuleWord("max_age", MANIFEST, _duration, _check_max_age),
    RuleWord("name_pattern", MANIFEST, _regex, _check_name),
    RuleWord("allowed_sinks", MANIFEST, _names, _check_sinks),
    RuleWord("allowed_providers", MANIFEST, _names, _check_providers),
    RuleWord("schema", MANIFEST, _json_schema, _check_schema),
    RuleWord("forbid_actions", PLAN, _actions, _check_forbidden, declared_only=False),
    RuleWord("max_idle", PLAN, _duration, _check_max_idle),
):
    register(_rule)


# ---------------------------------------------------------------------------------- building


def build_policy(name: str, value: Mapping[str, Any], loc: Callable[[tuple[str | int, ...]], SourceLoc],
                 problems: list[Diagnostic]) -> Policy | None:
    """One schema-valid `policies.NAME` entry → Policy. `loc(path)` places a path inside the entry;
    a bad parameter (regex, JSON Schema, unknown word) is added to `problems` at its own line."""
    rules: list[Rule] = []
    before = len(problems)
    written: list[tuple[tuple[str | int, ...], str, Any]] = [
        (("require", w), w, v) for w, v in (value.get("require") or {}).items()]
    written += [((w,), w, value[w]) for w in TOP_LEVEL_WORDS if w in value]
    for path, word, raw in written:
        rule = RULES.get(word)
        where = f"policies.{name}.{'.'.join(str(p) for p in path)}"
        if rule is None:
            problems.append(Diagnostic(f"{where}: unknown rule word {word!r} (known: {', '.join(sorted(RULES))})",
                                       loc(path)))
            continue
        try:
            param = rule.parse(raw)
        except ValueError as exc:
            problems.append(Diagnostic(f"{where}: {exc}", loc(path)))
            continue
        rules.append(Rule(rule, param, loc(path)))
    if not rules and len(problems) == before:
        problems.append(Diagnostic(f"policies.{name}: the policy checks nothing; give require, schema or "
                                   "forbid_actions", loc(())))
    match = value.get("match") or {}
    for key in ("providers", "addresses"):
        if match.get(key) == []:
            problems.append(Diagnostic(f"policies.{name}.match.{key}: an empty list would match no key; "
                                       "remove it to match every key", loc(("match", key))))
    if len(problems) > before:
        return None
    return Policy(name=name, loc=loc(()), rules=tuple(rules), severity=value.get("severity", ERROR),
                  message=value.get("message", ""), providers=tuple(match.get("providers") or ()),
                  addresses=tuple(match.get("addresses") or ()))


# The most of a --policy file keyform reads: /dev/zero or a huge file is refused, not read until
# memory runs out.
MAX_POLICY_FILE_BYTES = 16 * MiB


def load_policy_files(paths: Sequence[str], cwd: Path | None = None) -> list[Policy]:
    """`--policy FILE`s: YAML files in the manifest format holding only `version: 1` and `policies:`,
    checked against the same schema. Every problem at `file:line`."""
    from keyform.manifest.loader import _parse, display_name
    from keyform.manifest.sources import Report

    base = Path(os.path.abspath(cwd or Path.cwd()))
    policies: list[Policy] = []
    problems: list[Diagnostic] = []
    for given in paths:
        path = Path(os.path.normpath(base / Path(given).expanduser()))
        name, given = display_name(path, base), one_line(str(given))  # (a newline or escape in it: one line)
        try:
            data = read_capped(path, MAX_POLICY_FILE_BYTES, fifo=True)[0]  # (a pipe: `--policy <(curl ...)`)
        except NotAFileError:
            problems.append(Diagnostic(f"--policy {given}: not a regular file or a pipe (a device or a socket); "
                                       "name a policy file"))
            continue
        except TooLargeError as exc:
            problems.append(Diagnostic(f"--policy {given}: {exc.strerror}; a policy file holds only policies"))
            continue
        except OSError as exc:
            problems.append(Diagnostic(f"--policy {given}: cannot read the file: {exc.strerror}"))
            continue
        report = Report()
        parsed = _parse(data, name, path.parent, report)
        problems.extend(report.diagnostics)
        if parsed is None or report.diagnostics:
            continue
        for section in parsed.data:
            if section not in ("version", "policies"):
                problems.append(Diagnostic(f"a --policy file holds only version and policies, not {section!r}",
                                           parsed.loc((section,))))
        entries = parsed.data.get("policies") or {}

        for pname, value in entries.items():
            policy = build_policy(pname, value, locator(parsed, ("policies", pname)), problems)
            if policy is not None:
                policies.append(policy)
    if problems:
        raise KeyformError(problems)
    return policies


def locator(source: Any, base: tuple[str | int, ...]) -> Callable[[tuple[str | int, ...]], SourceLoc]:
    """`loc(path)` for paths inside the entry at `base` of a parsed manifest file."""
    def loc(path: tuple[str | int, ...]) -> SourceLoc:
        at: SourceLoc = source.loc((*base, *path))
        return at
    return loc


def merge(manifest: Iterable[Policy], extra: Iterable[Policy]) -> tuple[Policy, ...]:
    """The manifests' policies and the --policy files' ones; a name used twice is an error naming both."""
    out: dict[str, Policy] = {}
    problems: list[Diagnostic] = []
    for p in [*manifest, *extra]:
        first = out.get(p.name)
        if first is not None:
            problems.append(Diagnostic(f"policy {p.name!r} is already defined at {first.loc}", p.loc))
            continue
        out[p.name] = p
    if problems:
        raise KeyformError(problems)
    return tuple(out.values())


# ---------------------------------------------------------------------------------- checking


def _facts(spec: KeySpec, workspace: Workspace, now: datetime, change: Change | None = None,
           state: KeyState | None = None, remote: RemoteKey | None = None,
           clock_offset: float | None = None) -> KeyFacts:
    sink = workspace.sinks.get(spec.sink.sink) if spec.sink else None
    return KeyFacts(address=spec.address, provider=spec.provider, provider_type=spec.provider_type, now=now,
                    spec=spec, entry=spec.entry, sink_type=sink.type if sink else None, change=change,
                    state=state, remote=remote, clock_offset=clock_offset)


def ambiguous_names(policies: Sequence[Policy], workspace: Workspace) -> list[Diagnostic]:
    """A policy's provider or sink name that is also a type's name means the type
    (`named_or_typed`); where the workspace has an instance of that name and of another type, the
    policy would silently stop meaning it (an instance `textql` of `type: rest`, no longer matched
    by `match: {providers: [textql]}`, left a `forbid_actions: [delete]` unenforced): an error."""
    from keyform import typeregistry

    instances = {"provider": {n: cfg.type for n, cfg in workspace.providers.items()},
                 "sink": {n: cfg.type for n, cfg in workspace.sinks.items()}}
    type_names = {"provider": set(typeregistry.provider_names()), "sink": set(typeregistry.sink_names())}
    types = {k.provider: k.provider_type for k in workspace.keys.values()}
    out: list[Diagnostic] = []
    for policy in policies:
        lists = [("provider", tuple(policy.providers), policy.loc)]
        for rule in policy.rules:
            if rule.word.word in ("allowed_providers", "allowed_sinks"):
                lists.append(("provider" if rule.word.word == "allowed_providers" else "sink",
                              tuple(sorted(rule.param)), rule.loc))
        for kind_, names, loc in lists:
            for name in names:
                own = instances[kind_].get(name)
                if own is None or name not in type_names[kind_] or name in (own, types.get(name)):
                    continue
                if own in names or types.get(name) in names:  # its own type is listed too: it matches
                    continue
                out.append(Diagnostic(
                    f"policy {policy.name}: {name!r} is a {kind_} type, and also the name of the {kind_} instance "
                    f"{name} (type {types.get(name, own) if kind_ == 'provider' else own}); here it means the type, "
                    f"which that instance is not: rename the instance, or list its type", loc))
    return out


def check_manifest(policies: Sequence[Policy], workspace: Workspace, now: datetime) -> list[Violation]:
    """Every violation of a `manifest`-phase rule, by key (manifest order) then policy."""
    if problems := ambiguous_names(policies, workspace):
        raise KeyformError(problems)
    found: list[Violation] = []
    active = [p for p in policies if any(r.word.phase == MANIFEST for r in p.rules)]
    if not active:
        return found
    at: tuple[Policy, Rule, str] | None = None  # the check running, for a budget that runs out
    try:
        with _time_budget(MANIFEST_CHECK_BUDGET):
            for spec in workspace.keys.values():
                facts: KeyFacts | None = None
                for policy in active:
                    if not policy.matches(spec.address, spec.provider, spec.provider_type):
                        continue
                    facts = facts or _facts(spec, workspace, now)
                    for rule in policy.rules:
                        at = (policy, rule, spec.address)
                        if rule.word.phase == MANIFEST and (detail := rule.word.check(rule.param, facts)):
                            found.append(Violation(policy, spec.address, detail, spec.loc))
    except _OutOfTime:
        policy, rule, address = at if at is not None else (active[0], active[0].rules[0], "?")
        raise KeyformError([Diagnostic(
            f"policy {policy.name}: {rule.word.word} took more than {MANIFEST_CHECK_BUDGET:g} s (on key {address}): "
            "a pattern that backtracks exponentially, such as ([a-z0-9]+-?)+; write it so that each character "
            "can match one way only, e.g. [a-z0-9]+(-[a-z0-9]+)*", rule.loc)]) from None
    return found


# The manifest-phase checks of one command (10,000 keys take well under a second): a regular
# expression that backtracks exponentially (`([a-z0-9]+-?)+` against a 34-character name ran for
# minutes) is stopped by then, in the main thread (`re` checks for signals while it matches).
MANIFEST_CHECK_BUDGET = 10.0


class _OutOfTime(Exception):
    pass


@contextmanager
def _time_budget(seconds: float) -> Iterator[None]:
    """SIGALRM after `seconds` raises _OutOfTime where the main thread is (elsewhere: no budget)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_plan(policies: Sequence[Policy], workspace: Workspace, plan: Plan, now: datetime,
               state: State | None = None, snapshot: RemoteSnapshot | None = None) -> list[Violation]:
    """Every violation of a `plan`-phase rule: by the plan's changes (deposed revocations excluded)
    and by the state's keys the plan leaves unchanged (`forbid_actions` ignores those)."""
    if problems := ambiguous_names(policies, workspace):
        raise KeyformError(problems)
    found: list[Violation] = []
    active = [p for p in policies if any(r.word.phase == PLAN for r in p.rules)]
    if not active:
        return found
    changes = {c.address: c for c in plan.changes if c.primary}
    unchanged = [ks for address, ks in (state.keys.items() if state is not None else ()) if address not in changes]
    items: list[Change | KeyState] = [*changes.values(), *unchanged]
    for item in items:
        change = item if isinstance(item, Change) else None
        address, provider, provider_type, remote_id = item.address, item.provider, item.provider_type, item.remote_id
        spec = workspace.keys.get(address)
        ks = state.keys.get(address) if state is not None else None
        remote, offset = None, None
        if snapshot is not None and remote_id:
            remote, offset = snapshot.lookup(provider, remote_id)[1], snapshot.clock_offset(provider)
        facts: KeyFacts | None = None
        for policy in active:
            if not (policy.matches(address, provider, provider_type) or _moved_off(policy, change, ks)):
                continue
            if facts is None:
                facts = _facts(spec, workspace, now, change, ks, remote, offset) if spec is not None else KeyFacts(
                    address=address, provider=provider, provider_type=provider_type,
                    now=now, change=change, state=ks, remote=remote, clock_offset=offset)
            for rule in policy.rules:
                if rule.word.phase != PLAN or (rule.word.declared_only and spec is None):
                    continue
                if detail := rule.word.check(rule.param, facts):
                    where = spec.loc if spec is not None else rule.loc
                    label = detail if spec is not None else f"{detail} (the key is in the state only)"
                    found.append(Violation(policy, address, label, where))
    return found


def _moved_off(policy: Policy, change: Change | None, recorded: KeyState | None) -> bool:
    """Whether `change` moves a key off a provider `policy` matches: a replace onto another instance
    or type names the new provider, so `match: {providers: [qp]}` (or `[questra]`, left for a
    `type: rest` of the same API under another name) matched nothing, and the guarded key was
    replaced, its old key revoked, under `forbid_actions: [replace]`. The recorded key counts too."""
    return (change is not None and recorded is not None
            and (recorded.provider, recorded.provider_type) != (change.provider, change.provider_type)
            and policy.matches(change.address, recorded.provider, recorded.provider_type))


def enforce(violations: Sequence[Violation]) -> list[str]:
    """Raise every error-severity violation (exit 1); return the warnings as plan notes."""
    errors = [v.diagnostic() for v in violations if v.severity == ERROR]
    if errors:
        raise KeyformError(errors)
    return [v.note() for v in violations if v.severity == WARNING]


def workspace_policies(workspace: Workspace, policy_files: Sequence[str],
                       cwd: Path | None = None) -> tuple[Policy, ...]:
    """The manifests' policies plus those of the --policy files."""
    extra = load_policy_files(policy_files, cwd) if policy_files else []
    return merge(workspace.policies, extra)
