"""Type stubs of lmp_gnn._core, the C++ feature kernel of fix gnn/rollout (csrc/gnn_core_module.cpp).

Every function mirrors one of lmp_gnn.features in float64 on numpy arrays; see docs/formats.md.
"""

import numpy as np
from numpy.typing import ArrayLike

FEATURE_VERSION: int
EDGE_DIM: int

def edge_index_from_bonds(bonds: ArrayLike) -> np.ndarray:
    """[M, 2] bonds -> [2, 2M] int64 directed edges (sender, receiver), forward copies first."""

def edge_features(positions: ArrayLike, box: ArrayLike, edge_index: ArrayLike,
                  rest_length: ArrayLike) -> np.ndarray:
    """[E, 4] (dx, dy, |d|, 1/l_r), d = minimum image of r_receiver - r_sender."""

def node_features(velocities: ArrayLike) -> np.ndarray:
    """[h, N, 2] velocity history, newest first -> [N, 2h] node features."""

def free_axis_strain(positions: ArrayLike, box: ArrayLike, displacement: ArrayLike, axis: int) -> float:
    """eps = sum u y / sum y^2 along `axis` (the box rule of a learned rollout)."""

def push_velocity(history: ArrayLike, velocity: ArrayLike) -> np.ndarray:
    """[N, 2h] node-feature rows with v(t+1) [N, 2] pushed in front (the fix's history roll)."""
