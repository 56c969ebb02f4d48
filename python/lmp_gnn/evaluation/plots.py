"""Figures of learned rollouts against the truth and the zero-acceleration baseline (PNG, Agg).

Each function builds a `matplotlib.figure.Figure` on an Agg canvas (no pyplot state, no GUI, safe in
threads and on clusters), writes it to `path` when one is given, and returns it. Colours are fixed
across figures: truth blue, learned red, baseline grey.

- `plot_nu_vs_strain`: ν_box and ν_est against compressive strain (the paper's Fig. 3a).
- `plot_mse_vs_step`: position MSE against rollout step, log scale (Fig. 3b).
- `plot_parity`: predicted against true ν at chosen points (Fig. 3c, d).
- `plot_network_overlay`: true and learned networks drawn over each other (Fig. 2).
- `plot_node_trajectories`: displacement of chosen nodes against step (Fig. 4).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

COLORS = {"true": "#1f77b4", "learned": "#d62728", "baseline": "#7f7f7f"}
LABELS = {"true": "true MD", "learned": "learned", "baseline": "zero-acceleration baseline"}
NU_LABELS = {"nu_box": r"$\nu_{box}$ (box lengths)", "nu_est": r"$\nu_{est}$ (paper estimator)"}


def _figure(nrows: int, ncols: int, width: float, height: float, **kw: Any):
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _grid(n: int, ncols: int, width: float, height: float):
    """A figure with n panels in rows of at most ncols; the unused axes of the last row hidden."""
    ncols = min(ncols, n)
    fig, axes = _figure(-(-n // ncols), ncols, width, height)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def _finish(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _color(name: str) -> str:
    return COLORS.get(name, "#2ca02c")


# ----------------------------------------------------------------------------- ν and MSE

def plot_nu_vs_strain(series: Mapping[str, Mapping[str, Sequence[float]]], path: str | os.PathLike | None = None,
                      title: str = "", start_strain: float | None = None) -> Figure:
    """ν against compressive strain, one panel per estimator (ν_box, ν_est), one line per source.

    Args:
        series: {"true"/"learned"/"baseline"/...: {"strain": [T], "nu_box": [T], "nu_est": [T]}}
            (`analysis.poisson_series` or the "nu_curve" of `analysis.evaluate_network`; None = missing).
        path: PNG to write. title: figure title. start_strain: strain of the rollout start (dotted line).

    Returns:
        The figure: 2 axes, each with one line per entry of `series`.
    """
    fig, axes = _figure(1, 2, 4.6, 3.4)
    for ax, est in zip(axes[0], ("nu_box", "nu_est"), strict=True):
        for who, s in series.items():
            strain = np.asarray(s["strain"], dtype=float)
            nu = np.array([np.nan if v is None else v for v in s[est]], dtype=float)
            ax.plot(100 * strain, nu, color=_color(who), label=LABELS.get(who, who),
                    lw=1.6 if who == "true" else 1.2, ls="--" if who == "baseline" else "-")
        if start_strain is not None:
            ax.axvline(100 * start_strain, color="k", lw=0.6, ls=":")
        ax.set_xlabel("compressive strain (%)")
        ax.set_ylabel(NU_LABELS[est])
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)


def plot_mse_vs_step(curves: Mapping[str, Sequence[Sequence[float]]], path: str | os.PathLike | None = None,
                     title: str = "") -> Figure:
    """Position MSE against rollout step k (k >= 1), log scale: mean over networks, 10–90 % band.

    Args:
        curves: {"learned"/"baseline"/...: list over networks of [K+1] MSE curves, k = 0..K}
            (`analysis.rollout_mse`); curves may have different lengths.
    Returns:
        The figure: one axis with one line per entry of `curves`.
    """
    fig, axes = _figure(1, 1, 5.5, 3.8)
    ax = axes[0, 0]
    for who, cs in curves.items():
        k = max(len(c) for c in cs)
        m = np.full((len(cs), k), np.nan)
        for i, c in enumerate(cs):
            m[i, : len(c)] = c
        m = m[:, 1:]                                    # k = 0 is the true start: error 0
        steps = np.arange(1, k)
        ax.plot(steps, np.nanmean(m, axis=0), color=_color(who), label=f"{LABELS.get(who, who)} (mean)")
        if len(cs) > 1:
            lo, hi = np.nanpercentile(m, 10, axis=0), np.nanpercentile(m, 90, axis=0)
            ax.fill_between(steps, lo, hi, color=_color(who), alpha=0.15, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("rollout step k")
    ax.set_ylabel(r"position MSE (distance$^2$)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _finish(fig, path)


def plot_parity(panels: Sequence[Mapping[str, Any]], path: str | os.PathLike | None = None,
                ncols: int = 4) -> Figure:
    """Predicted against true ν, one panel per point, learned and baseline on each.

    Args:
        panels: each {"title": str, "true": [n], "learned": [n], "baseline": [n]} (None = missing;
            a pair with a missing value is left out); R² and mean |Δν| go into the legend.
        ncols: panels per row.
    Returns:
        The figure: one axis per panel, each with one scatter per predictor and the diagonal line.
    """
    from lmp_gnn.evaluation.analysis import parity_stats

    if not panels:
        raise ValueError("expected at least one parity panel, got none")
    fig, axes = _grid(len(panels), ncols, 3.2, 3.2)
    for ax, panel in zip(axes.flat, panels, strict=False):
        true = np.array([np.nan if v is None else v for v in panel["true"]], dtype=float)
        lo, hi = np.inf, -np.inf
        for who in ("baseline", "learned"):
            if who not in panel:
                continue
            pred = np.array([np.nan if v is None else v for v in panel[who]], dtype=float)
            ok = np.isfinite(true) & np.isfinite(pred)
            st = parity_stats(true, pred)
            r2 = "n/a" if st["r2"] is None else f"{st['r2']:.3f}"
            mae = "n/a" if st["mean_abs_error"] is None else f"{st['mean_abs_error']:.3f}"
            ax.scatter(true[ok], pred[ok], s=12, color=_color(who), alpha=0.8,
                       marker="o" if who == "learned" else "x",
                       label=f"{who}: R²={r2}, |Δν|={mae}")
            if ok.any():
                lo, hi = min(lo, true[ok].min(), pred[ok].min()), max(hi, true[ok].max(), pred[ok].max())
        if np.isfinite(lo):
            pad = 0.05 * max(hi - lo, 1e-3)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=0.8)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_title(panel.get("title", ""), fontsize=9)
        ax.set_xlabel(r"true $\nu$")
        ax.set_ylabel(r"predicted $\hat\nu$")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    return _finish(fig, path)


# ----------------------------------------------------------------------------- networks and nodes

def bond_segments(positions: np.ndarray, box: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """[S, 2, 2] line segments of the bonds in a periodic box centred at the origin (S >= M).

    Each bond (i, j) is drawn from r_i wrapped into the box to r_i + d, d the minimum image of
    r_j - r_i, so no bond is drawn across the box; a bond that leaves the box is drawn a second
    time from the wrapped r_j to r_j - d, so that, clipped to the box, both halves show.

    Args:
        positions: [N, 2] (any images); box: [2] lengths; bonds: [M, 2] node indices.
    """
    r = np.asarray(positions, dtype=float)
    box = np.asarray(box, dtype=float)
    bonds = np.asarray(bonds, dtype=np.int64)
    w = r - box * np.round(r / box)
    d = r[bonds[:, 1]] - r[bonds[:, 0]]
    d -= box * np.round(d / box)
    p, q = w[bonds[:, 0]], w[bonds[:, 0]] + d
    seg = np.stack([p, q], axis=1)
    out = (np.abs(q) > box / 2).any(axis=1)
    pj = w[bonds[out, 1]]
    mirror = np.stack([pj, pj - d[out]], axis=1)
    return np.concatenate([seg, mirror], axis=0)


def plot_network_overlay(frames: Sequence[Mapping[str, Any]], bonds: np.ndarray,
                         path: str | os.PathLike | None = None, ncols: int = 3) -> Figure:
    """True (blue) and learned (red) networks drawn over each other, one panel per frame (Fig. 2).

    Args:
        frames: each {"title": str, "true": ([N, 2] positions, [2] box), "learned": (positions, box)};
            any other key with a (positions, box) pair (e.g. "baseline") is drawn too, in its colour.
        bonds: [M, 2] node indices.
        ncols: panels per row.
    Returns:
        The figure; each axis holds one LineCollection per configuration (clipped to its own box)
        and one box outline (Rectangle) per configuration.
    """
    if not frames:
        raise ValueError("expected at least one frame, got none")
    fig, axes = _grid(len(frames), ncols, 4.0, 4.0)
    for ax, frame in zip(axes.flat, frames, strict=False):
        half = np.zeros(2)
        for who in ("true", "baseline", "learned"):
            if who not in frame:
                continue
            pos, box = frame[who]
            box = np.asarray(box, dtype=float)
            half = np.maximum(half, box / 2)
            outline = Rectangle(tuple(-box / 2), box[0], box[1], fill=False, ec=_color(who), lw=0.8, ls="--")
            ax.add_patch(outline)
            lc = LineCollection(list(bond_segments(pos, box, bonds)), colors=_color(who),
                                linewidths=0.9 if who == "true" else 0.7, alpha=0.9, label=LABELS.get(who, who))
            ax.add_collection(lc)
            lc.set_clip_path(outline)
        ax.set_xlim(-half[0] * 1.02, half[0] * 1.02)
        ax.set_ylim(-half[1] * 1.02, half[1] * 1.02)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(frame.get("title", ""), fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    return _finish(fig, path)


def plot_node_trajectories(steps: Sequence[int] | np.ndarray, columns: Mapping[str, np.ndarray],
                           nodes: Sequence[int] | np.ndarray,
                           path: str | os.PathLike | None = None, title: str = "") -> Figure:
    """Displacement of chosen nodes against step, y (top row) and x (bottom row) (Fig. 4).

    Args:
        steps: [K] snapshot indices of the rows of every array in `columns`.
        columns: {"true"/"learned"/"baseline"/...: [K, N, 2] unwrapped positions}, one column each;
            displacements are taken from the first row.
        nodes: indices of the nodes to draw (one line each, same colour in every panel).
    Returns:
        The figure: a 2 × len(columns) grid, each axis with len(nodes) lines; rows share y limits.
    """
    if not columns:
        raise ValueError("expected at least one column of positions, got none")
    steps = np.asarray(steps)
    nodes = np.asarray(nodes, dtype=np.int64)
    fig, axes = _figure(2, len(columns), 3.4, 2.8, sharey="row", sharex=True)
    shades = [f"C{i % 10}" for i in range(len(nodes))]
    for c, (who, pos) in enumerate(columns.items()):
        pos = np.asarray(pos, dtype=float)
        if pos.shape[0] != len(steps):
            raise ValueError(f"expected {len(steps)} snapshots in column '{who}', got {pos.shape[0]}")
        disp = pos[:, nodes] - pos[0, nodes]                    # [K, n, 2]
        for row, comp in enumerate((1, 0)):
            ax = axes[row, c]
            for i in range(len(nodes)):
                ax.plot(steps, disp[:, i, comp], color=shades[i], lw=1.0)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(LABELS.get(who, who), fontsize=9, color=_color(who))
            if c == 0:
                ax.set_ylabel(f"{'xy'[comp]} displacement")
            if row == 1:
                ax.set_xlabel("snapshot")
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)
