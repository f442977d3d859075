"""Found by an adversarial review (stop 43) of `apply --format json`: the stream a pipeline reads
on stdout must be JSON lines only, each valid against schemas/apply-events.schema.json, ending in a
`change_summary`, with every `apply_start` ended by exactly one terminal event.

- An apply with nothing to change printed `planned` and then nothing: no `change_summary`, while
  the same apply of a saved plan printed one (and the schema promises "a final change_summary").
- The confirmation question (a terminal on stdin, stdout piped to a log) was written to stdout,
  in the middle of the JSON lines.
- An API error message holding a lone surrogate (a `\\ud800` escape in its JSON body) could not be
  journaled: the apply_errored event carried `UnicodeEncodeError: ...` instead of the API's words.

Real HTTP on 127.0.0.1 against the emulator (a hostile proxy in front of it where the API must
misbehave)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from harness.project import Project
from keyform.emulator import Emulator
from tests.hostile import Reply, Seen, hostile

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "apply-events.schema.json").read_text())
TERMINAL = ("apply_complete", "apply_errored", "apply_skipped")


def _stream(stdout: str) -> list[dict[str, Any]]:
    """Every line of `stdout` as an apply event valid against the schema (nothing else allowed)."""
    events = []
    for line in stdout.splitlines():
        event = json.loads(line)
        jsonschema.validate(event, SCHEMA)
        events.append(event)
    return events


def test_an_apply_with_nothing_to_change_ends_its_json_stream_with_a_change_summary(tmp_path: Path,
                                                                                   emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k0: {provider: qp}\n")
    assert project.run_process("apply", "--auto-approve").exit_code == 0
    res = project.run_process("apply", "--auto-approve", "--format", "json")
    assert res.exit_code == 0, res.tail()
    events = _stream(res.stdout)
    assert [e["type"] for e in events] == ["planned", "change_summary"], events
    summary = events[-1]
    assert summary["ok"] is True and summary["failed"] == 0 and summary["errors"] == []
    assert "not_started" not in summary


def test_the_confirmation_question_of_a_json_apply_stays_off_stdout(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("k0: {provider: qp}\n")
    controller, terminal = pty.openpty()  # a person at a terminal, stdout piped to a log
    try:
        proc = subprocess.Popen(project.argv("apply", "--format", "json"), cwd=project.root,
                                env=project.process_env(), stdin=terminal, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            os.write(controller, b"yes\n")  # typed ahead: the terminal keeps it for the question
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, out[-1000:] + err[-1000:]
    assert "Do you want to perform these actions?" in err, err[-1000:]
    events = _stream(out)
    assert [e["type"] for e in events] == ["planned", "apply_start", "apply_complete", "change_summary"], events


def test_an_api_error_holding_a_lone_surrogate_keeps_the_apis_words_in_the_json_events(tmp_path: Path,
                                                                                       emulator: Emulator) -> None:
    def script(seen: Seen) -> Reply | None:
        if seen.method == "POST" and seen.path == "/api-keys":  # json.dumps writes the \\ud800 escape
            return Reply(400, json.dumps({"error": {"code": "bad_name", "message": "name \ud800 refused"}}).encode())
        return None

    with hostile(upstream=emulator.url) as server:
        server.script = script
        project = Project(tmp_path, server.url)
        project.questra("k0: {provider: qp}\n")
        res = project.run_process("apply", "--auto-approve", "--format", "json")
        assert res.exit_code == 1, res.tail()
        events = _stream(res.stdout)
        errored = [e for e in events if e["type"] == "apply_errored"]
        assert len(errored) == 1 and "400" in errored[0]["message"] and "refused" in errored[0]["message"], errored
        assert "UnicodeEncodeError" not in res.output, res.tail()
        # the create's failure was journaled: the next plan has no interrupted create to look for
        replan = project.run_process("plan", "--format", "json")
    assert replan.exit_code == 0, replan.tail()
    changes = json.loads(replan.stdout)["changes"]
    assert [(c["address"], c["action"]) for c in changes] == [("k0", "create")], changes
    assert not project.journal_path.exists() or not project.journal_records(), project.journal_records()


def test_a_second_ctrl_c_ends_every_started_change_in_the_json_stream(tmp_path: Path,
                                                                     make_emulator: Callable[..., Emulator]) -> None:
    """Twice: keyform stops waiting for the changes in flight. Their outcome is unknown (the next
    apply recovers it); the JSON stream said nothing of them, only stderr did: `apply_start` with no
    end. Each now ends with `apply_abandoned`."""
    emulator = make_emulator(latency_ms=2000)
    project = Project(tmp_path, emulator.url)
    project.questra("".join(f"k{i}: {{provider: qp}}\n" for i in range(4)))
    proc = project.spawn("apply", "--auto-approve", "--parallelism", "1", "--format", "json")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        seen = ""
        while '"apply_start"' not in seen:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()[-2000:]
            seen += line
        time.sleep(0.3)  # the create's call is on its way
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1 and "Interrupted twice" in err, err[-2000:]
    events = _stream(seen + rest)
    started = Counter(e["address"] for e in events if e["type"] == "apply_start")
    ended = Counter(e["address"] for e in events if e["type"] in (*TERMINAL, "apply_abandoned"))
    assert started and started == ended, (started, ended)
    abandoned = [e for e in events if e["type"] == "apply_abandoned"]
    assert abandoned and all("next `keyform apply`" in e["message"] for e in abandoned), abandoned
