"""Whether a listing reply with no list of keys is an empty listing whose list was left out (proto3
JSON leaves an empty list out: `{}`), or the reply of a failed request answered with a success
status. A listing wrongly read as empty is the worst a reconciler of keys can do: every key it
misses looks deleted outside keyform, the plan creates each again, and the originals stay live and
untracked. So such a reply is an empty listing only when every name in it is one an empty listing's
envelope holds (see `not_a_listing`); the providers (`rest`, the built-in `textql`) make any other
an error with `not_empty`'s message. docs/providers-rest.md, "An omitted list", says the rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from keyform import redact
from keyform.manifest.restdef import at, fold_name, pointer_text

# The names (compared folded: lower case, no `_` or `-`) a reply of an empty listing whose list is
# left out may hold besides those the definition reads: envelopes (`object: list`, Kubernetes'
# `kind`/`apiVersion`/`metadata`, HAL's `_links`, JSON:API's `meta`/`links`), request ids and
# pagination fields; `ok`/`success`/`status`/`code`/`error`/`errors` only with a value that says
# the request succeeded (see _benign); and any name whose value holds nothing (null, "", [], {}).
# Any other name (`message`, `detail`, `fault`, `msg`, ...) may be an error the definition's
# `errors` pointers do not cover: read as an empty listing, every recorded key looked deleted, and
# the plan created each again, leaving the originals live and untracked.
_fold = fold_name
_ENVELOPE = frozenset({
    "object", "kind", "apiversion", "metadata", "meta", "links", "url", "uri", "href", "self",
    "embedded", "count", "limit", "offset", "size", "perpage", "pagination", "paging", "resultinfo",
    "hasmore", "hasnext", "hasprevious", "more", "firstid", "lastid", "requestid", "traceid", "warnings",
})
_ENVELOPE_PREFIXES = ("page", "next", "prev", "total", "cursor")
_SUCCESS_WORDS = frozenset({"ok", "success", "succeeded", "successful"})
_FAILURE_WORDS = frozenset({"error", "errors", "fault", "failure", "failed", "fail"})


def _benign(name: str, value: Any, also: frozenset[str] = frozenset()) -> bool:
    """Whether `name: value` may stand in a reply of an empty listing (see _ENVELOPE); `also`: the
    folded names the definition's `operations.list.empty_names` adds, taken as envelope names."""
    folded = _fold(name)
    if value is None or value in ("", [], {}):
        return True  # a value that holds nothing (`"data": []` under another name, `"errors": []`)
    if isinstance(value, str) and _fold(value) in _FAILURE_WORDS:
        return False  # `object: error`, `type: error`, `result: failure`: a failure said as a value
    if folded in ("ok", "success"):
        return value is True
    if folded == "status":
        return _success_status(value)
    if folded == "code":
        return (type(value) is int and value == 0) or _success_status(value)
    if folded in ("error", "errors"):
        return value is False
    if not (folded in _ENVELOPE or folded in also or folded.startswith(_ENVELOPE_PREFIXES)):
        return False
    return not _says_failure(value, _DEPTH)


# How deep an envelope's value is looked into for a failure (`{"meta": {"error": ...}}`): a
# pagination object or JSON:API meta nests two or three levels.
_DEPTH = 4


def _says_failure(value: Any, depth: int) -> bool:
    """Whether an envelope's value (`meta`, `pagination`, `page`, ...) holds a failure, a few
    levels down: a name holding `error` or `fault` with a value that holds something (not `0`,
    `false`); a `status`/`code`/`status_code` of 4xx or 5xx; a string `error`, `fault`, `failure`,
    `failed`. An envelope of an error (`{"meta": {"code": 400, "error_message": ...}}`, the
    Instagram or Tumblr kind) was read as an empty listing."""
    if isinstance(value, str):
        return _fold(value) in _FAILURE_WORDS
    if depth <= 0 or not isinstance(value, (dict, list)):
        return False
    if isinstance(value, list):
        return any(_says_failure(member, depth - 1) for member in value)
    for name, member in value.items():
        folded = _fold(str(name))
        if ("error" in folded or "fault" in folded) and member not in (None, "", [], {}, 0, False):
            return True
        if folded in ("status", "code", "statuscode") and type(member) is int and 400 <= member < 600:
            return True
        if _says_failure(member, depth - 1):
            return True
    return False


def _success_status(value: Any) -> bool:
    """`200`, `"204"`, `"ok"`, `"success"`: a status that says the request succeeded."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 200 <= value < 300
    return isinstance(value, str) and (_fold(value) in _SUCCESS_WORDS or (
        len(value) == 3 and value.isascii() and value.isdigit() and value[0] == "2"))


def not_a_listing(body: Mapping[str, Any], items: tuple[str, ...],
                   named: frozenset[str], also: frozenset[str] = frozenset()) -> list[tuple[str, ...]]:
    """The names in a reply with nothing at its `items` pointer that a reply of an empty listing
    does not hold, as pointers; none: the reply is an empty listing whose list was left out (proto3
    JSON; `{}`, `{"data": null}`, `{"object": "list", "has_more": false}`). At the top level the
    names the definition reads (`named`: its pagination pointers) may stand too, and those it says
    an empty listing's reply holds (`also`: `operations.list.empty_names`, folded; each checked like
    an envelope name, so `"service": "error"` still fails); along the `items`
    pointer each object's names are checked the same way, and a value on its way that is neither an
    object nor null is named itself."""
    odd: list[tuple[str, ...]] = []
    doc: Any = body
    where: tuple[str, ...] = ()
    for depth, token in enumerate(items):
        if doc is None:
            break
        if not isinstance(doc, dict):
            odd.append(where)
            break
        odd.extend((*where, str(name)) for name, value in doc.items()
                   if name != token and not (depth == 0 and name in named)
                   and not _benign(str(name), value, also if depth == 0 else frozenset()))
        doc = doc.get(token)
        where = (*where, token)
    return odd


def what_it_says(body: Mapping[str, Any], odd: Sequence[tuple[str, ...]]) -> str | None:
    """The first text a reply of an error holds under one of the first 100 `odd` pointers (those
    named like a message first): a string, or an object's `message`, `msg`, `detail`,
    `description`, `faultstring`, `reason`, `error` or `title`, or the first of a list of these
    (two levels deep)."""
    # (the first 100 names: a hostile reply of a million names took seconds to sort)
    for where in sorted(odd[:100], key=lambda w: not any(m in _fold(w[-1]) for m in (*_MESSAGE_NAMES, "fault"))):
        text = _text_in(at(body, where), 2)
        if text:
            return text
    return None


_MESSAGE_NAMES = ("message", "msg", "detail", "description", "faultstring", "reason", "error", "title")


def _text_in(value: Any, depth: int) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if depth <= 0:
        return None
    if isinstance(value, list) and value:
        return _text_in(value[0], depth - 1)
    if isinstance(value, dict):
        for name in _MESSAGE_NAMES:
            text = _text_in(value.get(name), depth - 1)
            if text:
                return text
    return None


def not_empty(items: tuple[str, ...], body: Mapping[str, Any], odd: Sequence[tuple[str, ...]],
              secrets: Iterable[str] = ()) -> str:
    """The one-line error for a reply with no list of keys at `items` and the names `odd`, which a
    reply of an empty listing does not hold: the names (at most five, each cut to 40 characters,
    secrets scrubbed first) and what the reply says (scrubbed, one line, at most 200)."""
    secrets = tuple(secrets)
    names = ", ".join(repr(redact.redact(pointer_text(name), secrets, 40)) for name in odd[:5])
    names += f" and {len(odd) - 5} more" if len(odd) > 5 else ""
    says = what_it_says(body, odd)
    said = f" (it says: {redact.redact(says, secrets, 200)})" if says else ""
    return (f"no list of keys at {pointer_text(items)}, and the reply is not an empty listing: it holds "
            f"{names}{said}; read as empty, every recorded key would look deleted")

