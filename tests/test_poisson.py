"""poisson.py: both estimators recover the imposed ν of an affine deformation exactly."""

from __future__ import annotations

import numpy as np
import pytest

from lmp_gnn.physics.poisson import box_poisson, box_poisson_series, estimator_poisson, nu_estimator
from lmp_gnn.physics.trajectory import Trajectory


def affine_trajectory(nu: float, box0=(10.0, 12.0), n_snapshots=26, delta_l=2e-3, n=200, seed=0) -> Trajectory:
    """Random nodes in a centred box, deformed affinely: Lx(t) = Lx0 - tΔl, ε_y = -ν ε_x."""
    rng = np.random.default_rng(seed)
    box0 = np.asarray(box0)
    r0 = (rng.random((n, 2)) - 0.5) * box0
    r0 += box0 * rng.integers(-2, 3, size=(n, 2))  # arbitrary images: estimators must wrap
    eps_x = -np.arange(n_snapshots) * delta_l / box0[0]
    scale = np.stack([1 + eps_x, 1 - nu * eps_x], axis=1)  # [T, 2]
    box = box0 * scale
    positions = r0[None] * scale[:, None, :]
    bonds = np.array([[i, i + 1] for i in range(n - 1)])
    return Trajectory(positions, box, bonds, np.ones(n - 1), {})


@pytest.mark.parametrize("nu", [0.4, 0.0, -0.6])
@pytest.mark.parametrize("box0", [(10.0, 10.0), (10.0, 12.0)])
def test_affine_gives_imposed_nu(nu, box0):
    traj = affine_trajectory(nu, box0)
    strain_at_25 = 25 * 2e-3 / box0[0]
    assert box_poisson(traj, strain_at_25) == pytest.approx(nu, abs=1e-12)
    assert box_poisson(traj, 0.5 * strain_at_25) == pytest.approx(nu, abs=1e-12)  # interpolated
    for t in (1, 10, -1):
        assert estimator_poisson(traj, t) == pytest.approx(nu, abs=1e-9)
    series = box_poisson_series(traj)
    assert np.isnan(series[0])
    np.testing.assert_allclose(series[1:], nu, atol=1e-12)


def test_estimator_is_the_papers_formula_on_a_square_box():
    traj = affine_trajectory(0.3, (8.0, 8.0))
    r0, rt = traj.positions[0], traj.positions[12]
    l0 = traj.box[0]
    w0 = np.abs(r0 - l0 * np.round(r0 / l0)).sum(0)
    wt = np.abs(rt - traj.box[12] * np.round(rt / traj.box[12])).sum(0)
    d = l0 * wt / w0 - l0
    assert nu_estimator(r0, rt, l0, traj.box[12]) == pytest.approx(-d[1] / d[0], rel=1e-12)


def test_estimator_sees_non_affine_motion():
    # a node field that is not the box's: ν_est follows the nodes, the box ν follows the box
    traj = affine_trajectory(0.2, (10.0, 10.0))
    moved = traj.positions.copy()
    moved[:, :, 1] *= (1 + 0.5 * np.arange(traj.n_snapshots) * 2e-3 / 10.0)[:, None]
    other = Trajectory(moved, traj.box, traj.bonds, traj.rest_length, {})
    assert box_poisson(other, 0.005) == pytest.approx(0.2, abs=1e-12)
    assert estimator_poisson(other, -1) != pytest.approx(0.2, abs=1e-3)


def test_bad_arguments():
    traj = affine_trajectory(0.3)
    top = 25 * 2e-3 / 10.0
    with pytest.raises(ValueError, match=r"expected 0 < strain ≤ 0.005 .*got 0.01"):
        box_poisson(traj, 0.01)
    with pytest.raises(ValueError, match=r"expected 0 < strain ≤ .*got 0"):
        box_poisson(traj, 0.0)
    assert box_poisson(traj, top) == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"expected a snapshot index in \[1, 26\) \(or a negative index\), got 0"):
        estimator_poisson(traj, 0)
    with pytest.raises(ValueError, match=r"got 26"):
        estimator_poisson(traj, 26)
    with pytest.raises(TypeError, match=r"expected an int snapshot index, got 1.5"):
        estimator_poisson(traj, 1.5)
    with pytest.raises(TypeError, match=r"expected a trajectory with .positions and .box, got ndarray"):
        box_poisson(np.zeros((3, 2)), 0.01)


def test_estimator_follows_nodes_across_the_boundary():
    """A node that drifts across the periodic boundary is followed continuously: on an affine
    deformation plus a steady drift that keeps every node on its side of the centre line, ν_est is
    the same at every snapshot, while wrapping into the current box bends it at the crossing."""
    traj = affine_trajectory(0.3, (10.0, 12.0), n_snapshots=40)
    positions = traj.positions.copy()
    top = np.argmax(positions[0, :, 1] - traj.box[0, 1] * np.round(positions[0, :, 1] / traj.box[0, 1]))
    drift = 0.02 * np.arange(traj.n_snapshots)                   # 0.78 in y by the last snapshot
    positions[:, top, 1] += drift
    wrapped_top = positions[:, top, 1] - traj.box[:, 1] * np.round(positions[:, top, 1] / traj.box[:, 1])
    assert np.any(np.diff(np.sign(wrapped_top)) != 0)            # it crossed y = ±L/2
    moved = Trajectory(positions, traj.box, traj.bonds, traj.rest_length, {})
    series = np.array([estimator_poisson(moved, t) for t in range(1, traj.n_snapshots)])
    # Σ|y| and Σ|x| both grow linearly in t, so their strain ratio is constant
    np.testing.assert_allclose(series, series[0], rtol=1e-9)

    def wrapped_estimate(t):
        def sums(r, L):
            return np.abs(r - L * np.round(r / L)).sum(0)
        s0, st = sums(positions[0], traj.box[0]), sums(positions[t], traj.box[t])
        e = st / s0 - 1
        return -e[1] / e[0]
    wrapped = np.array([wrapped_estimate(t) for t in range(1, traj.n_snapshots)])
    assert np.ptp(wrapped) > 1e3 * np.ptp(series)


def test_estimator_does_not_depend_on_the_image_a_node_is_stored_in():
    traj = affine_trajectory(-0.4, (10.0, 12.0))
    shifted = traj.positions.copy()
    shifted[:, ::3] += traj.box[:, None, :] * np.array([2.0, -1.0])   # whole trajectories re-imaged
    other = Trajectory(shifted, traj.box, traj.bonds, traj.rest_length, {})
    for t in (1, 10, -1):
        assert estimator_poisson(other, t) == pytest.approx(estimator_poisson(traj, t), rel=1e-12)
