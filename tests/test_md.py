"""md.compress on tiny real networks in real LAMMPS: shapes, metadata, the snapshot rule, physics."""

from __future__ import annotations

import numpy as np
import pytest

from lmp_gnn.physics.md import compress, md_steps_per_snapshot
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.poisson import box_poisson, estimator_poisson
from lmp_gnn.physics.trajectory import load_trajectory, save_trajectory


def triangular_lattice(nx: int, ny: int, shift: float = 0.0) -> Network:
    """A perfect triangular lattice (spacing 1, every bond at rest) in a periodic box, nx × ny nodes (ny even)."""
    h = np.sqrt(3.0) / 2.0
    index = {(i, j): j * nx + i for j in range(ny) for i in range(nx)}
    pos = np.array([[i + 0.5 * (j % 2), j * h] for j in range(ny) for i in range(nx)])
    bonds = set()
    for (i, j), k in index.items():
        odd = j % 2
        for di, dj in ((1, 0), (odd - 1, 1), (odd, 1)):
            m = index[((i + di) % nx, (j + dj) % ny)]
            bonds.add((min(k, m), max(k, m)))
    box = np.array([nx, ny * h])
    pos = pos - box / 2 + 0.25 + shift  # off the boundary; `shift` moves nodes across it
    return Network(pos, box, np.array(sorted(bonds)), np.ones(len(bonds)))


@pytest.fixture(scope="module")
def lattice() -> Network:
    return triangular_lattice(6, 6, shift=2.9)


@pytest.fixture(scope="module")
def traj(lattice):
    return compress(lattice, max_strain=0.01, delta_l=2e-3)


def test_shapes_and_metadata(lattice, traj):
    n_steps = int(np.floor(0.01 * 6.0 / 2e-3 + 1e-9))  # 30
    assert traj.positions.shape == (n_steps + 1, lattice.n_nodes, 2)
    assert traj.box.shape == (n_steps + 1, 2)
    np.testing.assert_array_equal(traj.bonds, lattice.bonds)
    np.testing.assert_array_equal(traj.rest_length, lattice.rest_length)
    m = traj.metadata
    for key in ("generator_version", "n_nodes", "n_bonds", "temperature", "strain_rate", "timestep", "delta_l",
                "md_steps_per_snapshot", "max_strain", "axis", "seed", "nu_linear", "network", "wall_time_s"):
        assert key in m, key
    assert m["n_nodes"] == 36 and m["n_bonds"] == 108 and m["axis"] == "x"
    xi = md_steps_per_snapshot(6.0, 2e-3, 2.5e-6, 0.05)
    assert xi == round(2e-3 / (2.5e-6 * 0.05 * 6.0)) == m["md_steps_per_snapshot"]
    # the used rate makes ξ steps exactly Δl
    assert m["strain_rate"] * m["timestep"] * m["md_steps_per_snapshot"] * 6.0 == pytest.approx(2e-3, rel=1e-12)
    assert abs(m["strain_rate"] / 2.5e-6 - 1) < 0.5 / xi


def test_snapshot_rule_lx(traj):
    t = np.arange(traj.n_snapshots)
    np.testing.assert_allclose(traj.box[:, 0], 6.0 - t * 2e-3, rtol=0, atol=1e-12)
    assert np.all(np.diff(traj.box[:, 1]) > 0)  # positive ν: y expands under x compression


def test_positions_unwrapped_centred_and_affine(lattice, traj):
    p, b = traj.positions, traj.box
    # snapshot 0: the network itself (wrapped into the centred box), relaxed at T = 1e-10
    wrapped = lattice.wrapped_positions()
    assert np.abs(p[0] - wrapped).max() < 1e-4
    assert np.all(np.abs(p[0]) <= b[0] / 2 + 1e-9)
    # unwrapped: no jumps of a box length between snapshots
    assert np.abs(np.diff(p, axis=0)).max() < 2e-3
    # a perfect lattice deforms affinely about the box centre
    affine = p[0] * (b[-1] / b[0])
    assert np.abs(p[-1] - affine).max() < 1e-4


def test_triangular_lattice_poisson_one_third(traj):
    # central-force triangular lattice: ν = 1/3 in linear response
    assert box_poisson(traj, 0.01) == pytest.approx(1 / 3, abs=5e-3)
    assert box_poisson(traj, 0.005) == pytest.approx(1 / 3, abs=5e-3)
    assert estimator_poisson(traj, -1) == pytest.approx(1 / 3, abs=5e-3)


def test_reproducible_and_seeded(lattice):
    a = compress(lattice, max_strain=0.004, temperature=1e-6, seed=3)
    b = compress(lattice, max_strain=0.004, temperature=1e-6, seed=3)
    c = compress(lattice, max_strain=0.004, temperature=1e-6, seed=4)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert np.abs(a.positions - c.positions).max() > 1e-5  # thermal noise sqrt(T/K) ~ 1e-3
    assert a.metadata["temperature"] == 1e-6


def test_low_temperature_and_viscous(lattice):
    cold = compress(lattice, max_strain=0.004, temperature=1e-11)
    visc = compress(lattice, max_strain=0.004, thermostat="viscous")
    assert visc.metadata["temperature"] == 0.0 and visc.metadata["thermostat"] == "viscous"
    assert np.abs(cold.positions - visc.positions).max() < 1e-4


def test_from_data_file_round_trip(tmp_path, lattice):
    path = lattice.write_lammps_data(tmp_path / "lat.data")
    net = Network.read_lammps_data(path)
    net.info["nu_linear"] = 1 / 3
    traj = compress(net, max_strain=0.002, delta_l=4e-3)
    assert traj.n_snapshots == 4
    assert traj.metadata["network"] == "lat.data" and traj.metadata["nu_linear"] == pytest.approx(1 / 3)
    back = load_trajectory(save_trajectory(tmp_path / "lat.npz", traj))
    np.testing.assert_array_equal(back.positions, traj.positions)
    assert back.metadata["format_version"] == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_strain=0.0), "expected 0 < max_strain < 0.5, got 0.0"),
    (dict(max_strain=0.5), "expected 0 < max_strain < 0.5, got 0.5"),
    (dict(max_strain=-0.01), "expected 0 < max_strain < 0.5, got -0.01"),
    (dict(delta_l=0.0), "expected delta_l > 0, got 0.0"),
    (dict(delta_l=0.5), "expected delta_l ≤ the total compression max_strain·Lx0 = 0.3, got 0.5"),
    (dict(temperature=0.0), "expected temperature > 0, got 0.0"),
    (dict(strain_rate=-2.5e-6), "expected strain_rate > 0 (compression), got -2.5e-06"),
    (dict(timestep=0.0), "expected timestep > 0, got 0.0"),
    (dict(damp=-1.0), "expected damp > 0, got -1.0"),
    (dict(seed=-1), "expected seed to be an int ≥ 0, got -1"),
    (dict(seed=1.5), "expected seed to be an int ≥ 0, got 1.5"),
    (dict(thermostat="nose"), "expected thermostat in ('langevin', 'viscous'), got 'nose'"),
    (dict(max_strain=float("nan")), "expected a finite number for max_strain, got nan"),
    (dict(delta_l=1e-9), "less than half an MD step of deformation"),
])
def test_bad_arguments(lattice, kwargs, message):
    with pytest.raises(ValueError, match=_escape(message)):
        compress(lattice, **kwargs)


def test_box_too_small_for_bonds():
    net = Network(np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, 0.8]]), np.array([2.0, 2.0]),
                  np.array([[0, 1], [1, 2], [0, 2]]), np.ones(3))
    with pytest.raises(ValueError, match=r"expected box lengths above 2.2 × the longest bond"):
        compress(net)


def _escape(s: str) -> str:
    import re

    return re.escape(s)


def test_athermal_reference_matches_md(lattice, traj):
    from lmp_gnn.physics.md import athermal_box_poisson

    strain = 1 - traj.box[-1, 0] / traj.box[0, 0]
    nu0 = athermal_box_poisson(lattice, strain)
    assert nu0 == pytest.approx(box_poisson(traj, strain), abs=1e-3)
    assert nu0 == pytest.approx(1 / 3, abs=5e-3)
    with pytest.raises(ValueError, match="expected 0 < strain < 0.5, got 0.6"):
        athermal_box_poisson(lattice, 0.6)
