"""Does the live error signal of fix gnn/rollout (f_ID[13]) track the true error of a learned state?

    python benchmarks/force_signal.py TEST_DIR [--model MODEL] [--start 5] [--every 40]

The signal is the RMS net bond force per node of a state (`lmp_gnn.step.rules.net_bond_force`:
harmonic bonds of stiffness 1/l_r from the edge features). Here every trajectory of TEST_DIR is
rolled out by MODEL (default the shipped one) from snapshot --start with `lmp_gnn.step.rollout`,
and at every --every-th snapshot the signal of the learned state is set beside its RMS position
error against MD and its |Δν_est|. Printed: the signal's median for MD and learned states and its
Spearman rank correlation with each error.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from lmp_gnn.physics.trajectory import load_trajectory
from lmp_gnn.step import features
from lmp_gnn.step.rollout import load_model, rollout
from lmp_gnn.step.rules import net_bond_force, nu_estimator

SHIPPED = Path(__file__).resolve().parents[1] / "python" / "lmp_gnn" / "data" / "demo_model.pt"


def force_rms(positions: np.ndarray, box: np.ndarray, edge_index: torch.Tensor, rest: torch.Tensor) -> float:
    """RMS over nodes of the net bond force of one state."""
    ef = features.edge_features(torch.as_tensor(positions), torch.as_tensor(box), edge_index, rest)
    force = net_bond_force(ef, edge_index, len(positions))
    return float(torch.sqrt((force**2).sum(1).mean()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="directory of trajectory files")
    p.add_argument("--model", default=str(SHIPPED), help="exported model (default: the shipped one)")
    p.add_argument("--start", type=int, default=5, help="last true snapshot of each rollout")
    p.add_argument("--every", type=int, default=40, help="score every k-th learned snapshot")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model)
    signal, signal_md, position_error, nu_error = [], [], [], []
    for path in sorted(glob.glob(str(Path(args.data) / "*.npz"))):
        traj = load_trajectory(path)
        n_steps = traj.n_snapshots - 1 - args.start
        res = rollout(model.module, traj, args.start, n_steps, model.history, model.delta_l, model.dtype)
        edge_index = features.edge_index_from_bonds(torch.as_tensor(traj.bonds))
        rest = torch.as_tensor(np.concatenate([traj.rest_length, traj.rest_length]))
        for t in range(args.start + args.every, traj.n_snapshots, args.every):
            signal.append(force_rms(res.positions[t], res.box[t], edge_index, rest))
            signal_md.append(force_rms(traj.positions[t], traj.box[t], edge_index, rest))
            position_error.append(float(np.sqrt(((res.positions[t] - traj.positions[t]) ** 2).mean())))
            nu_learned = nu_estimator(traj.positions[0], res.positions[t], traj.box[0], res.box[t])
            nu_md = nu_estimator(traj.positions[0], traj.positions[t], traj.box[0], traj.box[t])
            nu_error.append(abs(nu_learned - nu_md))
    print(
        f"{len(signal)} learned states: signal median {np.median(signal):.2e} (MD at the same snapshots "
        f"{np.median(signal_md):.2e})"
    )
    print(
        f"Spearman rank correlation of the signal with the RMS position error "
        f"{spearmanr(signal, position_error)[0]:.3f}, with |Δν_est| {spearmanr(signal, nu_error)[0]:.3f}"
    )


if __name__ == "__main__":
    main()
