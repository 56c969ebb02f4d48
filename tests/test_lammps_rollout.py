"""lmp_gnn.coupling.lammps_rollout (fix gnn/rollout in LAMMPS) equals lmp_gnn.step.rollout (Python) on a real
compression trajectory; `lmp-gnn evaluate --engine lammps` runs it end to end."""

import json

import numpy as np
import pytest

from lmp_gnn.cli import main as cli_main
from lmp_gnn.coupling.lammps_rollout import lammps_rollout
from lmp_gnn.physics import md
from lmp_gnn.physics.generate import jammed_network
from lmp_gnn.physics.trajectory import save_trajectory
from lmp_gnn.step.rollout import load_model, rollout


@pytest.fixture(scope="module")
def trajectory():
    net = jammed_network(80, seed=5)
    return md.compress(net, max_strain=0.01, strain_rate=2.5e-5, thermostat="viscous")


@pytest.mark.parametrize("name", ["spring", "spring_h3", "spring_f32"])
def test_lammps_equals_python_rollout(models, trajectory, name):
    model = load_model(str(models[name]))
    start, n = model.history + 2, 30
    in_lammps = lammps_rollout(models[name], trajectory, start, n, model.history)
    in_python = rollout(model.module, trajectory, start, n, model.history, model.delta_l, model.dtype)
    tol = 1e-6 if name.endswith("f32") else 1e-12
    np.testing.assert_allclose(in_lammps.positions, in_python.positions, rtol=0, atol=tol)
    np.testing.assert_allclose(in_lammps.box, in_python.box, rtol=0, atol=tol)
    np.testing.assert_allclose(in_lammps.accelerations, in_python.accelerations, rtol=0, atol=tol)
    assert in_lammps.model_seconds.shape == (n,)


def test_lammps_rollout_arguments(models, trajectory):
    with pytest.raises(ValueError, match="expected history"):
        lammps_rollout(models["spring"], trajectory, 1, 5, 2)
    with pytest.raises(ValueError, match="expected n_steps >= 1"):
        lammps_rollout(models["spring"], trajectory, 3, 0, 2)


@pytest.mark.slow
def test_evaluate_engine_lammps_equals_python(models, trajectory, tmp_path):
    save_trajectory(tmp_path / "data" / "net_a.npz", trajectory)
    results = {}
    for engine in ("python", "lammps"):
        out = tmp_path / engine
        rc = cli_main(["evaluate", str(models["spring"]), "--data", str(tmp_path / "data"), "-o", str(out),
                       "--engine", engine, "--nu-steps", "5", "--mse-steps", "1", "5", "--strains", "0.005",
                       "--plot-networks", "0"])
        assert rc == 0
        results[engine] = json.loads((out / "results.json").read_text())
    a, b = (results[e]["networks"][0] for e in ("python", "lammps"))
    assert a["mse"]["learned"]["5"] == pytest.approx(b["mse"]["learned"]["5"], rel=1e-9)
    assert results["lammps"]["engine"] == "lammps"
