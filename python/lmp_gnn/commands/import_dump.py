"""`lmp-gnn import DATA DUMP -o TRAJ.npz --timestep DT`: a user's LAMMPS run as a trajectory."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="LAMMPS data file of the network (atom_style bond, harmonic bonds)")
    parser.add_argument("dump", type=Path,
                        help="LAMMPS text dump of its compression along x, one frame per snapshot, with "
                             "columns id and xu yu (or x y ix iy)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="trajectory file to write (.npz)")
    parser.add_argument("--timestep", type=float, required=True, help="the run's MD time step (not in a dump)")
    parser.add_argument("--every", type=int, default=1,
                        help="import every k-th frame (k MD frames per snapshot; default 1)")


def run(args: argparse.Namespace) -> int:
    from lmp_gnn.coupling.dump_import import import_dump
    from lmp_gnn.physics.trajectory import save_trajectory

    if args.every < 1:
        raise SystemExit(f"lmp-gnn import: error: --every must be >= 1, got {args.every}")
    traj = import_dump(args.data, args.dump, timestep=args.timestep, frames=slice(None, None, args.every))
    save_trajectory(args.output, traj)
    m = traj.metadata
    nu = ("unknown (floppy, or not at equilibrium in the data file)" if m["nu_linear"] is None
          else f"{m['nu_linear']:+.4f}")
    print(f"wrote {args.output}: {traj.n_snapshots} snapshots of {traj.n_nodes} nodes, Δl {m['delta_l']:.6g} "
          f"per snapshot ({m['md_steps_per_snapshot']} MD steps), strain {m['max_strain']:.4f}, ν_linear {nu}")
    return 0
