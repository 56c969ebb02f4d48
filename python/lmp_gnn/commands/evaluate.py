"""`lmp-gnn evaluate MODEL --data DIR -o OUTDIR`: learned rollouts against true MD and the baseline.

    lmp-gnn evaluate model.pt --data data/ -o eval/ [--split test] [--plot-networks 4]

Every test trajectory (DIR/<split>/*.npz if that folder exists, else DIR/*.npz; several --data
entries and single files are accepted) is rolled out from snapshot h + 2 (--start; h the model's history) to its
last snapshot twice, with the learned model and with the zero-acceleration baseline, both by
`lmp_gnn.step.rollout`. Written to OUTDIR:

- results.json: settings, the aggregate over the test set (position MSE at chosen steps, ν parity
  R² and mean |Δν| for ν_box and ν_est after chosen steps and at chosen strains, mean complexity α),
  every network's scalar metrics, learned beside baseline, the networks whose learned rollout
  diverged (non-finite accelerations at some step: scored up to that step, learned and baseline
  alike, so later points count only the networks that reached them; listed with the step) and those
  that failed outright (--engine lammps stopping, or non-finite at the first step: left out);
- networks/NAME.json: one network's metrics with its MSE and ν curves;
- summary.md: the aggregate as a Markdown table;
- mse_vs_step.png, parity.png, and for --plot-networks networks spread over ν (metadata nu_linear):
  nu_vs_strain_NAME.png, overlay_NAME.png (Fig. 2), nodes_NAME.png (Fig. 4).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="exported TorchScript model (`lmp-gnn export`), or `zero` to evaluate "
                                      "the baseline against itself (a check of the pipeline)")
    parser.add_argument("--data", nargs="+", type=Path, required=True,
                        help="directories of test trajectories (.npz) or trajectory files")
    parser.add_argument("--split", default="test",
                        help="sub-folder of each --data directory to use when it exists (default: test)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="directory for JSON, Markdown and PNG results")
    parser.add_argument("--start", type=int, default=None,
                        help="last true snapshot (default: h + 2, the first whose velocity history is past the "
                             "start-up transient of the deformation; docs/protocol.md)")
    parser.add_argument("--max-networks", type=int, default=None, help="evaluate at most this many trajectories")
    parser.add_argument("--steps", type=int, default=None,
                        help="learned steps per rollout (default: to the end of each trajectory)")
    parser.add_argument("--mse-steps", type=int, nargs="+", default=[1, 20, 100],
                        help="rollout steps at which position MSE is reported (default: 1 20 100)")
    parser.add_argument("--nu-steps", type=int, nargs="+", default=[20, 100],
                        help="rollout steps after which ν is compared (default: 20 100)")
    parser.add_argument("--strains", type=_strain, nargs="+", default=[0.01, 0.05],
                        help="compressive strains at which ν is compared (default: 0.01 0.05)")
    parser.add_argument("--plot-networks", type=int, default=3,
                        help="networks (spread over nu_linear) to draw ν vs strain, overlay and node plots for "
                             "(default 3)")
    parser.add_argument("--history", type=int, default=None, help="h for MODEL `zero` (default 3)")
    parser.add_argument("--box-delta-l", choices=("model", "trajectory"), default="model",
                        help="Δl per learned step: model: the model's step in strain (its delta_l, scaled to the "
                             "box by its box_length when it has one), trajectories at another strain per snapshot "
                             "refused; trajectory: each trajectory's own Δl, unchecked (e.g. a model without "
                             "box_length on larger networks simulated at its training strain per snapshot, "
                             "`simulate --delta-strain`) (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--engine", choices=("python", "lammps"), default="python",
                        help="who takes the learned steps: the Python reference rollout (default) or "
                             "fix gnn/rollout inside LAMMPS (lmp_gnn.coupling.lammps_rollout; exported models only)")


def _strain(text: str) -> float:
    """A compressive strain in (0, 0.5), for --strains."""
    value = float(text)
    if not 0.0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"expected a compressive strain in (0, 0.5), e.g. 0.01 for 1 %, got {text}")
    return value


def find_trajectories(entries: list[Path], split: str) -> list[Path]:
    """--data entries -> sorted trajectory files (DIR/split/*.npz, else DIR/*.npz; files as given)."""
    files: list[Path] = []
    for entry in entries:
        if entry.is_dir():
            folder = entry / split if (entry / split).is_dir() else entry
            found = sorted(folder.glob("*.npz"))
            if not found:
                raise ValueError(f"expected trajectory .npz files in {folder}, got none")
            files += found
        elif entry.is_file():
            files.append(entry)
        else:
            raise ValueError(f"expected a directory or a trajectory file, got {entry} (does not exist)")
    return files


def read_metadata(path: Path) -> dict:
    """The metadata of a trajectory file without reading its arrays."""
    from lmp_gnn.physics.trajectory import TrajectoryFormatError

    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["metadata"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:     # truncated, corrupt
        raise TrajectoryFormatError(f"{path}: expected a trajectory file with metadata, got {exc}") from exc
    if not isinstance(meta, dict):
        raise TrajectoryFormatError(f"{path}: expected metadata to be a JSON object, got {type(meta).__name__}")
    return meta


def _pick_for_plots(metas: list[tuple[Path, dict]], k: int) -> set[str]:
    """Names of k trajectories spread evenly over metadata nu_linear (first k if it is missing)."""
    if k <= 0:
        return set()
    known = [(float(m["nu_linear"]), p.stem) for p, m in metas if m.get("nu_linear") is not None]
    if len(known) < len(metas):
        return {p.stem for p, _ in metas[:k]}
    known.sort()
    idx = np.unique(np.round(np.linspace(0, len(known) - 1, min(k, len(known)))).astype(int))
    return {known[i][1] for i in idx}


def _scalars(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("nu_curve", "mse_curve")}


def _fmt(x: Any, spec: str = ".3g") -> str:
    return "–" if x is None else format(x, spec)


def summary_table(agg: dict, model: str, start: int | None = None, steps: int | None = None) -> str:
    """The aggregate as Markdown: one row per metric, learned beside the zero-acceleration baseline."""
    from lmp_gnn.evaluation.analysis import FAR_OFF_MSE

    lines = [f"# Evaluation of `{model}`", "",
             f"{agg['n_networks']} test networks; rollouts from snapshot {'h' if start is None else start} "
             + ("to the end of each trajectory" if steps is None else f"for {steps} learned steps (at most)")
             + ". ν after k steps is measured at snapshot start+k from snapshot 0; ν at a strain at "
             "the nearest snapshot.",
             "", "| metric | learned | zero-acceleration baseline | networks |", "| --- | --- | --- | --- |"]
    for step, v in agg["mse"]["learned"].items():
        b = agg["mse"]["baseline"][step]
        lines.append(f"| position MSE after {step} step(s), mean (median) | {_fmt(v['mean'])} ({_fmt(v['median'])}) "
                     f"| {_fmt(b['mean'])} ({_fmt(b['median'])}) | {_count(v['n'], agg)} |")
    for step, c in agg.get("per_network", {}).items():
        lines.append(f"| after {step} step(s): learned better than baseline / far off (MSE > {FAR_OFF_MSE:g}) / "
                     f"geometric-mean MSE ratio learned/baseline | {c['learned_better']} / {c['far_off']} / "
                     f"{_fmt(c['geomean_ratio'])} | | {_count(c['n'], agg)} |")
    names = {"nu_est": "ν_est", "nu_box": "ν_box"}
    for point, per_est in agg["nu"].items():
        where = (f"after {point.split('_', 1)[1]} steps" if point.startswith("steps_")
                 else f"at {100 * float(point.split('_', 1)[1]):g} % strain")
        for est in ("nu_est", "nu_box"):
            lv, bv = per_est[est]["learned"], per_est[est]["baseline"]
            lines.append(f"| {names[est]} {where}: R² / mean \\|Δν\\| (median) | {_fmt(lv['r2'], '.3f')} / "
                         f"{_fmt(lv['mean_abs_error'], '.4f')} ({_fmt(lv['median_abs_error'], '.4f')}) | "
                         f"{_fmt(bv['r2'], '.3f')} / {_fmt(bv['mean_abs_error'], '.4f')} "
                         f"({_fmt(bv['median_abs_error'], '.4f')}) | {_count(lv['n'], agg)} |")
    if agg.get("n_diverged"):
        lines.insert(3, f"**{agg['n_diverged']} of {agg['n_networks']} learned rollouts diverged (non-finite "
                        "accelerations) before the end: each is scored up to that step, and the `networks` column says "
                        "how many reached a row's point; see `diverged` in results.json for the steps.**\n")
    if agg.get("n_failed"):
        lines.insert(3, f"**{agg['n_failed']} learned rollout(s) failed (non-finite or malformed output, or LAMMPS "
                        "stopped) and are not in the table; see `failed` in results.json.**\n")
    a = agg["alpha"]
    lines.append(f"| complexity α over the rollout (true MD: {_fmt(a['true'])}) | {_fmt(a['learned'])} "
                 f"| {_fmt(a['baseline'])} (0 by construction) | {agg['n_networks']} |")
    return "\n".join(lines) + "\n"


def _count(n: int, agg: dict) -> str:
    return str(n) if n == agg["n_networks"] else f"{n} of {agg['n_networks']}"


def _network_plots(out: Path, name: str, traj, learned, baseline, result: dict) -> list[Path]:
    from lmp_gnn.evaluation import plots

    written = []
    start = learned.start
    strain0 = result["nu_curve"]["true"]["strain"][start]
    p = out / f"nu_vs_strain_{name}.png"
    plots.plot_nu_vs_strain(result["nu_curve"], p, title=name, start_strain=strain0)
    written.append(p)
    last = min(learned.positions.shape[0], traj.n_snapshots) - 1
    frames = []
    for t in sorted({start, start + (last - start) // 2, last}):
        strain = 100 * (1 - traj.box[t, 0] / traj.box[0, 0])
        frames.append({"title": f"t = {t} ({strain:.2f} % strain)", "true": (traj.positions[t], traj.box[t]),
                       "learned": (learned.positions[t], learned.box[t])})
    p = out / f"overlay_{name}.png"
    plots.plot_network_overlay(frames, traj.bonds, p)
    written.append(p)
    stop = min(start + 15, last) + 1
    nodes = np.linspace(0, traj.n_nodes - 1, min(8, traj.n_nodes)).astype(int)
    p = out / f"nodes_{name}.png"
    plots.plot_node_trajectories(np.arange(start, stop), {"true": traj.positions[start:stop],
                                                          "learned": learned.positions[start:stop],
                                                          "baseline": baseline.positions[start:stop]},
                                 nodes, p, title=f"{name}: first {stop - 1 - start} rollout steps")
    written.append(p)
    return written


def run(args: argparse.Namespace) -> int:
    import torch

    from lmp_gnn.commands.rollout import load_spec, trajectory_delta_l
    from lmp_gnn.files import removed_on_failure
    from lmp_gnn.step.rollout import default_start

    try:
        check_options(args)
        spec = load_spec(args.model, args.history)
        files = find_trajectories(args.data, args.split)
        if args.max_networks is not None:
            files = files[: args.max_networks]
        metas = [(p, read_metadata(p)) for p in files]
        for p, m in metas:        # refuse a foreign protocol before any work
            with np.load(p, allow_pickle=False) as z:
                box = z["box"]
            trajectory_delta_l(SimpleNamespace(metadata=m, box=box, n_snapshots=len(box)), p, spec,
                               follow_trajectory=args.box_delta_l == "trajectory")
    except (ValueError, OSError) as exc:
        print(f"lmp-gnn evaluate: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    start = default_start(spec.history) if args.start is None else args.start
    out = args.output
    # a failure half way (a trajectory that does not load, too short for --start) leaves nothing
    with removed_on_failure(out):
        return _evaluate(args, spec, files, metas, start, out)


def check_options(args: argparse.Namespace) -> None:
    """Refuse option values that mean nothing, before anything is read or written."""
    if args.engine == "lammps" and args.model == "zero":
        raise ValueError("--engine lammps needs an exported model file, got `zero`")
    for name, value, least in (("--steps", args.steps, 1), ("--start", args.start, 0), ("--threads", args.threads, 1),
                               ("--max-networks", args.max_networks, 1), ("--plot-networks", args.plot_networks, 0)):
        if value is not None and value < least:
            raise ValueError(f"expected {name} >= {least}, got {value}")
    for name, values in (("--mse-steps", args.mse_steps), ("--nu-steps", args.nu_steps)):
        if min(values) < 1:
            raise ValueError(f"expected {name} >= 1 (rollout steps), got {min(values)}")
    if args.output.exists() and not args.output.is_dir():
        raise ValueError(f"--output: expected a directory, got the file {args.output}")


def _evaluate(args: argparse.Namespace, spec, files: list[Path], metas: list[tuple[Path, dict]], start: int,
              out: Path) -> int:
    import torch
    from tqdm import tqdm

    from lmp_gnn.commands.rollout import trajectory_delta_l
    from lmp_gnn.coupling.lammps_rollout import lammps_rollout
    from lmp_gnn.evaluation import analysis, plots
    from lmp_gnn.physics.trajectory import load_trajectory
    from lmp_gnn.step.rollout import RolloutError, rollout, zero_acceleration_model

    (out / "networks").mkdir(parents=True, exist_ok=True)
    to_plot = _pick_for_plots(metas, args.plot_networks)

    results, written, model_ms, failed, diverged = [], [], [], [], []
    t0 = time.perf_counter()
    bar = tqdm(files, unit="net", desc="evaluate", dynamic_ncols=True)
    for path in bar:
        traj = load_trajectory(path)
        delta_l = trajectory_delta_l(traj, path, spec, follow_trajectory=args.box_delta_l == "trajectory")
        n_steps = traj.n_snapshots - 1 - start
        if args.steps is not None:
            n_steps = min(n_steps, args.steps)
        if n_steps < 1:
            raise ValueError(f"{path}: expected more than {start + 1} snapshots to roll out from {start}, "
                             f"got {traj.n_snapshots}")
        try:
            if args.engine == "lammps":
                learned = lammps_rollout(args.model, traj, start, n_steps, spec.history, delta_l=delta_l,
                                         threads=args.threads)
            else:
                learned = rollout(spec.model, traj, start, n_steps, spec.history, delta_l, spec.dtype,
                                  stop_on_nonfinite=True)
                if learned.diverged_at is not None:      # scored up to where it diverged
                    if learned.n_steps == 0:
                        raise RolloutError(f"expected finite accelerations, got NaN/inf at step {start}")
                    diverged.append({"name": path.stem, "step": learned.diverged_at})
                    tqdm.write(f"{path.stem}: learned rollout diverged at step {learned.diverged_at}", file=sys.stderr)
        except RolloutError as exc:      # a learned rollout that blows up is a result, not a crash
            failed.append({"name": path.stem, "source": str(path), "error": str(exc)})
            tqdm.write(f"{path.stem}: learned rollout failed: {exc}", file=sys.stderr)
            continue
        baseline = rollout(zero_acceleration_model, traj, start, n_steps, spec.history, delta_l, torch.float64)
        model_ms.append(1e3 * float(learned.model_seconds.mean()))
        res = analysis.evaluate_network(traj, learned, baseline, name=path.stem, mse_steps=args.mse_steps,
                                        nu_steps=args.nu_steps, strains=args.strains)
        res["source"] = str(path)
        res["nu_linear"] = traj.metadata.get("nu_linear")
        results.append(res)
        (out / "networks" / f"{path.stem}.json").write_text(json.dumps(res, indent=1))
        if path.stem in to_plot:
            written += _network_plots(out, path.stem, traj, learned, baseline, res)
        last = res["nu"].get(f"steps_{args.nu_steps[0]}", {})
        bar.set_postfix_str(f"{path.stem} N={traj.n_nodes} |Δν_est|@{args.nu_steps[0]}="
                            f"{_fmt(_absdiff(last, 'learned'))} (baseline {_fmt(_absdiff(last, 'baseline'))})")

    if not results:
        print(f"lmp-gnn evaluate: error: every learned rollout failed ({len(failed)}); see above", file=sys.stderr)
        (out / "results.json").write_text(json.dumps({"model": spec.label, "failed": failed}, indent=1))
        return 1
    agg = analysis.aggregate(results)
    agg["n_failed"] = len(failed)
    agg["n_diverged"] = len(diverged)
    curves = {k: [r["mse_curve"][k] for r in results] for k in analysis.KINDS}
    plots.plot_mse_vs_step(curves, out / "mse_vs_step.png", title=f"{len(results)} test networks")
    panels = []
    for est in ("nu_est", "nu_box"):
        for point in results[0]["nu"]:
            panels.append({"title": f"{est}, {point.replace('_', ' ')}",
                           **{w: [r["nu"][point][w][est] for r in results] for w in ("true", *analysis.KINDS)}})
    plots.plot_parity(panels, out / "parity.png", ncols=len(results[0]["nu"]))
    written += [out / "mse_vs_step.png", out / "parity.png"]

    meta = {k: v for k, v in spec.metadata.items() if k != "hparams"}
    report = {"model": spec.label, "engine": args.engine, "model_metadata": meta, "start": start,
              "box_delta_l": args.box_delta_l,
              "settings": {"mse_steps": args.mse_steps, "nu_steps": args.nu_steps, "strains": args.strains},
              "model_ms_per_step_mean": float(np.mean(model_ms)), "wall_time_s": time.perf_counter() - t0,
              "aggregate": agg, "networks": [_scalars(r) for r in results], "failed": failed,
              "diverged": diverged}
    (out / "results.json").write_text(json.dumps(report, indent=1))
    (out / "summary.md").write_text(summary_table(agg, spec.label, start, args.steps))
    print(summary_table(agg, spec.label, start, args.steps))
    print(f"wrote {out / 'results.json'}, {out / 'summary.md'}, {len(results)} network files and "
          f"{len(written)} plots in {out}", file=sys.stderr)
    return 0


def _absdiff(point: dict, who: str, est: str = "nu_est") -> float | None:
    try:
        a, b = point[who][est], point["true"][est]
    except (KeyError, TypeError):
        return None
    return None if a is None or b is None else abs(a - b)
