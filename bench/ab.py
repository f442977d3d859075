"""A/B of two keyform source trees on the CPU-per-key figures, interleaved so both see the same load.

    git archive BASE_COMMIT | tar -x -C /tmp/keyform-base
    python bench/ab.py /tmp/keyform-base/src [--rounds 3]

"base" runs the given source tree (on PYTHONPATH, ahead of this checkout), "new" this checkout.
One emulator and one 10,000-key workspace (set up by one apply of this checkout); each round runs
the no-change plan with base, with new, with new and the manifest cache off (KEYFORM_NO_CACHE=1),
and the parse floor; then each round applies 1,000 creates at 50 ms with base and with new, each
into a fresh project. Prints wall and CPU per run and the plan's CPU as a ratio to the floor.
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import sys
import tempfile
from pathlib import Path

from keyform.emulator import Emulator, EmulatorConfig
from keyform.emulator.client import EmulatorControl
from measure import keyform_command, run  # bench/ is on sys.path
from workload import Workload, bench_env, write_project


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base_src", type=Path, help="the base tree's src directory (holding keyform/)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keys", type=int, default=10_000, help="no-change plan size")
    ap.add_argument("--creates", type=int, default=1_000, help="apply size")
    args = ap.parse_args(argv)
    # both trees byte-compiled: with PYTHONDONTWRITEBYTECODE set, an uncompiled tree pays its
    # modules' compilation in every run (~0.08 s for an apply: 0.08 ms per create at 1,000)
    compileall.compile_dir(str(args.base_src / "keyform"), quiet=1)
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "src" / "keyform"), quiet=1)
    kf = keyform_command()
    with tempfile.TemporaryDirectory(prefix="keyform-ab-") as tmp, \
            Emulator(EmulatorConfig(host="127.0.0.1", port=0)) as emu:
        work = Path(tmp)
        ctl = EmulatorControl(emu.url)
        env = {**bench_env(), "KEYFORM_CACHE_DIR": str(work / "cache")}
        envs = {"base": {**env, "PYTHONPATH": str(args.base_src.resolve())}, "new": env,
                "new-cold": {**env, "KEYFORM_NO_CACHE": "1"}}
        ctl.latency(0)
        root = work / "plan"
        root.mkdir()
        w = Workload.mixed(args.keys)
        mdir = write_project(root, emu.url, w)
        run([*kf, "apply", "-f", str(mdir), "--auto-approve", "--parallelism", "32"], cwd=root, env=env).check(0)
        ctl.latency(20)
        plans: dict[str, list[tuple[float, float]]] = {name: [] for name in [*envs, "floor"]}
        for _ in range(args.rounds):
            for name, e in envs.items():
                r = run([*kf, "plan", "-f", str(mdir), "--detailed-exitcode"], cwd=root, env=e).check(0)
                plans[name].append((r.wall, r.cpu))
            floor = json.loads(run([sys.executable, str(Path(__file__).with_name("parsefloor.py")), str(mdir),
                                    str(root / "keyform.state.json"), emu.url, str(w.org_count)],
                                   cwd=root, env=env).check(0).stdout)
            plans["floor"].append((floor["wall"], floor["cpu"]))
        for name, runs in plans.items():
            print(f"plan {name:9s} wall {' '.join(f'{a:.2f}' for a, _ in runs)} s   CPU "
                  f"{' '.join(f'{b:.3f}' for _, b in runs)} s (median {statistics.median(b for _, b in runs):.3f})")
        for name in envs:
            print(f"  {name}: CPU ÷ floor per round: "
                  + " ".join(f"{c / f:.2f}" for (_, c), (_, f) in zip(plans[name], plans["floor"])))
        applies: dict[str, list[tuple[float, float]]] = {"base": [], "new": []}
        for i in range(args.rounds):
            for name in applies:
                ctl.reset()
                ctl.latency(50)
                project = work / f"apply-{name}-{i}"
                project.mkdir()
                m = write_project(project, emu.url, Workload(questra=args.creates, textql=0, orgs=10,
                                                             sink_per_org=False))
                r = run([*kf, "apply", "-f", str(m), "--auto-approve", "--parallelism", "16"],
                        cwd=project, env=envs[name]).check(0)
                applies[name].append((r.wall, r.cpu))
        for name, runs in applies.items():
            print(f"apply {name:4s} wall {' '.join(f'{a:.2f}' for a, _ in runs)} s   CPU per create "
                  f"{' '.join(f'{b / args.creates * 1000:.2f}' for _, b in runs)} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
