"""Type stubs of lmp_gnn._core, the C++ feature kernel of fix gnn/rollout (csrc/gnn_core_module.cpp).

The feature kernel mirrors lmp_gnn.step.features and the rules mirror lmp_gnn.step.rules, in float64 on numpy
arrays; see docs/formats.md. parse_metadata is the fix's metadata parser, which mirrors
lmp_gnn.step.metadata.parse.
"""

import numpy as np
from numpy.typing import ArrayLike

FEATURE_VERSION: int
EDGE_DIM: int
METADATA_KEYS: tuple[str, ...]
MODEL_FORMAT: int
MIN_HISTORY: int
MAX_HISTORY: int
MIN_LAYERS: int
MAX_LAYERS: int

def edge_index_from_bonds(bonds: ArrayLike) -> np.ndarray:
    """[M, 2] bonds -> [2, 2M] int64 directed edges (sender, receiver), forward copies first."""

def edge_features(positions: ArrayLike, box: ArrayLike, edge_index: ArrayLike,
                  rest_length: ArrayLike) -> np.ndarray:
    """[E, 4] (dx, dy, |d|, 1/l_r), d = minimum image of r_receiver - r_sender."""

def node_features(velocities: ArrayLike) -> np.ndarray:
    """[h, N, 2] velocity history, newest first -> [N, 2h] node features."""

def free_axis_strain(positions: ArrayLike, displacement: ArrayLike, axis: int) -> float:
    """eps = sum u y / sum y^2 along `axis`, positions unwrapped (the box rule of a learned rollout)."""

def push_velocity(history: ArrayLike, velocity: ArrayLike) -> np.ndarray:
    """[N, 2h] node-feature rows with v(t+1) [N, 2] pushed in front (the fix's history roll)."""

def advance(positions: ArrayLike, history: ArrayLike, accel: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """One learned step: (r + v(t) + a [N, 2], history [N, 2h] with v(t+1) pushed in front)."""

def box_rule(box: ArrayLike, driven: int, delta_l: float, eps: float) -> np.ndarray:
    """[2] the box after one learned step: driven length - delta_l, the other * (1 + eps)."""

def unwrap(x: ArrayLike, image: ArrayLike, box: ArrayLike) -> np.ndarray:
    """[N, 2] x + n L."""

def net_bond_force(edge_features: ArrayLike, edge_index: ArrayLike, n_nodes: int) -> np.ndarray:
    """[N, 2] net force of the harmonic bonds (K = 1/l_r) on each node, from the edge features."""

def free_strain_from_fits(fit_free: float, fit_driven: float, driven_strain: float) -> float:
    """driven_strain * fit_free / fit_driven (fit_free without a ratio)."""

def step_delta_l(delta_l: float, box_length: float, length: float) -> float:
    """delta_l for a box of driven length `length`: delta_l * length / box_length (box_length 0: delta_l)."""

def hand_over_velocity(u: ArrayLike, r: ArrayLike, box: ArrayLike, box_new: ArrayLike,
                       md_time: float) -> np.ndarray:
    """[N, 2] MD velocity continuing a learned step, r unwrapped (box centred at the origin)."""

def nu_estimator(r0: ArrayLike, rt: ArrayLike, box0: ArrayLike, boxt: ArrayLike, driven: int = 0) -> float:
    """The paper's nu_est (strain form), each node followed from its snapshot-0 image."""

def parse_metadata(source: str, raw: dict[str, str]) -> dict[str, int | float | str | None]:
    """The fix's reading of model metadata (csrc/gnn_metadata.cpp): key -> text in, the typed
    values of every metadata key out (None for an optional key not recorded: box_length); ValueError
    with the fix's message naming a bad key."""
