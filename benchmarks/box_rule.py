"""How well does the box rule's free axis follow the barostat? The rule applied to the TRUE motion.

    python benchmarks/box_rule.py "data/dataset2/trajectories/net_0*[13579].npz" [--networks 20] [--start 10]

A learned rollout has no barostat: the free box length follows the box rule (docs/formats.md).
Here each rule is driven by the true displacements of MD trajectories, from the true box at
snapshot `--start`, so any difference from the true box is the rule's own error, the floor under
every rollout's box ν (learned or baseline). Rules:

- affine fit of the free axis: eps = Σ u_y y / Σ y² per step (the box rule before the ratio);
- ratio (the box rule of lmp_gnn.step.rollout and fix gnn/rollout, `rules.free_strain_from_fits`):
  the same fit on both axes, the free strain = driven box strain ×
  fit_y / fit_x (what the paper's ν_est does in one shot: position-based strains on both axes, so
  a bias common to both cancels);
- zero stress (a check of the truth, not a rule): the y length at which the harmonic bonds
  (K = 1/l_r) of the TRUE positions carry no y stress, solved by Newton at each snapshot.

Printed: mean |ν_rule − ν_box| and R² over the networks at start + 20, start + 100 and the last
snapshot, ν = -ε_y/ε_x from snapshot 0.
"""

from __future__ import annotations

import argparse
import glob

import numpy as np
import torch

from lmp_gnn.evaluation.analysis import r2_score
from lmp_gnn.physics.trajectory import load_trajectory
from lmp_gnn.step.rules import free_axis_strain, free_strain_from_fits


def zero_stress_length(pos: np.ndarray, box: np.ndarray, bonds: np.ndarray, rest: np.ndarray) -> float:
    """y length at which Σ_b (1/l_r)(l - l_r)/l d_y² = 0, positions (unwrapped) held fixed."""
    raw = pos[bonds[:, 1]] - pos[bonds[:, 0]]
    n = -np.round(raw / box)
    dx = raw[:, 0] + n[:, 0] * box[0]
    L = float(box[1])
    for _ in range(50):
        dy = raw[:, 1] + n[:, 1] * L
        length = np.sqrt(dx * dx + dy * dy)
        t = 1.0 / rest - 1.0 / length
        g = (t * dy * dy).sum()
        dg = (n[:, 1] * dy * (dy * dy / length ** 3 + 2.0 * t)).sum()
        step = g / dg
        L -= step
        if abs(step) <= 1e-13 * L:
            return L
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pattern", help="glob of trajectory files")
    p.add_argument("--networks", type=int, default=20)
    p.add_argument("--start", type=int, default=10, help="snapshot the rules start from (true box there)")
    args = p.parse_args()
    files = sorted(glob.glob(args.pattern))[: args.networks]
    if not files:
        raise SystemExit(f"no trajectory files match {args.pattern}")
    rules = ("affine fit of the free axis", "ratio (the box rule)", "zero stress of the true positions")
    points = ("start+20", "start+100", "last")
    table = {rule: {pt: [] for pt in points} for rule in rules}
    for f in files:
        tr = load_trajectory(f)
        r, box = tr.positions, tr.box
        last = len(r) - 1
        ly = {rules[0]: [box[args.start, 1]], rules[1]: [box[args.start, 1]]}
        for t in range(args.start, last):
            u = torch.from_numpy(r[t + 1] - r[t])
            pos = torch.from_numpy(r[t])
            for rule in rules[:2]:
                fy = float(free_axis_strain(pos, u, 1))
                if rule == rules[1]:
                    fy = free_strain_from_fits(fy, float(free_axis_strain(pos, u, 0)), box[t + 1, 0] / box[t, 0] - 1.0)
                ly[rule].append(ly[rule][-1] * (1.0 + fy))

        def nu(length: float, t: int) -> float:
            return -(length / box[0, 1] - 1.0) / (box[t, 0] / box[0, 0] - 1.0)

        for pt, t in zip(points, (args.start + 20, args.start + 100, last), strict=True):
            if t > last:
                continue
            truth = nu(box[t, 1], t)
            for rule in rules[:2]:
                table[rule][pt].append((truth, nu(ly[rule][t - args.start], t)))
            table[rules[2]][pt].append((truth, nu(zero_stress_length(r[t], box[t], tr.bonds, tr.rest_length), t)))
    print(f"{len(files)} trajectories ({args.pattern}), rules started at snapshot {args.start}")
    print(f"{'rule':<36}" + "".join(f"{pt + ': |Δν| / R²':>26}" for pt in points))
    for rule in rules:
        cells = []
        for pt in points:
            v = np.array(table[rule][pt])
            cell = f"{np.abs(v[:, 1] - v[:, 0]).mean():.4f} / {r2_score(v[:, 0], v[:, 1]):7.3f}" if len(v) else "-"
            cells.append(cell)
        print(f"{rule:<36}" + "".join(f"{c:>26}" for c in cells))


if __name__ == "__main__":
    main()
