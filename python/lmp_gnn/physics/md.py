"""Quasi-static uniaxial compression of a network in LAMMPS (in process), as a `Trajectory`.

The protocol (docs/physics.md §6, the paper's supplement §I.A.3), LJ units:

- `dimension 2`, `atom_style bond`, `bond_style harmonic` (E = K (l - l_r)^2), bonded only
  (`pair_style zero`, ghost cutoff above the longest bond);
- relaxation at zero strain: energy minimisation with zero stress on y (`fix box/relax`),
  then one snapshot interval of MD without deformation;
- `fix deform x erate -rate remap x`: x shrinks at a constant engineering strain rate,
  Lx(τ) = Lx0 (1 - rate·τ) with τ the MD time since the start of the compression;
- zero pressure on y by `fix press/berendsen y 0 0 1.0 modulus 1.0 dilate all`;
- `fix langevin T T damp seed zero yes` + `fix nve`, `fix enforce2d` last.

Snapshots are taken at a fixed absolute change Δl of Lx (the same Δl for every system size),
i.e. every ξ = round(Δl / (rate·dt·Lx0)) MD steps. The strain rate actually used is adjusted
by the rounding (by less than 0.5/ξ relative) so that snapshot t has exactly
Lx(t) = Lx0 - t·Δl; both the requested and the used rate are written to the metadata.
"""

from __future__ import annotations

import ctypes
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lmp_gnn.physics.network import Network
from lmp_gnn.physics.trajectory import Trajectory
from lmp_gnn.step.rules import unwrap

THERMOSTATS = ("langevin", "viscous")


def md_steps_per_snapshot(box_x: float, delta_l: float, strain_rate: float, timestep: float) -> int:
    """ξ = round(Δl / (rate · dt · Lx0)), at least 1: MD steps between snapshots."""
    return max(1, int(round(delta_l / (strain_rate * timestep * box_x))))


def compress(net: Network, *, max_strain: float = 0.05, delta_l: float = 2e-3, temperature: float = 1e-10,
             strain_rate: float = 2.5e-6, timestep: float = 0.05, damp: float = 10.0, seed: int = 0,
             thermostat: str = "langevin", minimize: bool = True, progress: Callable[[int, int], None] | None = None,
             log: str | os.PathLike | None = None) -> Trajectory:
    """Compress `net` along x at constant strain rate with zero stress on y; return the trajectory.

    Args:
        net: the network (box centred at the origin; positions may be unwrapped).
        max_strain: final engineering compressive strain along x, in (0, 0.5). The run stops at the
            last snapshot with t·Δl ≤ max_strain·Lx0.
        delta_l: change of Lx per snapshot (distance), in (0, max_strain·Lx0].
        temperature: Langevin target temperature (k_B = 1), > 0 (1e-11 … 1e-6 in the paper).
        strain_rate: requested engineering strain rate (per MD time unit), > 0 (compression).
        timestep: MD time step dt.
        damp: Langevin damping time (drag coefficient m/damp); 10-30 is quasi-static, 1 is not.
        seed: random seed (any int ≥ 0); the Langevin seed is derived from it.
        thermostat: "langevin" (default) or "viscous" (the same drag m/damp, no noise: T = 0).
        minimize: relax by energy minimisation (zero stress on y) before the MD relaxation.
        progress: called as progress(done, total) after each snapshot (total = T).
        log: LAMMPS log file, or None.

    Returns:
        Trajectory with positions [T, N, 2] (unwrapped, box centred at the origin), box [T, 2]
        with box[t, 0] = Lx0 - t·Δl, bonds [M, 2] and rest lengths [M] from `net`, and the
        metadata keys of docs/formats.md.
    """
    lx0 = float(net.box[0])
    check_arguments(max_strain=max_strain, delta_l=delta_l, temperature=temperature, strain_rate=strain_rate,
                    timestep=timestep, damp=damp, seed=seed, thermostat=thermostat, box_x=lx0)
    n_steps = int(math.floor(max_strain * lx0 / delta_l * (1 + 1e-12)))  # snapshots after the first
    xi = md_steps_per_snapshot(lx0, delta_l, strain_rate, timestep)
    rate = delta_l / (xi * timestep * lx0)  # used rate: exactly Δl per ξ steps
    n_total = n_steps * xi

    t_start = time.perf_counter()
    positions = np.empty((n_steps + 1, net.n_nodes, 2))
    box = np.empty((n_steps + 1, 2))
    lmp = relaxed_lammps(net, timestep=timestep, temperature=temperature, damp=damp, seed=seed,
                         thermostat=thermostat, minimize=minimize, relax_steps=xi, log=log)
    try:
        cmd = lmp.command
        positions[0], box[0] = snapshot(lmp, net.n_nodes)
        if abs(box[0, 0] - lx0) > 1e-9 * lx0:  # only y is relaxed; the ramp starts from Lx0
            raise RuntimeError(f"expected Lx = {lx0} after relaxation, got {box[0, 0]}")
        box[0, 0] = lx0
        if progress:
            progress(1, n_steps + 1)

        cmd("reset_timestep 0")
        cmd("unfix planar")
        cmd(f"fix squeeze all deform 1 x erate {-rate:.17g} remap x")
        cmd("fix planar all enforce2d")
        for t in range(1, n_steps + 1):
            # start/stop on every chunk keep fix deform on one continuous ramp (docs/physics.md §6, facts);
            # the first chunk needs pre yes for the new fixes' setup.
            pre = "yes" if t == 1 else "no"
            cmd(f"run {xi} start 0 stop {n_total} pre {pre} post no")
            positions[t], box[t] = snapshot(lmp, net.n_nodes)
            if progress:
                progress(t + 1, n_steps + 1)
    finally:
        lmp.close()
    wall = time.perf_counter() - t_start

    if not np.all(np.isfinite(positions)) or not np.all(np.isfinite(box)):
        raise RuntimeError("compression produced non-finite positions or box lengths; "
                           "expected a mechanically stable network (check for floppy modes)")
    from lmp_gnn import __version__

    source = net.info.get("source")
    metadata = {
        "generator_version": __version__,
        "n_nodes": net.n_nodes,
        "n_bonds": net.n_bonds,
        "temperature": 0.0 if thermostat == "viscous" else float(temperature),
        "strain_rate": float(rate),
        "strain_rate_requested": float(strain_rate),
        "timestep": float(timestep),
        "damp": float(damp),
        "thermostat": thermostat,
        "delta_l": float(delta_l),
        "md_steps_per_snapshot": int(xi),
        "max_strain": float(max_strain),
        "axis": "x",
        "seed": int(seed),
        "nu_linear": net.info.get("nu_linear"),
        "network": Path(source).name if source else None,
        "wall_time_s": float(wall),
    }
    return Trajectory(positions, box, net.bonds.copy(), net.rest_length.copy(), metadata)


def check_arguments(*, max_strain: float, delta_l: float, temperature: float, strain_rate: float, timestep: float,
                    damp: float, seed: int, thermostat: str = "langevin", box_x: float | None = None) -> None:
    """Raise ValueError naming the first bad protocol argument of `compress`.

    `box_x` (Lx0) enables the checks that depend on the network; None skips them.
    """
    def finite(name, value):
        if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
            raise ValueError(f"expected a finite number for {name}, got {value!r}")

    for name, value in (("max_strain", max_strain), ("delta_l", delta_l), ("temperature", temperature),
                        ("strain_rate", strain_rate), ("timestep", timestep), ("damp", damp)):
        finite(name, value)
    if not 0.0 < max_strain < 0.5:
        raise ValueError(f"expected 0 < max_strain < 0.5, got {max_strain}")
    if delta_l <= 0:
        raise ValueError(f"expected delta_l > 0, got {delta_l}")
    if temperature <= 0:
        raise ValueError(f"expected temperature > 0, got {temperature}")
    if strain_rate <= 0:
        raise ValueError(f"expected strain_rate > 0 (compression), got {strain_rate}")
    if timestep <= 0:
        raise ValueError(f"expected timestep > 0, got {timestep}")
    if damp <= 0:
        raise ValueError(f"expected damp > 0, got {damp}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"expected seed to be an int ≥ 0, got {seed!r}")
    if thermostat not in THERMOSTATS:
        raise ValueError(f"expected thermostat in {THERMOSTATS}, got {thermostat!r}")
    if box_x is None:
        return
    if delta_l > max_strain * box_x * (1 + 1e-12):
        raise ValueError(f"expected delta_l ≤ the total compression max_strain·Lx0 = {max_strain * box_x:.6g}, "
                         f"got {delta_l}")
    if delta_l / (strain_rate * timestep * box_x) < 0.5:
        raise ValueError(f"delta_l = {delta_l} is less than half an MD step of deformation "
                         f"(strain_rate·timestep·Lx0 = {strain_rate * timestep * box_x:.3g}); "
                         "expected a larger delta_l or a smaller strain_rate·timestep")


def relaxed_lammps(net: Network, *, timestep: float, temperature: float, damp: float, seed: int,
                   thermostat: str, minimize: bool, relax_steps: int, log=None):
    """A LAMMPS instance holding `net` under the protocol's fixes, relaxed at zero strain.

    Energy minimisation with zero stress on y (if `minimize`), then the fixes of every MD
    segment (Berendsen on y, the thermostat, nve, enforce2d last) and `relax_steps` MD steps
    without deformation; the caller adds `fix deform`. Timestep counter at 0 before the MD.
    """
    lmp = bonded_lammps(net, timestep=timestep, log=log)
    try:
        cmd = lmp.command
        if minimize:
            cmd("fix relax all box/relax y 0.0 vmax 0.001")
            cmd("min_style cg")
            cmd("minimize 0.0 1.0e-12 10000 100000")
            cmd("unfix relax")
        cmd("reset_timestep 0")
        cmd("fix press all press/berendsen y 0.0 0.0 1.0 modulus 1.0 dilate all")
        if thermostat == "langevin":
            lammps_seed = seed % 900_000_000 + 1  # LAMMPS wants a positive seed
            cmd(f"fix bath all langevin {temperature:.17g} {temperature:.17g} {damp:.17g} {lammps_seed} zero yes")
        else:
            cmd(f"fix bath all viscous {1.0 / damp:.17g}")
        cmd("fix integrate all nve")
        cmd("fix planar all enforce2d")
        cmd(f"run {relax_steps} post no")  # relaxation at zero strain, one snapshot interval long
    except Exception:
        lmp.close()
        raise
    return lmp


def bonded_lammps(net: Network, *, timestep: float, log: str | os.PathLike | None = None):
    """A LAMMPS instance with `net` read (centred box), bonded interactions only."""
    from lmp_gnn.coupling._lammps import new_lammps

    lengths = np.concatenate([net.bond_lengths(), net.rest_length])
    longest = float(lengths.max())
    if 2.2 * longest > float(net.box.min()):
        raise ValueError(f"expected box lengths above 2.2 × the longest bond ({2.2 * longest:.4g}) so that "
                         f"minimum images are unambiguous under compression, got box {net.box.tolist()}")
    cutoff = 1.5 * longest + 0.5  # ghost cutoff: bonds may stretch while the box deforms
    lmp = new_lammps(log=log)
    try:
        with tempfile.TemporaryDirectory(prefix="lmp_gnn_md_") as tmp:
            data = net.write_lammps_data(Path(tmp) / "network.data")
            for line in ("units lj", "dimension 2", "boundary p p p", "atom_style bond",
                         "atom_modify map array", "bond_style harmonic", f"read_data {data}"):
                lmp.command(line)
        for line in ("pair_style zero 0.5 nocoeff", "pair_coeff * *", "neighbor 0.3 bin",
                     "neigh_modify delay 0 every 1 check yes", f"comm_modify cutoff {cutoff:.6g}",
                     f"timestep {timestep:.17g}", "thermo 0", "velocity all set 0.0 0.0 0.0"):
            lmp.command(line)
    except Exception:
        lmp.close()
        raise
    return lmp


def snapshot(lmp, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unwrapped positions [N, 2] (x + image·L − box centre, ordered by atom ID) and box lengths [2]."""
    boxlo, boxhi, *_ = lmp.extract_box()
    lo, hi = np.array(boxlo[:2]), np.array(boxhi[:2])
    length = hi - lo
    x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3)).reshape(n, 3)[:, :2]
    image = np.ctypeslib.as_array(lmp.gather_atoms("image", 0, 3)).reshape(n, 3)[:, :2]
    return unwrap(x, image, length) - 0.5 * (lo + hi), length


def write_state(lmp, unwrapped: np.ndarray, box: np.ndarray, velocity: np.ndarray | None = None) -> None:
    """The inverse of `snapshot`: set the box (centred at the origin), the positions wrapped into it
    with their image flags, from unwrapped positions [N, 2] (ordered by atom ID), and the in-plane
    velocities [N, 2] when given."""
    n = len(unwrapped)
    lx, ly = float(box[0]), float(box[1])
    lmp.command(f"change_box all x final {-lx / 2:.17g} {lx / 2:.17g} y final {-ly / 2:.17g} {ly / 2:.17g} units box")
    length = np.array([lx, ly])
    image = np.floor((unwrapped + length / 2) / length).astype(np.int64)
    x = np.zeros((n, 3))
    x[:, :2] = unwrapped - image * length
    img = np.zeros((n, 3), dtype=np.int32)
    img[:, :2] = image
    lmp.scatter_atoms("x", 1, 3, (ctypes.c_double * (3 * n))(*x.ravel()))
    lmp.scatter_atoms("image", 0, 3, (ctypes.c_int * (3 * n))(*img.ravel()))
    if velocity is not None:
        v = np.zeros((n, 3))
        v[:, :2] = velocity
        lmp.scatter_atoms("v", 1, 3, (ctypes.c_double * (3 * n))(*v.ravel()))


def athermal_box_poisson(net: Network, strain: float, *, increments: int = 10, ftol: float = 1e-12) -> float:
    """Box ν = -ε_y/ε_x of the athermal quasi-static (T = 0, infinitely slow) compression to `strain`.

    The reference `compress` tends to as its rate goes to zero: x is compressed in `increments`
    equal steps (affine remap), and after each step the energy is minimised with zero stress on y
    (`fix box/relax y 0.0`, positions and Ly), following the branch continuously.

    Args:
        net: the network.
        strain: compressive engineering strain along x, in (0, 0.5).
        increments: strain steps to reach it (≥ 1).
        ftol: force tolerance of each minimisation.
    """
    return athermal_compression(net, strain, increments=increments, ftol=ftol)["nu_box"][-1]


def athermal_compression(net: Network, strain: float, *, increments: int = 10, ftol: float = 1e-12) -> dict:
    """The athermal quasi-static compression of `athermal_box_poisson`, measured at every increment.

    Returns a JSON-serialisable dict of lists, one entry per increment k = 1..increments:
    "strain" (k·strain/increments), "nu_box" (-ε_y/ε_x from the box lengths) and "nu_est" (the
    paper's estimator, `lmp_gnn.step.rules.nu_estimator`, between the unstrained network and the
    relaxed configuration), plus "wall_time_s".
    """
    from lmp_gnn.step.rules import nu_estimator

    if not 0.0 < strain < 0.5:
        raise ValueError(f"expected 0 < strain < 0.5, got {strain}")
    if int(increments) != increments or increments < 1:
        raise ValueError(f"expected increments to be an int ≥ 1, got {increments!r}")
    t0 = time.perf_counter()
    lx0, ly0 = (float(v) for v in net.box)
    out: dict[str, Any] = {"strain": [], "nu_box": [], "nu_est": []}
    lmp = bonded_lammps(net, timestep=0.05)
    try:
        cmd = lmp.command
        cmd("min_style cg")
        cmd("thermo_style custom step pe pyy fnorm")
        r0, box0 = snapshot(lmp, net.n_nodes)
        for k in range(1, int(increments) + 1):
            eps = strain * k / increments
            half = 0.5 * lx0 * (1.0 - eps)
            cmd(f"change_box all x final {-half:.17g} {half:.17g} remap units box")
            cmd("fix relax all box/relax y 0.0 vmax 1.0e-4")
            cmd(f"minimize 0.0 {ftol:.6g} 20000 200000")
            cmd("unfix relax")
            r, box = snapshot(lmp, net.n_nodes)
            out["strain"].append(float(eps))
            out["nu_box"].append(float((box[1] - ly0) / ly0 / eps))
            out["nu_est"].append(nu_estimator(r0, r, box0, box))
    finally:
        lmp.close()
    out["wall_time_s"] = time.perf_counter() - t0
    return out
