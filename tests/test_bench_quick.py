"""The benchmark (`bench/run.py`) keeps working: its `--quick` smoke run (50 keys) completes and
reports every figure. No timing is asserted here; `docs/performance.md` has the measured figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_quick_run_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--workdir", str(tmp_path / "w"),
                          "--apply-repeat", "2", "--json", str(out)], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    for row in ("keyform --version", "1-key plan", "no-change plan, 50 keys", "report, 50 keys", "apply 50 creates",
                "floor: the same creates", "into one dotenv file", "into one k8s-secret file",
                "rate-limit scenario", "learned (p=16)", "configured (p=16)", "two_orgs (p=16)",
                "no-change plan, 50 keys via type: rest"):
        assert row in res.stdout
    figures = json.loads(out.read_text())
    plan = figures["plans"][0]
    assert plan["remote_calls"] == plan["instances"] == 11  # 10 Questra orgs + TextQL: one list call each
    # each plan paired with a parse floor run right after it; the printed figure is the pairs' median
    ratios = plan["floor_ratios"]
    assert len(ratios) == 1 and plan["floor_ratio"] == ratios[0] > 0  # --quick: one plan, one floor
    assert f"plan CPU {ratios[0]:.2f}× floor" in res.stdout
    assert f"(pairs {ratios[0]:.2f}–{ratios[0]:.2f}, wall " in res.stdout
    apply = figures["applies"][0]
    assert apply["calls"]["questra.create"] == 50
    # two fresh applies, each with its floor: the figure is the median run's, both runs are shown
    each = apply["cpu_per_create_runs"]
    assert len(each) == 2 and min(each) <= apply["cpu_per_create"] <= max(each)
    assert f"runs {min(each):.2f}–{max(each):.2f} ms" in res.stdout
    # and each run's CPU against its own floor's, which drifts less with the machine's speed
    against = apply["floor_cpu_ratios"]
    assert len(against) == 2 and all(r > 0 for r in against) and apply["floor_cpu_ratio"] in against
    assert f"keyform CPU {apply['floor_cpu_ratio']:.2f}× floor's (runs {min(against):.2f}–{max(against):.2f})" in res.stdout
    assert figures["rest"][0]["calls"] == 11 and len(figures["rest"][0]["ratios"]) == 3  # same calls via type: rest
    sinks = {f["kind"]: f["creates"] for f in figures["sinks"]}
    assert sinks.items() >= {"dotenv": 20, "json": 20, "k8s-secret": 20}.items()
    rates = {f["scenario"]: f for f in figures["rates"]}
    assert sorted(rates) == ["configured", "learned", "two_orgs"]
    assert all(f["failed"] == 0 for f in rates.values())
    assert rates["configured"]["throttled"] == 0  # a configured limit below the API's is never exceeded
    assert [o["creates"] for o in rates["two_orgs"]["orgs"]] == [30, 30]
    if not figures["sinks_skipped"]:  # sops and age-keygen present (as in CI): the encrypted sinks ran too
        assert sinks.items() >= {"sops": 20, "k8s-secret+sops": 20}.items()


def test_a_measured_command_s_peak_rss_is_its_own_not_the_benchmark_s(tmp_path: Path) -> None:
    """A child started straight from a process reports that process's peak RSS as its own (Linux
    keeps the larger high-water mark across exec): the benchmark, holding an in-process emulator,
    made every plan look ~120 MB. `measure.run` starts commands through a small wrapper instead;
    the command's exit code and output come through it, and one that cannot start is code 127."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from measure import run
    finally:
        sys.path.remove(str(ROOT / "bench"))
    ballast = bytearray(192 * 1024 * 1024)
    ballast[::4096] = b"\1" * len(range(0, len(ballast), 4096))  # resident, in this process
    small = run([sys.executable, "-c", "import sys; print('out'); sys.exit(3)"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    big = run([sys.executable, "-c", "b = bytearray(80 * 1024 * 1024); b[::4096] = b'1' * len(b[::4096])"],
              cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    del ballast
    assert small.code == 3 and small.stdout == "out\n"
    assert small.rss_mb < 64, small.rss_mb  # a bare interpreter: ~10 MB, not this process's 192+ MB
    assert 80 < big.rss_mb < 160, big.rss_mb  # what the command itself held
    assert 0 < small.wall < 30 and small.cpu >= 0
    missing = run([str(tmp_path / "no-such-program")], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert missing.code == 127 and "No such file or directory" in missing.stderr
