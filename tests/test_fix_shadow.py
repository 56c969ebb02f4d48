"""fix gnn/rollout mode shadow: true MD integrates (fix nve), the fix records a snapshot every
`every` MD steps, predicts the next snapshot from the true history (one-step MSE) and runs a
free-running learned copy (rollout MSE, nu_est of truth and copy). Everything is recomputed here
from a dump of the same snapshots with lmp_gnn.step.features and lmp_gnn.step.rollout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.lammps_run import read_dump, run_in_process
from fixtures.lattice import deck_header, triangular_network
from fixtures.make_models import DEFAULT_METADATA
from lmp_gnn.physics.poisson import estimator_poisson
from lmp_gnn.step import features
from lmp_gnn.step.rollout import rollout
from lmp_gnn.step.rules import nu_estimator

EVERY = 10
SNAPS = 12          # snapshots 0 .. SNAPS-1
DELTA_L = float(DEFAULT_METADATA["delta_l"])


@pytest.mark.parametrize("name,h", [("spring", 2), ("spring_h3", 3)])
def test_shadow_scores_equal_python(models, tmp_path, name, h):
    """On a non-square box (8×8 triangular lattice, Ly/Lx = 0.87) whose nodes drift across the
    periodic boundaries, every live figure of the shadow equals the library's: the MSEs, and ν_est
    of truth and learned copy as lmp_gnn.physics.poisson computes it (each node followed continuously)."""
    net = triangular_network(8, 8, seed=5)
    assert abs(net.box[1] / net.box[0] - 1.0) > 0.1
    data = net.write_lammps_data(tmp_path / "net.data")
    dump = tmp_path / "snap.dump"
    lmp = run_in_process(deck_header(data) + f"""
velocity all create 1e-4 4 loop geom
velocity all set 0.1 0.15 NULL sum yes
fix md all nve
fix sh all gnn/rollout {models[name]} mode shadow every {EVERY}
dump d all custom {EVERY} {dump} id xu yu
dump_modify d format float %.17g sort id
run {EVERY * (SNAPS - 1)}
""")
    values = [lmp.extract_fix("sh", 0, 1, k) for k in range(11)]
    lmp.close()
    R, L = read_dump(dump, net.n_nodes)
    assert R.shape[0] == SNAPS
    crossed = np.round(R[-1] / L[-1]) != np.round(R[0] / L[0])
    assert crossed[:, 0].sum() >= 4 and crossed[:, 1].sum() >= 4      # nodes crossed both boundaries
    model = torch.jit.load(str(models[name]))
    ei = features.edge_index_from_bonds(torch.as_tensor(net.bonds))
    rest = torch.as_tensor(np.concatenate([net.rest_length, net.rest_length]))
    Rt = torch.as_tensor(R)

    # one-step prediction of the last snapshot from the truth one snapshot before
    t = SNAPS - 2
    V = features.velocity_history(Rt, t, h)
    a = model(features.node_features(V), ei, features.edge_features(Rt[t], torch.as_tensor(L[t]), ei, rest))
    pred = R[t] + V[0].numpy() + a.detach().numpy()
    mse_one = np.mean((R[t + 1] - pred) ** 2)

    # the learned copy starts from the truth at snapshot h
    ref = rollout(model, {"positions": R[: h + 1], "box": L[: h + 1], "bonds": net.bonds,
                          "rest_length": net.rest_length}, start=h, n_steps=SNAPS - 1 - h, history=h,
                  delta_l=DELTA_L)
    mse_roll = np.mean((ref.positions[-1] - R[-1]) ** 2)

    assert values[0] == SNAPS - 1 - h + 1          # learned steps: one per snapshot from s = h on
    assert values[10] == SNAPS
    assert mse_one > 0 and mse_roll > mse_one
    assert values[6] == pytest.approx(mse_one, rel=1e-8)
    assert values[7] == pytest.approx(mse_roll, rel=1e-8)
    assert values[8] == pytest.approx(nu_estimator(R[0], R[-1], L[0], L[-1]), rel=1e-8)
    assert values[9] == pytest.approx(estimator_poisson(ref, -1), rel=1e-8)


def test_shadow_restart_equals_continuous_run(models, tmp_path):
    """run 60 + write_restart, read_restart + run 60 == run 120 (snapshots, copy and box restored)."""
    data = triangular_network(8, 8, seed=6).write_lammps_data(tmp_path / "net.data")
    fixes = f"""fix md all nve
fix sh all gnn/rollout {models['spring']} mode shadow every {EVERY}
"""
    full = run_in_process(deck_header(data) + "velocity all create 1e-4 4 loop geom\n" + fixes + "run 120\n")
    first = run_in_process(deck_header(data) + "velocity all create 1e-4 4 loop geom\n" + fixes +
                           f"run 60\nwrite_restart {tmp_path / 'half.restart'}\n")
    first.close()
    second = run_in_process(f"read_restart {tmp_path / 'half.restart'}\ncomm_modify cutoff 3.0\n" + fixes + "run 60\n")
    a = [full.extract_fix("sh", 0, 1, k) for k in (0, 6, 7, 8, 9, 10)]
    b = [second.extract_fix("sh", 0, 1, k) for k in (0, 6, 7, 8, 9, 10)]
    assert a[0] == 11 and a[5] == 13
    np.testing.assert_allclose(b, a, rtol=1e-10)
    full.close()
    second.close()
