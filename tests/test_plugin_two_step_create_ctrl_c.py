"""Found by an adversarial review (stop 37): a plug-in built on HttpClient whose create is two calls (POST the key, then a second call:
fetch its secret, activate it, read it back). A Ctrl-C that lands between them makes the second
call raise `NotSentError` (cb3b25a: the offered limiter ends the wait). It propagates out of the
plug-in's create as every ProviderError does, and the applier reports the change "not started",
journals the create as failed (recovery never looks for it), while the key made by the first call
is live. Before cb3b25a the second call was sent. Real HTTP to the emulator on 127.0.0.1."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from harness.project import ORG
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import NotSentError, ProviderError, SourceLoc
from keyform.model import EnvRef, ProviderConfig
from keyform.providers import open_provider
from keyform.remote import CreateRequest
from keyform.typeregistry import provider_type, register, unregister

STOP = threading.Event()


def _open(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):  # type: ignore[no-untyped-def]
    from keyform.providers.questra import QuestraProvider  # made here: takes the offered limiter

    inner = QuestraProvider(config.name, config.base_url, token, ORG, timeout=timeout, max_retries=max_retries)

    class TwoStep:
        name = inner.name

        def list(self):  # type: ignore[no-untyped-def]
            return inner.list()

        def create(self, request):  # type: ignore[no-untyped-def]
            made = inner.create(request)  # step 1: the key exists now
            STOP.set()  # the user presses Ctrl-C here
            inner.list()  # step 2 (e.g. read the key back): not sent
            return made

        def update(self, *a):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def delete(self, remote_id):  # type: ignore[no-untyped-def]
            inner.delete(remote_id)

        def close(self):  # type: ignore[no-untyped-def]
            inner.close()

    return TwoStep()


def test_a_ctrl_c_between_a_plugins_two_calls_never_reports_a_made_key_as_not_sent(emulator: Emulator) -> None:
    ptype = replace(provider_type("questra"), name="twostep-adv37", open=_open)
    register(ptype, origin="test-plugin 1.0")
    try:
        provider = open_provider(ProviderConfig("pp", "twostep-adv37", emulator.url, EnvRef("T"), None,
                                                SourceLoc("k.yaml", 1)), "qk_test", None)
    finally:
        unregister(ptype)
    provider.limiter.configure(4, stopping=STOP.is_set)  # type: ignore[attr-defined]  # as operations.apply does
    with pytest.raises(ProviderError) as err:
        provider.create(CreateRequest("k1", {"name": "k1"}, None, {}))
    with EmulatorControl(emulator.url) as control:
        live = [k for k in control.questra_keys(ORG) if not k.get("revoked")]
    assert len(live) == 1  # the first call made the key
    # the applier treats NotSentError as "not started" and journals the create as failed: never recovered
    assert not isinstance(err.value, NotSentError) and err.value.ambiguous, repr(err.value)
