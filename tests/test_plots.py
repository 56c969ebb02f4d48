"""lmp_gnn.evaluation.plots: every figure is written from small real rollout arrays, and holds what it should."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection

from affine_fixture import affine_trajectory, lattice_network
from lmp_gnn.evaluation import analysis, plots
from lmp_gnn.step import features
from lmp_gnn.step.rollout import rollout, zero_acceleration_model

torch.set_num_threads(1)


class TrueAcceleration:
    def __init__(self, traj, start):
        self.pos, self.t = torch.as_tensor(traj.positions), start

    def __call__(self, x, edge_index, edge_features):
        a = features.target_acceleration(self.pos, self.t) * 1.05   # a slightly wrong "learned" model
        self.t += 1
        return a


@pytest.fixture(scope="module")
def evaluated():
    out = []
    for seed, nu in enumerate((0.3, -0.2, 0.1)):
        traj = affine_trajectory(n_snapshots=40, nu=nu, curvature=3e-6, seed=seed)
        learned = rollout(TrueAcceleration(traj, 3), traj, 3, 36, 3, 0.004)
        baseline = rollout(zero_acceleration_model, traj, 3, 36, 3, 0.004)
        out.append((traj, learned, baseline, analysis.evaluate_network(traj, learned, baseline, f"n{seed}")))
    return out


def _png(path, fig):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    w, h = fig.get_size_inches() * 120
    assert img.shape[:2] == (round(h), round(w))          # the whole figure at 120 dpi
    assert img[..., :3].std() > 0.01                        # not a blank canvas


def test_nu_vs_strain(tmp_path, evaluated):
    r = evaluated[0][3]
    fig = plots.plot_nu_vs_strain(r["nu_curve"], tmp_path / "nu.png", title="n0", start_strain=0.002)
    _png(tmp_path / "nu.png", fig)
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax, est in zip(axes, ("nu_box", "nu_est"), strict=True):
        lines = [ln for ln in ax.get_lines() if ln.get_label() in plots.LABELS.values()]
        assert [ln.get_label() for ln in lines] == [plots.LABELS[k] for k in ("true", "learned", "baseline")]
        ydata = np.asarray(lines[1].get_ydata(), dtype=float)
        np.testing.assert_array_equal(ydata[1:], r["nu_curve"]["learned"][est][1:])


def test_mse_vs_step(tmp_path, evaluated):
    curves = {k: [e[3]["mse_curve"][k] for e in evaluated] for k in ("learned", "baseline")}
    fig = plots.plot_mse_vs_step(curves, tmp_path / "mse.png")
    _png(tmp_path / "mse.png", fig)
    (ax,) = fig.get_axes()
    assert ax.get_yscale() == "log" and len(ax.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), analysis.mean_curve(curves["learned"])[1:])
    assert np.all(ax.get_lines()[1].get_ydata() > ax.get_lines()[0].get_ydata())   # baseline worse here


def test_parity(tmp_path, evaluated):
    panels = []
    for point in ("steps_20", "strain_0.01"):
        for est in ("nu_box", "nu_est"):
            panels.append({"title": f"{point} {est}", **{w: [e[3]["nu"][point][w][est] for e in evaluated]
                                                          for w in ("true", "learned", "baseline")}})
    fig = plots.plot_parity(panels, tmp_path / "parity.png", ncols=3)
    _png(tmp_path / "parity.png", fig)
    visible = [ax for ax in fig.get_axes() if ax.get_visible()]
    assert len(visible) == 4
    for ax in visible:
        scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert [len(s.get_offsets()) for s in scatters] == [3, 3]
        assert len(ax.get_lines()) == 1                                   # the diagonal
        assert "R²=" in ax.get_legend().get_texts()[1].get_text()


def test_bond_segments_never_cross_the_box():
    pos, box, bonds, rest = lattice_network(6)
    seg = plots.bond_segments(pos, box, bonds)
    # 108 bonds; those leaving the box (per row/column: 6 along x, 6 along y, 11 diagonals) drawn twice
    assert seg.shape == (108 + 23, 2, 2)
    lengths = np.linalg.norm(seg[:, 1] - seg[:, 0], axis=1)
    assert lengths.max() == pytest.approx(rest.max())


def test_network_overlay(tmp_path, evaluated):
    traj, learned, baseline, _ = evaluated[1]
    frames = [{"title": f"t = {t}", "true": (traj.positions[t], traj.box[t]),
               "learned": (learned.positions[t], learned.box[t])} for t in (3, 20, 39)]
    fig = plots.plot_network_overlay(frames, traj.bonds, tmp_path / "overlay.png")
    _png(tmp_path / "overlay.png", fig)
    for ax in fig.get_axes():
        lcs = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(lcs) == 2 and [lc.get_label() for lc in lcs] == ["true MD", "learned"]
        assert all(len(lc.get_segments()) >= len(traj.bonds) for lc in lcs)


def test_node_trajectories(tmp_path, evaluated):
    traj, learned, baseline, _ = evaluated[1]
    steps = np.arange(3, 19)
    cols = {"true": traj.positions[3:19], "learned": learned.positions[3:19], "baseline": baseline.positions[3:19]}
    fig = plots.plot_node_trajectories(steps, cols, nodes=[0, 5, 11, 17, 30], path=tmp_path / "nodes.png")
    _png(tmp_path / "nodes.png", fig)
    axes = fig.get_axes()
    assert len(axes) == 6 and all(len(ax.get_lines()) == 5 for ax in axes)
    y_true = axes[0].get_lines()[1].get_ydata()               # y displacement of node 5 in the truth
    np.testing.assert_allclose(y_true, traj.positions[3:19, 5, 1] - traj.positions[3, 5, 1])
