"""Is the compression protocol of `lmp_gnn.physics.md.compress` quasi-static, and how fast is it?

For each network: compress to --max-strain at the default strain rate and at half of it and
compare the box Poisson's ratio at 1 % and 5 % strain (target: |Δν| < 0.02); optionally also
with `fix viscous` (same drag, no noise) instead of Langevin. Prints wall time per compression
on one core, MD steps per snapshot, and the time ratios measured in this run.

    PYTHONPATH=python python benchmarks/md_protocol.py                 # 4 jammed networks, N ≈ 300
    PYTHONPATH=python python benchmarks/md_protocol.py --networks DIR  # DIR/*.data (e.g. tuned ones)
    PYTHONPATH=python python benchmarks/md_protocol.py --viscous --noise --json out.json

Run it with OMP_NUM_THREADS=1 on an otherwise idle core: the timings are single-core.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lmp_gnn.physics.md import compress
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.poisson import box_poisson, estimator_poisson


def networks(args) -> list[tuple[str, Network]]:
    if args.networks:
        files = sorted(Path(args.networks).glob("*.data"))[: args.count]
        if not files:
            sys.exit(f"expected .data files in {args.networks}, found none")
        out = []
        for f in files:
            net = Network.read_lammps_data(f)
            side = f.with_suffix(".json")
            if side.exists():
                info = json.loads(side.read_text())
                net.info["nu_linear"] = info.get("nu_linear")
            out.append((f.stem, net))
        return out
    from lmp_gnn.physics.elastic import elastic_constants
    from lmp_gnn.physics.generate import jammed_network

    out = []
    for seed in range(args.count):
        net = jammed_network(args.n_disks, seed=seed)
        net.info["nu_linear"] = elastic_constants(net).nu
        out.append((f"jammed_{args.n_disks}_s{seed}", net))
    return out


def nu_pair(traj, strains) -> list[float]:
    """Box ν at each strain; the largest is capped at the last snapshot (floor(ε·Lx0/Δl)·Δl/Lx0 ≤ ε)."""
    top = 1.0 - traj.box[-1, 0] / traj.box[0, 0]
    return [box_poisson(traj, min(s, top)) for s in strains]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--networks", type=Path, help="directory of .data networks (default: generate jammed ones)")
    p.add_argument("--count", type=int, default=4, help="number of networks (default 4)")
    p.add_argument("--n-disks", type=int, default=310, help="disks per generated network (default 310 → N ≈ 300)")
    p.add_argument("--max-strain", type=float, default=0.05)
    p.add_argument("--viscous", action="store_true", help="also run with fix viscous instead of langevin")
    p.add_argument("--noise", action="store_true",
                   help="also measure the thermal noise in per-snapshot accelerations vs temperature")
    p.add_argument("--json", type=Path, help="write all numbers here")
    args = p.parse_args()

    strains = [s for s in (0.01, 0.05) if s <= args.max_strain + 1e-12]
    rows = []
    print(f"{'network':>18} {'N':>4} {'xi':>5} {'t_md[s]':>7} "
          + " ".join(f"{'nu@' + format(100 * s, 'g') + '%':>8} {'d_half':>7}" for s in strains)
          + (" " + " ".join(f"{'d_visc' + format(100 * s, 'g'):>8}" for s in strains) + f" {'visc_x':>6}"
             if args.viscous else "")
          + f" {'nu_lin':>7} {'nu_est1%':>8}")
    for name, net in networks(args):
        base = compress(net, max_strain=args.max_strain)
        half = compress(net, max_strain=args.max_strain, strain_rate=base.metadata["strain_rate_requested"] / 2)
        row = {"network": name, "n_nodes": net.n_nodes, "md_steps_per_snapshot": base.metadata["md_steps_per_snapshot"],
               "n_snapshots": base.n_snapshots, "wall_s": base.metadata["wall_time_s"],
               "wall_half_s": half.metadata["wall_time_s"], "strains": strains,
               "nu_box": nu_pair(base, strains), "nu_box_half_rate": nu_pair(half, strains),
               "nu_linear": net.info.get("nu_linear")}
        t1 = int(round(0.01 * net.box[0] / base.metadata["delta_l"]))
        row["nu_est_1pct"] = estimator_poisson(base, t1)
        if args.viscous:
            visc = compress(net, max_strain=args.max_strain, thermostat="viscous")
            row["nu_box_viscous"] = nu_pair(visc, strains)
            row["wall_viscous_s"] = visc.metadata["wall_time_s"]
            row["max_pos_diff_viscous"] = float(np.abs(visc.positions - base.positions).max())
        rows.append(row)
        line = f"{name:>18} {net.n_nodes:>4} {row['md_steps_per_snapshot']:>5} {row['wall_s']:>7.1f} "
        line += " ".join(f"{a:>8.4f} {b - a:>+7.4f}"
                         for a, b in zip(row["nu_box"], row["nu_box_half_rate"], strict=True))
        if args.viscous:
            line += " " + " ".join(f"{b - a:>+8.4f}" for a, b in zip(row["nu_box"], row["nu_box_viscous"], strict=True))
            line += f" {row['wall_s'] / row['wall_viscous_s']:>6.2f}"
        lin = row["nu_linear"]
        line += f" {lin:>7.4f}" if lin is not None else f" {'-':>7}"
        line += f" {row['nu_est_1pct']:>8.4f}"
        print(line, flush=True)

    d_half = np.array([[b - a for a, b in zip(r["nu_box"], r["nu_box_half_rate"], strict=True)] for r in rows])
    print()
    for k, s in enumerate(strains):
        print(f"half rate vs default, ν at {100 * s:g} %: max |Δν| {np.abs(d_half[:, k]).max():.4f}, "
              f"median {np.median(np.abs(d_half[:, k])):.4f} (target < 0.02)")
    walls = np.array([r["wall_s"] for r in rows])
    print(f"one compression to {100 * args.max_strain:g} % on one core: {walls.mean():.1f} s mean "
          f"(min {walls.min():.1f}, max {walls.max():.1f}), N = {np.mean([r['n_nodes'] for r in rows]):.0f}, "
          f"{np.mean([r['n_snapshots'] for r in rows]):.0f} snapshots, "
          f"{np.mean([r['md_steps_per_snapshot'] for r in rows]):.0f} MD steps/snapshot (target ≤ 60 s)")
    print(f"half rate / default wall time: {np.mean([r['wall_half_s'] / r['wall_s'] for r in rows]):.2f}")
    if args.viscous:
        d_visc = np.array([[b - a for a, b in zip(r["nu_box"], r["nu_box_viscous"], strict=True)] for r in rows])
        for k, s in enumerate(strains):
            print(f"viscous vs langevin, ν at {100 * s:g} %: max |Δν| {np.abs(d_visc[:, k]).max():.4f}")
        print(f"langevin / viscous wall time: {np.mean([r['wall_s'] / r['wall_viscous_s'] for r in rows]):.2f}; "
              f"max node position difference {max(r['max_pos_diff_viscous'] for r in rows):.2e}")
    lin = [(r["nu_box"][0], r["nu_linear"]) for r in rows if r["nu_linear"] is not None]
    if lin:
        d = np.array([a - b for a, b in lin])
        print(f"ν box at 1 % − linear response: mean {d.mean():+.4f}, RMS {np.sqrt(np.mean(d**2)):.4f}")
    noise = []
    if args.noise:
        # thermal noise in the per-snapshot accelerations a(t) = r(t+1) - 2r(t) + r(t-1) (the training
        # targets), against the noise-free (viscous, T = 0) trajectory of the same network
        name, net = networks(args)[0]
        print(f"\nacceleration noise on {name} to 1 % strain (rms over nodes, snapshots ≥ 20):")
        ref = compress(net, max_strain=0.01, thermostat="viscous")
        a_ref = np.diff(ref.positions, 2, axis=0)
        print(f"  T = 0 (viscous): rms v {np.sqrt(np.mean(np.diff(ref.positions, axis=0) ** 2)):.3e}, "
              f"rms a {np.sqrt(np.mean(a_ref[20:] ** 2)):.3e}")
        for temp in (1e-11, 1e-10, 1e-8, 1e-6):
            tr = compress(net, max_strain=0.01, temperature=temp)
            a = np.diff(tr.positions, 2, axis=0)
            rec = {"temperature": temp, "rms_a": float(np.sqrt(np.mean(a[20:] ** 2))),
                   "rms_a_minus_T0": float(np.sqrt(np.mean((a - a_ref)[20:] ** 2))),
                   "nu_box_1pct": box_poisson(tr, min(0.01, 1 - tr.box[-1, 0] / tr.box[0, 0]))}
            noise.append(rec)
            print(f"  T = {temp:.0e}: rms a {rec['rms_a']:.3e}, rms (a − a_T0) {rec['rms_a_minus_T0']:.3e}, "
                  f"ν box at 1 % {rec['nu_box_1pct']:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"networks": rows, "noise": noise}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
