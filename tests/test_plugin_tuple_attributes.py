"""A plug-in provider that lists a list attribute as a tuple (`hosts=("a.example",)`), as the
conformance kit and `check_listing` allow (JSON values: lists and tuples alike). The planner
compared it with the state's list as it came: `("a.example",) != ["a.example"]`, so every plan
showed `hosts modified outside keyform` and every apply updated the key again (found by a review,
s44). A plug-in's listing is now taken as JSON holds it (`remote.as_json`). Real processes; the
plug-in wraps the built-in TextQL client, talking to the emulator on 127.0.0.1."""

from __future__ import annotations

import textwrap
from pathlib import Path

from harness.project import Project
from keyform.emulator import Emulator
from tests import fakedist

PLUGIN = '''
from dataclasses import replace

from keyform.typeregistry import provider_type

_TEXTQL = provider_type("textql")


def _tupled(key):
    attrs = {n: tuple(v) if isinstance(v, list) else v for n, v in key.attrs.items()}
    return replace(key, attrs=attrs)


def _open(config, token, org_id, **kw):
    inner = _TEXTQL.open(config, token, org_id, **kw)

    class Tupled:
        name = inner.name

        def list(self):
            keys = inner.list()
            return None if keys is None else [_tupled(k) for k in keys]

        def create(self, request):
            result = inner.create(request)
            return replace(result, key=_tupled(result.key))

        def update(self, remote_id, attrs, expires_at):
            return _tupled(inner.update(remote_id, attrs, expires_at))

        def delete(self, remote_id):
            inner.delete(remote_id)

        def close(self):
            inner.close()

    return Tupled()


TUPLED = replace(_TEXTQL, name="tupled-tq", open=_open, description="test plug-in: lists tuples")
'''


def test_a_plugin_listing_tuples_shows_no_drift(tmp_path: Path, emulator: Emulator) -> None:
    env = fakedist.install(tmp_path / "site", "kf-tupled", "1.0", "[keyform.providers]\ntupled-tq = kf_tupled:TUPLED\n",
                           "kf_tupled", PLUGIN)
    project = Project(tmp_path / "p", emulator.url)
    project._one_provider(f'  tq: {{type: tupled-tq, base_url: "{emulator.url}", token: {{env: TEXTQL_TOKEN}}}}\n',
                          textwrap.dedent("""\
        t0:
          provider: tq
          description: t zero
          hosts: [a.example, b.example]
          auth_value: {env: T_AUTH}
        """))
    env = {**env, "T_AUTH": "auth-value-1"}
    first = project.run_process("apply", "--auto-approve", env=env, timeout=60)
    assert first.exit_code == 0, first.tail()
    plan = project.run_process("plan", "--detailed-exitcode", env=env, timeout=60)
    assert plan.exit_code == 0, plan.tail()
    assert "No changes" in plan.stdout and "modified outside keyform" not in plan.stdout, plan.stdout


def test_a_key_holding_no_tuple_is_taken_as_it_is() -> None:
    """Only a key holding a tuple is copied: every key with a list attribute was (`as_json` and a
    new RemoteKey), 85 ms a plan for 10,000 keys of a plug-in or a `type: rest` definition."""
    from keyform.providers.foreign import as_listed
    from keyform.remote import RemoteKey

    listed = RemoteKey(id="k1", attrs={"name": "k1", "scopes": ["read", "write"], "meta": {"hosts": ["a"]},
                                       "enabled": True})
    assert as_listed(listed) is listed
    tupled = RemoteKey(id="k2", attrs={"name": "k2", "meta": {"hosts": [("a", "b")]}})
    assert as_listed(tupled).attrs == {"name": "k2", "meta": {"hosts": [["a", "b"]]}}
