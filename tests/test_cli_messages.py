"""Messages that point at the cause (issue 15 items 6, 9-12): the token's own line and whether its
variable is unset or empty; a 401 naming the provider, the reference and the line; connection
failures naming the base_url and whether it was refused, DNS or TLS; every validation problem in
one run; an import that could not record a fingerprint warns; `-v` shows each step and never a
secret, on success and on failure."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from harness.project import ORG, TOKENS, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError
from keyform.operations import Options, plan, session
from keyform.providers import open_provider
from keyform.providers.http import HttpClient

KEYS = "ci-bot: {provider: qp, name: CI bot}\n"


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# ------------------------------------------------------------------------------- 9. the token line


def test_a_missing_token_variable_is_reported_at_the_token_line(tmp_path: Path) -> None:
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.questra(KEYS)
    project.env.pop("QUESTRA_TOKEN")
    res = project.run("plan")
    line = line_of(project.manifest, "token: {env: QUESTRA_TOKEN}")
    assert res.exit_code == 1
    assert res.stderr == (f"Error: {project.manifest}:{line}: providers.qp.token: environment variable "
                          "QUESTRA_TOKEN is not set\n")
    assert line != line_of(project.manifest, "  qp:")


def test_a_set_but_empty_token_variable_says_so(tmp_path: Path) -> None:
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.questra(KEYS)
    res = project.run("plan", env={"QUESTRA_TOKEN": ""})
    line = line_of(project.manifest, "token: {env: QUESTRA_TOKEN}")
    assert res.exit_code == 1
    assert f":{line}: providers.qp.token: environment variable QUESTRA_TOKEN is set but empty" in res.stderr
    assert "is not set" not in res.stderr


# ------------------------------------------------------------------ 10. 401 and connection failures


def test_a_rejected_token_names_the_provider_reference_and_line(tmp_path: Path,
                                                                make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(tokens=frozenset({"the-right-token"}))
    project = Project(tmp_path, emulator.url)
    project.questra(KEYS)
    res = project.run("plan")
    line = line_of(project.manifest, "token: {env: QUESTRA_TOKEN}")
    assert res.exit_code == 1
    assert "401" in res.stderr
    assert "qp: list: 401 the bearer token was rejected; check the token of provider qp, " \
           f"{{env: QUESTRA_TOKEN}} at {project.manifest}:{line}" in res.stderr
    assert TOKENS["QUESTRA_TOKEN"] not in res.output


def _plan_error(tmp_path: Path, base_url: str) -> str:
    """Plan against `base_url` with no retries (real HTTP stack), returning the error message."""
    project = Project(tmp_path, base_url)
    project.questra(KEYS)

    def factory(config, token, org_id):  # type: ignore[no-untyped-def]
        return open_provider(config, token, org_id, max_retries=0)

    options = Options(files=[str(project.manifest)], env=dict(TOKENS), provider_factory=factory)
    with pytest.raises(KeyformError) as caught, session(options, "plan") as sess:
        plan(sess)
    return str(caught.value)


def test_connection_refused_names_the_base_url_and_says_refused(tmp_path: Path, emulator: Emulator) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = _plan_error(tmp_path, f"http://127.0.0.1:{port}")
    assert f"cannot connect to http://127.0.0.1:{port} (connection refused" in message


def test_tls_failure_names_the_base_url_and_says_tls(tmp_path: Path, emulator: Emulator) -> None:
    """https:// to the emulator, which speaks plain HTTP: a real TLS handshake failure."""
    url = emulator.url.replace("http://", "https://")
    message = _plan_error(tmp_path, url)
    assert f"cannot connect to {url} (TLS failure:" in message


def test_dns_failure_names_the_base_url_and_says_dns() -> None:
    """The resolver's own words (glibc's), raised where httpx raises them; no lookup leaves the machine."""
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)

    client = HttpClient("qp", "https://keys.example.invalid", {}, transport=httpx.MockTransport(refuse),
                        sleep=lambda s: None)
    with pytest.raises(KeyformError) as caught:
        client.call("GET", "/api-keys", "list")
    assert str(caught.value) == ("qp: list: cannot connect to https://keys.example.invalid "
                                 "(DNS lookup failed: name or service not known)")


# ------------------------------------------------------------------ 11. validation in one pass


def test_schema_error_unknown_provider_and_cycle_are_reported_in_one_run(tmp_path: Path) -> None:
    project = Project(tmp_path, "http://127.0.0.1:9")
    project.write("""\
        version: 1
        providers:
          qp: {type: questra, base_url: {url}, token: {env: QUESTRA_TOKEN}, org_id: {org}}
          tq:
            type: textql
            base_url: {url}
            token: {env: TEXTQL_TOKEN}
            bogus_field: 1
        sinks:
          env: {type: dotenv, path: .secrets/keys.env}
        defaults: {sink: env}
        keys:
          typo: {provider: qp, nmae: x}
          orphan: {provider: nowhere}
          a: {provider: tq, api_provider: questra, auth_type: token, hosts: [x.io], auth_value: {secret_of: b}}
          b: {provider: tq, api_provider: questra, auth_type: token, hosts: [x.io], auth_value: {secret_of: a}}
          c: {provider: tq, api_provider: questra, auth_type: token, hosts: [x.io], auth_value: {secret_of: ghost}}
        """)
    res = project.run("validate")
    assert res.exit_code == 1
    assert "providers.tq: unknown field 'bogus_field'" in res.stderr
    assert "keys.typo: unknown field 'nmae'" in res.stderr
    assert "keys.orphan.provider: unknown provider 'nowhere'" in res.stderr
    assert "reference cycle: a -> b -> a" in res.stderr
    assert "keys.c.auth_value: secret_of names an unknown key 'ghost'" in res.stderr


# ---------------------------------------------------------------- 12. import warns (fingerprint)


def test_import_warns_when_the_auth_value_fingerprint_cannot_be_recorded(tmp_path: Path, emulator: Emulator,
                                                                       emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url)
    project.write("""\
        version: 1
        providers:
          tq: {type: textql, base_url: {url}, token: {env: TEXTQL_TOKEN}}
        keys:
          ana: {provider: tq, description: ana, api_provider: questra, auth_type: token, hosts: [x.io],
                auth_value: {env: ANA_AUTH}}
        """)
    [record] = emu_control.bulk_textql(1, prefix="ana")
    res = project.run("import", "ana", record["id"])
    assert res.exit_code == 0, res.output
    assert ("Warning: the fingerprint of ana's auth_value (env:ANA_AUTH) could not be recorded: environment "
            "variable ANA_AUTH is not set.") in res.stderr
    ok = Project(tmp_path / "x", emulator.url)
    # with the variable set there is nothing to warn about
    (tmp_path / "x").mkdir()
    ok.write(project.manifest.read_text())
    [other] = emu_control.bulk_textql(1, prefix="bo")
    res = ok.run("import", "ana", other["id"], env={"ANA_AUTH": "value-1"})
    assert res.exit_code == 0 and "Warning" not in res.stderr


# ---------------------------------------------------------------------- 6. -v, never a secret

CANARY_AUTH = "canary-v-auth-5d1e9a0c7b"


def _verbose_project(tmp_path: Path, url: str) -> Project:
    project = Project(tmp_path, url, env={"CANARY_AUTH": CANARY_AUTH})
    project.write("""\
        version: 1
        providers:
          qp: {type: questra, base_url: {url}, token: {env: QUESTRA_TOKEN}, org_id: {org}}
          tq: {type: textql, base_url: {url}, token: {env: TEXTQL_TOKEN}}
        sinks:
          env: {type: dotenv, path: .secrets/keys.env}
        defaults: {sink: env}
        keys:
          ci-bot: {provider: qp}
          ana: {provider: tq, description: ana, api_provider: questra, auth_type: token, hosts: [x.io],
                auth_value: {env: CANARY_AUTH}}
          bob: {provider: tq, description: bob, api_provider: questra, auth_type: token, hosts: [x.io],
                auth_value: {secret_of: ci-bot}}
        """)
    return project


def secrets_seen(control: EmulatorControl) -> list[str]:
    issued = [k["secret"] for k in control.questra_keys(ORG)]
    return [*issued, *TOKENS.values(), CANARY_AUTH]


def test_verbose_success_shows_http_lock_journal_and_sink_steps_and_no_secret(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    project = _verbose_project(tmp_path, emulator.url)
    res = project.run("apply", "--auto-approve", "-v")
    assert res.exit_code == 0, res.output
    log = res.stderr
    assert re.search(r"keyform: qp: GET http://127\.0\.0\.1:\d+/api-keys -> 200 \d+ ms", log)
    assert re.search(r"keyform: qp: POST http://127\.0\.0\.1:\d+/api-keys -> 201 \d+ ms", log)
    assert re.search(r"keyform: tq: POST http://127\.0\.0\.1:\d+/v1/\S+ -> 200 \d+ ms", log)
    assert "keyform: lock: taking the apply lock on" in log and "keyform: lock: released" in log
    assert "keyform: journal: intent" in log and "keyform: journal: done" in log
    assert "keyform: sink env: wrote entry CI_BOT for ci-bot" in log
    assert "keyform: state: saved serial" in log
    for secret in secrets_seen(emu_control):
        assert secret not in res.output


def test_verbose_failure_shows_the_call_and_no_secret(tmp_path: Path,
                                                      make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(tokens=frozenset({"only-this-token"}))
    project = _verbose_project(tmp_path, emulator.url)
    res = project.run("apply", "--auto-approve", "-v")
    assert res.exit_code == 1
    assert re.search(r"keyform: (qp|tq): \S+ http://127\.0\.0\.1:\d+/\S+ -> 401 \d+ ms", res.stderr)
    assert "Traceback" in res.stderr  # -v also shows where an error came from
    for secret in (*TOKENS.values(), CANARY_AUTH):
        assert secret not in res.output


def test_a_long_base_url_is_cut_in_verbose_lines_keeping_the_host_and_both_ends(tmp_path: Path,
                                                                                emulator: Emulator) -> None:
    """A 10 KB `base_url` was written whole in every `-v` line of every call. Cut in its middle: the
    host and port whole, the start of the path, its end (the request's path), how much was left
    out; the instance name before each line tells two instances apart whose URLs differ only there."""
    project = Project(tmp_path, emulator.url)
    long_path = "/" + "a" * 5000 + "{mark}" + "a" * 5000
    project.questra(KEYS, extra="")
    text = project.manifest.read_text().replace(
        "    org_id: org_e2e\n",
        "    org_id: org_e2e\n  qp2: {type: questra, base_url: {env: QP2_URL}, token: {env: QUESTRA_TOKEN}, "
        "org_id: org_e2e}\n")
    project.manifest.write_text(text.replace(f"base_url: {emulator.url}", "base_url: {env: QP_URL}")
                                + "  other: {provider: qp2, name: Other}\n")
    env = {"QP_URL": emulator.url + long_path.format(mark="X"), "QP2_URL": emulator.url + long_path.format(mark="Y")}
    res = project.run("plan", "-v", env=env)
    calls = [line for line in res.stderr.splitlines() if re.match(r"keyform: qp2?: GET ", line)]
    assert {line.split(":")[1].strip() for line in calls} == {"qp", "qp2"}, res.stderr
    for line in calls:
        assert len(line) < 260, line
        assert re.match(r"keyform: qp2?: GET http://127\.0\.0\.1:\d+/a+…\[[\d,]+ characters\]…a+/api-keys -> 404 ",
                        line), line
    assert len(res.stderr) < 20_000, len(res.stderr)  # the error message cuts it too


def test_without_verbose_there_is_no_log(tmp_path: Path, emulator: Emulator) -> None:
    project = _verbose_project(tmp_path, emulator.url)
    assert project.run("apply", "--auto-approve", "-v").exit_code == 0
    res = project.run("plan")
    assert "keyform:" not in res.stderr


# ------------------------------------------------------------------------- base_url: {env: NAME}


def test_base_url_from_the_environment_is_checked_at_its_line(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.write("""\
        version: 1
        providers:
          qp:
            type: questra
            base_url: {env: EMULATOR_URL}
            token: {env: QUESTRA_TOKEN}
            org_id: {org}
        sinks:
          env: {type: dotenv, path: .secrets/keys.env}
        defaults: {sink: env}
        keys:
          ci-bot: {provider: qp}
        """)
    line = line_of(project.manifest, "base_url: {env: EMULATOR_URL}")
    assert project.run("validate").exit_code == 0  # read when used, like a token
    res = project.run("plan")
    assert f"keyform.yaml:{line}: providers.qp.base_url: environment variable EMULATOR_URL is not set" in res.stderr
    res = project.run("plan", env={"EMULATOR_URL": "http://example.com"})
    assert "the URL in EMULATOR_URL: http:// is allowed only for loopback hosts" in res.stderr
    canary = "canary-url-pass-7e2d90"
    res = project.run("plan", env={"EMULATOR_URL": f"https://ci:{canary}@keys.example.com"})
    assert "the URL in EMULATOR_URL must not contain credentials" in res.stderr
    assert canary not in res.output  # a refused URL is never echoed
    for odd in (f"{emulator.url}/\udcff", f"{emulator.url}/ x", f"{emulator.url}/a\nb"):  # \udcff: a byte not UTF-8
        res = project.run("plan", env={"EMULATOR_URL": odd})
        assert res.exit_code == 1 and "internal error" not in res.output, res.output
        assert "the URL in EMULATOR_URL must be one URL with no blank, line break or control character" in res.stderr
    res = project.run("apply", "--auto-approve", env={"EMULATOR_URL": emulator.url})
    assert res.exit_code == 0, res.output
