"""Where a learned rollout's error growth comes from: the model's own velocities or its positions.

    python benchmarks/rollout_feedback.py MODEL.pt "data/dataset2/trajectories/net_0*[13579].npz" [--networks 10]

Three rollouts of the same exported model from snapshot --start on each network:

- free: the learned rollout (lmp_gnn.step.rules.advance; edge features from its own positions, box
  from the truth, so the box rule is out of the picture);
- true positions: edge features from the TRUE positions and box at every step, node features
  (the velocity history) from the rollout's own velocities;
- true velocities: node features from the true velocity history, edge features from the rollout.

and, for scale, the zero-acceleration baseline from the same start. If "true positions" grows as
fast as "free", the growth is in the velocity channel: the model's velocity errors feed back into
its next accelerations. Printed: median position MSE over networks
after 20, 60 and 100 steps for each, and the growth per step of the error amplitude, exp(slope / 2)
of a straight-line fit to log(median MSE) over steps 20..80 (a power law also has a slope there:
the baseline's error grows polynomially, so compare against its row).
"""

from __future__ import annotations

import argparse
import glob

import numpy as np
import torch

from lmp_gnn.physics.trajectory import load_trajectory
from lmp_gnn.step import features
from lmp_gnn.step.rollout import load_model
from lmp_gnn.step.rules import advance

MODES = ("free", "true positions", "true velocities", "baseline")


def run(model, traj, start: int, steps: int, mode: str) -> np.ndarray:
    """[steps] position MSE against the truth of one rollout in `mode`."""
    pos = torch.as_tensor(traj.positions, dtype=torch.float64)
    box = torch.as_tensor(traj.box, dtype=torch.float64)
    ei = features.edge_index_from_bonds(torch.as_tensor(traj.bonds))
    rest = torch.as_tensor(traj.rest_length, dtype=torch.float64)
    rest = torch.cat([rest, rest])
    velocities = features.velocity_history(pos, start, model.history).clone()
    r = pos[start].clone()
    mse = np.full(steps, np.inf)
    with torch.no_grad():
        for k in range(steps):
            t = start + k
            v_in = features.velocity_history(pos, t, model.history) if mode == "true velocities" else velocities
            r_in = pos[t] if mode == "true positions" else r
            x = features.node_features(v_in).to(model.dtype)
            e = features.edge_features(r_in, box[t], ei, rest).to(model.dtype)
            a = torch.zeros_like(r) if mode == "baseline" else model.module(x, ei, e).to(torch.float64)
            if not torch.isfinite(a).all():
                break
            if mode == "true velocities":
                velocities = v_in
            r, velocities = advance(r, velocities, a)
            mse[k] = float(((r - pos[t + 1]) ** 2).mean())
    return mse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="exported model (lmp-gnn export)")
    p.add_argument("pattern", help="glob of trajectory files")
    p.add_argument("--networks", type=int, default=10)
    p.add_argument("--start", type=int, default=5, help="last true snapshot (as lmp-gnn evaluate: h + 2)")
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model)
    files = sorted(glob.glob(args.pattern))[: args.networks]
    if not files:
        raise SystemExit(f"no trajectory files match {args.pattern!r}")
    print(f"{args.model}: {len(files)} networks, {args.steps} learned steps from snapshot {args.start}")
    print(f"{'rollout':<16} {'MSE@20':>9} {'MSE@60':>9} {'MSE@100':>9}  amplitude growth per step")
    for mode in MODES:
        curves = np.array([run(model, load_trajectory(f), args.start, args.steps, mode) for f in files])
        med = np.median(curves, axis=0)
        k = np.arange(20, min(80, args.steps))
        ok = np.isfinite(med[k - 1]) & (med[k - 1] > 0)
        slope = np.polyfit(k[ok], np.log(med[k - 1][ok]), 1)[0] if ok.sum() > 2 else float("nan")
        at = [f"{med[s - 1]:9.2e}" if s <= args.steps else f"{'-':>9}" for s in (20, 60, 100)]
        print(f"{mode:<16} {' '.join(at)}  {np.exp(slope / 2):.3f}")


if __name__ == "__main__":
    main()
