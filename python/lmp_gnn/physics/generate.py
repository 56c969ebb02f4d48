"""Disordered elastic networks from jammed packings of soft disks (the paper's supplement §I.A.2).

Recipe (docs/physics.md §3):

1. N soft disks of 4 diameters (1.0, 1.2, 1.4, 1.6 by default), in equal proportions, are
   placed uniformly at random in a square periodic 2D box whose side gives the requested
   packing fraction φ = Σ π R_i² / L².
2. The packing is relaxed with FIRE in LAMMPS (run in-process through `new_lammps()`) under a
   purely repulsive harmonic overlap force F = k_n δ n with k_n = 1, δ = R_i + R_j - r_ij:
   `pair_style harmonic/cut` with E = k (r_c - r)² for r < r_c, so k = k_n / 2 and
   r_c = R_i + R_j per type pair.
3. A node is put at each disk centre and a bond between every pair of disks in contact
   (r_ij < R_i + R_j); nodes with fewer than 3 bonds are removed iteratively.
4. Lengths are rescaled so that the mean bond length is 1; each bond's rest length is its
   length at creation (the network is unstressed) and its stiffness is K = 1 / l_r
   (E = K (l - l_r)², LAMMPS `bond_style harmonic`).

Angle-bending terms (the paper's optional K_ang) are not generated: the project's networks
have K_ang = 0 (docs/physics.md §2). A network with angles would need atom_style angle files and an
elastic model with bending terms; neither exists yet.

The whole procedure is deterministic for a given seed (numpy's PCG64 for the initial positions,
a single-rank LAMMPS minimisation).
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.spatial import cKDTree

from lmp_gnn.coupling._lammps import new_lammps
from lmp_gnn.physics.network import Network

#: Bumped whenever the recipe changes in a way that changes the networks made for a seed.
GENERATOR_VERSION = "jammed-1"

DEFAULT_DIAMETERS = (1.0, 1.2, 1.4, 1.6)


class JammingError(RuntimeError):
    """The packing did not jam into a usable network (too few contacts, minimiser failure)."""


def jammed_network(n_disks: int, seed: int, packing_fraction: float = 0.95, *,
                   diameters: tuple[float, ...] = DEFAULT_DIAMETERS, k_n: float = 1.0,
                   force_tol: float | None = None, max_iter: int = 200_000,
                   check_rigid: bool = True) -> Network:
    """Jam `n_disks` soft disks in a periodic square box and return their contact network.

    Args:
        n_disks: number of disks before pruning (≥ 16). The network keeps the disks with at
            least 3 contacts, typically ≥ 99 % of them at φ = 0.95 (most disks there have 5–6 contacts).
        seed: random seed of the initial placement; the same seed gives the same network.
        packing_fraction: φ = Σ π R² / L² (0 < φ < 1.5); φ well above jamming (≈ 0.84)
            gives mean coordination Z ≈ 5.2 at 0.95.
        diameters: the disk diameters, used in equal proportions (disk i gets class i mod n).
        k_n: normal contact stiffness of the overlap force F = k_n δ.
        force_tol: FIRE stops when the 2-norm of the global force vector falls below this
            (disk units); default 1e-10·sqrt(n_disks), i.e. ~1e-10 per disk. Tighter is wasted:
            the contact set is the same from 1e-6 to 1e-12 at N = 300 and 3000, while at
            N = 20000 FIRE did not reach 1e-12 in 200k iterations (1.4e-8: 5.5k iterations).
        max_iter: maximum FIRE iterations; not converging by then raises JammingError.
        check_rigid: compute the linear-response moduli and raise `FloppyNetworkError`
            (from `lmp_gnn.physics.elastic`) if the network has a zero mode beyond the two
            translations.

    Returns:
        A `Network` with positions [N, 2] (box centred at the origin, mean bond length 1),
        bonds [M, 2], rest_length [M] = the lengths, stiffness [M] = 1 / rest_length,
        node_type [N] = disk class 1..len(diameters), and `info` with the seed, the generator
        version, the packing fraction, the disk counts, the minimiser's final energy and force,
        the length scale and the wall time.

    Raises:
        ValueError: bad arguments.
        JammingError: FIRE did not converge, or no network was left after pruning.
        lmp_gnn.physics.elastic.FloppyNetworkError: `check_rigid` and the network is floppy.
    """
    if int(n_disks) != n_disks or n_disks < 16:
        raise ValueError(f"expected n_disks to be an integer ≥ 16, got {n_disks!r}")
    if not 0.0 < packing_fraction < 1.5:
        raise ValueError(f"expected 0 < packing_fraction < 1.5, got {packing_fraction}")
    if len(diameters) < 1 or min(diameters) <= 0:
        raise ValueError(f"expected positive diameters, got {diameters}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"expected a non-negative integer seed, got {seed!r}")
    n_disks, seed = int(n_disks), int(seed)
    if force_tol is None:
        force_tol = 1e-10 * math.sqrt(n_disks)
    if not force_tol > 0:
        raise ValueError(f"expected force_tol > 0, got {force_tol}")
    t0 = time.perf_counter()

    radius_of_class = np.asarray(diameters, dtype=np.float64) / 2.0
    n_classes = len(diameters)
    disk_class = np.arange(n_disks) % n_classes  # equal proportions
    radii = radius_of_class[disk_class]
    box_len = math.sqrt(np.sum(np.pi * radii**2) / packing_fraction)
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.0, box_len, size=(n_disks, 2))

    pos, energy, fnorm, n_iter = _fire_relax(start, disk_class, radius_of_class, box_len, k_n,
                                             force_tol, max_iter)
    if not fnorm <= force_tol:
        raise JammingError(f"expected FIRE to reach |F| ≤ {force_tol:.3g} within {max_iter} iterations, got "
                           f"|F| = {fnorm:.3g} after {n_iter} (n_disks={n_disks}, seed={seed}); "
                           "raise max_iter or force_tol")

    # contacts: centre distance below the sum of radii (minimum image)
    pos = np.mod(pos, box_len)
    tree = cKDTree(pos, boxsize=box_len)
    pairs = tree.query_pairs(r=2.0 * radius_of_class.max(), output_type="ndarray")
    d = pos[pairs[:, 1]] - pos[pairs[:, 0]]
    d -= box_len * np.round(d / box_len)
    dist = np.linalg.norm(d, axis=1)
    in_contact = dist < radii[pairs[:, 0]] + radii[pairs[:, 1]]
    bonds = pairs[in_contact]

    keep_nodes, bonds = prune_low_coordination(n_disks, bonds, min_bonds=3)
    if len(keep_nodes) < 3 or len(bonds) == 0:
        raise JammingError(f"expected a contact network after pruning, got {len(keep_nodes)} nodes "
                           f"and {len(bonds)} bonds (n_disks={n_disks}, φ={packing_fraction}, seed={seed})")

    pos = pos[keep_nodes]
    box = np.array([box_len, box_len])
    d = pos[bonds[:, 1]] - pos[bonds[:, 0]]
    d -= box * np.round(d / box)
    lengths = np.linalg.norm(d, axis=1)
    scale = 1.0 / lengths.mean()
    pos = (pos - box / 2.0) * scale
    box = box * scale
    pos -= box * np.round(pos / box)  # wrap into [-L/2, L/2)
    rest = lengths * scale

    counts = np.bincount(disk_class[keep_nodes], minlength=n_classes)
    net = Network(pos, box, bonds, rest, 1.0 / rest, disk_class[keep_nodes] + 1, {
        "generator": GENERATOR_VERSION,
        "seed": seed,
        "n_disks": n_disks,
        "packing_fraction": float(packing_fraction),
        "diameters": [float(x) for x in diameters],
        "k_n": float(k_n),
        "disks_per_class_kept": [int(c) for c in counts],
        "fire_force_tol": float(force_tol),
        "fire_iterations": int(n_iter),
        "fire_energy": float(energy),
        "fire_fnorm": float(fnorm),
        "length_scale": float(scale),
        "mean_coordination": float(2.0 * len(bonds) / len(keep_nodes)),
    })
    if check_rigid:
        from lmp_gnn.physics.elastic import elastic_constants  # raises FloppyNetworkError

        elastic_constants(net)
    net.info["wall_time_s"] = time.perf_counter() - t0
    return net


def prune_low_coordination(n_nodes: int, bonds: np.ndarray, min_bonds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Remove nodes with fewer than `min_bonds` bonds, repeatedly, until none is left.

    Args:
        n_nodes: number of nodes N.
        bonds: [M, 2] node index pairs.
        min_bonds: the minimum coordination a kept node must have.

    Returns:
        (kept, bonds): kept [N'] the original indices of the kept nodes (ascending), and
        bonds [M', 2] the surviving bonds re-indexed to 0..N'-1.
    """
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    alive = np.ones(n_nodes, dtype=bool)
    while True:
        z = np.bincount(bonds.reshape(-1), minlength=n_nodes)
        weak = alive & (z < min_bonds)
        if not weak.any():
            break
        alive &= ~weak
        bonds = bonds[alive[bonds[:, 0]] & alive[bonds[:, 1]]]
    kept = np.flatnonzero(alive)
    new_index = np.full(n_nodes, -1, dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    return kept, new_index[bonds]


def _fire_relax(start: np.ndarray, disk_class: np.ndarray, radius_of_class: np.ndarray, box_len: float,
                k_n: float, force_tol: float, max_iter: int) -> tuple[np.ndarray, float, float, int]:
    """FIRE-minimise the soft-disk packing in LAMMPS; return (positions [N, 2], energy, |F|, iterations)."""
    n = len(start)
    n_classes = len(radius_of_class)
    lmp = new_lammps()
    try:
        for cmd in ("units lj", "dimension 2", "boundary p p p", "atom_style atomic",
                    "atom_modify map array sort 0 0.0",
                    f"region box block 0 {float(box_len):.17g} 0 {float(box_len):.17g} -0.5 0.5",
                    f"create_box {n_classes} box"):
            lmp.command(cmd)
        ids = list(range(1, n + 1))
        types = [int(c) + 1 for c in disk_class]
        x = np.zeros((n, 3))
        x[:, :2] = start
        lmp.create_atoms(n, ids, types, x.reshape(-1).tolist())
        lmp.command("mass * 1.0")
        lmp.command("pair_style harmonic/cut")
        for a in range(n_classes):
            for b in range(a, n_classes):
                rc = radius_of_class[a] + radius_of_class[b]
                lmp.command(f"pair_coeff {a + 1} {b + 1} {float(k_n / 2.0):.17g} {float(rc):.17g}")
        lmp.command("neighbor 0.3 bin")
        lmp.command("neigh_modify delay 0 every 1 check yes")
        lmp.command("timestep 0.05")
        lmp.command("thermo_style custom step pe fnorm")
        lmp.command("min_style fire")
        lmp.command(f"minimize 0.0 {float(force_tol):.17g} {int(max_iter)} {10 * int(max_iter)}")
        energy = float(lmp.get_thermo("pe")) * n  # thermo pe is per atom in lj units
        fnorm = float(lmp.get_thermo("fnorm"))
        n_iter = int(lmp.get_thermo("step"))
        tags = np.array(lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
        pos = np.array(lmp.numpy.extract_atom("x")[:n, :2], dtype=np.float64)
        out = np.empty_like(pos)
        out[tags - 1] = pos
    finally:
        lmp.close()
    return out, energy, fnorm, n_iter


def triangular_network(nx: int = 10, ny: int = 10, seed: int = 0, jitter: float = 0.05,
                       rest_spread: float = 0.05) -> Network:
    """A periodic triangular lattice of spacing 1, nx × ny nodes (ny even), centred at the origin.

    Every node has 6 bonds. `jitter` displaces the nodes uniformly in ±jitter and `rest_spread`
    spreads the rest lengths by a factor 1 ± rest_spread around the lengths as built (both 0: the
    perfect lattice, ν = 1/3 for central forces), so that a spring model has non-zero forces.
    Used by tests, examples and benchmarks that need a network made in a millisecond.
    """
    if ny % 2:
        raise ValueError(f"expected an even ny for a periodic triangular lattice, got {ny}")
    rng = np.random.default_rng(seed)
    h = np.sqrt(3.0) / 2.0
    box = np.array([nx * 1.0, ny * h])
    idx = lambda i, j: (j % ny) * nx + (i % nx)  # noqa: E731
    pos = np.array([[i + 0.5 * (j % 2), j * h] for j in range(ny) for i in range(nx)], dtype=float)
    pos -= box / 2 - np.array([0.25, h / 2])
    pos += rng.uniform(-jitter, jitter, pos.shape)
    bonds = []
    for j in range(ny):
        for i in range(nx):
            bonds.append((idx(i, j), idx(i + 1, j)))
            if j % 2 == 0:
                bonds.append((idx(i, j), idx(i, j + 1)))
                bonds.append((idx(i, j), idx(i - 1, j + 1)))
            else:
                bonds.append((idx(i, j), idx(i, j + 1)))
                bonds.append((idx(i, j), idx(i + 1, j + 1)))
    bond_array = np.array(bonds, dtype=np.int64)
    net = Network(pos - box * np.round(pos / box), box, bond_array, np.ones(len(bond_array)))
    rest = net.bond_lengths() * (1.0 + rng.uniform(-rest_spread, rest_spread, len(bond_array)))
    return Network(net.positions, box, bond_array, rest)
