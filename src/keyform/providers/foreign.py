"""A provider whose code is not keyform's (a plug-in type, or a `type: rest` definition), as keyform
runs it: paced by its instance's rate limit, and its failures said in one line.

- **Rate limit.** Every provider instance has one `Limiter` (`providers/ratelimit.py`), made from
  its `rate_limit` by `open_provider`. A type built on keyform's `HttpClient` uses it for each
  attempt: given to its client, or taken by a client made while the factory runs
  (`ratelimit.offering`). A provider that paces itself otherwise (its own HTTP stack) is paced here,
  a whole call at a time: each call takes its place in the concurrency window and its turn in the
  send rate, within the instance's `deadline` (a pause longer than that ends the call unsent, as
  for the built-ins), and a `ProviderError` with status 429 pauses the instance and lowers the
  window, as a 429 does to an `HttpClient` call. Such a 429 may be the API's first answer (the
  plug-in's own retries are unknown here), so one alone is no call "refused to its end": it counts
  toward the breaker (`Limiter.ended`) only once the instance has answered nothing but 429s for
  its `deadline`, counted from the sending of the first of them (never from before the last other
  answer), as a built-in call retried against refusals to its deadline ends refused. A burst of
  429s (30 calls refused at once) or single ones between accepted calls never trips it; any other
  answer (a success, another status) resets it.
  Before, none of these 429s ever counted: against an API that refused everything, every change
  was sent and refused in turn. Either way the instance's `limiter` is what `--parallelism`, the
  rate events, the summary's figures and a Ctrl-C reach (`ProviderPool.configure_rate`). Before,
  `rate_limit` on such an instance did nothing.
- **A call that never returns.** A plug-in's call (create, update, revoke, list, close: its own
  code, and its HTTP requests) is run in a thread of its own and waited for twice its instance's
  `deadline` at most (`bound_of`; its waits in the instance's limiter are not counted), then
  abandoned (`keyform.bounded`): an `Overdue` error naming the instance, the call and the type, and
  in an apply the change is left as a second Ctrl-C leaves one in flight (possibly done, recovered
  by the next run). Before, one that hung hung keyform with it (in CI, until the job's timeout).
- **A Ctrl-C inside a call.** A plug-in may make several HTTP calls for one of its own (a create,
  then a read of the secret). When one of them ends unsent after a Ctrl-C (`NotSentError`) but an
  earlier one was sent, the call is no "not started": a create is ambiguous (the key may exist:
  recovery looks for it), any other call a plain failure.
- **Failures.** Anything but a `KeyformError` raised by the type's code (a bug in a plug-in, a
  library's exception it let through) becomes a `ProviderError` naming the instance, the call, the
  type and where it comes from, with the exception's class and the first line of its text, scrubbed
  (whole, before it is cut) of every remembered secret: not keyform's "internal error". Raised by a
  create, it is ambiguous. `-v` logs the traceback, scrubbed the same way.
- **What it returns** (a plug-in's; a definition's keys are made by keyform's own
  `providers.rest`). A result that breaks the interface (`list` giving dicts, an id that is a
  number, a time that is not RFC 3339, the same id twice; `create` giving a dict or no
  `CreateResult`; `open` giving None) is a `ProviderError` naming the type, the call and what is
  wrong (`broken_result`): it was keyform's "internal error", or worse a wrong plan (an id `1` for
  the state's `"1"` made the key look deleted, and the plan created it again, the original left
  live). A create's is ambiguous: the key may exist, and recovery looks for it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from keyform import bounded, redact
from keyform.durations import parse_time
from keyform.errors import PLUGIN_FAILURES, AmbiguousProviderError, KeyformError, NotSentError, Overdue, ProviderError
from keyform.providers.ratelimit import MAX_WAIT, Limiter, NotAdmitted, not_admitted_error
from keyform.remote import (
    ClockCheckSkipped,
    CreateRequest,
    CreateResult,
    Provider,
    RemoteKey,
    as_json,
    clock_offset,
)
from keyform.typeregistry import ProviderType

log = logging.getLogger("keyform.providers")

T = TypeVar("T")
THROTTLE_BACKOFF = 1.0  # seconds an instance pauses after a 429 that gave no Retry-After
MAX_SHOWN = 300  # characters of a foreign exception's text in a message


def failure(instance: str, what: str, ptype: ProviderType, exc: BaseException, *,
            ambiguous: bool = False) -> ProviderError:
    """`exc`, raised by a foreign type's code during `what`, as one scrubbed line."""
    if log.isEnabledFor(logging.DEBUG):  # -v: where in the type's code, never a secret it quoted
        trace = redact.scrub("".join(traceback.format_exception(exc)), ())
        log.debug("%s: %s: the provider type %r raised:\n%s", instance, what, ptype.name, trace.rstrip())
    origin = "" if ptype.origin == "built-in" else f" ({ptype.origin})"
    note = "; the key may exist remotely" if ambiguous else ""
    return ProviderError(f"{instance}: {what}: the provider type {ptype.name!r}{origin} failed: "
                         f"{redact.exception_line(exc, MAX_SHOWN)}{note}", ambiguous=ambiguous)


def bound_of(deadline: float) -> float:
    """How long keyform waits for a plug-in provider's call (its own time, not its waits in keyform's
    rate limiter): its `deadline`, then as much again (a plug-in may make two HTTP calls for one of
    its own, each within the deadline)."""
    return 2 * deadline


def overdue_error(instance: str, what: str, ptype: ProviderType, bound: float, deadline: float) -> Overdue:
    """A plug-in provider's call that did not return within `bound` (`bounded.call`), in one line: who,
    that it may have been done (a change), what the next apply does about it and what to check."""
    origin = "" if ptype.origin == "built-in" else f" ({ptype.origin})"
    head = (f"{instance}: {what}: the provider type {ptype.name!r}{origin} did not return within {bound:g}s (its "
            f"deadline {deadline:g}s, then as much again); keyform stopped waiting for it")
    if what == "list" or what == "close":
        advice = ""
    elif what.startswith("create"):
        advice = ("; it may have made the key: the next `keyform apply` recovers it from the journal (a key it made "
                  "is revoked as the orphan of an interrupted create)")
    else:
        advice = "; it may have been done: the next `keyform plan` or `apply` sees what it did and plans the rest"
    return Overdue(f"{head}{advice}. Check the plug-in and the API it calls (a connection with no timeout, "
                   "a lock, a prompt); the provider's `deadline` option sets the bound")


class Broken(Exception):
    """What a provider returned breaks the interface (docs/providers.md); the text says what."""


def _what(value: Any) -> str:
    """A returned value as a message names it: its type, never its text (it may hold a secret)."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiouAEIOU' else 'a'} {name}"


def _json_value(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_value(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


def check_key(key: Any, where: str) -> None:
    """`key` is a `RemoteKey` keyform can plan with: a non-empty string id (an id `1` never equals
    the state's `"1"`: the key looked deleted), attributes that are JSON values under string names,
    RFC 3339 times with a zone, boolean flags."""
    if not isinstance(key, RemoteKey):
        raise Broken(f"{where} is {_what(key)}, not a keyform.remote.RemoteKey")
    if not isinstance(key.id, str) or not key.id:
        raise Broken(f"{where} has an id that is {_what(key.id) if key.id != '' else 'empty'}, not a non-empty "
                     "string")
    where = f"{where} ({key.id})"
    if not isinstance(key.attrs, Mapping) or not _json_value(key.attrs):
        raise Broken(f"{where} has attrs that are not a mapping of attribute names to JSON values (strings, "
                     "numbers, booleans, lists, mappings)")
    for name in ("created_at", "expires_at", "last_used_at"):
        value = getattr(key, name)
        if value is None:
            continue
        try:
            parse_time(value)
        except ValueError:
            raise Broken(f"{where} has a {name} that is not an RFC 3339 time with a zone "
                         f"(2027-06-01T00:00:00Z), but {_what(value)}") from None
    for name in ("revoked", "expired", "usage_reported"):
        if not isinstance(getattr(key, name), bool):
            raise Broken(f"{where} has {name} {_what(getattr(key, name))}, not a bool")


def check_listing(keys: Any) -> None:
    """`list()`'s result: None (no list endpoint) or a list of valid `RemoteKey`s, each id once. The
    same key twice, alike, is taken (a page boundary that moved between two page requests:
    `refresh.keys_by_id` keeps one); two different copies of one id are not."""
    if keys is None:
        return
    if not isinstance(keys, (list, tuple)):
        raise Broken(f"it returned {_what(keys)}, not a list of RemoteKey (or None: no list endpoint)")
    seen: dict[str, RemoteKey] = {}
    for i, key in enumerate(keys):
        check_key(key, f"item {i}")
        if key.id in seen and seen[key.id] != key:  # which of the two is the key? (a revoked one and a live one)
            raise Broken(f"item {i} has the id {key.id!r} of an earlier item, which differs from it: each key is "
                         "listed once")
        seen.setdefault(key.id, key)


def as_listed(key: RemoteKey) -> RemoteKey:
    """`key` with its attributes as JSON holds them (`remote.as_json`: tuples as lists). The interface
    takes a tuple where a list goes (`check_key`), but the state, the journal and the planner hold
    lists: a plug-in listing `hosts=("a.example",)` showed `hosts modified outside keyform` on every
    plan, and every apply updated the key again. A key holding no tuple is returned as it is: copying
    every key with a list attribute cost 85 ms a plan for 10,000 keys."""
    if not any(_holds_tuple(v) for v in key.attrs.values()):
        return key
    return replace(key, attrs=as_json(dict(key.attrs)))


def _holds_tuple(value: Any) -> bool:
    """Whether `value` is, or holds at any depth, a tuple."""
    if isinstance(value, tuple):
        return True
    if isinstance(value, list):
        return any(_holds_tuple(v) for v in value if not isinstance(v, str))
    if isinstance(value, Mapping):
        return any(_holds_tuple(v) for v in value.values() if not isinstance(v, str))
    return False


def check_created(result: Any) -> None:
    """`create()`'s result: a `CreateResult` whose key is valid and whose secret is a string or None."""
    if not isinstance(result, CreateResult):
        raise Broken(f"it returned {_what(result)}, not a keyform.remote.CreateResult")
    check_key(result.key, "its key")
    if result.secret is not None and not isinstance(result.secret, str):
        raise Broken(f"its secret is {_what(result.secret)}, not a string (or None: the API issued none)")


def broken_result(instance: str, what: str, ptype: ProviderType, exc: Broken, *,
                  ambiguous: bool = False) -> ProviderError:
    """`exc` as one line naming the instance, the call and the type, and where its contract is."""
    origin = "" if ptype.origin == "built-in" else f" ({ptype.origin})"
    note = "; the key may exist remotely" if ambiguous else ""
    return ProviderError(redact.scrub(f"{instance}: {what}: the provider type {ptype.name!r}{origin} broke the "
                                      f"provider interface: {exc} (docs/providers.md){note}", ()),
                         ambiguous=ambiguous)


def plugin_retry_after(value: float | None) -> float:
    """The pause a plug-in's 429 asks for (its `ProviderError.retry_after`), read as
    `http.retry_after` reads the header: a number of seconds that is not finite or negative (or
    none) is no wait at all (THROTTLE_BACKOFF then), and one over `ratelimit.MAX_WAIT` is that
    (a day). `Infinity` once reached `apply --format json` as `"wait_seconds": Infinity`."""
    try:  # a plug-in may pass the raw header (a string), a 401-digit int or a Decimal (found by a review)
        seconds = float(value) if value is not None and not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        return THROTTLE_BACKOFF
    return min(seconds, MAX_WAIT)


class ForeignProvider:
    """`inner`, a provider of the foreign type `ptype`, behind its instance's `limiter` (paced a call
    at a time, within `deadline`, when `per_call`), its non-keyform exceptions turned into
    `ProviderError`s."""

    def __init__(self, inner: Provider, ptype: ProviderType, limiter: Limiter, *, per_call: bool,
                 deadline: float) -> None:
        self._inner, self._type, self.limiter, self._per_call = inner, ptype, limiter, per_call
        self._deadline = deadline
        if per_call:
            limiter.note_deadline(deadline)  # refusals alone for that long break the instance
        self.name = inner.name
        # what a plug-in returns is checked (`check_listing`, ~8 µs a key); a definition's provider is
        # keyform's own `providers.rest`, whose keys are made right: 10,000 of them cost 70-80 ms
        self._check = not ptype.name.startswith("rest:")
        # a plug-in's call (its own code: a definition's is keyform's) is waited for its deadline and
        # as much again at most (`keyform.bounded`)
        self._bound = bound_of(deadline) if self._check else None
        self._lock = threading.Lock()
        self._refusing_since: float | None = None  # when the first of the 429s in a row was sent
        self._answered_at = float("-inf")  # when the last answer that was not a refusal came

    def _refused(self, sent: float) -> None:
        """A call sent at `sent` ended with a 429: tell the breaker (`Limiter.ended`) when it ended
        refused for good: every call answered since the first 429 in a row was sent, `deadline` ago
        or more, was refused. The run starts no earlier than the last other answer: a call sent before
        it but refused after it does not carry the run back past it (that tripped the breaker 0.3 s
        after an accepted call). Under the lock, with `_answered`, so the two cannot cross."""
        with self._lock:
            since = sent if self._refusing_since is None else min(self._refusing_since, sent)
            self._refusing_since = since = max(since, self._answered_at)
            if time.monotonic() - since >= self._deadline:
                self.limiter.ended(True)

    def _answered(self) -> None:
        """A call ended with an answer that was not a refusal: the 429s in a row, and the breaker's count, end."""
        with self._lock:
            self._refusing_since, self._answered_at = None, time.monotonic()
            self.limiter.answered()
            self.limiter.ended(False)

    def __repr__(self) -> str:
        return f"ForeignProvider({self._inner!r})"

    @property
    def runs_plugin_code(self) -> bool:
        """Whether its calls are a plug-in's own code (run bounded), not keyform's (a definition's):
        a create keyform stops waiting for may go on, and make its key, after it stopped."""
        return self._bound is not None

    def _run(self, what: str, fn: Callable[[], T], *, create: bool = False) -> T:
        if not self._per_call:
            return self._guarded(what, fn, create)
        with self.limiter.call():
            try:
                ticket = self.limiter.before_attempt(timeout=self._deadline, first=True)
            except NotAdmitted as exc:  # nothing was sent
                raise not_admitted_error(self.name, what, exc, self._deadline) from None
            sent = time.monotonic()
            try:
                result = self._guarded(what, fn, create)
            except ProviderError as exc:
                # the built-ins' rate refusal (`http.rate_refusal`): 429, or Connect's resource_exhausted as a 503
                refusal = exc.status == 429 or (exc.status == 503 and exc.code == "resource_exhausted")
                if refusal:
                    wait = plugin_retry_after(exc.retry_after)
                    self.limiter.throttled(ticket, wait, 0.0, exc.status or 429)
                    self._refused(sent)
                elif exc.status is None or exc.status < 500:
                    self.limiter.succeeded(ticket)
                if exc.status is not None and not refusal:  # answered; no status: no answer, or the type's own bug
                    self._answered()
                raise
            finally:
                self.limiter.sent()
            self.limiter.succeeded(ticket)
            self._answered()
            return result

    def _bounded(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()`, the plug-in's own code, waited for `bound` seconds at most (`keyform.bounded`)."""
        if self._bound is None:
            return fn()

        def overdue(bound: float) -> Overdue:
            return overdue_error(self.name, what, self._type, bound, self._deadline)

        return bounded.call(fn, self._bound, overdue, self.limiter.carry())

    def _guarded(self, what: str, fn: Callable[[], T], create: bool) -> T:
        def sending() -> T:  # (in the thread that runs the call: the limiter counts its attempts per thread)
            admitted = self.limiter.admitted()
            try:
                return fn()
            except NotSentError:
                if self.limiter.admitted() == admitted:  # nothing of this call was sent
                    raise
                if create:
                    raise AmbiguousProviderError(f"{self.name}: {what}: interrupted after part of it was sent; the "
                                                 "key may exist remotely") from None
                raise ProviderError(f"{self.name}: {what}: interrupted after part of it was sent") from None

        try:
            return self._bounded(what, sending)
        except KeyformError:
            raise
        except PLUGIN_FAILURES as exc:  # the type's own bug: said in one line, traceback with -v
            raise failure(self.name, what, self._type, exc, ambiguous=create) from None

    def list(self) -> list[RemoteKey] | None:
        keys = self._run("list", self._inner.list)
        if not self._check:
            return keys
        try:
            check_listing(keys)
        except Broken as exc:
            raise broken_result(self.name, "list", self._type, exc) from None
        if keys is None:
            return None
        # a definition's keys are keyform's own (`providers.rest`), made from JSON: lists already
        return [as_listed(k) for k in keys] if self._check else list(keys)

    def create(self, request: CreateRequest) -> CreateResult:
        what = f"create {request.address!r}"
        result = self._run(what, lambda: self._inner.create(request), create=True)
        if not self._check:
            return result
        try:
            check_created(result)
        except Broken as exc:  # the create was answered: the key may well exist
            if isinstance(result, CreateResult) and isinstance(result.secret, str):
                redact.remember(result.secret)  # never shown, should a message quote it
            err = broken_result(self.name, what, self._type, exc, ambiguous=True)
            key_id = getattr(getattr(result, "key", None), "id", None)
            if isinstance(key_id, str) and key_id:
                err.remote_id = key_id  # recovery finds it by id (one that holds a secret is withheld)
            raise err from None
        key = as_listed(result.key)
        return result if key is result.key else replace(result, key=key)

    def update(self, remote_id: str, attrs: Mapping[str, Any], expires_at: str | None) -> RemoteKey:
        what = f"update {remote_id!r}"
        key = self._run(what, lambda: self._inner.update(remote_id, attrs, expires_at))
        if not self._check:
            return key
        try:
            check_key(key, "its key")
        except Broken as exc:
            raise broken_result(self.name, what, self._type, exc) from None
        return as_listed(key)

    def delete(self, remote_id: str) -> None:
        self._run(f"revoke {remote_id!r}", lambda: self._inner.delete(remote_id))

    def clock_offset(self) -> float | None:
        """The type's own `clock_offset()` where it has one (a definition's: its `HttpClient`'s), read
        by `remote.clock_offset` (a failure or a non-number is none). Without it, a `type: rest`
        API's clock behind keyform's was never said nor allowed for: its last uses read older by
        the lag, and an old key still in use was revoked as unused.

        A plug-in's is its own code, run as its other calls are (`_bounded`): one that never returned
        hung `plan` for ever, and one that called `sys.exit()` ended it with exit code 0 and no plan.
        The figure is optional: a failure of any kind is none (said at -v). No answer within the
        bound is none too, and said without -v (`ClockCheckSkipped`, a note on the plan and the
        reports): the plug-in hangs, and its API's clock is taken to be in step with keyform's."""
        if not callable(getattr(self._inner, "clock_offset", None)):  # (optional: no thread for a type without it)
            return None
        try:
            return self._bounded("clock_offset", lambda: clock_offset(self._inner))
        except Overdue as exc:  # (the call is left, and keyform exits at once at the end)
            log.debug("%s", exc)
            raise ClockCheckSkipped(
                f"{self.name}: its clock check (the provider type {self._type.name!r}'s clock_offset()) did not "
                f"return within {self._bound or 0:g}s and was skipped: its API's clock is taken to be in step "
                "with keyform's, with no allowance for clock skew (a clock behind keyform's makes its keys' "
                "last uses look older than they were)") from None
        except PLUGIN_FAILURES as exc:
            log.debug("%s: clock_offset: the provider type %r gave no figure: %s", self.name, self._type.name,
                      redact.exception_line(exc, MAX_SHOWN))
            return None

    def close(self) -> None:
        self._guarded("close", self._inner.close, False)
