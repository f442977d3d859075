"""Found by an adversarial pass (stop 36): the conformance kit passed two broken providers.

- One whose list() puts the issued secret (or its token) into a listed key's attributes: those are
  what refresh keeps (the state) and shows (plans), yet the kit's canary check looked only at the
  reprs of the provider, the create and update results and errors, never at what list() returns.
- One whose delete() swallows every ProviderError (a 401/403/429/5xx taken for "already gone"):
  keyform then drops a key from the state while it stays live. The kit injected faults for list and
  create only; a delete under an injected failure (or with the rejected token) must raise.

Each is questra with one method broken, run through the kit against the emulator."""

from __future__ import annotations

import base64
import contextlib
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from keyform.emulator import Emulator, EmulatorConfig
from keyform.errors import ProviderError
from keyform.remote import CreateRequest, CreateResult, Provider
from keyform.testing import CANARY, ConformanceTarget, ProviderConformance
from keyform.testing.builtin import EmulatorFaults
from keyform.typeregistry import provider_type, register, unregister

TOKEN = f"tok-{CANARY}-ok"
READ_ONLY = f"tok-{CANARY}-read"  # the emulator answers 403 to its writes


class _Wrapped:
    """questra, all but what a subclass breaks."""

    def __init__(self, inner: Provider, token: str) -> None:
        self.inner, self.token, self.name = inner, token, inner.name

    def __repr__(self) -> str:
        return repr(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LeaksInList(_Wrapped):
    """list() reports the issued secret and the token as attributes."""

    secrets: dict[str, str | None]

    def list(self) -> Any:
        found = getattr(self, "secrets", {})
        return [replace(k, attrs={**k.attrs, "hint": found.get(k.id, ""), "auth": self.token})
                for k in self.inner.list() or []]

    def create(self, request: CreateRequest) -> CreateResult:
        created = self.inner.create(request)
        self.secrets = {**getattr(self, "secrets", {}), created.key.id: created.secret}
        return created


class SwallowsDelete(_Wrapped):
    def delete(self, remote_id: str) -> None:
        with contextlib.suppress(ProviderError):  # the bug: every failure taken for "already gone"
            self.inner.delete(remote_id)


@contextlib.contextmanager
def _target(name: str, wrap: Callable[[Provider, str], _Wrapped], base: str = "questra"
            ) -> Iterator[ConformanceTarget]:
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, tokens=frozenset({TOKEN}),
                                  read_only_tokens=frozenset({READ_ONLY}))).start()
    inner = provider_type(base)
    t = replace(inner, name=name, open=lambda config, token, org, **kw: wrap(inner.open(config, token, org, **kw),
                                                                          token))
    register(t, origin="test")
    fields: dict[str, Any] = ({"provider_options": {"org_id": "org_kit"}, "key_fields": lambda label: {"name": label}}
                              if base == "questra" else
                              {"key_fields": lambda label: {"description": label, "hosts": ["api.example.com"]},
                               "secret_inputs": {"auth_value": f"sk-{CANARY}-credential"}})
    try:
        yield ConformanceTarget(provider_type=t.name, base_url=emu.url, token=TOKEN,
                                rejected_token=f"tok-{CANARY}-no", forbidden_token=READ_ONLY,
                                faults=EmulatorFaults(emu.url), **fields)
    finally:
        unregister(t)
        emu.stop()


class Log:
    text = ""


def test_the_kit_fails_a_provider_that_lists_the_secret_as_an_attribute() -> None:
    with _target("leaks-in-list", LeaksInList) as target:
        p = target.open()
        created = p.create(target.request("probe"))
        leaked = [k for k in p.list() or [] if k.id == created.key.id]
        assert created.secret and created.secret in repr(leaked) and TOKEN in repr(leaked)  # the defect is real
        p.delete(created.key.id)
        p.close()
        with pytest.raises(AssertionError, match="leak"):
            ProviderConformance().test_create_list_update_delete(target, Log())


def test_the_kit_fails_a_provider_whose_delete_swallows_errors() -> None:
    kit, failures = ProviderConformance(), 0
    with _target("swallows-delete", SwallowsDelete) as target:
        for test in (kit.test_create_list_update_delete, kit.test_status_codes_map_to_provider_errors,
                     kit.test_a_refused_delete_is_an_error_and_the_key_stays):
            try:
                test(target, Log())
            except (AssertionError, pytest.fail.Exception):
                failures += 1
            finally:
                target.faults.clear()
    assert failures, "no kit test noticed that delete() never reports a failure"



class RefusalsAreGone(_Wrapped):
    """Review finding 8: delete takes a 403 (a read-only token) and a 429 for "already gone", as
    it takes a 404; keyform then forgets a key that stays live."""

    def delete(self, remote_id: str) -> None:
        try:
            self.inner.delete(remote_id)
        except ProviderError as exc:
            if exc.status not in (403, 429):
                raise


class DropsExpiry(_Wrapped):
    """Review finding 8: create never sends the expiry; the key never expires."""

    def create(self, request: CreateRequest) -> CreateResult:
        return self.inner.create(replace(request, expires_at=None))


def test_the_kit_fails_a_provider_whose_delete_takes_403_and_429_for_gone() -> None:
    with _target("refusals-are-gone", RefusalsAreGone) as target:
        p = target.open()
        key_id = p.create(target.request("probe")).key.id
        target.open(token=READ_ONLY).delete(key_id)  # the defect is real: no error...
        assert any(k.id == key_id and not k.revoked for k in p.list() or [])  # ...and the key is live
        p.delete(key_id)
        with pytest.raises(pytest.fail.Exception, match="delete returned on a token the API answers 403"):
            ProviderConformance().test_a_refused_delete_is_an_error_and_the_key_stays(target, Log())
    with _target("refusals-are-gone", lambda inner, token: RefusalsAreGone(inner, token) if token != READ_ONLY
                 else _Wrapped(inner, token)) as target:  # 403 right: the 429 is caught on its own
        with pytest.raises(pytest.fail.Exception, match="delete returned on an injected 429"):
            ProviderConformance().test_a_refused_delete_is_an_error_and_the_key_stays(target, Log())
        target.faults.clear()


def test_the_kit_fails_a_provider_whose_create_drops_the_expiry() -> None:
    with _target("drops-expiry", DropsExpiry) as target, \
            pytest.raises(AssertionError, match="is listed with no expiry: create dropped request"):
        ProviderConformance().test_create_with_an_expiry_lists_it(target)


class LogsBasicAuth(_Wrapped):
    """A provider that debug-logs its Authorization header as HTTP Basic: base64 of `api:<token>`,
    which a plain search for the token never finds (left open in stop 36)."""

    def create(self, request: CreateRequest) -> CreateResult:
        basic = base64.b64encode(f"api:{self.token}".encode()).decode()
        logging.getLogger("keyform.providers").debug("POST /api-keys Authorization: Basic %s", basic)
        return self.inner.create(request)


def test_the_kit_finds_a_token_logged_as_basic_auth(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="keyform")
    with _target("logs-basic-auth", LogsBasicAuth) as target, \
            pytest.raises(AssertionError, match="leaked base64-encoded"):
        ProviderConformance().test_create_list_update_delete(target, caplog)


def test_the_encoded_forms_the_kit_looks_for() -> None:
    from keyform.testing.conformance import _encoded

    token = "tok+/=é-0123456789abcdef"
    forms = dict(_encoded(token))
    assert forms[token] == "" and forms[quote(token, safe="")] == " percent-encoded"
    for user in ("", "a", "ab", "api", "user@example.com"):  # every alignment of `user:token` in base64
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        assert any(form in basic for form, how in forms.items() if how == " base64-encoded"), user


class NotFoundIsGone(_Wrapped):
    """Review s41: delete takes any answer whose error code is `not_found` for "already gone",
    whatever its status, as the built-in TextQL provider did: a 500, 401 or 503 from a failing
    server or a gateway whose body says `not_found` made keyform forget a live key."""

    def delete(self, remote_id: str) -> None:
        try:
            self.inner.delete(remote_id)
        except ProviderError as exc:
            if exc.code != "not_found":
                raise


def test_the_kit_fails_a_provider_that_takes_a_failure_saying_not_found_for_gone() -> None:
    with _target("not-found-is-gone", NotFoundIsGone, base="textql") as target, \
            pytest.raises(pytest.fail.Exception, match="with the body the API answers for a key already gone"):
        ProviderConformance().test_a_failure_with_the_api_s_gone_body_is_an_error(target, Log())


PRINTING_SUITE = '''
import sys
from dataclasses import replace

import pytest

from keyform.emulator import Emulator, EmulatorConfig
from keyform.testing import CANARY, ConformanceTarget, ProviderConformance
from keyform.testing.builtin import EmulatorFaults
from keyform.typeregistry import provider_type, register, unregister

TOKEN = f"tok-{CANARY}-ok"


class Prints:
    """questra, printing what it must never show."""

    def __init__(self, inner, token):
        self.inner, self.name, self.token = inner, inner.name, token

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create(self, request):
        created = self.inner.create(request)
        print("debug: created", created.key.id, WHAT(self, created), file=STREAM())
        return created


@pytest.fixture
def conformance_target():
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, tokens=frozenset({TOKEN}))).start()
    inner = provider_type("questra")
    t = replace(inner, name="prints", open=lambda c, token, org, **kw: Prints(inner.open(c, token, org, **kw), token))
    register(t, origin="test")
    yield ConformanceTarget(provider_type="prints", base_url=emu.url, token=TOKEN, rejected_token=f"tok-{CANARY}-no",
                            faults=EmulatorFaults(emu.url), provider_options={"org_id": "org_kit"},
                            key_fields=lambda label: {"name": label})
    unregister(t)
    emu.stop()


class TestPrints(ProviderConformance):
    pass
'''


@pytest.mark.parametrize(("what", "stream"), [
    ("lambda p, created: created.secret", "lambda: sys.stdout"),
    ("lambda p, created: p.token", "lambda: sys.stderr"),
    ("lambda p, created: 'nothing secret'", "lambda: sys.stdout"),
    # click.echo probes the stream with write(b""): the kit's check then failed on that bytes object
    # (TypeError: sequence item 0: expected str instance), a harmless plug-in included
    ("lambda p, created: __import__('click').echo('debug: made a key') or 'nothing secret'", "lambda: sys.stdout"),
    ("lambda p, created: __import__('click').echo(created.secret, err=True) or 'x'", "lambda: sys.stdout"),
], ids=["secret-on-stdout", "token-on-stderr", "harmless", "harmless-click-echo", "secret-by-click-echo"])
def test_the_kit_fails_a_provider_that_prints_a_secret(tmp_path: Path, what: str, stream: str) -> None:
    """Found by review 107: a plug-in that print()s the secret it was issued (or its token) puts it
    on keyform's own output, and the kit did not look at what a provider prints. It does now, in
    a real pytest run of the kit (the `kit` fixture captures sys.stdout and sys.stderr)."""
    suite = tmp_path / "test_prints_suite.py"
    suite.write_text(PRINTING_SUITE.replace("WHAT(", f"({what})(").replace("STREAM()", f"({stream})()"))
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite),
                          "-k", "test_create_list_update_delete"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    if "nothing secret" in what:
        assert res.returncode == 0, res.stdout[-3000:]
    else:
        assert res.returncode == 1, res.stdout[-3000:]
        assert ("leaked into a repr, a log line, an error or the provider's output" in res.stdout
                or "the canary leaked" in res.stdout), res.stdout[-3000:]
