"""The C++ feature kernel of fix gnn/rollout (lmp_gnn._core) equals lmp_gnn.step.features in float64.

Random networks: random positions (also far outside the box, since only differences matter),
random bonds and rest lengths, random boxes and velocity histories.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmp_gnn.step import features

core = pytest.importorskip("lmp_gnn._core", reason="lmp_gnn._core is built by `pip install .`")


def random_network(seed: int, n: int = 200, m: int = 500):
    rng = np.random.default_rng(seed)
    box = rng.uniform(5.0, 20.0, 2)
    pos = rng.uniform(-1.5, 1.5, (n, 2)) * box          # up to 1.5 boxes away from the centre
    bonds = rng.integers(0, n, (m, 2))
    bonds = bonds[bonds[:, 0] != bonds[:, 1]]
    rest = rng.uniform(0.5, 1.5, len(bonds))
    return rng, pos, box, bonds, rest


def test_feature_version_matches():
    assert core.FEATURE_VERSION == features.FEATURE_VERSION
    assert core.EDGE_DIM == features.EDGE_DIM


@pytest.mark.parametrize("seed", range(5))
def test_edge_index(seed):
    _, _, _, bonds, _ = random_network(seed)
    expected = features.edge_index_from_bonds(torch.as_tensor(bonds)).numpy()
    np.testing.assert_array_equal(core.edge_index_from_bonds(bonds), expected)


@pytest.mark.parametrize("seed", range(5))
def test_edge_features(seed):
    _, pos, box, bonds, rest = random_network(seed)
    ei = features.edge_index_from_bonds(torch.as_tensor(bonds))
    rest_e = np.concatenate([rest, rest])
    expected = features.edge_features(torch.as_tensor(pos), torch.as_tensor(box), ei,
                                      torch.as_tensor(rest_e)).numpy()
    got = core.edge_features(pos, box, ei.numpy(), rest_e)
    assert got.shape == expected.shape == (2 * len(bonds), 4)
    # the minimum image, the stiffness and the vector are the same float64 operations;
    # |d| may differ in the last bit (sqrt of a sum of squares vs torch's norm kernel)
    np.testing.assert_array_equal(got[:, [0, 1, 3]], expected[:, [0, 1, 3]])
    np.testing.assert_allclose(got[:, 2], expected[:, 2], rtol=4e-16, atol=0)


def test_edge_features_round_half_to_even():
    # separations of exactly half a box: both sides must pick the same image
    box = np.array([4.0, 6.0])
    pos = np.array([[0.0, 0.0], [2.0, 3.0], [-2.0, -3.0], [6.0, 9.0]])
    bonds = np.array([[0, 1], [0, 2], [1, 2], [0, 3]])
    ei = features.edge_index_from_bonds(torch.as_tensor(bonds))
    rest = np.ones(2 * len(bonds))
    expected = features.edge_features(torch.as_tensor(pos), torch.as_tensor(box), ei,
                                      torch.as_tensor(rest)).numpy()
    np.testing.assert_array_equal(core.edge_features(pos, box, ei.numpy(), rest)[:, :2], expected[:, :2])


@pytest.mark.parametrize("history", [1, 2, 3])
def test_node_features(history):
    rng = np.random.default_rng(history)
    v = rng.normal(size=(history, 50, 2))
    expected = features.node_features(torch.as_tensor(v)).numpy()
    np.testing.assert_array_equal(core.node_features(v), expected)


@pytest.mark.parametrize("history", [1, 2, 3])
def test_history_roll_matches_velocity_history(history):
    # the fix keeps node-feature rows and pushes v(t+1) in front each step; that must equal
    # the node features formed from positions by features.velocity_history at t+1
    rng = np.random.default_rng(10 + history)
    positions = np.cumsum(rng.normal(size=(history + 2, 30, 2)), axis=0)
    t = history
    rows = features.node_features(features.velocity_history(torch.as_tensor(positions), t, history)).numpy()
    v_next = positions[t + 1] - positions[t]
    expected = features.node_features(features.velocity_history(torch.as_tensor(positions), t + 1, history)).numpy()
    np.testing.assert_array_equal(core.push_velocity(rows, v_next), expected)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="expected bonds"):
        core.edge_index_from_bonds(np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="outside"):
        core.edge_features(np.zeros((2, 2)), np.ones(2), np.array([[0], [5]]), np.ones(1))
