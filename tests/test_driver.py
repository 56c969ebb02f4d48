"""CompressionDriver: MD segments equal md.compress; learned segments are the Python rollout,
written back into LAMMPS so that MD resumes where the model left off; MPI ranks agree."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lmp_gnn.coupling.driver import CompressionDriver
from lmp_gnn.physics import md
from lmp_gnn.physics.generate import jammed_network
from lmp_gnn.physics.trajectory import load_trajectory
from lmp_gnn.step.rollout import rollout, zero_acceleration_model

RATE = 2.5e-5   # 10x the default: a fast but still smooth compression of a tiny network
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def net():
    return jammed_network(80, seed=3)


@pytest.fixture(scope="module")
def reference(net):
    """An uninterrupted driver MD run of 12 snapshots."""
    with CompressionDriver(net, strain_rate=RATE) as d:
        d.run_md(12)
        return d.trajectory()


def test_md_segments_equal_compress(net, reference):
    traj = md.compress(net, max_strain=12 * 2e-3 / net.box[0] + 1e-9, strain_rate=RATE)
    assert traj.positions.shape == reference.positions.shape
    np.testing.assert_allclose(reference.positions, traj.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(reference.box, traj.box, rtol=0, atol=1e-12)
    assert reference.metadata["source"] == ["md"] * 13


def test_md_segments_in_pieces_follow_delta_l(net):
    with CompressionDriver(net, strain_rate=RATE) as d:
        d.run_md(3)
        d.run_md(4)
        box = d.trajectory().box
    np.testing.assert_allclose(np.diff(box[:, 0]), -2e-3, rtol=0, atol=1e-12)


def test_learned_segment_is_the_python_rollout(net, reference):
    with CompressionDriver(net, strain_rate=RATE) as d:
        d.run_md(5)
        d.run_learned(zero_acceleration_model, 4, history=2)
        traj = d.trajectory()
    expected = rollout(zero_acceleration_model, {k: getattr(reference, k) for k in
                       ("positions", "box", "bonds", "rest_length")}, start=5, n_steps=4, history=2, delta_l=2e-3)
    np.testing.assert_allclose(traj.positions, expected.positions, rtol=0, atol=1e-12)
    np.testing.assert_allclose(traj.box, expected.box, rtol=0, atol=1e-12)
    assert traj.metadata["source"] == ["md"] * 6 + ["learned"] * 4


def test_md_resumes_where_an_exact_model_left_off(net, reference):
    """An oracle model (the true accelerations) for 2 steps, then MD: close to uninterrupted MD."""
    R = torch.as_tensor(reference.positions)
    clock = {"t": 6}

    def oracle(x, edge_index, edge_features):
        t = clock["t"]
        clock["t"] += 1
        return (R[t + 1] - 2 * R[t] + R[t - 1]).to(x.dtype)

    with CompressionDriver(net, strain_rate=RATE) as d:
        d.run_md(6)
        d.run_learned(oracle, 2, history=2)
        d.run_md(4)
        traj = d.trajectory()
    np.testing.assert_allclose(traj.positions[:9], reference.positions[:9], rtol=0, atol=1e-12)
    v, v_ref = np.diff(traj.positions, axis=0), np.diff(reference.positions, axis=0)
    speed = np.abs(v_ref[8:]).max()
    # after the switch back to MD the velocity continues: no jump beyond 10 % of the speed
    # (the residue is the box rule's free-axis estimate and the thermostat's noise stream)
    assert np.abs(v[8:] - v_ref[8:]).max() < 0.1 * speed


def test_bad_schedule_and_model_arguments(net):
    with CompressionDriver(net, strain_rate=RATE) as d:
        with pytest.raises(ValueError, match="expected at least 3 snapshots"):
            d.run_learned(zero_acceleration_model, 2, history=2)
        with pytest.raises(ValueError, match="expected history="):
            d.run_learned(zero_acceleration_model, 2)
        with pytest.raises(ValueError, match="expected segment kind"):
            d.run_schedule([("minimize", 3)])


@pytest.mark.slow
def test_mpi_two_ranks_equal_one(net, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    bindir = Path(sys.executable).parent
    script = ROOT / "examples" / "driver" / "mpi_parity.py"
    one, two = tmp_path / "np1.npz", tmp_path / "np2.npz"
    data = net.write_lammps_data(tmp_path / "net.data")
    subprocess.run([sys.executable, script, data, one], check=True, env=env, timeout=300)
    subprocess.run([bindir / "mpirun", "-np", "2", sys.executable, script, data, two], check=True, env=env,
                   timeout=300)
    a, b = load_trajectory(one), load_trajectory(two)
    assert a.metadata["source"] == ["md"] * 5 + ["learned"] * 3 + ["md"] * 3
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b.box, a.box, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_compare_example_runs(net, tmp_path):
    """examples/driver/compare.py as a user runs it: MD vs learned vs baseline, ν vs strain plot."""
    from fixtures.make_models import make_models

    model = make_models(tmp_path / "models")["spring"]
    data = net.write_lammps_data(tmp_path / "net.data")
    out = tmp_path / "compare.png"
    proc = subprocess.run([sys.executable, ROOT / "examples" / "driver" / "compare.py", data, "--model", model,
                           "--strain", "0.004", "-o", out], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert "true MD" in proc.stdout and "baseline" in proc.stdout
    assert out.stat().st_size > 10_000
