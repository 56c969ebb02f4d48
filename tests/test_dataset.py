"""WindowDataset: features and targets against hand computation, batching, noise, bad inputs."""

import math

import numpy as np
import pytest
import torch

from gnn_data import compressed_networks
from lmp_gnn.learning.dataset import (
    DatasetError,
    WindowDataset,
    find_trajectory_files,
    load_trajectories,
    split_by_network,
    training_metadata,
)
from lmp_gnn.physics.trajectory import Trajectory, TrajectoryFormatError

torch.set_num_threads(1)

META = {"delta_l": 0.1, "strain_rate": 1e-6, "timestep": 0.05, "md_steps_per_snapshot": 100, "network": "tri"}


def hand_trajectory(n_snap=6):
    """3 nodes in a 4 x 3 box; bond (0, 2) crosses the x boundary. Positions are polynomials in t."""
    t = np.arange(n_snap, dtype=np.float64)[:, None]
    p0 = np.array([1.7, 0.2]) + np.array([0.01, -0.02]) * t + np.array([0.001, 0.0005]) * t ** 2
    p1 = np.array([0.9, 1.1]) + np.array([-0.03, 0.0]) * t + np.array([0.0, -0.002]) * t ** 2
    p2 = np.array([-1.8, 0.4]) + np.array([0.0, 0.01]) * t + 0.0001 * t ** 3
    positions = np.stack([p0, p1, p2], axis=1)                     # [T, 3, 2]
    box = np.tile([4.0, 3.0], (n_snap, 1))
    bonds = np.array([[0, 1], [0, 2]])
    rest = np.array([1.25, 0.5])
    return Trajectory(positions, box, bonds, rest, dict(META))


def test_features_and_target_by_hand():
    traj = hand_trajectory()
    ds = WindowDataset([traj], history=2, dtype=torch.float64)
    assert len(ds) == 6 - 2 - 1                                      # t = 2, 3, 4
    assert ds.windows.tolist() == [[0, 2], [0, 3], [0, 4]]
    nf, ei, ef, target = ds.sample(0, 3)
    r = traj.positions
    # node features: (vx(t), vy(t), vx(t-1), vy(t-1)) per node
    for i in range(3):
        v_t = r[3, i] - r[2, i]
        v_tm1 = r[2, i] - r[1, i]
        np.testing.assert_allclose(nf[i].numpy(), [v_t[0], v_t[1], v_tm1[0], v_tm1[1]], rtol=0, atol=1e-15)
    # target a(3) = r(4) - 2 r(3) + r(2)
    np.testing.assert_allclose(target.numpy(), r[4] - 2 * r[3] + r[2], rtol=0, atol=1e-15)
    # edges: forward copies then reversed; features (dx, dy, |d|, 1/l_r) of r_receiver - r_sender
    assert ei.tolist() == [[0, 0, 1, 2], [1, 2, 0, 0]]
    d01 = r[3, 1] - r[3, 0]                                          # no wrap needed: |dx| < 2
    d02 = r[3, 2] - r[3, 0]                                          # dx ~ -3.5 -> +0.5 by minimum image
    d02_mi = d02 - np.array([4.0, 3.0]) * np.round(d02 / np.array([4.0, 3.0]))
    assert abs(d02_mi[0] - (d02[0] + 4.0)) < 1e-15
    want = np.array([[*d01, np.linalg.norm(d01), 1 / 1.25],
                     [*d02_mi, np.linalg.norm(d02_mi), 1 / 0.5],
                     [*-d01, np.linalg.norm(d01), 1 / 1.25],
                     [*-d02_mi, np.linalg.norm(d02_mi), 1 / 0.5]])
    np.testing.assert_allclose(ef.numpy(), want, rtol=0, atol=1e-14)


def test_float32_features_are_computed_in_float64_first():
    traj = hand_trajectory()
    traj.positions = traj.positions + 1000.0                        # large coordinates, small differences
    ds64 = WindowDataset([traj], history=2, dtype=torch.float64)
    ds32 = WindowDataset([traj], history=2, dtype=torch.float32)
    a64 = ds64.sample(0, 3)[3]
    a32 = ds32.sample(0, 3)[3]
    assert a32.dtype == torch.float32
    torch.testing.assert_close(a32.double(), a64, rtol=1e-6, atol=0)


def test_batch_offsets_and_pyg_data():
    a, b = hand_trajectory(6), hand_trajectory(5)
    ds = WindowDataset([a, b], history=1, dtype=torch.float64)
    assert len(ds) == (6 - 2) + (5 - 2)
    batch = ds.batch([0, len(ds) - 1])
    assert batch.num_graphs == 2 and batch.num_nodes == 6
    assert batch.batch.tolist() == [0, 0, 0, 1, 1, 1]
    assert batch.edge_index[:, 4:].tolist() == (ds.sample(1, 3)[1] + 3).tolist()
    nf1, _, ef1, tg1 = ds.sample(1, 3)
    assert torch.equal(batch.node_features[3:], nf1) and torch.equal(batch.edge_features[4:], ef1)
    assert torch.equal(batch.target[3:], tg1)
    data = ds.to_data(0)
    assert data.x.shape == (3, 2) and data.edge_attr.shape == (4, 4) and data.y.shape == (3, 2)
    assert data.num_nodes == 3


def test_random_walk_noise():
    traj = hand_trajectory(8)
    clean = WindowDataset([traj], history=3, dtype=torch.float64)
    noisy = WindowDataset([traj], history=3, noise_std=1e-3, dtype=torch.float64)
    nf0, _, ef0, tg0 = clean.sample(0, 4)
    g = torch.Generator().manual_seed(0)
    nf, ei, ef, tg = noisy.sample(0, 4, generator=g)
    assert not torch.equal(nf, nf0)
    # the target brings the noisy newest velocity back to the true v(t+1)
    r = torch.from_numpy(traj.positions)
    torch.testing.assert_close(nf[:, :2] + tg, r[5] - r[4], rtol=0, atol=1e-15)
    # edge features come from r(t) + the accumulated velocity noise (oldest position unperturbed)
    noise_v = (nf - nf0).reshape(3, 3, 2)                           # [N, h, 2], newest first
    r_noisy = r[4] + noise_v.sum(1)
    d = r_noisy[ei[1]] - r_noisy[ei[0]]
    d = d - torch.tensor([4.0, 3.0]) * torch.round(d / torch.tensor([4.0, 3.0]))
    torch.testing.assert_close(ef[:, :2], d, rtol=0, atol=1e-14)
    # without noise requested, the noisy dataset returns the clean sample
    assert torch.equal(noisy.sample(0, 4, noise=False)[0], nf0)
    # newest velocity noise has std noise_std (statistics over many draws)
    draws = torch.stack([noisy.sample(0, 4, generator=g)[0][:, :2] - nf0[:, :2] for _ in range(2000)])
    assert draws.std().item() == pytest.approx(1e-3, rel=0.05)
    oldest = torch.stack([noisy.sample(0, 4, generator=g)[0][:, 4:] - nf0[:, 4:] for _ in range(2000)])
    assert oldest.std().item() == pytest.approx(1e-3 / math.sqrt(3), rel=0.05)


def test_position_noise_target_lands_on_the_true_next_position():
    traj = hand_trajectory(8)
    noisy = WindowDataset([traj], history=3, noise_std=1e-3, dtype=torch.float64, noise_target="position")
    nf0 = WindowDataset([traj], history=3, dtype=torch.float64).sample(0, 4)[0]
    nf, _, _, tg = noisy.sample(0, 4, generator=torch.Generator().manual_seed(0))
    r = torch.from_numpy(traj.positions)
    r_noisy = r[4] + (nf - nf0).reshape(3, 3, 2).sum(1)               # r(t) + accumulated noise
    torch.testing.assert_close(r_noisy + nf[:, :2] + tg, r[5], rtol=0, atol=1e-15)
    with pytest.raises(DatasetError, match="expected noise_target in"):
        WindowDataset([traj], history=3, noise_target="momentum")


def test_bad_inputs_rejected():
    good = hand_trajectory()
    with pytest.raises(DatasetError, match=r"expected at least h \+ 2 = 5 snapshots for history h = 3.*got 4"):
        WindowDataset([hand_trajectory(4)], history=3)
    with pytest.raises(DatasetError, match="expected history h in 1..3, got 4"):
        WindowDataset([good], history=4)
    with pytest.raises(DatasetError, match="expected noise_std >= 0"):
        WindowDataset([good], history=1, noise_std=-1.0)
    with pytest.raises(DatasetError, match="expected at least one trajectory"):
        WindowDataset([], history=1)
    with pytest.raises(TrajectoryFormatError, match=r"expected box of shape \[6, 2\]"):
        Trajectory(good.positions, good.box[:-1], good.bonds, good.rest_length)
    nan = hand_trajectory()
    nan.positions[3, 1, 0] = np.nan
    with pytest.raises(TrajectoryFormatError, match="NaN"):
        WindowDataset([nan], history=1)
    wrong = hand_trajectory()
    wrong.box = wrong.box[:, :1]
    with pytest.raises(TrajectoryFormatError, match=r"expected box of shape \[6, 2\], got \(6, 1\)"):
        WindowDataset([wrong], history=1)
    zero = hand_trajectory()
    zero.rest_length[0] = 0.0
    with pytest.raises(DatasetError, match="expected positive rest lengths"):
        WindowDataset([zero], history=1)
    with pytest.raises(DatasetError, match="expected a lmp_gnn.physics.trajectory.Trajectory"):
        WindowDataset([{"positions": good.positions}], history=1)
    with pytest.raises(IndexError, match=r"expected 2 <= t <= 4, got t = 5"):
        WindowDataset([good], history=2).sample(0, 5)


def test_split_and_metadata():
    items = [(f"f{i}", hand_trajectory()) for i in range(5)]
    for i, (_, traj) in enumerate(items):
        traj.metadata["network"] = f"net{i // 2}"                    # f0,f1 -> net0; f2,f3 -> net1; f4 -> net2
    train, val = split_by_network(items, 0.34, seed=3)
    train_nets = {t.metadata["network"] for _, t in train}
    val_nets = {t.metadata["network"] for _, t in val}
    assert len(val_nets) == 1 and not train_nets & val_nets and len(train) + len(val) == 5
    with pytest.raises(DatasetError, match="expected at least 2 networks"):
        split_by_network(items[:2], 0.5, seed=0)
    meta = training_metadata(items)
    assert meta["delta_l"] == 0.1 and meta["md_steps_per_step"] == 100 and meta["n_networks"] == 3
    assert meta["box_length"] == 4.0                        # the mean initial Lx
    items[1][1].metadata["delta_l"] = 0.2
    with pytest.raises(DatasetError, match="expected one delta_l"):
        training_metadata(items)
    del items[2][1].metadata["timestep"]
    with pytest.raises(DatasetError, match="f2: expected trajectory metadata key 'timestep'"):
        training_metadata(items)
    with pytest.raises(DatasetError, match="nothing there"):
        find_trajectory_files(["/nonexistent/dir/*.npz"])


@pytest.mark.slow
def test_real_compression_windows():
    items = load_trajectories([compressed_networks()])
    assert [n for n, _ in items] == ["net0", "net1", "net2"]
    name, traj = items[0]
    ds = WindowDataset([traj], history=3, names=[name], dtype=torch.float64)
    assert len(ds) == traj.n_snapshots - 4
    nf, ei, ef, target = ds.sample(0, 10)
    r = traj.positions
    np.testing.assert_allclose(target.numpy(), r[11] - 2 * r[10] + r[9], rtol=0, atol=1e-16)
    # minimum image: every bond is short, close to its rest length at <= 2 % strain
    rest = np.concatenate([traj.rest_length, traj.rest_length])
    np.testing.assert_allclose(ef[:, 2].numpy(), rest, rtol=0.1)
    np.testing.assert_allclose(ef[:, 3].numpy(), 1 / rest, rtol=1e-15)
    # velocities are of the size of the compression per step: ~ Δl/Lx * (x extent)
    assert 1e-5 < nf.abs().max().item() < 1e-2
    meta = training_metadata(items)
    assert meta["delta_l"] == 2e-3 and meta["md_steps_per_step"] > 1
    assert meta["box_length"] == pytest.approx(np.mean([t.box[0, 0] for _, t in items]), rel=1e-15)
    assert len({t.box[0, 0] for _, t in items}) == 3        # three networks, three sizes: a mean of them


def test_events_are_left_out_of_the_windows():
    """A snap-through (one snapshot with a large jump) removes the windows that see it, and only those."""
    from lmp_gnn.learning.dataset import quiet_snapshots

    T, N = 30, 5
    t_axis = torch.arange(T, dtype=torch.float64)
    base = torch.rand(N, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    positions = base + 1e-3 * t_axis[:, None, None] + 1e-6 * t_axis[:, None, None] ** 2   # smooth: a = 2e-6
    positions[15:] += 0.1                                                                  # a jump between 14 and 15
    h = 2
    kept = quiet_snapshots(positions, h, 100.0)
    # the jump puts events in a(14) and a(15); window t needs a(t-h..t) quiet
    assert kept == [t for t in range(h, T - 1) if not (14 <= t <= 15 + h)]
    assert quiet_snapshots(positions, h, 0.0) == list(range(h, T - 1))


def test_event_ratio_is_checked():
    with pytest.raises(DatasetError, match="expected event_ratio >= 0"):
        WindowDataset([hand_trajectory()], 2, event_ratio=-1.0)


def test_pushed_forward_windows():
    """With the exact one-step prediction a push-forward window is the ordinary window; with the
    zero prediction its target brings r(t+1) back to the truth from the model's r(t)."""
    traj = hand_trajectory(n_snap=8)
    ds = WindowDataset([traj], 2, dtype=torch.float64)
    r = torch.as_tensor(traj.positions)
    t = 4

    def oracle(nf, ei, ef):
        return r[t] - 2 * r[t - 1] + r[t - 2]  # the true a(t-1)

    plain = ds.sample(0, t, noise=False)
    pushed = ds.sample(0, t, noise=False, predict=oracle)
    for a, b in zip(plain, pushed, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)

    def zero(nf, ei, ef):
        return torch.zeros(nf.shape[0], 2, dtype=nf.dtype)

    nf, _, _, target = ds.sample(0, t, noise=False, predict=zero)
    r_t = 2 * r[t - 1] - r[t - 2]                                        # the zero model's r(t)
    torch.testing.assert_close(nf[:, :2], r_t - r[t - 1], rtol=0, atol=1e-15)
    torch.testing.assert_close(r_t + (r_t - r[t - 1]) + target, r[t + 1], rtol=0, atol=1e-14)
    # the first window has no quiet window before it: it stays an ordinary window
    for a, b in zip(ds.sample(0, 2, noise=False), ds.sample(0, 2, noise=False, predict=zero), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
