"""`lmp-gnn demo`: the whole pipeline on embedded defaults, ending in a report a person can read.

1. networks   disordered elastic networks across ν (`lmp-gnn networks`)
2. simulate   their quasi-static compression to 5 % strain with LAMMPS MD (`lmp-gnn simulate`)
3. train      a small GNN simulator, a fixed number of steps (`lmp-gnn train`)
4. export     TorchScript for fix gnn/rollout (`lmp-gnn export`)
5. compare    unseen networks compressed by true MD to 5 % strain and by learned leaps of
              fix gnn/rollout inside LAMMPS over the same range, beside the zero-acceleration
              baseline (`lmp-gnn evaluate --engine lammps`)
6. report     OUT/report/README.md with ν(ε) to 5 % for MD, learned and baseline, MSE vs step, ν
              parity, network overlays, node trajectories and the wall time of MD vs learned steps

The result does not depend on how busy the machine is: training takes a fixed number of steps
(not a time budget) from fixed seeds, so two runs give the same model and figures; only the wall
times differ.

`--pretrained` skips 3-4 and uses the model shipped in examples/models/ (how it was made is in
examples/models/README.md): only the unseen test networks are made and compressed.
Every stage skips work whose output already exists, so an interrupted demo resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lmp_gnn import SHIPPED_MODEL

# embedded defaults: small enough for ≤ 15 minutes on 2 cores, large enough to mean something
TRAIN_NETWORKS = 12
TEST_NETWORKS = 4
NODES = 200
NU_RANGE = (-0.5, 0.35)
TRAIN_SEED = 7
TEST_SEED = 7007
TRAIN_STEPS = 3000
# evaluated strains; the rollouts run to the last snapshot of each test trajectory (5 % strain)
STRAINS = ("0.01", "0.03", "0.045")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", type=Path, default=Path("demo_out"), help="output directory (default demo_out)")
    parser.add_argument("--pretrained", nargs="?", const=str(SHIPPED_MODEL), metavar="MODEL",
                        help="skip training: use an exported model (default: the one shipped with lmp-gnn)")
    parser.add_argument("--train-steps", type=int, default=TRAIN_STEPS,
                        help=f"training steps (default {TRAIN_STEPS}: about 2 minutes on 2 idle cores)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for networks and MD (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training (default 2)")


def run(args: argparse.Namespace) -> int:
    from lmp_gnn.cli import main as lmp_gnn

    out: Path = args.out
    # every option checked before the first stage writes anything
    for name, value in (("--train-steps", args.train_steps), ("--workers", args.workers), ("--threads", args.threads)):
        if value < 1:
            raise SystemExit(f"lmp-gnn demo: error: {name} must be >= 1, got {value}")
    if args.pretrained:
        from lmp_gnn.learning.export import load_exported

        load_exported(args.pretrained)      # a model that the comparison would refuse, refused now
    if out.exists() and not out.is_dir():
        raise SystemExit(f"lmp-gnn demo: error: -o/--out: expected a directory, got the file {out}")
    out.mkdir(parents=True, exist_ok=True)
    print("lmp-gnn demo: about " + ("1 minute" if args.pretrained else
                                    f"{4 + 2 * args.train_steps / 3000:.0f} minutes")
          + " on 2 idle cores (longer on a busy machine; the results do not depend on it)",
          file=sys.stderr, flush=True)
    times: dict[str, float] = {}
    common = ["--nodes", str(NODES), "--nu-min", str(NU_RANGE[0]), "--nu-max", str(NU_RANGE[1]),
              "--workers", str(args.workers)]

    def stage(name: str, argv: list[str]) -> None:
        print(f"\n== lmp-gnn demo: {name}: lmp-gnn {' '.join(argv)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rc = lmp_gnn(argv)
        times[name] = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"lmp-gnn demo: stage '{name}' failed (exit {rc}); its output is above")

    test_nets, test_traj = out / "networks" / "test", out / "trajectories" / "test"
    stage("test networks", ["networks", "-o", str(test_nets), "--count", str(TEST_NETWORKS),
                            "--seed", str(TEST_SEED), *common])
    stage("test MD", ["simulate", str(test_nets), "-o", str(test_traj), "--thermostat", "viscous",
                      "--workers", str(args.workers)])
    if args.pretrained:
        model = Path(args.pretrained)
    else:
        train_nets, train_traj = out / "networks" / "train", out / "trajectories" / "train"
        stage("training networks", ["networks", "-o", str(train_nets), "--count", str(TRAIN_NETWORKS),
                                    "--seed", str(TRAIN_SEED), *common])
        stage("training MD", ["simulate", str(train_nets), "-o", str(train_traj), "--thermostat", "viscous",
                              "--workers", str(args.workers)])
        run_dir = out / "train"
        if not (run_dir / "last.pt").exists():
            # the settings of examples/train_paper.yaml, a fixed number of steps
            stage("training", ["train", "--data", str(train_traj), "-o", str(run_dir), "--steps", str(args.train_steps),
                               "--lr", "1e-3", "--lr-final", "1e-5", "--noise-std", "0", "--set", "model.prior=1.0",
                               "--set", "train.pushforward=0.5",
                               "--threads", str(args.threads),
                               "--set", "train.val_every=1000", "--set", "data.val_fraction=0.1"])
        model = out / "model.pt"
        stage("export", ["export", str(run_dir / "last.pt"), "-o", str(model)])
    report = out / "report"
    stage("compare", ["evaluate", str(model), "--data", str(test_traj), "-o", str(report), "--engine", "lammps",
                      "--plot-networks", str(TEST_NETWORKS), "--strains", *STRAINS])
    path = write_report(report, test_traj, model, times, pretrained=bool(args.pretrained))
    total = sum(times.values())
    print(f"\nlmp-gnn demo: done in {total / 60:.1f} min; open {path}", file=sys.stderr)
    return 0


def write_report(report: Path, test_traj: Path, model: Path, times: dict[str, float], pretrained: bool) -> Path:
    """OUT/report/README.md: the evaluation summary, the speed of MD vs learned steps and the plots."""
    from lmp_gnn.physics.trajectory import load_trajectory

    results = json.loads((report / "results.json").read_text())
    md_per_snapshot, names = [], []
    for net in results["networks"]:
        traj = load_trajectory(test_traj / f"{net['name']}.npz")
        md_per_snapshot.append(traj.metadata["wall_time_s"] / (traj.n_snapshots - 1))
        names.append(net["name"])
    md_s = sum(md_per_snapshot) / len(md_per_snapshot)
    learned_s = results["model_ms_per_step_mean"] / 1e3
    lines = [
        "# lmp-gnn demo report", "",
        f"Model: `{model}`{' (shipped, pretrained)' if pretrained else ' (trained by this demo)'}; "
        f"{len(names)} unseen networks, compressed by true LAMMPS MD to 5 % strain and rolled out from snapshot "
        f"{results['start']} to the same strain by learned leaps of `fix gnn/rollout` (mode leap) inside LAMMPS, "
        "beside the zero-acceleration baseline r(t+1) = 2r(t) - r(t-1) from the same start. The ν vs strain "
        "plots below show ν(ε) of all three over the whole range.", "",
        (report / "summary.md").read_text(), "",
        "## Speed", "",
        "| | wall time per snapshot step (one 2e-3 change of Lx) |", "| --- | --- |",
        f"| LAMMPS MD (viscous protocol, ~{_md_steps(test_traj, names)} MD steps) | {md_s * 1e3:.1f} ms |",
        f"| learned leap (fix gnn/rollout, one LAMMPS step) | {learned_s * 1e3:.2f} ms |",
        f"| speedup | {md_s / learned_s:.0f}x |", "",
        "Stage wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ".", "",
        "## Plots", "",
        "Mean position MSE vs rollout step, learned and baseline:", "", "![](mse_vs_step.png)", "",
        "ν parity (learned and baseline vs true MD):", "", "![](parity.png)", "",
    ]
    for name in names:
        for kind, caption in (("nu_vs_strain", "ν vs strain"), ("overlay", "true (black) vs learned network"),
                              ("nodes", "node trajectories")):
            if (report / f"{kind}_{name}.png").exists():
                lines += [f"{name}: {caption}", "", f"![]({kind}_{name}.png)", ""]
    path = report / "README.md"
    path.write_text("\n".join(lines))
    return path


def _md_steps(test_traj: Path, names: list[str]) -> int:
    from lmp_gnn.physics.trajectory import load_trajectory

    steps = [load_trajectory(test_traj / f"{n}.npz").metadata["md_steps_per_snapshot"] for n in names]
    return round(sum(steps) / len(steps))
