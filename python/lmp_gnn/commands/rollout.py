"""`lmp-gnn rollout MODEL TRAJ... -o DIR`: the Python reference rollout of trajectories.

    lmp-gnn rollout model.pt data/test/*.npz -o rollouts/ [--start 3] [--steps 100] [--baseline]
    lmp-gnn rollout zero data/test/*.npz -o rollouts/ --history 3

For each TRAJ.npz, the learned simulator takes --steps steps (default: to the last snapshot of the
trajectory) from the true snapshots ending at --start (default: h + 2, as `lmp-gnn evaluate`), with the
arithmetic and box rule of `lmp_gnn.step.rollout`. Each result is written to DIR/TRAJ.npz in the
trajectory format (docs/formats.md): snapshots 0..start copied from the truth, then the learned ones,
the box per the box rule, and a `rollout` entry in the metadata. MODEL `zero` is the
zero-acceleration baseline; --baseline also writes it beside a learned rollout (DIR/TRAJ.baseline.npz).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

ZERO = "zero"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="exported TorchScript model (`lmp-gnn export`), or `zero` for the "
                                      "zero-acceleration baseline r(t+1) = 2r(t) - r(t-1)")
    parser.add_argument("trajectories", nargs="+", type=Path, help="trajectory files (.npz, docs/formats.md)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="directory for the rollout .npz files")
    parser.add_argument("--start", type=int, default=None,
                        help="last true snapshot the rollout starts from (default: h + 2, the first whose "
                             "velocity history is past the start-up transient, as lmp-gnn evaluate; "
                             "docs/protocol.md)")
    parser.add_argument("--steps", type=int, default=None,
                        help="learned steps to take (default: up to the last snapshot of each trajectory)")
    parser.add_argument("--baseline", action="store_true",
                        help="also write the zero-acceleration baseline from the same start (TRAJ.baseline.npz)")
    parser.add_argument("--history", type=int, default=None,
                        help="h for MODEL `zero` (a model file carries its own; default 3)")
    parser.add_argument("--delta-l", type=float, default=None,
                        help="Δl per step for MODEL `zero` (default: the trajectory's metadata)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


class Spec:
    """What a rollout needs from MODEL: callable, h, Δl (None: take the trajectory's), dtype, label."""

    def __init__(self, model, history: int, delta_l: float | None, dtype, label: str, metadata: dict | None = None):
        self.model, self.history, self.delta_l, self.dtype, self.label = model, history, delta_l, dtype, label
        self.metadata = metadata or {}


def load_spec(model: str, history: int | None = None, delta_l: float | None = None) -> Spec:
    """MODEL argument -> Spec (an exported model file, or `zero`)."""
    import torch

    from lmp_gnn.step.rollout import load_model, zero_acceleration_model

    if model == ZERO:
        return Spec(zero_acceleration_model, 3 if history is None else history, delta_l, torch.float64, ZERO)
    loaded = load_model(model)
    if history is not None and history != loaded.history:
        raise ValueError(f"expected --history to match the model's history {loaded.history}, got {history}")
    if delta_l is not None and abs(delta_l - loaded.delta_l) > 1e-12 * abs(loaded.delta_l):
        raise ValueError(f"expected --delta-l to match the model's delta_l {loaded.delta_l}, got {delta_l}")
    return Spec(loaded.module, loaded.history, loaded.delta_l, loaded.dtype, str(model), loaded.metadata)


# how far a trajectory's strain per snapshot may be from the model's strain per learned step
STEP_TOLERANCE = 0.05


def trajectory_delta_l(traj, path: Path, spec: Spec, follow_trajectory: bool = False) -> float:
    """Δl to roll out `traj` with: the trajectory's own, whose strain per snapshot must be the model's
    strain per learned step (within STEP_TOLERANCE).

    The trajectory's Δl is its metadata `delta_l`, else Lx(0) - Lx(1). A learned step is a fixed
    strain (`lmp_gnn.step.rules.step_delta_l`: the model's Δl scaled by Lx(0) over its training
    boxes' length), so a trajectory of a box of another size, recorded at the same strain per
    snapshot, is rolled out with its own, larger Δl; one recorded at another strain per snapshot
    would compare different protocols, so that is refused, unless `follow_trajectory`: then the
    trajectory's own Δl, unchecked (evaluate --box-delta-l trajectory: a model without box_length,
    which steps by its fixed Δl, on larger networks simulated at its training strain per snapshot).
    """
    from lmp_gnn.step.rules import step_delta_l

    own = traj.metadata.get("delta_l")
    if own is None and traj.n_snapshots > 1:
        own = float(traj.box[0, 0] - traj.box[1, 0])
    if spec.delta_l is None or (follow_trajectory and own is not None):
        if own is None:
            raise ValueError(f"{path}: expected metadata 'delta_l' or two snapshots to infer it, got neither; "
                             "pass --delta-l")
        return float(own)
    expected = step_delta_l(spec.delta_l, spec.metadata.get("box_length"), float(traj.box[0, 0]))
    if own is None:
        return expected
    if abs(float(own) - expected) > STEP_TOLERANCE * abs(expected):
        lx0 = float(traj.box[0, 0])
        raise ValueError(f"{path}: expected a strain per snapshot of {expected / lx0:.4g} (the model's step: "
                         f"delta_l {expected:.4g} for this box, Lx(0) = {lx0:.4g}), got a trajectory with "
                         f"delta_l {own} ({float(own) / lx0:.4g})")
    return float(own)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from lmp_gnn.evaluation.analysis import rollout_mse
    from lmp_gnn.physics.trajectory import load_trajectory, save_trajectory
    from lmp_gnn.step.rollout import default_start, rollout, zero_acceleration_model

    try:
        check_options(args)
        spec = load_spec(args.model, args.history, args.delta_l)
    except (ValueError, OSError) as exc:
        print(f"lmp-gnn rollout: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    start = default_start(spec.history) if args.start is None else args.start
    created = not args.output.exists()
    args.output.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in tqdm(args.trajectories, unit="traj", desc="rollout", dynamic_ncols=True):
        try:
            traj = load_trajectory(path)
            delta_l = trajectory_delta_l(traj, path, spec)
            n_steps = traj.n_snapshots - 1 - start if args.steps is None else args.steps
            runs = [(spec.label, spec.model, spec.dtype, args.output / f"{path.stem}.npz")]
            if args.baseline and spec.label != ZERO:
                runs.append((ZERO, zero_acceleration_model, torch.float64, args.output / f"{path.stem}.baseline.npz"))
            for label, model, dtype, out in runs:
                res = rollout(model, traj, start, n_steps, spec.history, delta_l, dtype, progress=True,
                              description=f"{path.stem} ({label})")
                meta = {k: v for k, v in traj.metadata.items() if k != "format_version"}
                meta["rollout"] = {"model": label, "source": str(path),
                                   "model_ms_per_step": float(1e3 * res.model_seconds.mean()) if n_steps else None}
                save_trajectory(out, res.to_trajectory(meta))
                mse = rollout_mse(res, traj)
                tqdm.write(f"{path.name}: {label}: {n_steps} steps from snapshot {start} -> {out}; "
                           f"position MSE at step {len(mse) - 1}: {mse[-1]:.3g}"
                           + (f"; model {1e3 * np.mean(res.model_seconds):.2f} ms/step" if n_steps else ""))
        except (ValueError, OSError, RuntimeError) as exc:
            failures += 1
            message = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
            tqdm.write(f"lmp-gnn rollout: error: {message}", file=sys.stderr)
    if failures == len(args.trajectories) and created:
        shutil.rmtree(args.output, ignore_errors=True)     # nothing was written: no empty folder either
    return 1 if failures else 0


def check_options(args: argparse.Namespace) -> None:
    """Refuse option values that mean nothing, before anything is read or written."""
    from lmp_gnn.step.metadata import MAX_HISTORY, MIN_HISTORY

    if args.delta_l is not None and not args.delta_l > 0:
        raise ValueError(f"--delta-l: expected Δl > 0 (the box shrinks by Δl per step), got {args.delta_l}")
    if args.history is not None and not MIN_HISTORY <= args.history <= MAX_HISTORY:
        raise ValueError(f"--history: expected {MIN_HISTORY}..{MAX_HISTORY} velocities per node, got {args.history}")
    if args.start is not None and args.start < 0:
        raise ValueError(f"--start: expected a snapshot index ≥ 0, got {args.start}")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps: expected ≥ 1 learned steps, got {args.steps}")
    if args.threads < 1:
        raise ValueError(f"--threads: expected ≥ 1, got {args.threads}")
    if args.output.exists() and not args.output.is_dir():
        raise ValueError(f"--output: expected a directory, got the file {args.output}")
    missing = [str(p) for p in args.trajectories if not p.is_file()]
    if missing:
        raise ValueError(f"expected trajectory files, got {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} "
                         f"(no such file)")
