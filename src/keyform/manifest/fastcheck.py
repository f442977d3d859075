"""A fast yes/no validator compiled from the manifest JSON Schema.

jsonschema needs about 2 s for a 10,000-key manifest; this closure-compiled checker of the small
subset of draft 2020-12 the manifest schema uses needs a fraction of that. It only answers "valid or
not": when it says no, `keyform.manifest.schema` asks jsonschema (on the failing entries only) for
the diagnostics. The schema stays the single source of truth; a keyword this compiler does not know
raises at compile time (the test suite compiles the real schema and cross-checks both validators).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

Check = Callable[[Any], bool]
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# Keywords that never affect validity (without a format checker, `format` is an annotation).
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default", "examples",
                          "format", "errorMessage", "markdownDescription", "deprecated", "$defs"})


# JSON types → the exact Python types the YAML builder produces (no subclasses: bool is not int).
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "null": (type(None),),
    "integer": (int,), "number": (int, float),
}


def _string_leaf(schema: Mapping[str, Any]) -> Check | None:
    """`{type: string}` with `minLength` and/or `pattern` as one check (the schemas' most common
    node: names, ids, timestamps), or None for any other schema."""
    if schema.get("type") != "string" or not all(k in _ANNOTATIONS or k in ("type", "minLength", "pattern")
                                                   for k in schema):
        return None
    least: int = schema.get("minLength", 0)
    pattern = schema.get("pattern")
    if pattern is None:
        return (lambda x: type(x) is str and len(x) >= least) if least else (lambda x: type(x) is str)
    search = ecma_regex(pattern).search
    if least:
        return lambda x: type(x) is str and len(x) >= least and search(x) is not None
    return lambda x: type(x) is str and search(x) is not None


def _type_check(names: list[str]) -> Check:
    exact = frozenset(t for n in names for t in _TYPES[n])
    if len(exact) == 1 and "integer" not in names:
        (only,) = exact
        return lambda x: type(x) is only
    if "integer" in names and "number" not in names:  # 1.0 is an integer in JSON Schema
        return lambda x: type(x) in exact or (type(x) is float and x.is_integer())
    return lambda x: type(x) in exact


def _same(a: Any, b: Any) -> bool:
    """JSON equality for the scalars `const`/`enum` hold here: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return type(a) in (int, float, str, type(None)) and a == b


class SchemaCompiler:
    """Compiles a schema (with local `$ref`s into `#/$defs/...`) into one predicate."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}
        self.compiling: dict[str, list[Check]] = {}  # definitions being compiled → their slot

    def compile(self) -> Check:
        return self.node(self.root)

    def ref(self, pointer: str) -> Check:
        if not pointer.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {pointer!r}")
        if pointer in self.refs:
            return self.refs[pointer]
        if pointer in self.compiling:  # a recursive reference: through the slot filled below
            slot = self.compiling[pointer]
            return lambda x: slot[0](x)
        self.compiling[pointer] = []
        check = self.node(self.root["$defs"][pointer[len("#/$defs/"):]])
        self.compiling.pop(pointer).append(check)
        self.refs[pointer] = check  # a plain reference is the definition's own check: no extra call
        return check

    def node(self, schema: Any) -> Check:
        if schema is True or schema == {}:
            return _always
        if schema is False:
            return _never
        string = _string_leaf(schema)
        if string is not None:
            return string
        checks = [check for keyword, value in schema.items()
                  if (check := self.keyword(keyword, value, schema)) is not None]
        return _all_of(checks)

    def keyword(self, keyword: str, value: Any, schema: Mapping[str, Any]) -> Check | None:
        """The check for one keyword of `schema`, or None when it has no effect on its own."""
        if keyword in _ANNOTATIONS or keyword in ("then", "else"):
            return None
        if keyword == "type":
            return _type_check([value] if isinstance(value, str) else list(value))
        if keyword in ("enum", "const"):
            return _one_of_values(list(value) if keyword == "enum" else [value])
        if keyword in _SIZE_CHECKS:
            return _SIZE_CHECKS[keyword](value)
        if keyword == "pattern":
            return _pattern(ecma_regex(value))
        if keyword == "required":
            return _required(frozenset(value))
        if keyword in ("properties", "additionalProperties"):
            # One check for both; `additionalProperties` alone only when there are no `properties`.
            return self.properties(schema) if keyword == "properties" or "properties" not in schema else None
        if keyword == "propertyNames":
            return _each_key(self.node(value))
        if keyword == "items":
            return _each_item(self.node(value))
        if keyword == "allOf":
            return _all_of([self.node(s) for s in value])
        if keyword == "anyOf":
            options = [self.node(s) for s in value]
            if len(options) == 2:
                first, second = options
                return lambda x: first(x) or second(x)
            return lambda x: any(option(x) for option in options)
        if keyword == "minimum":
            return lambda x: type(x) not in (int, float) or x >= value
        if keyword == "if":
            return _if_then_else(self.node(value), self.node(schema.get("then", True)),
                                 self.node(schema.get("else", True)))
        if keyword == "$ref":
            return self.ref(value)
        raise ValueError(f"fastcheck does not support the keyword {keyword!r}")

    def properties(self, schema: Mapping[str, Any]) -> Check:
        props = {name: self.node(sub) for name, sub in schema.get("properties", {}).items()}
        extra_schema = schema.get("additionalProperties", True)
        extra = self.node(extra_schema)
        extra_free = extra_schema is True or extra_schema == {}

        def check(x: Any) -> bool:
            if type(x) is not dict:
                return True
            for name, value in x.items():
                sub = props.get(name)
                if sub is not None:
                    if not sub(value):
                        return False
                elif not extra_free and not extra(value):
                    return False
            return True

        return check


def _always(x: Any) -> bool:
    return True


def _never(x: Any) -> bool:
    return False


def _one_of_values(options: list[Any]) -> Check:
    if options and all(type(o) is str for o in options):  # the common case: a set lookup
        strings = frozenset(options)
        return lambda x: type(x) is str and x in strings
    return lambda x: any(_same(x, o) for o in options)


def ecma_regex(pattern: str) -> re.Pattern[str]:
    """A schema `pattern` compiled as JSON Schema reads it (ECMA-262, no flags): `$` matches at the
    very end of the string only. Python's `$` also matches before a final newline, so
    `^[a-z]+$` took `"prodA\n"`, and a workspace or key named so passed as another one. Each `$`
    outside a character class becomes `\\Z`."""
    out: list[str] = []
    in_class = escaped = False
    class_start = -1  # where the class's members begin: a `]` there (or after `^`) is a member
    for i, c in enumerate(pattern):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif in_class:
            if c == "^" and i == class_start:
                class_start += 1
            elif c == "]" and i != class_start:
                in_class = False
        elif c == "[":
            in_class, class_start = True, i + 1
        elif c == "$":
            out.append("\\Z")
            continue
        out.append(c)
    return re.compile("".join(out))


@cache
def ecma_validator_class() -> Any:
    """jsonschema's Draft 2020-12 validator with `pattern` read as `ecma_regex` does: jsonschema
    searches with Python's `re`, whose `$` passes a final newline. It words the problems the fast
    check found (a refusal it could not word would be a message with no problem in it)."""
    from jsonschema import Draft202012Validator, ValidationError, validators

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
        if validator.is_type(instance, "string") and not ecma_regex(patrn).search(instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    return validators.extend(Draft202012Validator, {"pattern": pattern})  # type: ignore[no-untyped-call]


def _pattern(regex: re.Pattern[str]) -> Check:
    search = regex.search
    return lambda x: type(x) is not str or search(x) is not None


def _min_length(n: int) -> Check:
    return lambda x: type(x) is not str or len(x) >= n


def _min_properties(n: int) -> Check:
    return lambda x: type(x) is not dict or len(x) >= n


def _max_properties(n: int) -> Check:
    return lambda x: type(x) is not dict or len(x) <= n


_SIZE_CHECKS: dict[str, Callable[[int], Check]] = {
    "minLength": _min_length, "minProperties": _min_properties, "maxProperties": _max_properties,
}


def _required(needed: frozenset[str]) -> Check:
    return lambda x: type(x) is not dict or needed <= x.keys()


def _each_key(check: Check) -> Check:
    return lambda x: type(x) is not dict or all(map(check, x))


def _each_item(check: Check) -> Check:
    return lambda x: type(x) is not list or all(map(check, x))


def _if_then_else(condition: Check, then: Check, otherwise: Check) -> Check:
    return lambda x: then(x) if condition(x) else otherwise(x)


def _all_of(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    if len(checks) == 3:
        first, second, third = checks
        return lambda x: first(x) and second(x) and third(x)

    def every(x: Any) -> bool:  # a loop, not all(<generator>): no generator per value (2x faster)
        for check in checks:  # noqa: SIM110
            if not check(x):
                return False
        return True

    return every


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """A predicate equivalent to `jsonschema.Draft202012Validator(schema).is_valid`."""
    return SchemaCompiler(schema).compile()


@cache
def bundled_schema(name: str) -> dict[str, Any]:
    """One of keyform's own JSON Schemas (`schemas/NAME`), read once per process."""
    with open(SCHEMA_DIR / name, encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


@cache
def bundled_check(name: str) -> Check:
    """The compiled check of `bundled_schema(name)`, compiled once per process."""
    return compile_schema(bundled_schema(name))
