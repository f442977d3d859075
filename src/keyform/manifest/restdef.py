"""Declarative REST provider definitions: a YAML file describing one key-issuing HTTP API
(`schemas/rest-provider.schema.json`, docs/providers-rest.md) → a checked `RestDefinition`.

Loaded like a manifest: the YAML-with-lines parser, the schema (fast check, then jsonschema for the
messages), then semantic checks (every `${...}` names something that exists, auth and pagination
have what they need), each problem at `file:line`. No I/O beyond reading the file and no httpx:
`validate` loads definitions too. The HTTP side is `keyform.providers.rest`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import field, replace
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from keyform.errors import Diagnostic, SourceLoc, is_failure
from keyform.fsio import NotAFileError, TooLargeError, read_capped
from keyform.manifest.document import YamlDocument, YamlPath
from keyform.manifest.fastcheck import SCHEMA_DIR, Check, bundled_check, bundled_schema
from keyform.manifest.sources import dotted
from keyform.model import header_problem
from keyform.pointers import at as at  # (re-exported: providers/rest.py reads them here)
from keyform.pointers import fold_name as fold_name
from keyform.pointers import pointer as pointer
from keyform.pointers import pointer_text as pointer_text
from keyform.records import record
from keyform.typeregistry import RESERVED_ATTRIBUTES, ProviderType

SCHEMA_PATH = SCHEMA_DIR / "rest-provider.schema.json"
MAX_BYTES = 1024 * 1024
# the fields of a rest provider block keyform reads itself: an option may not take one of these names
# (a `rate_limit` option was never set: the manifest's value became keyform's own rate limit)
PROVIDER_FIELDS = ("type", "definition", "base_url", "token", "deadline", "max_response_bytes", "rate_limit")
RESERVED_OPTIONS = frozenset(PROVIDER_FIELDS)
ATTRIBUTE_TYPES = ("string", "integer", "boolean", "string_list", "string_map", "headers")
_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
_NAME = r"[a-z][a-z0-9_]*"
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
                                "trailer", "upgrade", "expect"})
_VARIABLE = re.compile(rf"^(?:token|expires_at|expires_in_seconds|id|address|(?:options|attrs|secrets)\.{_NAME})$")

Context = Mapping[str, Any]
Render = Callable[[Context], Any]


# ---------------------------------------------------------------- failure names (JSON Pointers: keyform.pointers)


# The names `operations.list.empty_names` may not hold: how a failed request's reply speaks (folded;
# and any name with `error` or `fault` in it). Named there, the reply of a failure with a 200 status
# would be read as an empty listing, and every recorded key created again.
FAILURE_NAMES = frozenset({"message", "msg", "detail", "details", "reason", "description", "title"})


def says_failure_name(name: str) -> bool:
    """Whether `name` is one a failed request's reply speaks with (FAILURE_NAMES, or `error`/`fault` in it)."""
    folded = fold_name(name)
    return folded in FAILURE_NAMES or "error" in folded or "fault" in folded


# ---------------------------------------------------------------- templates


@record
class Template:
    """A compiled string template: `${a.b}` alone keeps the value's type (None → left out);
    mixed with text, values are formatted into the string."""

    text: str
    variables: tuple[str, ...]
    render: Render = field(compare=False, repr=False)


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def compile_string(text: str, *, quote_values: bool = False) -> Template:
    parts = _PLACEHOLDER.split(text)  # [text, var, text, var, ..., text]
    variables = tuple(parts[1::2])
    if len(parts) == 3 and parts[0] == "" and parts[2] == "":
        name = parts[1]
        if quote_values:
            return Template(text, variables, lambda ctx: quote(_format(ctx.get(name)), safe=""))
        return Template(text, variables, lambda ctx: ctx.get(name))
    if not variables:
        return Template(text, (), lambda ctx: text)
    literal, names = parts[0::2], parts[1::2]

    def render(ctx: Context) -> str:
        out = [literal[0]]
        for i, name in enumerate(names):
            value = _format(ctx.get(name))
            out.append(quote(value, safe="") if quote_values else value)
            out.append(literal[i + 1])
        return "".join(out)

    return Template(text, variables, render)


def compile_body(value: Any) -> tuple[Render, list[tuple[YamlPath, str]], list[YamlPath]]:
    """A body template (any YAML value) → (render, [(relative path, variable)] for checking, [relative
    paths of numbers JSON cannot carry]: YAML's `.nan` and `.inf`, which failed only when sent).
    A mapping entry whose value renders to None is left out."""
    found: list[tuple[YamlPath, str]] = []
    unsendable: list[YamlPath] = []

    def build(node: Any, path: YamlPath) -> Render:
        if isinstance(node, str):
            t = compile_string(node)
            found.extend((path, v) for v in t.variables)
            return t.render
        if isinstance(node, dict):
            items = [(k, build(v, (*path, k))) for k, v in node.items()]

            def obj(ctx: Context) -> Any:
                out = {}
                for k, r in items:
                    v = r(ctx)
                    if v is not None:
                        out[k] = v
                return out
            return obj
        if isinstance(node, list):
            elems = [build(v, (*path, i)) for i, v in enumerate(node)]
            return lambda ctx: [r(ctx) for r in elems]
        if isinstance(node, float) and not math.isfinite(node):
            unsendable.append(path)
        return lambda ctx: node

    return build(value, ()), found, unsendable


# ---------------------------------------------------------------- the model


@record
class Attribute:
    name: str
    type: str
    path: tuple[str, ...] | None  # None: never reported back
    default: Any
    updatable: bool
    secret: bool


@record
class Status:
    """A revoked/expired flag: a boolean at `path`, or `path`'s value being one of `equals`."""

    path: tuple[str, ...]
    equals: tuple[Any, ...] | None = None

    def of(self, item: Any) -> bool | None:
        value = at(item, self.path)
        if self.equals is None:
            return value if isinstance(value, bool) or value is None else None
        return value in self.equals


@record
class Operation:
    method: str
    path: Template
    body: Render | None
    extra: Mapping[str, Any] = field(default_factory=dict)


@record
class Pagination:
    type: str = "none"
    param: str | None = None
    field: str | None = None
    next: str = ""
    has_more: tuple[str, ...] | None = None
    size_param: str | None = None
    size: int = 100
    start: int = 1
    total: tuple[str, ...] | None = None


@record
class RestDefinition:
    file: str
    name: str
    base_url: str | None
    options: Mapping[str, tuple[bool, bool]]  # name → (required, secret)
    auth: Mapping[str, Any]
    auth_templates: Mapping[str, Template]
    headers: Mapping[str, Template]
    expiry_supported: bool
    expiry_updatable: bool
    key_paths: Mapping[str, tuple[str, ...]]
    revoked: Status | None
    expired: Status | None
    attributes: tuple[Attribute, ...]
    error_message: tuple[tuple[str, ...], ...]
    error_code: tuple[str, ...] | None
    list_op: Operation
    list_items: tuple[tuple[str, ...], ...]
    list_absent: frozenset[int]
    pagination: Pagination
    create_op: Operation
    create_key: tuple[str, ...]
    create_secret: tuple[str, ...] | None
    update_op: Operation | None
    update_key: tuple[str, ...] | None
    delete_op: Operation
    delete_gone: frozenset[int]
    delete_gone_codes: frozenset[str]
    # where the file was read (absolute) and the sha256 of the exact bytes this was built from: a
    # saved plan's workspace digest covers them (`manifest.loader`), so an edited definition (another
    # host, another body) makes the plan stale instead of being applied unreviewed
    path: str = ""
    sha256: str = ""
    # `key.id_type`: how the API takes an id in a body. `integer`: a body value that is exactly
    # `${id}` is sent as a JSON number (an API that validates strictly refuses `{"id": "123"}`), and
    # a key whose id is not an integer is refused (`RestProvider.parse_key`)
    id_type: str = "string"
    # `operations.list.empty_names`, folded (`fold_name`): top-level names an empty listing's reply
    # may hold besides the envelope names keyform knows (`keyform.providers.omitted`)
    list_empty_names: frozenset[str] = frozenset()
    # `operations.list.null_is_empty`: a null list (at `items`, or on the way to it) is the API's
    # empty listing; by default it is an error (`keyform.providers.omitted.null_on_the_way`)
    list_null_is_empty: bool = False

    def kind(self, provider_type: str) -> ProviderType:
        """This definition as a provider type (`rest:NAME`) for the type registry."""
        plain = [a for a in self.attributes if not a.secret]
        return ProviderType(
            name=provider_type, open=_open_rest, returns_secret=self.create_secret is not None,
            attributes=tuple(a.name for a in plain),
            updatable=frozenset(a.name for a in plain if a.updatable),
            expiry_updatable=self.expiry_updatable,
            secret_inputs=tuple(a.name for a in self.attributes if a.secret),
            remote_attributes=frozenset(a.name for a in plain if a.path is not None),
            attribute_defaults=self.attribute_defaults(),
            default_base_url=self.base_url, reports_usage="last_used" in self.key_paths,
            description=f"declarative REST provider ({self.name})")

    def attribute_defaults(self) -> dict[str, Any]:
        """What a key that omits an attribute means (as `restglue.rest_attributes` fills it in): its
        default, else, for an attribute the API reports back, its type's empty value."""
        from keyform.manifest.restglue import empty_value

        out: dict[str, Any] = {}
        for a in self.attributes:
            if a.secret or a.default == "${address}":
                continue
            out[a.name] = a.default if a.default is not None else None if a.path is None else empty_value(a.type)
        return out

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)


# ---------------------------------------------------------------- loading


def _schema() -> dict[str, Any]:
    return bundled_schema(SCHEMA_PATH.name)


def _fast() -> Check:
    return bundled_check(SCHEMA_PATH.name)


def _schema_problems(doc: YamlDocument) -> list[Diagnostic]:
    if _fast()(doc.value):
        return []
    from keyform.manifest.fastcheck import ecma_validator_class
    from keyform.manifest.schema import describe_errors

    found: dict[tuple[int, str], Diagnostic] = {}
    for path, message in describe_errors(ecma_validator_class()(_schema()).iter_errors(doc.value), doc):
        loc = doc.loc(path)
        found.setdefault((loc.line, message), Diagnostic(message, loc))
    return [found[k] for k in sorted(found)]


def load_definition(path: str, shown: str) -> tuple[RestDefinition | None, list[Diagnostic]]:
    """The definition at `path` (shown in messages as `shown`), or None and every problem found."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, [Diagnostic(f"cannot read the definition {shown}: {exc.strerror or exc}")]
    return _load_cached(path, shown, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _load_cached(path: str, shown: str, mtime: int, size: int) -> tuple[RestDefinition | None, list[Diagnostic]]:
    if size > MAX_BYTES:
        return None, [Diagnostic(f"the definition is larger than {MAX_BYTES} bytes", SourceLoc(shown, 1))]
    try:  # never blocking on a FIFO (its size reads as 0), never more than the cap
        data = read_capped(path, MAX_BYTES)[0]
        text = data.decode("utf-8-sig")
    except NotAFileError:
        return None, [Diagnostic(f"the definition {shown} is not a regular file (a FIFO, a device or a socket)")]
    except TooLargeError:  # it grew since the stat
        return None, [Diagnostic(f"the definition is larger than {MAX_BYTES} bytes", SourceLoc(shown, 1))]
    except OSError as exc:
        return None, [Diagnostic(f"cannot read the definition {shown}: {exc.strerror or exc}")]
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, [Diagnostic("the definition is not valid UTF-8", SourceLoc(shown, line))]
    from keyform.manifest.yamlsource import parse_yaml  # PyYAML: only when a definition is read

    doc, problems = parse_yaml(text, shown)
    if doc is None or problems:
        return None, problems
    if not isinstance(doc.value, dict):
        return None, [Diagnostic("a definition is a mapping (version, name, auth, key, attributes, operations)",
                                 doc.loc(()))]
    problems = _schema_problems(doc)
    if problems:
        return None, problems
    built, problems = _Builder(doc).build()
    if built is None:
        return None, problems
    return replace(built, path=path, sha256=hashlib.sha256(data).hexdigest()), problems


class _Builder:
    """The semantic pass over a schema-valid definition document."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.v: dict[str, Any] = doc.value
        self.problems: list[Diagnostic] = []
        self.used: dict[str, set[str]] = {}

    def error(self, path: YamlPath, message: str) -> None:
        self.problems.append(Diagnostic(f"{dotted(path)}: {message}" if path else message, self.doc.loc(path)))

    def build(self) -> tuple[RestDefinition | None, list[Diagnostic]]:
        v = self.v
        options = {n: (bool(o.get("required", False)), bool(o.get("secret", False)))
                   for n, o in (v.get("options") or {}).items()}
        self.options = options
        for name in options:
            if name in RESERVED_OPTIONS:
                self.error(("options", name), f"{name!r} is a provider field every manifest has; name the option "
                           "otherwise")
        attributes = self._attributes()
        self.attrs = {a.name: a for a in attributes}
        expiry = v.get("expiry") or {}
        self.expiry = bool(expiry.get("supported", False))
        if expiry.get("updatable") and not self.expiry:
            self.error(("expiry", "updatable"), "expiry.supported is false, so nothing can be updated")
        auth = dict(v["auth"])
        auth_templates = self._auth(auth)
        headers = {}
        for name, text in (v.get("headers") or {}).items():
            self._check_header_name(("headers", name), name)
            headers[name] = self._template(("headers", name), text, "headers")
            self._check_header_value(("headers", name), headers[name])
        key = v["key"]
        key_paths = {n: pointer(key[n]) for n in ("id", "created_at", "expires_at", "last_used") if n in key}
        ops = v["operations"]
        list_op = self._operation("list", ops["list"])
        raw_items = ops["list"].get("items", "")
        if raw_items == []:
            self.error(("operations", "list", "items"), "an empty list says nowhere where the keys are: give a "
                       "JSON Pointer, or a list of them")
        items = tuple(pointer(p) for p in ([raw_items] if isinstance(raw_items, str) else raw_items))
        pagination = self._pagination(ops["list"].get("pagination") or {"type": "none"})
        empty_names = ops["list"].get("empty_names", [])
        for i, name in enumerate(empty_names):
            if says_failure_name(name):
                self.error(("operations", "list", "empty_names", i), f"{name[:40]!r} is a name a failed request's "
                           "reply speaks with: an API's error answered with a 200 would be read as an empty "
                           "listing, and every recorded key created again")
        create_op = self._operation("create", ops["create"])
        if self.expiry and not {"expires_at", "expires_in_seconds"} & self.used.get("create", set()):
            self.error(("operations", "create"), "expiry.supported is true but the create body never sends "
                       "${expires_at} or ${expires_in_seconds}")
        update = ops.get("update")
        update_op = self._operation("update", update) if update else None
        wants_update = [a.name for a in attributes if a.updatable] + (["expiry"] if expiry.get("updatable") else [])
        if update_op is None and wants_update:
            self.error(("operations",), f"{', '.join(wants_update)} updatable but there is no update operation")
        if update_op is not None and not wants_update:
            self.error(("operations", "update"), "no attribute is updatable (set updatable: true on one) and "
                       "expiry.updatable is not set")
        delete_op = self._operation("delete", ops["delete"])
        delete_op = Operation(delete_op.method, delete_op.path, delete_op.body,
                              {"mode": ops["delete"].get("mode", "delete")})
        self._check_not_failures(("operations", "delete", "gone"), ops["delete"].get("gone", []), allowed=())
        self._check_not_failures(("operations", "list", "absent"), ops["list"].get("absent", []), allowed=(501,))
        if "secret" in ops["create"]:
            self._check_secret_unread(pointer(ops["create"]["secret"]), pointer(ops["create"].get("key", "")),
                                      key_paths, attributes)
        errors = v.get("errors") or {}
        messages = tuple(pointer(p) for p in errors.get("message", ["/message", "/error/message", "/error",
                                                                     "/detail"]))
        if self.problems:
            return None, self.problems
        return RestDefinition(
            file=self.doc.file, name=v["name"], base_url=v.get("base_url"), options=options, auth=auth,
            auth_templates=auth_templates, headers=headers,
            expiry_supported=self.expiry, expiry_updatable=bool(expiry.get("updatable", False)),
            key_paths=key_paths, revoked=self._status(key.get("revoked")), expired=self._status(key.get("expired")),
            attributes=attributes, error_message=messages,
            error_code=pointer(errors["code"]) if "code" in errors else None,
            list_op=list_op, list_items=items, list_absent=frozenset(ops["list"].get("absent", [])),
            pagination=pagination, create_op=create_op, create_key=pointer(ops["create"].get("key", "")),
            create_secret=pointer(ops["create"]["secret"]) if "secret" in ops["create"] else None,
            update_op=update_op,
            update_key=pointer(update.get("key", "")) if update and update.get("key", "") is not None else None,
            delete_op=delete_op, delete_gone=frozenset(ops["delete"].get("gone", [404])),
            delete_gone_codes=frozenset(ops["delete"].get("gone_codes", [])),
            id_type=key.get("id_type", "string"), list_empty_names=frozenset(fold_name(n) for n in empty_names),
            list_null_is_empty=ops["list"].get("null_is_empty", False) is True,
        ), []

    def _check_not_failures(self, where: YamlPath, statuses: list[int], allowed: tuple[int, ...]) -> None:
        """`gone` and `absent` say "nothing there": never a refused token (401, 407), a missing
        permission (403), a rate refusal (429) or a server failure (5xx). `gone: [403]` made a token
        without delete rights report the revoke done and forget a live key."""
        for i, status in enumerate(statuses):
            if is_failure(status) and status not in allowed:
                self.error((*where, i), f"{status} is a failure, not a sign that nothing is there: keyform "
                           "would forget a live key or plan without the listing")

    def _check_secret_unread(self, secret: tuple[str, ...], key_at: tuple[str, ...],
                             key_paths: Mapping[str, tuple[str, ...]], attributes: tuple[Attribute, ...]) -> None:
        """No attribute or key field may read where create puts the secret: its value would be
        shown in plans and recorded in the state (an API that lists keys in full echoes it too)."""
        if secret[:len(key_at)] != key_at:
            return  # outside the key object that attributes are read from
        inside = secret[len(key_at):]

        def overlaps(path: tuple[str, ...]) -> bool:
            n = min(len(path), len(inside))
            return path[:n] == inside[:n]

        shown = pointer_text(inside) or "/"  # (the secret is the key object itself)
        for name, path in key_paths.items():
            if overlaps(path):
                self.error(("key", name), f"reads {shown}, where create returns the secret: the secret would "
                           "be recorded in the state and shown in plans")
        for a in attributes:
            if a.path is not None and overlaps(a.path):
                self.error(("attributes", a.name, "path"), f"reads {shown}, where create returns the secret: "
                           "the secret would be recorded in the state and shown in plans")

    @staticmethod
    def _status(raw: Any) -> Status | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            return Status(pointer(raw))
        return Status(pointer(raw["path"]), tuple(raw["equals"]))

    def _attributes(self) -> tuple[Attribute, ...]:
        out = []
        for name, a in self.v["attributes"].items():
            where: YamlPath = ("attributes", name)
            typ, secret = a["type"], bool(a.get("secret", False))
            if name in RESERVED_ATTRIBUTES:  # the key's own field would be sent as its value
                self.error(where, f"{name!r} is a field every key has (or a line every plan shows); name the "
                                  "attribute otherwise")
            if secret and typ != "string":
                self.error((*where, "type"), f"a secret input is a string, not {typ}")
            if secret and (a.get("updatable") or "path" in a or "default" in a):
                bad = next(f for f in ("updatable", "path", "default") if f in a and a[f] is not False)
                self.error((*where, bad), "a secret input is write-only: it has no "
                           f"{bad} (keyform fingerprints it and never reads it back)")
            if typ == "headers" and name != "headers":
                self.error((*where, "type"), "only an attribute named `headers` may have type headers "
                           "(a map whose values may be secret references)")
            if "default" in a and not _fits(a["default"], typ):
                self.error((*where, "default"), f"the default is not a {typ}")
            out.append(Attribute(name, typ, pointer(a["path"]) if "path" in a else None, a.get("default"),
                                 bool(a.get("updatable", False)), secret))
        return tuple(out)

    def _auth(self, auth: dict[str, Any]) -> dict[str, Template]:
        typ = auth["type"]
        needs = {"header": ("header",), "query": ("param",)}.get(typ, ())
        for need in needs:
            if need not in auth:
                self.error(("auth",), f"auth type {typ} needs {need!r}")
        allowed = {"bearer": set(), "header": {"header", "value"}, "basic": {"username", "password"},
                   "query": {"param"}}[typ]
        for extra in sorted(set(auth) - allowed - {"type"}):
            self.error(("auth", extra), f"{extra!r} does not apply to auth type {typ}")
        if typ == "header" and isinstance(auth.get("header"), str):
            self._check_header_name(("auth", "header"), auth["header"])
        defaults = {"value": "${token}", "password": "${token}", "username": ""}
        out: dict[str, Template] = {}
        for name in ("value", "username", "password"):
            if name in allowed:
                out[name] = self._template(("auth", name), auth.get(name, defaults[name]), "auth")
        if "value" in out:  # sent as a header as it is (basic auth's pair is base64-encoded)
            self._check_header_value(("auth", "value"), out["value"])
        # the credential: the token or a secret option, never only literals (for basic auth, in the
        # user name or the password: `-u sk_live_...:` is a common style)
        fields = ("username", "password") if typ == "basic" else ("value",) if "value" in out else ()
        if fields and not any(var == "token" or (var.startswith("options.") and
                                                 self.options.get(var[8:], (False, False))[1])
                              for name in fields for var in out[name].variables):
            self.error(("auth", fields[-1]), "holds no secret: use ${token}, or an option marked secret: true "
                       "(a literal or a plain option would be a credential written in a manifest, and "
                       "shown in messages)")
        return out

    def _check_header_name(self, where: YamlPath, name: str) -> None:
        """Headers that say how a request travels, not who sends it: set by keyform's HTTP client,
        and read by every proxy and load balancer on the way (a token in `Host` or `Proxy-*` would
        be logged, or sent to the proxy itself)."""
        low = name.lower()
        if low in _TRANSPORT_HEADERS or low.startswith("proxy-"):
            self.error(where, f"{name!r} is a header of the HTTP transport, not one a request may set: "
                       "name the API's own header (Authorization, X-Api-Key, ...)")

    def _check_header_value(self, where: YamlPath, template: Template) -> None:
        """The definition's own text of a header value (a line break, a non-ASCII or control
        character, blanks around it) is checked here, at its line: at run time it was an error
        about the provider's options, with no line. Each placeholder stands in as one letter."""
        value = str(template.render(dict.fromkeys(template.variables, "x")))
        problem = header_problem(value) if value else "nothing"
        if problem:
            self.error(where, f"the header value would hold {problem}, which HTTP cannot send")

    def _template(self, where: YamlPath, text: str, context: str, *, quote_values: bool = False) -> Template:
        t = compile_string(text, quote_values=quote_values)
        for var in t.variables:
            self._check_variable(where, var, context)
        return t

    def _check_variable(self, where: YamlPath, var: str, context: str) -> None:
        self.used.setdefault(context, set()).add(var)
        if not _VARIABLE.match(var):
            self.error(where, f"${{{var}}} is not a known placeholder (token, options.NAME, attrs.NAME, "
                       "secrets.NAME, expires_at, expires_in_seconds, id, address)")
            return
        scope, _, name = var.partition(".")
        if scope == "options" and name not in self.options:
            self.error(where, f"${{{var}}}: no option {name!r} is declared under options")
        elif scope in ("attrs", "secrets") and context in ("auth", "headers", "list"):
            self.error(where, f"${{{var}}}: key attributes are not available in {context}")
        elif scope == "attrs" and (name not in self.attrs or self.attrs[name].secret):
            what = "a secret input (use ${secrets." + name + "})" if name in self.attrs else "not a declared attribute"
            self.error(where, f"${{{var}}}: {name!r} is {what}")
        elif scope == "secrets" and (name not in self.attrs or not self.attrs[name].secret):
            self.error(where, f"${{{var}}}: {name!r} is not a declared secret input (secret: true)")
        elif var == "token" and context not in ("auth", "headers"):
            self.error(where, "${token} may be used only in auth and headers (never in a path or body)")
        elif var == "id" and context not in ("update", "delete"):
            self.error(where, "${id} (the key's id) exists only in update and delete")
        elif var in ("expires_at", "expires_in_seconds") and context not in ("create", "update"):
            self.error(where, f"${{{var}}} exists only in create and update")
        elif var in ("expires_at", "expires_in_seconds") and not self.expiry:
            self.error(where, f"${{{var}}} is sent but expiry.supported is not true")
        elif var == "address" and context != "create":
            self.error(where, "${address} exists only in create")
        elif scope == "secrets" and context == "update":
            self.error(where, f"${{{var}}}: a secret input cannot be changed in place")

    def _operation(self, name: str, raw: Mapping[str, Any]) -> Operation:
        base: YamlPath = ("operations", name)
        path = self._template((*base, "path"), raw["path"], name, quote_values=True)
        if any(v.startswith("secrets.") for v in path.variables):  # URLs are logged (by `-v`, proxies, servers)
            self.error((*base, "path"), "a secret input (${secrets.NAME}) may go in a body or a header, "
                       "never in a URL path")
        secret_options = [v for v in path.variables
                          if v.startswith("options.") and self.options.get(v[len("options."):], (False, False))[1]]
        if secret_options:  # the same for an option the definition marks secret
            self.error((*base, "path"), f"${{{secret_options[0]}}} is a secret option: it may go in a body or a "
                       "header, never in a URL path")
        headers = [v for v in path.variables if v.startswith("attrs.") and
                   (a := self.attrs.get(v[len("attrs."):])) is not None and a.type == "headers"]
        if headers:  # and for the headers attribute: its values may be secret references, sent merged in
            self.error((*base, "path"), f"${{{headers[0]}}} holds the key's secret header values: it may go in "
                       "a body, never in a URL path")
        body = None
        if "body" in raw:
            render, variables, unsendable = compile_body(raw["body"])
            for rel, var in variables:
                self._check_variable((*base, "body", *rel), var, name)
            for rel in unsendable:
                self.error((*base, "body", *rel), "not a number JSON can carry (.nan, .inf): quote it if the API "
                           "wants the text")
            body = render
        if raw["method"] == "GET" and "body" in raw:
            self.error((*base, "body"), "a GET request has no body")
        return Operation(raw["method"], path, body)

    def _pagination(self, raw: Mapping[str, Any]) -> Pagination:
        where: YamlPath = ("operations", "list", "pagination")
        typ = raw["type"]
        allowed = {"none": set(), "cursor": {"param", "field", "next", "has_more", "size_param", "size"},
                   "next_link": {"next"}, "page": {"param", "field", "size_param", "size", "start", "total"},
                   "offset": {"param", "field", "size_param", "size", "total"}}[typ]
        for extra in sorted(set(raw) - allowed - {"type"}):
            self.error((*where, extra), f"{extra!r} does not apply to pagination type {typ}")
        if typ in ("cursor", "page", "offset") and ("param" in raw) == ("field" in raw):
            self.error(where, f"pagination type {typ} needs exactly one of param (a query parameter) or "
                       "field (a body field)")
        if typ in ("cursor", "next_link") and "next" not in raw:
            self.error(where, f"pagination type {typ} needs next (where the response says what comes next)")
        nxt = raw.get("next", "")
        if typ == "cursor" and nxt and not nxt.startswith("/"):
            self.error((*where, "next"), "not a JSON Pointer (starting with '/')")
        if typ == "next_link" and nxt != "header:Link" and not nxt.startswith("/"):
            self.error((*where, "next"), "not a JSON Pointer (starting with '/') or header:Link")
        if "field" in raw and self.v["operations"]["list"]["method"] == "GET":
            self.error((*where, "field"), "a GET list has no body to carry it; use param")
        return Pagination(type=typ, param=raw.get("param"), field=raw.get("field"), next=nxt,
                          has_more=pointer(raw["has_more"]) if "has_more" in raw else None,
                          size_param=raw.get("size_param"), size=int(raw.get("size", 100)),
                          start=int(raw.get("start", 1)), total=pointer(raw["total"]) if "total" in raw else None)


_FITS: Mapping[str, Callable[[Any], bool]] = {
    "string": lambda x: isinstance(x, str),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
    "string_list": lambda x: isinstance(x, list) and all(isinstance(i, str) for i in x),
    "string_map": lambda x: isinstance(x, dict) and all(isinstance(i, str) for i in x.values()),
    "headers": lambda x: isinstance(x, dict) and all(isinstance(i, str) for i in x.values()),
}


def _fits(value: Any, typ: str) -> bool:
    if value == "${address}":
        return typ == "string"
    return _FITS[typ](value)


def fits(value: Any, typ: str) -> bool:
    """`value` has attribute type `typ` (manifest values; `headers` values may be references)."""
    if typ == "headers":
        return isinstance(value, dict) and all(isinstance(v, (str, dict)) for v in value.values())
    return _fits(value, typ)


def _open_rest(config: Any, token: str, org_id: str | None, *, timeout: float = 30.0, transport: Any = None,
               max_retries: int = 5) -> Any:
    """The factory of every `rest:NAME` type: the instance's definition and options are on its config."""
    from keyform.manifest.restglue import resolve_options
    from keyform.providers.ratelimit import Limiter
    from keyform.providers.rest import RestProvider

    return RestProvider(config.name, config.definition, config.base_url, token, resolve_options(config),
                        timeout=timeout, transport=transport, max_retries=max_retries, deadline=config.deadline,
                        max_body=config.max_response_bytes, limiter=Limiter(config.name, config.rate_limit))
