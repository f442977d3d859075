"""Found by an adversarial pass (stop 36): a create reply that names the secret twice with two values
(`{"id": "k1", "secret": "A", "secret": "B"}`) was read with plain json (last name wins): keyform
silently wrote B to the sink. Which of the two the server registered is unknown (many parsers keep
the first), so the sink may hold a secret that never worked while the real one is lost. keyform
refuses duplicate names in its own state and JSON sink (strictjson.unique_keys); an API reply that
is ambiguous about the secret should be a shape error (an ambiguous create), not a guess."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyform.errors import ProviderError
from tests.test_provider_rest import provider

FIRST, SECOND = "sk-CANARY-first-0000000000", "sk-CANARY-second-111111111"


def test_a_create_reply_with_two_secrets_is_not_guessed(tmp_path: Path) -> None:
    def script(method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if method == "POST":
            raw = ('{"id": "k1", "name": "n1", "tags": [], "created": "2026-01-01T00:00:00Z", '
                   f'"secret": "{FIRST}", "secret": "{SECOND}"}}')
            return 201, {}, raw.encode()
        return 200, {}, {"items": []}

    from keyform.remote import CreateRequest
    with provider(tmp_path, script) as (p, _):
        req = CreateRequest(address="a", attrs={"name": "n1", "tags": []}, expires_at=None, secret_inputs={})
        with pytest.raises(ProviderError) as refused:
            p.create(req)
    assert refused.value.ambiguous, refused.value  # the key may exist: recovery looks for it
    assert "holds the name 'secret' twice in one object" in str(refused.value)
    assert FIRST not in str(refused.value) and SECOND not in str(refused.value)
