"""lmp_gnn.evaluation.analysis: metrics on hand-made numbers and on exact affine compressions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from affine_fixture import affine_strain_y, affine_trajectory
from lmp_gnn.evaluation import analysis
from lmp_gnn.step import features
from lmp_gnn.step.rollout import rollout, zero_acceleration_model

torch.set_num_threads(1)


def test_position_mse_by_hand():
    true = np.zeros((2, 2, 2))
    pred = np.array([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 2.0]]])
    np.testing.assert_array_equal(analysis.position_mse(pred, true), [0.0, 1.25])   # (1 + 4) / 4
    with pytest.raises(ValueError,
                       match=r"expected two position arrays of the same shape .* got \(2, 2, 2\) and \(2, 3, 2\)"):
        analysis.position_mse(pred, np.zeros((2, 3, 2)))


def test_r2_and_parity_by_hand():
    assert analysis.r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == pytest.approx(0.5)   # 1 - 1/2
    assert analysis.r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert math.isnan(analysis.r2_score([2.0, 2.0], [1.0, 3.0]))
    s = analysis.parity_stats([1.0, 2.0, 3.0, None, 5.0], [1.5, 2.0, 2.0, 4.0, float("nan")])
    assert s["n"] == 3 and s["n_missing"] == 2
    assert s["mean_abs_error"] == pytest.approx(0.5) and s["max_abs_error"] == pytest.approx(1.0)
    assert s["median_abs_error"] == pytest.approx(0.5)   # of 0.5, 0, 1
    assert s["r2"] == pytest.approx(1.0 - 1.25 / 2.0)


def test_complexity_by_hand():
    # node 0: v1 = (1, 0), v2 = (2, 0), v3 = (0, 4): |v2 - v1| = 1, |v3 - v2| = sqrt(20); node 1 at rest
    r = np.zeros((4, 2, 2))
    r[:, 0] = [[0, 0], [1, 0], [3, 0], [3, 4]]
    r[:, 1] = [5.0, -1.0]
    np.testing.assert_allclose(analysis.complexity_per_step(r), [0.5, math.sqrt(20) / 2])
    assert analysis.complexity(r) == pytest.approx((1 + math.sqrt(20)) / 4)
    assert analysis.complexity(r, start=2, stop=3) == pytest.approx(math.sqrt(20) / 2)
    with pytest.raises(ValueError, match="expected 1 <= start < stop <= 3, got start=0, stop=3"):
        analysis.complexity(r, start=0)


@pytest.mark.parametrize("nu", [0.35, -0.4])
def test_poisson_of_affine_compression_is_the_imposed_nu(nu):
    traj = affine_trajectory(n_snapshots=40, nu=nu, curvature=0.0)
    s = analysis.poisson_series(traj)
    np.testing.assert_allclose(s["nu_box"][1:], nu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s["nu_est"][1:], nu, rtol=0, atol=1e-12)
    assert math.isnan(s["nu_box"][0]) and math.isnan(s["nu_est"][0])
    np.testing.assert_allclose(s["strain"], np.arange(40) * 0.004 / 6.0, atol=1e-15)


def test_poisson_of_curved_affine_compression_follows_the_strain_history():
    traj = affine_trajectory(n_snapshots=30, nu=0.2, curvature=4e-6)
    t = np.arange(1, 30)
    rate = 0.004 / 6.0
    expected = affine_strain_y(t, 0.2, rate, 4e-6) / (rate * t)         # -ε_y/ε_x with ε_x = -rate t
    s = analysis.poisson_series(traj)
    np.testing.assert_allclose(s["nu_box"][1:], expected, atol=1e-12)
    np.testing.assert_allclose(s["nu_est"][1:], expected, atol=1e-12)


def test_snapshot_at_strain():
    traj = affine_trajectory(n_snapshots=80)                 # strain per snapshot 1/1500
    assert analysis.snapshot_at_strain(traj.box, 0.01) == 15
    assert analysis.snapshot_at_strain(traj.box, 0.05) == 75
    # the last snapshot (79/1500 = 5.267 %) stands for strains up to one spacing beyond it, no further
    assert analysis.snapshot_at_strain(traj.box, 0.0533) == 79
    assert analysis.snapshot_at_strain(traj.box, 0.054) is None


class TrueAcceleration:
    def __init__(self, traj, start):
        self.pos, self.t = torch.as_tensor(traj.positions), start

    def __call__(self, x, edge_index, edge_features):
        a = features.target_acceleration(self.pos, self.t)
        self.t += 1
        return a


def _evaluate(traj, h=3):
    n = traj.n_snapshots - 1 - h
    learned = rollout(TrueAcceleration(traj, h), traj, h, n, h, traj.metadata["delta_l"])
    baseline = rollout(zero_acceleration_model, traj, h, n, h, traj.metadata["delta_l"])
    return analysis.evaluate_network(traj, learned, baseline, name="affine", mse_steps=(1, 20, 100))


def test_evaluate_network_exact_learned_beside_baseline():
    traj = affine_trajectory(n_snapshots=80, nu=0.1, curvature=2e-6)
    r = _evaluate(traj)
    assert r["mse"]["learned"]["1"] < 1e-26 and r["mse"]["learned"]["100"] is None   # 76 steps only
    # the baseline's first step misses exactly the true acceleration a(3)
    a3 = traj.positions[4] - 2 * traj.positions[3] + traj.positions[2]
    assert r["mse"]["baseline"]["1"] == pytest.approx((a3 ** 2).mean(), rel=1e-9)
    assert r["mse"]["baseline"]["20"] > r["mse"]["baseline"]["1"] > 0
    for point in ("steps_20", "strain_0.01", "strain_0.05"):
        nu = r["nu"][point]
        for est in ("nu_box", "nu_est"):
            assert nu["learned"][est] == pytest.approx(nu["true"][est], abs=1e-10)
            assert abs(nu["baseline"][est] - nu["true"][est]) > 1e-3
    assert r["nu"]["strain_0.05"]["snapshot"] == 75 and r["nu"]["steps_100"]["snapshot"] is None
    # α: the truth's mean |a| (constant here: a = 2 curvature y(0) along y), the baseline's 0
    a = np.linalg.norm(traj.positions[2:] - 2 * traj.positions[1:-1] + traj.positions[:-2], axis=2)
    assert r["alpha"]["true"] == pytest.approx(a[2:78].mean(), rel=1e-9)
    assert r["alpha"]["learned"] == pytest.approx(r["alpha"]["true"], rel=1e-8)
    assert r["alpha"]["baseline"] == 0.0


def test_aggregate_over_a_test_set():
    results = [_evaluate(affine_trajectory(n_snapshots=40, nu=nu, curvature=c, seed=i))
               for i, (nu, c) in enumerate([(0.3, 1e-6), (-0.2, 3e-6), (0.0, -2e-6)])]
    agg = analysis.aggregate(results)
    assert agg["n_networks"] == 3
    st = agg["nu"]["steps_20"]["nu_est"]
    assert st["learned"]["r2"] == pytest.approx(1.0, abs=1e-9) and st["learned"]["n"] == 3
    assert st["baseline"]["mean_abs_error"] > 1e-3
    true = [r["nu"]["steps_20"]["true"]["nu_est"] for r in results]
    base = [r["nu"]["steps_20"]["baseline"]["nu_est"] for r in results]
    assert st["baseline"]["r2"] == pytest.approx(analysis.r2_score(true, base))
    assert agg["mse"]["baseline"]["1"]["mean"] == pytest.approx(np.mean([r["mse"]["baseline"]["1"] for r in results]))
    assert agg["nu"]["strain_0.05"]["nu_box"]["learned"]["n"] == 0        # 40 snapshots reach 2.6 % only
    assert len(agg["mse_curve"]["learned"]) == 37
    # per network: the exact learned rollouts beat the baseline on every network (MSE 0 < baseline)
    pn = agg["per_network"]["20"]
    assert pn["n"] == 3 and pn["learned_better"] == 3 and pn["far_off"] == 0
    results[0]["mse"]["learned"]["20"] = 4 * results[0]["mse"]["baseline"]["20"]
    results[1]["mse"]["learned"]["20"] = 0.25 * results[1]["mse"]["baseline"]["20"]
    results[2]["mse"]["learned"]["20"] = float("inf")
    pn = analysis.aggregate(results)["per_network"]["20"]
    assert pn["learned_better"] == 1 and pn["far_off"] == 1 and pn["geomean_ratio"] == pytest.approx(1.0)


def test_mean_curve_of_different_lengths():
    np.testing.assert_array_equal(analysis.mean_curve([[0.0, 2.0, 4.0], [0.0, 4.0]]), [0.0, 3.0, 4.0])


@pytest.mark.slow
def test_evaluate_command_writes_results_beside_the_baseline(tmp_path):
    import json

    from affine_fixture import ConstantAcceleration, save_exported
    from lmp_gnn.cli import main
    from lmp_gnn.physics.trajectory import save_trajectory

    (tmp_path / "data" / "test").mkdir(parents=True)
    trajs = [affine_trajectory(n_snapshots=30, nu=nu, curvature=2e-6, seed=i) for i, nu in enumerate((0.3, -0.1))]
    for i, t in enumerate(trajs):
        save_trajectory(tmp_path / "data" / "test" / f"net{i}.npz", t)
    c = torch.full((36, 2), 1.0 / 65536, dtype=torch.float64)
    save_exported(tmp_path / "const.pt", ConstantAcceleration(c), history=3, delta_l=0.004)
    rc = main(["evaluate", str(tmp_path / "const.pt"), "--data", str(tmp_path / "data"), "-o", str(tmp_path / "ev"),
               "--mse-steps", "1", "20", "--strains", "0.01", "--plot-networks", "1"])
    assert rc == 0
    report = json.loads((tmp_path / "ev" / "results.json").read_text())
    direct = []
    start = 3 + 2       # evaluate's default: h + 2, past the start-up transient
    for i, t in enumerate(trajs):
        learned = rollout(ConstantAcceleration(c), t, start, 29 - start, 3, 0.004)
        baseline = rollout(zero_acceleration_model, t, start, 29 - start, 3, 0.004)
        direct.append(analysis.evaluate_network(t, learned, baseline, f"net{i}", mse_steps=(1, 20), strains=(0.01,)))
    agg = analysis.aggregate(direct)
    assert report["aggregate"]["n_networks"] == 2
    assert report["aggregate"]["mse"] == agg["mse"]
    assert report["aggregate"]["nu"] == agg["nu"]
    assert [n["name"] for n in report["networks"]] == ["net0", "net1"]
    summary = (tmp_path / "ev" / "summary.md").read_text()
    assert "| ν_est after 20 steps: R² / mean \\|Δν\\| (median) |" in summary
    assert report["aggregate"]["per_network"] == agg["per_network"]
    assert "| after 20 step(s): learned better than baseline / far off (MSE > 0.001) / " in summary
    pngs = sorted(p.name for p in (tmp_path / "ev").glob("*.png"))
    assert pngs == ["mse_vs_step.png", "nodes_net0.png", "nu_vs_strain_net0.png", "overlay_net0.png", "parity.png"]


def test_evaluate_command_refuses_a_foreign_delta_l(tmp_path, capsys):
    from affine_fixture import save_exported
    from lmp_gnn.cli import main
    from lmp_gnn.physics.trajectory import save_trajectory

    save_trajectory(tmp_path / "net0.npz", affine_trajectory(n_snapshots=10))
    save_exported(tmp_path / "nan25.pt", NaNOn25Nodes(), history=3, delta_l=0.002)
    rc = main(["evaluate", str(tmp_path / "nan25.pt"), "--data", str(tmp_path / "net0.npz"),
               "-o", str(tmp_path / "ev")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "expected a strain per snapshot of" in err and "(the model's step: delta_l 0.002 for this box" in err
    assert "got a trajectory with delta_l 0.004" in err


class NaNOn25Nodes(torch.nn.Module):
    """Zero acceleration, except NaN on graphs of 25 nodes: a learned rollout that blows up."""

    def forward(self, node_features: torch.Tensor, edge_index: torch.Tensor,
                edge_features: torch.Tensor) -> torch.Tensor:
        a = torch.zeros(node_features.shape[0], 2, dtype=node_features.dtype)
        if node_features.shape[0] == 25:
            a = a + float("nan")
        return a


def test_evaluate_command_records_a_failed_rollout(tmp_path):
    import json

    from affine_fixture import save_exported
    from lmp_gnn.cli import main
    from lmp_gnn.physics.trajectory import save_trajectory

    for i, n in enumerate((6, 5, 6)):
        save_trajectory(tmp_path / "d" / f"net{i}.npz", affine_trajectory(n_snapshots=30, n=n, seed=i, curvature=1e-6))
    save_exported(tmp_path / "nan25.pt", NaNOn25Nodes(), history=3, delta_l=0.004)
    rc = main(["evaluate", str(tmp_path / "nan25.pt"), "--data", str(tmp_path / "d"), "-o", str(tmp_path / "ev"),
               "--plot-networks", "0", "--strains", "0.01"])
    assert rc == 0
    report = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert [f["name"] for f in report["failed"]] == ["net1"]
    assert "expected finite accelerations, got NaN/inf at step 5" in report["failed"][0]["error"]   # start h + 2
    assert report["aggregate"]["n_networks"] == 2 and report["aggregate"]["n_failed"] == 1
    assert "1 learned rollout(s) failed" in (tmp_path / "ev" / "summary.md").read_text()


class Runaway(torch.nn.Module):
    """a = 1e150 v: finite for two steps, then overflows: a rollout that diverges mid-way."""

    def forward(self, node_features: torch.Tensor, edge_index: torch.Tensor, edge_features: torch.Tensor):
        return 1e150 * node_features[:, 0:2] + 1e-12


def test_evaluate_command_scores_a_diverging_rollout_up_to_where_it_diverged(tmp_path):
    import json

    from affine_fixture import save_exported
    from lmp_gnn.cli import main
    from lmp_gnn.physics.trajectory import save_trajectory

    save_trajectory(tmp_path / "d" / "net0.npz", affine_trajectory(n_snapshots=30, n=6, seed=0, curvature=1e-6))
    save_exported(tmp_path / "runaway.pt", Runaway(), history=3, delta_l=0.004)
    rc = main(["evaluate", str(tmp_path / "runaway.pt"), "--data", str(tmp_path / "d"), "-o", str(tmp_path / "ev"),
               "--plot-networks", "0", "--mse-steps", "1", "20", "--nu-steps", "1", "20", "--strains", "0.01"])
    assert rc == 0
    report = json.loads((tmp_path / "ev" / "results.json").read_text())
    step = report["diverged"][0]["step"]
    assert report["diverged"][0]["name"] == "net0" and 5 < step < 10 and not report["failed"]
    mse = report["aggregate"]["mse"]["learned"]
    assert mse["1"]["n"] == 1 and mse["20"]["n"] == 0            # scored up to the divergence only
    assert report["aggregate"]["nu"]["steps_20"]["nu_est"]["baseline"]["n"] == 0   # same networks for both
    summary = (tmp_path / "ev" / "summary.md").read_text()
    assert "1 of 1 learned rollouts diverged" in summary and "| 0 of 1 |" in summary


def test_evaluate_steps_limits_the_rollout(tmp_path):
    import json

    from lmp_gnn.cli import main
    from lmp_gnn.physics.trajectory import save_trajectory

    save_trajectory(tmp_path / "d" / "net0.npz", affine_trajectory(n_snapshots=30, n=6, seed=0, curvature=1e-6))
    rc = main(["evaluate", "zero", "--data", str(tmp_path / "d"), "-o", str(tmp_path / "ev"), "--steps", "4",
               "--plot-networks", "0", "--mse-steps", "1", "4", "--nu-steps", "4", "--strains", "0.001"])
    assert rc == 0
    net = json.loads((tmp_path / "ev" / "results.json").read_text())["networks"][0]
    assert net["n_steps"] == {"learned": 4, "baseline": 4}
    assert "for 4 learned steps" in (tmp_path / "ev" / "summary.md").read_text()
    assert main(["evaluate", "zero", "--data", str(tmp_path / "d"), "-o", str(tmp_path / "ev2"), "--steps", "0"]) == 2


def test_closer_than_baseline_by_hand():
    def net(true, learned, baseline):
        return {"nu": {"strain_0.049": {"true": {"nu_est": true, "nu_box": 0.0},
                                        "learned": {"nu_est": learned, "nu_box": 0.0},
                                        "baseline": {"nu_est": baseline, "nu_box": 0.0}}}}

    results = [net(0.1, 0.12, 0.2), net(0.1, 0.3, 0.05), net(0.1, None, 0.1), net(-0.2, -0.25, -0.3),
               net(0.0, 0.1, -0.1), {"nu": {}}]
    c = analysis.closer_than_baseline(results, "strain_0.049")
    assert c == {"n": 4, "closer": 2, "fraction": 0.5}    # a tie (|0.1| = |-0.1|) is not closer
    assert analysis.closer_than_baseline(results, "strain_0.049", "nu_box")["closer"] == 0
    assert analysis.closer_than_baseline([], "strain_0.049") == {"n": 0, "closer": 0, "fraction": None}
    with pytest.raises(ValueError, match="expected an estimator in"):
        analysis.closer_than_baseline(results, "strain_0.049", "nu")


def test_evaluate_box_follows_the_trajectory_delta_l(tmp_path, capsys):
    import json

    from affine_fixture import save_exported
    from lmp_gnn.cli import main
    from lmp_gnn.physics.trajectory import save_trajectory

    # a model without box_length made for Δl = 0.002 (it steps by 0.002 on every box), a trajectory
    # compressed by 0.004 per snapshot (e.g. a larger network at the training strain per snapshot):
    # refused by default, rolled out with the truth's Δl on request
    save_trajectory(tmp_path / "net0.npz", affine_trajectory(n_snapshots=40, delta_l=0.004))
    save_exported(tmp_path / "zero.pt", NaNOn25Nodes(), history=3, delta_l=0.002)   # zero on 36 nodes
    args = ["evaluate", str(tmp_path / "zero.pt"), "--data", str(tmp_path / "net0.npz"), "--plot-networks", "0",
            "--strains", "0.01"]
    assert main([*args, "-o", str(tmp_path / "ev0")]) == 2
    assert "expected a strain per snapshot of 0.0003333 (the model's step: delta_l 0.002" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "ev"), "--box-delta-l", "trajectory"]) == 0
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["box_delta_l"] == "trajectory"
    curve = json.loads((tmp_path / "ev" / "networks" / "net0.json").read_text())["nu_curve"]
    np.testing.assert_allclose(curve["learned"]["strain"], curve["true"]["strain"], atol=1e-12)
    assert curve["true"]["strain"][-1] == pytest.approx(39 * 0.004 / 6.0, rel=1e-9)
