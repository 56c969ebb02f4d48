"""Linear-response elastic constants: exact lattice values, LAMMPS agreement, floppy detection."""

from __future__ import annotations

import numpy as np
import pytest

from lmp_gnn.physics.elastic import (
    FloppyNetworkError,
    count_zero_modes,
    elastic_constants,
    hessian,
    lammps_elastic_constants,
    uniaxial_response,
)
from lmp_gnn.physics.generate import jammed_network
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.tuning import tune_poisson


def triangular_lattice(nx: int, ny: int, a: float = 1.0) -> Network:
    """Perfect triangular lattice, spacing a, nx × ny nodes (ny even), every bond at rest, K = 1/a."""
    h = np.sqrt(3.0) / 2.0 * a
    index = {(i, j): j * nx + i for j in range(ny) for i in range(nx)}
    pos = np.array([[a * (i + 0.5 * (j % 2)), j * h] for j in range(ny) for i in range(nx)])
    bonds = set()
    for (i, j), k in index.items():
        odd = j % 2
        for di, dj in ((1, 0), (odd - 1, 1), (odd, 1)):
            m = index[((i + di) % nx, (j + dj) % ny)]
            bonds.add((min(k, m), max(k, m)))
    box = np.array([nx * a, ny * h])
    pos = pos - box / 2 + 0.1 * a
    return Network(pos, box, np.array(sorted(bonds)), np.full(len(bonds), a))


def square_lattice(n: int) -> Network:
    """Periodic square lattice with nearest-neighbour bonds: floppy (rows and columns slide)."""
    pos = np.array([[i, j] for j in range(n) for i in range(n)], dtype=float) - n / 2 + 0.25
    bonds = [(j * n + i, j * n + (i + 1) % n) for j in range(n) for i in range(n)]
    bonds += [(j * n + i, ((j + 1) % n) * n + i) for j in range(n) for i in range(n)]
    return Network(pos, [n, n], bonds, np.ones(len(bonds)))


@pytest.mark.parametrize("a", [1.0, 1.3])
def test_triangular_lattice_exact(a):
    """E = K (l - a)², K = 1/a, i.e. spring constant k = 2/a: C11 = C22 = 3√3 k/4, C12 = C66 = √3 k/4."""
    ec = elastic_constants(triangular_lattice(6, 8, a))
    k = 2.0 / a
    s3 = np.sqrt(3.0)
    assert ec.C11 == pytest.approx(3 * s3 * k / 4, rel=1e-12)
    assert ec.C22 == pytest.approx(3 * s3 * k / 4, rel=1e-12)
    assert ec.C12 == pytest.approx(s3 * k / 4, rel=1e-12)
    assert ec.C66 == pytest.approx(s3 * k / 4, rel=1e-12)
    assert ec.C[0][2] == pytest.approx(0.0, abs=1e-12) and ec.C[1][2] == pytest.approx(0.0, abs=1e-12)
    assert ec.B == pytest.approx(s3 * k / 2, rel=1e-12)
    assert ec.G == pytest.approx(s3 * k / 4, rel=1e-12)
    assert ec.nu == pytest.approx(1.0 / 3.0, rel=1e-12)
    # a Bravais lattice deforms affinely: no non-affine relaxation
    np.testing.assert_allclose(ec.C, ec.C_affine, rtol=0, atol=1e-12)
    uni = uniaxial_response(triangular_lattice(6, 8, a))
    assert uni["nu_box"] == pytest.approx(1.0 / 3.0, rel=1e-12)
    assert uni["nu_est"] == pytest.approx(1.0 / 3.0, rel=1e-12)


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_hessian_zero_modes(method):
    nz, lam_max, soft = count_zero_modes(hessian(triangular_lattice(6, 6)), method=method)
    assert nz == 2
    k = 2.0
    # maximum of the triangular lattice's spectrum, at the M point: 2k·2·(n1n1ᵀ + n2n2ᵀ) → 6k
    assert lam_max == pytest.approx(6 * k, rel=1e-12)
    # lowest non-zero: the longest-wavelength transverse phonon of the 6-wide lattice
    dense = count_zero_modes(hessian(triangular_lattice(6, 6)), method="dense")
    assert soft == pytest.approx(dense[2], rel=1e-9)
    # the 5x5 square lattice: each row slides along x and each column along y (translations included)
    nz_sq, _, _ = count_zero_modes(hessian(square_lattice(5)), method=method)
    assert nz_sq == 10


@pytest.fixture(scope="module")
def jammed() -> Network:
    return jammed_network(64, seed=5)


def test_agrees_with_lammps_small_strain_minimisation(jammed):
    lr = elastic_constants(jammed)
    md = lammps_elastic_constants(jammed, strain=1e-6)
    C_lr, C_md = np.array(lr.C), np.array(md.C)
    assert np.abs(C_lr - C_md).max() < 1e-7 * np.abs(C_lr).max(), (C_lr, C_md)
    assert md.nu == pytest.approx(lr.nu, abs=1e-7)
    # the jammed network relaxes non-affinely: C is well below its affine part
    assert lr.B < 0.9 * (np.array(lr.C_affine)[0, 0] + np.array(lr.C_affine)[0, 1]) / 2


def test_auxetic_network_agrees_with_lammps(jammed):
    """After pruning to ν < 0 the non-affine part dominates; LAMMPS still agrees."""
    tuned, report = tune_poisson(jammed, -0.3, tol=0.02)
    lr = elastic_constants(tuned)
    md = lammps_elastic_constants(tuned, strain=1e-6)
    assert lr.nu < -0.28
    assert np.abs(np.array(lr.C) - np.array(md.C)).max() < 1e-7 * np.abs(np.array(lr.C)).max()
    assert md.nu == pytest.approx(lr.nu, abs=1e-6)


def test_floppy_square_lattice_is_detected():
    net = square_lattice(5)  # M = 2N passes the counting bound, but rows slide
    with pytest.raises(FloppyNetworkError,
                       match=r"expected 2 zero modes of the Hessian \(rigid translations\), got 10"):
        elastic_constants(net)


def test_too_few_bonds_is_floppy(jammed):
    keep = np.ones(jammed.n_bonds, dtype=bool)
    keep[: jammed.n_bonds - (2 * jammed.n_nodes - 3)] = False  # M = 2N - 3
    net = Network(jammed.positions, jammed.box, jammed.bonds[keep], jammed.rest_length[keep])
    with pytest.raises(FloppyNetworkError, match=r"cannot constrain .* non-trivial degrees of freedom"):
        elastic_constants(net)


def test_dangling_node_is_floppy():
    """One node of a rigid lattice held by a single bond: one extra zero mode (it swings)."""
    lat = triangular_lattice(6, 6)
    hub = 7
    held = np.flatnonzero((lat.bonds == hub).any(axis=1))
    keep = np.ones(lat.n_bonds, dtype=bool)
    keep[held[1:]] = False
    net = Network(lat.positions, lat.box, lat.bonds[keep], lat.rest_length[keep])
    with pytest.raises(FloppyNetworkError, match="got 3"):
        elastic_constants(net)


def test_network_out_of_equilibrium_is_refused():
    lat = triangular_lattice(6, 6)
    pos = lat.positions.copy()
    pos[3] += [0.05, 0.0]
    net = Network(pos, lat.box, lat.bonds, lat.rest_length)  # same rest lengths, node moved
    with pytest.raises(ValueError, match="expected a network at mechanical equilibrium"):
        elastic_constants(net)


def test_lammps_check_refuses_an_unconverged_minimisation(jammed):
    with pytest.raises(RuntimeError, match=r"expected LAMMPS CG to reach \|F\| ≤ 1e-13, got"):
        lammps_elastic_constants(jammed, strain=1e-6, max_iter=2)
