"""Found by an adversarial review (stop 37) of 49c323e: 'an auth value/password without ${token} or a secret option' is
refused, and so is a reasonable definition: HTTP basic auth with the API key as the USER NAME and an
empty password (Stripe's `-u sk_live_...:`, Chargebee, Recurly, Paystack-style APIs). The token is
there; the check looks only at `password`."""

from __future__ import annotations

from pathlib import Path

from keyform.manifest import load_workspace
from tests.test_rest_definitions import CORPUS, MANIFEST, NOW


def test_basic_auth_token_as_username_is_accepted(tmp_path: Path) -> None:
    base = (CORPUS / "_base.yaml").read_text()
    assert "auth: {type: bearer}\n" in base
    (tmp_path / "providers").mkdir()
    (tmp_path / "providers" / "demo.yaml").write_text(
        base.replace("auth: {type: bearer}\n", 'auth: {type: basic, username: "${token}", password: ""}\n'))
    (tmp_path / "keyform.yaml").write_text(MANIFEST)
    load_workspace(cwd=tmp_path, now=NOW)  # raised: auth.password: holds no secret
