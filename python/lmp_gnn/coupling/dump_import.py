"""Trajectories from a user's own LAMMPS runs: a data file plus a dump of the compression.

`import_dump` reads the network (bonds, rest lengths) from the LAMMPS data file and every frame
of a text dump with LAMMPS itself (`read_dump`, the reader of LAMMPS's own format), so that any
dump LAMMPS writes is read as LAMMPS means it:

- columns `id xu yu` (unwrapped), or `id x y ix iy` (wrapped with image flags), in any order;
- the box of each frame from the dump's BOX BOUNDS; positions measured from the box centre and
  followed continuously across boundaries (`lmp_gnn.physics.md.snapshot`).

The frames must be snapshots of a compression along x at a fixed Δl per snapshot and a fixed
number of MD steps between them (what the learned step stands for); the MD time step is not in a
dump and is given by the caller. The metadata are those `lmp-gnn simulate` writes
(docs/formats.md), with `nu_linear` from the network's linear response (None when the network in
the data file is floppy or not at mechanical equilibrium).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lmp_gnn.physics import md
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.trajectory import Trajectory


class DumpImportError(ValueError):
    """A data file and dump that do not make a compression trajectory."""


COORDINATES = {"unwrapped": ("xu", "yu"), "image": ("x", "y", "ix", "iy")}


def dump_frames(path: str | os.PathLike) -> tuple[list[int], list[str]]:
    """(time steps of the frames, column names of the first frame) of a LAMMPS text dump.

    Only the frame headers are read here (LAMMPS's read_dump reads the frames themselves).
    """
    steps: list[int] = []
    columns: list[str] = []
    with open(path) as fh:
        expect_step = False
        for line in fh:
            if expect_step:
                try:
                    steps.append(int(line.split()[0]))
                except (ValueError, IndexError):
                    raise DumpImportError(f"{path}: expected a time step after ITEM: TIMESTEP, "
                                          f"got '{line.strip()}'") from None
                expect_step = False
            elif line.startswith("ITEM: TIMESTEP"):
                expect_step = True
            elif line.startswith("ITEM: ATOMS") and not columns:
                columns = line.split()[2:]
    if not steps:
        raise DumpImportError(f"{path}: expected a LAMMPS text dump (ITEM: TIMESTEP ...), found no frame")
    return steps, columns


def _read_fields(columns: list[str], path) -> str:
    """The read_dump field list for the dump's coordinate columns."""
    if "id" not in columns:
        raise DumpImportError(f"{path}: expected an 'id' column, got columns {' '.join(columns)}")
    if all(c in columns for c in COORDINATES["unwrapped"]):
        return "x y label x xu label y yu wrapped no"
    if all(c in columns for c in COORDINATES["image"]):
        return "x y ix iy"
    raise DumpImportError(f"{path}: expected unwrapped coordinates (columns xu yu) or wrapped ones with image "
                          f"flags (x y ix iy), got columns {' '.join(columns)}")


def _uniform(values: np.ndarray, what: str, rtol: float, path) -> float:
    steps = np.diff(values)
    mean = float(steps.mean())
    if not np.allclose(steps, mean, rtol=rtol, atol=0.0):
        raise DumpImportError(f"{path}: expected snapshots at a fixed {what}, got {what} from "
                              f"{steps.min():.6g} to {steps.max():.6g}")
    return mean


def import_dump(data_file: str | os.PathLike, dump_file: str | os.PathLike, *, timestep: float,
                frames: slice = slice(None)) -> Trajectory:
    """The compression trajectory in `dump_file` of the network in `data_file`.

    Args:
        data_file: LAMMPS data file of the network (atom_style bond, harmonic Bond Coeffs), as
            `lmp_gnn.physics.network.Network.read_lammps_data` reads it.
        dump_file: text dump with `id` and `xu yu` or `x y ix iy`, one frame per snapshot.
        timestep: the MD time step of the run (not stored in a dump), > 0.
        frames: which frames to import (e.g. slice(0, None, 2) for every second one).

    Raises:
        DumpImportError: no frames, missing columns, atoms that do not match the data file,
            a box that does not shrink along x by a fixed Δl per snapshot, or snapshots not a
            fixed number of MD steps apart.
    """
    if not (isinstance(timestep, (int, float)) and np.isfinite(timestep) and timestep > 0):
        raise DumpImportError(f"expected a positive MD timestep, got {timestep!r}")
    net = Network.read_lammps_data(data_file)
    steps, columns = dump_frames(dump_file)
    steps = steps[frames]
    if len(steps) < 3:
        raise DumpImportError(f"{dump_file}: expected at least 3 frames to import, got {len(steps)}")
    fields = _read_fields(columns, dump_file)

    positions = np.empty((len(steps), net.n_nodes, 2))
    box = np.empty((len(steps), 2))
    lmp = md.bonded_lammps(net, timestep=timestep)
    try:
        for k, step in enumerate(steps):
            try:
                lmp.command(f"read_dump {Path(dump_file).resolve()} {step} {fields} box yes replace yes "
                            "purge no trim no add no")
            except Exception as exc:
                raise DumpImportError(f"{dump_file}: LAMMPS could not read the frame of step {step}: {exc}") from exc
            if lmp.get_natoms() != net.n_nodes:
                raise DumpImportError(f"{dump_file}: the frame of step {step} has {lmp.get_natoms()} atoms, "
                                      f"the data file {net.n_nodes}")
            positions[k], box[k] = md.snapshot(lmp, net.n_nodes)
    finally:
        lmp.close()

    if np.any(np.diff(box[:, 0]) >= 0):
        raise DumpImportError(f"{dump_file}: expected the box to shrink along x at every frame (a compression "
                              f"along x), got Lx {box[0, 0]:.6g} -> {box[-1, 0]:.6g} not decreasing throughout")
    delta_l = -_uniform(box[:, 0], "Lx change", 1e-3, dump_file)
    md_steps = _uniform(np.asarray(steps, dtype=np.float64), "number of MD steps", 0.0, dump_file)
    lx0 = float(box[0, 0])
    from lmp_gnn import __version__
    from lmp_gnn.physics.elastic import linear_nu
    metadata = {
        "generator_version": __version__,
        "source": "lmp-gnn import",
        "network": Path(data_file).name,
        "dump": Path(dump_file).name,
        "n_nodes": net.n_nodes,
        "n_bonds": net.n_bonds,
        "timestep": float(timestep),
        "delta_l": float(delta_l),
        "md_steps_per_snapshot": int(md_steps),
        "strain_rate": float(delta_l / (md_steps * timestep * lx0)),
        "max_strain": float((box[0, 0] - box[-1, 0]) / lx0),
        "axis": "x",
        "nu_linear": linear_nu(net),
    }
    return Trajectory(positions, box, net.bonds.copy(), net.rest_length.copy(), metadata)
