"""Inputs of examples/leap/in.leap: a small network and a tiny hand-written TorchScript model.

    net.data    a 16 x 16 perturbed triangular-lattice network (256 nodes, periodic, harmonic
                bonds with rest lengths spread by ±5 %), LAMMPS data file via lmp_gnn.physics.network
    springs.pt  a "learned simulator" written by hand: damped harmonic springs,
                a_r = k Σ_{s->r} -(|d| - l_r) d/|d| - γ v_r(t), exported with full lmp-gnn
                metadata (docs/formats.md) so that fix gnn/rollout accepts it

A trained model from `lmp-gnn export` is used the same way. Run by in.leap through `shell`;
does nothing when both files exist.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from lmp_gnn.physics.generate import triangular_network
from lmp_gnn.step.metadata import model_metadata, to_strings

HERE = Path(__file__).resolve().parent
# the model's metadata (lmp_gnn.step.metadata.model_metadata arguments) and its extra files: "trained" on
# this network (box_length = Lx = 16), where Δl = 0.002 at strain rate 2.5e-6 and dt 0.05 takes
# 0.002 / (2.5e-6 × 0.05 × 16) = 1000 MD steps, so that the decks pass fix gnn/rollout's start checks
SPRINGS = dict(history=1, layers=1, delta_l=0.002, strain_rate=2.5e-6, timestep=0.05, md_steps_per_step=1000.0,
               dtype="float64", box_length=16.0)
METADATA = to_strings(model_metadata(**SPRINGS))


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


def main() -> None:
    data, model = HERE / "net.data", HERE / "springs.pt"
    if not data.exists():
        triangular_network(16, 16, seed=7).write_lammps_data(
            data, title="examples/leap: 16 x 16 triangular network")
    if not model.exists():
        torch.jit.save(torch.jit.script(DampedSprings()), str(model),
                       _extra_files={k: v.encode() for k, v in METADATA.items()})
    print(f"make_inputs: {data.name} and {model.name} ready", file=sys.stderr)


if __name__ == "__main__":
    main()
