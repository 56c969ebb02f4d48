"""The elastic network: nodes in a periodic 2D box joined by harmonic bonds.

A `Network` is the one in-memory form every part of lmp-gnn passes around; on disk it is a
standard LAMMPS data file (atom_style bond, 2D), so networks made elsewhere can be used.

Conventions (docs/formats.md):
- the box is centred at the origin: x ∈ [-Lx/2, Lx/2), y ∈ [-Ly/2, Ly/2);
- bond energy E = K (l - l_r)^2 (LAMMPS `bond_style harmonic`), K = 1/l_r unless a file
  says otherwise; node indices are 0-based in Python, atom IDs are index + 1 in LAMMPS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmp_gnn.files import atomic_write_text


class NetworkFormatError(ValueError):
    """A network file or array that does not describe a valid bonded 2D network."""


@dataclass
class Network:
    """A periodic 2D bonded network.

    Attributes:
        positions: [N, 2] node positions (box centred at the origin).
        box: [2] box lengths (Lx, Ly).
        bonds: [M, 2] int64 node index pairs, 0-based, i < j not required.
        rest_length: [M] bond rest lengths l_r.
        stiffness: [M] bond coefficients K (default 1/l_r).
        node_type: [N] int (disk size class 1..4 from generation; 1 if unknown).
        info: free-form provenance (seed, generator, tuning history ...), JSON-serialisable.
    """

    positions: np.ndarray
    box: np.ndarray
    bonds: np.ndarray
    rest_length: np.ndarray
    # None is accepted and replaced in __post_init__, so the attributes are always arrays
    stiffness: np.ndarray = None  # type: ignore[assignment]
    node_type: np.ndarray = None  # type: ignore[assignment]
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.box = np.asarray(self.box, dtype=np.float64).reshape(-1)
        self.bonds = np.asarray(self.bonds, dtype=np.int64).reshape(-1, 2)
        self.rest_length = np.asarray(self.rest_length, dtype=np.float64).reshape(-1)
        if self.stiffness is None:
            self.stiffness = 1.0 / self.rest_length
        self.stiffness = np.asarray(self.stiffness, dtype=np.float64).reshape(-1)
        if self.node_type is None:
            self.node_type = np.ones(len(self.positions), dtype=np.int64)
        self.node_type = np.asarray(self.node_type, dtype=np.int64).reshape(-1)
        self.validate()

    # ------------------------------------------------------------------ basic facts
    @property
    def n_nodes(self) -> int:
        return len(self.positions)

    @property
    def n_bonds(self) -> int:
        return len(self.bonds)

    def validate(self) -> None:
        """Raise NetworkFormatError if the arrays are inconsistent."""
        n, m = len(self.positions), len(self.bonds)
        if self.positions.ndim != 2 or self.positions.shape[1] != 2:
            raise NetworkFormatError(f"expected positions of shape [N, 2], got {self.positions.shape}")
        if self.box.shape != (2,) or not np.all(self.box > 0):
            raise NetworkFormatError(f"expected 2 positive box lengths, got {self.box}")
        if m == 0:
            raise NetworkFormatError("expected a network with bonds, got none")
        if self.rest_length.shape != (m,) or self.stiffness.shape != (m,):
            raise NetworkFormatError(
                f"expected {m} rest lengths and stiffnesses, got {self.rest_length.shape} and {self.stiffness.shape}")
        if self.bonds.min() < 0 or self.bonds.max() >= n:
            raise NetworkFormatError(f"bond indices must lie in [0, {n}), got [{self.bonds.min()}, {self.bonds.max()}]")
        if np.any(self.bonds[:, 0] == self.bonds[:, 1]):
            raise NetworkFormatError("a bond joins a node to itself")
        if not (np.all(np.isfinite(self.positions)) and np.all(np.isfinite(self.rest_length))):
            raise NetworkFormatError("positions and rest lengths must be finite")
        if np.any(self.rest_length <= 0):
            raise NetworkFormatError("rest lengths must be positive")
        if self.node_type.shape != (n,):
            raise NetworkFormatError(f"expected {n} node types, got {self.node_type.shape}")

    def bond_vectors(self, positions: np.ndarray | None = None, box: np.ndarray | None = None) -> np.ndarray:
        """[M, 2] minimum-image vectors r_j - r_i for each bond (i, j)."""
        pos = self.positions if positions is None else positions
        b = self.box if box is None else np.asarray(box, dtype=np.float64)
        d = pos[self.bonds[:, 1]] - pos[self.bonds[:, 0]]
        return d - b * np.round(d / b)

    def bond_lengths(self, positions: np.ndarray | None = None, box: np.ndarray | None = None) -> np.ndarray:
        return np.linalg.norm(self.bond_vectors(positions, box), axis=1)

    def coordination(self) -> np.ndarray:
        """[N] number of bonds at each node."""
        return np.bincount(self.bonds.reshape(-1), minlength=self.n_nodes)

    def wrapped_positions(self) -> np.ndarray:
        return self.positions - self.box * np.round(self.positions / self.box)

    def copy(self) -> Network:
        return Network(self.positions.copy(), self.box.copy(), self.bonds.copy(), self.rest_length.copy(),
                       self.stiffness.copy(), self.node_type.copy(), dict(self.info))

    # ------------------------------------------------------------------ LAMMPS data files
    def write_lammps_data(self, path: str | os.PathLike, title: str = "lmp-gnn network") -> Path:
        """Write a LAMMPS data file (atom_style bond, one bond type per bond), atomically."""
        path = Path(path)
        pos = self.wrapped_positions()
        lx, ly = self.box
        lines = [f"# {title}", "",
                 f"{self.n_nodes} atoms", f"{self.n_bonds} bonds", "",
                 "1 atom types", f"{self.n_bonds} bond types", "",
                 f"{-lx / 2:.17g} {lx / 2:.17g} xlo xhi", f"{-ly / 2:.17g} {ly / 2:.17g} ylo yhi",
                 "-0.5 0.5 zlo zhi", "", "Masses", "", "1 1.0", "", "Bond Coeffs # harmonic", ""]
        lines += [f"{k + 1} {self.stiffness[k]:.17g} {self.rest_length[k]:.17g}" for k in range(self.n_bonds)]
        lines += ["", "Atoms # bond", ""]
        lines += [f"{i + 1} 1 1 {pos[i, 0]:.17g} {pos[i, 1]:.17g} 0.0" for i in range(self.n_nodes)]
        lines += ["", "Bonds", ""]
        lines += [f"{k + 1} {k + 1} {self.bonds[k, 0] + 1} {self.bonds[k, 1] + 1}" for k in range(self.n_bonds)]
        atomic_write_text(path, "\n".join(lines) + "\n")
        return path

    @classmethod
    def read_lammps_data(cls, path: str | os.PathLike) -> Network:
        """Read a 2D LAMMPS data file with atoms and harmonic bonds (atom_style bond/molecular/full)."""
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise NetworkFormatError(f"cannot read network file {path}: {exc}") from exc
        return _parse_lammps_data(text, str(path))


_SECTIONS = {"Atoms", "Velocities", "Masses", "Bonds", "Bond Coeffs", "Angles", "Angle Coeffs",
             "Dihedrals", "Impropers", "Pair Coeffs", "PairIJ Coeffs", "Dihedral Coeffs",
             "Improper Coeffs", "BondBond Coeffs", "BondAngle Coeffs", "Ellipsoids", "Lines", "Triangles",
             "Bodies"}


def _check_distinct_places(pos: np.ndarray, L: np.ndarray, ids: np.ndarray, name: str) -> None:
    """Refuse two atoms at the same place (periodic images included): their bond vector and the
    forces between them are undefined, and the MD and the learned step would divide by zero."""
    from scipy.spatial import cKDTree

    if not np.all(L > 0):
        raise NetworkFormatError(f"{name}: expected positive box lengths, got {L.tolist()}")
    wrapped = np.mod(pos + L / 2, L)
    wrapped[wrapped >= L] = 0.0            # np.mod of a tiny negative number can round to L
    pairs = cKDTree(wrapped, boxsize=L).query_pairs(r=1e-9 * float(np.max(L)), output_type="ndarray")
    if len(pairs):
        a, b = sorted((int(ids[pairs[0, 0]]), int(ids[pairs[0, 1]])))
        more = f" ({len(pairs)} such pairs)" if len(pairs) > 1 else ""
        raise NetworkFormatError(f"{name}: expected every atom at its own place, got atoms {a} and {b} at the same "
                                 f"position ({pos[pairs[0, 0], 0]:.6g}, {pos[pairs[0, 0], 1]:.6g}){more}")


def _parse_lammps_data(text: str, name: str) -> Network:
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()[1:]]
    header: dict[str, float] = {}
    box = {}
    sections: dict[str, list[list[str]]] = {}
    section_style: dict[str, str] = {}
    raw = text.splitlines()[1:]
    i = 0
    current = None
    while i < len(lines):
        ln = lines[i]
        if not ln:
            i += 1
            continue
        if ln in _SECTIONS:
            current = ln
            sections[current] = []
            section_style[current] = raw[i].split("#", 1)[1].strip() if "#" in raw[i] else ""
            i += 1
            continue
        words = ln.split()
        if current is None:
            if len(words) >= 4 and words[2:4] in (["xlo", "xhi"], ["ylo", "yhi"], ["zlo", "zhi"]):
                box[words[2][0]] = (float(words[0]), float(words[1]))
            elif len(words) >= 2 and words[0].lstrip("-").isdigit():
                header[" ".join(words[1:])] = int(words[0])
        else:
            sections[current].append(words)
        i += 1

    n_atoms = header.get("atoms", 0)
    n_bonds = header.get("bonds", 0)
    if n_atoms == 0 or "Atoms" not in sections:
        raise NetworkFormatError(f"{name}: expected a LAMMPS data file with atoms, got none")
    if n_bonds == 0 or "Bonds" not in sections:
        raise NetworkFormatError(f"{name}: expected a network with bonds (atom_style bond), got a file without bonds")
    if "x" not in box or "y" not in box:
        raise NetworkFormatError(f"{name}: missing xlo xhi / ylo yhi box lines")
    atoms = sections["Atoms"]
    if len(atoms) != n_atoms:
        raise NetworkFormatError(f"{name}: header says {n_atoms} atoms, Atoms section has {len(atoms)}")
    style = section_style.get("Atoms", "").split()[0] if section_style.get("Atoms") else ""
    ncol = len(atoms[0])
    # atom-ID molecule-ID atom-type x y z [ix iy iz]   (bond, angle, molecular)
    # atom-ID molecule-ID atom-type q x y z [ix iy iz] (full)
    if style == "full" or (not style and ncol in (7, 10)):
        xcol = 4
    elif style in ("bond", "angle", "molecular") or (not style and ncol in (6, 9)):
        xcol = 3
    else:
        raise NetworkFormatError(
            f"{name}: expected atom_style bond, angle, molecular or full, got '{style or f'{ncol} columns'}'")
    try:
        ids = np.array([int(a[0]) for a in atoms])
        types = np.array([int(a[2]) for a in atoms])
        xy = np.array([[float(a[xcol]), float(a[xcol + 1])] for a in atoms])
        z = np.array([float(a[xcol + 2]) for a in atoms])
        if len(atoms[0]) >= xcol + 6:
            img = np.array([[int(a[xcol + 3]), int(a[xcol + 4])] for a in atoms])
            iz = np.array([int(a[xcol + 5]) for a in atoms])
        else:
            img = np.zeros_like(xy, dtype=np.int64)
            iz = np.zeros(len(atoms), dtype=np.int64)
        bonds_raw = np.array([[int(b[1]), int(b[2]), int(b[3])] for b in sections["Bonds"]])
    except (ValueError, IndexError) as exc:
        raise NetworkFormatError(f"{name}: malformed Atoms or Bonds line: {exc}") from exc
    if len(bonds_raw) != n_bonds:
        raise NetworkFormatError(f"{name}: header says {n_bonds} bonds, Bonds section has {len(bonds_raw)}")
    (xlo, xhi), (ylo, yhi) = box["x"], box["y"]
    L = np.array([xhi - xlo, yhi - ylo])
    centre = np.array([(xlo + xhi) / 2, (ylo + yhi) / 2])
    pos = xy + img * L - centre
    # a 3D file would be read as its projection on the xy plane: a different network
    if not np.all(np.isfinite(xy)) or not np.all(np.isfinite(z)):
        raise NetworkFormatError(f"{name}: expected finite atom coordinates, got NaN or inf")
    flat = 1e-9 * float(np.max(L))
    if np.any(np.abs(z) > flat) or np.any(iz != 0):
        raise NetworkFormatError(f"{name}: expected a 2D network (every atom at z = 0, image flag iz = 0), got "
                                 f"z from {z.min():.6g} to {z.max():.6g}: is this a 3D data file?")
    _check_distinct_places(pos, L, ids, name)
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        dup = uniq[counts > 1]
        raise NetworkFormatError(f"{name}: expected unique atom IDs, got duplicates {dup[:5].tolist()}")
    order = np.argsort(ids)
    index_of = {int(aid): k for k, aid in enumerate(ids[order])}
    pos, types = pos[order], types[order]
    try:
        bonds = np.array([[index_of[b[1]], index_of[b[2]]] for b in bonds_raw], dtype=np.int64)
    except KeyError as exc:
        raise NetworkFormatError(f"{name}: a bond names atom {exc.args[0]}, which is not in Atoms") from exc
    coeffs = {}
    for row in sections.get("Bond Coeffs", []):
        try:
            coeffs[int(row[0])] = (float(row[1]), float(row[2]))
        except (ValueError, IndexError) as exc:
            raise NetworkFormatError(f"{name}: malformed Bond Coeffs line {row}") from exc
    if coeffs:
        missing = sorted(int(t) for t in set(bonds_raw[:, 0].tolist()) - set(coeffs))
        if missing:
            raise NetworkFormatError(f"{name}: bond types {missing[:5]} have no Bond Coeffs")
        K = np.array([coeffs[t][0] for t in bonds_raw[:, 0]])
        lr = np.array([coeffs[t][1] for t in bonds_raw[:, 0]])
    else:  # no coefficients in the file: rest lengths are the lengths as read, K = 1/l_r
        d = pos[bonds[:, 1]] - pos[bonds[:, 0]]
        d -= L * np.round(d / L)
        lr = np.linalg.norm(d, axis=1)
        K = 1.0 / lr
    return Network(pos, L, bonds, lr, K, types, {"source": name})
