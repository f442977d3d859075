"""The kill -9 harness: run `keyform apply` as a subprocess against the emulator, `kill -9` it at a
random moment, re-run `apply` until converged, and check the invariants of issue 6 after every trial.

Used by `tests/test_crash.py` (the quick CI version) and `bench/crash.py` (the long one). Its parts:
`harness.generator` (the manifests and their mutations), `harness.invariants` (the checks),
`harness.project` (the project driver), `harness.emulator` (the emulator as a child process).

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
5. check the invariants of `harness.invariants` against the emulator's stored keys (secrets
   included), and (d): converged within two applies after the crash (`LaneConfig.max_applies`).
"""

from __future__ import annotations

import json
import random
import shutil
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

from harness.emulator import EmulatorProcess
from harness.generator import ManifestSpec, mutate, work_units
from harness.invariants import check_invariants, state_loads
from harness.project import COMMAND_TIMEOUT, Project, wait_for
from keyform.emulator.client import EmulatorControl
from keyform.errors import KeyformError


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
            run = project.run_process("apply", "--auto-approve", "--parallelism", str(parallelism))
            violations += state_loads(project)
            if run.exit_code != 0 and not (config.faults and run.exit_code == 1):
                violations.append(f"apply #{applies} after the crash exited {run.exit_code}: {run.tail()}")
                break
            plan = project.run_process("plan", "--detailed-exitcode")
            violations += state_loads(project)
            if plan.exit_code == 0:
                break
            if plan.exit_code != 2:
                violations.append(f"plan after apply #{applies} exited {plan.exit_code}: {plan.tail()}")
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
            run = project.run_process("plan", "--lock-timeout", "0s")
            if run.exit_code not in (0, 1) or "locked" in run.stderr:
                problems.append(f"plan beside a dead holder's lock file exited {run.exit_code}: {run.tail()}")
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


@contextmanager
def _workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="keyform-crash-") as tmp:
        yield Path(tmp)
