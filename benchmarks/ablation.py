"""The paper's ablations: history h ∈ {1, 2, 3} and layers k ∈ {1, 2, 3} at a fixed training budget.

    python benchmarks/ablation.py --train DIR --test DIR -o runs/ablation [--minutes 8] [--configs h1k1 h2k1 ...]

For each configuration: `lmp-gnn train` (same data, seed, learning-rate schedule and wall-time
budget), `lmp-gnn export`, `lmp-gnn evaluate` on the test trajectories; then one table of the
one-step and 100-step position MSE, learned beside the zero-acceleration baseline, and ν at 100
steps. Re-running skips configurations already evaluated.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

CONFIGS = {"h1k1": (1, 1), "h2k1": (2, 1), "h3k1": (3, 1), "h3k2": (3, 2), "h3k3": (3, 3)}


def lmp_gnn(*argv: str, check: bool = True) -> int:
    return subprocess.run([sys.executable, "-m", "lmp_gnn.cli", *argv], check=check).returncode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-networks", type=int, default=20)
    p.add_argument("--noise-std", type=float, default=3e-7)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = p.parse_args()
    rows = []
    for name in args.configs:
        h, k = CONFIGS[name]
        run = args.out / name
        results = run / "eval" / "results.json"
        if not results.exists():
            lmp_gnn("train", "--data", args.train, "-o", str(run), "--history", str(h), "--layers", str(k),
                    "--steps", "1000000", "--lr", "1e-3", "--lr-final", "1e-5", "--time-limit", str(args.minutes),
                    "--threads", str(args.threads), "--noise-std", str(args.noise_std), "--no-progress",
                    "--set", "train.val_every=100000")
            lmp_gnn("export", str(run / "last.pt"), "-o", str(run / "model.pt"))
            # exit 1: every learned rollout diverged; results.json then lists the failures only
            lmp_gnn("evaluate", str(run / "model.pt"), "--data", args.test, "-o", str(run / "eval"),
                    "--max-networks", str(args.max_networks), "--plot-networks", "0", "--mse-steps", "1", "100",
                    "--nu-steps", "100", "--threads", str(args.threads), check=False)
        rows.append((name, json.loads(results.read_text())))
    print("\n| config | MSE@1 learned | MSE@1 baseline | MSE@100 learned | MSE@100 baseline "
          "| ν_box R² @100 learned | baseline |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, res in rows:
        if "aggregate" not in res:
            print(f"| {name} | every learned rollout diverged ({len(res['failed'])} of {len(res['failed'])}) "
                  "| | | | | |")
            continue
        agg = res["aggregate"]
        m, nu = agg["mse"], agg["nu"]["steps_100"]["nu_box"]
        print(f"| {name} | {m['learned']['1']['mean']:.3g} | {m['baseline']['1']['mean']:.3g} | "
              f"{m['learned']['100']['mean']:.3g} | {m['baseline']['100']['mean']:.3g} | "
              f"{nu['learned']['r2']:.3f} | {nu['baseline']['r2']:.3f} |")


if __name__ == "__main__":
    main()
