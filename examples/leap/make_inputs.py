"""Inputs of examples/leap/in.leap: a small network and a tiny hand-written TorchScript model.

    net.data    a 16 x 16 perturbed triangular-lattice network (256 nodes, periodic, harmonic
                bonds with rest lengths spread by ±5 %), LAMMPS data file via lmp_gnn.network
    springs.pt  a "learned simulator" written by hand: damped harmonic springs,
                a_r = k Σ_{s->r} -(|d| - l_r) d/|d| - γ v_r(t), exported with full lmp-gnn
                metadata (docs/formats.md) so that fix gnn/rollout accepts it

A trained model from `lmp-gnn export` is used the same way. Run by in.leap through `shell`;
does nothing when both files exist.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lmp_gnn.network import Network

HERE = Path(__file__).resolve().parent
METADATA = {
    "lmp_gnn_format": "1", "feature_version": "1", "history": "1", "layers": "1",
    "dimension": "2", "delta_l": "0.002", "strain_rate": "2.5e-06", "timestep": "0.05",
    "md_steps_per_step": "900", "dtype": "float64", "lmp_gnn_version": "0.1.0",
}


class DampedSprings(nn.Module):
    """a_r = k Σ_{edges s->r} -(|d| - l_r) d / |d| - γ v_r(t)   (distance per step²)."""

    def __init__(self, k: float = 0.05, gamma: float = 0.3):
        super().__init__()
        self.register_buffer("coef", torch.tensor([k, gamma], dtype=torch.float64))

    def forward(self, node_features: Tensor, edge_index: Tensor, edge_features: Tensor) -> Tensor:
        d = edge_features[:, 0:2]
        length = edge_features[:, 2:3]
        rest = 1.0 / edge_features[:, 3:4]
        msg = -self.coef[0] * (length - rest) * d / length
        a = torch.zeros(node_features.shape[0], 2, dtype=node_features.dtype)
        a = a.index_add(0, edge_index[1], msg)
        return a - self.coef[1] * node_features[:, 0:2]


def lattice(n: int = 16, seed: int = 7) -> Network:
    rng = np.random.default_rng(seed)
    h = np.sqrt(3.0) / 2.0
    box = np.array([n * 1.0, n * h])
    pos = np.array([[i + 0.5 * (j % 2) + 0.25, (j + 0.5) * h] for j in range(n) for i in range(n)]) - box / 2
    pos += rng.uniform(-0.05, 0.05, pos.shape)
    idx = lambda i, j: (j % n) * n + (i % n)  # noqa: E731
    bonds = []
    for j in range(n):
        for i in range(n):
            bonds += [(idx(i, j), idx(i + 1, j)), (idx(i, j), idx(i, j + 1)),
                      (idx(i, j), idx(i - 1 + 2 * (j % 2), j + 1))]
    net = Network(pos, box, np.array(bonds), np.ones(len(bonds)))
    rest = net.bond_lengths() * (1.0 + rng.uniform(-0.05, 0.05, net.n_bonds))
    return Network(net.positions, box, net.bonds, rest)


def main() -> None:
    data, model = HERE / "net.data", HERE / "springs.pt"
    if not data.exists():
        lattice().write_lammps_data(data, title="examples/leap: 16 x 16 triangular network")
    if not model.exists():
        torch.jit.save(torch.jit.script(DampedSprings()), str(model),
                       _extra_files={k: v.encode() for k, v in METADATA.items()})
    print(f"make_inputs: {data.name} and {model.name} ready", file=sys.stderr)


if __name__ == "__main__":
    main()
