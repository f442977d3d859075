"""An old source key is not revoked while a key still uses its secret.

Found by a review: `src` (Questra, grace 0s) feeds `cons` (TextQL, `auth_value: {secret_of: src}`).
`apply --replace src` while `cons`'s re-issue failed (a token that may only list, an outage, a
quota), or `apply --replace src --target src`, revoked the old `src` key in the same apply: `cons`
was left holding a revoked secret. The old key now stays deposed while the state records a key
fed by it; the plan keeps it, and it is revoked by the apply that re-feeds the consumer. Against
the emulator on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.project import ORG, Project
from keyform.emulator.client import EmulatorControl

READ_ONLY = "ro-rotation-token-91f2"

MANIFEST = """\
version: 1
providers:
  qp: {{type: questra, base_url: "{url}", token: {{env: QUESTRA_TOKEN}}, org_id: {org}}}
  tq: {{type: textql, base_url: "{url}", token: {{env: TEXTQL_TOKEN}}}}
sinks:
  env: {{type: dotenv, path: .secrets/dev.env}}
defaults: {{sink: env}}
keys:
  src: {{provider: qp, name: src, rotation: {{grace: 0s}}}}
  cons: {{provider: tq, description: consumer, hosts: [api.questra.ai], api_provider: questra, auth_type: token,
          auth_value: {{secret_of: src}}}}
"""


def _live_src(control: EmulatorControl) -> set[str]:
    return {k["id"] for k in control.questra_keys(ORG) if not k["revoked"]}


def _fed(control: EmulatorControl) -> str:
    [cons] = control.textql_keys()
    return str(cons["authValue"])


def _secret_of(control: EmulatorControl, key_id: str) -> str:
    return str(next(k["secret"] for k in control.questra_keys(ORG) if k["id"] == key_id))


def test_a_source_is_not_revoked_while_a_consumer_whose_reissue_failed_uses_it(
        tmp_path: Path, make_emulator: Any) -> None:
    emu = make_emulator(read_only_tokens=frozenset({READ_ONLY}))
    project = Project(tmp_path, emu.url)
    project.write(MANIFEST.format(url=emu.url, org=ORG))
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("src")
    with EmulatorControl(emu.url) as control:
        res = project.run("apply", "--replace", "src", "--auto-approve", env={"TEXTQL_TOKEN": READ_ONLY})
        assert res.exit_code == 1, res.output
        assert (f"src (deposed {old}) is kept: key 'cons' still uses its secret (a re-issue that failed or was not "
                "applied); it is revoked once no key does") in res.output, res.output
        assert old in _live_src(control) and _fed(control) == _secret_of(control, old)
        # the plan keeps it while cons is fed by it, and re-feeds cons; that apply revokes it
        planned = project.run("plan")
        assert "cons must be replaced" in planned.stdout or "cons will be updated" in planned.stdout, planned.output
        res = project.run("apply", "--auto-approve")
        assert res.exit_code == 0, res.output
        new = project.remote_id("src")
        assert _live_src(control) == {new} and _fed(control) == _secret_of(control, new)
        assert project.run("plan", "--detailed-exitcode").exit_code == 0


def test_a_targeted_rotation_of_a_source_keeps_the_old_key_for_the_consumer_left_out(
        tmp_path: Path, make_emulator: Any) -> None:
    emu = make_emulator()
    project = Project(tmp_path, emu.url)
    project.write(MANIFEST.format(url=emu.url, org=ORG))
    assert project.run("apply", "--auto-approve").exit_code == 0
    old = project.remote_id("src")
    with EmulatorControl(emu.url) as control:
        res = project.run("apply", "--replace", "src", "--target", "src", "--auto-approve")
        assert res.exit_code == 1 and f"src (deposed {old}) is kept: key 'cons'" in res.output, res.output
        assert old in _live_src(control) and _fed(control) == _secret_of(control, old)
        kept = project.run("plan", "--target", "src")  # cons left out again: the old key is kept
        assert f"src (deposed {old}) is kept: key 'cons' still uses its secret" in kept.stdout, kept.output
        assert "will be revoked" not in kept.stdout
        # the next plan re-feeds cons, and revokes the old key after it (the applier checks again)
        planned = project.run("plan")
        assert "cons must be replaced" in planned.stdout and f"src (deposed {old}) will be revoked" in planned.stdout
        assert project.run("apply", "--auto-approve").exit_code == 0
        assert _live_src(control) == {project.remote_id("src")}


def test_a_saved_plan_edited_to_run_a_consumer_before_its_source_is_refused(
        tmp_path: Path, make_emulator: Any) -> None:
    """Found by a review: `depends_on` (the order the applier runs changes in) was not compared with
    a plan made now; with it emptied, the consumer was re-issued first, with the old source secret."""
    import json

    emu = make_emulator()
    project = Project(tmp_path, emu.url)
    project.write(MANIFEST.format(url=emu.url, org=ORG))
    assert project.run("apply", "--auto-approve").exit_code == 0
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--replace", "src", "--out", str(saved)).exit_code == 0
    doc = json.loads(saved.read_text())
    for change in doc["changes"]:
        if change["address"] == "cons":
            change["depends_on"] = []
    saved.write_text(json.dumps(doc))
    res = project.run("apply", str(saved), "--parallelism", "1")
    assert res.exit_code == 1 and "cons: it runs after no key; a plan made now: after src" in res.stderr, res.output


def test_a_destroy_plan_cut_down_to_a_sources_old_key_keeps_it_for_its_consumer(
        tmp_path: Path, make_emulator: Any) -> None:
    """A destroy revokes every key, its consumers deleted in the same apply; the applier's guard
    for a key still fed by an old source key no longer stood aside for `"destroy": true`."""
    from keyform.applier import ApplyReport, _held_back
    from keyform.plan import Action, Change

    class Ctx:
        def __init__(self, state: Any) -> None:
            import threading
            self.state, self.lock = state, threading.Lock()
            self.deleting: frozenset[str] = frozenset()
            self.orphan_entries: dict[str, Any] = {}
            self.events: list[Any] = []
            self.workspace = workspace(questra_key("src"), textql_key("cons"))  # (nothing held)
            self.clock = lambda: T0

        def on_event(self, event: Any) -> None:
            self.events.append(event)

    from keyform.state import DeposedKey, secret_of_fingerprint
    from tests.factories import T0, questra_key, recorded, state_with, textql_key, workspace

    st = state_with(recorded(questra_key("src"), "ak_new"), recorded(textql_key("cons"), "tk_1"))
    st.keys["cons"].fingerprints["auth_value"] = secret_of_fingerprint("src", "ak_old")
    st.deposed.append(DeposedKey("src", "qp", "questra", "ak_old", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
    revoke = Change(address="src", action=Action.DELETE, provider="qp", provider_type="questra", remote_id="ak_old",
                    deposed=True)
    report = ApplyReport()
    assert _held_back([revoke], Ctx(st), report) == []  # type: ignore[arg-type]
    assert "is kept: key 'cons' still uses its secret" in report.skipped[0][1]
    ctx = Ctx(st)
    ctx.deleting = frozenset({"cons"})  # a whole destroy: cons goes in the same apply
    assert _held_back([revoke], ctx, ApplyReport()) == [revoke]  # type: ignore[arg-type]


def test_a_source_key_is_kept_while_a_deposed_consumer_fed_by_it_lives_through_its_grace(
        tmp_path: Path, make_emulator: Any) -> None:
    """Found by a review: with `cons` given a grace of 1h, `apply --replace src` re-issued cons (its
    old key deposed, live for the hour so its callers keep working) and revoked the old src key at
    once: the deposed cons key was live with a dead credential for its whole grace. A deposed key
    records the secret_of inputs it was issued with (`fed_by`), and the source key they name is
    kept until it is revoked."""
    emu = make_emulator()
    project = Project(tmp_path, emu.url)
    project.write(MANIFEST.format(url=emu.url, org=ORG).replace(
        "auth_value: {secret_of: src}}", "auth_value: {secret_of: src}, rotation: {grace: 1h}}"))
    assert project.run("apply", "--auto-approve").exit_code == 0
    old_src = project.remote_id("src")
    with EmulatorControl(emu.url) as control:
        old_cons = {k["id"] for k in control.textql_keys()}
        res = project.run("apply", "--replace", "src", "--auto-approve")
        assert res.exit_code == 1, res.output  # the old src key's revoke is held back, and said
        assert f"src (deposed {old_src}) is kept: key 'cons (deposed {next(iter(old_cons))})' still uses its " \
               "secret" in res.output, res.output
        assert old_src in _live_src(control)
        deposed = project.state()["deposed"]
        assert [d["fed_by"] for d in deposed if d["address"] == "cons"] == [[f"secret_of:src@{old_src}"]]
        planned = project.run("plan")  # kept while the deposed cons lives; both go when its grace ends
        assert f"src (deposed {old_src}) is kept: key 'cons (deposed" in planned.stdout, planned.output
