"""The provider conformance suite: what every provider type must do, checked against a live server.

`ProviderConformance` is a mixin of pytest tests. Subclass it as `Test...` and define the fixture
`conformance_target` returning a `ConformanceTarget` (the type's name, a running server, tokens,
how to label a key, and a `ServerFaults` to inject faults). The tests:

- create → list finds it with the same attributes → update (if the type has updatable attributes)
  → the update's answer and the list show the change (of the attributes the API reports back, as
  for create) → delete/revoke → list shows it gone or revoked → delete again is no error;
- pagination: with the server's page size at 2, seven keys are all listed, none twice;
- an ambiguous create (the server commits, then drops the connection) fails the apply, and the next
  `keyform apply` finds the orphan by recovery and revokes it (the real CLI, in process); when the
  API's list reports no creation time, recovery cannot prove the key is the apply's own
  (docs/recovery.md), so instead the plan must name it with the `keyform import` command that adopts
  it, and after that import the apply leaves it the only live key;
- a key created with an expiry is listed with that expiry (within `EXPIRY_SLACK`; for a type
  whose keys can expire: `ConformanceTarget.expiry`);
- 401 (a rejected token; `rejected_status` for an API that answers it otherwise, e.g. 403), 403 (a
  token the server forbids writes to, if the target has one), 404 (update of an unknown id; delete
  of an unknown id is no error), 429 and 5xx map to `ProviderError` with that status (429 and 5xx
  never marked ambiguous for a list);
- a delete refused in any of those ways (a rejected or forbidden token, an injected 429 or 5xx) of
  a live key raises `ProviderError` with that status, never returns as "already gone" (keyform
  would forget a key that stays live), and the key is still listed live after; so does one answered
  with a failure status (the rejected token's, 500, 503) and the very body the API answers for a key
  already gone (its `not_found`, learnt through a relay on 127.0.0.1, `keyform.testing.relay`);
- a canary secret (tokens, secret options, write-only inputs, issued secrets) never appears in a
  repr, a log line (the `keyform` logger at DEBUG, as `-v` shows), an error message, or what the
  provider prints (anything written to `sys.stdout` or `sys.stderr` during a test: a `print()`
  reaches keyform's own output, a CI log);
- every result has the interface's types, as keyform checks them when it runs a plug-in
  (`keyform.providers.foreign`): `list()` a list of `RemoteKey` (each id once, a non-empty string;
  RFC 3339 times), `create()` a `CreateResult` whose secret is a string or None, `update()` a
  `RemoteKey`. A generator from `list()` or a secret in bytes passed the kit, then failed every
  keyform run of the type.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import quote

import pytest

from keyform.durations import format_time, parse_time, utcnow
from keyform.errors import ProviderError, SourceLoc
from keyform.model import EnvRef, ProviderConfig
from keyform.providers.foreign import Broken, check_created, check_key, check_listing
from keyform.remote import CreateRequest, CreateResult, Provider, RemoteKey, as_json
from keyform.typeregistry import ProviderType, provider_type

DEADLINE = 20.0  # seconds: each call of a provider the kit opens (`ProviderConfig.deadline`)
# seconds: the deadline of a provider the kit injects faults into. keyform retries a 429 (on a
# budget of its own: `max_retries=0` does not stop it) until its call's deadline, and the kit needs
# only the status the call ends with; 20 s per injected 429 made the kit a minute long
FAULT_DEADLINE = 3.0

# Put this inside every secret value a target hands the kit (tokens, write-only inputs): the kit
# searches for the whole values, and for this marker, in everything a provider shows.
CANARY = "kfCANARY9x7q"
# How far a listed expiry may be from the one requested: an API that takes a lifetime
# (`expires_in_seconds`) counts it from its own clock, a few seconds after keyform's.
EXPIRY_SLACK = timedelta(minutes=5)


class ServerFaults(Protocol):
    """How the kit makes the server misbehave. Each fault lasts until `clear()`."""

    def inject(self, status: int) -> None:
        """Every API request (not the control API) answers `status` until `clear()`."""

    def drop_after_commit(self) -> None:
        """Every create commits the key, then closes the connection without an answer."""

    def clear(self) -> None:
        """No more faults."""

    def set_page_size(self, n: int) -> bool:
        """List pages hold at most `n` keys (0: the server's default); False if the API has no pages."""

    def injectable(self) -> tuple[int, ...]:
        """The statuses `inject` can produce; it must include 429 and at least one 5xx."""


@dataclass(frozen=True)
class ConformanceTarget:
    """One provider type at one running server.

    `key_fields(label)` gives the manifest fields of a key that carries `label` where the API shows
    it (e.g. `{"name": label}`); `label_of(key)` reads it back from a listed key. `update_fields`
    gives a change of updatable fields (None: the type has no update). `provider_options` are the
    provider's manifest options besides type, token and base_url (`org_id`, a plug-in's own), as
    plain values. `secret_options` are its secret-valued options (a definition's `secret: true`
    ones, e.g. an application key), name → value (put `CANARY` in each): the kit passes each as an
    `{env: VAR}` reference, the only way a manifest may give a secret, with VAR set in the process
    environment for the test (`option_env(name)`), and checks that no value leaks.
    `rejected_status` is the status the API answers `rejected_token` with: 401 for most, 403 for an
    API that says Forbidden to an unknown credential (Datadog). `expiry`: whether a key can be
    created with an expiry that the list reports back; None (the default) means yes, except for a
    definition (`type: rest`) that does not say so (`expiry.supported` and a `key.expires_at`
    pointer). Set it False for an API whose keys never expire."""

    provider_type: str
    base_url: str
    token: str
    rejected_token: str
    key_fields: Callable[[str], dict[str, Any]]
    faults: ServerFaults
    provider_options: Mapping[str, Any] = field(default_factory=dict)
    update_fields: Callable[[str], dict[str, Any]] | None = None
    forbidden_token: str | None = None
    secret_inputs: Mapping[str, str] = field(default_factory=dict)
    label_of: Callable[[RemoteKey], Any] = lambda key: key.attrs.get("name", key.attrs.get("description"))
    # a type made from a definition file (`type: rest`): the loaded definition, and the provider
    # entry a manifest names it with (e.g. {"type": "rest", "definition": PATH}); see `rest_target`
    definition: Any = None
    manifest_provider: Mapping[str, Any] | None = None
    secret_options: Mapping[str, str] = field(default_factory=dict)
    rejected_status: int = 401
    expiry: bool | None = None

    def __post_init__(self) -> None:
        both = sorted(set(self.provider_options) & set(self.secret_options))
        if both:
            raise ValueError(f"options both plain and secret: {', '.join(both)}")

    @property
    def type(self) -> ProviderType:
        return provider_type(self.provider_type)

    @property
    def expires(self) -> bool:
        """Whether the kit checks that a key created with an expiry is listed with it."""
        if self.expiry is not None:
            return self.expiry
        if self.definition is not None:
            return bool(self.definition.expiry_supported and "expires_at" in self.definition.key_paths)
        return True

    def config(self, deadline: float = DEADLINE) -> ProviderConfig:
        rest = self.definition is not None  # a definition declares org_id as one of its own options
        options: dict[str, Any] = {k: v for k, v in self.provider_options.items() if rest or k != "org_id"}
        options.update({k: EnvRef(option_env(k)) for k in self.secret_options})
        org = None if rest else self.provider_options.get("org_id")
        return ProviderConfig(name="kit", type=self.provider_type, base_url=self.base_url.rstrip("/"),
                              token=EnvRef("KEYFORM_KIT_TOKEN"), org_id=org if isinstance(org, str) else None,
                              loc=SourceLoc("conformance", 1), deadline=deadline, options=options,
                              definition=self.definition)

    def open(self, token: str | None = None, max_retries: int = 0, deadline: float = DEADLINE) -> Provider:
        config = self.config(deadline)
        org = config.org_id if isinstance(config.org_id, str) else None
        return self.type.open(config, self.token if token is None else token, org, timeout=10.0,
                              max_retries=max_retries)

    def request(self, label: str, expires_at: str | None = None) -> CreateRequest:
        """The create request keyform would send for a key with `key_fields(label)` (and
        `expires_at`, RFC 3339)."""
        fields = self.key_fields(label)
        t = self.type
        attrs: dict[str, Any] = {}
        for attr in t.attributes:
            value = fields.get(attr, label if attr == "name" else t.attribute_defaults.get(attr))
            attrs[attr] = list(value) if isinstance(value, tuple) else value
        inputs = {k: v for k, v in self.secret_inputs.items() if k in t.secret_inputs}
        return CreateRequest(address=label, attrs=attrs, expires_at=expires_at, secret_inputs=inputs)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.rejected_token, self.forbidden_token, *self.secret_inputs.values(),
                                 *self.secret_options.values()) if s)

    def option_environ(self) -> dict[str, str]:
        """The environment the secret options are read from: `option_env(name)` → value."""
        return {option_env(name): value for name, value in self.secret_options.items()}


def option_env(name: str) -> str:
    """The environment variable the kit passes the secret option `name` in."""
    return "KEYFORM_KIT_OPTION_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def _conforms(check: Callable[[Any], None], value: Any, call: str) -> None:
    """Fail the test, saying what to fix, when `value` (what `call` returned) breaks the interface."""
    try:
        check(value)
    except Broken as exc:
        pytest.fail(f"{call} broke the provider interface: {exc} (docs/providers.md); keyform refuses such a "
                    "result on every run", pytrace=False)


def _label() -> str:
    return f"kit-{uuid.uuid4().hex[:10]}"


_TEES: list[_Tee] = []  # installed by a `_Seen`, taken out by `_untee`


def _untee() -> None:
    """sys.stdout and sys.stderr as they were before any `_Seen` of the test (where pytest did not
    already put its own back)."""
    while _TEES:
        tee = _TEES.pop()
        for name in ("stdout", "stderr"):
            if getattr(sys, name) is tee:
                setattr(sys, name, tee.inner)


class _Tee(io.TextIOBase):
    """A text stream that keeps what is written to it and passes it on to `inner`, as like it as
    it can be (its encoding, `isatty`, `fileno`; `buffer` and the rest are inner's, unseen): a
    provider must behave as it does under keyform."""

    def __init__(self, inner: TextIO) -> None:
        self.inner, self.parts = inner, list[str]()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # as a text stream: click.echo probes it with write(b"")
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.parts.append(text)
        return self.inner.write(text)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.inner.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.inner.errors

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def flush(self) -> None:
        self.inner.flush()


class _Seen:
    """Everything a provider showed during a test: reprs, error messages, and what it printed
    (to sys.stdout or sys.stderr, from when it is made: inside the test, as pytest captures a
    test's output only from its call on; the `kit` fixture puts the streams back)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.printed = [_Tee(sys.stdout), _Tee(sys.stderr)]
        sys.stdout, sys.stderr = self.printed
        _TEES.extend(self.printed)

    def add(self, *objects: Any) -> None:
        for obj in objects:
            self.texts.append(repr(obj))
            if isinstance(obj, BaseException):
                self.texts.append(str(obj))

    def check(self, secrets: tuple[str, ...], log: str) -> None:
        forms = [(form, how) for secret in secrets for form, how in _encoded(secret)]
        printed = "".join(part for tee in self.printed for part in tee.parts)
        for text in (*self.texts, log, printed):
            assert CANARY not in text, f"the canary leaked: {text[:300]!r}"
            for form, how in forms:
                assert form not in text, \
                    f"a secret value leaked{how} into a repr, a log line, an error or the provider's output"


def _encoded(secret: str) -> list[tuple[str, str]]:
    """`secret` as a provider may show it without meaning to: as it is, percent-encoded (a query
    parameter, a URL in a message), base64 (a Basic credential, `user:secret` with any user: the
    part after the colon's first full 3-byte group is the same whatever the user) and JSON-escaped."""
    raw = secret.encode("utf-8")
    forms = {secret: "", quote(secret, safe=""): " percent-encoded", json.dumps(secret)[1:-1]: " JSON-escaped"}
    for pad in range(3):  # base64 of `...:secret`: aligned at one of three offsets
        b64 = base64.b64encode(b"x" * pad + raw).decode("ascii")
        start = 0 if pad == 0 else 4  # the first group mixes in the prefix's bytes
        core = b64[start:].rstrip("=")[:-4] if len(raw) > 6 else ""
        if len(core) >= 8:
            forms.setdefault(core, " base64-encoded")
    return [(form, how) for form, how in forms.items() if len(form) >= 4]


class ProviderConformance:
    """Subclass as `Test...` and provide the `conformance_target` fixture."""

    @pytest.fixture
    def kit(self, conformance_target: ConformanceTarget,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[ConformanceTarget]:
        for var, value in conformance_target.option_environ().items():
            monkeypatch.setenv(var, value)  # where the provider reads its secret options (EnvRef)
        conformance_target.faults.clear()
        try:
            yield conformance_target
        finally:
            _untee()
        conformance_target.faults.clear()
        conformance_target.faults.set_page_size(0)

    # -------------------------------------------------------------------------------- lifecycle

    def test_create_list_update_delete(self, kit: ConformanceTarget, keyform_debug_log: Any) -> None:
        seen = _Seen()
        provider = kit.open()
        t = kit.type
        request = kit.request(_label())
        created = provider.create(request)
        _conforms(check_created, created, "create()")
        seen.add(provider, created, created.key)
        assert created.key.id, "create returned no id"
        if t.returns_secret:
            assert created.secret, f"{t.name} declares returns_secret but the create gave no secret"
        listed = self._listed(provider)
        seen.add(*listed.values())  # a listing that reports the secret or the token is a leak too
        assert created.key.id in listed, "list does not find the key just created"
        for attr in t.remote_attributes:
            assert as_json(listed[created.key.id].attrs.get(attr)) == as_json(created.key.attrs.get(attr)), attr
            assert as_json(created.key.attrs.get(attr)) == as_json(request.attrs.get(attr)), attr
        assert not listed[created.key.id].revoked
        if t.updatable and kit.update_fields is not None:
            change = {k: v for k, v in kit.update_fields(request.address).items() if k in t.updatable}
            assert change, "update_fields changes no updatable attribute"
            updated = provider.update(created.key.id, {**request.attrs, **change}, None)
            _conforms(lambda key: check_key(key, "its key"), updated, "update()")
            seen.add(updated)
            relisted = self._listed(provider)[created.key.id]
            seen.add(relisted)
            for attr, value in change.items():
                if attr in t.remote_attributes:  # as for create: only what the API reports back is checked
                    assert as_json(updated.attrs.get(attr)) == as_json(value), attr
                    assert as_json(relisted.attrs.get(attr)) == as_json(value), attr
        provider.delete(created.key.id)
        after = self._listed(provider)
        gone = after.get(created.key.id)
        assert gone is None or gone.revoked or gone.expired, "the key is still live after delete"
        provider.delete(created.key.id)  # already gone/revoked: no error
        provider.close()
        seen.check((*kit.secrets(), *([created.secret] if created.secret else [])), keyform_debug_log.text)

    def test_create_with_an_expiry_lists_it(self, kit: ConformanceTarget) -> None:
        """A create that drops `request.expires_at` makes a key that never expires where the
        manifest says it does: the list must report the expiry asked for (within `EXPIRY_SLACK`;
        a day's start, so that an API keeping dates only reports it too)."""
        if not kit.expires:
            pytest.skip("the type's keys cannot expire (ConformanceTarget.expiry)")
        provider = kit.open()
        wanted = (utcnow() + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
        created = provider.create(kit.request(_label(), expires_at=format_time(wanted)))
        _conforms(check_created, created, "create()")
        try:
            listed = self._listed(provider)[created.key.id].expires_at
            assert listed is not None, (
                f"a key created with expires_at {format_time(wanted)} is listed with no expiry: create dropped "
                "request.expires_at (or list does not read it); set ConformanceTarget(expiry=False) only if "
                "the API's keys cannot expire")
            assert abs(parse_time(listed) - wanted) <= EXPIRY_SLACK, (
                f"a key created with expires_at {format_time(wanted)} is listed with {listed}")
        finally:
            provider.delete(created.key.id)
            provider.close()

    def test_pagination_lists_every_key_once(self, kit: ConformanceTarget) -> None:
        if not kit.faults.set_page_size(2):
            pytest.skip("the API has no list pagination")
        provider = kit.open()
        ids = [provider.create(kit.request(_label())).key.id for _ in range(7)]  # 4 pages of 2
        keys = provider.list()
        assert keys is not None
        _conforms(check_listing, keys, "list()")
        listed = [k.id for k in keys]
        assert len(listed) == len(set(listed)), "a key was listed twice across pages"
        assert set(ids) <= set(listed), "keys on later pages are missing"
        for key_id in ids:
            provider.delete(key_id)
        provider.close()

    # ---------------------------------------------------------------------------------- errors

    def test_status_codes_map_to_provider_errors(self, kit: ConformanceTarget, keyform_debug_log: Any) -> None:
        seen = _Seen()
        t = kit.type
        rejected = kit.open(token=kit.rejected_token)
        with pytest.raises(ProviderError) as e401:
            rejected.list()
        assert e401.value.status == kit.rejected_status, e401.value
        seen.add(rejected, e401.value)
        if kit.forbidden_token:
            forbidden = kit.open(token=kit.forbidden_token)
            with pytest.raises(ProviderError) as e403:
                forbidden.create(kit.request(_label()))
            assert e403.value.status == 403 and not e403.value.ambiguous, e403.value
            seen.add(e403.value)
        provider = kit.open()
        missing = "kit-missing-" + uuid.uuid4().hex[:8]
        provider.delete(missing)  # an unknown key is already gone: no error
        if t.updatable:
            with pytest.raises(ProviderError) as e404:
                provider.update(missing, kit.request(_label()).attrs, None)
            assert e404.value.status == 404, e404.value
            seen.add(e404.value)
        statuses = kit.faults.injectable()
        assert 429 in statuses and any(s >= 500 for s in statuses), "inject must support 429 and a 5xx"
        for status in statuses:
            # one provider per status: refused to its deadline, an instance sends no more in its run
            faulted = kit.open(deadline=FAULT_DEADLINE)
            kit.faults.inject(status)
            try:
                with pytest.raises(ProviderError) as failed:
                    faulted.list()
                assert failed.value.status == status and not failed.value.ambiguous, failed.value
                with pytest.raises(ProviderError) as create_failed:
                    faulted.create(kit.request(_label()))
                assert create_failed.value.status == status, create_failed.value
                if status in (429, 503) or status < 500:  # refused before doing anything: never ambiguous
                    assert not create_failed.value.ambiguous, create_failed.value
                else:  # the server may have committed the key before it failed: recovery must look for it
                    assert create_failed.value.ambiguous, (
                        f"a create answered {status} must raise ProviderError(..., ambiguous=True) "
                        f"(docs/providers.md), got {create_failed.value!r}")
                seen.add(failed.value, create_failed.value)
            finally:
                kit.faults.clear()
                faulted.close()
        provider.close()
        seen.check(kit.secrets(), keyform_debug_log.text)

    def test_a_refused_delete_is_an_error_and_the_key_stays(self, kit: ConformanceTarget,
                                                           keyform_debug_log: Any) -> None:
        """keyform forgets a key whose delete returns (done, or "already gone"). A delete of a live
        key that the API refuses — the rejected token, the forbidden (read-only) one, an injected
        429 or 5xx — must raise `ProviderError` with that status, and the key is still live after."""
        seen = _Seen()
        provider = kit.open()
        key_id = provider.create(kit.request(_label())).key.id
        for token, status in ((kit.rejected_token, kit.rejected_status), (kit.forbidden_token, 403)):
            if token:
                refused = kit.open(token=token)
                seen.add(self._refused_delete(refused, key_id, status, f"a token the API answers {status}"))
                refused.close()
        for status in kit.faults.injectable():
            faulted = kit.open(deadline=FAULT_DEADLINE)  # (one per status, as above)
            kit.faults.inject(status)
            try:
                seen.add(self._refused_delete(faulted, key_id, status, f"an injected {status}"))
            finally:
                kit.faults.clear()
                faulted.close()
        still = self._listed(provider).get(key_id)
        assert still is not None and not (still.revoked or still.expired), "a refused delete removed the key"
        provider.delete(key_id)
        provider.close()
        seen.check(kit.secrets(), keyform_debug_log.text)

    def test_a_failure_with_the_api_s_gone_body_is_an_error(self, kit: ConformanceTarget,
                                                            keyform_debug_log: Any) -> None:
        """A delete answered with a failure status (the rejected token's, a 500, a 503) and the body the
        API answers for a key that is already gone (its own `not_found`, learnt from a delete of an
        unknown id through a relay, `keyform.testing.relay`) must raise `ProviderError` with that
        status: a failing server or a gateway may send any body, and a provider that takes the body's
        `not_found` for the truth makes keyform forget a key that stays live."""
        from keyform.testing.relay import relaying

        seen = _Seen()
        provider = kit.open()
        key_id = provider.create(kit.request(_label())).key.id
        with relaying(kit.base_url) as relay:
            through = replace(kit, base_url=relay.url).open()
            through.delete("kit-missing-" + uuid.uuid4().hex[:8])  # relayed: the API's "already gone" answer
            assert relay.kept is not None
            for status in sorted({kit.rejected_status, 500, 503}):
                relay.answering = status
                seen.add(self._refused_delete(through, key_id, status, f"a {status} with the body the API answers "
                                              f"for a key already gone ({relay.kept.status}, "
                                              f"{relay.kept.body[:80]!r})"))
            relay.answering = None
            through.close()
        still = self._listed(provider).get(key_id)
        assert still is not None and not (still.revoked or still.expired), "the key should still be live"
        provider.delete(key_id)
        provider.close()
        seen.check(kit.secrets(), keyform_debug_log.text)

    # ------------------------------------------------------------------------- ambiguous create

    def test_ambiguous_create_is_found_by_recovery(self, kit: ConformanceTarget, tmp_path: Path) -> None:
        from click.testing import CliRunner

        from keyform.cli import main

        label = _label()
        t = kit.type
        provider_entry = {**(kit.manifest_provider or {"type": kit.provider_type}), "base_url": kit.base_url,
                          "token": {"env": "KEYFORM_KIT_TOKEN"}, **kit.provider_options,
                          **{name: {"env": option_env(name)} for name in kit.secret_options}}
        key = {"provider": "p", **{k: v for k, v in kit.key_fields(label).items()}}
        env_inputs: dict[str, str] = {}
        for i, (field_name, value) in enumerate(kit.secret_inputs.items()):
            if field_name in t.secret_inputs:
                key[field_name] = {"env": f"KEYFORM_KIT_INPUT_{i}"}
                env_inputs[f"KEYFORM_KIT_INPUT_{i}"] = value
        manifest: dict[str, Any] = {"version": 1, "providers": {"p": provider_entry}, "keys": {"kit-key": key}}
        if t.returns_secret:
            manifest["sinks"] = {"out": {"type": "file", "dir": "secrets"}}
            key["sink"] = {"use": "out", "as": "KIT_KEY"}
        path = tmp_path / "keyform.yaml"
        path.write_text(json.dumps(manifest, indent=1))  # JSON is YAML
        runner = CliRunner()
        env = {"KEYFORM_KIT_TOKEN": kit.token, "NO_COLOR": "1", **env_inputs, **kit.option_environ()}
        kit.faults.drop_after_commit()
        try:
            first = runner.invoke(main, ["apply", "-f", str(path), "--auto-approve"], env=env)
        finally:
            kit.faults.clear()
        assert first.exit_code == 1, first.output
        provider = kit.open()
        mine = [k for k in self._listed(provider).values() if kit.label_of(k) == self._shown_label(kit, label)]
        assert len(mine) == 1 and not mine[0].revoked, "the server should hold the committed key once"
        orphan = mine[0].id
        outputs = [first.output]
        unprovable = mine[0].created_at is None
        if unprovable:  # the API reports no creation time: recovery cannot prove the key is this
            # apply's, so it revokes nothing and names the candidate and the command that adopts it
            plan = runner.invoke(main, ["plan", "-f", str(path)], env=env)
            assert plan.exit_code == 0, plan.output
            assert f"keyform import kit-key {orphan}" in plan.output, plan.output
            imported = runner.invoke(main, ["import", "-f", str(path), "kit-key", orphan], env=env)
            assert imported.exit_code == 0, imported.output
            outputs += [plan.output, imported.output]
        second = runner.invoke(main, ["apply", "-f", str(path), "--auto-approve"], env=env)
        assert second.exit_code == 0, second.output
        listed = self._listed(provider)
        live = [k for k in listed.values() if kit.label_of(k) == self._shown_label(kit, label) and not k.revoked]
        if unprovable:
            assert [k.id for k in live] == [orphan], "the adopted key should be the only live one"
        else:
            assert orphan not in listed or listed[orphan].revoked, "recovery did not revoke the orphan"
            assert len(live) == 1 and live[0].id != orphan
        state = json.loads((tmp_path / "keyform.state.json").read_text())
        assert state["keys"]["kit-key"]["remote_id"] == live[0].id
        for output in (*outputs, second.output, (tmp_path / "keyform.state.json").read_text()):
            assert CANARY not in output and not any(s in output for s in kit.secrets())
        provider.delete(live[0].id)
        provider.close()

    # ----------------------------------------------------------------------------------- helpers

    @staticmethod
    def _listed(provider: Provider) -> dict[str, RemoteKey]:
        keys = provider.list()
        assert keys is not None, "the provider has no list call; conformance needs one"
        _conforms(check_listing, keys, "list()")
        return {k.id: k for k in keys}

    @staticmethod
    def _refused_delete(provider: Provider, key_id: str, status: int, why: str) -> ProviderError:
        """The error of a delete of `key_id` that the API refuses (`why`) with `status`."""
        try:
            provider.delete(key_id)
        except ProviderError as exc:
            assert exc.status == status, f"a delete refused by {why} raised status {exc.status}: {exc!r}"
            return exc
        pytest.fail(f"delete returned on {why}: keyform would take the key for deleted (or already gone) and "
                    "forget it while it stays live; raise ProviderError with that status (docs/providers.md)")

    @staticmethod
    def _shown_label(kit: ConformanceTarget, label: str) -> Any:
        request = kit.request(label)
        probe = RemoteKey(id="", attrs=request.attrs)
        return kit.label_of(probe)


__all__ = ["CANARY", "ConformanceTarget", "CreateResult", "ProviderConformance", "ServerFaults", "option_env"]
