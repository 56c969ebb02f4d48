"""A second baseline: extrapolating the velocity history, a(t) = c (v(t) - v(t-1)), beside a ≡ 0.

    python benchmarks/history_extrapolation.py "data/dataset2/trajectories/net_0*[13579].npz" \\
        [--networks 20] [--c 1.0 0.9]

Quasi-static trajectories are smooth in time: away from snap-through events the acceleration
changes little from one snapshot to the next. The rule a(t) = c (v(t) - v(t-1)) (c = 1: constant
acceleration) needs no training and sees only what an h >= 2 model sees; it runs through
`lmp_gnn.step.rollout` like a learned model, from snapshot --start, beside the zero-acceleration
baseline of the acceptance checks. Printed per c: position MSE after 1, 20 and 100 steps (mean
and median over networks) and ν_est (the paper's estimator, box-rule independent) after 20 and
100 steps and at 4.5 % strain (R² and mean |Δν|).
"""

from __future__ import annotations

import argparse
import glob

from lmp_gnn.evaluation.analysis import aggregate, evaluate_network
from lmp_gnn.physics.trajectory import load_trajectory
from lmp_gnn.step.rollout import rollout, zero_acceleration_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pattern", help="glob of trajectory files")
    p.add_argument("--networks", type=int, default=20)
    p.add_argument("--start", type=int, default=5, help="last true snapshot (as lmp-gnn evaluate: h + 2)")
    p.add_argument("--c", type=float, nargs="+", default=[1.0, 0.9])
    args = p.parse_args()
    trajs = [load_trajectory(f) for f in sorted(glob.glob(args.pattern))[: args.networks]]
    if not trajs:
        raise SystemExit(f"no trajectory files match {args.pattern}")
    base = [rollout(zero_acceleration_model, tr, args.start, len(tr.positions) - 1 - args.start, 2,
                    float(tr.metadata["delta_l"])) for tr in trajs]
    print(f"{len(trajs)} trajectories, rollouts from snapshot {args.start} to the end (~5 % strain)")
    for c in args.c:
        def model(nf, ei, ef, c=c):
            return c * (nf[:, 0:2] - nf[:, 2:4])

        res = []
        for tr, b in zip(trajs, base, strict=True):
            ex = rollout(model, tr, args.start, len(tr.positions) - 1 - args.start, 2, float(tr.metadata["delta_l"]))
            res.append(evaluate_network(tr, ex, b, mse_steps=(1, 20, 100), nu_steps=(20, 100), strains=(0.045,)))
        agg = aggregate(res)
        m = agg["mse"]
        print(f"\nc = {c}: position MSE, extrapolation vs zero acceleration, mean (median)")
        for s in ("1", "20", "100"):
            e, z = m["learned"][s], m["baseline"][s]
            print(f"  after {s:>3} steps: {e['mean']:.3g} ({e['median']:.3g}) vs {z['mean']:.3g} ({z['median']:.3g}): "
                  f"{z['mean'] / e['mean']:.1f}x lower mean")
        for point in ("steps_20", "steps_100", "strain_0.045"):
            st = agg["nu"][point]["nu_est"]
            print(f"  ν_est at {point}: R² {st['learned']['r2']:.3f} / mean |Δν| {st['learned']['mean_abs_error']:.4f} "
                  f"vs {st['baseline']['r2']:.3f} / {st['baseline']['mean_abs_error']:.4f}")


if __name__ == "__main__":
    main()
