"""The Python reference rollout (lmp_gnn.step.rollout) against analytic models whose result is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affine_fixture import affine_trajectory, lattice_network
from lmp_gnn.step import features
from lmp_gnn.step.rollout import RolloutError, rollout, zero_acceleration_model

torch.set_num_threads(1)


def dyadic_arrays(history: int = 3, n: int = 5, seed: int = 1) -> dict:
    """history+1 snapshots of a lattice network with dyadic velocities (every sum below is exact)."""
    pos0, box, bonds, rest = lattice_network(n, seed)
    rng = np.random.default_rng(seed)
    vel = rng.integers(-64, 65, size=(history, len(pos0), 2)) / 4096.0       # [h, N, 2]
    positions = [pos0]
    for v in vel:
        positions.append(positions[-1] + v)
    return {"positions": np.stack(positions), "box": np.tile(box, (history + 1, 1)),
            "bonds": bonds, "rest_length": rest}


def test_zero_model_continues_the_last_velocity_exactly():
    h, n_steps, dl = 3, 25, 1.0 / 512
    arrays = dyadic_arrays(h)
    res = rollout(zero_acceleration_model, arrays, start=h, n_steps=n_steps, history=h, delta_l=dl)
    r, r_prev = arrays["positions"][h], arrays["positions"][h - 1]
    assert res.positions.shape == (h + n_steps + 1, r.shape[0], 2)
    np.testing.assert_array_equal(res.positions[: h + 1], arrays["positions"])
    for k in range(1, n_steps + 1):      # 2r(t) - r(t-1) iterated = r + k (r - r_prev), exact in dyadics
        np.testing.assert_array_equal(res.positions[h + k], r + k * (r - r_prev))
    np.testing.assert_array_equal(res.accelerations, np.zeros((n_steps, r.shape[0], 2)))
    np.testing.assert_array_equal(res.box[h:, 0], arrays["box"][h, 0] - dl * np.arange(n_steps + 1))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_zero_model_scripted_and_eager_agree():
    h = 2
    arrays = dyadic_arrays(h)
    scripted = torch.jit.script(zero_acceleration_model)
    a = rollout(zero_acceleration_model, arrays, start=h, n_steps=5, history=h, delta_l=0.002)
    b = rollout(scripted, arrays, start=h, n_steps=5, history=h, delta_l=0.002, dtype=torch.float32)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.box, b.box)
    assert b.dtype == "float32"


def test_constant_acceleration_closed_form():
    h, n_steps = 2, 30
    arrays = dyadic_arrays(h, seed=3)
    n_nodes = arrays["positions"].shape[1]
    c = torch.as_tensor(np.random.default_rng(4).integers(-8, 9, size=(n_nodes, 2)) / 65536.0)

    def constant(node_features, edge_index, edge_features):
        return c.to(node_features.dtype)

    res = rollout(constant, arrays, start=h, n_steps=n_steps, history=h, delta_l=0.002)
    r, v = arrays["positions"][h], arrays["positions"][h] - arrays["positions"][h - 1]
    for k in range(n_steps + 1):         # r(t+k) = r(t) + k v(t) + k(k+1)/2 c, exact in dyadics
        np.testing.assert_array_equal(res.positions[h + k], r + k * v + k * (k + 1) / 2 * c.numpy())
    np.testing.assert_array_equal(res.accelerations, np.broadcast_to(c.numpy(), res.accelerations.shape))


class TrueAcceleration:
    """Returns the true a(start+k) on its k-th call and records the features it was given."""

    def __init__(self, traj, start):
        self.pos = torch.as_tensor(traj.positions)
        self.t = start
        self.seen = []

    def __call__(self, node_features, edge_index, edge_features):
        self.seen.append((self.t, node_features.clone(), edge_index.clone(), edge_features.clone()))
        a = features.target_acceleration(self.pos, self.t)
        self.t += 1
        return a.to(node_features.dtype)


@pytest.mark.parametrize("history", [1, 3])
def test_true_acceleration_reproduces_affine_truth_and_box(history):
    traj = affine_trajectory(n_snapshots=14, curvature=3e-6)
    start, n_steps = history, 14 - history - 1
    oracle = TrueAcceleration(traj, start)
    res = rollout(oracle, traj, start=start, n_steps=n_steps, history=history, delta_l=traj.metadata["delta_l"])
    np.testing.assert_allclose(res.positions, traj.positions, rtol=0, atol=1e-13)
    # the box rule recovers the true Ly from the learned displacements (and Lx from Δl)
    np.testing.assert_allclose(res.box, traj.box, rtol=1e-13, atol=0)
    assert abs(res.box[-1, 1] - traj.box[0, 1]) > 1e-3        # Ly really moved
    # the model saw the true features of every step, recomputed from the rolled-out state
    pos = torch.as_tensor(traj.positions)
    ei = features.edge_index_from_bonds(torch.as_tensor(traj.bonds))
    rest = torch.as_tensor(np.concatenate([traj.rest_length, traj.rest_length]))
    assert [s[0] for s in oracle.seen] == list(range(start, start + n_steps))
    for t, x, e_index, e in oracle.seen:
        assert x.shape == (traj.n_nodes, 2 * history) and x.dtype == torch.float64
        torch.testing.assert_close(x, features.node_features(features.velocity_history(pos, t, history)),
                                   rtol=0, atol=1e-13)
        torch.testing.assert_close(e, features.edge_features(pos[t], torch.as_tensor(traj.box[t]), ei, rest),
                                   rtol=0, atol=1e-12)
        assert torch.equal(e_index, ei)


def test_float32_model_gets_float32_features_and_positions_stay_float64():
    traj = affine_trajectory(n_snapshots=10)
    oracle = TrueAcceleration(traj, 3)
    res = rollout(oracle, traj, start=3, n_steps=6, history=3, delta_l=traj.metadata["delta_l"],
                  dtype=torch.float32)
    assert all(x.dtype == torch.float32 and e.dtype == torch.float32 for _, x, _, e in oracle.seen)
    assert res.positions.dtype == np.float64 and res.box.dtype == np.float64
    # only the float32 rounding of a (|a| ~ 1e-5, relative 6e-8) separates the rollout from the truth
    np.testing.assert_allclose(res.positions, traj.positions, rtol=0, atol=1e-11)


def test_result_as_trajectory_and_steps():
    traj = affine_trajectory(n_snapshots=8)
    res = rollout(zero_acceleration_model, traj, start=2, n_steps=9, history=2, delta_l=0.004)
    assert list(res.steps) == list(range(2, 12)) and res.n_steps == 9
    out = res.to_trajectory({"source": "affine"})
    assert out.n_snapshots == 12 and out.metadata["rollout"]["start"] == 2
    assert out.metadata["source"] == "affine" and len(res.model_seconds) == 9


def test_stop_on_nonfinite_returns_the_steps_taken():
    traj = affine_trajectory(n_snapshots=12)
    calls = []

    def blows_up_third(x, ei, e):
        calls.append(1)
        return torch.full((36, 2), float("nan") if len(calls) == 3 else 1e-6, dtype=x.dtype)

    res = rollout(blows_up_third, traj, start=3, n_steps=6, history=3, delta_l=0.004, stop_on_nonfinite=True)
    assert res.diverged_at == 5 and res.n_steps == 2
    assert res.positions.shape == (6, 36, 2) and res.box.shape == (6, 2) and len(res.model_seconds) == 2
    full = rollout(lambda x, ei, e: torch.full((36, 2), 1e-6, dtype=x.dtype), traj, start=3, n_steps=2, history=3,
                   delta_l=0.004)
    np.testing.assert_array_equal(res.positions, full.positions)
    assert full.diverged_at is None


def test_bad_inputs_are_refused_with_what_was_expected():
    traj = affine_trajectory(n_snapshots=6)
    with pytest.raises(ValueError, match="expected history \\(3\\) <= start"):
        rollout(zero_acceleration_model, traj, start=2, n_steps=1, history=3, delta_l=0.004)
    with pytest.raises(RolloutError, match=r"expected model output of shape \[36, 2\], got \(36, 3\)"):
        rollout(lambda x, ei, e: torch.zeros(36, 3), traj, start=3, n_steps=1, history=3, delta_l=0.004)
    with pytest.raises(RolloutError, match="expected finite accelerations, got NaN/inf at step 4"):
        calls = []

        def blows_up(x, ei, e):
            calls.append(1)
            return torch.full((36, 2), float("nan") if len(calls) > 1 else 0.0, dtype=x.dtype)

        rollout(blows_up, traj, start=3, n_steps=3, history=3, delta_l=0.004)
    bad = {"positions": traj.positions, "box": traj.box, "bonds": traj.bonds + 1, "rest_length": traj.rest_length}
    with pytest.raises(ValueError, match=r"expected bond indices in \[0, 36\), got \[1, 36\]"):
        rollout(zero_acceleration_model, bad, 3, 1, 3, 0.004)
    with pytest.raises(KeyError, match="expected key 'bonds'"):
        rollout(zero_acceleration_model, {"positions": traj.positions, "box": traj.box}, 3, 1, 3, 0.004)


def test_rollout_command_matches_the_library(tmp_path, capsys):
    from affine_fixture import ConstantAcceleration, save_exported
    from lmp_gnn.cli import main
    from lmp_gnn.physics.trajectory import load_trajectory, save_trajectory

    traj = affine_trajectory(n_snapshots=12)
    save_trajectory(tmp_path / "affine.npz", traj)
    c = torch.full((traj.n_nodes, 2), 1.0 / 65536, dtype=torch.float64)
    save_exported(tmp_path / "const.pt", ConstantAcceleration(c), history=2, delta_l=0.004, dtype="float32")
    rc = main(["rollout", str(tmp_path / "const.pt"), str(tmp_path / "affine.npz"), "-o", str(tmp_path / "out"),
               "--baseline", "--steps", "15"])
    assert rc == 0
    learned = load_trajectory(tmp_path / "out" / "affine.npz")
    baseline = load_trajectory(tmp_path / "out" / "affine.baseline.npz")
    # default start h + 2 = 4, as lmp-gnn evaluate
    want = rollout(ConstantAcceleration(c), traj, 4, 15, 2, 0.004, torch.float32)
    want0 = rollout(zero_acceleration_model, traj, 4, 15, 2, 0.004)
    np.testing.assert_array_equal(learned.positions, want.positions)
    np.testing.assert_array_equal(learned.box, want.box)
    np.testing.assert_array_equal(baseline.positions, want0.positions)
    assert learned.metadata["rollout"]["start"] == 4 and learned.metadata["rollout"]["dtype"] == "float32"
    # a model trained at another Δl is refused for this trajectory
    save_exported(tmp_path / "other.pt", ConstantAcceleration(c), history=2, delta_l=0.002)
    rc = main(["rollout", str(tmp_path / "other.pt"), str(tmp_path / "affine.npz"), "-o", str(tmp_path / "out2")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "(the model's step: delta_l 0.002 for this box" in err and "got a trajectory with delta_l 0.004" in err


def test_dtype_none_follows_the_module():
    from affine_fixture import ConstantAcceleration

    traj = affine_trajectory(n_snapshots=6)
    seen = []

    class Recording(ConstantAcceleration):
        def forward(self, node_features, edge_index, edge_features):
            seen.append((node_features.dtype, edge_features.dtype))
            return super().forward(node_features, edge_index, edge_features)

    m = Recording(torch.zeros(36, 2, dtype=torch.float32))
    res = rollout(m, traj, 3, 2, 3, 0.004, dtype=None)
    assert res.dtype == "float32" and seen == [(torch.float32, torch.float32)] * 2
    assert rollout(zero_acceleration_model, traj, 3, 1, 3, 0.004, dtype=None).dtype == "float64"
