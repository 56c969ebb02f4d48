"""MD compression vs linear response: is the ground-truth ν of `lmp_gnn.physics.md.compress` the network's ν?

For every network of a directory made by `lmp-gnn networks` (NAME.data + NAME.json), compress it
in LAMMPS to --strain (default 1 %) and compare at that strain:

- the MD box ν (-ε_y/ε_x) with the sidecar's linear-response ν (`nu_linear`, the isotropic
  ν = (B - G)/(B + G) of docs/physics.md §5) and with the linear-response box ratio of a compression
  along x (`uniaxial_x.nu_box`: the same boundary conditions as the MD);
- with --aqs, the MD box ν with the athermal quasi-static (T = 0, energy-minimised) ν at the same
  strain: the limit the MD tends to as the rate goes to zero, which separates protocol error
  (MD − AQS) from the network's own nonlinearity (AQS − linear);
- the MD ν_est (the paper's estimator) with the MD box ν and with the linear-response
  `uniaxial_x.nu_est`.

    # one command: make 24 networks (N = 300, ν across [-0.6, 0.4], `lmp-gnn networks` defaults,
    # linearity check included) if /tmp/nets has none, then compress each to 1 %:
    PYTHONPATH=python python benchmarks/md_vs_linear.py /tmp/nets --make 24 --seed 11
    # or reuse trajectories of `lmp-gnn simulate /tmp/nets -o /tmp/traj --max-strain 0.01`:
    PYTHONPATH=python python benchmarks/md_vs_linear.py /tmp/nets --trajectories /tmp/traj --aqs

Targets (the issue): RMS(ν_box(MD, 1 %) − ν_linear) ≤ 0.03 over ≥ 20 networks; ν_est within 5 % of
the box ν (reported as |ν_est − ν_box| and as |ν_est − ν_box| / max(|ν_box|, 0.1)).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from lmp_gnn.physics.md import athermal_box_poisson, compress
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.poisson import box_poisson, estimator_poisson
from lmp_gnn.physics.trajectory import load_trajectory


def stats(d: np.ndarray) -> str:
    return (f"mean {d.mean():+.4f}, RMS {np.sqrt(np.mean(d ** 2)):.4f}, median |·| {np.median(np.abs(d)):.4f}, "
            f"max |·| {np.abs(d).max():.4f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("networks", type=Path, help="directory of NAME.data + NAME.json from `lmp-gnn networks`")
    p.add_argument("--trajectories", type=Path, help="reuse NAME.npz found here (compress the others)")
    p.add_argument("--strain", type=float, default=0.01, help="strain at which ν is compared (default 0.01)")
    p.add_argument("--temperature", type=float, default=1e-10)
    p.add_argument("--thermostat", choices=("langevin", "viscous"), default="langevin",
                   help="MD thermostat of `compress` (default langevin, as `lmp-gnn simulate`)")
    p.add_argument("--make", type=int, metavar="COUNT",
                   help="if the directory holds no networks, first make COUNT with `lmp-gnn networks` (defaults)")
    p.add_argument("--seed", type=int, default=11, help="--seed of `lmp-gnn networks` for --make (default 11)")
    p.add_argument("--aqs", action="store_true",
                   help="also compute the athermal quasi-static ν at the same strain (md.athermal_box_poisson)")
    p.add_argument("--json", type=Path, help="write all numbers here")
    args = p.parse_args()

    if args.make and not list(args.networks.glob("*.data")):
        from lmp_gnn.cli import main as lmp_gnn_main

        t_make = time.perf_counter()
        rc = lmp_gnn_main(["networks", "-o", str(args.networks), "--count", str(args.make), "--seed", str(args.seed)])
        print(f"lmp-gnn networks --count {args.make} --seed {args.seed}: exit {rc}, "
              f"{time.perf_counter() - t_make:.0f} s\n", flush=True)
    files = sorted(args.networks.glob("*.data"))
    if not files:
        sys.exit(f"expected NAME.data files in {args.networks}, found none")
    rows = []
    t0 = time.perf_counter()
    print(f"{'network':>10} {'N':>4} {'nu_lin':>7} {'lin_box':>7} {'md_box':>7} {'md-lin':>7} {'md-linb':>7} "
          f"{'lin_est':>7} {'md_est':>7} {'est-box':>7} {'md-aqs':>7}")
    for f in files:
        side = json.loads(f.with_suffix(".json").read_text())
        cached = args.trajectories / f"{f.stem}.npz" if args.trajectories else None
        if cached is not None and cached.exists():
            traj = load_trajectory(cached)
        else:
            traj = compress(Network.read_lammps_data(f), max_strain=args.strain, temperature=args.temperature,
                            thermostat=args.thermostat)
        # the snapshot nearest to the strain (the last one of a run to exactly that strain is within Δl/Lx0 below)
        t = min(traj.n_snapshots - 1, int(round(args.strain * traj.box[0, 0] / traj.metadata["delta_l"])))
        strain_t = 1 - traj.box[t, 0] / traj.box[0, 0]
        uni = side.get("uniaxial_x", {})
        row = {"network": f.stem, "n_nodes": traj.n_nodes, "nu_linear": side["nu_linear"],
               "linear_box": uni.get("nu_box"), "linear_est": uni.get("nu_est"),
               "md_box": box_poisson(traj, strain_t), "md_est": estimator_poisson(traj, t), "strain": strain_t,
               "md_steps_per_snapshot": traj.metadata["md_steps_per_snapshot"]}
        row["aqs_box"] = athermal_box_poisson(Network.read_lammps_data(f), strain_t) if args.aqs else None
        row["thermostat"] = traj.metadata.get("thermostat")
        lin = side.get("linearity") or {}
        row["check_box"], row["check_est"] = (lin["nu_box"][-1], lin["nu_est"][-1]) if lin else (None, None)
        rows.append(row)
        fmt = lambda x: f"{x:>7.4f}" if x is not None else f"{'-':>7}"  # noqa: E731
        print(f"{f.stem:>10} {row['n_nodes']:>4} {fmt(row['nu_linear'])} {fmt(row['linear_box'])} "
              f"{fmt(row['md_box'])} {row['md_box'] - row['nu_linear']:>+7.4f} "
              f"{(row['md_box'] - row['linear_box']) if row['linear_box'] is not None else float('nan'):>+7.4f} "
              f"{fmt(row['linear_est'])} {fmt(row['md_est'])} {row['md_est'] - row['md_box']:>+7.4f} "
              f"{(row['md_box'] - row['aqs_box']) if args.aqs else float('nan'):>+7.4f}", flush=True)

    col = lambda k: np.array([r[k] for r in rows], dtype=float)  # noqa: E731
    print(f"\n{len(rows)} networks, N ≈ {col('n_nodes').mean():.0f}, ν_linear in [{col('nu_linear').min():+.3f}, "
          f"{col('nu_linear').max():+.3f}], compared at {100 * args.strain:g} % strain, T = {args.temperature:g}, "
          f"{time.perf_counter() - t0:.0f} s, thermostat {rows[0]['thermostat']}")
    rejected = [json.loads(f.with_suffix(".json").read_text()).get("rejected_nonlinear") for f in files]
    if all(r is not None for r in rejected):
        n_rej = sum(rejected)
        print(f"networks rejected by the linearity check of `lmp-gnn networks`: {n_rej} of {n_rej + len(files)} "
              f"tuned ({100 * n_rej / (n_rej + len(files)):.0f} %)")
    print(f"MD box ν − linear ν (isotropic):        {stats(col('md_box') - col('nu_linear'))}  (target RMS ≤ 0.03)")
    if all(r["linear_box"] is not None for r in rows):
        print(f"MD box ν − linear box ν (x-uniaxial):   {stats(col('md_box') - col('linear_box'))}")
    if args.aqs:
        print(f"MD box ν − athermal quasi-static ν:     {stats(col('md_box') - col('aqs_box'))}")
        print(f"athermal quasi-static ν − linear ν:     {stats(col('aqs_box') - col('nu_linear'))}")
    print(f"MD ν_est − MD box ν:                     {stats(col('md_est') - col('md_box'))}")
    rel = np.abs(col('md_est') - col('md_box')) / np.maximum(np.abs(col('md_box')), 0.1)
    print(f"|MD ν_est − MD box ν| / max(|MD box ν|, 0.1): median {np.median(rel):.3f}, max {rel.max():.3f}, "
          f"{np.sum(rel <= 0.05)} of {len(rows)} within 5 %")
    if all(r["check_box"] is not None for r in rows):
        print(f"MD box ν − sidecar's athermal check ν:  {stats(col('md_box') - col('check_box'))}")
    if all(r["linear_est"] is not None for r in rows):
        print(f"MD ν_est − linear ν_est (x-uniaxial):   {stats(col('md_est') - col('linear_est'))}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
