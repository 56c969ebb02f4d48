"""Network LAMMPS data-file I/O: round trip, files made elsewhere, and refused files."""

from __future__ import annotations

import numpy as np
import pytest

from lmp_gnn.coupling._lammps import new_lammps
from lmp_gnn.physics.generate import jammed_network
from lmp_gnn.physics.network import Network, NetworkFormatError


@pytest.fixture(scope="module")
def net() -> Network:
    return jammed_network(48, seed=11)


def _min_image(d, box):
    return d - box * np.round(d / box)


def test_round_trip(net, tmp_path):
    path = net.write_lammps_data(tmp_path / "net.data")
    back = Network.read_lammps_data(path)
    assert back.n_nodes == net.n_nodes and back.n_bonds == net.n_bonds
    np.testing.assert_array_equal(back.box, net.box)
    np.testing.assert_array_equal(back.bonds, net.bonds)
    np.testing.assert_array_equal(back.rest_length, net.rest_length)  # %.17g is exact
    np.testing.assert_array_equal(back.stiffness, net.stiffness)
    # positions come back wrapped into the box; same points modulo the box
    np.testing.assert_allclose(_min_image(back.positions - net.positions, net.box), 0.0, atol=1e-13)
    np.testing.assert_allclose(back.bond_lengths(), net.bond_lengths(), rtol=1e-13)
    assert np.all(np.abs(back.positions) <= net.box / 2 + 1e-12)


def test_lammps_reads_our_file_unstressed(net, tmp_path):
    """LAMMPS reads the file as written (bond_style harmonic) and finds every bond at rest."""
    path = net.write_lammps_data(tmp_path / "net.data")
    lmp = new_lammps()
    try:
        for cmd in ("units lj", "dimension 2", "boundary p p p", "atom_style bond", "bond_style harmonic",
                    f"read_data {path}", "pair_style zero 1.0 nocoeff", "pair_coeff * *",
                    f"comm_modify cutoff {net.bond_lengths().max() + 1.0}", "thermo_modify norm no", "run 0"):
            lmp.command(cmd)
        assert lmp.get_natoms() == net.n_nodes
        assert lmp.extract_global("nbonds") == net.n_bonds
        assert abs(lmp.get_thermo("pe")) < 1e-20
        # a stretched copy has the energy Σ K (l - l_r)² that the docs state
        lmp.command("change_box all x scale 1.01 y scale 1.01 remap")
        lmp.command("run 0")
        l = net.bond_lengths() * 1.01
        expected = float(np.sum(net.stiffness * (l - net.rest_length) ** 2))
        assert lmp.get_thermo("pe") == pytest.approx(expected, rel=1e-10)
    finally:
        lmp.close()


FULL_STYLE = """LAMMPS data file written by another program

4 atoms
5 bonds
1 atom types
2 bond types

0.0 4.0 xlo xhi
-1.0 3.0 ylo yhi
-0.5 0.5 zlo zhi

Masses

1 1.0

Bond Coeffs # harmonic

1 0.5 2.0
2 0.25 1.5

Atoms # full

10 1 1 0.0 0.5 0.5 0.0 0 0 0
20 1 1 0.0 3.5 0.5 0.0 -1 0 0
30 1 1 0.0 0.5 2.5 0.0 0 0 0
40 1 1 0.0 2.0 1.0 0.0 0 0 0

Velocities

10 0 0 0
20 0 0 0
30 0 0 0
40 0 0 0

Bonds

1 1 10 20
2 2 10 30
3 1 20 40
4 2 30 40
5 1 10 40
"""


def test_foreign_full_style_with_images(tmp_path):
    path = tmp_path / "full.data"
    path.write_text(FULL_STYLE)
    net = Network.read_lammps_data(path)
    assert net.n_nodes == 4 and net.n_bonds == 5
    np.testing.assert_array_equal(net.box, [4.0, 4.0])
    # atom 20 has image flag ix = -1: unwrapped x = 3.5 - 4 = -0.5; box centre (2, 1) moves to 0
    np.testing.assert_allclose(net.positions, [[-1.5, -0.5], [-2.5, -0.5], [-1.5, 1.5], [0.0, 0.0]])
    np.testing.assert_array_equal(net.bonds, [[0, 1], [0, 2], [1, 3], [2, 3], [0, 3]])
    np.testing.assert_array_equal(net.stiffness, [0.5, 0.25, 0.5, 0.25, 0.5])
    np.testing.assert_array_equal(net.rest_length, [2.0, 1.5, 2.0, 1.5, 2.0])
    np.testing.assert_allclose(net.bond_lengths()[0], 1.0)  # minimum image across x


def test_foreign_without_bond_coeffs(tmp_path):
    """No Bond Coeffs: rest lengths are the lengths as read (minimum image), K = 1/l_r."""
    text = FULL_STYLE.replace("Bond Coeffs # harmonic\n\n1 0.5 2.0\n2 0.25 1.5\n\n", "")
    path = tmp_path / "nocoeffs.data"
    path.write_text(text)
    net = Network.read_lammps_data(path)
    # bond 20-40: d = (2.5, 0.5), minimum image (-1.5, 0.5)
    expected = np.array([1.0, 2.0, np.hypot(1.5, 0.5), np.hypot(1.5, 1.5), np.hypot(1.5, 0.5)])
    np.testing.assert_allclose(net.rest_length, expected, rtol=1e-14)
    np.testing.assert_allclose(net.stiffness, 1.0 / expected, rtol=1e-14)


def test_foreign_bond_style_without_images(tmp_path):
    text = """two triangles

3 atoms
3 bonds
1 atom types
1 bond types

-2 2 xlo xhi
-2 2 ylo yhi
-0.5 0.5 zlo zhi

Atoms # bond

1 1 1 0.0 0.0 0.0
2 1 1 1.0 0.0 0.0
3 1 1 0.5 0.8 0.0

Bonds

1 1 1 2
2 1 2 3
3 1 3 1
"""
    path = tmp_path / "bond.data"
    path.write_text(text)
    net = Network.read_lammps_data(path)
    np.testing.assert_allclose(net.positions, [[0, 0], [1, 0], [0.5, 0.8]])
    np.testing.assert_array_equal(net.bonds, [[0, 1], [1, 2], [2, 0]])
    np.testing.assert_allclose(net.rest_length, [1.0, np.hypot(0.5, 0.8), np.hypot(0.5, 0.8)])


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("5 bonds", "0 bonds"), "expected a network with bonds"),
    (lambda t: t.replace("4 atoms", "5 atoms"), "header says 5 atoms, Atoms section has 4"),
    (lambda t: t.replace("5 1 10 40", "5 1 10 99"), "a bond names atom 99, which is not in Atoms"),
    (lambda t: t.replace("2 0.25 1.5\n", ""), "bond types [2] have no Bond Coeffs"),
    (lambda t: t.replace("0.0 4.0 xlo xhi\n", ""), "missing xlo xhi / ylo yhi box lines"),
    (lambda t: t.replace("Atoms # full", "Atoms # atomic"),
     "expected atom_style bond, angle, molecular or full, got 'atomic'"),
    (lambda t: t.replace("40 1 1 0.0 2.0 1.0", "40 1 1 0.0 2.0 one"), "malformed Atoms or Bonds line"),
    (lambda t: t.replace("40 1 1 0.0 2.0", "30 1 1 0.0 2.0"), "expected unique atom IDs, got duplicates [30]"),
    (lambda t: t.replace("4 2 30 40\n", ""), "header says 5 bonds, Bonds section has 4"),
])
def test_bad_files_are_refused_with_a_reason(tmp_path, edit, message):
    path = tmp_path / "bad.data"
    path.write_text(edit(FULL_STYLE))
    with pytest.raises(NetworkFormatError) as info:
        Network.read_lammps_data(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_unreadable_and_empty_files(tmp_path):
    with pytest.raises(NetworkFormatError, match="cannot read network file"):
        Network.read_lammps_data(tmp_path / "missing.data")
    binary = tmp_path / "binary.data"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(NetworkFormatError, match="cannot read network file"):
        Network.read_lammps_data(binary)
    empty = tmp_path / "empty.data"
    empty.write_text("")
    with pytest.raises(NetworkFormatError, match="expected a LAMMPS data file with atoms, got none"):
        Network.read_lammps_data(empty)


def test_inconsistent_arrays_are_refused():
    pos = np.zeros((3, 2))
    with pytest.raises(NetworkFormatError, match=r"bond indices must lie in \[0, 3\), got \[0, 3\]"):
        Network(pos, [2.0, 2.0], [[0, 3]], [1.0])
    with pytest.raises(NetworkFormatError, match="expected 2 positive box lengths"):
        Network(pos, [2.0, -1.0], [[0, 1]], [1.0])
    with pytest.raises(NetworkFormatError, match="expected 1 rest lengths and stiffnesses"):
        Network(pos, [2.0, 2.0], [[0, 1]], [1.0, 2.0])
