"""The long crash bench (issue 6): `kill -9` keyform apply at random moments, converge, check invariants.

    python bench/crash.py --trials 500

Each trial mutates a small manifest (Questra keys sunk to a dotenv file, TextQL keys fed by their
secrets), starts `keyform apply --auto-approve` as a subprocess against an emulator with latency,
kills it with SIGKILL at a random moment, leaves the dead process's lock alone (it frees itself:
no `force-unlock` is ever run, and the bench fails if one was needed), re-runs apply until
`plan --detailed-exitcode` says "no changes" (at most twice), and checks the invariants listed in
`harness/invariants.py`. Prints trials, violations, force-unlocks, trials/min and how many applies each
recovery needed; exits 1 on any violation. The harness is `harness/crash.py` (shared with
`tests/test_crash.py`); see it for the details.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.crash import LaneConfig, Summary, TrialResult, run_trials

FAULTS = ("--error-rate", "0.10", "--rate-limit-rate", "0.05", "--retry-after", "0.05",
          "--drop-after-commit-rate", "0.02")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500, help="trials to run (default 500)")
    parser.add_argument("--min-kills", type=int, default=0,
                        help="keep going (up to 1.5x --trials) until this many kills landed while keyform ran")
    parser.add_argument("--lanes", type=int, default=max(2, os.cpu_count() or 2),
                        help="trials run in parallel, one emulator each (default: CPU count, at least 2)")
    parser.add_argument("--keys", type=int, default=6, help="keys per manifest (a third TextQL; default 6)")
    parser.add_argument("--latency-ms", type=float, default=30, help="emulator latency per request (default 30)")
    parser.add_argument("--parallelism", default="2-4", help="apply --parallelism range, e.g. 2-4 (default)")
    parser.add_argument("--seed", type=int, default=6, help="seed of every random choice (default 6)")
    parser.add_argument("--keep-failures", type=Path, default=None,
                        help="copy the project directory of each failed trial (and the emulator's keys) here")
    parser.add_argument("--faults", action="store_true",
                        help=f"also inject faults ({' '.join(FAULTS)}); an apply may then fail on a fault")
    parser.add_argument("--max-applies", type=int, default=None,
                        help="applies allowed after the crash before the plan must be empty (default 2; 5 with "
                             "--faults)")
    parser.add_argument("--quiet", action="store_true", help="no progress line per 25 trials")
    args = parser.parse_args(argv)
    low, _, high = args.parallelism.partition("-")
    config = LaneConfig(n_keys=args.keys, latency_ms=args.latency_ms,
                        parallelism=(int(low), int(high or low)), keep_failures=args.keep_failures,
                        faults=FAULTS if args.faults else (),
                        max_applies=args.max_applies or (5 if args.faults else 2))

    def progress(result: TrialResult, summary: Summary) -> None:
        for v in result.violations:
            print(f"VIOLATION trial {result.number} ({result.kind}, {result.phase}): {v}", file=sys.stderr,
                  flush=True)
        if not args.quiet and summary.trials % 25 == 0:
            print(f"... {summary.trials} trials, {summary.kills} kills, {len(summary.violations)} violations",
                  file=sys.stderr, flush=True)

    summary = run_trials(args.trials, lanes=args.lanes, seed=args.seed, config=config, min_kills=args.min_kills,
                         max_trials=args.trials * 3 // 2, progress=progress)
    print(f"crash bench: seed {args.seed}, {args.lanes} lanes, {args.keys} keys per manifest, "
          f"latency {args.latency_ms:g} ms, parallelism {args.parallelism}"
          + (f", faults {' '.join(FAULTS)}" if args.faults else ""))
    print(summary.report())
    human = sum(r.force_unlocks + r.lock_files_deleted for r in summary.results)
    return 1 if summary.violations or human else 0


if __name__ == "__main__":
    sys.exit(main())
