"""Small exact fixtures for the rollout, analysis and plot tests (no files, no randomness beyond a seed).

- `lattice_network`: a periodic square lattice with diagonals (every node has 6 bonds, some
  across the boundary), perturbed by multiples of 1/64 so that every coordinate is a dyadic
  rational and sums of a few of them are exact in float64.
- `affine_trajectory`: that network compressed affinely, x by Δl per snapshot, y by a chosen
  strain history ε_y(t) (quadratic in t, so the acceleration is not zero), every node kept
  inside the box so that wrapped and unwrapped coordinates agree.
- `ConstantAcceleration` and `save_exported`: an analytic TorchScript model written with the
  metadata of an exported model (docs/formats.md), for the command-line tests.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from lmp_gnn.physics.trajectory import Trajectory
from lmp_gnn.step.metadata import model_metadata, to_strings


def lattice_network(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """positions [n², 2], box [2] = (n, n), bonds [3n², 2], rest_length [3n²] (lengths as built).

    Nodes sit at (i + 1/2 - n/2, j + 1/2 - n/2) plus a perturbation in (-1/8, 1/8) in steps of 1/64,
    so every node is strictly inside the box centred at the origin.
    """
    rng = np.random.default_rng(seed)
    ij = np.array([(i, j) for i in range(n) for j in range(n)])
    pos = ij + 0.5 - n / 2 + rng.integers(-7, 8, size=(n * n, 2)) / 64.0
    index = {tuple(p): k for k, p in enumerate(ij)}
    bonds = []
    for k, (i, j) in enumerate(ij):
        for di, dj in ((1, 0), (0, 1), (1, 1)):
            bonds.append((k, index[((i + di) % n, (j + dj) % n)]))
    bonds = np.array(bonds, dtype=np.int64)
    box = np.array([float(n), float(n)])
    d = pos[bonds[:, 1]] - pos[bonds[:, 0]]
    d -= box * np.round(d / box)
    return pos, box, bonds, np.linalg.norm(d, axis=1)


def affine_strain_y(t: np.ndarray, nu: float, rate: float, curvature: float) -> np.ndarray:
    """ε_y(t) = nu · rate · t + curvature · t² (rate = Δl / Lx(0), the x strain per step)."""
    t = np.asarray(t, dtype=np.float64)
    return nu * rate * t + curvature * t * t


def affine_trajectory(n_snapshots: int = 12, n: int = 6, delta_l: float = 0.004, nu: float = 0.3,
                      curvature: float = 2e-6, seed: int = 0) -> Trajectory:
    """An exact affine compression: r(t) = diag(Lx(t)/Lx(0), Ly(t)/Ly(0)) r(0).

    Lx(t) = Lx(0) - t·Δl; Ly(t) = Ly(0) (1 + ε_y(t)) with `affine_strain_y`. For curvature = 0 the
    box Poisson's ratio is `-ε_y/ε_x = nu` at every t, and so is the paper's estimator.
    """
    pos0, box0, bonds, rest = lattice_network(n, seed)
    t = np.arange(n_snapshots, dtype=np.float64)
    sx = (box0[0] - t * delta_l) / box0[0]
    sy = 1.0 + affine_strain_y(t, nu, delta_l / box0[0], curvature)
    scale = np.stack([sx, sy], axis=1)                       # [T, 2]
    positions = pos0[None, :, :] * scale[:, None, :]          # [T, N, 2]
    box = box0[None, :] * scale
    meta = {"delta_l": delta_l, "axis": "x", "n_nodes": n * n, "n_bonds": len(bonds), "network": "lattice"}
    return Trajectory(positions, box, bonds, rest, meta)


class ConstantAcceleration(torch.nn.Module):
    """a(t) = c for every step: a per-node constant [N, 2] (scriptable; the rollout is a closed form)."""

    def __init__(self, c: torch.Tensor):
        super().__init__()
        self.register_buffer("c", c)

    def forward(self, node_features: torch.Tensor, edge_index: torch.Tensor,
                edge_features: torch.Tensor) -> torch.Tensor:
        return self.c.to(node_features.dtype)


def save_exported(path, module: torch.nn.Module, history: int, delta_l: float, dtype: str = "float64") -> None:
    """Write `module` as an exported model file with the metadata of docs/formats.md."""
    extra = to_strings(model_metadata(history=history, layers=1, delta_l=delta_l, strain_rate=2.5e-6,
                                      timestep=0.05, md_steps_per_step=940.0, dtype=dtype))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
        torch.jit.save(torch.jit.script(module), str(path), _extra_files=extra)
