"""Poisson's ratio of a compression trajectory: from the box, and the paper's node estimator.

Both take anything with `positions` [T, N, 2] and `box` [T, 2] (a `Trajectory`, or a learned
rollout with the same two arrays); x is the compressed axis, y the free one.

- `box_poisson`: ν = -ε_y/ε_x from the box lengths, ε_η = (L_η(t) - L_η(0)) / L_η(0).
- `estimator_poisson`: the paper's ν_est (supplement §I.6), which needs no box on the free axis:
  D_η = l0_η · Σ_i |r_η,i(t)| / Σ_i |r_η,i(0)| - l0_η, with |r_η,i| the distance of node i from
  the box centre, each node followed continuously from the image it has in snapshot 0
  (`lmp_gnn.step.rules.nu_estimator`, the one definition; the fix's shadow mode uses its C++ twin).
  Wrapping nodes into the current box instead bends the estimate whenever a node crosses the
  boundary. The paper writes
  ν_est = -D_y/D_x; we return -(D_y/l0_y)/(D_x/l0_x), the ratio of the estimated strains.
  The two are identical for a square initial box (l0_x = l0_y); for a rectangular box the
  literal form is off by the factor l0_y/l0_x, so the strain form is the one that equals the
  imposed ν for an affine deformation of any box.
"""

from __future__ import annotations

import numpy as np

from lmp_gnn.step.rules import nu_estimator


def _arrays(traj) -> tuple[np.ndarray, np.ndarray]:
    try:
        positions, box = np.asarray(traj.positions, dtype=np.float64), np.asarray(traj.box, dtype=np.float64)
    except AttributeError as exc:
        raise TypeError(f"expected a trajectory with .positions and .box, got {type(traj).__name__}") from exc
    if positions.ndim != 3 or positions.shape[2] != 2:
        raise ValueError(f"expected positions of shape [T, N, 2], got {positions.shape}")
    if box.shape != (positions.shape[0], 2):
        raise ValueError(f"expected box of shape [{positions.shape[0]}, 2], got {box.shape}")
    return positions, box


def box_strain(box: np.ndarray) -> np.ndarray:
    """[T, 2] engineering strains ε_η(t) = (L_η(t) - L_η(0)) / L_η(0) from box lengths [T, 2]."""
    box = np.asarray(box, dtype=np.float64)
    return box / box[0] - 1.0


def box_poisson_between(box0: np.ndarray, box: np.ndarray) -> float:
    """Box ν = -ε_y/ε_x of box lengths `box` [2] against `box0` [2] (one state; `box_poisson_series`
    for a trajectory)."""
    eps = box_strain(np.stack([box0, box]))[1]
    return float(-eps[1] / eps[0])


def box_poisson_series(traj) -> np.ndarray:
    """[T] box ν(t) = -ε_y(t)/ε_x(t); NaN at t = 0 (no strain yet)."""
    _, box = _arrays(traj)
    eps = box_strain(box)
    with np.errstate(divide="ignore", invalid="ignore"):
        nu = -eps[:, 1] / eps[:, 0]
    nu[eps[:, 0] == 0] = np.nan
    return nu


def box_poisson(traj, strain: float) -> float:
    """Box ν = -ε_y/ε_x at compressive strain `strain` along x (e.g. 0.01 for 1 %).

    ε_y is interpolated linearly between the two snapshots whose compressive strain -ε_x brackets
    `strain` (snapshots are evenly spaced in Lx, so at a snapshot this is exact).

    Raises:
        ValueError: if `strain` is not in (0, the trajectory's largest compressive strain].
    """
    _, box = _arrays(traj)
    eps = box_strain(box)
    compression = -eps[:, 0]
    top = float(compression.max())
    if not 0.0 < strain <= top * (1 + 1e-9):
        raise ValueError(f"expected 0 < strain ≤ {top:.6g} (the trajectory's largest compressive strain), "
                         f"got {strain}")
    if np.any(np.diff(compression) <= 0):
        raise ValueError("expected the box to shrink along x at every snapshot, got a non-monotonic Lx")
    eps_y = float(np.interp(min(strain, top), compression, eps[:, 1]))
    return eps_y / strain


def estimator_poisson(traj, t: int) -> float:
    """The paper's ν_est between snapshot 0 and snapshot t (1 ≤ t < T, negative t counts from the end)."""
    positions, box = _arrays(traj)
    n = len(positions)
    if not isinstance(t, (int, np.integer)) or isinstance(t, bool):
        raise TypeError(f"expected an int snapshot index, got {t!r}")
    tt = t + n if t < 0 else t
    if not 1 <= tt < n:
        raise ValueError(f"expected a snapshot index in [1, {n}) (or a negative index), got {t}")
    return nu_estimator(positions[0], positions[tt], box[0], box[tt])
