"""The learned step's rules in C++ (csrc/gnn_rules.h, through lmp_gnn._core) equal their one Python
definition (lmp_gnn.step.rules) in float64 on random inputs: the update, the box rule, the unwrap, the
hand-over velocity to MD and the paper's ν_est.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmp_gnn.step import features, rules

core = pytest.importorskip("lmp_gnn._core", reason="lmp_gnn._core is built by `pip install .`")


def random_state(seed: int, n: int = 300, history: int = 3):
    rng = np.random.default_rng(seed)
    box = rng.uniform(5.0, 20.0, 2)
    pos = rng.uniform(-1.5, 1.5, (n, 2)) * box          # up to 1.5 boxes away from the centre
    hist = rng.normal(scale=1e-3, size=(history, n, 2))
    accel = rng.normal(scale=1e-5, size=(n, 2))
    return rng, pos, box, hist, accel


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("history", [1, 2, 3])
def test_advance(seed, history):
    _, pos, _, hist, accel = random_state(seed, history=history)
    r_py, v_py = rules.advance(torch.as_tensor(pos), torch.as_tensor(hist), torch.as_tensor(accel))
    r_cc, rows_cc = core.advance(pos, features.node_features(torch.as_tensor(hist)).numpy(), accel)
    np.testing.assert_array_equal(r_cc, r_py.numpy())
    np.testing.assert_array_equal(rows_cc, features.node_features(v_py).numpy())


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("axis", [0, 1])
def test_free_axis_strain(seed, axis):
    rng, pos, box, _, _ = random_state(seed)
    u = rng.normal(scale=1e-3, size=pos.shape)
    pos = pos + box * rng.integers(-2, 3, size=pos.shape)       # unwrapped: nodes of other images
    expected = float(rules.free_axis_strain(torch.as_tensor(pos), torch.as_tensor(u), axis))
    got = core.free_axis_strain(pos, u, axis)
    # sequential vs vectorised summation of the same float64 terms
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-18)


def test_free_axis_strain_is_exact_for_a_homogeneous_strain_across_images():
    # a node that has crossed the boundary (image n != 0) moves with its image, by eps (x + n L):
    # the fit over unwrapped coordinates returns eps exactly, the wrapped one would not
    rng = np.random.default_rng(1)
    box = np.array([10.0, 12.0])
    r = (rng.random((40, 2)) - 0.5) * box
    r[:5] += box * np.array([[1, 1], [-1, 0], [0, -1], [2, 1], [1, -2]])
    eps = 1.3e-3
    u = np.zeros_like(r)
    u[:, 1] = eps * r[:, 1]
    assert float(rules.free_axis_strain(torch.as_tensor(r), torch.as_tensor(u), 1)) == pytest.approx(eps, rel=1e-12)
    assert core.free_axis_strain(r, u, 1) == pytest.approx(eps, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("driven", [0, 1])
def test_box_rule(seed, driven):
    rng = np.random.default_rng(seed)
    box, delta_l, eps = rng.uniform(5.0, 20.0, 2), float(rng.uniform(1e-4, 1e-2)), float(rng.normal(scale=1e-3))
    expected = rules.box_rule(torch.as_tensor(box), delta_l, eps, driven).numpy()
    np.testing.assert_array_equal(core.box_rule(box, driven, delta_l, eps), expected)
    assert expected[driven] == box[driven] - delta_l


@pytest.mark.parametrize("seed", range(4))
def test_unwrap(seed):
    rng, pos, box, _, _ = random_state(seed)
    image = rng.integers(-3, 4, size=pos.shape).astype(np.int32)
    np.testing.assert_array_equal(core.unwrap(pos, image, box), rules.unwrap(pos, image, box))


@pytest.mark.parametrize("seed", range(4))
def test_hand_over_velocity(seed):
    rng, pos, box, _, _ = random_state(seed)
    pos = pos + box * rng.integers(-2, 3, size=pos.shape)       # unwrapped: nodes of other images
    u = rng.normal(scale=1e-3, size=pos.shape)
    box_new = box * (1.0 + rng.normal(scale=1e-3, size=2))
    md_time = float(rng.uniform(10.0, 100.0))
    expected = rules.hand_over_velocity(u, pos, box, box_new, md_time)
    np.testing.assert_array_equal(core.hand_over_velocity(u, pos, box, box_new, md_time), expected)


def test_hand_over_velocity_is_zero_for_an_affine_step():
    # a step that only follows the box is carried by MD's remap, not by velocities
    rng = np.random.default_rng(0)
    box = np.array([10.0, 12.0])
    r = (rng.random((50, 2)) - 0.5) * box
    r[:5] += box * np.array([[1, 1], [-1, 0], [0, -1], [2, 1], [1, -2]])    # crossed the boundary
    box_new = box * np.array([0.998, 1.001])
    u = r * (box_new / box - 1.0)
    np.testing.assert_allclose(rules.hand_over_velocity(u, r, box, box_new, 50.0), 0.0, atol=1e-18)
    np.testing.assert_allclose(core.hand_over_velocity(u, r, box, box_new, 50.0), 0.0, atol=1e-18)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("driven", [0, 1])
def test_nu_estimator(seed, driven):
    rng, r0, box0, _, _ = random_state(seed)
    scale = np.ones(2)
    scale[driven], scale[1 - driven] = 0.99, 1.0 + rng.uniform(-0.01, 0.01)
    rt = r0 * scale + rng.normal(scale=0.05, size=r0.shape)      # affine + non-affine motion
    expected = rules.nu_estimator(r0, rt, box0, box0 * scale, driven)
    got = core.nu_estimator(r0, rt, box0, box0 * scale, driven)
    assert got == pytest.approx(expected, rel=1e-12)            # summation order differs


@pytest.mark.parametrize("box_length", [0.0, 16.4])
def test_step_delta_l(box_length):
    # a learned step is a strain: Δl scales with the driven length over the training boxes'
    for length in (16.4, 41.0, 3.2):
        expected = rules.step_delta_l(2e-3, box_length or None, length)
        assert core.step_delta_l(2e-3, box_length, length) == expected
        assert expected == (2e-3 * length / box_length if box_length else 2e-3)


@pytest.mark.parametrize("seed", range(4))
def test_free_strain_from_fits(seed):
    rng = np.random.default_rng(seed)
    fit_free, fit_driven = rng.normal(scale=1e-4, size=2)
    driven_strain = float(-rng.uniform(1e-5, 1e-3))
    expected = rules.free_strain_from_fits(float(fit_free), float(fit_driven), driven_strain)
    assert core.free_strain_from_fits(float(fit_free), float(fit_driven), driven_strain) == expected
    k = driven_strain / fit_driven
    assert expected == (k * fit_free if 0.5 <= k <= 1.5 else fit_free)
    # inside the band the ratio; outside it (no drive, a driven fit of 0, of the other sign or near
    # 0) the free fit itself
    inside = (1e-4, -1.25e-4, -1e-4)
    assert core.free_strain_from_fits(*inside) == rules.free_strain_from_fits(*inside) == 0.8e-4
    for args in ((1e-4, 0.0, -1e-4), (1e-4, -1e-4, 0.0), (1e-4, 1e-4, -1e-4), (1e-4, -1e-12, -1e-4)):
        assert rules.free_strain_from_fits(*args) == core.free_strain_from_fits(*args) == 1e-4


def test_free_strain_from_fits_cancels_a_common_bias():
    # a homogeneous strain (ex, ey) plus a non-affine field that the fits read as the same relative
    # bias on both axes: the ratio returns ey exactly, the plain fit does not
    rng = np.random.default_rng(2)
    box = np.array([12.0, 12.0])
    r = (rng.random((400, 2)) - 0.5) * box
    ex, ey, bias = -1.2e-4, 5e-5, 0.3
    u = r * np.array([ex, ey]) * (1.0 + bias)
    fx = float(rules.free_axis_strain(torch.as_tensor(r), torch.as_tensor(u), 0))
    fy = float(rules.free_axis_strain(torch.as_tensor(r), torch.as_tensor(u), 1))
    assert fy == pytest.approx(ey * (1.0 + bias), rel=1e-12)
    assert rules.free_strain_from_fits(fy, fx, ex) == pytest.approx(ey, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_net_bond_force(seed):
    rng, pos, box, _, _ = random_state(seed)
    bonds = np.stack([np.arange(len(pos)), rng.permutation(len(pos))], axis=1)
    bonds = bonds[bonds[:, 0] != bonds[:, 1]]
    rest = rng.uniform(0.8, 1.2, len(bonds))
    ei = features.edge_index_from_bonds(torch.as_tensor(bonds))
    ef = features.edge_features(torch.as_tensor(pos), torch.as_tensor(box), ei, torch.cat([torch.as_tensor(rest)] * 2))
    expected = rules.net_bond_force(ef, ei, len(pos)).numpy()
    np.testing.assert_allclose(core.net_bond_force(ef.numpy(), ei.numpy(), len(pos)), expected, rtol=1e-13, atol=1e-15)
    # Newton's third law: the bonds' forces sum to zero over the nodes
    np.testing.assert_allclose(expected.sum(0), 0.0, atol=1e-12)


def test_net_bond_force_of_one_stretched_bond():
    # E = K (l - l_r)^2, K = 1/l_r: a bond of rest length 1 stretched to 1.1 pulls each end by 0.2
    pos = torch.tensor([[0.0, 0.0], [1.1, 0.0]], dtype=torch.float64)
    ei = features.edge_index_from_bonds(torch.tensor([[0, 1]]))
    box = torch.tensor([10.0, 10.0], dtype=torch.float64)
    ef = features.edge_features(pos, box, ei, torch.ones(2, dtype=torch.float64))
    np.testing.assert_allclose(rules.net_bond_force(ef, ei, 2).numpy(), [[0.2, 0.0], [-0.2, 0.0]], atol=1e-14)
