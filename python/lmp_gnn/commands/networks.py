"""`lmp-gnn networks`: generate jammed networks and tune each to a target Poisson's ratio.

Output directory layout (docs/formats.md, "Networks"):

    DIR/net_0000.data   LAMMPS data file of network 0 (atom_style bond, harmonic bonds)
    DIR/net_0000.json   its provenance: seeds, N, M, Z, linear-response moduli and ν, the
                        compression-along-x ratios (ν_box, ν_est), target, tuning report,
                        generator and package versions, wall times
    ...

Tuning is greedy bond pruning (--method prune, default; with --affine-slack, below) or the paper's node-position descent
(--method positions), each by default with --objective joint: the isotropic ν, the box ν and the
paper's estimator ν_est of a compression along x all within --tol of the target.

Targets are spread evenly over [--nu-min, --nu-max] (network i of n gets
nu_min + i (nu_max - nu_min)/(n - 1)). Network i's seed is derived from (--seed, i, attempt);
a network that turns out floppy or misses its target is retried with the next attempt's seed
(up to --attempts).

Linearity check (--check-strain, --linear-tol): linear response is exact only at vanishing strain,
and many pruned networks are nonlinear already below 1 % (docs/physics.md §4), so an MD
measurement at 1 % would not show the tuned ν. After tuning, each network is
compressed athermally (energy minimisation in LAMMPS, `lmp_gnn.physics.md.athermal_compression`, the
limit the quasi-static MD tends to) to --check-strain along x with zero stress on y, and is
rejected (retried with the next seed, like a floppy one) unless both the box ν there is within
--linear-tol of the linear-response ν and the paper's estimator ν_est there is within
--linear-tol of that box ν. The measured values go to the sidecar ("linearity"). The pruning's
--affine-slack (default 0.3) lowers the rejection rate: instead of the greediest removal, each
step takes the least non-affine one among those that make at least 70 % of the greediest
progress (measured rejection rates: docs/physics.md §4). The .json is written last and atomically,
so a network counts as done when its .json exists: an interrupted run resumes where it stopped with
the same command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULTS: dict[str, Any] = dict(count=10, nodes=300, nu_min=-0.6, nu_max=0.4, seed=0, workers=1, tol=0.01,
                                packing_fraction=0.95, objective="joint", method="prune", attempts=30,
                                check_strain=0.01, linear_tol=0.03, check_increments=4, affine_slack=0.3)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to `parser`."""
    parser.add_argument("-o", "--out", required=True, type=Path, help="output directory (created if missing)")
    parser.add_argument("--count", type=int, default=DEFAULTS["count"], help="number of networks (default %(default)s)")
    parser.add_argument("--nodes", type=int, default=DEFAULTS["nodes"],
                        help="disks per packing; the network keeps those with ≥ 3 contacts, "
                             "typically ≥ 99 %% of them at φ = 0.95 (default %(default)s)")
    parser.add_argument("--nu-min", type=float, default=DEFAULTS["nu_min"],
                        help="lowest target ν (default %(default)s)")
    parser.add_argument("--nu-max", type=float, default=DEFAULTS["nu_max"],
                        help="highest target ν (default %(default)s)")
    parser.add_argument("--tol", type=float, default=DEFAULTS["tol"], help="tolerance on ν (default %(default)s)")
    parser.add_argument("--objective", choices=("nu", "joint"), default=DEFAULTS["objective"],
                        help="nu: tune the isotropic ν of docs/physics.md §5 only; joint: also the box ν and the "
                             "paper's estimator ν_est of a compression along x (default %(default)s)")
    parser.add_argument("--method", choices=("prune", "positions"), default=DEFAULTS["method"],
                        help="prune: greedy bond removal (lmp_gnn.physics.tuning.tune_poisson); positions: the paper's "
                             "node-position gradient descent, all bonds kept (tune_positions) (default %(default)s)")
    parser.add_argument("--packing-fraction", type=float, default=DEFAULTS["packing_fraction"],
                        help="packing fraction of the jammed disks (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="base random seed (default %(default)s)")
    parser.add_argument("--attempts", type=int, default=DEFAULTS["attempts"],
                        help="seeds to try per network before giving up (default %(default)s)")
    parser.add_argument("--affine-slack", type=float, default=DEFAULTS["affine_slack"],
                        help="--method prune: each step takes, among the removals that achieve at least "
                             "(1 - slack) of the best step's progress, the one with the least non-affine response "
                             "(tune_poisson's affine_slack; 0 = plain greedy). Fewer networks are then rejected "
                             "by the linearity check (default %(default)s)")
    parser.add_argument("--check-strain", type=float, default=DEFAULTS["check_strain"],
                        help="strain of the athermal compression along x that checks the tuned network's response "
                             "is linear; 0 skips the check (default %(default)s)")
    parser.add_argument("--linear-tol", type=float, default=DEFAULTS["linear_tol"],
                        help="reject a network unless |ν_box(check strain) - ν_linear| and |ν_est - ν_box| at the "
                             "check strain are both within this (default %(default)s)")
    parser.add_argument("--workers", type=int, default=DEFAULTS["workers"],
                        help="parallel worker processes (default %(default)s)")


def targets(count: int, nu_min: float, nu_max: float) -> np.ndarray:
    """[count] target ν evenly spread over [nu_min, nu_max] (the midpoint when count is 1)."""
    if count == 1:
        return np.array([0.5 * (nu_min + nu_max)])
    return np.linspace(nu_min, nu_max, count)


def network_seed(base_seed: int, index: int, attempt: int) -> int:
    """The generator seed of network `index`, try `attempt` (a 32-bit integer)."""
    return int(np.random.SeedSequence([base_seed, index, attempt]).generate_state(1)[0])


def _validate(args) -> None:
    if args.count < 1:
        raise ValueError(f"--count: expected a positive integer, got {args.count}")
    if args.nodes < 16:
        raise ValueError(f"--nodes: expected at least 16 disks, got {args.nodes}")
    if not -1.0 < args.nu_min <= args.nu_max < 1.0:
        raise ValueError(f"--nu-min/--nu-max: expected -1 < nu_min ≤ nu_max < 1, got {args.nu_min} and {args.nu_max}")
    if not args.tol > 0:
        raise ValueError(f"--tol: expected a positive tolerance, got {args.tol}")
    if not 0 < args.packing_fraction < 1.5:
        raise ValueError(f"--packing-fraction: expected 0 < φ < 1.5, got {args.packing_fraction}")
    if args.seed < 0:
        raise ValueError(f"--seed: expected a non-negative integer, got {args.seed}")
    if args.attempts < 1:
        raise ValueError(f"--attempts: expected a positive integer, got {args.attempts}")
    if not 0.0 <= args.check_strain < 0.5:
        raise ValueError(f"--check-strain: expected 0 (no check) or a strain in (0, 0.5), got {args.check_strain}")
    if not 0.0 <= args.affine_slack < 1.0:
        raise ValueError(f"--affine-slack: expected 0 ≤ slack < 1, got {args.affine_slack}")
    if not args.linear_tol > 0:
        raise ValueError(f"--linear-tol: expected a positive tolerance, got {args.linear_tol}")
    if args.workers < 1:
        raise ValueError(f"--workers: expected a positive integer, got {args.workers}")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out: expected a directory, got the file {args.out}")


def _paths(out: Path, index: int, width: int) -> tuple[Path, Path]:
    stem = out / f"net_{index:0{width}d}"
    return stem.with_suffix(".data"), stem.with_suffix(".json")


def _existing(json_path: Path, data_path: Path, job: dict) -> dict | None:
    """The finished record for `job`, None if not done; raises if it was made with other settings."""
    if not (json_path.exists() and data_path.exists()):
        return None
    try:
        rec = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # unreadable: redo it
    for key in ("target", "base_seed", "nodes", "objective", "method", "tol", "packing_fraction", "check_strain",
                "linear_tol", "affine_slack"):
        if key in rec and rec[key] != job[key]:
            raise ValueError(f"{json_path}: made with {key} = {rec[key]!r}, this run expects {job[key]!r}; "
                             f"use another --out directory or the original options")
    if rec.get("status") != "ok":
        return None
    # the .json is written last, but the .data may have been damaged or cut short since: redo it
    # unless it reads back as the network the record describes
    from lmp_gnn.physics.network import Network

    try:
        net = Network.read_lammps_data(data_path)
    except ValueError as exc:
        print(f"lmp-gnn networks: {data_path} is unreadable ({exc}); making it again", file=sys.stderr)
        return None
    if (net.n_nodes, net.n_bonds) != (rec.get("N"), rec.get("M")):
        print(f"lmp-gnn networks: {data_path} has {net.n_nodes} nodes and {net.n_bonds} bonds, its record "
              f"{rec.get('N')} and {rec.get('M')}; making it again", file=sys.stderr)
        return None
    return rec


def make_network(job: dict) -> dict:
    """Generate, tune and write network job["index"]; return its JSON record (also on failure).

    Runs in a worker process; everything in and out is plain data.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from lmp_gnn import __version__
    from lmp_gnn.files import atomic_write_text
    from lmp_gnn.physics.elastic import FloppyNetworkError, elastic_constants, uniaxial_response
    from lmp_gnn.physics.generate import GENERATOR_VERSION, JammingError, jammed_network
    from lmp_gnn.physics.md import athermal_compression
    from lmp_gnn.physics.tuning import TargetNotReachedError, tune_poisson, tune_positions

    data_path, json_path = Path(job["data"]), Path(job["json"])
    errors = []
    n_nonlinear = 0
    for attempt in range(job["attempts"]):
        seed = network_seed(job["base_seed"], job["index"], attempt)
        t0 = time.perf_counter()
        try:
            net0 = jammed_network(job["nodes"], seed, job["packing_fraction"])
            t_gen = time.perf_counter() - t0
            if job["method"] == "prune":
                net, report = tune_poisson(net0, job["target"], job["tol"], objective=job["objective"],
                                           affine_slack=job["affine_slack"])
            else:
                net, report = tune_positions(net0, job["target"], job["tol"], objective=job["objective"])
        except (FloppyNetworkError, JammingError, TargetNotReachedError) as exc:
            errors.append(f"attempt {attempt} (seed {seed}): {type(exc).__name__}: {exc}")
            continue
        t_tune = time.perf_counter() - t0 - t_gen
        ec = elastic_constants(net)
        linearity = None
        if job["check_strain"] > 0:
            linearity = linearity_check(net, ec.nu, job["check_strain"], job["linear_tol"], athermal_compression)
            if not linearity["ok"]:
                errors.append(f"attempt {attempt} (seed {seed}): NonlinearResponse: {linearity['message']}")
                n_nonlinear += 1
                continue
        rec = {
            "status": "ok",
            "index": job["index"],
            "seed": seed,
            "attempt": attempt,
            "base_seed": job["base_seed"],
            "nodes": job["nodes"],
            "packing_fraction": job["packing_fraction"],
            "objective": job["objective"],
            "method": job["method"],
            "tol": job["tol"],
            "check_strain": job["check_strain"],
            "linear_tol": job["linear_tol"],
            "affine_slack": job["affine_slack"],
            "target": job["target"],
            "N": net.n_nodes,
            "M": net.n_bonds,
            "Z": 2.0 * net.n_bonds / net.n_nodes,
            "box": net.box.tolist(),
            "nu": ec.nu,
            "nu_linear": ec.nu,  # the name `lmp-gnn simulate` reads
            "moduli": ec.as_dict(),
            "uniaxial_x": uniaxial_response(net, "x"),
            "untuned": {"M": net0.n_bonds, "Z": 2.0 * net0.n_bonds / net0.n_nodes, "nu": report["nu_initial"]},
            "tuning": report,
            "generation": {k: v for k, v in net0.info.items() if k != "wall_time_s"},
            "generator_version": GENERATOR_VERSION,
            "lmp_gnn_version": __version__,
            "linearity": linearity,
            "failed_attempts": errors,
            "rejected_nonlinear": n_nonlinear,
            "wall_time_s": {"generate": t_gen, "tune": t_tune,
                            "check": linearity["wall_time_s"] if linearity else 0.0},
            "data_file": data_path.name,
        }
        net.write_lammps_data(data_path, title=f"lmp-gnn network {job['index']} seed {seed} "
                                               f"target nu {job['target']:.4f} nu {ec.nu:.4f} ({GENERATOR_VERSION})")
        atomic_write_text(json_path, json.dumps(rec, indent=1) + "\n")
        return rec
    return {"status": "failed", "index": job["index"], "target": job["target"], "errors": errors,
            "rejected_nonlinear": n_nonlinear}


def linearity_check(net, nu_linear: float, strain: float, tol: float, athermal_compression=None,
                    increments: int = DEFAULTS["check_increments"]) -> dict:
    """Compress `net` athermally to `strain` along x; is its response still the linear one?

    Returns the sidecar's "linearity" record: strain, increments, tol, nu_box and nu_est (lists,
    one per increment of the compression), dev_box = ν_box(strain) - nu_linear, dev_est =
    ν_est(strain) - ν_box(strain), ok (both |dev| ≤ tol), message (why not ok, else "") and
    wall_time_s.
    """
    if athermal_compression is None:
        from lmp_gnn.physics.md import athermal_compression
    aqs = athermal_compression(net, strain, increments=increments)
    box, est = aqs["nu_box"][-1], aqs["nu_est"][-1]
    dev_box, dev_est = box - nu_linear, est - box
    problems = []
    if not abs(dev_box) <= tol:
        problems.append(f"expected the box ν at {100 * strain:g} % strain within {tol} of the linear ν "
                        f"{nu_linear:+.4f}, got {box:+.4f}")
    if not abs(dev_est) <= tol:
        problems.append(f"expected ν_est at {100 * strain:g} % strain within {tol} of the box ν {box:+.4f}, "
                        f"got {est:+.4f}")
    return {"strain": float(strain), "increments": int(increments), "tol": float(tol),
            "nu_box": aqs["nu_box"], "nu_est": aqs["nu_est"], "dev_box": float(dev_box), "dev_est": float(dev_est),
            "ok": not problems, "message": "; ".join(problems), "wall_time_s": float(aqs["wall_time_s"])}


def histogram_text(values: np.ndarray, lo: float, hi: float, bins: int = 10, width: int = 40) -> str:
    """A text histogram of `values` over [lo, hi] (values outside go to the end bins)."""
    if hi <= lo:
        lo, hi = lo - 0.05, hi + 0.05
    values = np.clip(np.asarray(values, dtype=np.float64), lo, hi)
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    return "\n".join(f"  [{edges[b]:+.3f}, {edges[b + 1]:+.3f}) {counts[b]:4d} "
                     f"{'#' * int(round(width * counts[b] / top))}" for b in range(bins))


def run(args) -> int:
    """Generate the networks; return 0 if all exist at the end, 1 if some failed, 2 on bad input."""

    from tqdm import tqdm

    try:
        _validate(args)
    except ValueError as exc:
        print(f"lmp-gnn networks: error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(args.count - 1)))
    jobs: list[dict] = []
    done: list[dict] = []
    for i, target in enumerate(targets(args.count, args.nu_min, args.nu_max)):
        data_path, json_path = _paths(out, i, width)
        job = dict(index=i, target=float(target), base_seed=args.seed, nodes=args.nodes, tol=args.tol,
                   objective=args.objective, method=args.method, packing_fraction=args.packing_fraction,
                   attempts=args.attempts,
                   check_strain=args.check_strain, linear_tol=args.linear_tol, affine_slack=args.affine_slack,
                   data=str(data_path), json=str(json_path))
        try:
            rec = _existing(json_path, data_path, job)
        except ValueError as exc:
            print(f"lmp-gnn networks: error: {exc}", file=sys.stderr)
            return 2
        (done if rec is not None else jobs).append(rec if rec is not None else job)
    skipped = len(done)
    if skipped:
        print(f"{skipped} of {args.count} networks already in {out}; making the other {len(jobs)}")

    results = []
    if jobs:
        bar = tqdm(total=len(jobs), desc="networks", unit="net")
        if args.workers == 1 or len(jobs) == 1:
            for job in jobs:
                results.append(make_network(job))
                bar.update()
        else:
            from lmp_gnn.workers import pool as worker_pool

            # spawned (LAMMPS/MPI state must not be forked); they end if this process is killed
            with worker_pool(min(args.workers, len(jobs))) as pool:
                for rec in pool.imap_unordered(make_network, jobs):
                    results.append(rec)
                    bar.update()
        bar.close()
    ok = done + [r for r in results if r["status"] == "ok"]
    failed = [r for r in results if r["status"] != "ok"]
    wall = time.perf_counter() - t0

    print(f"\n{len(ok)} of {args.count} networks in {out} ({skipped} from before, {len(ok) - skipped} new, "
          f"{len(failed)} failed) in {wall:.1f} s")
    if ok:
        nus = np.array([r["nu"] for r in ok])
        Ns = np.array([r["N"] for r in ok])
        Zs = np.array([r["Z"] for r in ok])
        dev = np.array([abs(r["nu"] - r["target"]) for r in ok])
        print(f"N {Ns.min()}–{Ns.max()}, Z {Zs.min():.3f}–{Zs.max():.3f}, ν {nus.min():+.3f}…{nus.max():+.3f}, "
              f"max |ν - target| {dev.max():.4f}")
        if args.objective == "joint":
            box = np.array([r["uniaxial_x"]["nu_box"] for r in ok])
            est = np.array([r["uniaxial_x"]["nu_est"] for r in ok])
            tg = np.array([r["target"] for r in ok])
            print(f"compression along x: max |ν_box - target| {np.abs(box - tg).max():.4f}, "
                  f"max |ν_est - target| {np.abs(est - tg).max():.4f}")
        checked = [r for r in ok if r.get("linearity")]
        if checked:
            db = np.array([r["linearity"]["dev_box"] for r in checked])
            de = np.array([r["linearity"]["dev_est"] for r in checked])
            s = checked[0]["linearity"]["strain"]
            print(f"athermal compression to {100 * s:g} %: ν_box - ν_linear RMS {np.sqrt(np.mean(db ** 2)):.4f} "
                  f"(max |·| {np.abs(db).max():.4f}), ν_est - ν_box RMS {np.sqrt(np.mean(de ** 2)):.4f} "
                  f"(max |·| {np.abs(de).max():.4f}) over {len(checked)} networks")
        new = ok[skipped:]
        if new:
            tg = np.array([r["wall_time_s"]["generate"] for r in new])
            tt = np.array([r["wall_time_s"]["tune"] for r in new])
            tc = np.array([r["wall_time_s"].get("check", 0.0) for r in new])
            print(f"per new network: generation {tg.mean():.2f} s, tuning {tt.mean():.2f} s, linearity check "
                  f"{tc.mean():.2f} s (mean per network, one core each)")
        n_rej = sum(r.get("rejected_nonlinear", 0) for r in results)
        n_tries = sum(len(r.get("failed_attempts", r.get("errors", []))) + (r["status"] == "ok") for r in results)
        if results:
            print(f"attempts this run: {n_tries}, rejected as nonlinear: {n_rej}")
        print("ν histogram:")
        print(histogram_text(nus, min(args.nu_min, nus.min()), max(args.nu_max, nus.max())))
    for r in failed:
        print(f"network {r['index']} (target {r['target']:+.4f}) failed:", file=sys.stderr)
        for e in r["errors"]:
            print(f"  {e}", file=sys.stderr)
    return 1 if failed else 0
