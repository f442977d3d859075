"""Issue 13, must-show: a canary sweep across every error path the tests can reach. Secrets of every
shape (inner double spaces, a multi-line PEM from a file, non-ASCII, 300+ characters, the tokens,
every secret the API issues) go in; a hostile proxy in front of the emulator answers each API route
(list, create, update, revoke/delete of both providers) with every kind of bad reply (4xx/5xx
bodies that echo the whole request back with odd whitespace, plain text and HTML, truncated bodies,
dropped connections, success bodies of the wrong shape, a long Retry-After), bad tokens of every
shape are tried, and a provider that refuses connections. After every command (run with -v),
stdout, stderr, the state, its backup, journal and lock, and every saved plan are scanned for every
canary: verbatim, and for any 16 consecutive visible characters of it. Expected hits: 0.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.project import Project, Result
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.providers import http as provider_http
from tests.hostile import HostileServer, Reply, Seen, echo_of, hostile

ORG = "org_sweep"
QT = "cnry-qtok-5b0e7d3a91f24c68"
TT = "cnry-ttok-8c2f6a1d07e94b35"
AV = "cnry-authv  9d1e4b7a  2f3c8e60 a1"  # inner double spaces
PEM = ("-----BEGIN CNRY PRIVATE KEY-----\n" + "\n".join(f"MIIcnry{i}" + "Qk7vB3xZ9p" * 5 for i in range(4))
       + "\n-----END CNRY PRIVATE KEY-----")
EXTRA = "cnry-ana@exämple.com-4e1b9c7d-ünï"  # non-ASCII
HEADER = "cnry-hdr-" + "x7Qm4Rb2" * 40  # 329 characters: straddles every 300-character cut
CANARIES = (QT, TT, AV, PEM, EXTRA, HEADER)
WINDOW = 16


def _visible(text: str) -> str:
    return "".join(text.split())


def hits_in(text: str, secrets: set[str]) -> list[str]:
    """Every secret of which `text` holds 16 consecutive visible characters (or all of a shorter one)."""
    visible = _visible(text)
    found = []
    for secret in secrets:
        core = _visible(secret)
        windows = {core} if len(core) <= WINDOW else {core[i:i + WINDOW] for i in range(len(core) - WINDOW + 1)}
        if any(w in visible for w in windows) or secret in text:
            found.append(secret[:12] + "…")
    return found


def echo_variant(seen: Seen, n: int) -> str:
    raw = echo_of(seen) + " | " + PEM + " | " + AV  # a server that also quotes other secrets it knows
    variants = [
        raw,
        " ".join(raw.split()),
        json.dumps(raw)[1:-1],
        raw.replace("\n", "\r\n").replace(" ", "  "),
        "\n".join(raw[i:i + 17] for i in range(0, len(raw), 17)),
        "x" * 280 + raw,
    ]
    return variants[n % len(variants)]


def _json(status: int, doc: object) -> Reply:
    return Reply(status, json.dumps(doc).encode())


def _shape(echo: str) -> Reply:
    """A success whose fields keyform reads hold the echo (wrong shapes and bad timestamps)."""
    key = {"id": "k1", "name": "n", "created_at": echo, "createdAt": echo, "description": 5, "secret": 7}
    return _json(200, {"data": [key], "apiKeys": [key], "apiKey": key, **key})


def _error(status: int) -> Callable[[str], Reply]:
    return lambda echo: _json(status, {"code": "invalid_argument", "message": echo})


REPLIES: dict[str, Callable[[str], Reply]] = {
    **{f"json-{s}": _error(s) for s in (400, 401, 403, 404, 409, 422, 500, 502)},
    "json-429-retry-after": lambda echo: Reply(429, json.dumps({"message": echo}).encode(),
                                               {"Content-Type": "application/json", "Retry-After": "3600"}),
    "json-503-retry-after": lambda echo: Reply(503, json.dumps({"error": {"message": echo}}).encode(),
                                               {"Content-Type": "application/json", "Retry-After": "3600"}),
    "text-400": lambda echo: Reply(400, echo.encode(), {"Content-Type": "text/plain"}),
    "html-500": lambda echo: Reply(500, f"<html><body><pre>{echo}</pre></body></html>".encode(),
                                   {"Content-Type": "text/html"}),
    "truncated-200": lambda echo: Reply(200, json.dumps({"message": echo}).encode()[:-40], declared_length=100000),
    "truncated-400": lambda echo: Reply(400, json.dumps({"message": echo}).encode()[:-3], declared_length=100000),
    "dropped": lambda echo: Reply(drop=True),
    "shape-200": _shape,
}


@dataclass(frozen=True)
class Route:
    label: str
    matches: Callable[[Seen], bool]
    command: tuple[str, ...]


ROUTES = [
    Route("questra list", lambda s: s.method == "GET" and s.path == "/api-keys", ("plan", "--out", "sweep.plan")),
    Route("textql list", lambda s: s.path == "/v1/api-keys", ("plan", "--out", "sweep.plan")),
    Route("questra create", lambda s: s.method == "POST" and s.path == "/api-keys",
          ("apply", "--auto-approve", "--replace", "q1")),
    Route("textql create", lambda s: s.path == "/v1/api-keys/create", ("apply", "--auto-approve", "--replace", "t1")),
    Route("textql update", lambda s: s.path == "/v1/api-keys/update", ("apply", "--auto-approve")),
    Route("questra revoke", lambda s: s.path.endswith("/revoke"), ("apply", "--auto-approve", "--replace", "q1")),
    Route("textql delete", lambda s: s.path == "/v1/api-keys/delete", ("apply", "--auto-approve", "--replace", "t2")),
]

BAD_TOKENS = {
    "carriage return": QT + "\r", "inner newline": "cnry-qtok-5b0e\n7d3a91f24c68", "two newlines": QT + "\n\n",
    "non-ASCII": "cnry-qtök-5b0e7d3a91f24c68", "control": "cnry-qtok-5b0e\x017d3a91f24c68",
    "leading space": " " + QT, "trailing tab": QT + "\t", "line separator": QT + "\u2028",
    "very long with a break": "cnry-" + "L0ngT0k3n" * 1200 + "\nX-Injected: 1",
}


def manifest(url: str, description: str, dead_url: str | None = None) -> str:
    q_url = dead_url or url
    return f"""\
version: 1
providers:
  qp: {{type: questra, base_url: '{q_url}', token: {{env: QUESTRA_TOKEN}}, org_id: {ORG}}}
  tq: {{type: textql, base_url: '{dead_url or url}', token: {{env: TEXTQL_TOKEN}}}}
sinks:
  env: {{type: dotenv, path: .secrets/keys.env}}
defaults: {{sink: env}}
keys:
  q1: {{provider: qp}}
  t1:
    provider: tq
    description: {description}
    hosts: [api.questra.ai]
    headers: {{X-Api-Key: {{env: CNRY_HEADER}}}}
    auth_value: {{env: CNRY_AV}}
    auth_value_extra: {{env: CNRY_EXTRA}}
  t2: {{provider: tq, hosts: [api.questra.ai], auth_value: {{file: av.pem}}}}
  t3: {{provider: tq, hosts: [api.questra.ai], auth_value: {{secret_of: q1}}}}
"""


class Sweep:
    def __init__(self, project: Project, control: EmulatorControl) -> None:
        self.project = project
        self.control = control
        self.paths = 0
        self.hits: list[str] = []
        self.internal: list[str] = []
        self.unexpected: list[str] = []

    def secrets(self) -> set[str]:
        state = self.control.state()
        issued = {k["secret"] for keys in state["questra"]["orgs"].values() for k in keys}
        return set(CANARIES) | issued

    def run(self, label: str, *args: str, env: dict[str, str] | None = None, count: bool = True) -> Result:
        root = self.project.root
        # saved plans go into the project (and are scanned below), never into the test's working directory
        argv = [str(root / a) if a.endswith(".plan") else a for a in args]
        if argv[0] in ("plan", "apply", "destroy"):
            argv[1:1] = ["-f", str(self.project.manifest)]
        result = self.project.run("-v", *argv, env=env)
        self.paths += count
        files = [root / n for n in ("keyform.state.json", "keyform.state.json.backup", "keyform.state.json.journal",
                                    "keyform.state.json.lock")] + sorted(root.glob("*.plan"))
        if "--out" in argv:
            assert any(f.suffix == ".plan" for f in files), "the saved plan must be among the scanned files"
        texts = [("stdout", result.stdout), ("stderr", result.stderr)]
        texts += [(f.name, f.read_text(errors="replace")) for f in files if f.exists()]
        secrets = self.secrets()
        for where, text in texts:
            self.hits += [f"{label}: {where}: {h}" for h in hits_in(text, secrets)]
        if "internal error" in result.stderr.lower():
            self.internal.append(f"{label}: {result.stderr.strip().splitlines()[-1]}")
        return result


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(provider_http.RetryPolicy, "backoff", lambda self, attempt, rng: 0.0)
    yield


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_canary_reaches_any_output_or_file_on_any_error_path(
        tmp_path: Path, make_emulator: Callable[..., Emulator], no_backoff: None) -> None:
    emulator = make_emulator(tokens=frozenset({QT, TT}))
    with hostile(upstream=emulator.url) as api, EmulatorControl(emulator.url) as control:
        env = {"QUESTRA_TOKEN": QT, "TEXTQL_TOKEN": TT, "CNRY_AV": AV, "CNRY_EXTRA": EXTRA, "CNRY_HEADER": HEADER}
        project = Project(tmp_path, api.url, env=env)
        (tmp_path / "av.pem").write_text(PEM + "\n")
        project.manifest.write_text(manifest(api.url, "v0"))
        sweep = Sweep(project, control)
        setup = sweep.run("setup", "apply", "--auto-approve", count=False)
        assert setup.exit_code == 0, setup.output
        sweep.run("setup plan", "plan", "--out", "clean.plan", count=False)

        failed = 0  # hostile route paths that made the command fail (the rest were retried or tolerated)
        for n, (route, (kind, reply)) in enumerate((r, k) for r in ROUTES for k in REPLIES.items()):
            api.script = _scripted(route, reply, n)
            if route.label == "textql update":
                project.manifest.write_text(manifest(api.url, f"v{n}"))
            result = sweep.run(f"{route.label} / {kind}", *route.command)
            failed += result.exit_code != 0
            api.script = _pass
            if not route.label.endswith("list"):  # a failed plan changed nothing: no need to converge again
                sweep.run(f"heal after {route.label} / {kind}", "apply", "--auto-approve", count=False)

        for shape, token in BAD_TOKENS.items():
            for provider in ("QUESTRA_TOKEN", "TEXTQL_TOKEN"):
                for command in (["plan"], ["apply", "--auto-approve"]):
                    result = sweep.run(f"bad token ({shape}) in {provider}", *command, env={provider: token})
                    if result.exit_code != 1 or "holds a character a header cannot carry" not in result.stderr:
                        sweep.unexpected.append(f"bad token ({shape}) in {provider}: exit {result.exit_code}")
        rejected = {"QUESTRA_TOKEN": "cnry-rejected-qtok-0f9e8d7c", "TEXTQL_TOKEN": "cnry-rejected-ttok-6b5a4c3d"}
        for provider, token in rejected.items():
            for command in (["plan"], ["apply", "--auto-approve", "--replace", "t1"]):
                result = sweep.run(f"rejected token in {provider}", *command, env={provider: token})
                if result.exit_code != 1:
                    sweep.unexpected.append(f"rejected token in {provider}: exit {result.exit_code}")

        dead = f"http://127.0.0.1:{_dead_port()}"
        project.manifest.write_text(manifest(api.url, "dead", dead_url=dead))
        for command in (["plan"], ["apply", "--auto-approve"], ["destroy", "--auto-approve"]):
            result = sweep.run(f"connect error / {command[0]}", *command)
            if result.exit_code != 1 or "cannot connect" not in result.stderr:
                sweep.unexpected.append(f"connect error / {command[0]}: exit {result.exit_code}")
        secrets = len(sweep.secrets())

    print(f"\ncanary sweep: {sweep.paths} error paths ({len(ROUTES)} routes x {len(REPLIES)} bad replies, "
          f"{len(BAD_TOKENS) * 4 + 4} token paths, 3 connect-error paths), {secrets} secrets, "
          f"{len(sweep.hits)} hits, {len(sweep.internal)} internal errors; {failed} route paths failed the command")
    assert sweep.hits == []
    assert sweep.internal == []
    assert sweep.unexpected == []
    assert failed >= len(ROUTES) * len(REPLIES) * 0.7
    assert sweep.paths >= 150


def _scripted(route: Route, reply: Callable[[str], Reply], n: int) -> Callable[[Seen], Reply | None]:
    """Answer the route's requests with `reply`, echoing each request (whitespace variant `n`)."""
    return lambda seen: reply(echo_variant(seen, n)) if route.matches(seen) else None


def _pass(seen: Seen) -> Reply | None:
    return None


def test_the_sweep_scanner_finds_a_planted_canary() -> None:
    assert hits_in("error: " + HEADER[100:140], {HEADER})  # a 40-character piece of it
    assert hits_in(" ".join(AV.split()), {AV})  # whitespace collapsed
    assert hits_in(json.dumps(PEM), {PEM})
    assert not hits_in("nothing here", {HEADER, AV, PEM})


def test_hostile_server_is_a_proxy_by_default(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator()
    with hostile(upstream=emulator.url) as api:
        server: HostileServer = api
        assert server.upstream == emulator.url


@pytest.mark.parametrize("field", ["created_at", "id"])
def test_a_create_reply_echoing_its_own_secret_in_a_bad_field_shows_none_of_it(tmp_path: Path, field: str) -> None:
    """The secret was remembered only after the rest of the reply was parsed: a create reply whose
    `created_at` (or `id`) is its own secret failed with a message quoting 40 characters of it."""
    secret = "sk_live_PD7x8v61HvJju36aIR10Bw81MjjC9UwJ"

    def reply(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":
            key = {"id": "ak_1", "name": "q1", "created_at": "2026-11-01T10:00:00Z", "expires_at": None,
                   "revoked": False, "secret": secret}
            return _json(201, {**key, field: secret if field == "created_at" else {"x": secret}})
        return None

    with hostile() as api:
        api.script = reply
        project = Project(tmp_path, api.url, env={"QUESTRA_TOKEN": QT})
        project.manifest.write_text(
            f"version: 1\nproviders:\n  qp: {{type: questra, base_url: '{api.url}', token: {{env: QUESTRA_TOKEN}}, "
            f"org_id: {ORG}}}\nsinks:\n  env: {{type: dotenv, path: .secrets/keys.env}}\ndefaults: {{sink: env}}\n"
            "keys:\n  q1: {provider: qp}\n")
        for verbose in ((), ("-v",)):
            result = project.run(*verbose, "apply", "-f", str(project.manifest), "--auto-approve")
            assert result.exit_code == 1, result.output
            assert "unexpected response shape" in result.stderr
            assert hits_in(result.output, {secret}) == [], result.output


def test_a_listing_that_echoes_a_known_secret_into_a_description_shows_it_nowhere(
        tmp_path: Path, make_emulator: Callable[..., Emulator]) -> None:
    """A TextQL listing whose description holds the key's own auth_value (a hostile or careless
    API) was shown by plan (text, Markdown, JSON), saved in plan files, shown by `show` and
    `report`, and recorded in the state by `import`: remote values were never scrubbed."""
    emulator = make_emulator(tokens=frozenset({QT, TT}))
    with hostile(upstream=emulator.url) as api:
        env = {"QUESTRA_TOKEN": QT, "TEXTQL_TOKEN": TT, "CNRY_AV": AV}
        project = Project(tmp_path, api.url, env=env)
        project.manifest.write_text(
            f"version: 1\nproviders:\n  tq: {{type: textql, base_url: '{api.url}', token: {{env: TEXTQL_TOKEN}}}}\n"
            "keys:\n  t1: {provider: tq, description: t one, hosts: [api.questra.ai], "
            "auth_value: {env: CNRY_AV}}\n")
        manifest = ("-f", str(project.manifest))
        assert project.run("apply", *manifest, "--auto-approve").exit_code == 0
        remote_id = project.state()["keys"]["t1"]["remote_id"]

        def echoing(seen: Seen) -> Reply | None:
            if seen.path != "/v1/api-keys":
                return None
            reply = api._forward(seen)
            doc = json.loads(reply.body)
            for key in doc["apiAccessKeys"]:
                key["description"] = f"auth {AV} (do not share)"
            return Reply(reply.status, json.dumps(doc).encode(), reply.headers)

        api.script = echoing
        outputs = []
        for args in (("plan", *manifest), ("plan", *manifest, "--format", "json"),
                     ("plan", *manifest, "--format", "markdown"),
                     ("plan", *manifest, "--out", str(tmp_path / "p.plan")), ("show", str(tmp_path / "p.plan")),
                     ("report", *manifest), ("report", *manifest, "--format", "json"),
                     ("report", *manifest, "--unmanaged"), ("state", "rm", *manifest, "t1"),
                     ("import", *manifest, "t1", remote_id), ("plan", *manifest)):
            result = project.run(*args)
            assert result.exit_code in (0, 2), (args, result.output)
            outputs.append(result.output)
        assert "description" in outputs[0] and "***" in outputs[0], outputs[0]  # the drift is shown, masked
        assert hits_in("\n".join(outputs), {AV}) == []
        for name in ("p.plan", "keyform.state.json", "keyform.state.json.backup"):
            if (tmp_path / name).exists():
                assert hits_in((tmp_path / name).read_text(), {AV}) == [], name


@pytest.mark.parametrize("sink", ["{type: json, path: out.json}", "{type: file, dir: out}"])
def test_an_issued_secret_that_is_not_valid_unicode_is_said_so_and_its_key_revoked(tmp_path: Path, sink: str) -> None:
    """A create reply whose secret holds a lone surrogate (a \\ud800 escape) failed every sink but
    dotenv with the bare 'UnicodeEncodeError'."""
    with hostile() as api:
        api.secret = lambda n: f"sk_live_{n:04d}\ud800tail"
        project = Project(tmp_path, api.url, env={"QUESTRA_TOKEN": QT})
        project.manifest.write_text(
            f"version: 1\nproviders:\n  qp: {{type: questra, base_url: '{api.url}', token: {{env: QUESTRA_TOKEN}}, "
            f"org_id: {ORG}}}\nsinks:\n  js: {sink}\ndefaults: {{sink: js}}\n"
            "keys:\n  q1: {provider: qp}\n")
        res = project.run("apply", "-f", str(project.manifest), "--auto-approve")
        assert res.exit_code == 1, res.output
        assert "not valid Unicode (a lone surrogate" in res.stderr, res.output
        assert "was revoked" in res.stderr and api.revoked == api.created
        assert "sk_live_" not in res.output
