"""The accuracy-cost front of fix gnn/rollout modes interleave and adaptive: ν error against wall time, one run.

    python benchmarks/accuracy_cost.py [-o runs/accuracy_cost] [--networks DIR] [--count 4]
        [--md 1,3,4,10] [--learn 1,5,20,50,200] [--large] [--model MODEL.pt]
        [--tol 3e-3 --adaptive-md 3 --adaptive-learn 200] [--relax-blocks 20]

For each held-out network (the LAMMPS data files in --networks DIR, made by `lmp-gnn networks`; without
it, --count networks of N = 300 made with seed 7000 into OUT/networks; --large adds 2 of N ≈ 800, seed
7100) every variant compresses the network along x to 5 % strain inside LAMMPS (in process), each with
a fix gnn/rollout in mode interleave integrating the whole run:

- pure MD: learn 0, i.e. the compression protocol of lmp_gnn.physics.md (velocity Verlet, viscous drag
  m/damp, Berendsen zero pressure on y, x shrinking at the protocol's strain rate), which the fix's MD
  equals to round-off (tests/test_fix_interleave.py). Run --md-repeats times: the repeats give the
  timing spread and must agree exactly. The reference of every error and wall-time ratio;
- pure leap: MD to --warmup strain (0.25 %), then learned steps only (md = the warm-up, learn = 2^30);
- interleave: cycles of md snapshot intervals of MD (md × every MD steps) and learn learned steps, for
  every (md, learn) of the grid;
- adaptive (with --tol): mode adaptive, cycles of --adaptive-md snapshot intervals of MD and learned
  blocks of up to --adaptive-learn steps that the live error signal f_ID[13] stops above each tol;
- relax cg (with --relax-blocks): 4 snapshot intervals of MD, then blocks of mode leap each followed by
  a cg minimisation at the reached Lx with zero stress along y, from the secant velocity (docs/corrector.md;
  `run_relax_case`);

each of the last two with the learned model (default: the shipped python/lmp_gnn/data/demo_model.pt)
and with the zero-acceleration predictor a ≡ 0 exported with the same metadata
(`lmp_gnn.learning.export.export_zero_acceleration`, `lmp-gnn export zero --like MODEL`: the learned step,
box rule and start checks are the same; only the model call differs).

A "unit" is one snapshot interval of MD (every MD steps) or one learned step: both shrink Lx by the same
dl (the model's strain step on this box, `lmp_gnn.step.rules.step_delta_l`). Every variant is stopped at
the same unit counts k = round(ε Lx0 / dl) for ε = 1, 1.25, ..., 5 %, so all are compared at the same Lx; there the
unwrapped positions and box are read and ν_box (box lengths) and ν_est (the paper's estimator,
`lmp_gnn.step.rules.nu_estimator`) are taken against the run's own snapshot 0 (the relaxed network).
Wall time is the sum of the `run` commands (the LAMMPS loop, set-up and reading positions excluded);
ratios are against the mean of the pure-MD repeats of the same network, measured in the same process.

Prints one table (rows: predictor, md, learn; columns: fraction of units that are MD, wall / pure MD,
mean/max over networks of |Δν_est| at 1..5 %, mean |Δν_box| at 1..5 %), the comparison of the two
predictors at equal accuracy, and writes OUT/accuracy_cost.json and OUT/accuracy_cost.png.
With --driver-check (default on) network 0 is also compressed by lmp_gnn.physics.md.compress (the
package's MD driver, fix nve + deform + press/berendsen) and its ν_box compared with the fix's MD.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lmp_gnn.physics.md import md_steps_per_snapshot, relaxed_lammps, snapshot
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.poisson import box_poisson_between
from lmp_gnn.step.rules import nu_estimator, step_delta_l

SHIPPED = Path(__file__).resolve().parents[1] / "python" / "lmp_gnn" / "data" / "demo_model.pt"
STRAINS = (0.01, 0.02, 0.03, 0.04, 0.05)  # the table's columns
# measured every 0.25 %: a cycle's phase at a given strain (inside an MD block, which pulls the state back to
# the MD branch within a few snapshots, or late in a learned block) changes the error seen there
MEASURED = tuple(round(0.01 + 0.0025 * i, 6) for i in range(17))
LEAP_LEARN = 2**30  # "learn forever": one MD warm-up block, then learned steps only
RELAX_WARM = 4  # snapshot intervals of MD before the blocks of the minimisation corrector (h + 1)
# the protocol of the data set (lmp_gnn.physics.md.compress defaults, thermostat viscous)
STRAIN_RATE, TIMESTEP, DAMP = 2.5e-6, 0.05, 10.0


@dataclass
class Setting:
    """How one network is compressed: the strain step and snapshot interval shared by all variants."""

    dl: float  # Lx decrease per unit (a learned step or `every` MD steps)
    every: int  # MD steps per unit, at the protocol's strain rate
    lx0: float
    targets: list[int]  # unit counts of the measured strains

    @classmethod
    def for_network(
        cls, net: Network, meta: dict, strains=STRAINS, strain_rate: float = STRAIN_RATE, timestep: float = TIMESTEP
    ) -> Setting:
        lx0 = float(net.box[0])
        dl = step_delta_l(float(meta["delta_l"]), meta.get("box_length"), lx0)
        every = md_steps_per_snapshot(lx0, dl, strain_rate, timestep)
        return cls(dl, every, lx0, [int(round(s * lx0 / dl)) for s in strains])


@dataclass
class Case:
    """One compression: measurements at the target unit counts."""

    strain: list[float] = field(default_factory=list)  # compressive strain 1 - Lx/Lx0 reached
    nu_box: list[float] = field(default_factory=list)
    nu_est: list[float] = field(default_factory=list)
    wall_s: float = 0.0  # sum of the run commands
    error: str | None = None  # LAMMPS error text if the run stopped
    md_fraction: float | None = None  # mode adaptive: the fix's f_ID[14] at the last target


def lammps_steps(units: int, md_units: int, learn: int, every: int) -> int:
    """LAMMPS steps of mode interleave after `units` units: cycles of md_units·every MD steps, then
    `learn` learned steps (one LAMMPS step each)."""
    if learn == 0:
        return units * every
    cycle = md_units + learn
    q, rem = divmod(units, cycle)
    steps = q * (md_units * every + learn)
    return steps + (rem * every if rem <= md_units else md_units * every + rem - md_units)


def md_fraction(units: int, md_units: int, learn: int) -> float:
    """Fraction of the first `units` units that are MD snapshot intervals."""
    if learn == 0:
        return 1.0
    q, rem = divmod(units, md_units + learn)
    return (q * md_units + min(rem, md_units)) / units


def protocol_lammps(net: Network, setting: Setting, damp: float, timestep: float):
    """`net` relaxed as lmp_gnn.physics.md does (minimisation, one interval of MD at zero strain), with its
    integrator, barostat and enforce2d removed (fix gnn/rollout in mode interleave replaces nve,
    press/berendsen with its defaults pdamp 1, modulus 1, and deform; the viscous drag `bath` stays a force
    fix), timestep counter at 0."""
    lmp = relaxed_lammps(
        net,
        timestep=timestep,
        temperature=1e-10,
        damp=damp,
        seed=0,
        thermostat="viscous",
        minimize=True,
        relax_steps=setting.every,
    )
    for fix in ("press", "integrate", "planar"):
        lmp.command(f"unfix {fix}")
    lmp.command("reset_timestep 0")
    return lmp


def measure(case: Case, lmp, n_nodes: int, r0: np.ndarray, box0: np.ndarray) -> None:
    """Append the strain, ν_box and ν_est of the current state (against snapshot 0: r0, box0) to `case`."""
    r, box = snapshot(lmp, n_nodes)
    eps = 1.0 - box[0] / box0[0]
    case.strain.append(float(eps))
    case.nu_box.append(box_poisson_between(box0, box))
    case.nu_est.append(nu_estimator(r0, r, box0, box))


def error_line(exc: Exception) -> str:
    """The line of a failed run to record: LAMMPS' ERROR line if there is one, else the first."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return next((ln for ln in lines if "ERROR" in ln), lines[0] if lines else type(exc).__name__)


def run_case(
    net: Network,
    model: Path,
    setting: Setting,
    md_units: int,
    learn: int,
    *,
    tol: float | None = None,
    damp: float = DAMP,
    timestep: float = TIMESTEP,
) -> Case:
    """Relax `net` as lmp_gnn.physics.md does (minimisation, one interval of MD at zero strain), then let
    a fix gnn/rollout in mode interleave integrate md_units·every MD steps and `learn` learned steps per
    cycle, stopping at each of setting.targets to read the unwrapped positions.

    With `tol`, mode adaptive with learned blocks of up to `learn` steps: its schedule is not known in
    advance, so each run is stopped by a fix halt when the units done (MD steps / every + learned steps,
    f_ID[12] and f_ID[1]) reach the target; it checks every step (a cost pure MD does not carry)."""
    every = setting.every
    lmp = protocol_lammps(net, setting, damp, timestep)
    case = Case()
    try:
        mode = "interleave" if tol is None else f"adaptive tol {tol:.17g}"
        lmp.command(
            f"fix il all gnn/rollout {model} mode {mode} md {md_units * every} learn {learn} "
            f"every {every} mdsteps {every} dl {setting.dl:.17g}"
        )
        lmp.command("fix planar all enforce2d")  # enforce2d last
        if tol is not None:
            lmp.command(f"variable units equal f_il[12]/{every}+f_il[1]")
            lmp.command("variable target equal 0")
            lmp.command("variable left equal v_target-v_units")
            lmp.command("fix halt all halt 1 v_left < 1e-6 error continue message no")
        r0, box0 = snapshot(lmp, net.n_nodes)
        done = 0
        for i, k in enumerate(setting.targets):
            if tol is None:
                steps = lammps_steps(k, md_units, learn, every) - done
            else:  # at most one unit per step: k units are reached within k * every steps
                lmp.command(f"variable target equal {k}")
                steps = (k - int(round(lmp.extract_variable("units")))) * every
            t0 = time.perf_counter()
            lmp.command(f"run {steps} pre {'yes' if i == 0 else 'no'} post no")
            case.wall_s += time.perf_counter() - t0
            done += steps
            if tol is not None:
                if abs(lmp.extract_variable("units") - k) > 1e-6:
                    raise RuntimeError(f"ERROR: stopped at {lmp.extract_variable('units')} units, expected {k}")
                case.md_fraction = float(lmp.extract_fix("il", 0, 1, 13))
            measure(case, lmp, net.n_nodes, r0, box0)
    except Exception as exc:  # a fix ERROR (e.g. accelerations too large): record it, keep going
        case.error = error_line(exc)
    finally:
        lmp.close()
    return case


def run_relax_case(
    net: Network,
    model: Path,
    setting: Setting,
    warm_units: int,
    block: int,
    *,
    ftol: float = 1e-4,
    damp: float = DAMP,
    timestep: float = TIMESTEP,
) -> Case:
    """Projective integration with a quasi-static corrector, as a deck can run it today: protocol MD for
    `warm_units` snapshot intervals (mode interleave, learn 0), then cycles of `block` steps of fix
    gnn/rollout mode leap and an energy minimisation at the reached Lx with zero stress along y (cg,
    `fix box/relax y 0.0`, ftol `ftol`, at most 1000 iterations); each block starts from the secant
    velocity of the last (relaxed positions less those at its start, per MD time), through `velocity
    set` of atom-style variables and `init velocity`. The leap fix is re-created every block (LAMMPS
    refuses fix box/relax beside a fix that changes the box); the backend keeps the loaded model. Units and
    targets as in `run_case`; a target inside a block reads the uncorrected prediction. The settings
    (cg, ftol 1e-4, the secant history) are those docs/corrector.md chose on validation networks."""
    every = setting.every
    lmp = protocol_lammps(net, setting, damp, timestep)
    case = Case()
    md_time = every * timestep

    def timed(command: str) -> None:
        t0 = time.perf_counter()
        lmp.command(command)
        case.wall_s += time.perf_counter() - t0

    try:
        lmp.command("compute unwrapped all property/atom xu yu")
        lmp.command("fix start all store/state 0 xu yu")
        lmp.command(
            f"fix il all gnn/rollout {model} mode interleave md {warm_units * every} learn 0 "
            f"every {every} mdsteps {every} dl {setting.dl:.17g}"
        )
        lmp.command("fix planar all enforce2d")
        r0, box0 = snapshot(lmp, net.n_nodes)
        timed(f"run {warm_units * every} post no")
        for fix in ("il", "planar", "bath"):
            lmp.command(f"unfix {fix}")
        units, segment, in_block = warm_units, warm_units, 0
        for k in setting.targets:
            while units < k:
                if in_block == 0:  # a new block from the secant velocity of the last segment
                    lmp.command(f"variable vx atom (c_unwrapped[1]-f_start[1])/{segment * md_time:.17g}")
                    lmp.command(f"variable vy atom (c_unwrapped[2]-f_start[2])/{segment * md_time:.17g}")
                    lmp.command("velocity all set v_vx v_vy NULL")
                    lmp.command("unfix start")
                    lmp.command("fix start all store/state 0 xu yu")
                    timed(f"fix leap all gnn/rollout {model} init velocity mdsteps {every} dl {setting.dl:.17g}")
                    lmp.command("fix planar all enforce2d")
                n = min(block - in_block, k - units)
                timed(f"run {n} post no")
                units, in_block = units + n, in_block + n
                if in_block == block:  # the corrector
                    lmp.command("unfix leap")
                    lmp.command("unfix planar")
                    lmp.command("fix relax all box/relax y 0.0 vmax 0.001")
                    lmp.command("fix planar all enforce2d")
                    timed(f"minimize 0.0 {ftol:.17g} 1000 10000")
                    lmp.command("unfix relax")
                    lmp.command("unfix planar")
                    segment, in_block = block, 0
            measure(case, lmp, net.n_nodes, r0, box0)
    except Exception as exc:
        case.error = error_line(exc)
    finally:
        lmp.close()
    return case


def make_networks(out: Path, count: int, nodes: int, seed: int) -> list[Path]:
    """`lmp-gnn networks` (resumes if already there): ν spread over its default range."""
    if count > 0:
        cmd = [
            sys.executable,
            "-m",
            "lmp_gnn.cli",
            "networks",
            "-o",
            str(out),
            "--count",
            str(count),
            "--nodes",
            str(nodes),
            "--seed",
            str(seed),
            "--workers",
            "1",
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return sorted(out.glob("net_*.data"))[:count]


def pure_variants(grid_md: list[int], grid_learn: list[int], warm_units: int) -> list[tuple[int, int]]:
    """(md units, learn) of the learned variants: the grid, then pure leap."""
    return [(m, n) for m in grid_md for n in grid_learn] + [(warm_units, LEAP_LEARN)]


def network_result(
    net: Network,
    models: dict[str, Path],
    meta: dict,
    grid: list[tuple[int, int]],
    *,
    md_repeats: int,
    warmup: float,
    strains=MEASURED,
    strain_rate: float = STRAIN_RATE,
    adaptive: list[tuple[int, int, float]] = (),
    relax_blocks: list[int] = (),
    log=print,
) -> dict:
    """All variants on one network: {"setting", "md": [Case...], "runs": {(pred, md, learn, tol): Case}},
    tol None for mode interleave and pure leap; `adaptive` lists (md, longest block, tol) of mode adaptive."""
    setting = Setting.for_network(net, meta, strains, strain_rate)
    warm = max(int(meta["history"]) + 1, int(round(warmup * setting.lx0 / setting.dl)))
    any_model = next(iter(models.values()))  # learn 0: the model is never called
    md = [run_case(net, any_model, setting, 1, 0) for _ in range(md_repeats)]
    log(
        f"  pure MD: {', '.join(f'{c.wall_s:.2f}' for c in md)} s (every {setting.every}, dl {setting.dl:.6g}, "
        f"{setting.targets[-1]} units)"
    )
    runs = {}
    for name, path in models.items():
        for m, n in grid:
            m = warm if n == LEAP_LEARN else m
            runs[(name, m, n, None)] = run_case(net, path, setting, m, n)
        for m, n, tol in adaptive:
            runs[(name, m, n, tol)] = run_case(net, path, setting, m, n, tol=tol)
        for block in relax_blocks:
            runs[(name, RELAX_WARM, block, "relax")] = run_relax_case(net, path, setting, RELAX_WARM, block)
    return {"setting": setting, "warm_units": warm, "md": md, "runs": runs}


def errors(case: Case, ref: Case, key: str) -> np.ndarray:
    if case.error is not None or len(getattr(case, key)) != len(getattr(ref, key)):
        return np.full(len(getattr(ref, key)), np.nan)
    return np.abs(np.array(getattr(case, key)) - np.array(getattr(ref, key)))


def summarise(
    results: list[dict],
    models: list[str],
    grid: list[tuple[int, int]],
    adaptive: list[tuple[int, int, float]] = (),
    relax_blocks: list[int] = (),
) -> list[dict]:
    """Rows of the table: pure MD, then per predictor the grid and pure leap, aggregated over networks.

    A row with a failed run (a fix ERROR) keeps its errors NaN, and its wall ratio too (a run that
    stopped early is not cheaper); "reached" is the largest measured strain every network got past."""
    rows = []

    def row(label, pred, md_units, learn, cases, md_fracs, tol=None):
        ratios, est, box = [], [], []
        for res, case in zip(results, cases, strict=True):
            ref = res["md"][0]
            ratios.append(case.wall_s / np.mean([c.wall_s for c in res["md"]]))
            est.append(errors(case, ref, "nu_est"))
            box.append(errors(case, ref, "nu_box"))
        est_a, box_a = np.array(est), np.array(box)
        failed = [c.error for c in cases if c.error]
        reached = min(len(c.strain) for c in cases)
        rows.append(
            {
                "label": label,
                "predictor": pred,
                "md": md_units,
                "learn": learn,
                "tol": tol,
                "md_fraction": float(np.mean(md_fracs)),
                "wall_ratio": float(np.mean(ratios)) if not failed else float("nan"),
                "wall_ratios": [float(x) for x in ratios],
                "nu_est_err_mean": est_a.mean(axis=0).tolist(),
                "nu_est_err_max": est_a.max(axis=0).tolist(),
                "nu_box_err_mean": box_a.mean(axis=0).tolist(),
                "failed": failed,
                "reached_strain": float(min(c.strain[reached - 1] for c in cases)) if reached else 0.0,
            }
        )

    # pure MD: the last repeat against the first (0 if the MD is deterministic)
    row("pure MD", "-", "-", 0, [res["md"][-1] for res in results], [1.0] * len(results))
    for pred in models:
        for m, n in grid:
            leap = n == LEAP_LEARN
            cases = [res["runs"][(pred, res["warm_units"] if leap else m, n, None)] for res in results]
            fracs = [md_fraction(res["setting"].targets[-1], res["warm_units"] if leap else m, n) for res in results]
            row("pure leap" if leap else "interleave", pred, "warm" if leap else m, "inf" if leap else n, cases, fracs)
        for m, n, tol in adaptive:
            cases = [res["runs"][(pred, m, n, tol)] for res in results]
            fracs = [c.md_fraction if c.md_fraction is not None else float("nan") for c in cases]
            row(f"adapt {tol:.0e}", pred, m, f"<={n}", cases, fracs, tol)
        for block in relax_blocks:
            cases = [res["runs"][(pred, RELAX_WARM, block, "relax")] for res in results]
            fracs = [RELAX_WARM / res["setting"].targets[-1] for res in results]
            row("relax cg", pred, "warm", block, cases, fracs)
    return rows


def table(rows: list[dict], strains=MEASURED, shown=STRAINS) -> str:
    """The printed table: columns at the `shown` ones of the measured `strains`."""
    cols = [i for i, s in enumerate(strains) if any(abs(s - x) < 1e-9 for x in shown)]
    pct = [f"{100 * strains[i]:g}%" for i in cols]
    head = (
        f"{'run':<11} {'predictor':<9} {'md':>4} {'learn':>5} {'MD frac':>7} {'wall/MD':>8} | "
        + " ".join(f"{'est ' + p + ' mean/max':>17}" for p in pct)
        + " | "
        + " ".join(f"{'box ' + p:>8}" for p in pct)
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        est = " ".join(f"{r['nu_est_err_mean'][i]:>8.4f}/{r['nu_est_err_max'][i]:<8.4f}" for i in cols)
        box = " ".join(f"{r['nu_box_err_mean'][i]:>8.4f}" for i in cols)
        n_failed = len(r["failed"])
        note = (
            f"  FAILED on {n_failed}/{len(r['wall_ratios'])}, all past {100 * r['reached_strain']:.2g} %: "
            + r["failed"][0].split(" (src/")[0]
            if n_failed
            else ""
        )
        lines.append(
            f"{r['label']:<11} {r['predictor']:<9} {r['md']!s:>4} {r['learn']!s:>5} "
            f"{r['md_fraction']:>7.3f} {r['wall_ratio']:>8.3f} | {est} | {box}{note}"
        )
    return "\n".join(lines)


METRICS = {
    "mean |Δν_est| at 5 %": lambda r: r["nu_est_err_mean"][-1],
    "max over 1-5 % (every 0.25 %) of mean |Δν_est|": lambda r: max(r["nu_est_err_mean"]),
}


def front(rows: list[dict], pred: str, metric, resolution: float = 0.0) -> list[tuple[float, float, dict]]:
    """(wall ratio, error, row) of `pred`'s finished runs that no cheaper run of it beats in error; errors
    rounded up to `resolution` (differences below it are not counted as more accurate)."""

    def err(r):
        e = metric(r)
        return float(np.ceil(e / resolution - 1e-9) * resolution) if resolution > 0 else e

    pts = [(r["wall_ratio"], err(r), r) for r in rows if r["predictor"] == pred and np.isfinite(metric(r))]
    pts = [p for p in pts if np.isfinite(p[0])]
    out: list[tuple[float, float, dict]] = []
    for w, e, r in sorted(pts, key=lambda p: (p[0], p[1])):
        if not out or e < out[-1][1]:
            out.append((w, e, r))
    return out


def compare(rows: list[dict], learned: str, zero: str, resolution: float = 1e-3) -> list[str]:
    """For each point of the learned front: the cheapest zero-acceleration run at least as accurate (errors
    rounded up to `resolution`); pure MD (wall 1, error 0) is always available."""
    lines = []
    for name, metric in METRICS.items():
        zf = front(rows, zero, metric, resolution)
        wins, losses = [], []
        for w, e, r in front(rows, learned, metric, resolution):
            zw = min([zw for zw, ze, _ in zf if ze <= e] + [1.0])
            text = f"md {r['md']} learn {r['learn']}: error ≤ {e:.3g} at wall {w:.3f}, zero at wall {zw:.3f}"
            (wins if w < zw else losses).append(text)
        lines.append(
            f"{name} (to {resolution:g}): learned cheaper than zero at equal accuracy at {len(wins)} of "
            f"{len(wins) + len(losses)} points of its front"
            + (": " + "; ".join(wins) if wins else "")
            + (" | not: " + "; ".join(losses) if losses else "")
        )
    return lines


def plot(rows: list[dict], path: Path, preds: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, (name, metric) in zip(axes, METRICS.items(), strict=True):
        for pred, colour in zip(preds, ("C0", "C3"), strict=False):
            pts = [(r["wall_ratio"], metric(r)) for r in rows if r["predictor"] == pred]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color=colour, alpha=0.35)  # failed: NaN, not drawn
            fr = front(rows, pred, metric)
            ax.plot([p[0] for p in fr], [p[1] for p in fr], "-o", color=colour, label=f"{pred} (front)")
        ax.plot([1.0], [0.0], "ks", label="pure MD")
        ax.set_xscale("log")
        ax.set_xlabel("wall time / pure MD")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("fix gnn/rollout mode interleave: accuracy vs cost (benchmarks/accuracy_cost.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def driver_check(net: Network, res: dict) -> dict:
    """ν_box of lmp_gnn.physics.md.compress (fix nve + deform + press/berendsen, Δl 2e-3) at the strains
    the fix's pure MD reached, against the fix's pure MD."""
    from lmp_gnn.physics.md import compress
    from lmp_gnn.physics.poisson import box_poisson

    t0 = time.perf_counter()
    traj = compress(net, thermostat="viscous", max_strain=0.05, damp=DAMP, strain_rate=STRAIN_RATE)
    wall = time.perf_counter() - t0
    md = res["md"][0]
    nu = [box_poisson(traj, min(s, float(1 - traj.box[-1, 0] / traj.box[0, 0]))) for s in md.strain]
    return {
        "strain": md.strain,
        "nu_box_driver": nu,
        "nu_box_fix": md.nu_box,
        "max_abs_diff": float(np.max(np.abs(np.array(nu) - np.array(md.nu_box)))),
        "driver_wall_s": wall,
    }


def parse_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/accuracy_cost"))
    ap.add_argument("--networks", type=Path, help="directory of LAMMPS data files (default: make --count)")
    ap.add_argument("--count", type=int, default=4, help="networks (default %(default)s)")
    ap.add_argument("--large", action="store_true", help="add 2 networks of N ≈ 800 (seed 7100)")
    ap.add_argument("--model", type=Path, default=SHIPPED, help="exported model (default: the shipped one)")
    ap.add_argument("--md", type=parse_ints, default=[1, 3, 4, 10], help="MD snapshot intervals per cycle")
    ap.add_argument("--learn", type=parse_ints, default=[1, 5, 20, 50, 200], help="learned steps per cycle")
    ap.add_argument("--warmup", type=float, default=0.0025, help="MD strain before pure leap (default 0.25 %%)")
    ap.add_argument("--md-repeats", type=int, default=2, help="pure-MD runs per network (timing, determinism)")
    ap.add_argument("--no-driver-check", dest="driver_check", action="store_false")
    ap.add_argument("--resolution", type=float, default=1e-3, help="ν error counted as equal below this")
    ap.add_argument("--tol", type=parse_floats, default=[], help="mode adaptive: tolerances of the signal f_ID[13]")
    ap.add_argument(
        "--adaptive-md",
        type=int,
        default=3,
        help="mode adaptive: MD snapshot intervals per cycle (default %(default)s)",
    )
    ap.add_argument("--adaptive-learn", type=int, default=200, help="mode adaptive: the longest learned block")
    ap.add_argument(
        "--relax-blocks", type=parse_ints, default=[], help="blocks of mode leap between cg minimisations (e.g. 20)"
    )
    args = ap.parse_args(argv)

    from lmp_gnn.learning.export import export_zero_acceleration, load_exported

    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    _, meta = load_exported(args.model)
    export_zero_acceleration(args.model, args.out / "zero_model.pt")
    models = {"learned": args.model, "zero": args.out / "zero_model.pt"}
    if args.networks:
        paths = sorted(args.networks.glob("*.data"))[: args.count]
    else:
        paths = make_networks(args.out / "networks", args.count, 300, 7000)
    if args.large:
        paths += make_networks(args.out / "networks_large", 2, 800, 7100)
    if not paths:
        raise SystemExit(f"no networks (*.data) found in {args.networks}")
    grid = pure_variants(args.md, args.learn, 0)
    adaptive = [(args.adaptive_md, args.adaptive_learn, tol) for tol in args.tol]
    print(
        f"{len(paths)} networks, {len(grid) + len(adaptive)} variants x {len(models)} predictors "
        f"+ {args.md_repeats} pure MD each"
    )

    results, checks = [], None
    for i, path in enumerate(paths):
        net = Network.read_lammps_data(path)
        t0 = time.perf_counter()
        print(f"{path.name}: N = {net.n_nodes}, Lx0 = {net.box[0]:.4f}", flush=True)
        res = network_result(
            net,
            models,
            meta,
            grid,
            md_repeats=args.md_repeats,
            warmup=args.warmup,
            adaptive=adaptive,
            relax_blocks=args.relax_blocks,
        )
        results.append(res)
        print(f"  all variants {time.perf_counter() - t0:.1f} s", flush=True)
        if i == 0 and args.driver_check:
            checks = driver_check(net, res)
            print(f"  driver check: max |ν_box(compress) - ν_box(fix MD)| = {checks['max_abs_diff']:.2e}")

    rows = summarise(results, list(models), grid, adaptive, args.relax_blocks)
    text = table(rows)
    verdict = compare(rows, "learned", "zero", args.resolution)
    # the timing noise: how far a pure-MD repeat is from the mean of its network's repeats
    spread = max(abs(c.wall_s / np.mean([m.wall_s for m in r["md"]]) - 1) for r in results for c in r["md"])
    verdict.append(f"pure-MD repeats are within {100 * spread:.1f} % of their mean (timing noise)")
    print()
    print(text)
    print()
    print("\n".join(verdict))
    plot(rows, args.out / "accuracy_cost.png", list(models))
    total = time.perf_counter() - t_start
    record = {
        "command": " ".join(sys.argv),
        "model": str(args.model),
        "networks": [str(p) for p in paths],
        "strains": list(MEASURED),
        "rows": rows,
        "verdict": verdict,
        "driver_check": checks,
        "wall_time_s": total,
        "per_network": [
            {
                "setting": asdict(r["setting"]),
                "warm_units": r["warm_units"],
                "md": [asdict(c) for c in r["md"]],
                "runs": [
                    {"predictor": k[0], "md": k[1], "learn": k[2], "tol": k[3], **asdict(c)}
                    for k, c in r["runs"].items()
                ],
            }
            for r in results
        ],
    }
    (args.out / "accuracy_cost.json").write_text(json.dumps(record, indent=1, default=float))
    print(f"\nwrote {args.out / 'accuracy_cost.json'} and accuracy_cost.png; total {total:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
