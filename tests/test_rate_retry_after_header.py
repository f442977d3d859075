"""How `Retry-After` is read (providers/http.py `retry_after`), over real HTTP on 127.0.0.1.

Found by a review:
- an HTTP-date was read against keyform's clock, not the reply's `Date`: a server an hour ahead
  asking for 2 s made keyform "retry in 3602 s" (every change failed, the instance paused an hour);
  an hour behind, it waited 0 s and was refused again. It is now `Retry-After` - `Date` when the
  reply has a Date that parses.
- a header sent twice (`Retry-After: 5` twice; httpx joins them `5, 5`) was unreadable, so the
  call retried after a backoff of at most 0.2 s. The largest value that parses is now taken.
The server writes its own `Date` (http.server's `send_response` would add the machine's)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from keyform.providers.questra import QuestraProvider
from tests.loopback import LoopbackServer, QuietHandler, serving


class _Refusing(QuietHandler):
    """GET /api-keys: the first answer a 429 with the server's `headers`, then an empty listing."""

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        with server.lock:
            first = not server.seen
            server.seen.append(self.path)
        status, body = (429, b'{"error":{"code":"rate_limited","message":"slow down"}}') if first else (200, b"[]")
        self.send_response_only(status)
        for name, value in (server.headers if first else [("Date", _http(server.clock()))]):
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(LoopbackServer):
    def __init__(self, headers: list[tuple[str, str]], skew: float = 0.0) -> None:
        super().__init__(_Refusing)
        self.headers, self.skew, self.lock = headers, skew, threading.Lock()

    def clock(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.skew)


def _http(when: datetime) -> str:
    return format_datetime(when.replace(microsecond=0), usegmt=True)


def _sleeps_of_one_list(headers: list[tuple[str, str]]) -> list[float]:
    sleeps: list[float] = []
    with serving(_Server(headers)) as server:
        provider = QuestraProvider("qp", server.url, "tok", "org_1", sleep=sleeps.append)
        try:
            assert provider.list() == []
        finally:
            provider.close()
        assert len(server.seen) == 2
    return sleeps


@pytest.mark.parametrize("skew", [3600.0, -3600.0], ids=["server-an-hour-ahead", "server-an-hour-behind"])
def test_an_http_date_retry_after_is_read_against_the_replys_date(skew: float) -> None:
    server_now = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=skew)
    sleeps = _sleeps_of_one_list([("Date", _http(server_now)),
                                  ("Retry-After", _http(server_now + timedelta(seconds=2)))])
    # old code: ahead, `the API asks to retry in 3602 s` (no retry); behind, a wait of 0 s
    assert sleeps == [2.0]


def test_without_a_date_an_http_date_is_read_against_keyforms_clock() -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    sleeps = _sleeps_of_one_list([("Retry-After", _http(later))])
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 31, sleeps


@pytest.mark.parametrize(("headers", "wait"), [
    ([("Retry-After", "5"), ("Retry-After", "5")], 5.0),
    ([("Retry-After", "2"), ("Retry-After", "7")], 7.0),
    ([("Retry-After", "1, 4")], 4.0),
    ([("Retry-After", "soon"), ("Retry-After", "3")], 3.0),
], ids=["twice", "two-values", "one-list", "one-unreadable"])
def test_a_repeated_retry_after_gives_the_largest_value(headers: list[tuple[str, str]], wait: float) -> None:
    # old code: `5, 5` read as no Retry-After at all: a backoff of at most 0.2 s
    assert _sleeps_of_one_list(headers) == [wait]
