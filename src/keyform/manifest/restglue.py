"""Where a `type: rest` provider meets the manifest loader: its provider block (definition, options)
and its keys' attributes, as the definition declares them. The only rest-specific code the loader
calls (`build._provider`, `keyspecs.build_key`); the kind is registered as `rest:NAME`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from keyform.manifest.document import YamlPath
from keyform.manifest.restdef import PROVIDER_FIELDS, RestDefinition, fits, load_definition
from keyform.manifest.secretrefs import build_ref
from keyform.manifest.sources import Declaration, ManifestFile, Report, dotted
from keyform.model import EnvRef, FileRef, ProviderConfig, SecretRef, header_input
from keyform.typeregistry import register_loaded

_EMPTY: Mapping[str, Any] = {"string": "", "integer": 0, "boolean": False, "string_list": [], "string_map": {},
                             "headers": {}}


def build_rest_provider(decl: Declaration, report: Report) -> ProviderConfig | None:
    from keyform.manifest.build import _base_url, _provider_limits, _rate_limit

    value, source, path = decl.value, decl.source, decl.path
    where: YamlPath = (*path, "definition")
    if "definition" not in value:
        report.error(source, path, f"{dotted(path)}: a rest provider needs definition: PATH (a provider "
                     "definition file, relative to this manifest)")
        return None
    def_path = source.resolve(value["definition"])
    written = os.path.expanduser(value["definition"])
    # shown like the manifest itself: relative to where keyform runs when the manifest is
    shown = written if os.path.isabs(written) else os.path.normpath(
        os.path.join(os.path.dirname(source.doc.file), written))
    definition, problems = load_definition(def_path, shown)
    if definition is None:
        if problems and problems[0].loc is None:
            report.error(source, where, f"{dotted(where)}: {problems[0].message}")
        else:
            report.extend(problems)
            report.error(source, where, f"{dotted(where)}: the definition {shown} is invalid (see above)")
        return None
    errors_before = len(report.diagnostics)
    options: dict[str, Any] = {}
    for name, raw in value.items():
        if name in PROVIDER_FIELDS:
            continue
        at: YamlPath = (*path, name)
        if name not in definition.options:
            declared = ", ".join(sorted(definition.options)) or "none"
            report.error(source, at, f"{dotted(path)}: unknown field {name!r} (the {definition.name} definition "
                         f"declares the options: {declared})")
            continue
        secret = definition.options[name][1]
        if secret and not (isinstance(raw, dict) and len(raw) == 1 and ("env" in raw or "file" in raw)):
            report.error(source, at, f"{dotted(at)}: a secret option takes {{env: NAME}} or {{file: PATH}}, "
                         "never a literal")
            continue
        if isinstance(raw, dict):
            if len(raw) != 1 or not isinstance(next(iter(raw.values())), str) or \
                    next(iter(raw)) not in (("env", "file") if secret else ("env",)):
                report.error(source, at, f"{dotted(at)}: expected a string or {{env: NAME}}")
                continue
            options[name] = build_ref(raw, source)
        elif isinstance(raw, (str, int)) and not isinstance(raw, bool) and str(raw):
            options[name] = str(raw)
        else:
            report.error(source, at, f"{dotted(at)}: expected a string or {{env: NAME}}")
    for name, (required, _) in definition.options.items():
        if required and name not in value:
            report.error(source, path, f"{dotted(path)}: missing required field {name!r} (an option of the "
                         f"{definition.name} definition)")
    raw_url = value.get("base_url", definition.base_url)
    if raw_url is None:
        report.error(source, path, f"{dotted(path)}: missing base_url (the {definition.name} definition has "
                     "no default)")
        return None
    url_env = raw_url["env"] if isinstance(raw_url, dict) else None
    base_url = "" if url_env else _base_url(raw_url, source, (*path, "base_url"), report)
    limits = _provider_limits(value, source, path, report)
    ok, rate_limit = _rate_limit(value.get("rate_limit"), source, (*path, "rate_limit"), report)
    if base_url is None or limits is None or not ok or len(report.diagnostics) > errors_before:
        return None
    ptype = f"rest:{definition.name}"
    register_loaded(definition.kind(ptype), origin=definition.file)
    return ProviderConfig(name=decl.name, type=ptype, base_url=base_url, token=build_ref(value["token"], source),
                          org_id=None, loc=decl.loc, deadline=limits[0], max_response_bytes=limits[1],
                          rate_limit=rate_limit,
                          token_loc=source.loc((*path, "token")), base_url_env=url_env,
                          base_url_loc=source.loc((*path, "base_url")) if url_env else None,
                          definition=definition, options=options)


def check_definition_names(providers: Mapping[str, ProviderConfig], declared: Mapping[str, Declaration],
                           report: Report) -> None:
    """Two rest providers whose different definitions share a name would share one kind: refused."""
    first: dict[str, ProviderConfig] = {}
    for name in sorted(providers):
        cfg = providers[name]
        d = cfg.definition
        if not isinstance(d, RestDefinition):
            continue
        other = first.setdefault(d.name, cfg)
        if other is not cfg and other.definition.file != d.file:
            decl = declared[name]
            report.error(decl.source, (*decl.path, "definition"),
                         f"{dotted((*decl.path, 'definition'))}: definition {d.file} is also named {d.name!r}, "
                         f"like {other.definition.file} (provider {other.name}); give one another name")


def rest_attributes(value: Mapping[str, Any], definition: RestDefinition, address: str, source: ManifestFile,
                    path: YamlPath, report: Report) -> tuple[dict[str, Any], dict[str, SecretRef]]:
    """(non-secret attributes with defaults, write-only inputs by path) as the definition declares."""
    attrs: dict[str, Any] = {}
    secret_inputs: dict[str, SecretRef] = {}
    for a in definition.attributes:
        if a.secret:
            where = (*path, a.name)
            if a.name in value:
                raw = value[a.name]
                if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in ("env", "file", "secret_of") \
                        and isinstance(next(iter(raw.values())), str):
                    secret_inputs[a.name] = build_ref(raw, source)
                else:
                    report.error(source, where, f"{dotted(where)}: a literal secret is not allowed here; use "
                                 "{env: NAME}, {file: PATH} or {secret_of: ADDRESS}")
            continue
        raw = value.get(a.name, a.default)
        # the usual value, of the attribute's type (as `fits` and the copies below take it): no
        # `fits` call, no path made for a message
        typ, got = a.type, type(raw)
        if got is str and typ == "string":
            attrs[a.name] = address if raw == "${address}" else raw
            continue
        if (got is bool and typ == "boolean") or (got is int and typ == "integer"):
            attrs[a.name] = raw
            continue
        if got is list and typ == "string_list" and all(type(i) is str for i in raw):
            attrs[a.name] = list(raw)
            continue
        if got is dict and typ in ("string_map", "headers") and all(type(v) is str for v in raw.values()):
            attrs[a.name] = dict(raw)  # (headers: no reference among them, so no secret input)
            continue
        where = (*path, a.name)
        if raw == "${address}":
            raw = address
        if raw is None:
            # an attribute the API reports reads back as its type's empty value (proto3 style): the
            # desired value must be that too, or every plan would see drift; an unreported one is
            # left out of the request
            attrs[a.name] = None if a.path is None else _EMPTY[a.type]
            continue
        if not fits(raw, a.type):
            report.error(source, where, f"{dotted(where)}: expected a {a.type.replace('_', ' ')} "
                         f"({definition.name} attribute)")
            continue
        if a.type == "headers":
            attrs[a.name] = {h: v for h, v in raw.items() if isinstance(v, str)}
            for header, ref in raw.items():
                if isinstance(ref, dict):
                    if len(ref) == 1 and next(iter(ref)) in ("env", "file", "secret_of"):
                        secret_inputs[header_input(header)] = build_ref(ref, source)
                    else:
                        report.error(source, (*where, header), f"{dotted((*where, header))}: a header value is a "
                                     "string or exactly one of: env, file, secret_of")
        elif isinstance(raw, list):
            attrs[a.name] = list(raw)
        elif isinstance(raw, dict):
            attrs[a.name] = dict(raw)
        else:
            attrs[a.name] = raw
    return attrs, secret_inputs


def plain_option(ref: EnvRef | FileRef, what: str, env: Mapping[str, str] | None = None) -> str:
    """A rest provider's option that is not secret, read from the environment or a file, trimmed. A
    variable of blanks only is refused as an empty one is (`resolve.read_ref`): `on_behalf_of:
    {env: SUBUSER}` with SUBUSER=" " was taken as no subuser, and the key made for the parent account."""
    from keyform.errors import KeyformError
    from keyform.resolve import read_ref

    value = read_ref(ref, what, env).strip()
    if not value:
        source = f"environment variable {ref.name}" if isinstance(ref, EnvRef) else f"file {ref.path}"
        raise KeyformError(f"{what}: {source} holds only blank characters")
    return value


def resolve_options(config: ProviderConfig, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The provider's options as values (secret ones checked like a token), in memory only."""
    from keyform.errors import Diagnostic, KeyformError
    from keyform.resolve import read_credential

    out: dict[str, str] = {}
    for name, raw in config.options.items():
        what = f"providers.{config.name}.{name}"
        try:
            if isinstance(raw, (EnvRef, FileRef)):
                secret = isinstance(config.definition, RestDefinition) and config.definition.options[name][1]
                out[name] = read_credential(raw, what, env) if secret else plain_option(raw, what, env)
            else:
                out[name] = str(raw)
        except KeyformError as exc:
            raise KeyformError([Diagnostic(d.message, config.loc) for d in exc.diagnostics]) from None
    return out


def unknown_key_fields(files: Sequence[ManifestFile], report: Report) -> None:
    """When a file failed to parse (the semantic pass is skipped), still report key fields no
    provider type knows, as the schema did before rest definitions could declare their own: a key
    whose provider is a rest provider (declared in a file that parsed) is left alone."""
    from keyform.manifest.keyspecs import COMMON_FIELDS, _schema_key_fields
    from keyform.typeregistry import BUILTIN_PROVIDERS, find_provider_type

    types: dict[str, str] = {}
    for source in files:
        providers = source.data.get("providers")
        if isinstance(providers, dict):
            types.update({n: p.get("type") for n, p in providers.items() if isinstance(p, dict)})
    known = _schema_key_fields()
    for source in files:
        keys = source.data.get("keys")
        if not isinstance(keys, dict) or not source.valid(("keys",)):
            continue
        for address, value in keys.items():
            if not isinstance(value, dict) or not source.valid(("keys", address)):
                continue
            ptype = types.get(value.get("provider"))  # type: ignore[arg-type]
            if ptype == "rest":
                continue
            kind = find_provider_type(ptype) if isinstance(ptype, str) and ptype in BUILTIN_PROVIDERS else None
            allowed = [*COMMON_FIELDS, *(kind.attributes + kind.secret_inputs if kind else sorted(known))]
            for field in value:
                if field not in known and field not in COMMON_FIELDS:
                    close = difflib.get_close_matches(field, allowed, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    path = ("keys", address)
                    report.error(source, (*path, field), f"{dotted(path)}: unknown field {field!r}{hint}")


def empty_value(attribute_type: str) -> Any:
    """The value an API reports for an unset attribute of this type (what a key omitting it means)."""
    value = _EMPTY[attribute_type]
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value
