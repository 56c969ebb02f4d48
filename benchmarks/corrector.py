"""Predictor-corrector compression: blocks of learned steps, each corrected by energy minimisation or by MD.

    python benchmarks/corrector.py DATA_DIR [--count 16] [--start 20] [--model MODEL.pt]
        [--predictors model,zero] [--blocks 5,20,50] [--histories keep,mean]
        [--correctors cg:1e-6:1000,fire:1e-6:1000,md:4] [--aqs-ftol 1e-10] [-o corrector.json]

For each trajectory of DATA_DIR (npz, MD compression along x, one snapshot per ξ ≈ 977 MD steps) the
state at snapshot --start (s0) and the velocity history from the MD snapshots before it are taken; then,
until the last snapshot, blocks of L (--blocks) predictor steps alternate with a corrector:

- predictor "model": the exported model (default the shipped python/lmp_gnn/data/demo_model.pt), through
  `lmp_gnn.step.rollout.rollout` from the current positions, box and velocity history (box rule included);
  predictor "zero": the same rollout with a ≡ 0 (`zero_acceleration_model`), i.e. linear extrapolation;
- corrector "STYLE:FTOL:MAXITER[:ETOL]" (STYLE cg, sd or fire): the predicted positions and box are set in a
  LAMMPS instance holding the network (`lmp_gnn.physics.md.bonded_lammps`), and the energy is minimised
  (`minimize ETOL FTOL MAXITER 10·MAXITER`) with Lx fixed at the protocol's value for that snapshot and
  y at zero stress (`fix box/relax y 0.0 vmax 0.001`, as `lmp_gnn.physics.md.athermal_compression`); the
  relaxed positions and Ly replace the predicted ones. LAMMPS refuses box/relax with the damped-dynamics
  minimisers (fire): "fire" there minimises at the predicted Ly (box fixed), then cg with box/relax on y
  finishes to the same FTOL; both minimisers' force evaluations are counted;
  the velocity history of the next block (--histories): "keep" the predictor's own last h velocities
  (learned, or for a ≡ 0 the MD ones carried on); "mean" all h set to the block's mean relaxed velocity
  (relaxed positions − block start) / L, i.e. a secant predictor;
- corrector "md:M": what `fix gnn/rollout mode interleave` does (mode adaptive is interleave with blocks
  set by the live error signal): cycles of M snapshot intervals of compression MD then L learned steps,
  from snapshot 0 (the relaxed network), run by benchmarks/accuracy_cost.py's run_case (fix gnn/rollout in
  LAMMPS with the model file; for "zero" a ≡ 0 exported with the model's metadata,
  `lmp_gnn.learning.export.export_zero_acceleration`). --histories does not
  apply (the fix's learned blocks start from MD velocities).

Scored at the snapshots nearest 1, 2, 3, 4, 5 % strain (the last snapshot where 5 % is past the end),
whatever the phase there (a state inside a block is a predicted one): |Δν_est| (the paper's estimator,
`lmp_gnn.step.rules.nu_estimator`, from snapshot 0) and |Δν_box| (ν_box = (Ly/Ly0 − 1)/ε, ε = 1 − Lx/Lx0)
against the MD trajectory, and against the athermal quasi-static (AQS) reference: minimisation (cg, ftol
--aqs-ftol) from snapshot 0 every 10 snapshots of Lx and at each scored one, following the branch.
The MD − AQS difference is printed too (a corrector that converges lands on AQS, not on MD).

Cost: force evaluations of the correctors (parsed from LAMMPS' "Iterations, force evaluations" lines) and
MD steps, learned steps, per 1 % strain; and in MD-step equivalents per 1 % strain with unit costs timed in
this run on the first network, back to back in 3 rounds (median of the ratios; `calibrate`): an MD step of
the protocol, a cg force evaluation and a learned step of each predictor (a 40-step rollout: features, model,
box rule). Pure MD costs ξ MD steps per snapshot. The MD rows count MD and learned steps from snapshot 0.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import accuracy_cost as ac  # benchmarks/ (the script's folder); its run_case drives mode interleave
import numpy as np
import torch

from lmp_gnn.learning.export import export_zero_acceleration
from lmp_gnn.physics.md import bonded_lammps, relaxed_lammps, snapshot, write_state
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.poisson import box_poisson_between
from lmp_gnn.physics.trajectory import Trajectory, load_trajectory
from lmp_gnn.step.rollout import load_model, rollout, zero_acceleration_model
from lmp_gnn.step.rules import nu_estimator

SHIPPED = Path(__file__).resolve().parents[1] / "python" / "lmp_gnn" / "data" / "demo_model.pt"
STRAINS = (0.01, 0.02, 0.03, 0.04, 0.05)
MIN_STYLES = ("cg", "sd", "fire")
EVALS = re.compile(r"Iterations, force evaluations\s*=\s*(\d+)\s+(\d+)")
CRITERION = re.compile(r"Stopping criterion\s*=\s*(.+)")


@dataclass(frozen=True)
class Corrector:
    """A corrector spec: minimiser style/ftol/maxiter/etol, or md with `md_intervals` snapshot intervals."""

    kind: str  # "min" or "md"
    style: str = "cg"
    ftol: float = 1e-6
    maxiter: int = 1000
    etol: float = 0.0
    md_intervals: int = 0

    @classmethod
    def parse(cls, spec: str) -> Corrector:
        parts = spec.split(":")
        if parts[0] == "md":
            if len(parts) != 2 or int(parts[1]) < 1:
                raise ValueError(f"expected md:M with M >= 1, got {spec!r}")
            return cls("md", md_intervals=int(parts[1]))
        if parts[0] not in MIN_STYLES or len(parts) not in (3, 4):
            raise ValueError(f"expected STYLE:FTOL:MAXITER[:ETOL] with STYLE in {MIN_STYLES} or md:M, got {spec!r}")
        etol = float(parts[3]) if len(parts) == 4 else 0.0
        return cls("min", parts[0], float(parts[1]), int(parts[2]), etol)

    def __str__(self) -> str:
        if self.kind == "md":
            return f"md:{self.md_intervals}"
        tail = f":{self.etol:g}" if self.etol else ""
        return f"{self.style}:{self.ftol:g}:{self.maxiter}{tail}"


@dataclass
class Cost:
    """Counts and wall times of one run."""

    learned_steps: int = 0
    learned_s: float = 0.0
    min_evals: int = 0
    min_iters: int = 0
    min_s: float = 0.0
    min_calls: int = 0
    min_unconverged: int = 0  # minimisations that stopped at maxiter/maxeval
    md_steps: int = 0
    md_s: float = 0.0

    def add(self, other: Cost) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class NetworkRun:
    """Scores of one (config, network): ν errors at the scored strains, and the cost."""

    strain: list = field(default_factory=list)
    d_est_md: list = field(default_factory=list)
    d_box_md: list = field(default_factory=list)
    d_est_aqs: list = field(default_factory=list)
    d_box_aqs: list = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    strain_start: float = 0.0  # strain at s0 and at the last snapshot: the cost is per strain between them
    strain_end: float = 0.0
    failed: str = ""


def scored_snapshots(traj: Trajectory) -> list[int]:
    """The snapshot nearest each of STRAINS (the last one where a strain is past the end)."""
    lx0, dl = float(traj.box[0, 0]), float(traj.box[0, 0] - traj.box[1, 0])
    return [min(int(round(s * lx0 / dl)), traj.n_snapshots - 1) for s in STRAINS]


class Minimiser:
    """One LAMMPS instance holding a network, relaxing given states at fixed Lx with zero stress on y."""

    def __init__(self, traj: Trajectory, tmp: Path) -> None:
        self.n = traj.n_nodes
        self.log = tmp / "lammps.log"
        net = Network(traj.positions[0], traj.box[0], traj.bonds, traj.rest_length)
        self.lmp = bonded_lammps(net, timestep=0.05, log=self.log)
        self.lmp.command("thermo_style custom step pe pyy fnorm")
        self.offset = 0

    def close(self) -> None:
        self.lmp.close()

    def _minimize(self, style: str, ftol: float, maxiter: int, etol: float, relax_y: bool, cost: Cost) -> None:
        cmd = self.lmp.command
        if relax_y:
            cmd("fix relax all box/relax y 0.0 vmax 0.001")
        cmd(f"min_style {style}")
        t0 = time.perf_counter()
        cmd(f"minimize {etol:.6g} {ftol:.6g} {maxiter} {10 * maxiter}")
        cost.min_s += time.perf_counter() - t0
        if relax_y:
            cmd("unfix relax")
        self.lmp.flush_buffers()
        with open(self.log) as f:
            f.seek(self.offset)
            text = f.read()
            self.offset = f.tell()
        found = EVALS.findall(text)
        if len(found) != 1:
            raise RuntimeError(f"expected one minimisation summary in the LAMMPS log, found {len(found)}")
        cost.min_iters += int(found[0][0])
        cost.min_evals += int(found[0][1])
        cost.min_calls += 1
        crit = CRITERION.findall(text)
        if crit and ("max iterations" in crit[-1] or "max force evaluations" in crit[-1]):
            cost.min_unconverged += 1

    def relax(self, r: np.ndarray, box: np.ndarray, corr: Corrector, cost: Cost) -> tuple[np.ndarray, np.ndarray]:
        """Minimise from (r, box) with Lx = box[0] fixed, y at zero stress; the relaxed positions and box."""
        write_state(self.lmp, r, box)
        if corr.style == "fire":  # damped dynamics cannot move the box: fire at fixed Ly, then cg on y
            self._minimize("fire", corr.ftol, corr.maxiter, corr.etol, False, cost)
            self._minimize("cg", corr.ftol, corr.maxiter, corr.etol, True, cost)
        else:
            self._minimize(corr.style, corr.ftol, corr.maxiter, corr.etol, True, cost)
        return snapshot(self.lmp, self.n)


def history_positions(r: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """[h+1, N, 2] positions whose last h differences are `velocities` (newest first), ending at r."""
    h = len(velocities)
    out = np.empty((h + 1, *r.shape))
    out[h] = r
    for k in range(h):
        out[h - 1 - k] = out[h - k] - velocities[k]
    return out


def run_minimiser(
    traj: Trajectory,
    predictor,
    history: int,
    dtype,
    delta_l: float,
    start: int,
    block: int,
    corr: Corrector,
    hist_mode: str,
    tmp: Path,
) -> tuple[dict, Cost]:
    """Predictor blocks of `block` steps, each relaxed; the state at every snapshot (relaxed at block ends)."""
    last = traj.n_snapshots - 1
    cost = Cost()
    r = traj.positions[start].copy()
    box = traj.box[start].copy()
    vel = np.stack([traj.positions[start - k] - traj.positions[start - k - 1] for k in range(history)])
    states = {start: (r, box)}
    mini = Minimiser(traj, tmp)
    try:
        t = start
        while t < last:
            n = min(block, last - t)
            arrays = {
                "positions": history_positions(r, vel),
                "box": np.repeat(box[None], history + 1, 0),
                "bonds": traj.bonds,
                "rest_length": traj.rest_length,
            }
            t0 = time.perf_counter()
            res = rollout(predictor, arrays, history, n, history, delta_l, dtype)
            cost.learned_s += time.perf_counter() - t0
            cost.learned_steps += n
            for k in range(1, n + 1):
                states[t + k] = (res.positions[history + k], res.box[history + k])
            pred_r, pred_box = res.positions[-1], res.box[-1].copy()
            pred_box[0] = traj.box[t + n, 0]  # the protocol's Lx (the box rule's recursion equals it to round-off)
            r_new, box_new = mini.relax(pred_r, pred_box, corr, cost)
            if hist_mode == "keep":
                vel = np.stack([res.positions[-1 - k] - res.positions[-2 - k] for k in range(history)])
            else:  # mean relaxed velocity of the block
                vel = np.repeat(((r_new - r) / n)[None], history, 0)
            r, box = r_new, box_new
            t += n
            states[t] = (r, box)
    finally:
        mini.close()
    return states, cost


def run_interleave(
    traj: Trajectory, model_path: Path, targets: list[int], block: int, corr: Corrector, delta_l: float
) -> tuple[dict, Cost]:
    """fix gnn/rollout mode interleave (md corr.md_intervals·ξ MD steps, then `block` learned steps per cycle,
    from snapshot 0) through accuracy_cost.run_case; {target: (nu_est, nu_box)} and the cost from snapshot 0."""
    meta = traj.metadata
    net = Network(traj.positions[0], traj.box[0], traj.bonds, traj.rest_length)
    lx0 = float(traj.box[0, 0])
    every = int(meta.get("md_steps_per_snapshot", 977))
    setting = ac.Setting(delta_l, every, lx0, list(targets))
    case = ac.run_case(net, model_path, setting, corr.md_intervals, block)
    if case.error:
        raise RuntimeError(case.error)
    units = targets[-1]
    md_units = int(round(ac.md_fraction(units, corr.md_intervals, block) * units))
    cost = Cost(learned_steps=units - md_units, md_steps=md_units * every, md_s=case.wall_s)
    return {t: (e, b) for t, e, b in zip(targets, case.nu_est, case.nu_box, strict=True)}, cost


def aqs_reference(traj: Trajectory, targets: list[int], ftol: float, every: int = 10) -> dict:
    """AQS states at `targets`: cg minimisation from snapshot 0 at Lx of every `every`-th snapshot and each target."""
    net = Network(traj.positions[0], traj.box[0], traj.bonds, traj.rest_length)
    lmp = bonded_lammps(net, timestep=0.05)
    out = {}
    try:
        cmd = lmp.command
        cmd("min_style cg")
        stops = sorted(set(range(every, max(targets) + 1, every)) | set(targets))
        for t in stops:
            half = 0.5 * float(traj.box[t, 0])
            cmd(f"change_box all x final {-half:.17g} {half:.17g} remap units box")
            cmd("fix relax all box/relax y 0.0 vmax 1.0e-4")
            cmd(f"minimize 0.0 {ftol:.6g} 20000 200000")
            cmd("unfix relax")
            if t in targets:
                out[t] = snapshot(lmp, traj.n_nodes)
    finally:
        lmp.close()
    return out


def md_step_seconds(traj: Trajectory, steps: int = 3000) -> float:
    """Wall time of one MD step of the compression protocol (viscous drag, deform, Berendsen on y)."""
    net = Network(traj.positions[0], traj.box[0], traj.bonds, traj.rest_length)
    lmp = relaxed_lammps(
        net, timestep=0.05, temperature=1e-10, damp=10.0, seed=0, thermostat="viscous", minimize=False, relax_steps=10
    )
    try:
        lmp.command("unfix planar")
        lmp.command("fix squeeze all deform 1 x erate -2.5e-6 remap x")
        lmp.command("fix planar all enforce2d")
        lmp.command("run 10 post no")
        t0 = time.perf_counter()
        lmp.command(f"run {steps} pre no post no")
        return (time.perf_counter() - t0) / steps
    finally:
        lmp.close()


def nus(traj: Trajectory, states: dict, targets: list[int]) -> dict:
    """{t: (ν_est, ν_box)} of the states (positions, box) at the targets, from snapshot 0."""
    r0, box0 = traj.positions[0], traj.box[0]
    return {
        t: (nu_estimator(r0, states[t][0], box0, states[t][1]), box_poisson_between(box0, states[t][1]))
        for t in targets
    }


def calibrate(
    traj: Trajectory,
    predictors: dict,
    history: int,
    delta_l: float,
    start: int,
    tmp: Path,
    rounds: int = 3,
    steps: int = 40,
) -> dict:
    """Wall per unit in MD steps, timed back to back (the ratio within a round is robust to the machine's load;
    the median over rounds is taken): a minimiser force evaluation (cg from a learned state) and a learned step
    of each predictor (a rollout of `steps` steps: features, model, box rule)."""
    ratios: dict[str, list[float]] = {}
    steps = min(steps, traj.n_snapshots - 1 - start)  # a trajectory of few, large steps
    for _ in range(rounds):
        md_s = md_step_seconds(traj)
        state = None
        for name, (model, dtype) in predictors.items():
            t0 = time.perf_counter()
            res = rollout(model, traj, start, steps, history, delta_l, dtype)
            ratios.setdefault(f"learned_{name}", []).append((time.perf_counter() - t0) / steps / md_s)
            state = (res.positions[-1], res.box[-1])
        mini = Minimiser(traj, tmp)
        try:
            cost = Cost()
            box = state[1].copy()
            box[0] = traj.box[start + steps, 0]
            mini.relax(state[0], box, Corrector("min", "cg", 1e-10, 10000), cost)
        finally:
            mini.close()
        ratios.setdefault("min_eval", []).append(cost.min_s / cost.min_evals / md_s)
        ratios.setdefault("md_step_us", []).append(1e6 * md_s)
    return {k: float(np.median(v)) for k, v in ratios.items()}


def score(traj: Trajectory, nu: dict, targets: list[int], aqs: dict, run: NetworkRun) -> None:
    """|Δν| of {t: (ν_est, ν_box)} against the MD trajectory and the AQS states at the targets."""
    r0, box0 = traj.positions[0], traj.box[0]
    for t in targets:
        est, nbox = nu[t]
        run.strain.append(float(1.0 - traj.box[t, 0] / box0[0]))
        run.d_est_md.append(abs(est - nu_estimator(r0, traj.positions[t], box0, traj.box[t])))
        run.d_box_md.append(abs(nbox - box_poisson_between(box0, traj.box[t])))
        ra, ba = aqs[t]
        run.d_est_aqs.append(abs(est - nu_estimator(r0, ra, box0, ba)))
        run.d_box_aqs.append(abs(nbox - box_poisson_between(box0, ba)))


def fmt_row(label: str, runs: list[NetworkRun], costs: dict) -> str:
    ok = [r for r in runs if not r.failed]
    if not ok:
        return f"{label:<34} all failed: {runs[0].failed[:60]}"
    est = np.array([r.d_est_md for r in ok])
    box = np.array([r.d_box_md for r in ok])
    est_a = np.array([r.d_est_aqs for r in ok])
    cells = " ".join(f"{m:.4f}/{x:.4f}" for m, x in zip(est.mean(0), est.max(0), strict=True))
    cells_box = " ".join(f"{m:.4f}" for m in box.mean(0))
    cells_a = " ".join(f"{m:.4f}" for m in est_a.mean(0))
    fail = f" [{len(runs) - len(ok)} failed]" if len(ok) < len(runs) else ""
    return (
        f"{label:<34} {cells} | {cells_box} | {cells_a} | {costs['evals']:8.0f} {costs['md']:8.0f} "
        f"{costs['learned']:5.0f} {costs['equiv']:8.0f} {costs['unconv']:4d}{fail}"
    )


def per_percent(runs: list[NetworkRun], ratio_min: float, ratio_learned: float) -> dict:
    """Mean over networks of the cost per 1 % strain (counts and MD-step equivalents)."""
    ok = [r for r in runs if not r.failed]
    if not ok:
        return {"evals": 0.0, "md": 0.0, "learned": 0.0, "equiv": 0.0, "unconv": 0}
    ev, mdn, ln, eq = [], [], [], []
    for r in ok:
        c = r.cost
        pct = 100.0 * (r.strain_end - r.strain_start)
        ev.append(c.min_evals / pct)
        mdn.append(c.md_steps / pct)
        ln.append(c.learned_steps / pct)
        eq.append((c.md_steps + c.min_evals * ratio_min + c.learned_steps * ratio_learned) / pct)
    return {
        "evals": float(np.mean(ev)),
        "md": float(np.mean(mdn)),
        "learned": float(np.mean(ln)),
        "equiv": float(np.mean(eq)),
        "unconv": int(sum(r.cost.min_unconverged for r in ok)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="directory of trajectory files (npz)")
    p.add_argument("--count", type=int, default=16, help="first COUNT trajectories (sorted by name)")
    p.add_argument("--start", type=int, default=20, help="s0: last MD snapshot taken as is (history before it)")
    p.add_argument("--model", default=str(SHIPPED), help="exported model (default: the shipped one)")
    p.add_argument("--predictors", default="model,zero", help="comma list of model, zero")
    p.add_argument("--blocks", default="5,20,50", help="comma list of block lengths L (predictor steps)")
    p.add_argument("--histories", default="keep,mean", help="comma list of keep, mean (minimiser correctors)")
    p.add_argument(
        "--correctors",
        default="cg:1e-6:1000,fire:1e-6:1000,md:4",
        help="comma list of STYLE:FTOL:MAXITER[:ETOL] (STYLE cg, sd, fire) or md:M",
    )
    p.add_argument("--aqs-ftol", type=float, default=1e-10, help="force tolerance of the AQS reference")
    p.add_argument("-o", "--output", default=None, help="write every number as JSON here")
    args = p.parse_args()
    torch.set_num_threads(1)
    t_all = time.perf_counter()

    loaded = load_model(args.model)
    predictors = {"model": (loaded.module, loaded.dtype), "zero": (zero_acceleration_model, torch.float64)}
    names = [s for s in args.predictors.split(",") if s]
    for s in names:
        if s not in predictors:
            raise SystemExit(f"expected predictors among {sorted(predictors)}, got {s!r}")
    blocks = [int(b) for b in args.blocks.split(",")]
    hists = [s for s in args.histories.split(",") if s]
    if any(s not in ("keep", "mean") for s in hists):
        raise SystemExit(f"expected histories among keep, mean, got {args.histories!r}")
    correctors = [Corrector.parse(s) for s in args.correctors.split(",") if s]
    paths = sorted(glob.glob(str(Path(args.data) / "*.npz")))[: args.count]
    if not paths:
        raise SystemExit(f"no *.npz in {args.data}")
    trajs = [load_trajectory(q) for q in paths]
    h = loaded.history
    for tr in trajs:
        dl = float(tr.box[0, 0] - tr.box[1, 0])
        if abs(dl - loaded.delta_l) > 1e-9:
            raise SystemExit(f"expected trajectories with delta_l = {loaded.delta_l} (the model's), got {dl}")
        if not h <= args.start < tr.n_snapshots - 1:
            raise SystemExit(f"expected {h} <= --start < {tr.n_snapshots - 1}, got {args.start}")

    print(f"{len(trajs)} trajectories of {args.data}; s0 = {args.start}; model {args.model} (h = {h})", flush=True)

    t0 = time.perf_counter()
    targets = [scored_snapshots(tr) for tr in trajs]
    aqs = [aqs_reference(tr, tg, args.aqs_ftol) for tr, tg in zip(trajs, targets, strict=True)]
    floors = []
    for tr, tg, aq in zip(trajs, targets, aqs, strict=True):
        run = NetworkRun()
        score(tr, nus(tr, {t: (tr.positions[t], tr.box[t]) for t in tg}, tg), tg, aq, run)
        floors.append(run)
    floor = {
        "d_est": np.mean([r.d_est_aqs for r in floors], 0).tolist(),
        "d_est_max": np.max([r.d_est_aqs for r in floors], 0).tolist(),
        "d_box": np.mean([r.d_box_aqs for r in floors], 0).tolist(),
        "d_box_max": np.max([r.d_box_aqs for r in floors], 0).tolist(),
    }
    print(
        f"AQS reference ({time.perf_counter() - t0:.0f} s): MD − AQS |Δν_est| mean/max at 1..5 %: "
        + " ".join(f"{m:.4f}/{x:.4f}" for m, x in zip(floor["d_est"], floor["d_est_max"], strict=True))
        + "; |Δν_box|: "
        + " ".join(f"{m:.4f}/{x:.4f}" for m, x in zip(floor["d_box"], floor["d_box_max"], strict=True)),
        flush=True,
    )

    configs = []
    for pred, L, corr in itertools.product(names, blocks, correctors):
        for hist in ["md"] if corr.kind == "md" else hists:
            configs.append((pred, L, corr, hist))

    done = []  # (label, config dict, runs, wall)
    with tempfile.TemporaryDirectory(prefix="lmp_gnn_corr_") as tmpdir:
        tmp = Path(tmpdir)
        model_files = {"model": Path(args.model)}
        if any(c.kind == "md" for c in correctors) and "zero" in names:
            export_zero_acceleration(args.model, tmp / "zero.pt")
            model_files["zero"] = tmp / "zero.pt"
        for pred, L, corr, hist in configs:
            model, dtype = predictors[pred]
            runs = []
            t_cfg = time.perf_counter()
            for tr, tg, aq in zip(trajs, targets, aqs, strict=True):
                run = NetworkRun(
                    strain_start=float(1.0 - tr.box[args.start, 0] / tr.box[0, 0]),
                    strain_end=float(1.0 - tr.box[tg[-1], 0] / tr.box[0, 0]),
                )
                try:
                    if corr.kind == "md":
                        run.strain_start = 0.0  # the fix's run starts at snapshot 0
                        nu, cost = run_interleave(tr, model_files[pred], tg, L, corr, loaded.delta_l)
                    else:
                        states, cost = run_minimiser(
                            tr, model, h, dtype, loaded.delta_l, args.start, L, corr, hist, tmp
                        )
                        nu = nus(tr, states, tg)
                    run.cost = cost
                    score(tr, nu, tg, aq, run)
                except Exception as e:  # a diverging predictor or a failing minimisation is a result too
                    run.failed = f"{type(e).__name__}: {e}"
                runs.append(run)
            label = f"{pred} L={L} {corr} {hist}"
            wall = time.perf_counter() - t_cfg
            done.append((label, {"predictor": pred, "block": L, "corrector": str(corr), "history": hist}, runs, wall))
            print(f"  done {label} ({wall:.0f} s)", flush=True)

        # wall per unit in MD steps, measured in this run, back to back (calibrate)
        cal = calibrate(trajs[0], {k: predictors[k] for k in names}, h, loaded.delta_l, args.start, tmp)
    ratio_min = cal["min_eval"]
    ratio_learned = {k: cal[f"learned_{k}"] for k in names}
    md_per_pct = float(
        np.mean(
            [tr.box[0, 0] * 0.01 / loaded.delta_l * int(tr.metadata.get("md_steps_per_snapshot", 977)) for tr in trajs]
        )
    )
    print(
        f"wall per unit in MD steps (one MD step {cal['md_step_us']:.1f} µs): minimiser force evaluation "
        f"{ratio_min:.2f}, "
        + ", ".join(f"learned step ({k}) {v:.1f}" for k, v in ratio_learned.items())
        + f"; pure MD: {md_per_pct:.0f} MD steps per 1 % strain"
    )
    header = (
        f"{'predictor L corrector history':<34} |Δν_est| vs MD mean/max at 1,2,3,4,5 %"
        f"{'':<35}| |Δν_box| vs MD mean{'':<16}| |Δν_est| vs AQS mean{'':<14}| "
        "evals/%  MDst/%  lrn/% MDeq/% unconv"
    )
    print(header)
    lines, results = [], []
    for label, cfg, runs, wall in done:
        costs = per_percent(runs, ratio_min, ratio_learned.get(cfg["predictor"], float("nan")))
        lines.append(fmt_row(label, runs, costs))
        print(lines[-1])
        results.append(
            {
                **cfg,
                "cost_per_percent": costs,
                "wall_s": wall,
                "runs": [
                    {
                        "strain": r.strain,
                        "d_est_md": r.d_est_md,
                        "d_box_md": r.d_box_md,
                        "d_est_aqs": r.d_est_aqs,
                        "d_box_aqs": r.d_box_aqs,
                        "cost": vars(r.cost),
                        "failed": r.failed,
                    }
                    for r in runs
                ],
            }
        )
    print(f"total wall {time.perf_counter() - t_all:.0f} s")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(
            json.dumps(
                {
                    "data": args.data,
                    "count": len(trajs),
                    "start": args.start,
                    "model": args.model,
                    "md_step_s": 1e-6 * cal["md_step_us"],
                    "ratio_min_eval": ratio_min,
                    "ratio_learned": ratio_learned,
                    "md_steps_per_percent": md_per_pct,
                    "md_minus_aqs": floor,
                    "results": results,
                    "table": [header, *lines],
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
