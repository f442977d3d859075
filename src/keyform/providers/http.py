"""The HTTP layer every provider shares: one pooled transport per provider instance, and `call` with
the retry policy.

Requests are built here as httpx Requests and handed straight to the transport (any
`httpx.BaseTransport`; a test may pass its own): httpx.Client's layers (base-URL merging, cookies,
auth flows, redirects, event hooks) are unused by keyform and were ~40% of a request's CPU. The
transport is `wire.DirectTransport` (keyform's HTTP/1.1 transport, ~0.3 ms less CPU per request
than httpcore's) unless the environment names a proxy for the base URL; then it is httpx's
own (`proxied.py`). What the Client did that keyform needs is kept: TLS verified (SSL_CERT_FILE /
SSL_CERT_DIR honoured), the environment's proxy (`environment_proxy`, as curl picks it),
gzip/deflate responses decoded.

Retry policy (`RetryPolicy`):
- Idempotent calls (list, revoke/delete, update) retry connection errors, timeouts, dropped
  connections, 5xx and 429, with exponential backoff and full jitter (`base` 0.2 s doubling, capped at
  `cap` 10 s), at most `max_retries` times. A `Retry-After` header (seconds, or an HTTP-date read
  against the reply's `Date`; the largest of several; a day at most) on a 429/503 replaces the
  backoff; one longer than `max_retry_after` and the call's deadline is not waited for (the call
  ends, saying what the API asked; the instance is paused all the same). A rate refusal (429,
  Connect `resource_exhausted`) pauses the whole provider instance and slows it down
  (`providers/ratelimit.py`); those retries have their own budget, `max_throttled`.
- Non-idempotent calls (create) retry only what proves nothing happened: a connection that was never
  established (connect error/timeout, no free pooled connection) and 429/503 answers, which are given
  before any work is done. Anything lost after the request may have been sent (read timeout, reset,
  closed connection) raises `ProviderError(ambiguous=True)` at once: the key may exist remotely.
  The providers also mark a 500/502/504 answer to a create ambiguous (the server may have committed).

Limits: each `call` (all its attempts and waits together) has an overall `deadline` (default 60 s;
the per-read `timeout` alone let a reply dripping a byte every few seconds run for minutes), and a
response body may hold at most `max_body` bytes once decoded (default 32 MiB; a declared
Content-Length over it is refused before reading). Either ends the call with a ProviderError naming
the provider option to raise; for a create, ambiguous (the key may exist). The deadline bounds every
socket operation, not only the gaps between body chunks: on either transport (`wire.bounded`) each
connect, TLS handshake, send and receive waits at most until the deadline of the call running on
that thread, on a fresh or a reused pooled connection alike; a server dripping its status line or
headers a byte at a time ends at the deadline too. No watchdog thread, no extra thread hop: one
clock read per socket operation.

The deadline bounds the rate limiter's waits as well (`Limiter.before_attempt` is given what is left
of it): the instance's pause after a 429, the attempt's turn in the send rate, a `--parallelism`
slot. No call outlives its deadline by more than a socket operation's slack (`_DEADLINE_SLACK`),
whatever the server sends; a retry whose wait (backoff or `Retry-After`) or turn would end after
the deadline is not waited for: the call ends at once. When the deadline so ends a call that was
being retried after a 429 or 5xx, `call` returns that last answer, marked, and `status_error` adds
`rate-limited: still 429 after N attempts within the call's 20s deadline (provider option
`deadline`)` (`still 503 ...` for a 5xx; with `, and 40.2 s its retries queued for their turns
behind other calls (not counted in the deadline)` when they did): the error carries the status and
its `retry_after`, and a
429 or 503 to a create is not ambiguous (refused before acting). Only a reply lost or cut short is
ambiguous, as before: a create whose last attempt was sent and then cut by the deadline raises
`ambiguous=True`; a list in the same case returns the last answer it had (`..., the next one
unanswered, ...`). A call that could send nothing at all within its deadline (held by a pause an
earlier call's 429 began) raises a ProviderError carrying that 429 and the pause's remaining
seconds as `retry_after`, never ambiguous. Queueing for a place in the instance's concurrency
window comes before the call and is not part of its deadline, nor is the first attempt's wait for
its turn in the send rate (the rate paces calls; a configured `100/h` must not fail them), nor the
part of a retry's wait for its turn beyond one interval of the rate (the turns other calls took
ahead of it: keyform's queue, not the API's answer); the deadline is moved on by what was not
counted (`Ticket.paced`).

`call` raises ProviderError only for transport failures; it returns every HTTP response (once the
retries are spent), because each API words its error bodies differently. Messages never carry the
token, a request body or a secret: `scrub` removes known secret values from server-supplied text.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import random
import re
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import httpx

from keyform import redact
from keyform.durations import MAX_YEAR, MIN_YEAR, ascii_decimal, format_time, parse_time
from keyform.errors import ProviderError
from keyform.lazyre import LazyPattern
from keyform.providers.ratelimit import (
    MAX_WAIT,
    Limiter,
    NotAdmitted,
    broken_words,
    nap,
    not_admitted_error,
    offered,
    seconds_text,
)
from keyform.providers.wire import DirectTransport, call_deadline
from keyform.records import record
from keyform.strictjson import DuplicateKey, unique_keys

log = logging.getLogger("keyform.providers")

CONNECT_TIMEOUT = 10.0
DEFAULT_DEADLINE = 60.0  # seconds for one call, retries included (provider option `deadline`)
_DEADLINE_SLACK = 0.05  # a socket timeout this close to the deadline is the deadline's
DEFAULT_MAX_BODY = 32 * 1024 * 1024  # decoded response bytes (provider option `max_response_bytes`)
USER_AGENT = "keyform"
_URLS_KEPT = 64
MAX_CONNECTIONS, MAX_IDLE = 64, 32  # per provider instance: open at once, kept between calls
LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_IDLE)  # proxied

# Failures that prove the request never left: safe to retry even for create.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Misconfiguration, not flakiness: never retried.
_FATAL = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError)


@cache
def tls_context() -> ssl.SSLContext:
    """The verified TLS context every client shares. httpx builds one per client by default, and
    loading the CA bundle costs ~60 ms of CPU each time: 0.6 s for a plan over 10 provider instances."""
    return httpx.create_ssl_context()


@cache
def _no_tls_context() -> ssl.SSLContext:
    """The context of an `http://` instance's transport, which never opens TLS (every request goes to
    its base URL, no redirect is followed): nothing loaded, so a plan against plain-HTTP APIs skips
    the CA bundle's ~30 ms. Were it ever used, it verifies as strictly and, with no CA, trusts none."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


@record
class RetryPolicy:
    max_retries: int = 5
    base: float = 0.2
    cap: float = 10.0
    max_retry_after: float = 60.0
    max_throttled: int = 20  # retries of rate refusals (429 / resource_exhausted), apart from max_retries

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)] for the attempt-th retry (0-based)."""
        return rng.uniform(0.0, min(self.cap, self.base * (2 ** attempt)))


def retry_after(response: httpx.Response, now: Callable[[], datetime] | None = None) -> float | None:
    """The response's `Retry-After` in seconds (0 to `ratelimit.MAX_WAIT`, a day), or None when
    absent or unreadable.

    - An HTTP-date is read against the reply's own `Date` header when it has one that parses (the
      server's clock, as RFC 9110 §10.2.3 means it), else against keyform's clock (`now`): a server
      an hour ahead of keyform once made a `Retry-After` 60 s away an hour's pause.
    - A header sent twice (`Retry-After: 5` twice: httpx keeps both, and `get` joins them `5, 5`),
      or one value listing several numbers, gives the largest that parses; an HTTP-date holds a
      comma itself, so a value is read whole first.
    - `inf`, `nan`, `1e999` are no number of seconds; a longer one than a day is a day."""
    values = response.headers.get_list("Retry-After")
    if not values:
        return None
    found: list[float] = []
    for value in values:
        value = value.strip()
        seconds = _seconds(value)
        if seconds is None and (when := http_date(value)) is not None:
            date = response.headers.get_list("Date")
            sent = http_date(date[0]) if date else None
            reference = sent if sent is not None else now() if now else datetime.now(timezone.utc)
            try:
                seconds = max(0.0, (when - reference).total_seconds())
            except OverflowError:  # (two dates in years far apart)
                seconds = None
        if seconds is None and "," in value:
            seconds = max((s for part in value.split(",") if (s := _seconds(part.strip())) is not None), default=None)
        if seconds is not None:
            found.append(seconds)
    return min(MAX_WAIT, max(found)) if found else None


def _seconds(value: str) -> float | None:
    """`value` as a number of seconds (>= 0), or None: not a number in ASCII digits (float() took a
    UTF-8 `٣` as 3 and `1_0` as 10), or not a finite one."""
    seconds = ascii_decimal(value)
    return None if seconds is None else max(0.0, seconds)


def http_date(value: str) -> datetime | None:
    """An HTTP-date (RFC 9110 §5.6.7) as an aware datetime, or None when it does not parse."""
    try:  # a hostile date (`Mon, 99999999999999999999 Jan 2020 ...`) overflows the parser or the subtraction
        when = parsedate_to_datetime(value)
        when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when
        when.timestamp()  # (a date the platform's clock cannot hold raises here, not in a caller)
        return when
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def rate_refusal(response: httpx.Response) -> bool:
    """The API refused the call for its rate: HTTP 429 (Connect sends `resource_exhausted` with
    it), or a 503 whose body is a Connect `resource_exhausted` error. Either refuses before acting.

    A `resource_exhausted` with any other status is taken by its status: gRPC uses the code for
    quotas too ("too many keys": a 400 or 403, not to be retried or to pause the instance), and a
    server may fail with it after it committed (a 500 to a create stays ambiguous)."""
    if response.status_code == 429:
        return True
    if response.status_code != 503 or "json" not in response.headers.get("Content-Type", ""):
        return False
    body = json_body(response)
    return isinstance(body, dict) and body.get("code") == "resource_exhausted"


def may_have_landed(response: httpx.Response) -> bool:
    """Whether a create answered with this (final) error may still have made the key: a 5xx other
    than 503 may come after the server committed, whatever its body says. A 503, a 429 and any
    other 4xx refuse before acting."""
    return response.status_code >= 500 and response.status_code != 503


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every known secret value (4+ characters), its whitespace-altered forms and every
    16-character window of it replaced by `***` (keyform.redact). Scrub before any cut."""
    return redact.scrub(text, secrets)


_DNS_FAILURE = LazyPattern(r"name or service not known|nodename nor servname|name resolution|no address associated"
                           r"|getaddrinfo failed|name does not resolve", re.IGNORECASE)
_TLS_FAILURE = LazyPattern(r"ssl|tls|certificate|handshake", re.IGNORECASE)


def _connect_reason(exc: httpx.HTTPError) -> str:
    """Why no connection was made, saying which it was: refused, DNS, TLS, timeout."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connection timed out after {CONNECT_TIMEOUT:g}s"
    if isinstance(exc, httpx.PoolTimeout):
        return "no free connection in the pool"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip()
    text = text[:1].lower() + text[1:] if text else type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    if _DNS_FAILURE.search(text):
        return f"DNS lookup failed: {text}"
    if "wrong_version_number" in text.lower():
        return f"TLS failure: the server did not answer in TLS (is it plain http?): {text}"
    if _TLS_FAILURE.search(text):
        return f"TLS failure: {text}"
    return text


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_STEP = 65536  # the most one decoding step yields


class _BodyDecoder:
    """A response body decoded by its `Content-Encoding` (none, `gzip` or `deflate`: what keyform's
    `Accept-Encoding` asks for), each step yielding at most what the cap (`limit`) leaves, plus one
    byte: the caller sees the body go over the cap before more is decoded.
    httpx's decoders decode each received chunk whole: 64 KB of compressed zeros are 64 MB, and
    codings stacked (`gzip, gzip`) made 590 bytes 256 MiB, all in memory before the body cap was
    looked at. Stacked codings and any other coding are refused (`httpx.DecodingError`), as is a
    stream zlib cannot read."""

    def __init__(self, header: str, limit: int) -> None:
        codings = [c for c in (part.strip().lower() for part in header.split(",")) if c and c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in _WBITS):
            raise httpx.DecodingError(f"unsupported Content-Encoding {header[:60]!r}")
        self._coding = codings[0] if codings else None
        self._zlib = zlib.decompressobj(_WBITS[self._coding]) if self._coding else None
        self._started = False
        self._left = limit + 1  # decoded bytes that may still be yielded

    def decode(self, data: bytes, final: bool = False) -> Iterator[bytes]:
        """`data`'s decoded bytes in pieces, never more in all than the cap and one byte; at `final`
        what the decoder still holds."""
        if self._zlib is None:
            if data:
                yield data
            return
        while data or final:
            step = max(1, min(self._left, _STEP))
            try:
                out = self._zlib.decompress(data, step)
            except zlib.error as exc:
                if self._coding == "deflate" and not self._started:  # a raw deflate stream (as httpx)
                    self._zlib, self._started = zlib.decompressobj(-zlib.MAX_WBITS), True
                    continue
                raise httpx.DecodingError(f"the {self._coding} body is corrupt: {exc}") from None
            self._started = True
            data = self._zlib.unconsumed_tail
            if out:
                self._left -= len(out)
                yield out
            if not data and len(out) < step:  # all input taken and no output held back
                return


def _lost_reason(exc: httpx.HTTPError, read_timeout: float | None) -> str:
    if isinstance(exc, httpx.DecodingError):
        return f"its body could not be decoded: {exc}"
    if isinstance(exc, httpx.ReadTimeout):
        return f"timed out after {read_timeout:g}s waiting for the response" if read_timeout else "read timed out"
    if isinstance(exc, httpx.WriteTimeout):
        return "timed out while sending the request"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return "connection closed after the request was sent"


def environment_proxy(url: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy the environment names for `url`, as curl, urllib and httpx.Client pick it:
    `https_proxy` or `http_proxy` by scheme, else `all_proxy`; the lower-case variable wins when set,
    even empty (empty: no proxy); `HTTP_PROXY` is ignored under CGI (`REQUEST_METHOD` set:
    "httpoxy"); `no_proxy` exempts `*`, the host, a parent domain (`example.com` or
    `.example.com`) or an IP network (`10.0.0.0/8`). A proxy without a scheme is `http://`."""
    env = os.environ if environ is None else environ

    def var(name: str) -> str:
        if name in env:
            return env[name].strip()
        if name == "http_proxy" and "REQUEST_METHOD" in env:
            return ""
        return (env.get(name.upper()) or "").strip()

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host and _bypassed(host, var("no_proxy")):
        return None
    proxy = var(f"{parts.scheme}_proxy") or var("all_proxy")
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _proxy_shown(proxy: str) -> str:
    """`proxy` as a message may show it: scheme, host and port, never a user or password."""
    try:
        parts = urlsplit(proxy)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "named by the environment"
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def _bypassed(host: str, no_proxy: str) -> bool:
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        try:
            network = ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            network = None
        if network is not None:
            try:
                if ipaddress.ip_address(host) in network:
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip(".")
        if name.count(":") == 1:
            name = name.split(":")[0]  # host:port
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


URL_SHOWN = 160  # the most of a URL a `-v` line or a message shows (`short_url`)


def short_url(url: str, limit: int = URL_SHOWN) -> str:
    """`url` as a `-v` line or a message shows it: whole up to `limit` characters; a longer one keeps
    its scheme and host (and port) whole, the start of its path (where one instance's `base_url`
    differs from another's) and its end (the request's own path, an id), and says how many
    characters it leaves out between. A 10 KB `base_url` was written whole in every `-v` line.
    Each line names its provider instance first, so two instances are told apart whatever is cut."""
    if len(url) <= limit:
        return url
    scheme, sep, rest = url.partition("://")
    slash = rest.find("/")
    origin_end = len(scheme) + len(sep) + (slash if slash >= 0 else len(rest))
    origin, path = url[:origin_end], url[origin_end:]
    room = max(limit - len(origin), 60)
    head = room // 3
    tail = room - head
    left = len(path) - head - tail
    if left <= 30:  # (the note would be about as long as what it replaces)
        return url
    return f"{origin}{path[:head]}…[{left:,} characters]…{path[-tail:]}"


def _transport_for(instance: str, base_url: str, proxy: str | None) -> httpx.BaseTransport:
    """The pooled transport for one provider instance: TLS verified, every socket operation bounded by
    the running call's deadline. Direct (`wire.DirectTransport`) unless the environment names a proxy
    (`proxy`, `environment_proxy`); through one, httpx's own transport (`proxied.py`, which alone
    imports httpcore)."""
    context = _no_tls_context() if base_url[:7].lower() == "http://" else tls_context()
    if proxy is not None:
        from keyform.providers.proxied import proxied_transport

        return proxied_transport(instance, proxy, context, LIMITS)
    try:
        return DirectTransport(base_url, context, max_connections=MAX_CONNECTIONS, max_idle=MAX_IDLE)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ProviderError(f"{instance}: base_url {short_url(base_url)} cannot be used ({exc})") from None


class HttpClient:
    """One provider instance's connection pool and retry loop. Holds the token only in its headers."""

    def __init__(self, instance: str, base_url: str, headers: Mapping[str, str], *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 secrets: Iterable[str] = (), deadline: float = DEFAULT_DEADLINE,
                 max_body: int = DEFAULT_MAX_BODY, limiter: Limiter | None = None) -> None:
        self.instance = instance
        self.deadline = deadline
        self.max_body = max_body
        self.limiter = limiter or offered(instance)  # a plug-in's: its instance's (`ratelimit.offering`)
        self.limiter.note_deadline(deadline)  # refusals alone for that long break the instance
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._read_timeout = timeout
        self._secrets = tuple(secrets)
        self._headers = httpx.Headers({"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", **headers})
        self._json_headers = self._headers.copy()
        self._json_headers.setdefault("Content-Type", "application/json")
        self._extensions = {"timeout": httpx.Timeout(timeout, connect=CONNECT_TIMEOUT).as_dict()}
        proxy = None if transport is not None else environment_proxy(self.base_url)
        self._transport = transport or _transport_for(instance, self.base_url, proxy)
        # said when no connection is made: a refusing proxy is not the API refusing (never its credentials)
        self._via = f" through the proxy {_proxy_shown(proxy)}" if proxy else ""
        self._urls: dict[str, httpx.URL] = {}  # path -> parsed URL: parsing one is ~2/3 of building a request
        self._date: tuple[str, float] | None = None  # the last reply's Date header, and when it came

    def __repr__(self) -> str:
        return f"HttpClient({self.instance!r}, {self.base_url!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets this client always scrubs (its token)."""
        return self._secrets

    def scrub(self, text: str, extra: Iterable[str] = ()) -> str:
        return scrub(text, (*self._secrets, *extra))

    def call(self, method: str, path: str, what: str, *, body: Any = None, idempotent: bool = True,
             secrets: Iterable[str] = ()) -> httpx.Response:
        """Send one API call with the retry policy; `what` (e.g. `create "CI bot"`) labels errors.

        Returns the final response whatever its status. Raises ProviderError when no response came:
        `ambiguous=True` when a non-idempotent request may have been received."""
        if not path.startswith("/"):  # glued to the base URL, `@evil.example/x` would name another host
            raise self._error(what, f"not sent: the path {self.scrub(path.split('?', 1)[0])!r} does not start "
                                    "with '/'", secrets)
        if _DOT_SEGMENT.search(path.partition("?")[0]):  # HTTP clients resolve them: another URL
            raise self._error(what, f"not sent: the path {self._shown(path)} has a '.' or '..' segment, which "
                                    "would send the call to another URL (an id '.' or '..' from a state or a "
                                    "definition)", secrets)
        with self.limiter.call():
            response = self._call(method, path, what, body, idempotent, tuple(secrets))
        # the breaker: refused to the end, or answered (a 5xx, after retries, is neither: it resets nothing)
        self.limiter.ended(True if rate_refusal(response) else None if response.status_code >= 500 else False)
        if date := response.headers.get("Date"):
            self._date = (date, time.time())
        return response

    def clock_offset(self) -> float | None:
        """The API's clock minus keyform's, in seconds, by the `Date` header of its last reply
        (whole seconds, sent before the reply arrived: a clock in step reads up to ~1 s behind);
        None when no reply carried a Date that parses. `usage` reads last-use times with it."""
        if self._date is None:
            return None
        text, received = self._date
        when = http_date(text)
        return None if when is None else when.timestamp() - received

    def _call(self, method: str, path: str, what: str, body: Any, idempotent: bool,
              secrets: tuple[str, ...]) -> httpx.Response:
        attempts = self.retry.max_retries + 1
        deadline = time.monotonic() + self.deadline
        waited = 0.0  # the instance pause this thread has already slept through (ratelimit.py)
        attempt = throttles = 0  # retries spent on failures; on rate refusals (their own budget)
        tried = 0  # attempts answered
        previous: httpx.Response | None = None  # the last answer that was to be retried (429, 5xx)
        sent = False  # whether any attempt may have reached the API
        paced = 0.0  # seconds queued for turns behind other calls, by which the deadline was moved on
        while True:
            last = attempt == attempts - 1
            try:  # every wait of the limiter ends by the deadline, but a first attempt's turn in the rate
                ticket = self.limiter.before_attempt(waited, deadline - time.monotonic(), first=tried == 0)
                deadline += ticket.paced  # queued, not slow: the deadline starts when the call may be sent
                paced += ticket.paced if tried else 0.0
            except NotAdmitted as exc:
                if exc.cause == "stopped":  # a Ctrl-C while it waited: no further attempt is sent
                    raise self._stopped(what, previous, sent, secrets) from None
                if exc.cause == "broken" and previous is not None:  # the breaker: its last refusal stands
                    previous.extensions[_BROKEN] = broken_words(exc)
                    return previous
                if previous is not None:  # not sent: the last answer stands
                    return self._gave_up(previous, tried, paced)
                if exc.cause == "broken" and sent:  # an attempt sent and lost may have been done: never "not sent"
                    raise self._error(what, f"no answer, and the instance stopped sending before the retry: "
                                            f"{broken_words(exc)}", secrets) from None
                raise self._not_admitted(what, exc, secrets) from None
            try:
                response = self._send(method, path, body, deadline)
            except _Limit as exc:
                if exc.expired and previous is not None and (idempotent or not exc.sent):
                    return self._gave_up(previous, tried, paced, unanswered=exc.sent)
                ambiguous = exc.sent and not idempotent
                note = "; the key may exist remotely" if ambiguous else ""
                raise self._error(what, f"{exc}{note}", secrets, ambiguous=ambiguous) from None
            except _FATAL as exc:
                raise self._error(what, f"request failed ({type(exc).__name__}: {exc})", secrets) from None
            except _NOT_SENT as exc:
                wait = self.retry.backoff(attempt, self._rng)
                if last or time.monotonic() + wait >= deadline:  # no time left for another attempt
                    # the breaker, BREAK_AFTER in a row: a call none of whose attempts reached the API
                    # (one sent and lost, or answered, did; a PoolTimeout is keyform's own pool)
                    if not sent and tried == 0 and not isinstance(exc, httpx.PoolTimeout):
                        self.limiter.unreachable(_connect_reason(exc) + self._via)  # (the proxy named)
                    raise self._error(what, f"cannot connect to {short_url(self.base_url)}{self._via} "
                                            f"({_connect_reason(exc)})", secrets) from None
                self._wait(what, attempt, wait, type(exc).__name__)
                attempt += 1
                continue
            except httpx.HTTPError as exc:
                reason = _lost_reason(exc, self._read_timeout)
                if not idempotent:
                    raise self._error(what, f"no response ({reason}); the key may exist remotely", secrets,
                                      ambiguous=True) from None
                sent = True  # it may have been done: a Ctrl-C before the retry is no "not sent"
                wait = self.retry.backoff(attempt, self._rng)
                if last or time.monotonic() + wait >= deadline:
                    raise self._error(what, f"no response ({reason}) after {attempt + 1} attempt(s)",
                                      secrets) from None
                self._wait(what, attempt, wait, type(exc).__name__)
                attempt += 1
                continue
            finally:
                self.limiter.sent()
            tried += 1
            delay = retry_after(response) if response.status_code in (429, 503) else None
            refused = rate_refusal(response)
            if not refused:
                if response.status_code < 500:
                    self.limiter.succeeded(ticket)
                # a 5xx is no answer that ends a run of refusals (found by a review: a 503 between
                # 429s switched the breaker off, and such an apply ran a change at a time for hours)
            else:  # the whole instance pauses, and slows down (providers/ratelimit.py); a pause too long
                # to wait for still holds the other calls, which then end unsent rather than be refused too
                backoff = self.retry.backoff(throttles, self._rng) if delay is None else 0.0
                delay, waited = self.limiter.throttled(ticket, delay, backoff, response.status_code)
            if refused:  # paced by the limiter, so they have their own, larger budget
                throttles += 1
                last = throttles > self.retry.max_throttled
                if last:  # said: `429 slow down` alone hid 21 attempts over 41 s
                    response.extensions[_GAVE_UP] = _GaveUp(tried, self.deadline, False, paced,
                                                            budget=self.retry.max_throttled)
            if last or not self._retryable(response.status_code, idempotent):
                return response
            if delay is not None and delay > self._longest_wait:
                response.extensions[_TOO_LONG] = self._longest_wait
                return response  # the caller reports it, with retry_after set
            response.close()
            wait = delay if delay is not None else self.retry.backoff(attempt, self._rng)
            if time.monotonic() + wait >= deadline:
                return self._gave_up(response, tried, paced)  # no time left for another attempt
            if refused:
                self.limiter.sleeping_out_pause(wait)
            self._wait(what, attempt, wait, str(response.status_code))
            previous = response
            if not refused:
                attempt += 1

    @property
    def _longest_wait(self) -> float:
        """The longest Retry-After a call waits for: `max_retry_after`, or the deadline if longer
        (a call may wait for what its deadline allows)."""
        return max(self.retry.max_retry_after, self.deadline)

    def _gave_up(self, response: httpx.Response, tried: int, paced: float = 0.0, *,
                 unanswered: bool = False) -> httpx.Response:
        """`response` (a 429 or 5xx the call would have retried), marked as the deadline's cut
        (`paced`: the seconds its retries queued for turns, by which the deadline was moved on):
        `status_error` says so."""
        response.extensions[_GAVE_UP] = _GaveUp(tried, self.deadline, unanswered, paced)
        return response

    def _stopped(self, what: str, previous: httpx.Response | None, sent: bool,
                 secrets: Iterable[str]) -> ProviderError:
        """The apply was interrupted while the call waited: for its first attempt (`NotSentError`:
        nothing reached the API), for a retry after an attempt sent and lost (idempotent: it may
        have been done), or for a retry after a 429 or 5xx answer, which then stands."""
        if previous is None and not sent:
            return self._not_admitted(what, NotAdmitted("stopped", 0.0), secrets)
        if previous is None:
            return ProviderError(self.scrub(f"{self.instance}: {what}: no answer, and the apply was interrupted "
                                            "before the retry", secrets))
        status = previous.status_code
        return ProviderError(self.scrub(f"{self.instance}: {what}: {status} answered, and the apply was "
                                        f"interrupted before the retry", secrets), status=status)

    def _not_admitted(self, what: str, exc: NotAdmitted, secrets: Iterable[str]) -> ProviderError:
        """The call's first attempt was not admitted (`ratelimit.not_admitted_error`), scrubbed."""
        return not_admitted_error(self.instance, what, exc, self.deadline, lambda text: self.scrub(text, secrets))

    def _send(self, method: str, path: str, body: Any, deadline: float) -> httpx.Response:
        """One request straight through the transport; the body read (and decoded) whole, within the
        call's deadline and the body cap (`_Limit` otherwise)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Limit(self._over_deadline(), sent=False)
        content = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                                                       allow_nan=False).encode()
        extensions = self._extensions
        if remaining < self._read_timeout:  # no single wait may outlast the deadline either
            extensions = {"timeout": httpx.Timeout(remaining, connect=min(CONNECT_TIMEOUT, remaining)).as_dict()}
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(self.base_url + path)
            # a create's path repeats; a page's (its query) or a revoke's (its ID) does not, and
            # must not fill the cache before the apply's creates come
            if "?" not in path and len(self._urls) < _URLS_KEPT:
                self._urls[path] = url
        request = httpx.Request(method, url, content=content, extensions=extensions,
                                headers=self._headers if content is None else self._json_headers)
        started = time.monotonic() if log.isEnabledFor(logging.DEBUG) else None
        call_deadline.at = deadline  # every socket wait of this request ends by then (wire.bounded)
        call_deadline.head_then_body = bool(content)  # one send for head and body (proxied._DeadlineStream)
        try:
            response = self._transport.handle_request(request)
        except httpx.HTTPError as exc:
            call_deadline.at = call_deadline.head_then_body = None
            if started is not None:
                log.debug("%s: %s %s -> no response (%s) %.0f ms", self.instance, method, self._shown(path),
                          type(exc).__name__, (time.monotonic() - started) * 1000)
            if isinstance(exc, httpx.TimeoutException) and time.monotonic() >= deadline - _DEADLINE_SLACK:
                raise _Limit(self._over_deadline(),
                             sent=not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)) from None
            raise
        except BaseException:
            call_deadline.at = call_deadline.head_then_body = None
            raise
        if started is not None:
            log.debug("%s: %s %s -> %d %.0f ms", self.instance, method, self._shown(path), response.status_code,
                      (time.monotonic() - started) * 1000)
        response.request = request
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > self.max_body:
                raise _Limit(self._too_large(), expired=False)
            chunks, size = [], 0
            # a transport that built its reply whole (a test's httpx.MockTransport) has read and
            # decoded it already; a network transport's reply is read and decoded here, a step at a
            # time, each step at most what the cap leaves: a gzip bomb counts at its real size
            # before it is held in memory
            whole = response.is_stream_consumed
            decoder = _BodyDecoder("" if whole else response.headers.get("Content-Encoding", ""), self.max_body)

            def decoded() -> Iterator[bytes]:
                for raw in (response.content,) if whole else response.iter_raw():
                    yield from decoder.decode(raw)
                    if time.monotonic() > deadline:
                        raise _Limit(self._over_deadline())
                yield from decoder.decode(b"", final=True)

            try:
                for chunk in decoded():
                    size += len(chunk)
                    if size > self.max_body:
                        raise _Limit(self._too_large(), expired=False)
                    chunks.append(chunk)
            except httpx.TimeoutException:
                if time.monotonic() >= deadline - _DEADLINE_SLACK:
                    raise _Limit(self._over_deadline()) from None
                raise
            response._content = b"".join(chunks)  # what Response.read() stores
        finally:
            call_deadline.at = call_deadline.head_then_body = None
            response.close()
        return response

    def _over_deadline(self) -> str:
        return (f"no complete response within the call's {self.deadline:g}s deadline (provider option "
                "`deadline`)")

    def _too_large(self) -> str:
        return (f"response body larger than {_size(self.max_body)} (provider option `max_response_bytes`); "
                "not read")

    def _shown(self, path: str) -> str:
        """The request URL as `-v` prints it: no query string, known secrets scrubbed, a long one cut
        in its middle (`short_url`)."""
        return short_url(self.scrub(self.base_url + path.split("?", 1)[0]))

    @staticmethod
    def _retryable(status: int, idempotent: bool) -> bool:
        if idempotent:
            return status == 429 or status >= 500
        return status in (429, 503)

    def _wait(self, what: str, attempt: int, retry_after_s: float | None, cause: str) -> None:
        """Sleep before a retry, in steps of at most `ratelimit.STOP_POLL`: after a Ctrl-C (the limiter's
        `stopping`) or once the instance stopped sending (its breaker) it ends early, and the next
        `before_attempt` sends nothing."""
        delay = retry_after_s if retry_after_s is not None else self.retry.backoff(attempt, self._rng)
        log.debug("%s: %s: %s; retry %d/%d in %.2fs", self.instance, what, cause, attempt + 1,
                  self.retry.max_retries, delay)
        nap(delay, self._sleep, self.limiter.wake)

    def _error(self, what: str, detail: str, secrets: Iterable[str], *, ambiguous: bool = False) -> ProviderError:
        return ProviderError(self.scrub(f"{self.instance}: {what}: {detail}", secrets), ambiguous=ambiguous)

    def close(self) -> None:
        self._transport.close()


class _Limit(Exception):
    """The call's deadline passed (`expired`), or the response body is over the cap (the message
    says which)."""

    def __init__(self, message: str, *, sent: bool = True, expired: bool = True) -> None:
        super().__init__(message)
        self.sent = sent  # the request went out (a create may have happened)
        self.expired = expired


_GAVE_UP = "keyform.gave_up"  # the response extension `HttpClient._gave_up` sets
_TOO_LONG = "keyform.retry_after_too_long"  # response extension: the longest wait, when Retry-After exceeds it
_BROKEN = "keyform.broken"  # response extension: why the instance stopped sending before this call's retry


@record
class _GaveUp:
    """The call's deadline ended its retries on this answer, after `tried` answered attempts
    (`unanswered`: one more was sent and cut by the deadline)."""

    tried: int
    deadline: float
    unanswered: bool
    paced: float = 0.0  # seconds its retries queued for turns behind other calls (not the deadline's)
    budget: int | None = None  # the retries for rate refusals were spent (`max_throttled`), not the deadline

    def words(self, response: httpx.Response) -> str:
        """`rate-limited: still 429 after 6 attempts within the call's 20s deadline (...)`, and the
        time its retries queued for their turns in the send rate, which the deadline does not count."""
        lead = "rate-limited: " if rate_refusal(response) else ""
        cut = ", the next one unanswered," if self.unanswered else ""
        queued = (f", and {self.paced:.1f} s its retries queued for their turns behind other calls (not counted "
                  "in the deadline)") if self.paced >= 0.05 else ""
        if self.budget is not None:
            return (f"{lead}still {response.status_code} after {self.tried} attempts: the most a call makes "
                    f"against refusals for the rate ({self.budget} retries)")
        return (f"{lead}still {response.status_code} after {self.tried} attempt{'s' if self.tried != 1 else ''}{cut} "
                f"within the call's {self.deadline:g}s deadline (provider option `deadline`){queued}")


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON body, or None when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
        return None


def check_unique_names(response: httpx.Response) -> None:
    """ShapeError when the body's JSON holds a name twice in one object: `json.loads` keeps the last,
    and a create reply `{"secret": "A", "secret": "B"}` put B in the sink while the API may have
    registered A. For create replies (small): a listing is not parsed twice."""
    try:
        json.loads(response.content, object_pairs_hook=unique_keys)
    except DuplicateKey as exc:
        raise ShapeError(f"the reply holds the name {exc.key!r} twice in one object") from None
    except (ValueError, RecursionError):
        return  # not JSON: the caller's own parse says so


def status_error(client: HttpClient, what: str, response: httpx.Response, detail: str, *,
                 code: str | None = None, ambiguous: bool = False, secrets: Iterable[str] = ()) -> ProviderError:
    """`<instance>: <what>: <detail>` for a non-success answer, carrying status, code and Retry-After."""
    detail = redact.redact(detail, (*client.secrets, *secrets), 300)  # scrub the raw text, then collapse and cut
    gave_up = response.extensions.get(_GAVE_UP)
    if isinstance(gave_up, _GaveUp):  # the deadline ended the retries: say so
        detail = f"{detail}; {gave_up.words(response)}"
    broken = response.extensions.get(_BROKEN)
    if isinstance(broken, str):  # the breaker ended the retries: say so
        detail = f"{detail}; not retried: {broken}"
    longest = response.extensions.get(_TOO_LONG)
    if isinstance(longest, float) and (asked := retry_after(response)) is not None:
        asking = f"{asked:.6g} s" if asked < MAX_WAIT else seconds_text(asked)
        detail = (f"{detail}; the API asks to retry in {asking}, longer than a call waits ({longest:g} s: "
                  "the provider option `deadline`, at least 60 s)")
    return ProviderError(client.scrub(f"{client.instance}: {what}: {detail}", secrets),
                         status=response.status_code, code=code, retry_after=retry_after(response),
                         ambiguous=ambiguous)


class ShapeError(ValueError):
    """A response body that does not have the documented shape (the message says where)."""


# A UTC timestamp as APIs usually send it (`2027-06-01T00:00:00.123456Z`): normalised by cutting the
# fraction, 4x faster than the general parse-and-format (a 10,000-key listing holds 20,000 of them).
# Its first 19 characters (`_UTC_HEAD`: a year of 1900-9899, durations.MIN_YEAR/MAX_YEAR, checked by
# the pattern; a real date and time, checked by `datetime.fromisoformat`) are judged once per
# process (`_HEADS`): the keys of a listing were mostly made in a few seconds, or expire at one time.
# The verdict is the normalised timestamp itself (`HEAD` + `Z`), one string for all the keys of a
# second: not a new string per timestamp (15,000 of them, ~1 MB, in a 10,000-key plan's listings).
_UTC_HEAD = re.compile(r"(?:19[0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
# the first 19 characters of a timestamp → it + "Z" if `_UTC_HEAD` and a real instant, else ""
_HEADS: dict[str, str] = {}
_HEADS_KEPT = 4096  # verdicts kept at most (a few hundred KiB); beyond that, a head is judged each time


MAX_ID = 256
_DOT_SEGMENTS = frozenset((".", ".."))
_DOT_SEGMENT = re.compile(r"(?:^|/)\.\.?(?:/|$)")


def usable_id(value: Any) -> TypeGuard[str]:
    """Whether `value` can be a remote key's id as keyform records and shows it: a string of 1 to
    MAX_ID printable characters, no blank. An id is stored in the state and printed in every plan,
    progress line and `state list`: one with a control character, a newline or a bidi override
    drove the terminal and broke the Markdown plan of a pull request. Not `.` or `..`: in a call's
    path (`/api-keys/{id}/revoke`) an HTTP client resolves them, and the revoke goes to another URL."""
    return (type(value) is str and 0 < len(value) <= MAX_ID and value.isprintable() and " " not in value
            and value not in _DOT_SEGMENTS)


def id_problem(value: Any) -> str:
    """What is wrong with an id `usable_id` refused, for a shape error (never the id itself)."""
    if not isinstance(value, str) or not value:
        return "has no string 'id'"
    if value in _DOT_SEGMENTS:
        return f"has the id {value!r}, which a URL path resolves to another URL"
    return (f"has an id of {len(value)} characters (at most {MAX_ID})" if len(value) > MAX_ID
            else "has an id with a blank, a control or an invisible character")


def wire_time(value: Any, where: str, *, expiry: bool = False, unset_before: bool = False) -> str | None:
    """An RFC 3339 timestamp from the wire, normalised to `2027-06-01T00:00:00Z`; None stays None.

    Only years keyform can record and compute with (`durations.MIN_YEAR`..`MAX_YEAR`: the state
    refuses any other, so one recorded would lock every later command out). An `expiry` past
    them is "never" (some APIs write no expiry as 9999-12-31); any other time outside them is a
    ShapeError, as an unreadable one is. With `unset_before` (an expiry, a last use) a time before
    them is "not set": Go writes its zero time (0001-01-01T00:00:00Z) for a field it never set."""
    if value is None or value == "":
        return None
    if (utc := utc_time(value)) is not None:  # the usual form
        return utc
    if expiry and isinstance(value, str) and value[:4].isdigit() and int(value[:4]) > MAX_YEAR:
        return None  # never, also where the offset puts it past the last datetime (9999-12-31T23:59:59-01:00)
    try:
        at = parse_time(value)
    except ValueError:
        raise ShapeError(f"{where} is not an RFC 3339 timestamp: {str(value)[:40]!r}") from None
    if (at.year > MAX_YEAR and expiry) or (at.year < MIN_YEAR and unset_before):
        return None
    if not MIN_YEAR <= at.year <= MAX_YEAR:
        raise ShapeError(f"{where} is outside the years keyform can record ({MIN_YEAR}-{MAX_YEAR}): "
                         f"{str(value)[:40]!r}")
    return format_time(at)


def utc_time(value: Any) -> str | None:
    """What `wire_time` gives for a string in the usual UTC form (`2027-06-01T00:00:00.123Z`, a real
    date and time in the years keyform records), or None for any other value: then `wire_time`
    decides (and names what is wrong). The providers' list fast paths read a listing's timestamps
    with it, with no call per field.

    The form is `_UTC_HEAD`, then `Z` or a fraction (`.` and ASCII digits) and `Z`, and nothing
    more; whether a head is a real instant is asked once (`_HEADS`), not per timestamp (~0.5 µs
    less for each of the 15,000 timestamps of a 10,000-key plan's listings)."""
    if type(value) is not str:
        return None
    head = value[:19]
    utc = _HEADS.get(head)
    if utc is None:
        utc = head + "Z" if _utc_head(head) else ""
        if len(_HEADS) < _HEADS_KEPT:
            _HEADS[head] = utc
    if not utc:
        return None
    size = len(value)
    if size == 20:
        return utc if value[19] == "Z" else None
    if size > 21 and value[19] == "." and value[-1] == "Z":  # a fraction of at least one digit
        fraction = value[20:-1]
        if fraction.isdigit() and fraction.isascii():
            return utc
    return None


def _utc_head(head: str) -> bool:
    """Whether `head` is `_UTC_HEAD` and a real date and time (no 30 February, no hour 24)."""
    if _UTC_HEAD.fullmatch(head) is None:
        return False
    try:
        datetime.fromisoformat(head)
    except ValueError:
        return False
    return True


def shape_error(client: HttpClient, what: str, response: httpx.Response, exc: ShapeError, *,
                ambiguous: bool = False, secrets: Iterable[str] = ()) -> ProviderError:
    """A success status with a body keyform cannot read. For a create, the key may exist: ambiguous.
    A body that is not JSON at all is said so, with its content type (not "got NoneType")."""
    note = "; the key may exist remotely" if ambiguous else ""
    why = str(exc)
    if not response.content:
        why = "the body is empty"
    elif json_body(response) is None:
        kind = "".join(c for c in response.headers.get("content-type", "none")[:60] if c.isprintable())
        why = f"the body is not JSON (Content-Type: {kind}, {len(response.content)} bytes)"
    return ProviderError(client.scrub(f"{client.instance}: {what}: unexpected response shape ({why}){note}", secrets),
                         status=response.status_code, ambiguous=ambiguous)
