"""Found by feeding keyform a hostile API (review s41): a gateway that answers 404 (an HTML page) to
every path made Questra `destroy` report success while the key stayed live: the list's 404 read as
"no list endpoint" (planned from the state alone), the revoke's 404 as "already gone", and the
state and sink entries were dropped. A 404 is "already gone" now only when it is the API's own
JSON error (Questra: an object with its `error`; TextQL: a Connect `code` of `not_found`); any
other 404 is an error that names what came back. The emulator's own 404 for a deleted key still is
"already gone". The same for `type: rest` over examples/providers/questra.yaml and textql.yaml.

Against the emulator behind a hostile proxy on 127.0.0.1 (tests/hostile.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.project import DEFINITIONS, ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import ProviderError
from keyform.manifest.restdef import load_definition
from keyform.providers import QuestraProvider, TextQLProvider
from keyform.providers.rest import RestProvider
from keyform.remote import CreateRequest, Provider
from tests.hostile import HostileServer, Reply, hostile

PAGE = b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>nginx</body></html>"
GATEWAY_404 = {
    "html": Reply(404, PAGE, {"Content-Type": "text/html"}),
    "empty": Reply(404, b"", {}),
    "other-json": Reply(404, b'{"message": "no Route matched with those values"}'),  # Kong's
}


def _gateway(api: HostileServer, reply: Reply) -> None:
    """Every request is answered `reply`, as by a gateway that routes nothing to the API."""
    api.script = lambda seen: reply


def _textql(kind: str, url: str) -> Provider:
    """The built-in TextQL provider, or `type: rest` over examples/providers/textql.yaml, at `url`."""
    if kind == "textql":
        return TextQLProvider("tq", url, "tok", max_retries=0, sleep=lambda s: None)
    definition, problems = load_definition(str(DEFINITIONS / "textql.yaml"), "textql.yaml")
    assert definition is not None, problems
    return RestProvider("tq", definition, url, "tok", {}, max_retries=0, sleep=lambda s: None)


TEXTQL_KEY = CreateRequest("k", {"description": "k", "hosts": ["api.example.com"]}, None,
                           {"auth_value": "sk-credential-0123456789"})


@pytest.mark.parametrize("shape", sorted(GATEWAY_404))
def test_a_questra_revoke_answered_by_a_gateway_404_is_an_error(emulator: Emulator, emu_control: EmulatorControl,
                                                                shape: str) -> None:
    with hostile(upstream=emulator.url) as api:
        provider = QuestraProvider("qp", api.url, "tok", ORG, max_retries=0, sleep=lambda s: None)
        key = provider.create(CreateRequest("ci-bot", {"name": "ci-bot"}, None)).key
        _gateway(api, GATEWAY_404[shape])
        with pytest.raises(ProviderError) as info:
            provider.delete(key.id)
        assert info.value.status == 404
        what = {"html": "a text/html body of", "empty": "an empty body",
                "other-json": 'a JSON reply without an "error"'}[shape]
        assert what in str(info.value) and "not taken for a key already gone" in str(info.value), info.value
        assert [(k["id"], k["revoked"]) for k in emu_control.questra_keys(ORG)] == [(key.id, False)]
        api.script = lambda seen: None
        provider.delete("ak_never_made")  # the API's own 404 (`{"error": "not_found", ...}`): already gone
        emu_control.delete_questra(ORG, key.id)
        provider.delete(key.id)  # deleted outside keyform: the emulator's 404, already gone
        provider.close()


@pytest.mark.parametrize("kind", ["textql", "rest-textql"])
@pytest.mark.parametrize("shape", sorted(GATEWAY_404))
def test_a_textql_delete_answered_by_a_gateway_404_is_an_error(emulator: Emulator, emu_control: EmulatorControl,
                                                               shape: str, kind: str) -> None:
    """A 404 with no Connect code was taken for "already gone" like the API's own `not_found` (the
    definition's default `gone: [404]` did the same)."""
    with hostile(upstream=emulator.url) as api:
        provider = _textql(kind, api.url)
        key = provider.create(TEXTQL_KEY).key
        _gateway(api, GATEWAY_404[shape])
        with pytest.raises(ProviderError) as info:
            provider.delete(key.id)
        assert info.value.status == 404, info.value
        api.script = lambda seen: None
        provider.delete("never-made")  # the API's own `not_found`: already gone
        provider.close()
    assert [k["id"] for k in emu_control.textql_keys()] == [key.id]


@pytest.mark.parametrize("rest", [False, True], ids=["questra", "rest-questra"])
def test_destroy_behind_a_gateway_that_answers_404_everywhere_keeps_the_key(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl, rest: bool) -> None:
    with hostile(upstream=emulator.url) as api:
        project = Project(tmp_path, api.url, rest=rest)
        project.questra("k1: {provider: qp, name: k1}\n")
        assert project.run("apply", "--auto-approve").exit_code == 0
        key_id = project.remote_id("k1")
        entry = project.sink()["K1"]
        _gateway(api, GATEWAY_404["html"])
        destroyed = project.run("destroy", "--auto-approve")
        assert destroyed.exit_code == 1, destroyed.output
        assert "404" in destroyed.output, destroyed.output
        assert project.remote_id("k1") == key_id and project.sink()["K1"] == entry
        assert [(k["id"], k["revoked"]) for k in emu_control.questra_keys(ORG)] == [(key_id, False)]
        api.script = lambda seen: None
        emu_control.delete_questra(ORG, key_id)  # gone for real: the API's own 404 is "already gone"
        destroyed = project.run("destroy", "--auto-approve")
        assert destroyed.exit_code == 0, destroyed.output
        assert "k1" not in project.state()["keys"] and "K1" not in project.sink()
