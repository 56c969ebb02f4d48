"""Summary of a data set made by `scripts/make_dataset.sh`: networks, ν, and what the MD measured.

    PYTHONPATH=python python benchmarks/dataset_summary.py DIR [--png nu.png] [--json summary.json]

DIR holds networks/NAME.data + NAME.json (`lmp-gnn networks`) and trajectories/NAME.npz
(`lmp-gnn simulate`). DIR is only read; the PNG (ν_linear histogram and MD box ν against
ν_linear) and the optional JSON go where --png / --json say. Printed:

- count, N and M ranges, ν_linear range and text histogram; the tuning and linearity-check
  settings and records of the sidecars (the athermal 1 % box ν and ν_est, rejected attempts) where
  the networks have them;
- per trajectory, the box ν at 1 % and 5 % strain (`lmp_gnn.physics.poisson.box_poisson`) and the paper's
  ν_est at the snapshots nearest to those strains, against ν_linear (RMS) and against each other;
- MD steps per snapshot, snapshots, thermostat, wall time per trajectory (from the metadata).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lmp_gnn.commands.networks import histogram_text
from lmp_gnn.physics.poisson import box_poisson, estimator_poisson
from lmp_gnn.physics.trajectory import load_trajectory

STRAINS = (0.01, 0.05)


def stats(d) -> str:
    d = np.asarray(d, dtype=float)
    return (f"mean {d.mean():+.4f}, RMS {np.sqrt(np.mean(d ** 2)):.4f}, median |·| {np.median(np.abs(d)):.4f}, "
            f"max |·| {np.abs(d).max():.4f}")


def trajectory_row(path: Path) -> dict:
    traj = load_trajectory(path)
    md = traj.metadata
    lx0 = traj.box[0, 0]
    top = 1.0 - traj.box[-1, 0] / lx0
    row = {"name": path.stem, "n_nodes": traj.n_nodes, "snapshots": traj.n_snapshots, "max_strain": float(top),
           "nu_linear": md.get("nu_linear"), "md_steps_per_snapshot": md.get("md_steps_per_snapshot"),
           "wall_time_s": md.get("wall_time_s"), "thermostat": md.get("thermostat"),
           "temperature": md.get("temperature"), "delta_l": md.get("delta_l")}
    for s in STRAINS:
        key = f"{round(100 * s)}"
        # a run to max_strain ends on the last whole Δl, up to Δl/Lx0 short of it: that snapshot stands for s
        if s <= top + md["delta_l"] / lx0:
            s_box = min(s, top)
            t = int(round(s_box * lx0 / md["delta_l"]))
            t = min(max(t, 1), traj.n_snapshots - 1)
            row[f"box_{key}"] = box_poisson(traj, s_box)
            row[f"box_strain_{key}"] = float(s_box)
            row[f"est_{key}"] = estimator_poisson(traj, t)
            row[f"est_strain_{key}"] = float(1.0 - traj.box[t, 0] / lx0)
        else:
            row[f"box_{key}"] = row[f"est_{key}"] = None
    return row


def plot(path: Path, nu_lin: np.ndarray, rows: list[dict]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2, 1)
    ax.hist(nu_lin, bins=20, color="tab:blue", edgecolor="k")
    ax.set_xlabel("ν (linear response)")
    ax.set_ylabel("networks")
    ax.set_title(f"{len(nu_lin)} networks")
    ax = fig.add_subplot(1, 2, 2)
    lo, hi = float(nu_lin.min()) - 0.05, float(nu_lin.max()) + 0.05
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    for s, colour in zip(STRAINS, ("tab:green", "tab:red"), strict=True):
        key = f"{round(100 * s)}"
        pts = [(r["nu_linear"], r[f"box_{key}"]) for r in rows
               if r[f"box_{key}"] is not None and r["nu_linear"] is not None]
        if pts:
            x, y = np.array(pts).T
            ax.scatter(x, y, s=10, color=colour, label=f"MD box ν at {100 * s:g} %")
    ax.set_xlabel("ν (linear response)")
    ax.set_ylabel("ν from the MD box")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path, help="directory with networks/ and trajectories/ (read only)")
    p.add_argument("--png", type=Path, default=Path("dataset_summary.png"),
                   help="figure: ν histogram and MD box ν vs linear ν (default ./dataset_summary.png)")
    p.add_argument("--json", type=Path, help="write every number here")
    args = p.parse_args()

    net_dir, traj_dir = args.dataset / "networks", args.dataset / "trajectories"
    sides = {f.stem: json.loads(f.read_text()) for f in sorted(net_dir.glob("*.json"))}
    sides = {k: v for k, v in sides.items() if v.get("status") == "ok" and (net_dir / f"{k}.data").exists()}
    if not sides:
        sys.exit(f"expected NAME.json + NAME.data of `lmp-gnn networks` in {net_dir}, found none")
    names = sorted(sides)
    col = lambda key, recs: np.array([r[key] for r in recs], dtype=float)  # noqa: E731
    recs = [sides[k] for k in names]
    nu_lin = col("nu_linear", recs)
    N, M = col("N", recs), col("M", recs)
    print(f"{args.dataset}: {len(names)} networks, N {N.min():.0f}–{N.max():.0f} (mean {N.mean():.0f}), "
          f"M {M.min():.0f}–{M.max():.0f}, Z {col('Z', recs).min():.3f}–{col('Z', recs).max():.3f}")
    print(f"ν_linear in [{nu_lin.min():+.4f}, {nu_lin.max():+.4f}]; targets "
          f"[{col('target', recs).min():+.3f}, {col('target', recs).max():+.3f}], max |ν - target| "
          f"{np.abs(nu_lin - col('target', recs)).max():.4f}")
    settings = {k: sorted({json.dumps(r.get(k)) for r in recs}) for k in
                ("objective", "method", "tol", "affine_slack", "check_strain", "linear_tol", "generator_version")}
    print("settings: " + ", ".join(f"{k} {'/'.join(v)}" for k, v in settings.items()))
    print("ν_linear histogram:")
    print(histogram_text(nu_lin, min(-0.6, nu_lin.min()), max(0.4, nu_lin.max())))
    summary = {"dataset": str(args.dataset), "n_networks": len(names), "nu_linear_min": float(nu_lin.min()),
               "nu_linear_max": float(nu_lin.max()), "N_min": int(N.min()), "N_max": int(N.max())}
    checked = [r for r in recs if r.get("linearity")]
    if checked:
        db = [r["linearity"]["dev_box"] for r in checked]
        de = [r["linearity"]["dev_est"] for r in checked]
        s = checked[0]["linearity"]["strain"]
        print(f"linearity check of the sidecars ({len(checked)} networks, athermal {100 * s:g} %): "
              f"box ν − ν_linear {stats(db)}; ν_est − box ν {stats(de)}")
        n_rej = sum(r.get("rejected_nonlinear", 0) for r in recs)
        print(f"attempts rejected as nonlinear while making them: {n_rej} ({100 * n_rej / (n_rej + len(recs)):.0f} % "
              f"of {n_rej + len(recs)} tuned networks)")
    else:
        print("the sidecars have no linearity check (networks made before `lmp-gnn networks --check-strain`)")
    tsum = np.array([r["wall_time_s"]["generate"] + r["wall_time_s"]["tune"] + r["wall_time_s"].get("check", 0.0)
                     for r in recs])
    print(f"network wall time (generate + tune + check, one core each): mean {tsum.mean():.2f} s, "
          f"total {tsum.sum():.0f} s")

    traj_files = [traj_dir / f"{k}.npz" for k in names if (traj_dir / f"{k}.npz").exists()]
    print(f"\ntrajectories: {len(traj_files)} of {len(names)} networks have one in {traj_dir}")
    rows = [trajectory_row(f) for f in traj_files]
    for r in rows:
        if r["nu_linear"] is None:
            r["nu_linear"] = sides[r["name"]]["nu_linear"]
    if rows:
        steps = col("md_steps_per_snapshot", rows)
        wall = col("wall_time_s", rows)
        snaps = col("snapshots", rows)
        print(f"thermostat {sorted({str(r['thermostat']) for r in rows})}, "
              f"T {sorted({r['temperature'] for r in rows})}, "
              f"Δl {sorted({r['delta_l'] for r in rows})}, snapshots {snaps.min():.0f}–{snaps.max():.0f}, "
              f"max strain {min(r['max_strain'] for r in rows):.4f}–{max(r['max_strain'] for r in rows):.4f}")
        print(f"MD steps per snapshot: {steps.min():.0f}–{steps.max():.0f} (mean {steps.mean():.0f}); wall time per "
              f"trajectory: mean {wall.mean():.1f} s, {wall.min():.1f}–{wall.max():.1f} s, "
              f"total {wall.sum() / 3600:.2f} h "
              f"(one core each, on a shared machine)")
        for s in STRAINS:
            key = f"{round(100 * s)}"
            ok = [r for r in rows if r[f"box_{key}"] is not None]
            if not ok:
                print(f"no trajectory reaches {100 * s:g} %")
                continue
            box, est, lin = col(f"box_{key}", ok), col(f"est_{key}", ok), col("nu_linear", ok)
            rel = np.abs(est - box) / np.maximum(np.abs(box), 0.1)
            at = col(f"box_strain_{key}", ok)
            print(f"at {100 * s:g} % ({len(ok)} trajectories, box ν at strain {at.min():.4f}–{at.max():.4f}): "
                  f"MD box ν in [{box.min():+.3f}, {box.max():+.3f}]")
            print(f"  MD box ν − ν_linear:   {stats(box - lin)}")
            print(f"  MD ν_est − MD box ν:   {stats(est - box)}")
            # ν_est − box ν is the estimator's error in the transverse strain over the applied strain
            print(f"  |ν_est − box ν| ≤ 0.05 (transverse-strain error ≤ 5 % of the applied strain): "
                  f"{np.sum(np.abs(est - box) <= 0.05)} of {len(ok)}")
            print(f"  |ν_est − box ν| / max(|box ν|, 0.1) ≤ 5 %: {np.sum(rel <= 0.05)} of {len(ok)}")
            summary[f"rms_box_minus_linear_{key}"] = float(np.sqrt(np.mean((box - lin) ** 2)))
            summary[f"rms_est_minus_box_{key}"] = float(np.sqrt(np.mean((est - box) ** 2)))
        summary.update(md_steps_per_snapshot_mean=float(steps.mean()), wall_time_s_mean=float(wall.mean()),
                       n_trajectories=len(rows))
    plot(args.png, nu_lin, rows)
    print(f"\nfigure: {args.png}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "trajectories": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
