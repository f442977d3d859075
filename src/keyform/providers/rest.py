"""The declarative `rest` provider: one `RestDefinition` (keyform.manifest.restdef) driven over the
shared `HttpClient`, so retries, the ambiguous-create contract, deadlines, body caps and scrubbing are
exactly the built-in providers'.

Secrets: the token, every secret option and every secret input are passed to the client as values
to scrub; a created key's secret is remembered by `keyform.redact` and handed back only in
`CreateResult.secret`. Nothing from a response is kept except the declared fields.
"""

from __future__ import annotations

import base64
import builtins
import difflib
import json
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from keyform import __version__, redact
from keyform.durations import format_time
from keyform.errors import ProviderError, is_failure
from keyform.manifest.restdef import Attribute, Operation, RestDefinition, at, pointer_text
from keyform.model import header_of, header_problem
from keyform.providers.http import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY,
    HttpClient,
    RetryPolicy,
    ShapeError,
    check_unique_names,
    id_problem,
    json_body,
    may_have_landed,
    shape_error,
    status_error,
    usable_id,
    utc_time,
    wire_time,
)
from keyform.providers.omitted import not_a_listing, not_empty, null_list, null_on_the_way
from keyform.providers.ratelimit import Limiter
from keyform.providers.salvage import salvage_id
from keyform.remote import CreateRequest, CreateResult, RemoteKey

MAX_PAGES = 10_000
# the decimal text of an integer as JSON writes it (`key.id_type: integer`): no sign but `-`, no
# leading zero, ASCII digits only (`int()` also takes `+7`, `007`, `1_000` and Arabic-Indic digits)
_INTEGER = re.compile(r"0|-?[1-9][0-9]*")
# A `cursor` or `next_link` listing whose pages list no new key (empty, or keys already listed)
# while each says there is more is stopped with an error after this many in a row: an API whose
# cursors are always new ran to MAX_PAGES (10,000 requests). Ending it instead would not be safe: a
# filtered scan (DynamoDB's, say) may answer empty pages between pages of keys, and a listing cut
# short makes every later key look deleted. A hundred empty pages in a row is far past any such scan
# of a key listing, and 1% of the cap.
MAX_IDLE_PAGES = 100
# statuses an API refuses a page past its last with (besides 404): ending a listing whose `total`
# was reached (see RestProvider.list)
_PAST_THE_END = (400, 404, 416, 422)


_EMPTY: Mapping[str, Callable[[], Any]] = {
    "string": str, "integer": int, "boolean": bool, "string_list": list, "string_map": dict, "headers": dict,
}


def _check(value: Any, attr: Attribute, where: str) -> Any:
    if value is None:
        return _EMPTY[attr.type]()
    typ = attr.type
    if typ == "string" and isinstance(value, str):
        return value
    if typ == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ == "boolean" and isinstance(value, bool):
        return value
    if typ == "string_list" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if typ in ("string_map", "headers") and isinstance(value, dict) and all(
            isinstance(v, str) for v in value.values()):
        return dict(value)
    raise ShapeError(f"{where} is not a {typ.replace('_', ' ')}")


class RestProvider:
    """One instance of a declared API, reached with one token."""

    def __init__(self, name: str, definition: RestDefinition, base_url: str, token: str,
                 options: Mapping[str, str], *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, max_retries: int = 5,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 deadline: float = DEFAULT_DEADLINE, max_body: int = DEFAULT_MAX_BODY,
                 limiter: Limiter | None = None) -> None:
        self.name = name
        self.d = definition
        d = definition
        secrets = [token, *(v for n, v in options.items() if d.options.get(n, (False, False))[1])]
        ctx: dict[str, Any] = {"token": token, **{f"options.{n}": v for n, v in options.items()}}
        headers = {"Accept": "application/json", "User-Agent": f"keyform/{__version__}"}
        for header, template in d.headers.items():
            if all(ctx.get(v) is not None for v in template.variables):
                headers[header] = str(template.render(ctx))
                problem = header_problem(headers[header])
                if problem:  # an option from the environment must not smuggle a header in; never shown
                    raise ProviderError(f"{name}: the {header} header (from the definition's headers) would "
                                        f"hold {problem}; check the provider's options")
        auth = d.auth["type"]
        self._query = ""
        if auth == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        elif auth == "header":
            headers[d.auth["header"]] = str(d.auth_templates["value"].render(ctx))
        elif auth == "basic":
            pair = f"{d.auth_templates['username'].render(ctx)}:{d.auth_templates['password'].render(ctx)}"
            encoded = base64.b64encode(pair.encode()).decode()
            secrets.append(encoded)
            headers["Authorization"] = f"Basic {encoded}"
        else:
            self._query = f"{quote(d.auth['param'], safe='')}={quote(token, safe='')}"
            secrets.append(quote(token, safe=""))
        self._options = {f"options.{n}": v for n, v in options.items()}
        self._http = HttpClient(name, base_url, headers, timeout=timeout, transport=transport,
                                retry=RetryPolicy(max_retries=max_retries), sleep=sleep, rng=rng,
                                secrets=tuple(s for s in secrets if s), deadline=deadline, max_body=max_body,
                                limiter=limiter)
        self.limiter = self._http.limiter
        self._plain = [a for a in d.attributes if not a.secret and a.path is not None]
        self._id = d.key_paths["id"]
        self._created = d.key_paths.get("created_at")
        self._expires = d.key_paths.get("expires_at")
        self._last_used = d.key_paths.get("last_used")
        # `_fast_key`'s reading of an item: each field's one token when its pointer has one (a
        # member of the item itself), else its pointer
        # (name, token, pointer, the exact type of its usual value, its empty value's maker)
        self._fast_attrs = tuple((a.name, _one(a.path), a.path, _USUAL_TYPES[a.type], _EMPTY[a.type])
                                 for a in self._plain if a.path is not None)
        self._fast_status = tuple((s, _one(s.path) if s is not None else None) for s in (d.revoked, d.expired))
        # the one tokens of the revoked and expired flags, created_at, expires_at and last_used
        # (each None when not declared), when each declared one has one token (and a flag no
        # `equals`): the usual definition
        tokens = (*(None if s is None else (_one(s.path) or "") if s.equals is None else ""
                    for s in (d.revoked, d.expired)),
                  *(None if p is None else _one(p) or "" for p in (self._created, self._expires, self._last_used)))
        self._flat: tuple[str | None, ...] | None = None if "" in tokens else tokens
        pg = d.pagination
        # the top-level names of a listing reply the definition reads (besides the list): an empty
        # listing may hold them (see keyform.providers.omitted)
        self._named = frozenset(ptr[0] for ptr in (
            pg.has_more, pg.total, _ptr(pg.next) if pg.next and not pg.next.startswith("header:") else None)
            if ptr)

    def __repr__(self) -> str:
        return f"RestProvider({self.name!r}, {self.d.name!r}, {self._http.base_url!r})"

    # ------------------------------------------------------------ wire helpers

    def _path(self, op: Operation, ctx: Mapping[str, Any], query: Mapping[str, Any] | None = None) -> str:
        path = str(op.path.render(ctx))
        parts = [f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in (query or {}).items() if v is not None]
        if self._query:
            parts.append(self._query)
        if parts:
            path += ("&" if "?" in path else "?") + "&".join(parts)
        return path

    def _call(self, op: Operation, ctx: Mapping[str, Any], what: str, *, idempotent: bool = True,
              secrets: tuple[str, ...] = (), query: Mapping[str, Any] | None = None,
              body_extra: Mapping[str, Any] | None = None, path: str | None = None) -> httpx.Response:
        body = op.body(ctx) if op.body is not None else None
        if body_extra:
            body = {**(body if isinstance(body, dict) else {}), **body_extra}
        if body is None and op.method in ("POST", "PUT", "PATCH"):
            body = {}
        return self._http.call(op.method, path or self._path(op, ctx, query), what, body=body,
                               idempotent=idempotent, secrets=secrets)

    def _detail(self, response: httpx.Response) -> tuple[str, str | None]:
        message, code = self._error_of(json_body(response))
        if code:
            return (f"{code}: {message}" if message else code), code
        return f"{response.status_code} {message or response.reason_phrase}".strip(), None

    def _error_of(self, body: Any) -> tuple[str | None, str | None]:
        """The error message and code a reply holds where the definition's `errors` says."""
        message = None
        for p in self.d.error_message:
            value = at(body, p)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, list) and value:
                value = value[0] if isinstance(value[0], str) else None
            if isinstance(value, str) and value.strip():
                message = value.strip()
                break
        code = at(body, self.d.error_code) if self.d.error_code is not None else None
        code = code if isinstance(code, str) and code else None
        if message is not None and message == (code or "").strip():  # (one field read as both: said once,
            message = None  # not `invalid_auth: invalid_auth`, as Slack's `{"error": "invalid_auth"}` read)
        return message, code

    def _error(self, what: str, response: httpx.Response, secrets: tuple[str, ...] = (), *,
               create: bool = False) -> ProviderError:
        detail, code = self._detail(response)
        lost = create and may_have_landed(response)
        if lost:
            detail += "; the key may exist remotely"
        return status_error(self._http, what, response, detail, code=code, ambiguous=lost, secrets=secrets)

    def _time(self, value: Any, where: str, *, expiry: bool = False, unset: bool = False) -> str | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                value = format_time(datetime.fromtimestamp(value, timezone.utc))
            except (OverflowError, OSError, ValueError):
                raise ShapeError(f"{where} is not a time") from None
        return wire_time(value, where, expiry=expiry, unset_before=unset or expiry)  # the years keyform records

    def parse_key(self, item: Any, where: str) -> RemoteKey:
        if not isinstance(item, dict):
            raise ShapeError(f"{where} is a {type(item).__name__}, not an object")
        key_id = self._listed_id(at(item, self._id), where)
        w = f"{where} ({key_id})"
        attrs = {a.name: _check(at(item, a.path), a, f"{w} {a.name}") for a in self._plain if a.path is not None}
        flags = []
        for status, label in ((self.d.revoked, "revoked"), (self.d.expired, "expired")):
            value = status.of(item) if status is not None else False
            if value is None and status is not None and status.equals is None and at(item, status.path) is not None:
                raise ShapeError(f"{w}: {label} is not a boolean")
            flags.append(bool(value))
        # usage: reported when the item has the field at all (null: never used), as for Questra;
        # it was kept in a field nothing read, so `unused_for`, `max_idle` and `report --idle` saw none
        last_used = self._last_used
        reported = last_used is not None and _present(item, last_used)
        return RemoteKey(
            id=key_id, attrs=attrs,
            created_at=self._time(at(item, self._created), f"{w} created_at") if self._created is not None else None,
            expires_at=self._time(at(item, self._expires), f"{w} expires_at", expiry=True)
            if self._expires is not None else None,
            revoked=flags[0], expired=flags[1],
            last_used_at=self._time(at(item, last_used), f"{w} last_used", unset=True) if last_used and reported
            else None,
            usage_reported=reported)

    def _fast_key(self, item: dict[str, Any]) -> RemoteKey | None:
        """`parse_key`'s answer for the usual item: a usable string (or integer) id, each attribute
        of its type or null, each flag a boolean or absent (or one of its `equals` values), each
        timestamp absent, null or UTC (`utc_time`); None for any other item, which `parse_key` then
        reads (and names what is wrong). Nothing is made for an error that is not raised (the
        `where` texts of `parse_key`): a listing holds thousands of items."""
        key_id = item.get(self._id[0]) if len(self._id) == 1 else at(item, self._id)
        if type(key_id) is int:
            key_id = str(key_id)
        if not usable_id(key_id) or (self.d.id_type == "integer" and not _INTEGER.fullmatch(key_id)):
            return None
        attrs: dict[str, Any] = {}
        value: Any
        for name, one, path, usual, empty in self._fast_attrs:
            value = item.get(one) if one is not None else at(item, path)
            got = type(value)
            if got is not usual:
                if value is not None:
                    return None
                attrs[name] = empty()
            else:
                # (a list or an object is the item's own, taken, not copied: `items` is a reply's
                # decoded JSON, read once, as the built-in providers' `parse_list` takes it)
                if got is list:
                    for v in value:
                        if type(v) is not str:
                            return None
                elif got is dict:
                    for v in value.values():
                        if type(v) is not str:
                            return None
                attrs[name] = value
        flat = self._flat
        if flat is not None:  # (every pointer of the key's fields one token, no `equals`)
            revoked_at, expired_at, created_at, expires_at, used_at = flat
            revoked = item.get(revoked_at, False) if revoked_at is not None else False
            expired = item.get(expired_at, False) if expired_at is not None else False
            if not ((revoked is False or revoked is True or revoked is None)
                    and (expired is False or expired is True or expired is None)):
                return None
            created = item.get(created_at) if created_at is not None else None
            if created is not None and (created := utc_time(created)) is None:
                return None
            expires = item.get(expires_at) if expires_at is not None else None
            if expires is not None and (expires := utc_time(expires)) is None:
                return None
            used = reported = None
            if used_at is not None and used_at in item:
                used, reported = item[used_at], True
            if used is not None and (used := utc_time(used)) is None:
                return None
            return RemoteKey(id=key_id, attrs=attrs, created_at=created, expires_at=expires, revoked=bool(revoked),
                             expired=bool(expired), last_used_at=used, usage_reported=reported is True)
        flags = []
        for status, one in self._fast_status:
            if status is None:
                flags.append(False)
            elif status.equals is not None:
                flags.append(bool(status.of(item)))
            else:
                value = item.get(one) if one is not None else at(item, status.path)
                if value is not None and type(value) is not bool:
                    return None
                flags.append(bool(value))
        times: list[str | None] = []
        for where in (self._created, self._expires):
            value = None if where is None else item.get(where[0]) if len(where) == 1 else at(item, where)
            if value is not None and (value := utc_time(value)) is None:
                return None
            times.append(value)
        last_used, used = self._last_used, None
        reported = False
        if last_used is not None:
            reported = last_used[0] in item if len(last_used) == 1 else _present(item, last_used)
        if reported and last_used is not None:
            used = item.get(last_used[0]) if len(last_used) == 1 else at(item, last_used)
            if used is not None and (used := utc_time(used)) is None:
                return None
        return RemoteKey(id=key_id, attrs=attrs, created_at=times[0], expires_at=times[1], revoked=flags[0],
                         expired=flags[1], last_used_at=used, usage_reported=reported)

    def _listed_id(self, value: Any, where: str) -> str:
        """A key's id as the API gave it, as keyform records it: text. A JSON integer is its decimal
        text (`123` → "123", as the state and the journal hold it, so a listed key matches the
        recorded one). Any other number (`1e3`, `1.0`: JSON has no integer of that spelling; read as
        "1000.0" it matched no recorded key) or a boolean is refused, not turned into text. With
        `key.id_type: integer`, a string id must be an integer's decimal text: the API would be
        sent that number (`"007"` would name key 7)."""
        if type(value) is int:
            value = str(value)
        elif isinstance(value, (bool, float)):
            # (a float past 2**53 is not the number the API wrote: `9007199254740993.0` reads as ...992.0)
            about = "about " if isinstance(value, float) and not abs(value) < 2**53 else ""
            raise ShapeError(f"{where} has the id {about}{_json_text(value)}, which is neither a string nor an "
                             "integer")
        if not isinstance(value, str) or not value:
            raise ShapeError(f"{where} has no string id")
        if not usable_id(value):
            raise ShapeError(f"{where} {id_problem(value)}")
        if self.d.id_type == "integer" and not _INTEGER.fullmatch(value):
            raise ShapeError(f"{where} has the id {value[:40]!r}, which is not an integer, and "
                             f"{self.d.file}'s key.id_type says the API's ids are integers")
        return value

    def _wire_id(self, remote_id: str, what: str) -> str | int:
        """The `${id}` of an update or delete: the id as text, or, with `key.id_type: integer`, as a
        number (a body value that is exactly `${id}` is then a JSON number; a path holds its digits,
        as before). An id recorded otherwise (`keyform import` of a wrong id, or a definition
        edited) is not sent: the API would refuse it or read it as another key."""
        if self.d.id_type != "integer":
            return remote_id
        if not _INTEGER.fullmatch(remote_id):
            shown = remote_id[:40] if usable_id(remote_id) else "(unprintable)"
            raise ProviderError(f"{self.name}: {what}: the id {shown!r} is not an integer, and {self.d.file}'s "
                                "key.id_type says the API takes integers; nothing was sent")
        return int(remote_id)

    def _items(self, body: Any) -> list[Any]:
        for p in self.d.list_items:
            items = at(body, p)
            if isinstance(items, list):
                return items
            if items is None and p and isinstance(body, dict) and len(self.d.list_items) == 1:
                elsewhere = _list_of_keys(body, self._id)
                if elsewhere is not None:  # the pointer is wrong, not the list empty: see _list_of_keys
                    raise ShapeError(f"nothing at {pointer_text(p)}, but a list of keys at {elsewhere}: is "
                                     f"{self.d.file}'s operations.list.items right?")
                said = self._said(body)
                if said:  # a success status with an error (Slack's `{"ok": false, ...}`)
                    raise ShapeError(f"no list of keys at {pointer_text(p)}, but an error: {said}")
                odd = not_a_listing(body, p, self._named, self.d.list_empty_names)
                if odd:  # an error the definition's `errors` does not point at: see keyform.providers.omitted
                    raise ShapeError(not_empty(p, body, odd, self._http.secrets))
                null = None if self.d.list_null_is_empty else null_on_the_way(body, p)
                if null is not None:  # `{"apiAccessKeys": null}`: not proof of no keys (see omitted.null_on_the_way)
                    raise ShapeError(null_list(p, null, f" (if the API documents null as no keys, set "
                                                        f"operations.list.null_is_empty in {self.d.file})"))
                return []  # an empty list may be omitted (proto3 JSON), in a reply of nothing else
        said = self._said(body)
        if said:  # (`items: ""`, the whole reply, or alternatives: it said only which names the reply had)
            where = " or ".join(pointer_text(p) or "/" for p in self.d.list_items)
            raise ShapeError(f"no list of keys at {where}, but an error: {said}")
        got = (f"an object with keys {[name[:40] for name in sorted(body)[:5]]}" if isinstance(body, dict)
               else type(body).__name__)
        raise ShapeError(f"no array of keys where the definition says (got {got})")

    def _said(self, body: Any) -> str | None:
        """The error a reply holds where the definition's `errors` says (`CODE: message`), as one
        line of at most 200 characters with every secret scrubbed (an API may echo the token), or
        None. A broken or hostile API's 1 MB message with line breaks was quoted whole."""
        message, code = self._error_of(body)
        if not message and not code:
            return None
        text = f"{code}: {message}" if code and message else code or message or ""
        return redact.redact(text, self._http.secrets, 200)

    # ------------------------------------------------------------ the four calls

    def list(self) -> list[RemoteKey] | None:
        pg = self.d.pagination
        op = self.d.list_op
        ctx = self._options
        out: list[RemoteKey] = []
        cursor: Any = None
        page, offset = pg.start, 0
        next_path: str | None = None
        seen: set[str] = set()
        listed_ids: set[str] = set()
        previous: list[str] = []
        said_more = False  # a `has_more` was read as a boolean on some page (its pointer is right)
        idle = 0  # pages in a row that listed no new key while the API said there was more
        reached = False  # the previous page's `total` said the listing was complete
        short = False  # the previous page's `total` said more keys than were listed
        size = pg.size  # what `size_param` sends: lowered once to a cap the API shows (see _skipped)
        capped = False  # a page shorter than `size` was followed by one with keys: checked once
        began = 0  # the request this pass of the listing began with (see `_refused_follow`)
        for n in range(MAX_PAGES):
            carry: dict[str, Any] = {}
            if pg.type == "cursor" and cursor is not None:
                carry[pg.param or pg.field or ""] = cursor
            elif pg.type == "page":
                carry[pg.param or pg.field or ""] = page
            elif pg.type == "offset":
                carry[pg.param or pg.field or ""] = offset
            if pg.size_param:
                carry[pg.size_param] = size
            query = {k: v for k, v in carry.items() if k != pg.field}
            extra = {pg.field: carry[pg.field]} if pg.field and pg.field in carry else None
            path = next_path or self._path(op, ctx, query)
            response = self._call(op, ctx, "list", query=query, body_extra=extra, path=path)
            if n == 0 and response.status_code in self.d.list_absent:
                return None
            if n > 0 and pg.type in ("page", "offset") and previous and (
                    (response.status_code == 404 and not short)
                    or (reached and response.status_code in _PAST_THE_END)):
                # past the last page (Django REST framework: `404 {"detail": "Invalid page."}`); not
                # while the `total` says keys are missing (a proxy's 404 in the middle of a listing).
                # Past a `total` reached (the check of a first page), a refusal of the page as
                # out of bounds too (mezzio-hal's `400 Page 2 is out of bounds`). After a short first
                # page, unless its `total` said it was all, this may be a capped API's page past the
                # keys it served (see below): checked once at the size served.
                if reached or page != pg.start + 1 or not (
                        self._cap_hidden(previous, size, capped)
                        and self._skipped(op, ctx, page, len(previous), listed_ids)):
                    return out
                capped, size, page, reached, short = True, len(previous), pg.start, False, False
                del out[:]
                listed_ids.clear()
                previous = []
                continue
            if n > began and self._refused_follow(response):
                if began == 0:  # a cursor or link that expired (or went bad) while the listing ran
                    began, cursor, next_path, previous, said_more, idle = n + 1, None, None, [], False, 0
                    del out[:]
                    listed_ids.clear()
                    seen.clear()
                    continue
                gave = "cursor" if pg.type == "cursor" else "next link"
                raise self._error(f"list, page {n - began + 1} (at the {gave} page {n - began} gave, the "
                                  "listing started over once)", response)
            if not 200 <= response.status_code < 300:
                raise self._error("list", response)
            body = json_body(response)
            try:
                items = self._items(body)
                first = len(out)
                fast = self._fast_key
                for i, item in enumerate(items):
                    key = fast(item) if type(item) is dict else None
                    out.append(self.parse_key(item, f"item {first + i}") if key is None else key)
                if pg.type == "none":
                    return out
                ids = [k.id for k in out[first:]]
                new = not set(ids) <= listed_ids
                if pg.type == "cursor":
                    cursor = at(body, _ptr(pg.next))
                    more = self._has_more(body, cursor, len(items), said_more)
                    said_more = said_more or (pg.has_more is not None and isinstance(at(body, pg.has_more), bool))
                    if not more:
                        return out
                    if not isinstance(cursor, (str, int)):
                        raise ShapeError("the next cursor is not a string")
                    if str(cursor) in seen:
                        raise ShapeError(f"the API returned the cursor {str(cursor)[:40]!r} twice (a loop)")
                    seen.add(str(cursor))
                elif pg.type == "next_link":
                    link = _link_next(response) if pg.next == "header:Link" else at(body, _ptr(pg.next))
                    if not link:
                        return out
                    next_path = self._same_origin(str(link), self._http.base_url + path)
                    if next_path in seen:
                        raise ShapeError("the API returned the same next link twice (a loop)")
                    seen.add(next_path)
                elif pg.type in ("page", "offset"):
                    if ids and set(ids) <= listed_ids:
                        # clamped to the last page: after pages that showed the parameter works, or
                        # a single page shorter than a page can be (an API that ignores the
                        # parameter would give a full one again: refused), or after a `total` that
                        # said the listing was complete (then in any order: the first page's check
                        # got an API that lists in no set order, clamping or ignoring the parameter,
                        # refused as ignoring it, where one request had listed it)
                        again = ids == previous or (reached and sorted(ids) == sorted(previous))
                        if again and (reached or len(listed_ids) > len(ids) or (
                                len(ids) < size and self._page_taken(op, ctx, ids))):
                            del out[first:]
                            return out
                        raise ShapeError(f"the API returned the same page again (does it take the "
                                         f"{pg.param or pg.field!r} parameter?)")
                    # (an empty second page too after a short first one, unless its `total` says the
                    # keys listed are all: such an API's page past the keys it served is empty, and
                    # ended the listing short, with no `total` or a `total` of the page's own keys)
                    if self._cap_hidden(previous, size, capped) and (
                            ids or short or (page == pg.start + 1 and self._total(body) != len(out))):
                        capped = True
                        if self._skipped(op, ctx, page, len(previous), {*listed_ids, *ids}):
                            size, page, reached = len(previous), pg.start, False  # all again, at the API's cap
                            del out[:]
                            listed_ids.clear()
                            previous = []
                            continue
                    listed_ids.update(ids)
                    previous = ids
                    total = self._total(body)
                    reached, short = total == len(out), total is not None and len(out) < total
                    start = page == pg.start if pg.type == "page" else offset == 0
                    if not items or (reached and not start):
                        # a first page that reaches the `total` is checked by one more request: a
                        # `total` that names the keys on the page (`/result_info/count` for
                        # `total_count`) would end every listing after its first page; also a short
                        # one, as an API that serves fewer keys than `size` (its cap, or its own page
                        # size without a `size_param`) makes it
                        return out
                    page += 1
                    offset += len(items)
                    continue
                # a cursor or a next link that goes on: see MAX_IDLE_PAGES
                idle = 0 if new else idle + 1
                if idle >= MAX_IDLE_PAGES:
                    raise ShapeError(f"{idle} pages in a row listed no new key, each saying there is more "
                                     f"(a new {'cursor' if pg.type == 'cursor' else 'next link'} each time): "
                                     "stopped; the API's listing does not end")
                listed_ids.update(ids)
            except ShapeError as exc:
                raise shape_error(self._http, "list", response, exc) from None
        raise ProviderError(f"{self.name}: list: more than {MAX_PAGES} pages")

    def _refused_follow(self, response: httpx.Response) -> bool:
        """Whether a `cursor` or `next_link` page after the first was refused as a client error (`400`,
        `404`, `410`, `422`...; not a refused token, a missing permission or a rate refusal): the
        cursor the API gave expired or went bad while the listing ran (AWS's pagination tokens last
        15 minutes; Paddle's `400 invalid_cursor` says "Restart from the first page", Glean's
        `expired_cursor` "Retry from a fresh first page"). Never the end of the listing: `list`
        starts it over once, then fails naming the page and the API's answer."""
        status = response.status_code
        return self.d.pagination.type in ("cursor", "next_link") and 400 <= status < 500 and not is_failure(status)

    def _has_more(self, body: Any, cursor: Any, on_page: int, said: bool) -> bool:
        """Whether a `cursor` listing goes on. Any other value of `has_more` than a boolean is a
        shape error, and so is `has_more: true` with no cursor at `next`. Before, the string "false"
        was truthy (10,000 requests, each page asking for the next), and `true` with no cursor (a
        `next` pointer with a typo) ended the listing after its first page: every key on a later page
        looked deleted, and the plan created it again, leaving the original live and untracked.

        `has_more` absent is false (proto3 JSON leaves a false out) once some page has shown it, or
        when there is no cursor. Absent on every page so far while a cursor is there, it may be a
        typo in the definition's pointer (`/meta/hasMoer`), which read as false also ended the
        listing after its first page: a boolean of a like name in the reply (`/meta/hasMore`) makes
        that an error naming the field; otherwise the cursor is followed until a page comes back
        empty (one request more than the keys need, for an API that sends a cursor on its last page
        and leaves a false `has_more` out)."""
        pg = self.d.pagination
        if pg.has_more is None:
            return cursor not in (None, "")
        more = at(body, pg.has_more)
        shown = pointer_text(pg.has_more)
        if more is not None and not isinstance(more, bool):
            raise ShapeError(f"has_more ({shown}) is {_kind(more)}, not a boolean")
        if more and cursor in (None, ""):
            raise ShapeError(f"has_more ({shown}) is true but there is no cursor at {pg.next}: the listing would "
                             f"stop short (is {self.d.file}'s operations.list.pagination.next right?)")
        if more is None and cursor not in (None, "") and not said:
            near = _like_named_boolean(body, pg.has_more)
            if near is not None:
                raise ShapeError(f"nothing at has_more ({shown}), but a boolean at {near}: the listing would stop "
                                 f"short (is {self.d.file}'s operations.list.pagination.has_more right?)")
            return on_page > 0
        return bool(more)

    def _total(self, body: Any) -> int | None:
        """The page's `total`, an integer or None. A `page`/`offset` listing is complete when exactly
        as many keys were listed: a total below them is not read, as one that is no integer is not
        (the listing goes on to an empty page). `-1` or `0` (an API that does not count) ended the
        listing after its first page, and every later key looked deleted outside keyform. A short
        page is not the end either: without a `size_param` keyform does not know the page size, and
        an API may cap the size it was sent lower."""
        total = at(body, self.d.pagination.total) if self.d.pagination.total is not None else None
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    def _page_taken(self, op: Operation, ctx: Mapping[str, Any], ids: Sequence[str]) -> bool:
        """Whether an API that gave its one page of `ids` again for the next page takes the page
        parameter (it clamped a page past the end to the last one) rather than ignoring it (a typo
        in the definition's `param`, and more keys than the page: taken as the end, every later key
        would look deleted outside keyform). The page was shorter than `size`, but an API may cap
        the size lower: with a `size_param`, one request for the second page of `len(ids) - 1` keys
        tells them apart (the start of `ids` again: ignored; a refusal of that size, or all of `ids`
        again, says nothing). Without a `size_param`, a `page` listing takes it as the end (a clamp
        is the likelier), an `offset` one as ignored (an offset past the end gives an empty page)."""
        pg = self.d.pagination
        if not pg.size_param:
            return pg.type == "page"
        if len(ids) < 2:
            return True
        size = len(ids) - 1
        got = self._page_of(op, ctx, pg.start + 1 if pg.type == "page" else size, size)
        if got is None:
            return True  # a size the API refuses (below its least page size, say): no telling, as before
        return [k.id for k in got[0]] != list(ids[:size])

    def _cap_hidden(self, previous: Sequence[str], size: int, capped: bool) -> bool:
        """Whether the page after one of `previous` may come after keys a capped API skipped (see
        `_skipped`): a `page` listing with a `size_param`, not yet checked, whose previous page held
        fewer keys than the `size` sent, but some. The caller says which pages are checked: one with
        keys; one empty (or refused as past the end) only as the second page, after a short first
        one, since a cap shows on the first page (a full one means none)."""
        pg = self.d.pagination
        return pg.type == "page" and bool(pg.size_param) and not capped and 0 < len(previous) < size

    def _skipped(self, op: Operation, ctx: Mapping[str, Any], page: int, cap: int, listed: set[str]) -> bool:
        """Whether this `page` skipped keys. The page before held `cap` keys, fewer than the size
        sent, and this one holds some (or none: while the `total` says more, or as the second page
        unless its `total` is the keys listed; or refused as past the end): the API may serve at
        most `cap` a page. One that counts its pages by the size it serves skips nothing; one that
        counts them by the size it was sent (`OFFSET (page - 1) * per_page LIMIT min(per_page, 50)`)
        skipped the keys between, and each looked deleted outside keyform. Asked for this page at
        `cap` keys a page, such an API names keys not `listed` (on this page or before): the listing
        starts over at `cap`. An API that drops keys from a page after cutting it (a filter) names
        keys the pages so far listed: its size stays (one request more)."""
        got = self._page_of(op, ctx, page, cap)
        return got is not None and not {k.id for k in got[0]} <= listed

    def _page_of(self, op: Operation, ctx: Mapping[str, Any], where: int,
                 size: int) -> tuple[builtins.list[RemoteKey], Any] | None:
        """The keys and body of one `page`/`offset` request at `where` with `size` sent, or None when
        the API refuses it (a size below its least, say: no telling). A failure (a refused token, a
        rate refusal or a 5xx, after the client's retries) is the listing's error: taken for "no
        telling", a capped API's skipped keys were not listed (a 503 on the check of a page after a
        short first one, and the keys past it looked deleted). A reply keyform cannot read is the
        listing's error too, naming this reply (a raw ShapeError from the check of a page refused
        as past the end was said as the provider type's own failure)."""
        pg = self.d.pagination
        carry = {pg.param or pg.field or "": where, pg.size_param or "": size}
        query = {k: v for k, v in carry.items() if k != pg.field}
        extra = {pg.field: where} if pg.field else None
        response = self._call(op, ctx, "list", query=query, body_extra=extra)
        if is_failure(response.status_code):
            raise self._error("list", response)
        if not 200 <= response.status_code < 300:
            return None
        body = json_body(response)
        try:
            return [self.parse_key(item, f"item {i}") for i, item in enumerate(self._items(body))], body
        except ShapeError as exc:
            raise shape_error(self._http, "list", response, exc) from None

    def _same_origin(self, link: str, current: str) -> str:
        """A next link as a path below the base URL; a link to another origin is refused (it would
        carry the token there). A relative link (`keys?page=2`, no leading `/`) is resolved against
        the `current` page's URL, as RFC 3986 says: glued to the base URL, `@evil.example/keys` made
        `http://api.example@evil.example/keys`, whose host is evil.example."""
        if not link.isprintable() or " " in link:
            raise ShapeError("the next link has a blank, a control or an invisible character; not followed")
        base = urlsplit(self._http.base_url)
        try:
            url = urlsplit(urljoin(current, link) if not link.startswith("/") else link)
            url.port  # noqa: B018  # a port that is no number raises here, not when the link is sent
        except ValueError as exc:
            raise ShapeError(f"the next link is not a URL ({exc})") from None
        same = (url.scheme.lower(), url.netloc.lower()) == (base.scheme.lower(), base.netloc.lower())
        if (url.scheme or url.netloc) and not same:
            raise ShapeError("the next link points at another host; not followed")
        path = url.path or "/"
        prefix = base.path.rstrip("/")
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix):]  # links usually carry the base URL's own path (/v1/...)
        elif prefix and url.netloc:
            raise ShapeError("the next link points outside the base URL; not followed")
        out = path + (f"?{url.query}" if url.query else "")
        if self._query and self._query not in out:
            out += ("&" if "?" in out else "?") + self._query
        return out

    def create(self, request: CreateRequest) -> CreateResult:
        what = f'create "{request.address}"'
        secrets = tuple(request.secret_inputs.values())
        ctx = self._context(request.attrs, request.secret_inputs)
        ctx["address"] = request.address
        ctx["expires_at"] = request.expires_at
        ctx["expires_in_seconds"] = _seconds_until(request.expires_at)
        response = self._call(self.d.create_op, ctx, what, idempotent=False, secrets=secrets)
        if not 200 <= response.status_code < 300:
            raise self._error(what, response, secrets, create=True)
        payload = json_body(response)
        secret = at(payload, self.d.create_secret) if self.d.create_secret is not None else None
        # before the rest of the reply is read: a field that echoes it is scrubbed from the message
        redact.remember(secret if isinstance(secret, str) else None)
        try:
            check_unique_names(response)
            key = self.parse_key(at(payload, self.d.create_key), "the created key")
            if self.d.create_secret is not None and (not isinstance(secret, str) or not secret):
                raise ShapeError("the response holds no secret where the definition says")
        except ShapeError as exc:
            err = shape_error(self._http, what, response, exc, ambiguous=True, secrets=secrets)
            err.remote_id = salvage_id(response.content, (secret if isinstance(secret, str) else None, *secrets))
            raise err from None
        return CreateResult(key=key, secret=secret)

    def _context(self, attrs: Mapping[str, Any], secret_inputs: Mapping[str, str]) -> dict[str, Any]:
        ctx: dict[str, Any] = dict(self._options)
        for a in self.d.attributes:
            if a.secret:
                ctx[f"secrets.{a.name}"] = secret_inputs.get(a.name)
            elif a.name in attrs:
                ctx[f"attrs.{a.name}"] = attrs[a.name]
        extra = {h: v for p, v in secret_inputs.items() if (h := header_of(p)) is not None}
        if extra:
            ctx["attrs.headers"] = {**dict(attrs.get("headers") or {}), **extra}
        return ctx

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        what = f'update "{remote_id}"'
        op = self.d.update_op
        if op is None:
            raise ProviderError(f"{self.name}: {what}: {self.d.name} keys cannot be changed in place")
        secrets = tuple(str(v) for v in (attrs.get("headers") or {}).values()) if "headers" in attrs else ()
        ctx = self._context(attrs, {})
        ctx["id"] = self._wire_id(remote_id, what)
        ctx["expires_at"] = expires_at
        ctx["expires_in_seconds"] = _seconds_until(expires_at)
        response = self._call(op, ctx, what, secrets=secrets)
        if not 200 <= response.status_code < 300:
            raise self._error(what, response, secrets)
        if self.d.update_key is None:
            return RemoteKey(id=remote_id, attrs={a.name: attrs.get(a.name) for a in self._plain if a.name in attrs},
                           expires_at=expires_at)
        try:
            return self.parse_key(at(json_body(response), self.d.update_key), "the updated key")
        except ShapeError as exc:
            raise shape_error(self._http, what, response, exc, secrets=secrets) from None

    def delete(self, remote_id: str) -> None:
        """Delete or revoke the key; one already gone (a `gone` status or code) is not an error."""
        what = f'{"revoke" if self.d.delete_op.extra.get("mode") == "revoke" else "delete"} "{remote_id}"'
        ctx = {**self._options, "id": self._wire_id(remote_id, what)}
        response = self._call(self.d.delete_op, ctx, what)
        if 200 <= response.status_code < 300:
            return
        status = response.status_code
        if status in self.d.delete_gone:  # whatever code the body carries (`not_found`, say), as documented
            return
        _, code = self._detail(response)
        if code is not None and code in self.d.delete_gone_codes and not is_failure(status):  # (nothing is gone)
            return
        raise self._error(what, response)

    def clock_offset(self) -> float | None:
        return self._http.clock_offset()

    def close(self) -> None:
        self._http.close()


def _json_text(value: Any) -> str:
    """A JSON scalar as an error message shows it: `true`, `1000.0`, cut to 40 characters."""
    return json.dumps(value)[:40]


def _kind(value: Any) -> str:
    """`"false"` (a string) / a number / a list, as an error message names a wrong value."""
    if isinstance(value, str):
        return f"the string {value[:20]!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"the number {value!r}"[:40]


def _list_of_keys(body: Mapping[str, Any], key_id: tuple[str, ...]) -> str | None:
    """The pointer to a top-level member of a listing's `body` that holds a non-empty list of objects
    each with a value at the definition's `key.id` pointer: keys. A listing whose `items` pointer
    names nothing is taken for empty (proto3 JSON leaves an empty list out), but one with keys under
    another name is a definition's wrong pointer (`/items` for an API's `/data`): taken for empty,
    every key looked deleted, and the plan created each again, leaving the originals live and
    untracked. A list of other objects (`errors: [{"code": …}]`) is no sign of that."""
    for name, value in body.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) and at(v, key_id) is not None
                                                     for v in value):
            return pointer_text((str(name),))
    return None


def _seconds_until(expires_at: str | None) -> int | None:
    """Whole seconds from now to `expires_at` (at least 1), for APIs that take a lifetime."""
    if expires_at is None:
        return None
    from keyform.durations import parse_time

    return max(1, int((parse_time(expires_at) - datetime.now(timezone.utc)).total_seconds()))


# the exact Python type of an attribute's usual value in a JSON reply (`_check` takes it)
_USUAL_TYPES: Mapping[str, type] = {"string": str, "integer": int, "boolean": bool, "string_list": list,
                                    "string_map": dict, "headers": dict}


def _one(path: tuple[str, ...] | None) -> str | None:
    """The token of a pointer to a member of the item itself (`/name`), else None."""
    return path[0] if path is not None and len(path) == 1 else None


def _ptr(text: str) -> tuple[str, ...]:
    from keyform.manifest.restdef import pointer

    return pointer(text)


def _present(doc: Any, tokens: tuple[str, ...]) -> bool:
    """Whether `doc` has a member at `tokens` (null included)."""
    parent = at(doc, tokens[:-1]) if tokens else None
    return isinstance(parent, dict) and tokens[-1] in parent


def _like_named_boolean(body: Any, missing: tuple[str, ...]) -> str | None:
    """The pointer to a boolean in `body` (objects only, three levels deep) named like the last
    token of the `missing` pointer, elsewhere (`/has_more` for `/meta/has_more`), or the same letters
    but for case, `_` and `-` (`hasMore` for `has_more`), or nearly (`hasMoer` for `hasMore`). A
    `has_more` pointer that names nothing while one is there is a typo.

    Each name is compared as difflib.get_close_matches does (the bounds `real_quick_ratio` and
    `quick_ratio` first, against one matcher of `want`), and at most `_LIKE_NAMED_BUDGET` booleans
    are (past them, none is taken as found, and the cursor is followed): a reply of a 10 MB object
    of booleans took ten seconds of CPU a page with a full `ratio()` each."""
    want = _fold(missing[-1]) if missing else ""
    if not want:
        return None
    matcher = difflib.SequenceMatcher(None, "", want)
    budget = _LIKE_NAMED_BUDGET
    stack: list[tuple[Any, tuple[str, ...]]] = [(body, ())]
    while stack:
        doc, where = stack.pop()
        if not isinstance(doc, dict) or len(where) > 2:
            continue
        for key, value in doc.items():
            key = str(key)
            if isinstance(value, bool):
                budget -= 1
                if budget < 0:
                    return None
                folded = _fold(key)
                if folded == want:
                    return pointer_text((*where, key))
                matcher.set_seq1(folded)
                if matcher.real_quick_ratio() >= 0.8 and matcher.quick_ratio() >= 0.8 and matcher.ratio() >= 0.8:
                    return pointer_text((*where, key))
            elif isinstance(value, dict) and len(where) < 2:
                stack.append((value, (*where, key)))
    return None


_LIKE_NAMED_BUDGET = 10_000  # booleans `_like_named_boolean` compares (a reply's own fields are a few)


def _fold(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _link_next(response: httpx.Response) -> str | None:
    """The `rel="next"` URL of the RFC 8288 Link header(s). Each link is `<URL>` then `;`-separated
    parameters; `rel` holds one or more relation types (`rel="next last"`), matched without regard
    to case, and a parameter may have blanks around its `=`. A URL may hold a comma
    (`?sort=created,desc`): split at every comma, the link was missed, and the listing ended after
    its first page with every later key looking deleted outside keyform."""
    for match in _LINK.finditer(response.headers.get("Link", "")):
        for param in _LINK_PARAM.finditer(match.group(2)):
            if param.group(1).lower() == "rel":
                value = param.group(2) if param.group(2) is not None else param.group(3) or ""
                if "next" in value.lower().split():
                    return match.group(1).strip()
    return None


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_VALUE = r'(?:"((?:[^"\\]|\\.)*)"|([^;,\s]*))'
_LINK_PARAM = re.compile(rf";\s*({_TOKEN})\s*(?:=\s*{_VALUE})?")
# `[^<>]`, not `[^>]`: a URL holds no `<` (RFC 3986), and tried from each `<` of a header of `<`s with
# no `>`, `[^>]*` scanned to its end every time (a 100 KB header: half a minute a page).
_LINK = re.compile(rf"<([^<>]*)>((?:\s*;\s*{_TOKEN}\s*(?:=\s*{_VALUE})?)*)")
