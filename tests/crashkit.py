"""Crash harness: run `keyform apply` as a subprocess against the emulator, `kill -9` it at a random
moment, re-run `apply` until converged, and check the invariants of issue 6 after every trial.

Used by `tests/test_crash.py` (the quick CI version) and `bench/crash.py` (the long one), and its
project/manifest/invariant helpers by the fault-run, concurrency and canary tests.

A *lane* is one emulator (`python -m keyform.emulator`, its own process) and one project directory;
trials in a lane run one after another and build on each other (the manifest mutates between
trials, so the killed apply creates, replaces, updates and deletes keys; some trials force a
rotation with `--replace`), with a fresh project from time to time. Lanes run in parallel threads.
Every random choice comes from a `random.Random` seeded per lane; where a kill lands still depends
on timing, which is the point.

A trial:
1. mutate the manifest (or, sometimes, keep it and force a rotation with `--replace`);
2. start `keyform apply --auto-approve` (no TTY); wait until it holds the state lock (or, in most
   trials, until it opens its journal: the apply phase), sleep a random time uniform over the
   expected remaining duration of the locked run (calibrated per lane), `kill -9` it;
3. check the state file loads; leave the dead process's lock file alone: no `force-unlock` is ever
   run (the OS lock died with the process; the next command takes the file over, and in some trials
   a `plan` does so first). In some trials the first apply after the crash is killed the same way
   (a crash during recovery);
4. run `keyform apply --auto-approve` and `keyform plan --detailed-exitcode`, at most twice, until
   the plan says "no changes";
5. check the invariants against the emulator's stored keys (secrets included):
   (a) every active key in the emulator is in state (all keys in the lane's org are keyform's);
   (b) every live Questra key in state has its current secret in its sink;
   (c) the state file (and its backup) always loads: JSON and `LocalBackend.load`;
   (d) converged within two applies after the crash (`LaneConfig.max_applies`);
   (e) no key is duplicated: at most one active remote key per name/description;
   plus: each TextQL key's authValue is the current secret of its Questra source, the state holds
   exactly the manifest's keys and no deposed key, the journal holds no record, the lock is gone.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyform.backends.local import LocalBackend
from keyform.errors import KeyformError
from keyform.sinks.dotenv import DotenvSink
from tests.conftest import EmulatorControl

ORG = "org_crash"
TOKENS = {"QUESTRA_TOKEN": "crash-questra-token-5d1e", "TEXTQL_TOKEN": "crash-textql-token-8a3f"}
KEYFORM: tuple[str, ...] = (sys.executable, "-m", "keyform")
SINK_REL = ".secrets/keys.env"
STATE_NAME = "keyform.state.json"
COMMAND_TIMEOUT = 180.0  # seconds; a keyform run that takes longer is a failure, not a hang
LOCK_ID = re.compile(r"lock ID ([0-9a-fA-F-]{8,})")


# ------------------------------------------------------------------------------------- manifests


@dataclass(frozen=True)
class QuestraSpec:
    address: str
    name: str
    entry: str = ""  # the dotenv entry its secret goes to ("": the default, ADDRESS in upper case)


@dataclass(frozen=True)
class TextqlSpec:
    address: str
    description: str
    source: str  # the Questra key whose secret is its auth_value


@dataclass(frozen=True)
class ManifestSpec:
    """The keys of one manifest: Questra keys sunk to one dotenv file, TextQL keys fed by them."""

    questra: tuple[QuestraSpec, ...]
    textql: tuple[TextqlSpec, ...] = ()

    @classmethod
    def initial(cls, n_questra: int, n_textql: int) -> ManifestSpec:
        q = tuple(QuestraSpec(f"q{i}", f"q{i}") for i in range(n_questra))
        t = tuple(TextqlSpec(f"t{i}", f"t{i} access", f"q{i % n_questra}") for i in range(n_textql))
        return cls(q, t)

    @classmethod
    def sized(cls, n_keys: int) -> ManifestSpec:
        """`n_keys` keys: one third TextQL (each fed by a Questra key), the rest Questra."""
        n_textql = n_keys // 3
        return cls.initial(n_keys - n_textql, n_textql)

    @property
    def addresses(self) -> set[str]:
        return {k.address for k in self.questra} | {k.address for k in self.textql}

    def render(self, url: str, org: str = ORG) -> str:
        lines = [
            "version: 1",
            "providers:",
            "  qp:",
            "    type: questra",
            f"    base_url: {url}",
            "    token: {env: QUESTRA_TOKEN}",
            f"    org_id: {org}",
            "  tq:",
            "    type: textql",
            f"    base_url: {url}",
            "    token: {env: TEXTQL_TOKEN}",
            "sinks:",
            "  env:",
            "    type: dotenv",
            f"    path: {SINK_REL}",
            "defaults:",
            "  sink: env",
            "keys:",
        ]
        for q in self.questra:
            lines += [f"  {q.address}:", "    provider: qp", f"    name: {json.dumps(q.name)}"]
            if q.entry:
                lines.append(f"    sink: {{use: env, as: {q.entry}}}")
        for t in self.textql:
            lines += [f"  {t.address}:", "    provider: tq", f"    description: {json.dumps(t.description)}",
                      "    hosts: [api.questra.ai]", f"    headers: {{X-Org-Id: {org}}}", "    api_provider: questra",
                      "    auth_type: token", f"    auth_value: {{secret_of: {t.source}}}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Mutation:
    """A manifest change and its expected amount of remote work (for sizing the kill window)."""

    spec: ManifestSpec
    units: int  # ~ remote mutations: create 1, replace 2 (create + revoke), update 1, delete 1


def mutate(universe: ManifestSpec, current: ManifestSpec, rng: random.Random, generation: int) -> Mutation:
    """Rename some Questra keys (replace, and their TextQL consumers too), move the secrets of others to
    another sink entry and re-describe some TextQL keys (updates in place), drop or restore some keys
    (delete/create). Never an empty change."""
    present = {k.address for k in current.questra}
    old_q = {k.address: k for k in current.questra}
    old_t = {k.address: k for k in current.textql}
    while True:
        questra: list[QuestraSpec] = []
        for q in universe.questra:
            keep = q.address in present
            if (keep and rng.random() < 0.12) or (not keep and rng.random() < 0.7):
                keep = not keep
            if not keep:
                continue
            old = old_q.get(q.address)
            name = old.name if old else q.name
            entry = old.entry if old else ""
            if old is not None and rng.random() < 0.4:
                name = f"{q.address} g{generation}"
            elif old is not None and rng.random() < 0.2:
                entry = f"{q.address.upper()}_S{generation}"
            questra.append(QuestraSpec(q.address, name, entry))
        sources = {q.address for q in questra}
        textql: list[TextqlSpec] = []
        for t in universe.textql:
            if t.source not in sources or (rng.random() < 0.1):
                continue
            old_tq = old_t.get(t.address)
            desc = old_tq.description if old_tq else t.description
            if old_tq is not None and rng.random() < 0.4:
                desc = f"{t.address} access g{generation}"
            textql.append(TextqlSpec(t.address, desc, t.source))
        new = ManifestSpec(tuple(questra), tuple(textql))
        units = work_units(current, new)
        if units:
            return Mutation(new, units)


def work_units(old: ManifestSpec, new: ManifestSpec, forced: Sequence[str] = ()) -> int:
    """Roughly how many remote mutations an apply from `old` to `new` makes (`forced`: `--replace`)."""
    old_q = {k.address: k for k in old.questra}
    new_q = {k.address: k for k in new.questra}
    old_t = {k.address: k for k in old.textql}
    replaced = {a for a, k in new_q.items() if a in old_q and (old_q[a].name != k.name or a in forced)}
    units = sum(1 for a in new_q if a not in old_q) + 2 * len(replaced)
    units += sum(1 for a, k in new_q.items() if a in old_q and a not in replaced and old_q[a].entry != k.entry)
    units += sum(1 for a in old_q if a not in new_q) + sum(1 for a in old_t if a not in {t.address for t in new.textql})
    for t in new.textql:
        if t.address not in old_t:
            units += 1
        elif t.source in replaced or t.source not in old_q:
            units += 2
        elif old_t[t.address].description != t.description:
            units += 1
    return units


# --------------------------------------------------------------------------------------- project


@dataclass
class Run:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    def tail(self, n: int = 600) -> str:
        text = (self.stdout + "\n" + self.stderr).strip()
        return text[-n:]


class Project:
    """A keyform project directory driven through the `keyform` command as subprocesses."""

    def __init__(self, root: Path, url: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.url = url
        self.root.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("QUESTRA_", "TEXTQL_"))}
        self.env = {**base, **TOKENS, "NO_COLOR": "1", **(env or {})}

    @property
    def manifest(self) -> Path:
        return self.root / "keyform.yaml"

    @property
    def state_path(self) -> Path:
        return self.root / STATE_NAME

    @property
    def lock_path(self) -> Path:
        return self.root / (STATE_NAME + ".lock")

    @property
    def journal_path(self) -> Path:
        return self.root / (STATE_NAME + ".journal")

    @property
    def backup_path(self) -> Path:
        return self.root / (STATE_NAME + ".backup")

    @property
    def sink_path(self) -> Path:
        return self.root / SINK_REL

    def write(self, spec: ManifestSpec) -> None:
        self.manifest.write_text(spec.render(self.url))

    def argv(self, *args: str) -> tuple[str, ...]:
        return (*KEYFORM, *args)

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = COMMAND_TIMEOUT) -> Run:
        argv = self.argv(*args)
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=self.root, env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            return Run(argv, -1, _text(exc.stdout), _text(exc.stderr) + f"\n[timed out after {timeout}s]",
                       time.monotonic() - started)
        return Run(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), cwd=self.root, env={**self.env, **(env or {})},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def state(self) -> dict[str, Any] | None:
        if not self.state_path.exists():
            return None
        return dict(json.loads(self.state_path.read_text()))

    def journal_records(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in LocalBackend(self.state_path).read_journal()]


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def wait_for(predicate: Any, timeout: float, interval: float = 0.002) -> bool:
    """Poll `predicate()` until it is true or `timeout` seconds pass; returns its last verdict."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)


# ------------------------------------------------------------------------------------ invariants


def state_loads(project: Project) -> list[str]:
    """(c): the state file and its backup, where they exist, are JSON and load through LocalBackend."""
    problems = []
    for path in (project.state_path, project.backup_path):
        if not path.exists():
            continue
        try:
            json.loads(path.read_bytes())
            LocalBackend(path).load()
        except (ValueError, KeyformError) as exc:
            problems.append(f"(c) {path.name} does not load: {exc}")
    return problems


def emulator_keys(control: EmulatorControl, org: str = ORG) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    st = control.state()
    return list(st["questra"]["orgs"].get(org, [])), list(st["textql"]["keys"])


def duplicates(questra: list[dict[str, Any]], textql: list[dict[str, Any]]) -> list[str]:
    """(e): names of Questra keys active more than once, descriptions of TextQL keys present more than once."""
    q = Counter(k["name"] for k in questra if not k["revoked"])
    t = Counter(k.get("description", "") for k in textql)
    return [f"questra {n!r} x{c}" for n, c in sorted(q.items()) if c > 1] + \
           [f"textql {d!r} x{c}" for d, c in sorted(t.items()) if c > 1]


def check_invariants(project: Project, control: EmulatorControl, spec: ManifestSpec, *,
                     converged: bool = True, org: str = ORG) -> list[str]:
    """Every invariant that must hold once an apply has converged; returns the violations (no secrets)."""
    problems = state_loads(project)
    if problems:
        return problems
    st = project.state() or {"keys": {}, "deposed": []}
    keys: dict[str, dict[str, Any]] = st["keys"]
    deposed = {d["remote_id"] for d in st["deposed"]}
    tracked = {k["remote_id"] for k in keys.values()} | deposed
    questra, textql = emulator_keys(control, org)
    q_by_id = {k["id"]: k for k in questra}
    t_by_id = {k["id"]: k for k in textql}
    # (a) every active key keyform created is in state
    for k in questra:
        if not k["revoked"] and k["id"] not in tracked:
            problems.append(f"(a) active Questra key {k['id']} ({k['name']!r}) is not in state")
    for k in textql:
        if k["id"] not in tracked:
            problems.append(f"(a) TextQL key {k['id']} ({k.get('description')!r}) is not in state")
    # (b) every live Questra key in state has its current secret in its sink
    sink = DotenvSink(project.sink_path)
    for address, ks in sorted(keys.items()):
        if ks["provider_type"] != "questra":
            continue
        rk = q_by_id.get(ks["remote_id"])
        if rk is None:
            problems.append(f"{address}: state names Questra key {ks['remote_id']}, which does not exist")
            continue
        if rk["revoked"]:
            if converged:
                problems.append(f"{address}: the key in state ({rk['id']}) is revoked after convergence")
            continue
        entry = (ks.get("sink") or {}).get("as")
        value = sink.read(entry) if entry else None
        if value != rk["secret"]:
            what = "missing from" if value is None else "not the current secret in"
            problems.append(f"(b) {address}: the secret of live key {rk['id']} is {what} its sink entry {entry}")
    # (e) no duplicates
    problems += [f"(e) duplicated: {d}" for d in duplicates(questra, textql)]
    # the TextQL key stores the current secret of its source
    sources = {t.address: t.source for t in spec.textql}
    for address, ks in sorted(keys.items()):
        if ks["provider_type"] != "textql":
            continue
        rk = t_by_id.get(ks["remote_id"])
        if rk is None:
            problems.append(f"{address}: state names TextQL key {ks['remote_id']}, which does not exist")
            continue
        src = keys.get(sources.get(address, ""))
        src_key = q_by_id.get(src["remote_id"]) if src else None
        if src_key is None or rk.get("authValue") != src_key["secret"]:
            problems.append(f"{address}: TextQL authValue is not the current secret of {sources.get(address)}")
    if converged:
        if set(keys) != spec.addresses:
            problems.append(f"state holds {sorted(keys)}, the manifest declares {sorted(spec.addresses)}")
        if deposed:
            problems.append(f"deposed keys left after convergence: {sorted(deposed)}")
        records = project.journal_records()
        if records:
            problems.append(f"the journal still holds {len(records)} record(s) after convergence")
        if project.lock_path.exists():
            problems.append("the state lock is still held after convergence")
    return problems


# ---------------------------------------------------------------------------------------- trials


@dataclass
class TrialResult:
    lane: int
    number: int
    kind: str  # fresh | mutate | rotate
    killed: bool  # the kill landed while keyform was running
    phase: str  # where it landed: no-journal, in-flight, settled, after-unlock, exited (not killed)
    applies: int  # applies needed after the crash to converge
    force_unlocks: int
    lock_files_deleted: int
    violations: list[str]
    seconds: float


@dataclass
class Summary:
    results: list[TrialResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def trials(self) -> int:
        return len(self.results)

    @property
    def kills(self) -> int:
        return sum(r.killed for r in self.results)

    @property
    def violations(self) -> list[str]:
        return [f"lane {r.lane} trial {r.number} ({r.kind}, {r.phase}): {v}" for r in self.results
                for v in r.violations]

    def report(self) -> str:
        minutes = max(self.seconds, 1e-9) / 60
        applies = Counter(r.applies for r in self.results)
        phases = Counter(r.phase for r in self.results)
        kinds = Counter(r.kind for r in self.results)
        lines = [
            f"trials: {self.trials} ({self.kills} killed by SIGKILL while running)",
            f"violations: {len(self.violations)}",
            f"trials/min: {self.trials / minutes:.1f} ({self.seconds:.1f}s)",
            "applies needed after the crash: " + ", ".join(f"{n}: {c}" for n, c in sorted(applies.items())),
            "kill landed: " + ", ".join(f"{p}: {c}" for p, c in sorted(phases.items())),
            "trial kinds: " + ", ".join(f"{k}: {c}" for k, c in sorted(kinds.items())),
            f"force-unlocks: {sum(r.force_unlocks for r in self.results)}, "
            f"unreadable lock files deleted: {sum(r.lock_files_deleted for r in self.results)}",
        ]
        lines += [f"VIOLATION {v}" for v in self.violations[:50]]
        return "\n".join(lines)


@dataclass
class Kill:
    pid: int
    killed: bool  # SIGKILL landed while keyform ran
    output: str
    problems: list[str]


@dataclass
class LaneConfig:
    n_keys: int = 6
    latency_ms: float = 30
    parallelism: tuple[int, int] = (2, 4)
    fresh_rate: float = 0.2  # share of trials that start from an empty project
    rotate_rate: float = 0.2  # share of trials that keep the manifest and run `apply --replace`
    whole_run_rate: float = 0.4  # share of kills timed over the whole locked run (else its apply phase)
    keep_failures: Path | None = None  # copy the project of a failed trial here (with the emulator's keys)
    double_kill_rate: float = 0.15  # share of killed trials whose first recovering apply is killed too
    faults: Sequence[str] = ()  # emulator fault flags, e.g. ("--error-rate", "0.05"): then an apply may
    # fail (exit 1) on an injected fault, and convergence may take more applies
    max_applies: int = 2  # (d): applies allowed after the (last) crash before the plan must be empty


class Lane:
    """One emulator, one project directory at a time, trials one after another."""

    def __init__(self, index: int, seed: int, config: LaneConfig, workdir: Path) -> None:
        self.index = index
        self.config = config
        self.rng = random.Random(seed * 1_000_003 + index)
        self.workdir = workdir
        self.emulator = EmulatorProcess(latency_ms=config.latency_ms, seed=seed + index, extra=config.faults)
        self.control = EmulatorControl(self.emulator.url)
        self.universe = ManifestSpec.sized(config.n_keys)
        self.spec = self.universe
        self.project: Project | None = None
        self.projects = 0
        self.generation = 0
        self.fixed = 0.0  # seconds of a locked apply with nothing to do (recover, list, plan, exit)
        self.per_unit = 0.0  # seconds per unit of remote work, from the first journal record to exit

    def close(self) -> None:
        self.control.close()
        self.emulator.stop()

    def _fresh(self) -> Project:
        if self.project is not None:
            shutil.rmtree(self.project.root, ignore_errors=True)
        self.control.reset()
        self.projects += 1
        self.project = Project(self.workdir / f"lane{self.index}-p{self.projects}", self.emulator.url)
        return self.project

    def calibrate(self) -> None:
        """Time a full create (from its first journal record to releasing the lock) and a no-op apply
        (from taking the lock to releasing it) to size the kill windows."""
        project = self._fresh()
        project.write(self.universe)
        work = self._timed_apply(project, project.journal_path)
        self.fixed = self._timed_apply(project, project.lock_path)
        self.per_unit = work / max(1, self.config.n_keys)
        if self.config.faults:  # an injected fault may have left the calibration project unconverged
            self.project = None

    def _timed_apply(self, project: Project, anchor: Path) -> float:
        parallelism = sum(self.config.parallelism) // 2
        proc = project.spawn("apply", "--auto-approve", "--parallelism", str(parallelism))
        seen = wait_for(lambda: anchor.exists() or proc.poll() is not None, COMMAND_TIMEOUT)
        anchored_at = time.monotonic()
        wait_for(lambda: not project.lock_path.exists() or proc.poll() is not None, COMMAND_TIMEOUT)
        elapsed = time.monotonic() - anchored_at  # until the lock is released: the rest is interpreter exit
        out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
        if not seen or not (proc.returncode == 0 or (self.config.faults and proc.returncode == 1)):
            raise RuntimeError(f"calibration apply failed ({proc.returncode}): {(out + err)[-800:]}")
        return elapsed

    def trial(self, number: int) -> TrialResult:
        started = time.monotonic()
        rng = self.rng
        config = self.config
        parallelism = rng.randint(*config.parallelism)
        forced: tuple[str, ...] = ()
        if self.project is None or rng.random() < config.fresh_rate:
            kind = "fresh"
            project = self._fresh()
            self.spec = ManifestSpec.initial(len(self.universe.questra), len(self.universe.textql))
            units = work_units(ManifestSpec(()), self.spec)
        elif rng.random() < config.rotate_rate and self.spec.questra:
            kind = "rotate"
            project = self.project
            forced = (rng.choice(self.spec.questra).address,)
            units = work_units(self.spec, self.spec, forced)
        else:
            kind = "mutate"
            project = self.project
            self.generation += 1
            m = mutate(self.universe, self.spec, rng, self.generation)
            self.spec = m.spec
            units = m.units
        project.write(self.spec)
        violations: list[str] = []
        unlocks = deleted = 0

        args = ["apply", "--auto-approve", "--parallelism", str(parallelism)]
        for address in forced:
            args += ["--replace", address]
        # the kill moment: uniform over the whole locked run, or over its apply phase alone (from the
        # first journal record on), where the interesting crashes are
        whole = rng.random() < config.whole_run_rate
        window = (self.fixed if whole else 0.0) + self.per_unit * units
        kill = self._kill(project, args, project.lock_path if whole else project.journal_path,
                          rng.uniform(0.0, window))
        violations += kill.problems
        phase = self._phase(project, kill.killed)
        violations += state_loads(project)
        u, d, more = self._clear_lock(project, kill.pid, rng.random() < 0.25)
        unlocks, deleted = unlocks + u, deleted + d
        violations += more

        if kill.killed and not violations and rng.random() < config.double_kill_rate:
            # the apply that recovers from the crash is killed too
            kind += "+2nd-kill"
            again = self._kill(project, ["apply", "--auto-approve", "--parallelism", str(parallelism)],
                               project.lock_path, rng.uniform(0.0, self.fixed + self.per_unit * units))
            violations += again.problems + state_loads(project)
            u, d, more = self._clear_lock(project, (again.pid, kill.pid), rng.random() < 0.25)
            unlocks, deleted = unlocks + u, deleted + d
            violations += more

        applies = 0
        while not violations:
            applies += 1
            run = project.run("apply", "--auto-approve", "--parallelism", str(parallelism))
            violations += state_loads(project)
            if run.returncode != 0 and not (config.faults and run.returncode == 1):
                violations.append(f"apply #{applies} after the crash exited {run.returncode}: {run.tail()}")
                break
            plan = project.run("plan", "--detailed-exitcode")
            violations += state_loads(project)
            if plan.returncode == 0:
                break
            if plan.returncode != 2:
                violations.append(f"plan after apply #{applies} exited {plan.returncode}: {plan.tail()}")
                break
            if applies >= config.max_applies:
                violations.append(f"(d) not converged after {applies} applies: {plan.tail()}")
                break
        if not violations:
            violations += check_invariants(project, self.control, self.spec)
        if violations:
            self._keep(project, number, {"args": args, "window": window, "whole_run": whole,
                                         "killed_output": kill.output[-4000:], "violations": violations})
            self.project = None  # start the next trial from a clean slate
        return TrialResult(self.index, number, kind, kill.killed, phase, applies, unlocks, deleted, violations,
                           time.monotonic() - started)

    def _kill(self, project: Project, args: Sequence[str], anchor: Path, delay: float) -> Kill:
        """Start `keyform ARGS`, wait for `anchor` to appear, wait `delay` more seconds, SIGKILL it."""
        proc = project.spawn(*args)
        problems = []
        if not wait_for(lambda: anchor.exists() or proc.poll() is not None, COMMAND_TIMEOUT):
            problems.append(f"the apply never created {anchor.name}")
        if proc.poll() is None:
            time.sleep(delay)  # the random kill moment, not a synchronisation
        was_running = proc.poll() is None
        if was_running:
            proc.kill()
        out, err = proc.communicate(timeout=COMMAND_TIMEOUT)
        killed = was_running and proc.returncode == -9
        if not killed and proc.returncode != 0 and not (self.config.faults and proc.returncode == 1):
            problems.append(f"the apply that was to be killed failed on its own ({proc.returncode}): "
                            f"{(out + err)[-400:]}")
        return Kill(proc.pid, killed, out + "\n" + err, problems)

    def _keep(self, project: Project, number: int, details: dict[str, Any]) -> None:
        """Copy a failed trial's project and the emulator's keys to `config.keep_failures`."""
        if self.config.keep_failures is None:
            return
        dest = self.config.keep_failures / f"trial-{number:05d}"
        shutil.copytree(project.root, dest, dirs_exist_ok=True)
        (dest / "trial.json").write_text(json.dumps({**details, "emulator": self.control.state()}, indent=2))

    @staticmethod
    def _phase(project: Project, killed: bool) -> str:
        if not killed:
            return "exited"
        try:
            records = project.journal_records()
        except KeyformError:
            return "journal-unreadable"
        if not project.lock_path.exists():
            return "after-unlock"  # the anchor was seen, so the lock was taken and already released
        if not records:
            return "no-journal"
        open_: set[str] = set()
        for r in records:
            if r.get("op") == "intent":
                open_.add(str(r.get("seq")))
            elif r.get("op") in ("done", "failed"):
                open_.discard(str(r.get("seq")))
        return "in-flight" if open_ else "settled"

    def _clear_lock(self, project: Project, pid: int | tuple[int, ...], via_error: bool) -> tuple[int, int, list[str]]:
        """What a user needs to do about the dead process's lock: nothing. Its lock file may stay (the
        OS lock went with the process); check it names the killed apply (or is still empty), and, in
        some trials, that a plan run now takes it over at once. Never runs `force-unlock`: the
        returned count of force-unlocks and deleted lock files is always 0."""
        if not project.lock_path.exists():
            return 0, 0, []
        problems: list[str] = []
        text = project.lock_path.read_text()
        if text.strip():
            try:
                info = json.loads(text)
                dead = pid if isinstance(pid, tuple) else (pid,)  # a 2nd kill may land before the take-over
                if info.get("pid") not in dead:
                    problems.append(f"the lock names pid {info.get('pid')}, the killed applies were {dead}")
            except ValueError:
                problems.append(f"the lock file holds no lock record: {text[:200]!r}")
        if via_error:  # a command run now takes the dead holder's lock over, with no message about it
            run = project.run("plan", "--lock-timeout", "0s")
            if run.returncode not in (0, 1) or "locked" in run.stderr:
                problems.append(f"plan beside a dead holder's lock file exited {run.returncode}: {run.tail()}")
        return 0, 0, problems


def run_trials(trials: int, *, lanes: int = 2, seed: int = 6, config: LaneConfig | None = None,
               workdir: Path | None = None, min_kills: int = 0, max_trials: int | None = None,
               progress: Any = None) -> Summary:
    """Run `trials` crash trials over `lanes` parallel lanes — more, up to `max_trials`, until at least
    `min_kills` of them killed keyform while it ran (a kill that comes after keyform exited kills nothing)."""
    config = config or LaneConfig()
    cap = max(trials, max_trials or trials)
    summary = Summary()
    started = time.monotonic()
    lock = threading.Lock()
    numbers = iter(range(cap))

    def next_number() -> int | None:
        with lock:
            if len(summary.results) >= trials and summary.kills >= min_kills:
                return None
            return next(numbers, None)

    def work(lane: Lane) -> None:
        while (number := next_number()) is not None:
            result = lane.trial(number)
            with lock:
                summary.results.append(result)
                if progress is not None:
                    progress(result, summary)

    with _workdir(workdir) as root:
        lane_objs: list[Lane] = []
        try:
            for i in range(lanes):
                lane_objs.append(Lane(i, seed, config, root))
            with ThreadPoolExecutor(max_workers=lanes) as pool:
                list(pool.map(Lane.calibrate, lane_objs))
                for f in [pool.submit(work, lane) for lane in lane_objs]:
                    f.result()
        finally:
            for lane in lane_objs:
                lane.close()
    summary.results.sort(key=lambda r: r.number)
    summary.seconds = time.monotonic() - started
    return summary


class EmulatorProcess:
    """`python -m keyform.emulator` on an ephemeral port, in its own process (so the emulator does
    not share this process's GIL, and its noise about connections reset by killed clients goes
    nowhere). `url` is read from its start-up line."""

    def __init__(self, *, latency_ms: float = 0, seed: int | None = None, extra: Sequence[str] = ()) -> None:
        argv = [sys.executable, "-m", "keyform.emulator", "--port", "0", "--latency-ms", str(latency_ms), *extra]
        if seed is not None:
            argv += ["--seed", str(seed)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the emulator announces itself (or dies)
        found = re.search(r"(http://\S+)", line)
        if not found:
            self.stop()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.url = found.group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="keyform-crash-") as tmp:
        yield Path(tmp)
