"""Whether a listing reply with no list of keys is an empty listing whose list was left out (proto3
JSON leaves an empty list out: `{}`), or the reply of a failed request answered with a success
status. A listing wrongly read as empty is the worst a reconciler of keys can do: every key it
misses looks deleted outside keyform, the plan creates each again, and the originals stay live and
untracked. So such a reply is an empty listing only when every name in it is one an empty listing's
envelope holds (see `not_a_listing`); the providers (`rest`, the built-in `textql`) make any other
an error with `not_empty`'s message. docs/providers-rest.md, "An omitted list", says the rule."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from keyform import redact
from keyform.pointers import at, fold_name, pointer_text

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


def _benign(name: str, value: Any, also: frozenset[str] = frozenset()) -> bool:
    """Whether `name: value` may stand in a reply of an empty listing (see _ENVELOPE); `also`: the
    folded names the definition's `operations.list.empty_names` adds, taken as envelope names."""
    folded = _fold(name)
    if value is None or value in ("", [], {}):
        return True  # a value that holds nothing (`"data": []` under another name, `"errors": []`)
    if isinstance(value, str) and speaks_failure(value):
        return False  # `object: error`, `request_id: Unauthorized`, `meta: invalid token`: a failure said as a value
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
    `failed` or any string `speaks_failure` finds a failure's word in. An envelope of an error
    (`{"meta": {"code": 400, "error_message": ...}}`, the Instagram or Tumblr kind) was read as an
    empty listing."""
    if isinstance(value, str):
        return speaks_failure(value)
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


# The words (lower case) a failure's text is said with: `Unauthorized`, `invalid token`,
# `InvalidToken`, `quota exceeded`, `Internal Server Error`, `request timed out`. No value an empty
# listing's envelope holds says one: `list`, `KeyList`, `v1`, ids (`req_8f2c`, `key_abc`), URLs,
# opaque cursors and page tokens, `OK`. A reply of a failure whose envelope names hold such a string
# (`{"request_id": "Unauthorized"}`, `{"meta": "invalid token"}`) was read as no keys.
_FAILURE_TEXT = frozenset({
    "error", "errors", "err", "fault", "failure", "failed", "fail", "fails", "unauthorized", "unauthorised",
    "unauthenticated", "forbidden", "denied", "invalid", "expired", "revoked", "exception", "unavailable",
    "refused", "rejected", "exceeded", "throttled", "timeout", "timedout", "notfound", "panic", "abort", "aborted",
    "unexpected", "cannot", "unable", "overloaded", "suspended",
})
_FAILURE_PAIRS = frozenset({("not", "found"), ("timed", "out"), ("too", "many"), ("not", "allowed"),
                            ("not", "authorized"), ("not", "permitted"), ("bad", "request"), ("bad", "gateway")})
# words: runs of letters, a capital starting a new one (`InvalidToken` → invalid, token), so a word
# in a URL, an id or a base64 cursor counts only where it stands alone
_WORD = re.compile(r"[A-Z]{2,}(?![a-z])|[A-Z]?[a-z]+|[A-Z]")
_TEXT_BUDGET = 10_000  # characters of a string looked at (a hostile reply's value may be a megabyte)


def speaks_failure(text: str) -> bool:
    """Whether a string value reads as a failure's text: it holds a word of `_FAILURE_TEXT`
    (`Unauthorized`, `InvalidToken`, `quota exceeded`) or a pair of `_FAILURE_PAIRS` (`Not Found`,
    `timed out`), in any case."""
    words = [w.lower() for w in _WORD.findall(text[:_TEXT_BUDGET])]
    return any(w in _FAILURE_TEXT for w in words) or any(pair in _FAILURE_PAIRS for pair in pairwise(words))


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
    """The text that explains the failure, under one of the first 100 `odd` pointers (those named
    like a message first): under a name like a message (`message`, `error_description`,
    `faultstring`) a string, or the first of a list of strings; under any name an object's `message`,
    `msg`, `detail`, `description`, `faultstring`, `reason`, `error` or `title` (two levels deep);
    and under another name a string only when it reads as a failure (`speaks_failure`). A harmless
    name's value (`"request_id": "req_8f2c"`, an id) was quoted as what the reply says."""
    # (the first 100 names: a hostile reply of a million names took seconds to sort)
    for where in sorted(odd[:100], key=lambda w: not _message_like(w[-1])):
        text = _text_in(at(body, where), 2, _message_like(where[-1]))
        if text:
            return text
    return None


_MESSAGE_NAMES = ("message", "msg", "detail", "description", "faultstring", "reason", "error", "title")


def _message_like(name: str) -> bool:
    folded = _fold(name)
    return any(m in folded for m in (*_MESSAGE_NAMES, "fault"))


def _text_in(value: Any, depth: int, told: bool) -> str | None:
    """The text of `value`; `told`: the name it stands under says it is a message, else a string
    is taken only when it reads as a failure."""
    if isinstance(value, str):
        text = value.strip()
        return text if text and (told or speaks_failure(text)) else None
    if depth <= 0:
        return None
    if isinstance(value, list) and value:
        return _text_in(value[0], depth - 1, told)
    if isinstance(value, dict):
        for name in _MESSAGE_NAMES:
            said = _text_in(value.get(name), depth - 1, True)
            if said:
                return said
    return None


def null_on_the_way(body: Mapping[str, Any], items: tuple[str, ...]) -> tuple[str, ...] | None:
    """Where a reply holds null at its `items` pointer, or on the way to it (`{"apiAccessKeys":
    null}`, `{"result": null}` for `/result/keys`), as a pointer; None if nowhere. A null list is
    not proof of no keys: proto3 JSON and most APIs say an empty list as `[]` or leave it out, and a
    null is what a server that failed to read the list may serialize (Go's nil slice)."""
    doc: Any = body
    for depth, token in enumerate(items):
        if not isinstance(doc, dict) or token not in doc:
            return None
        doc = doc[token]
        if doc is None:
            return items[:depth + 1]
    return None


def null_list(items: tuple[str, ...], where: tuple[str, ...], hint: str = "") -> str:
    """The one-line error for a reply with null at `where`, on the way to `items` (`hint`: how a
    definition says its API's empty listing is a null)."""
    there = "there" if where == items else f"at {pointer_text(where)}"
    return (f"no list of keys at {pointer_text(items)}: the reply holds null {there}, which is not an empty "
            f"list{hint}; read as empty, every recorded key would look deleted")


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

