"""`keyform.gcpause`: the cyclic collector off while bulk data is built, and (in the `keyform`
process) the built data frozen out of its reach after, so no deferred scan follows the pause."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyform import gcpause
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    was = gc.isenabled()
    yield
    gc.unfreeze()
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_inside_and_back_on_after_even_on_an_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():  # nested: still off after the inner one
            pass
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with gcpause.paused():
        pass
    assert not gc.isenabled()


def test_in_process_callers_keep_a_normal_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gcpause, "_freeze", False)
    gc.enable()
    before = gc.get_freeze_count()
    with gcpause.paused():
        data = [{"key": i} for i in range(1000)]
    assert gc.get_freeze_count() == before and len(data) == 1000


def test_in_the_keyform_process_what_a_pause_built_is_frozen_not_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gcpause, "_freeze", False)
    gcpause.freeze_after_pauses()
    gc.enable()
    with gcpause.paused():
        data = [{"key": i} for i in range(1000)]
    assert gc.get_freeze_count() >= len(data)  # the young objects went to the permanent generation
    assert gc.isenabled()


def test_pauses_in_several_threads_never_leave_the_collector_off() -> None:
    # thread B begins its pause while A's is on, A's ends, then B's: with each pause restoring what
    # it saw at its start, B would see "off" and leave the collector off for good
    gc.enable()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with gcpause.paused():
            a_in.set()
            assert b_in.wait(10)
        a_out.set()

    during_b: list[bool] = []

    def b() -> None:
        assert a_in.wait(10)
        with gcpause.paused():
            b_in.set()
            assert a_out.wait(10)
            during_b.append(gc.isenabled())

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert during_b == [False]  # A's end did not turn it on while B's pause went on
    assert gc.isenabled()  # and B's end did


_PROBE = (
    "import gc, sys\n"
    "big = []\n"
    "def cb(phase, info):\n"
    "    if phase == 'stop':\n"
    "        big.append(info['generation'])\n"
    "from keyform.cli import console\n"
    "import keyform.operations\n"
    "gc.callbacks.append(cb)\n"
    "sys.argv = ['keyform', *sys.argv[1:]]\n"
    "try:\n"
    "    console()\n"
    "except SystemExit as e:\n"
    "    print('exit', e.code, 'collections', len(big), file=sys.stderr)\n")


def _collections(root: Path, url: str, keys: int, *command: str) -> str:
    """Run `keyform COMMAND` as the console script over `keys` manifest keys; its stderr, which ends
    with the number of collections counted after the imports."""
    body = "".join(f"  k{i:05d}: {{provider: qp, name: key {i:05d}}}\n" for i in range(keys))
    (root / "keyform.yaml").write_text(
        f"version: 1\nproviders:\n  qp: {{type: questra, base_url: '{url}', token: {{env: T}}, org_id: o}}\n"
        "sinks:\n  env: {type: dotenv, path: .secrets/keys.env}\ndefaults: {sink: env}\nkeys:\n" + body)
    res = subprocess.run([sys.executable, "-c", _PROBE, *command], cwd=root, capture_output=True, text=True,
                         env={"T": "t", "PATH": "/usr/bin:/bin", "KEYFORM_NO_CACHE": "1", "NO_COLOR": "1",
                              "KEYFORM_NO_FAST_EXIT": "1"},  # (the probe reads the SystemExit: keyform.fastexit)
                         timeout=120)
    return res.stderr


def test_a_plan_in_the_keyform_process_runs_no_collection_over_its_data(tmp_path: Path) -> None:
    """The console script's plan: no collection scans the manifests, state or plan (each such scan
    of 100,000 young objects was ~20 ms at 10,000 keys). Counted by gc callbacks, over a manifest of
    5,000 keys (no provider calls: --no-refresh)."""
    err = _collections(tmp_path, "http://127.0.0.1:9", 5000, "plan", "--no-refresh")
    assert "exit 0 collections 0" in err, err[-2000:]


def test_a_report_runs_no_collection_over_the_listings_either(tmp_path: Path, emulator: Emulator,
                                                             emu_control: EmulatorControl) -> None:
    """`keyform report` lists the remote keys like a plan: a listing of 30,000 keys (a real HTTP
    reply from the emulator) is not scanned either. It was (~50 ms at 10,000 keys), which the plan
    no longer paid: the report ÷ plan figure of the benchmark rose with it."""
    emu_control.bulk_questra("o", 30_000)
    err = _collections(tmp_path, emulator.url, 3, "report", "--format", "json")
    assert "exit 0 collections 0" in err, err[-2000:]
