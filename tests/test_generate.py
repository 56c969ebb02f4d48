"""Jammed-disk network generation: determinism, the recipe's invariants, rigidity, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmp_gnn.cli import main
from lmp_gnn.physics.elastic import elastic_constants
from lmp_gnn.physics.generate import GENERATOR_VERSION, JammingError, jammed_network, prune_low_coordination
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.tuning import tune_poisson


@pytest.fixture(scope="module")
def net() -> Network:
    return jammed_network(128, seed=2)


def test_deterministic_for_a_seed(net):
    again = jammed_network(128, seed=2)
    np.testing.assert_array_equal(again.positions, net.positions)
    np.testing.assert_array_equal(again.bonds, net.bonds)
    np.testing.assert_array_equal(again.rest_length, net.rest_length)
    other = jammed_network(128, seed=3)
    assert other.n_bonds != net.n_bonds or not np.array_equal(other.positions, net.positions)


def test_recipe_invariants(net):
    assert net.bond_lengths().mean() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(net.rest_length, net.bond_lengths(), rtol=1e-12)  # unstressed
    np.testing.assert_allclose(net.stiffness, 1.0 / net.rest_length, rtol=1e-15)
    assert net.coordination().min() >= 3
    assert net.box[0] == net.box[1]
    assert np.all(np.abs(net.positions) <= net.box / 2)
    assert set(np.unique(net.node_type)) <= {1, 2, 3, 4}
    assert np.bincount(net.node_type, minlength=5)[1:].min() >= 0.2 * net.n_nodes  # ~equal proportions
    assert len({tuple(sorted(b)) for b in net.bonds.tolist()}) == net.n_bonds  # no duplicate bonds
    assert net.info["generator"] == GENERATOR_VERSION and net.info["seed"] == 2
    assert net.info["fire_fnorm"] <= net.info["fire_force_tol"] == pytest.approx(1e-10 * np.sqrt(128))
    assert 120 <= net.n_nodes <= 128


def test_bonds_are_the_contacts_of_the_packing(net):
    """Scaled back to disk units, every bond is shorter than its disks' sum of radii."""
    radii = np.array([0.5, 0.6, 0.7, 0.8])[net.node_type - 1]
    l_disk = net.bond_lengths() / net.info["length_scale"]
    assert np.all(l_disk < radii[net.bonds[:, 0]] + radii[net.bonds[:, 1]])
    # and the overlaps are small compared with the disk sizes (a jammed, not crushed, packing)
    overlap = radii[net.bonds[:, 0]] + radii[net.bonds[:, 1]] - l_disk
    assert overlap.max() < 0.2


def test_rigid_with_positive_poisson_ratio(net):
    """At φ = 0.95: Z ≈ 5.2 (well above isostatic 4) and ν > 0, as docs/physics.md §3 reports."""
    ec = elastic_constants(net)  # raises FloppyNetworkError if floppy
    assert 5.0 < 2 * net.n_bonds / net.n_nodes < 5.5
    assert ec.B > 0 and ec.G > 0
    assert 0.3 < ec.nu < 0.6


def test_lower_packing_fraction_gives_fewer_contacts():
    z = [2 * n.n_bonds / n.n_nodes for n in (jammed_network(128, seed=2, packing_fraction=0.88),
                                            jammed_network(128, seed=2, packing_fraction=0.95))]
    assert z[0] < z[1] - 0.3


def test_unconverged_jamming_is_an_error():
    with pytest.raises(JammingError, match=r"expected FIRE to reach \|F\| ≤ 1e-12 within 10 iterations"):
        jammed_network(64, seed=0, force_tol=1e-12, max_iter=10)


def test_prune_low_coordination_is_iterative():
    # K4 (every node 3 bonds) with a tree hanging off node 3: nodes 5 and 6 go first (1 bond),
    # which leaves node 4 with 1 bond, so it goes in the next sweep
    k4 = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    chain = [(3, 4), (4, 5), (4, 6)]
    kept, bonds = prune_low_coordination(7, np.array(k4 + chain))
    np.testing.assert_array_equal(kept, [0, 1, 2, 3])
    assert sorted(map(tuple, bonds.tolist())) == k4


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_disks=8, seed=0), "expected n_disks to be an integer ≥ 16, got 8"),
    (dict(n_disks=64, seed=-1), "expected a non-negative integer seed, got -1"),
    (dict(n_disks=64, seed=0, packing_fraction=0.0), "expected 0 < packing_fraction < 1.5, got 0.0"),
    (dict(n_disks=64, seed=0, force_tol=0.0), "expected force_tol > 0, got 0.0"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jammed_network(**kwargs)


def _wrap(d, box):
    return d - box * np.round(d / box)


@pytest.mark.slow
def test_networks_command_writes_resumable_output(tmp_path, capsys):
    out = tmp_path / "nets"
    argv = ["networks", "--count", "2", "--nodes", "64", "--nu-min", "0.1", "--nu-max", "0.3", "--workers", "2",
            "-o", str(out)]
    assert main(argv) == 0
    for i, target in enumerate((0.1, 0.3)):
        rec = json.loads((out / f"net_{i:04d}.json").read_text())
        net = Network.read_lammps_data(out / f"net_{i:04d}.data")
        assert rec["status"] == "ok" and rec["target"] == pytest.approx(target)
        assert rec["N"] == net.n_nodes and rec["M"] == net.n_bonds
        assert rec["Z"] == pytest.approx(2 * net.n_bonds / net.n_nodes)
        assert rec["generator_version"] == GENERATOR_VERSION
        ec = elastic_constants(net)
        assert ec.nu == pytest.approx(rec["nu"], abs=1e-9)
        assert abs(ec.nu - target) < 0.01
        assert abs(rec["uniaxial_x"]["nu_box"] - target) < 0.01  # the default objective is "joint"
        assert abs(rec["uniaxial_x"]["nu_est"] - target) < 0.01
        # the default linearity check passed: athermal compression to 1 % shows the linear ν
        lin = rec["linearity"]
        assert lin["ok"] and lin["strain"] == 0.01 and len(lin["nu_box"]) == len(lin["nu_est"]) == 4
        assert abs(lin["nu_box"][-1] - ec.nu) <= 0.03 and abs(lin["nu_est"][-1] - lin["nu_box"][-1]) <= 0.03
        assert lin["dev_box"] == pytest.approx(lin["nu_box"][-1] - ec.nu, abs=1e-9)
        assert rec["rejected_nonlinear"] == sum("NonlinearResponse" in e for e in rec["failed_attempts"])
        # a worker process made it; the recorded seed remakes it here, bit for bit
        again, _ = tune_poisson(jammed_network(64, rec["seed"]), target, objective="joint",
                                affine_slack=rec["affine_slack"])
        np.testing.assert_array_equal(again.bonds, net.bonds)
        np.testing.assert_allclose(_wrap(again.positions - net.positions, net.box), 0.0, atol=1e-12)
    summary = capsys.readouterr().out
    assert "2 of 2 networks" in summary and "ν histogram" in summary
    stamp = (out / "net_0000.json").stat().st_mtime_ns
    assert main(argv) == 0  # resumes: nothing to do
    assert (out / "net_0000.json").stat().st_mtime_ns == stamp
    assert "2 of 2 networks already in" in capsys.readouterr().out
    # the same directory with other targets is refused, not silently mixed
    assert main(argv[:-2] + ["--nu-max", "0.2", "-o", str(out)]) == 2
    assert "made with target = 0.3, this run expects 0.2" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--count", "0"], "--count: expected a positive integer, got 0"),
    (["--nu-min", "0.5", "--nu-max", "0.1"], "expected -1 < nu_min ≤ nu_max < 1, got 0.5 and 0.1"),
    (["--nodes", "4"], "--nodes: expected at least 16 disks, got 4"),
    (["--workers", "0"], "--workers: expected a positive integer, got 0"),
    (["--linear-tol", "0"], "--linear-tol: expected a positive tolerance, got 0.0"),
    (["--check-strain", "0.6"], "--check-strain: expected 0 (no check) or a strain in (0, 0.5), got 0.6"),
    (["--affine-slack", "1"], "--affine-slack: expected 0 ≤ slack < 1, got 1.0"),
])
def test_networks_command_bad_input(tmp_path, capsys, extra, message):
    assert main(["networks", "-o", str(tmp_path / "x")] + extra) == 2
    assert message in capsys.readouterr().err


def test_networks_command_rejects_nonlinear_networks(tmp_path, capsys):
    """A tolerance no network meets: every attempt is compressed, measured and rejected."""
    out = tmp_path / "nets"
    argv = ["networks", "--count", "1", "--nodes", "64", "--nu-min", "-0.2", "--nu-max", "-0.2", "--attempts", "2",
            "--linear-tol", "1e-5", "-o", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("NonlinearResponse: expected") == 2, f"expected 2 rejected attempts, got:\n{err}"
    assert "at 1 % strain within 1e-05 of the" in err
    assert not list(out.glob("*.json")) and not list(out.glob("*.data"))
    # without the check the same seeds are accepted, and the record says none was checked
    assert main(argv[:-2] + ["--check-strain", "0", "-o", str(out)]) == 0
    rec = json.loads((out / "net_0000.json").read_text())
    assert rec["linearity"] is None and rec["rejected_nonlinear"] == 0 and rec["attempt"] == 0


def test_linearity_check_measures_the_athermal_compression():
    from lmp_gnn.commands.networks import linearity_check
    from lmp_gnn.physics.elastic import uniaxial_response
    from lmp_gnn.physics.md import athermal_box_poisson

    net = jammed_network(64, 5)  # untuned: nearly linear to 1 %
    nu = uniaxial_response(net, "x")["nu_box"]  # the linear box ν of this (anisotropic, small) network
    lin = linearity_check(net, nu, 0.01, 0.03)
    assert lin["ok"] and lin["message"] == ""
    assert abs(lin["dev_box"]) < 0.01, f"expected an untuned network linear to 1 %, got ν_box - ν = {lin['dev_box']}"
    # the last increment's box ν is the athermal reference at that strain
    assert lin["nu_box"][-1] == pytest.approx(athermal_box_poisson(net, 0.01, increments=4), abs=1e-12)
    bad = linearity_check(net, nu + 0.05, 0.01, 0.03)  # a linear ν it does not have
    assert not bad["ok"] and "expected the box ν at 1 % strain within 0.03 of the linear ν" in bad["message"]
