"""A listing answered `200` with an error and no list (`{"message": "Invalid API key"}`): an error,
never an empty listing (every key would look deleted). The message must say what the API said, on
one line and cut (a hostile or broken API's 1 MB message, with line breaks, was quoted whole), with
no secret in it (an API that echoes the token), and also where `items` is the whole reply (`""`) or
a list of alternatives: that said only "got an object with keys ['message']". Against scripted APIs
on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyform.errors import ProviderError
from tests.test_provider_rest import TOKEN, provider


def answer(body: Any) -> Any:
    return lambda method, path, headers, sent: (200, {}, body)


@pytest.mark.parametrize("items", ["/items", "''", "['', /data]", "[/data, /items]"])
def test_a_200_with_a_message_and_no_list_names_the_api_s_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 items: str) -> None:
    from tests import test_provider_rest

    monkeypatch.setattr(test_provider_rest, "BASE", test_provider_rest.BASE.replace("items: /items", f"items: {items}"))
    said = f"Invalid API key {TOKEN}:\nsee\thttps://docs.example/auth " + "x" * 100_000
    with provider(tmp_path, answer({"message": said})) as (p, _), pytest.raises(ProviderError) as caught:
        p.list()
    message = str(caught.value)
    assert message.startswith("t1: list: unexpected response shape (no list of keys at ")
    assert ", but an error: Invalid API key ***: see https://docs.example/auth xxx" in message
    assert TOKEN not in message and "\n" not in message and "\t" not in message and len(message) < 400


def test_an_error_code_and_message_are_both_named(tmp_path: Path) -> None:
    with provider(tmp_path, answer({"error": {"code": "forbidden", "message": "no access to keys"}})) as (p, _), \
            pytest.raises(ProviderError, match=r"no list of keys at /items, but an error: forbidden: no access to keys\)$"):
        p.list()


def test_a_reply_of_other_names_names_a_few_of_them_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import test_provider_rest

    monkeypatch.setattr(test_provider_rest, "BASE", test_provider_rest.BASE.replace("items: /items", "items: ''"))
    with provider(tmp_path, answer({"n" * 10_000: 1, "other\n": 2})) as (p, _), pytest.raises(ProviderError) as caught:
        p.list()
    assert str(caught.value) == ("t1: list: unexpected response shape (no array of keys where the definition says "
                                 f"(got an object with keys ['{'n' * 40}', 'other\\n']))")


@pytest.mark.parametrize("status", [200, 403])
def test_a_code_that_is_the_message_is_said_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    """Slack's `{"ok": false, "error": "invalid_auth"}`, read by a definition whose `errors.message`
    and `errors.code` both point at /error (the shipped questra.yaml's fall back to /error too): the
    error read `invalid_auth: invalid_auth`."""
    from tests import test_provider_rest

    monkeypatch.setattr(test_provider_rest, "BASE", test_provider_rest.BASE.replace(
        "message: [/error/message, /message]", "message: [/message, /error]").replace("code: /error/code", "code: /error"))
    reply = {"ok": False, "error": "invalid_auth"}
    with provider(tmp_path, lambda method, path, headers, sent: (status, {}, reply)) as (p, _), \
            pytest.raises(ProviderError) as caught:
        p.list()
    assert "invalid_auth" in str(caught.value) and "invalid_auth: invalid_auth" not in str(caught.value), caught.value
