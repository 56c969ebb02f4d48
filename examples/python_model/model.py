"""Python models for examples/python_model/in.python_model (fix gnn/rollout, Python backend).

The deck names a factory, `fix ... gnn/rollout python model.py:FACTORY`; the factory returns
(model, metadata) as docs/python_bridge.md describes, and the model is called once per learned
step with the graph snapshot:

    model(node_features [N, 2h], edge_index [2, E] int64, edge_features [E, 4]) -> [N, 2]

Factories:
    damped_springs  a hand-written rule in numpy (no torch involved):
                    a_r = k Σ_{edges s->r} -(|d| - l_r) d/|d| - γ v_r(t)
    small_gnn       an un-exported PyTorch Geometric model (lmp_gnn.learning.model.GNNSimulator, eager),
                    untrained, normalisers set so that it takes small steps: it shows the
                    mechanics, not physics. For a trained one, return
                    (model_from_checkpoint(ckpt), export_metadata(ckpt, "float32")) from
                    lmp_gnn.learning.export, with ckpt = load_checkpoint("checkpoint.pt").

Run as a script (the deck does it through `shell`), it writes net.data, a 16 x 16 perturbed
triangular network, unless it exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from lmp_gnn.step.metadata import model_metadata

HERE = Path(__file__).resolve().parent
K, GAMMA = 0.05, 0.3


def metadata(history: int = 1) -> dict:
    """The metadata the fix reads (lmp_gnn.step.metadata.model_metadata: checked, every key filled)."""
    return model_metadata(history=history, layers=1, delta_l=0.002, md_steps_per_step=900.0)


def damped_springs():
    """The damped-spring rule of examples/leap, written in numpy (metadata arrays = numpy)."""

    def rule(node_features, edge_index, edge_features):
        d = edge_features[:, 0:2]
        length = edge_features[:, 2:3]
        rest = 1.0 / edge_features[:, 3:4]
        msg = -K * (length - rest) * d / length
        a = np.zeros((node_features.shape[0], 2))
        np.add.at(a, edge_index[1], msg)          # sum the messages at the receivers
        return a - GAMMA * node_features[:, 0:2]

    return rule, dict(metadata(), arrays="numpy")


def small_gnn():
    """An untrained GNNSimulator (h = 2, k = 1, width 32), run eagerly in float64."""
    import torch

    from lmp_gnn.learning.model import GNNSimulator, ModelConfig

    torch.manual_seed(0)
    model = GNNSimulator(ModelConfig(history=2, layers=1, latent=32, hidden=32)).double().eval()
    model.node_norm.std.fill_(1e-3)       # velocities ~1e-3 per step
    model.target_norm.std.fill_(1e-5)     # accelerations ~1e-5 per step²
    return model, metadata(history=2)


if __name__ == "__main__":
    from lmp_gnn.physics.generate import triangular_network

    data = HERE / "net.data"
    if not data.exists():
        triangular_network(16, 16, seed=7).write_lammps_data(
            data, title="examples/python_model: 16 x 16 triangular network")
    print(f"model.py: {data.name} ready", file=sys.stderr)
