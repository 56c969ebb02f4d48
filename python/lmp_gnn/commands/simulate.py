"""`lmp-gnn simulate`: compress every network of a directory in LAMMPS and write trajectories.

    lmp-gnn simulate NETWORKS_DIR -o TRAJ_DIR [--workers 2] [--temperature 1e-10] ...

Each `NAME.data` (LAMMPS data file, optional `NAME.json` sidecar with `nu_linear`; without one,
`nu_linear` is the network's own linear response, `lmp_gnn.physics.elastic.linear_nu`) becomes
`TRAJ_DIR/NAME.npz` (docs/formats.md). Existing outputs are skipped (after checking that they
load), so a killed run resumes where it stopped; each file is written atomically, so a kill loses
only the networks in flight. Every network to simulate is read first: a file that is not a 2D
network (a 3D data file, two atoms at one place, ...) stops the run, named, before anything is
written. Each worker process runs its own LAMMPS (serial) and ends if this process is killed
(lmp_gnn.workers). A network whose MD fails is reported and the others go on. A summary is
printed and written to `TRAJ_DIR/simulate_summary.json` (not when every network failed).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
import zlib
from pathlib import Path

from lmp_gnn.files import atomic_write_text
from lmp_gnn.workers import pool as worker_pool

SUMMARY_NAME = "simulate_summary.json"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path,
                        help="directories of network .data files (with optional .json sidecars), or .data files")
    parser.add_argument("-o", "--output", type=Path, required=True, help="directory for NAME.npz trajectories")
    parser.add_argument("--max-strain", type=float, default=0.05,
                        help="final compressive strain along x (default 0.05)")
    parser.add_argument("--delta-l", type=float, default=2e-3,
                        help="change of the box length Lx per snapshot, LJ distance (default 2e-3)")
    parser.add_argument("--delta-strain", type=float, default=None,
                        help="instead of --delta-l: a fixed strain per snapshot, each network's Δl = this × its "
                             "initial Lx (recorded as delta_l and delta_strain in the metadata); for networks of "
                             "another size at the training data's strain per snapshot")
    parser.add_argument("--temperature", type=float, default=1e-10, help="Langevin temperature (default 1e-10)")
    parser.add_argument("--strain-rate", type=float, default=2.5e-6,
                        help="engineering strain rate per MD time unit (default 2.5e-6)")
    parser.add_argument("--timestep", type=float, default=0.05, help="MD time step (default 0.05)")
    parser.add_argument("--damp", type=float, default=10.0, help="Langevin damping time (default 10)")
    parser.add_argument("--thermostat", choices=("langevin", "viscous"), default="langevin",
                        help="langevin: T as given (default); viscous: the same drag with no noise (T = 0), "
                             "deterministic snapshots for training data (docs/protocol.md)")
    parser.add_argument("--seed", type=int, default=0,
                        help="base seed; each network's Langevin seed is derived from it and the file name (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, one LAMMPS each (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="recompute trajectories that already exist")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    out = args.output
    try:
        files = _network_files(args.inputs)
        _check(args)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--output: expected a directory, got the file {out}")
        todo = [f for f in files if args.overwrite or not _done(out / f"{f.stem}.npz")]
        _check_networks(todo, args)     # every input read before anything is written
    except ValueError as exc:
        print(f"lmp-gnn simulate: error: {exc}", file=sys.stderr)
        return 2
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    skipped = len(files) - len(todo)
    params = dict(max_strain=args.max_strain, delta_l=args.delta_l, temperature=args.temperature,
                  strain_rate=args.strain_rate, timestep=args.timestep, damp=args.damp,
                  thermostat=args.thermostat, delta_strain=args.delta_strain)
    tasks = [(str(f), str(out / f"{f.stem}.npz"), params, network_seed(args.seed, f.stem)) for f in todo]
    print(f"lmp-gnn simulate: {len(files)} networks, {skipped} already done, {len(todo)} to run "
          f"with {args.workers} worker(s) -> {out}", file=sys.stderr)

    t0 = time.perf_counter()
    results: list[dict] = []
    failures: list[dict] = []
    with tqdm(total=len(tasks), unit="net", desc="simulate", dynamic_ncols=True) as bar:
        def collect(res: dict) -> None:
            (failures if "error" in res else results).append(res)
            if "error" in res:
                tqdm.write(f"failed: {res['network']}: {res['error']}", file=sys.stderr)
            else:
                bar.set_postfix_str(f"{res['network']} N={res['n_nodes']} {res['wall_time_s']:.1f}s")
            bar.update(1)

        if args.workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                collect(_simulate_one(task))
        else:
            # spawned workers (each its own MPI and LAMMPS) that end if this process is killed
            with worker_pool(min(args.workers, len(tasks))) as pool:
                for res in pool.imap_unordered(_simulate_one, tasks):
                    collect(res)
    wall = time.perf_counter() - t0

    summary = _summary(results, failures, skipped, wall, params, args)
    _print_summary(summary)
    if not results and not skipped:
        # every network failed (reported above): a summary of nothing is not left behind, nor a
        # folder this run made
        if created:
            shutil.rmtree(out, ignore_errors=True)
        return 1
    atomic_write_text(out / SUMMARY_NAME, json.dumps(summary, indent=1) + "\n")
    return 1 if failures else 0


def network_seed(base: int, name: str) -> int:
    """Per-network seed from the base seed and the file stem: stable when files are added or removed."""
    return (base * 1_000_003 + zlib.crc32(name.encode())) % 2_000_000_000


def _done(path: Path) -> bool:
    """A trajectory already made: it exists and loads (a truncated or corrupt file is redone)."""
    if not path.exists():
        return False
    from lmp_gnn.physics.trajectory import TrajectoryFormatError, load_trajectory

    try:
        load_trajectory(path)
    except TrajectoryFormatError as exc:
        print(f"lmp-gnn simulate: {path} is unreadable ({exc}); making it again", file=sys.stderr)
        return False
    return True


def _network_files(inputs: list[Path]) -> list[Path]:
    files = []
    for p in inputs:
        if p.is_dir():
            files += sorted(p.glob("*.data"))
        elif p.is_file() and p.suffix == ".data":
            files.append(p)
        else:
            raise ValueError(f"expected a directory or a .data file, got {p}")
    if not files:
        raise ValueError(f"expected .data network files in {', '.join(map(str, inputs))}, found none")
    stems = [f.stem for f in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise ValueError(f"expected unique network names (outputs are NAME.npz), got duplicates {dup[:5]}")
    return files


def _check_networks(files: list[Path], args) -> None:
    """Read every network to simulate and its sidecar and check the protocol against its box: the
    first bad one stops the run, named, before any output is written."""
    from lmp_gnn.physics.md import check_arguments
    from lmp_gnn.physics.network import Network

    for f in files:
        net = Network.read_lammps_data(f)
        read_sidecar(f)
        lx0 = float(net.box[0])
        delta_l = args.delta_l if args.delta_strain is None else args.delta_strain * lx0
        try:
            check_arguments(max_strain=args.max_strain, delta_l=delta_l, temperature=args.temperature,
                            strain_rate=args.strain_rate, timestep=args.timestep, damp=args.damp, seed=args.seed,
                            thermostat=args.thermostat, box_x=lx0)
        except ValueError as exc:
            raise ValueError(f"{f}: {exc}") from None


def _check(args) -> None:
    if args.workers < 1:
        raise ValueError(f"expected --workers ≥ 1, got {args.workers}")
    if args.seed < 0:
        raise ValueError(f"expected --seed ≥ 0, got {args.seed}")
    from lmp_gnn.physics.md import check_arguments

    # the checks that depend on Lx0 run per network (_check_networks)
    if args.delta_strain is not None and not 0.0 < args.delta_strain <= args.max_strain:
        raise ValueError(f"expected 0 < --delta-strain ≤ --max-strain, got {args.delta_strain}")
    delta_l = args.delta_l if args.delta_strain is None else args.delta_strain   # Lx0-free checks only
    try:
        check_arguments(max_strain=args.max_strain, delta_l=delta_l, temperature=args.temperature,
                        strain_rate=args.strain_rate, timestep=args.timestep, damp=args.damp, seed=args.seed,
                        thermostat=args.thermostat)
    except ValueError as exc:   # "expected delta_l > 0, got -0.001": name the option it came from
        option = next((f"--{k.replace('_', '-')}" for k in ("max_strain", "delta_l", "temperature", "strain_rate",
                                                             "timestep", "damp", "seed", "thermostat")
                       if re.search(rf"\b{k}\b", str(exc))), None)
        raise ValueError(f"{option}: {exc}" if option else str(exc)) from None


def read_sidecar(data_file: Path) -> dict:
    """The network's `.json` sidecar as a dict ({} if absent)."""
    side = data_file.with_suffix(".json")
    if not side.exists():
        return {}
    try:
        info = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{side}: expected a JSON sidecar, got unreadable text ({exc})") from exc
    if not isinstance(info, dict):
        raise ValueError(f"{side}: expected a JSON object, got {type(info).__name__}")
    return info


def sidecar_nu_linear(info: dict) -> float | None:
    """`nu_linear` from a sidecar: top level, or inside a nested object (e.g. {"elastic": {"nu_linear": …}})."""
    if isinstance(info.get("nu_linear"), (int, float)):
        return float(info["nu_linear"])
    for value in info.values():
        if isinstance(value, dict) and isinstance(value.get("nu_linear"), (int, float)):
            return float(value["nu_linear"])
    return None


def _simulate_one(task) -> dict:
    """Worker: read one network, compress it, write its trajectory; never raises (errors are returned)."""
    data_file, out_file, params, seed = task
    data_file, out_file = Path(data_file), Path(out_file)
    name = data_file.stem
    try:
        from lmp_gnn.physics.md import compress
        from lmp_gnn.physics.network import Network
        from lmp_gnn.physics.poisson import box_poisson, estimator_poisson
        from lmp_gnn.physics.trajectory import save_trajectory

        for stale in out_file.parent.glob(f".{name}.*.npz"):  # temporaries of a killed run
            stale.unlink(missing_ok=True)
        net = Network.read_lammps_data(data_file)
        nu_linear = sidecar_nu_linear(read_sidecar(data_file))
        if nu_linear is None:     # a foreign data file: the network's own linear response
            from lmp_gnn.physics.elastic import linear_nu

            nu_linear = linear_nu(net)
        net.info["nu_linear"] = nu_linear
        params = dict(params)
        delta_strain = params.pop("delta_strain", None)
        if delta_strain is not None:      # a fixed strain per snapshot: Δl scales with this network's Lx0
            params["delta_l"] = delta_strain * float(net.box[0])
        traj = compress(net, seed=seed, **params)
        traj.metadata["network"] = data_file.name
        if delta_strain is not None:
            traj.metadata["delta_strain"] = delta_strain
        save_trajectory(out_file, traj)
        strain = min(0.01, float(traj.box[0, 0] - traj.box[-1, 0]) / float(traj.box[0, 0]))
        t1 = min(traj.n_snapshots - 1, int(round(strain * traj.box[0, 0] / params["delta_l"])))
        return {"network": name, "n_nodes": traj.n_nodes, "n_snapshots": traj.n_snapshots,
                "md_steps_per_snapshot": traj.metadata["md_steps_per_snapshot"],
                "wall_time_s": traj.metadata["wall_time_s"], "nu_linear": nu_linear, "strain_nu": strain,
                "nu_box": box_poisson(traj, strain), "nu_est": estimator_poisson(traj, t1)}
    except Exception as exc:  # report and go on with the other networks
        return {"network": name, "error": f"{type(exc).__name__}: {exc}"}


def _summary(results, failures, skipped, wall, params, args) -> dict:
    import numpy as np

    s = {"simulated": len(results), "skipped_existing": skipped, "failed": len(failures),
         "failures": failures, "wall_time_s": wall, "workers": args.workers, "params": params, "seed": args.seed}
    if results:
        s["mean_md_steps_per_snapshot"] = float(np.mean([r["md_steps_per_snapshot"] for r in results]))
        s["mean_wall_per_network_s"] = float(np.mean([r["wall_time_s"] for r in results]))
        s["mean_n_nodes"] = float(np.mean([r["n_nodes"] for r in results]))
        s["strain_nu"] = float(min(r["strain_nu"] for r in results))
        pairs = [(r["nu_box"], r["nu_linear"]) for r in results if r["nu_linear"] is not None]
        if pairs:
            d = np.array([b - lin for b, lin in pairs])
            s["nu_box_vs_linear"] = {"count": len(pairs), "mean_diff": float(d.mean()),
                                     "rms_diff": float(np.sqrt(np.mean(d**2))), "max_abs_diff": float(np.abs(d).max())}
        d = np.array([r["nu_est"] - r["nu_box"] for r in results])
        s["nu_est_vs_box"] = {"mean_diff": float(d.mean()), "rms_diff": float(np.sqrt(np.mean(d**2))),
                              "max_abs_diff": float(np.abs(d).max())}
        s["networks"] = sorted(results, key=lambda r: r["network"])
    return s


def _print_summary(s: dict) -> None:
    lines = [f"simulated {s['simulated']}, skipped {s['skipped_existing']} existing, failed {s['failed']}, "
             f"wall {s['wall_time_s']:.1f} s with {s['workers']} worker(s)"]
    if s["simulated"]:
        lines.append(f"mean N {s['mean_n_nodes']:.0f}, mean MD steps/snapshot {s['mean_md_steps_per_snapshot']:.0f}, "
                     f"mean {s['mean_wall_per_network_s']:.1f} s per network")
        pct = 100 * s["strain_nu"]
        if "nu_box_vs_linear" in s:
            c = s["nu_box_vs_linear"]
            lines.append(f"ν box at {pct:.3g} % vs linear response ({c['count']} networks): "
                         f"mean diff {c['mean_diff']:+.4f}, "
                         f"RMS {c['rms_diff']:.4f}, max |diff| {c['max_abs_diff']:.4f}")
        else:
            lines.append("ν linear response: none (no sidecar, and the networks are floppy or not at "
                         "mechanical equilibrium in their data files)")
        c = s["nu_est_vs_box"]
        lines.append(f"ν_est vs ν box at {pct:.3g} %: mean diff {c['mean_diff']:+.4f}, RMS {c['rms_diff']:.4f}, "
                     f"max |diff| {c['max_abs_diff']:.4f}")
    for line in lines:
        print(line)
