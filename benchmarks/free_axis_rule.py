"""How much of the ν_est error is the free axis's homogeneous strain? Three rules for the free axis.

    python benchmarks/free_axis_rule.py MODEL TEST_DIR [--strain 0.045 0.049]

MD keeps the free axis at zero stress with `fix press/berendsen ... dilate all`: the box and every
node's y scale together. A learned rollout (lmp_gnn.step.rollout) has the box rule instead: the free
length follows the learned motion. Here the same rollouts (learned MODEL and the zero-acceleration
baseline, from snapshot h + 2 as `lmp-gnn evaluate`) are run with, after every learned step,
- "box rule": nothing more (what `lmp_gnn.step.rollout` and the fix do);
- "barostat": y of all nodes and the free box length scaled by the s at which the harmonic bonds
  (K = 1/l_r, as `benchmarks/box_rule.py`) carry no y stress;
- "oracle": y of all nodes moved by (ε_MD - ε) y and the free box length scaled by 1 + ε_MD, with ε
  the step's fitted affine strain of the free axis (`rules.free_axis_strain`, the box rule) and
  ε_MD the same fit to MD's step: the homogeneous strain of the free axis taken from MD, the rest
  of the motion learned. Not a simulator (it reads the answer); it bounds what a perfect
  prediction of that one global number per step would give.
The change enters the newest velocity, as MD's dilation does. Printed: mean |Δν_est| and R² at
`--strain` against the truth over the networks, with and without the runaway ones (position MSE
> 1 at any point), and the median.
"""

from __future__ import annotations

import argparse
import glob

import numpy as np
import torch
from tqdm import tqdm

from lmp_gnn.commands.rollout import load_spec
from lmp_gnn.evaluation.analysis import r2_score, snapshot_at_strain
from lmp_gnn.physics.trajectory import load_trajectory
from lmp_gnn.step import features, rules
from lmp_gnn.step.rollout import rollout
from lmp_gnn.step.rules import FREE_AXIS, nu_estimator, zero_acceleration_model


def zero_stress_dilation(r: torch.Tensor, box: torch.Tensor, bonds: torch.Tensor, rest: torch.Tensor) -> float:
    """s > 0 with Σ_b (1/l_r - 1/l_b(s)) d_y² = 0 when y of nodes and box scale by s (monotone in s)."""
    d = features.minimum_image(r[bonds[:, 1]] - r[bonds[:, 0]], box)
    dx2, dy2 = d[:, 0] ** 2, d[:, 1] ** 2
    s = 1.0
    for _ in range(50):
        length = torch.sqrt(dx2 + s * s * dy2)
        step = float(((1.0 / rest - 1.0 / length) * dy2).sum() / (s * dy2 * dy2 / length ** 3).sum())
        s_new = min(max(s - step, 0.5 * s), 1.5 * s)     # safeguarded Newton
        if abs(s_new - s) <= 1e-14 * s:
            return s_new
        s = s_new
    return s


def roll(model, traj, start: int, history: int, delta_l: float, dtype: torch.dtype, rule: str):
    """Positions and box lengths of a rollout to the trajectory's end: `lmp_gnn.step.rollout.rollout` one
    learned step at a time from the last h + 1 snapshots, `rule`'s change (if any) after each step.
    The velocities it reads are differences of those snapshots, so the change enters v(t+1)."""
    positions, box = list(traj.positions[: start + 1]), list(traj.box[: start + 1])
    bonds, rest = torch.from_numpy(traj.bonds).long(), torch.from_numpy(traj.rest_length)
    for _ in range(len(traj.positions) - 1 - start):
        last = {"positions": np.stack(positions[-history - 1:]), "box": np.stack(box[-history - 1:]),
                "bonds": traj.bonds, "rest_length": traj.rest_length}
        res = rollout(model, last, history, 1, history, delta_l, dtype, stop_on_nonfinite=True)
        if res.diverged_at is not None:       # non-finite accelerations: the rest is NaN (a runaway)
            positions.append(np.full_like(positions[-1], np.nan))
            box.append(np.full_like(box[-1], np.nan))
            continue
        r, L = torch.from_numpy(res.positions[-1]), torch.from_numpy(res.box[-1])
        if rule == "barostat":
            s = zero_stress_dilation(r, L, bonds, rest)
            r[:, FREE_AXIS] *= s
            L[FREE_AXIS] *= s
        elif rule == "oracle":
            t = len(positions) - 1
            r0, L0 = torch.from_numpy(positions[-1]), torch.from_numpy(box[-1])
            true0, true1 = torch.from_numpy(traj.positions[t]), torch.from_numpy(traj.positions[t + 1])
            eps = rules.free_axis_strain(r0, r - r0, FREE_AXIS)
            eps_md = rules.free_axis_strain(true0, true1 - true0, FREE_AXIS)
            r[:, FREE_AXIS] += (eps_md - eps) * r0[:, FREE_AXIS]      # unwrapped, as the fit measures it
            L[FREE_AXIS] = L0[FREE_AXIS] * (1.0 + eps_md)
        positions.append(r.numpy())
        box.append(L.numpy())
    return np.stack(positions), np.stack(box)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="exported model (.pt) or checkpoint")
    p.add_argument("test_dir", help="directory of held-out trajectory files")
    p.add_argument("--strain", type=float, nargs="+", default=[0.045, 0.049])
    args = p.parse_args()
    torch.set_num_threads(1)
    spec = load_spec(args.model)
    files = sorted(glob.glob(f"{args.test_dir}/*.npz"))
    if not files:
        raise SystemExit(f"no trajectory files in {args.test_dir}")
    runs = [(who, rule) for who in ("learned", "baseline") for rule in ("box rule", "barostat", "oracle")]
    truth = {s: [] for s in args.strain}
    nu = {(k, s): [] for k in runs for s in args.strain}
    runaway = {k: [] for k in runs}
    for f in tqdm(files, desc="networks", unit="net"):
        traj = load_trajectory(f)
        snap = {s: snapshot_at_strain(traj.box, s) for s in args.strain}
        for s, t in snap.items():
            truth[s].append(nu_estimator(traj.positions[0], traj.positions[t], traj.box[0], traj.box[t]))
        for who, rule in runs:
            model, dtype = (spec.model, spec.dtype) if who == "learned" else (zero_acceleration_model, torch.float64)
            r, L = roll(model, traj, spec.history + 2, spec.history, spec.delta_l, dtype, rule)
            with np.errstate(all="ignore"):
                mse = ((r - traj.positions) ** 2).sum(axis=2).mean(axis=1)
                for s, t in snap.items():
                    nu[(who, rule), s].append(nu_estimator(r[0], r[t], L[0], L[t]))
            runaway[who, rule].append(not np.all(mse <= 1.0))
    for s in args.strain:
        print(f"{len(files)} networks ({args.test_dir}), ν_est at {s:g} strain from snapshot {spec.history + 2}")
        ref = np.array(truth[s])
        for who, rule in runs:
            pred, bad = np.array(nu[(who, rule), s]), np.array(runaway[who, rule])
            ok = ~bad & np.isfinite(pred)
            err = np.abs(pred - ref)
            print(f"{who:>8}, {rule:<8}: all {err.mean():.4f} / R² {r2_score(ref, pred):8.3f};  "
                  f"without {bad.sum()} runaway: {err[ok].mean():.4f} / R² {r2_score(ref[ok], pred[ok]):.3f} "
                  f"(median {np.median(err[ok]):.4f})")


if __name__ == "__main__":
    main()
