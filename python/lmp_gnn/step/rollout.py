"""The Python reference rollout of a learned simulator (what `fix gnn/rollout` is tested against).

A rollout starts from h+1 true snapshots r(start-h), ..., r(start) and takes n learned steps,
one snapshot each (Δt = 1, LJ distance units, "per step" = per snapshot):

    a(t)   = model(node_features(t), edge_index, edge_features(t))
    r(t+1) = 2 r(t) - r(t-1) + a(t)

The arithmetic, exactly as done here (the C++ fix mirrors it step for step):

State, all float64: positions r [N, 2] (unwrapped), velocity history V [h, N, 2] newest first
(V[k] = v(t-k), v(t) = r(t) - r(t-1)), box lengths (Lx, Ly). Initially V is formed from the true
snapshots (`features.velocity_history`) and the box is the true box at `start`.

For each step t = start, ..., start+n-1:

1. Features in float64 from `lmp_gnn.step.features` (the one definition of the feature contract):
   node features [N, 2h] = `node_features(V)`; edges = `edge_index_from_bonds(bonds)` (forward
   copies first, then reversed); edge features [E, 4] = `edge_features(r, (Lx, Ly), edge_index,
   rest_length repeated for both directions)`. Then, and only then, both are cast to the model
   dtype (`dtype`, e.g. float32 for an exported float32 model); edge_index stays int64.
2. a = model(...) is cast back to float64. It must be [N, 2] and finite.
3. Velocity form of the update (float64, `rules.advance`): v(t+1) = v(t) + a; r(t+1) = r(t) + v(t+1).
   (Mathematically 2 r(t) - r(t-1) + a(t); this order is the one the fix, which keeps
   velocities rather than old positions, can reproduce bit for bit.)
4. THE BOX RULE (docs/formats.md), float64:
   - driven axis x: Lx(t+1) = Lx(t) - Δl (recursively, not Lx(0) - (t+1)Δl);
   - free axis y: u = v(t+1) (the learned displacement r(t+1) - r(t)); the fitted strain of each
     axis, f_x = Σ u_x,i x_i / Σ x_i² and f_y likewise, x_i, y_i the unwrapped coordinates from the
     box centre; eps = k f_y with k = (-Δl / Lx(t)) / f_x when k is in [0.5, 1.5], else f_y
     (`rules.free_strain_from_fits`)
     (`rules.free_axis_strain`, `rules.box_rule`); Ly(t+1) = Ly(t) (1 + eps).
   The box stays centred at the origin; node positions are NOT rescaled with the box (the model
   moves the nodes; the box only follows them so that minimum images stay right).
5. History shift: V = [v(t+1), V[0], ..., V[h-2]].

The zero-acceleration baseline (`zero_acceleration_model`, a ≡ 0) runs through the same code, so
learned and baseline differ only in the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lmp_gnn.physics.trajectory import Trajectory
from lmp_gnn.step import features
from lmp_gnn.step.rules import DRIVEN_AXIS, FREE_AXIS, advance, box_rule, free_axis_strain, free_strain_from_fits

Model = Callable[[Tensor, Tensor, Tensor], Tensor]


# Snapshot 0 is at rest; the deformation's start-up gives a(1) ~100x and a(2) ~4x the quasi-static
# accelerations (docs/protocol.md). A rollout from snapshot h + 2 has only quasi-static velocities in
# its history, like every training window (dataset.quiet_snapshots leaves the start-up out).
STARTUP_SNAPSHOTS = 2


def default_start(history: int) -> int:
    """The last true snapshot a rollout starts from by default (`lmp-gnn rollout` and `evaluate`):
    h + 2, the first whose velocity history is past the start-up transient."""
    return history + STARTUP_SNAPSHOTS


class RolloutError(RuntimeError):
    """A rollout that cannot go on (wrong model output, non-finite accelerations)."""


def zero_acceleration_model(node_features: Tensor, edge_index: Tensor, edge_features: Tensor) -> Tensor:
    """The zero-acceleration baseline a ≡ 0, i.e. r(t+1) = 2 r(t) - r(t-1).

    Shapes: node_features [N, 2h], edge_index [2, E], edge_features [E, 4] -> [N, 2] zeros in the
    dtype of node_features. Scriptable with torch.jit.script.
    """
    return torch.zeros(node_features.shape[0], 2, dtype=node_features.dtype, device=node_features.device)


@dataclass
class RolloutResult:
    """A rollout, indexed by absolute snapshot number.

    Attributes:
        positions: [start+n_steps+1, N, 2] float64 unwrapped positions; rows 0..start are copied
            from the input (truth), rows start+1.. are learned.
        box: [start+n_steps+1, 2] float64 box lengths (Lx, Ly); rows after `start` follow the box rule.
        accelerations: [n_steps, N, 2] float64, row k = a(start+k) as returned by the model.
        start: index of the last true snapshot the rollout started from.
        history: h, velocities per node fed to the model.
        delta_l: Δl, box-length change along x per step.
        dtype: name of the dtype the model was fed ("float32", "float64").
        bonds: [M, 2] int64; rest_length: [M] float64 (the network, for `to_trajectory`).
        model_seconds: [n_steps] wall time of each model call in seconds.
        diverged_at: with `stop_on_nonfinite`, the step whose accelerations were non-finite (the
            result ends just before it); None when the rollout ran to the end.
    """

    positions: np.ndarray
    box: np.ndarray
    accelerations: np.ndarray
    start: int
    history: int
    delta_l: float
    dtype: str
    bonds: np.ndarray
    rest_length: np.ndarray
    model_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    diverged_at: int | None = None

    @property
    def n_steps(self) -> int:
        """Number of learned steps."""
        return self.accelerations.shape[0]

    @property
    def steps(self) -> np.ndarray:
        """[n_steps+1] absolute snapshot indices start, ..., start+n_steps."""
        return np.arange(self.start, self.start + self.n_steps + 1)

    def to_trajectory(self, metadata: Mapping[str, Any] | None = None) -> Trajectory:
        """The rollout as a `Trajectory` (true prefix then learned snapshots), for saving and analysis."""
        meta = dict(metadata or {})
        meta.setdefault("rollout", {})
        meta["rollout"] = {"start": self.start, "n_steps": self.n_steps, "history": self.history,
                           "delta_l": self.delta_l, "dtype": self.dtype, **meta["rollout"]}
        meta["delta_l"] = self.delta_l
        meta["n_nodes"] = int(self.positions.shape[1])
        meta["n_bonds"] = int(len(self.bonds))
        return Trajectory(self.positions, self.box, self.bonds, self.rest_length, meta)


def _get(source: Any, key: str) -> Any:
    if isinstance(source, Mapping) or hasattr(source, "files"):   # dict or an open npz
        if key not in source:
            raise KeyError(f"expected key '{key}' in the rollout input, got keys {sorted(source.keys())}")
        return source[key]
    if not hasattr(source, key):
        raise TypeError(f"expected a Trajectory or a mapping with '{key}', got {type(source).__name__}")
    return getattr(source, key)


def _as_f64(x: Any) -> Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64) if not isinstance(x, Tensor) else x,
                           dtype=torch.float64).detach().cpu()


def model_dtype(model: Model) -> torch.dtype:
    """The dtype of a torch module's first floating-point parameter or buffer; float64 otherwise."""
    if isinstance(model, torch.nn.Module) or hasattr(model, "parameters"):
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return torch.float64


def rollout(model: Model, traj_or_arrays: Any, start: int, n_steps: int, history: int, delta_l: float,
            dtype: torch.dtype | None = torch.float64, *, progress: bool = False,
            description: str = "rollout", stop_on_nonfinite: bool = False) -> RolloutResult:
    """Roll a learned simulator forward from true snapshots (arithmetic in the module docstring).

    Args:
        model: any callable (node_features [N, 2h], edge_index [2, E] int64, edge_features [E, 4])
            -> accelerations [N, 2] in distance per step²: an exported TorchScript module, an eager
            torch module or a plain function. Called under torch.no_grad().
        traj_or_arrays: a `Trajectory`, or a mapping (dict, open npz) with `positions` [T, N, 2]
            (unwrapped), `box` [T, 2], `bonds` [M, 2] and `rest_length` [M].
        start: last true snapshot used (needs start >= history and start < T).
        n_steps: number of learned steps (>= 0); the rollout may run past the end of the input.
        history: h, number of velocities per node the model takes (1..3 in the paper).
        delta_l: Δl, box-length decrease along x per step (the model's metadata).
        dtype: dtype the features are cast to before the model; positions and box stay float64.
            None: the dtype of the model's first floating-point parameter or buffer (a torch module),
            else float64.
        progress: show a tqdm progress bar.
        description: label of the progress bar.
        stop_on_nonfinite: on non-finite accelerations return the steps taken so far (with
            `diverged_at` set) instead of raising RolloutError; evaluation uses this to score a
            diverging rollout up to where it diverged.

    Returns:
        RolloutResult with positions/box for snapshots 0..start+n_steps and the accelerations.
    """
    positions = _as_f64(_get(traj_or_arrays, "positions"))
    box = _as_f64(_get(traj_or_arrays, "box"))
    bonds = torch.as_tensor(np.asarray(_get(traj_or_arrays, "bonds")), dtype=torch.long)
    rest_length = _as_f64(_get(traj_or_arrays, "rest_length"))
    if positions.ndim != 3 or positions.shape[2] != 2:
        raise ValueError(f"expected positions of shape [T, N, 2], got {tuple(positions.shape)}")
    n_snap, n_nodes = positions.shape[0], positions.shape[1]
    if box.shape != (n_snap, 2):
        raise ValueError(f"expected box of shape [{n_snap}, 2], got {tuple(box.shape)}")
    if bonds.ndim != 2 or bonds.shape[1] != 2 or rest_length.shape != (bonds.shape[0],):
        raise ValueError(f"expected bonds [M, 2] and rest_length [M], got {tuple(bonds.shape)} and "
                         f"{tuple(rest_length.shape)}")
    if len(bonds) and (int(bonds.min()) < 0 or int(bonds.max()) >= n_nodes):
        raise ValueError(f"expected bond indices in [0, {n_nodes}), got [{int(bonds.min())}, {int(bonds.max())}]")
    if history < 1:
        raise ValueError(f"expected history >= 1, got {history}")
    if not history <= start < n_snap:
        raise ValueError(f"expected history ({history}) <= start < number of snapshots ({n_snap}), got start = {start}")
    if n_steps < 0:
        raise ValueError(f"expected n_steps >= 0, got {n_steps}")

    if dtype is None:
        dtype = model_dtype(model)
    edge_index = features.edge_index_from_bonds(bonds)              # [2, E], E = 2M
    edge_rest = torch.cat([rest_length, rest_length])               # [E]
    velocities = features.velocity_history(positions, start, history).clone()   # [h, N, 2]
    r = positions[start].clone()                                    # [N, 2]
    L = box[start].clone()                                          # [2]

    out_pos = torch.empty(start + n_steps + 1, n_nodes, 2, dtype=torch.float64)
    out_box = torch.empty(start + n_steps + 1, 2, dtype=torch.float64)
    out_pos[: start + 1] = positions[: start + 1]
    out_box[: start + 1] = box[: start + 1]
    out_acc = torch.empty(n_steps, n_nodes, 2, dtype=torch.float64)
    seconds = np.zeros(n_steps)

    steps = range(n_steps)
    if progress:
        from tqdm import tqdm
        steps = tqdm(steps, desc=description, unit="step", leave=False)
    diverged_at = None
    with torch.no_grad():
        for k in steps:
            x = features.node_features(velocities).to(dtype)                    # [N, 2h]
            e = features.edge_features(r, L, edge_index, edge_rest).to(dtype)   # [E, 4]
            t0 = time.perf_counter()
            a = model(x, edge_index, e)
            seconds[k] = time.perf_counter() - t0
            if not isinstance(a, Tensor) or a.shape != (n_nodes, 2):
                got = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
                raise RolloutError(f"expected model output of shape [{n_nodes}, 2], got {got} at step {start + k}")
            a = a.detach().to(device="cpu", dtype=torch.float64)
            if not torch.isfinite(a).all():
                if not stop_on_nonfinite:
                    raise RolloutError(f"expected finite accelerations, got NaN/inf at step {start + k}")
                diverged_at = start + k
                out_pos, out_box = out_pos[: start + k + 1], out_box[: start + k + 1]
                out_acc, seconds = out_acc[:k], seconds[:k]
                break
            r_new, velocities = advance(r, velocities, a)
            fit_free = free_axis_strain(r, velocities[0], FREE_AXIS)
            fit_driven = free_axis_strain(r, velocities[0], DRIVEN_AXIS)
            eps = free_strain_from_fits(fit_free, fit_driven, -delta_l / float(L[DRIVEN_AXIS]))
            r, L = r_new, box_rule(L, delta_l, eps)
            out_pos[start + k + 1] = r
            out_box[start + k + 1] = L
            out_acc[k] = a
    return RolloutResult(positions=out_pos.numpy(), box=out_box.numpy(), accelerations=out_acc.numpy(),
                         start=int(start), history=int(history), delta_l=float(delta_l),
                         dtype=str(dtype).replace("torch.", ""), bonds=bonds.numpy(),
                         rest_length=rest_length.numpy(), model_seconds=seconds, diverged_at=diverged_at)


@dataclass
class LoadedModel:
    """An exported model with what a rollout needs from its metadata.

    Attributes:
        module: the TorchScript module (callable as in `rollout`).
        history: h; delta_l: Δl per step; dtype: torch dtype of its features and outputs.
        metadata: every metadata key as read (docs/formats.md, "Exported models").
        path: where it was read from.
    """

    module: Model
    history: int
    delta_l: float
    dtype: torch.dtype
    metadata: dict
    path: str = ""


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def load_model(path: str) -> LoadedModel:
    """Read an exported TorchScript model (`lmp-gnn export`) with `lmp_gnn.learning.export.load_exported`.

    Raises `lmp_gnn.learning.export.ExportedModelError` for a file without the metadata of docs/formats.md.
    """
    from lmp_gnn.learning.export import load_exported

    module, metadata = load_exported(path)
    module.eval()
    return LoadedModel(module=module, history=int(metadata["history"]), delta_l=float(metadata["delta_l"]),
                       dtype=_DTYPES[metadata["dtype"]], metadata=dict(metadata), path=str(path))
