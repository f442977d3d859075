"""Rate-limit scenarios for bench/run.py: applies of Questra creates against the emulator's token
bucket per org (`rate_limit_rps`, 429 + Retry-After), at 0 ms RTT, `--parallelism 16`.

- learned: one org limited to R req/s, nothing configured: keyform must find the limit;
- configured: the same with `rate_limit: R/s` in the manifest;
- two orgs: limits R/2 and 2R req/s, N/2 creates each, nothing configured; each org's finish time
  (its last key's created_at, relative to the command's start) against its own floor.

The floor of an org is creates ÷ its rate: the time the API itself needs to accept them (its
burst of one second's worth is left out: it only makes the floor slightly conservative).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from measure import run

TARGETS = {"learned": 1.15, "configured": 1.05, "two_orgs": 1.15, "learned_429_share": 0.05}


@dataclass
class OrgFigure:
    org: str
    rate: float
    creates: int
    finish: float  # seconds from the command's start to its last key's creation

    @property
    def floor(self) -> float:
        return self.creates / self.rate

    @property
    def ratio(self) -> float:
        return self.finish / self.floor


@dataclass
class RateFigure:
    scenario: str  # learned | configured | two_orgs
    parallelism: int
    wall: float
    cpu: float
    requests: int
    throttled: int
    failed: int
    orgs: list[OrgFigure] = field(default_factory=list)
    summary: str = ""

    @property
    def share_429(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0


def _manifest(url: str, orgs: list[tuple[str, int, str | None]]) -> str:
    out = ["version: 1", "providers:"]
    for org, _, limit in orgs:
        out += [f"  {org}:", "    type: questra", f"    base_url: {url}", "    token: {env: QUESTRA_TOKEN}",
                f"    org_id: {org}"] + ([f"    rate_limit: {limit}"] if limit else [])
    out += ["sinks:", "  env: {type: dotenv, path: secrets.env}", "defaults: {sink: env}", "keys:"]
    for org, n, _ in orgs:
        out += [f"  {org}-{i:05d}: {{provider: {org}}}" for i in range(n)]
    return "\n".join(out) + "\n"


def _utc(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def scenario(bench: Any, name: str, orgs: list[tuple[str, int, float]], configured: bool,
             parallelism: int) -> RateFigure:
    """Apply creates into `orgs` ((org, creates, emulator req/s)) and measure each org's finish."""
    bench.control.reset()
    bench.control.faults(rate_limits={org: rate for org, _, rate in orgs}, rate_limit_burst=0, latency_ms=0)
    root = bench.workdir / f"rate-{name}"
    root.mkdir(parents=True, exist_ok=True)
    (root / "keyform.yaml").write_text(_manifest(bench.url, [
        (org, n, f"{rate:g}/s" if configured else None) for org, n, rate in orgs]))
    started = time.time()
    r = run([*bench.kf, "apply", "--auto-approve", "--parallelism", str(parallelism)], cwd=root, env=bench.env)
    state = bench.control.state()
    failed = 0 if r.code == 0 else 1
    figures = []
    for org, n, rate in orgs:
        keys = state["questra"]["orgs"].get(org, [])
        if len(keys) != n:
            failed += abs(n - len(keys))
        last = max((_utc(k["created_at"]) for k in keys), default=started)
        figures.append(OrgFigure(org, rate, n, last - started))
    requests = sum(v for k, v in state["requests"].items() if k.startswith("questra."))
    summary = "\n".join(line for line in r.stdout.splitlines()
                        if line.startswith(("Apply ", "Rate limits:")) or " × 429 received" in line)
    return RateFigure(name, parallelism, r.wall, r.cpu, requests, state["faults"]["injected"].get("throttled", 0),
                      failed, figures, summary)


def run_all(bench: Any, creates: int, rate: float, parallelism: int) -> list[RateFigure]:
    half = creates // 2
    return [
        scenario(bench, "learned", [("org_rl_a", creates, rate)], False, parallelism),
        scenario(bench, "configured", [("org_rl_a", creates, rate)], True, parallelism),
        scenario(bench, "two_orgs", [("org_rl_slow", half, rate / 2), ("org_rl_fast", half, rate * 2)],
                 False, parallelism),
    ]


def rows(figures: list[RateFigure], ok: Any) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [("rate-limit scenario", "org", "creates", "limit", "finish", "floor", "ratio",
                                   "target", "429s", "failed")]
    for f in figures:
        target = TARGETS[f.scenario]
        for o in f.orgs:
            verdict = ok(o.ratio <= target and f.failed == 0 and (
                f.scenario != "configured" or f.throttled == 0) and (
                f.scenario != "learned" or f.share_429 <= TARGETS["learned_429_share"]))
            share = f"{f.throttled} ({f.share_429:.1%} of {f.requests})"
            out.append((f"{f.scenario} (p={f.parallelism})", o.org, f"{o.creates:,}", f"{o.rate:g}/s",
                        f"{o.finish:.2f} s", f"{o.floor:.2f} s", f"{o.ratio:.3f}× {verdict}",
                        f"≤ {target}×" + (" , 0 429s" if f.scenario == "configured" else
                                          " , ≤ 5 % 429s" if f.scenario == "learned" else ""),
                        share, str(f.failed)))
    return out


def as_json(figures: list[RateFigure]) -> list[dict[str, Any]]:
    return [{"scenario": f.scenario, "parallelism": f.parallelism, "wall": f.wall, "cpu": f.cpu,
             "requests": f.requests, "throttled": f.throttled, "share_429": f.share_429, "failed": f.failed,
             "orgs": [{"org": o.org, "rate": o.rate, "creates": o.creates, "finish": o.finish, "floor": o.floor,
                       "ratio": o.ratio} for o in f.orgs]} for f in figures]


def dump(figures: list[RateFigure], path: Path) -> None:
    path.write_text(json.dumps(as_json(figures), indent=2) + "\n")
