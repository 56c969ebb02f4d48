"""`lmp-gnn simulate` end to end on tiny lattices: outputs, sidecars, resume, workers, failures."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from lmp_gnn.cli import main
from lmp_gnn.commands.simulate import network_seed
from lmp_gnn.physics.trajectory import load_trajectory
from test_md import triangular_lattice

FAST = ["--max-strain", "0.004", "--delta-l", "0.004"]


@pytest.fixture()
def netdir(tmp_path):
    d = tmp_path / "nets"
    triangular_lattice(6, 6).write_lammps_data(d / "a.data")
    triangular_lattice(8, 6, shift=0.3).write_lammps_data(d / "b.data")
    (d / "a.json").write_text(json.dumps({"nu_linear": 1 / 3, "seed": 1}))
    return d


def test_simulate_writes_trajectories_and_resumes(netdir, tmp_path, capsys):
    out = tmp_path / "traj"
    assert main(["simulate", str(netdir), "-o", str(out), "--seed", "7", *FAST]) == 0
    a, b = load_trajectory(out / "a.npz"), load_trajectory(out / "b.npz")
    assert a.n_nodes == 36 and b.n_nodes == 48
    assert a.metadata["nu_linear"] == pytest.approx(1 / 3)              # from the sidecar
    assert b.metadata["nu_linear"] == pytest.approx(1 / 3, abs=1e-9)    # no sidecar: its linear response
    assert a.metadata["network"] == "a.data" and a.metadata["seed"] == network_seed(7, "a")
    np.testing.assert_allclose(a.box[:, 0], 6.0 - 0.004 * np.arange(a.n_snapshots), atol=1e-12)
    summary = json.loads((out / "simulate_summary.json").read_text())
    assert summary["simulated"] == 2 and summary["failed"] == 0
    assert summary["nu_box_vs_linear"]["count"] == 2
    assert abs(summary["nu_box_vs_linear"]["mean_diff"]) < 0.01  # lattice: ν = 1/3
    text = capsys.readouterr().out
    assert "simulated 2, skipped 0 existing, failed 0" in text and "mean MD steps/snapshot" in text

    b_time = (out / "b.npz").stat().st_mtime_ns
    (out / ".a.abc123.npz").write_bytes(b"half-written")  # temporary of a killed run
    (out / "a.npz").unlink()
    assert main(["simulate", str(netdir), "-o", str(out), "--seed", "7", *FAST]) == 0
    assert "simulated 1, skipped 1 existing" in capsys.readouterr().out
    assert not (out / ".a.abc123.npz").exists()
    again = load_trajectory(out / "a.npz")
    np.testing.assert_array_equal(again.positions, a.positions)  # same seed, same trajectory
    assert (out / "b.npz").stat().st_mtime_ns == b_time  # skipped, not rewritten
    assert oct((out / "b.npz").stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    # a truncated output (a full disk, an interrupted copy) is made again, not skipped
    (out / "a.npz").write_bytes((out / "a.npz").read_bytes()[:500])
    assert main(["simulate", str(netdir), "-o", str(out), "--seed", "7", *FAST]) == 0
    captured = capsys.readouterr()
    assert "a.npz is unreadable" in captured.err and "simulated 1, skipped 1 existing" in captured.out
    np.testing.assert_array_equal(load_trajectory(out / "a.npz").positions, a.positions)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_simulate_two_workers_and_a_bad_network(netdir, tmp_path, capsys):
    # a file that is no network stops the run before any MD, named, with nothing written
    (netdir / "c.data").write_text("# not a network\n\n3 atoms\n")
    out = tmp_path / "traj"
    assert main(["simulate", str(netdir), "-o", str(out), "--workers", "2", *FAST]) == 2
    assert f"lmp-gnn simulate: error: {netdir / 'c.data'}: expected a LAMMPS data file with atoms" in (
        capsys.readouterr().err)
    assert not out.exists()
    # a network that reads but cannot be compressed fails alone; the others are made
    triangular_lattice(2, 2).write_lammps_data(netdir / "c.data")
    assert main(["simulate", str(netdir), "-o", str(out), "--workers", "2", *FAST]) == 1
    assert sorted(p.name for p in out.glob("*.npz")) == ["a.npz", "b.npz"]
    summary = json.loads((out / "simulate_summary.json").read_text())
    assert summary["failed"] == 1 and summary["failures"][0]["network"] == "c"
    assert "expected box lengths above 2.2 × the longest bond" in summary["failures"][0]["error"]
    assert "failed 1" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--max-strain", "0.6"], "expected 0 < max_strain < 0.5, got 0.6"),
    (["--workers", "0"], "expected --workers ≥ 1, got 0"),
    (["--temperature", "-1"], "expected temperature > 0, got -1.0"),
])
def test_simulate_bad_options(netdir, tmp_path, capsys, extra, message):
    assert main(["simulate", str(netdir), "-o", str(tmp_path / "o"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_simulate_needs_networks(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["simulate", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 2
    assert "expected .data network files" in capsys.readouterr().err


def test_simulate_delta_strain_scales_delta_l_with_each_network(netdir, tmp_path):
    out = tmp_path / "traj"
    assert main(["simulate", str(netdir), "-o", str(out), "--max-strain", "0.004", "--delta-strain", "0.002"]) == 0
    for name in ("a", "b"):
        t = load_trajectory(out / f"{name}.npz")
        lx0 = float(t.box[0, 0])
        assert t.metadata["delta_strain"] == 0.002
        assert t.metadata["delta_l"] == pytest.approx(0.002 * lx0, rel=1e-12)   # a: Lx0 6, b: 8
        assert t.n_snapshots == 3                                              # 0.004 / 0.002 + 1
        np.testing.assert_allclose(1 - t.box[:, 0] / lx0, [0.0, 0.002, 0.004], atol=1e-12)
    assert load_trajectory(out / "a.npz").box[0, 0] != load_trajectory(out / "b.npz").box[0, 0]


def test_simulate_bad_delta_strain(netdir, tmp_path, capsys):
    assert main(["simulate", str(netdir), "-o", str(tmp_path / "o"), "--max-strain", "0.004",
                 "--delta-strain", "0.01"]) == 2
    assert "expected 0 < --delta-strain ≤ --max-strain, got 0.01" in capsys.readouterr().err
