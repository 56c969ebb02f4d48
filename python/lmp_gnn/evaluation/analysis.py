"""Accuracy of learned rollouts against true MD, always beside the zero-acceleration baseline.

Metrics (LJ units; "step" = one snapshot, Δt = 1):

- Position MSE at rollout step k: mean over nodes and both components of
  (r_pred(start+k) - r_true(start+k))², unwrapped positions, distance². (1/(2N)) Σ_i |Δr_i|².
- Poisson's ratio of any trajectory-like object (`positions` [T, N, 2] and `box` [T, 2], so a
  `Trajectory` or a `RolloutResult`), both ways, from `lmp_gnn.physics.poisson`:
  ν_box(t) = -ε_y(t)/ε_x(t) from the box lengths (for a rollout: the box of the box rule), and the
  paper's ν_est between snapshot 0 and t.
- ν "after k steps" is ν at snapshot start+k, measured from snapshot 0 (the paper's Fig. 3c,d);
  ν "at strain s" is ν at the snapshot whose compressive strain 1 - Lx(t)/Lx(0) is nearest to s
  (and within one snapshot spacing of it; otherwise the value is missing).
- Parity statistics over a test set: R² = 1 - Σ(ν̂ - ν)² / Σ(ν - mean ν)², mean and max |ν̂ - ν|.
- Complexity α = (1/NL) Σ_i Σ_t |v_{t+1,i} - v_{t,i}| (Euclidean norm per node), v_t = r_t - r_{t-1};
  v_{t+1} - v_t = r_{t+1} - 2 r_t + r_{t-1} = a(t), so α is the mean |a| over a window of L steps.
  For a rollout α is taken from the accelerations the model returned (the same in exact arithmetic,
  free of the rounding of second differences of positions), so the baseline's is exactly 0; it is
  reported for completeness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lmp_gnn.physics import poisson

DEFAULT_MSE_STEPS = (1, 20, 100)
DEFAULT_NU_STEPS = (20, 100)
DEFAULT_STRAINS = (0.01, 0.05)
ESTIMATORS = ("nu_box", "nu_est")
KINDS = ("learned", "baseline")


# ----------------------------------------------------------------------------- positions

def position_mse(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """[T] mean squared position error per snapshot, over nodes and components (distance²).

    Args:
        pred, true: [T, N, 2] unwrapped positions (or [N, 2] for a single snapshot -> 0-d array).
    """
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape or pred.shape[-1] != 2:
        raise ValueError(f"expected two position arrays of the same shape [..., N, 2], "
                         f"got {pred.shape} and {true.shape}")
    return ((pred - true) ** 2).mean(axis=(-2, -1))


def rollout_mse(result: Any, truth: Any) -> np.ndarray:
    """[K+1] position MSE of a rollout at rollout steps k = 0..K against a true trajectory.

    k = 0 is the start snapshot (0 by construction); K = min(result.n_steps, T_true - 1 - start).
    """
    start = int(result.start)
    stop = min(start + result.n_steps, len(truth.positions) - 1)
    if stop < start:
        raise ValueError(f"expected the true trajectory to reach the start snapshot {start}, "
                         f"got {len(truth.positions)} snapshots")
    return position_mse(result.positions[start: stop + 1], truth.positions[start: stop + 1])


# ----------------------------------------------------------------------------- Poisson's ratio

def compressive_strain(box: np.ndarray) -> np.ndarray:
    """[T] compressive strain along x, 1 - Lx(t)/Lx(0), from box lengths [T, 2]."""
    box = np.asarray(box, dtype=np.float64)
    return 1.0 - box[:, 0] / box[0, 0]


def poisson_series(obj: Any) -> dict[str, np.ndarray]:
    """ν of every snapshot of a trajectory-like object (positions [T, N, 2], box [T, 2]).

    Returns:
        {"strain": [T] compressive strain, "nu_box": [T], "nu_est": [T]}; both ν are NaN at t = 0.
    """
    box = np.asarray(obj.box, dtype=np.float64)
    nu_est = np.full(len(box), np.nan)
    for t in range(1, len(box)):
        nu_est[t] = poisson.estimator_poisson(obj, t)
    return {"strain": compressive_strain(box), "nu_box": poisson.box_poisson_series(obj), "nu_est": nu_est}


def snapshot_at_strain(box: np.ndarray, strain: float) -> int | None:
    """Index of the snapshot whose compressive strain is nearest to `strain`, or None if none is
    within one snapshot spacing of it (the trajectory stops short of it).

    One spacing, not half: a run "to 5 %" stops at the last snapshot with t·Δl ≤ 0.05·Lx(0), which
    can be almost a full step short of 5 %."""
    s = compressive_strain(box)
    if len(s) < 2:
        return None
    t = int(np.argmin(np.abs(s - strain)))
    step = float(np.max(np.abs(np.diff(s))))
    return t if abs(s[t] - strain) <= step * (1 + 1e-9) else None


def _nu_at(series: Mapping[str, np.ndarray], t: int | None) -> dict[str, float | None]:
    if t is None or t >= len(series["nu_box"]):
        return {k: None for k in ESTIMATORS}
    return {k: _float(series[k][t]) for k in ESTIMATORS}


def _float(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


# ----------------------------------------------------------------------------- complexity

def complexity_per_step(positions: np.ndarray) -> np.ndarray:
    """[T-2] (1/N) Σ_i |v_{t+1,i} - v_{t,i}| for t = 1..T-2 (entry t-1), distance per step²."""
    r = np.asarray(positions, dtype=np.float64)
    if r.ndim != 3 or r.shape[0] < 3:
        raise ValueError(f"expected positions [T, N, 2] with T >= 3, got {r.shape}")
    dv = r[2:] - 2.0 * r[1:-1] + r[:-2]                    # v_{t+1} - v_t, t = 1..T-2
    return np.linalg.norm(dv, axis=2).mean(axis=1)


def complexity(positions: np.ndarray, start: int = 1, stop: int | None = None) -> float:
    """α = (1/NL) Σ_i Σ_{t=start}^{stop-1} |v_{t+1,i} - v_{t,i}|, L = stop - start (1 <= start < stop <= T-1).

    Args:
        positions: [T, N, 2] unwrapped positions.
        start, stop: the window of t (default: every t with v_{t+1} and v_t defined, 1..T-2).
    """
    per_step = complexity_per_step(positions)
    stop = len(per_step) + 1 if stop is None else stop
    if not 1 <= start < stop <= len(per_step) + 1:
        raise ValueError(f"expected 1 <= start < stop <= {len(per_step) + 1}, got start={start}, stop={stop}")
    return float(per_step[start - 1: stop - 1].mean())


# ----------------------------------------------------------------------------- test-set statistics

def r2_score(true: Sequence[float] | np.ndarray, pred: Sequence[float] | np.ndarray) -> float:
    """Coefficient of determination 1 - Σ(pred - true)² / Σ(true - mean true)² (NaN if true is constant)."""
    t, p = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"expected true and pred of the same shape, got {t.shape} and {p.shape}")
    ss_tot = float(((t - t.mean()) ** 2).sum())
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(((p - t) ** 2).sum()) / ss_tot


def parity_stats(true: Iterable[float | None], pred: Iterable[float | None]) -> dict[str, Any]:
    """R², mean, median and max |pred - true| over the pairs where both are known (None/NaN pairs are dropped).

    Returns:
        {"n": pairs used, "n_missing": pairs dropped, "r2", "mean_abs_error", "median_abs_error",
        "max_abs_error"}
        (statistics are None when fewer than 2 pairs remain).
    """
    t = np.array([np.nan if v is None else v for v in true], dtype=np.float64)
    p = np.array([np.nan if v is None else v for v in pred], dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"expected as many predictions as true values, got {p.shape} and {t.shape}")
    ok = np.isfinite(t) & np.isfinite(p)
    out: dict[str, Any] = {"n": int(ok.sum()), "n_missing": int((~ok).sum()),
                           "r2": None, "mean_abs_error": None, "median_abs_error": None, "max_abs_error": None}
    if ok.sum() >= 2:
        err = np.abs(p[ok] - t[ok])
        out.update(r2=_float(r2_score(t[ok], p[ok])), mean_abs_error=float(err.mean()),
                   median_abs_error=float(np.median(err)), max_abs_error=float(err.max()))
    return out


# ----------------------------------------------------------------------------- one network, whole test set

def evaluate_network(truth: Any, learned: Any, baseline: Any, name: str = "",
                     mse_steps: Sequence[int] = DEFAULT_MSE_STEPS, nu_steps: Sequence[int] = DEFAULT_NU_STEPS,
                     strains: Sequence[float] = DEFAULT_STRAINS) -> dict[str, Any]:
    """Every metric of one network: learned and baseline rollouts (same start) against the truth.

    Args:
        truth: the true `Trajectory`.
        learned, baseline: `RolloutResult`s from the same start (baseline: `zero_acceleration_model`).
        name: label of the network (file stem).
        mse_steps: rollout steps k at which the position MSE is reported.
        nu_steps: rollout steps k at which ν is reported (snapshot start+k, from snapshot 0).
        strains: compressive strains at which ν is reported.

    Returns:
        A JSON-ready dict: "mse" {kind: {k: value}}, "mse_curve" {kind: [K+1]}, "nu" {point: {"snapshot",
        "strain", "true"/"learned"/"baseline": {"nu_box", "nu_est"}}}, "alpha" {"true", "learned",
        "baseline"} over the rollout window, "nu_curve" (strain and ν series) for plots.
        Values the trajectory is too short for are None.
    """
    if learned.start != baseline.start:
        raise ValueError(f"expected learned and baseline rollouts from the same start, "
                         f"got {learned.start} and {baseline.start}")
    start = int(learned.start)
    rolls = {"learned": learned, "baseline": baseline}
    curves = {k: rollout_mse(r, truth) for k, r in rolls.items()}
    series = {"true": poisson_series(truth), **{k: poisson_series(r) for k, r in rolls.items()}}
    out: dict[str, Any] = {
        "name": name, "n_nodes": int(truth.positions.shape[1]), "n_bonds": int(len(truth.bonds)),
        "start": start, "n_steps": {k: int(r.n_steps) for k, r in rolls.items()},
        "true_snapshots": int(len(truth.positions)),
        "mse": {k: {str(s): (_float(c[s]) if s < len(c) else None) for s in mse_steps} for k, c in curves.items()},
        "mse_curve": {k: [float(x) for x in c] for k, c in curves.items()},
        "nu": {},
    }
    points: list[tuple[str, int | None]] = [(f"steps_{s}", start + s) for s in nu_steps]
    points += [(f"strain_{s:g}", snapshot_at_strain(truth.box, s)) for s in strains]
    for key, t in points:
        available = t is not None and t < len(truth.positions) and all(t < len(r.positions) for r in rolls.values())
        t = t if available else None
        out["nu"][key] = {"snapshot": t, "strain": _float(series["true"]["strain"][t]) if t is not None else None,
                          **{who: _nu_at(s, t) for who, s in series.items()}}
    n_common = min(min(r.n_steps for r in rolls.values()), len(truth.positions) - 1 - start)
    if n_common >= 1:    # α over t = start..start+n_common-1; for rollouts from the accelerations they took
        window = slice(0, start + n_common + 1)
        out["alpha"] = {"window": [start, start + n_common],
                        "true": complexity(truth.positions[window], start, start + n_common),
                        **{k: float(np.linalg.norm(r.accelerations[:n_common], axis=2).mean())
                           for k, r in rolls.items()}}
    else:
        out["alpha"] = {"window": None, "true": None, "learned": None, "baseline": None}
    out["nu_curve"] = {who: {k: [_float(x) for x in v] for k, v in s.items()} for who, s in series.items()}
    return out


FAR_OFF_MSE = 1e-3    # position MSE (distance², mean bond length 1) above which a rollout counts as far off


def aggregate(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Test-set statistics from `evaluate_network` results, learned beside baseline.

    Returns:
        {"n_networks", "mse": {kind: {k: {"mean", "median", "n"}}}, "nu": {point: {estimator: {kind:
        parity_stats}}}, "alpha": {"true"/"learned"/"baseline": mean α}, "mse_curve": {kind: mean over
        networks per step k, over the networks that reach k}, "per_network": {k: {"n", "learned_better"
        (networks with learned MSE < baseline MSE), "far_off" (learned MSE > FAR_OFF_MSE or not finite),
        "geomean_ratio" (geometric mean of learned / baseline MSE over networks where both are > 0
        and finite)}}}. Means are dominated by the worst networks; these say how many are better.
    """
    if not results:
        raise ValueError("expected at least one evaluated network, got none")
    out: dict[str, Any] = {"n_networks": len(results), "mse": {}, "nu": {}, "alpha": {}, "mse_curve": {}}
    for kind in KINDS:
        out["mse"][kind] = {}
        for step in results[0]["mse"][kind]:
            vals = np.array([r["mse"][kind][step] for r in results if r["mse"][kind][step] is not None])
            out["mse"][kind][step] = {"n": int(len(vals)),
                                      "mean": float(vals.mean()) if len(vals) else None,
                                      "median": float(np.median(vals)) if len(vals) else None}
        out["mse_curve"][kind] = mean_curve([r["mse_curve"][kind] for r in results]).tolist()
    out["per_network"] = {}
    for step in results[0]["mse"]["learned"]:
        pairs = np.array([(r["mse"]["learned"][step], r["mse"]["baseline"][step]) for r in results
                          if r["mse"]["learned"][step] is not None and r["mse"]["baseline"][step] is not None])
        if not len(pairs):
            continue
        learned, base = pairs[:, 0], pairs[:, 1]
        ok = (learned > 0) & (base > 0) & np.isfinite(learned)
        out["per_network"][step] = {
            "n": int(len(pairs)),
            "learned_better": int(np.sum(learned < base)),
            "far_off": int(np.sum(~(learned <= FAR_OFF_MSE))),
            "geomean_ratio": float(np.exp(np.mean(np.log(learned[ok] / base[ok])))) if ok.any() else None}
    for point in results[0]["nu"]:
        out["nu"][point] = {}
        for est in ESTIMATORS:
            true_nu = [r["nu"][point]["true"][est] for r in results]
            out["nu"][point][est] = {kind: parity_stats(true_nu, [r["nu"][point][kind][est] for r in results])
                                     for kind in KINDS}
    for who in ("true", *KINDS):
        alphas = [r["alpha"][who] for r in results if r["alpha"][who] is not None]
        out["alpha"][who] = float(np.mean(alphas)) if alphas else None
    return out


def mean_curve(curves: Sequence[Sequence[float]]) -> np.ndarray:
    """[K_max] mean over curves of different lengths, each step over the curves that reach it."""
    if not curves:
        return np.zeros(0)
    k = max(len(c) for c in curves)
    m = np.full((len(curves), k), np.nan)
    for i, c in enumerate(curves):
        m[i, : len(c)] = c
    return np.nanmean(m, axis=0)


def closer_than_baseline(results: Sequence[Mapping[str, Any]], point: str, estimator: str = "nu_est") -> dict[str, Any]:
    """How many networks' learned ν at `point` is strictly closer to the truth than the baseline's.

    Args:
        results: `evaluate_network` results (or their scalar parts, as in evaluate's results.json).
        point: a key of their "nu", e.g. "strain_0.049" or "steps_100".
        estimator: "nu_est" or "nu_box".

    Returns:
        {"n": networks where truth, learned and baseline are all known at `point`, "closer": of those,
        how many have |learned - true| < |baseline - true|, "fraction": closer / n (None if n = 0)}.
        A network that lacks the point (a diverged or too short rollout) is not counted in n.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"expected an estimator in {ESTIMATORS}, got {estimator!r}")
    n = closer = 0
    for r in results:
        p = r["nu"].get(point)
        if p is None:
            continue
        t, lv, bv = (p[w][estimator] if p[w] else None for w in ("true", "learned", "baseline"))
        if t is None or lv is None or bv is None:
            continue
        n += 1
        closer += int(abs(lv - t) < abs(bv - t))
    return {"n": n, "closer": closer, "fraction": closer / n if n else None}
