"""How much of a learned rollout's position error is a homogeneous strain of the whole network.

    python benchmarks/strain_error.py MODEL.pt data/dataset2/split/test [--nu-below -0.3] [--networks 6]

For each network (trajectory npz in DIR) whose linear-response ν (metadata `nu_linear`) is below
--nu-below, in file order, the exported model and the zero-acceleration baseline are rolled out
(lmp_gnn.step.rollout, the box rule included) from snapshot --start. Their position error against MD
after 100, 200 and 400 steps is split into its homogeneous-strain part
(`lmp_gnn.learning.train.strain_part`: the least-squares affine fit of the error field, what the Poisson's
ratio estimators read; the loss weight `train.strain_weight` acts on it) and the non-affine rest.
Printed per network and rollout: the MSE of each part, the strain error along y (the free axis),
and ν_est at the last step beside MD's. A strain part that is a large share of the learned error
while the baseline's is mostly non-affine says the model gets the network's overall response
wrong rather than its local motion.

A third line per network ("one-step") feeds the model the true state at every step and integrates
the y-strain of its acceleration errors twice, eps_yy(T) = sum_{t<T} (T - t) A_yy(t) with A_yy(t)
the yy-entry of the affine fit of a_learned(t) - a_MD(t): the strain error its one-step errors
alone would build up, without feeding back. Much smaller than the rollout's eps_yy means the
rollout's strain error is made in the loop (the model's response to its own earlier errors), not
by a bias of its one-step prediction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from lmp_gnn.learning.train import strain_part
from lmp_gnn.physics.poisson import estimator_poisson
from lmp_gnn.physics.trajectory import load_trajectory
from lmp_gnn.step import features
from lmp_gnn.step.rollout import load_model, rollout, zero_acceleration_model

STEPS = (100, 200, 400)


def strain_yy(error: torch.Tensor, positions: torch.Tensor) -> float:
    """ε_yy of the least-squares affine fit error_i ≈ c + (x_i - x̄) A (the fit of `strain_part`)."""
    return float(torch.linalg.lstsq(positions - positions.mean(0), error - error.mean(0)).solution[1, 1])


def split_error(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    """(MSE of the strain part, MSE of the non-affine rest, strain error ε_yy) of pred - true [N, 2]."""
    p, t = torch.as_tensor(pred), torch.as_tensor(true)
    graph = torch.zeros(len(t), dtype=torch.long)
    error = p - t
    error = error - error.mean(0)
    strain = strain_part(error, t, graph)
    return float((strain ** 2).mean()), float(((error - strain) ** 2).mean()), strain_yy(error, t)


@torch.no_grad()
def open_loop_strain(model, traj, start: int, n: int) -> list[tuple[int, float]]:
    """(steps, eps_yy) at STEPS: the twice-integrated y-strain of the one-step acceleration errors
    from true states (module docstring)."""
    pos = torch.as_tensor(traj.positions, dtype=torch.float64)
    box = torch.as_tensor(traj.box, dtype=torch.float64)
    edge_index = features.edge_index_from_bonds(torch.as_tensor(traj.bonds))
    rest = torch.as_tensor(traj.rest_length, dtype=torch.float64).repeat(2)
    a_yy = []
    for t in range(start, start + n):
        nf = features.node_features(features.velocity_history(pos, t, model.history)).to(model.dtype)
        ef = features.edge_features(pos[t], box[t], edge_index, rest).to(model.dtype)
        error = model.module(nf, edge_index, ef).to(torch.float64) - (pos[t + 1] - 2 * pos[t] + pos[t - 1])
        a_yy.append(strain_yy(error, pos[t]))
    a_yy = np.array(a_yy)
    # e(T) = sum_{t<T} (T - t) A(t): r(t+1) = 2 r(t) - r(t-1) + a(t) from zero error, without feedback
    return [(k, float(np.sum((k - np.arange(k)) * a_yy[:k]))) for k in (min(s, n) for s in STEPS)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("data", help="directory of trajectory npz files")
    ap.add_argument("--nu-below", type=float, default=-0.3, help="networks with nu_linear below this")
    ap.add_argument("--networks", type=int, default=6)
    ap.add_argument("--start", type=int, default=5)
    args = ap.parse_args()

    model = load_model(args.model)
    shown = 0
    for path in sorted(Path(args.data).glob("*.npz")):
        traj = load_trajectory(path)
        if not float(traj.metadata.get("nu_linear", np.inf)) < args.nu_below:
            continue
        n = min(max(STEPS), len(traj.positions) - 1 - args.start)
        for label, fn in (("learned", model.module), ("baseline", zero_acceleration_model)):
            r = rollout(fn, traj, args.start, n, model.history, model.delta_l, dtype=model.dtype,
                        stop_on_nonfinite=True)
            parts = []
            for s in STEPS:
                t = args.start + min(s, n)
                if t >= len(r.positions):
                    break
                aff, rest, eps = split_error(r.positions[t], traj.positions[t])
                parts.append(f"{min(s, n)}: strain {aff:.2e} rest {rest:.2e} eps_yy {eps:+.4f}")
            end = len(r.positions) - 1
            print(f"{path.stem} {label:8s} " + " | ".join(parts) +
                  f" | nu_est {estimator_poisson(r, end):+.3f} (MD {estimator_poisson(traj, end):+.3f})", flush=True)
        print(f"{path.stem} one-step " + " | ".join(
            f"{s}: eps_yy {e:+.1e}" for s, e in open_loop_strain(model, traj, args.start, n)), flush=True)
        shown += 1
        if shown >= args.networks:
            break


if __name__ == "__main__":
    main()
