"""Two workspaces, one org, the same key names: dropped create replies and kill -9, counting the keys
of the other workspace that recovery revoked (must be 0).

    python bench/two_workspaces.py --rounds 300

Prints runs, kills, dropped replies, keys revoked of each workspace's own and of the other (after
lost replies: must be 0; after a kill -9 that cut a create off: the residual risk docs/recovery.md
describes), the live keys left unattributed (reported with their `keyform import` command instead
of revoked) and the force-unlocks run; exits 1 on any violation. See `harness/workspaces.py`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness.workspaces import run_workspace_trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="runs of keyform (default 300)")
    parser.add_argument("--keys", type=int, default=6, help="keys per manifest (a third TextQL; default 6)")
    parser.add_argument("--drop-rate", type=float, default=0.25, help="share of create replies dropped")
    parser.add_argument("--kill-rate", type=float, default=0.5, help="share of applies killed with SIGKILL")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="keyform-2ws-") as tmp:
        summary = run_workspace_trials(args.rounds, seed=args.seed, workdir=Path(tmp) / "trials", n_keys=args.keys,
                                       drop_rate=args.drop_rate, kill_rate=args.kill_rate)
    print(summary.report())
    return 1 if summary.violations or summary.other_revoked else 0


if __name__ == "__main__":
    sys.exit(main())
