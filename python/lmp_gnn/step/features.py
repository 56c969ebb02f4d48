"""The feature contract: how a network state becomes the GNN's input graph.

This is the single Python definition, used by training, by the Python rollout and by
the Python bridge; the C++ kernel of `fix gnn/rollout` (csrc/) implements the same rule
and tests/test_feature_parity.py proves the two agree in float64. Change both or neither,
and bump FEATURE_VERSION (it is written into every exported model and checked by the fix).

- Nodes: [v(t), v(t-1), ..., v(t-h+1)] flattened to 2h floats, v(t) = r(t) - r(t-1) in
  distance per snapshot step.
- Edges: every bond in both directions. Edge e = (sender s, receiver r) carries the
  minimum-image vector r_r - r_s (2), its length (1) and the stiffness 1/l_r (1).
  Messages flow sender -> receiver and are summed at the receiver (PyG's
  edge_index[0] = source, edge_index[1] = target).
- Output: per-node acceleration a(t) = r(t+1) - 2 r(t) + r(t-1), distance per step².
"""

from __future__ import annotations

import torch
from torch import Tensor

FEATURE_VERSION = 1
EDGE_DIM = 4


def edge_index_from_bonds(bonds: Tensor) -> Tensor:
    """[M, 2] bonds -> [2, 2M] directed edges (sender, receiver), forward copies first."""
    b = bonds.to(torch.long).t()
    return torch.cat([b, b.flip(0)], dim=1)


def minimum_image(d: Tensor, box: Tensor) -> Tensor:
    """Minimum-image displacement in a periodic box (box broadcastable to d)."""
    return d - box * torch.round(d / box)


def edge_features(positions: Tensor, box: Tensor, edge_index: Tensor, rest_length: Tensor) -> Tensor:
    """Edge features [E, 4] = (dx, dy, |d|, 1/l_r), d = minimum image of r_receiver - r_sender.

    Args:
        positions: [N, 2] node positions (wrapped or unwrapped: only differences matter).
        box: [2] box lengths, or [E, 2] per edge (batched graphs of different boxes).
        edge_index: [2, E] (sender, receiver).
        rest_length: [E] rest length of the bond behind each edge.
    """
    d = positions[edge_index[1]] - positions[edge_index[0]]
    d = minimum_image(d, box)
    length = torch.linalg.vector_norm(d, dim=1, keepdim=True)
    return torch.cat([d, length, (1.0 / rest_length).unsqueeze(1).to(d.dtype)], dim=1)


def node_features(velocities: Tensor) -> Tensor:
    """[h, N, 2] velocity history, newest first -> [N, 2h] node features."""
    h, n, _ = velocities.shape
    return velocities.permute(1, 0, 2).reshape(n, 2 * h)


def velocity_history(positions: Tensor, t: int, history: int) -> Tensor:
    """[h, N, 2] velocities v(t), ..., v(t-h+1) from unwrapped positions [T, N, 2]; needs t >= h."""
    if t < history:
        raise ValueError(f"expected t >= history ({history}) to form {history} velocities, got t = {t}")
    window = positions[t - history: t + 1]          # [h+1, N, 2], oldest first
    return (window[1:] - window[:-1]).flip(0)


def target_acceleration(positions: Tensor, t: int) -> Tensor:
    """[N, 2] a(t) = r(t+1) - 2 r(t) + r(t-1) from unwrapped positions [T, N, 2]."""
    return positions[t + 1] - 2.0 * positions[t] + positions[t - 1]

