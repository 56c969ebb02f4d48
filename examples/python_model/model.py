"""Python models for examples/python_model/in.python_model (fix gnn/rollout, Python backend).

The deck names a factory, `fix ... gnn/rollout python model.py:FACTORY`; the factory returns
(model, metadata) as docs/python_bridge.md describes, and the model is called once per learned
step with the graph snapshot:

    model(node_features [N, 2h], edge_index [2, E] int64, edge_features [E, 4]) -> [N, 2]

Factories:
    damped_springs  a hand-written rule in numpy (no torch involved):
                    a_r = k Σ_{edges s->r} -(|d| - l_r) d/|d| - γ v_r(t)
    small_gnn       an un-exported PyTorch Geometric model (lmp_gnn.model.GNNSimulator, eager),
                    untrained, normalisers set so that it takes small steps: it shows the
                    mechanics, not physics. For a trained one, return
                    (model_from_checkpoint(ckpt), export_metadata(ckpt, "float32")) from
                    lmp_gnn.export, with ckpt = load_checkpoint("checkpoint.pt").

Run as a script (the deck does it through `shell`), it writes net.data, a 16 x 16 perturbed
triangular network, unless it exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
METADATA = {"history": 1, "layers": 1, "delta_l": 0.002, "md_steps_per_step": 900}
K, GAMMA = 0.05, 0.3


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

    return rule, dict(METADATA, arrays="numpy")


def small_gnn():
    """An untrained GNNSimulator (h = 2, k = 1, width 32), run eagerly in float64."""
    import torch

    from lmp_gnn.model import GNNSimulator, ModelConfig

    torch.manual_seed(0)
    model = GNNSimulator(ModelConfig(history=2, layers=1, latent=32, hidden=32)).double().eval()
    model.node_norm.std.fill_(1e-3)       # velocities ~1e-3 per step
    model.target_norm.std.fill_(1e-5)     # accelerations ~1e-5 per step²
    return model, dict(METADATA, history=2)


def lattice(n: int = 16, seed: int = 7):
    from lmp_gnn.network import Network

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


if __name__ == "__main__":
    data = HERE / "net.data"
    if not data.exists():
        lattice().write_lammps_data(data, title="examples/python_model: 16 x 16 triangular network")
    print(f"model.py: {data.name} ready", file=sys.stderr)
