"""benchmarks/generalization.py (the out-of-sample test bed) end to end on a tiny setting.

Real networks, real LAMMPS MD and the shipped model through `lmp-gnn evaluate`, at N = 40 and a
fast strain rate so that the whole pipeline (networks, simulate with --delta-strain, evaluate from
two starts, the table, the cache) runs in seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lmp_gnn.physics.trajectory import load_trajectory

REPO = Path(__file__).resolve().parents[1]


def _model_step() -> float:
    """The shipped model's strain per learned step (delta_l / box_length), read from its metadata."""
    from lmp_gnn.step.rollout import load_model

    meta = load_model(str(REPO / "python" / "lmp_gnn" / "data" / "demo_model.pt")).metadata
    return float(meta["delta_l"]) / float(meta["box_length"])


# N = 40 networks (Lx0 ≈ 6) at the model's strain per step, so that evaluate takes them as they are
STEP = _model_step()
BASE = [
    "--nodes",
    "40",
    "--count",
    "2",
    "--count-large",
    "2",
    "--delta-strain",
    repr(STEP),
    "--simulate-args",
    "--strain-rate 5e-5",
    "--networks-args",
    "--check-strain 0",
]
TINY = [*BASE, "--rows", "same-size,2.7x"]


def _testbed():
    spec = importlib.util.spec_from_file_location("generalization", REPO / "benchmarks" / "generalization.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_testbed_tiny_end_to_end_and_cached(tmp_path, capsys):
    tb = _testbed()
    out = tmp_path / "bed"
    model = tmp_path / "demo_model.pt"
    shutil.copyfile(tb.SHIPPED_MODEL, model)
    assert tb.main(["-o", str(out), "--model", str(model), *TINY]) == 0
    printed = capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert (out / "results.md").read_text() in printed  # the printed table is the one written
    rows = res["models"]["demo_model"]
    assert [r["row"] for r in rows] == ["same-size", "2.7x"]

    # every row at the asked strain per snapshot: Δl = STEP × each network's Lx0
    big = sorted((out / "traj").glob("2.7x-*/*.npz"))
    small = sorted((out / "traj").glob("same-size-*/*.npz"))
    assert len(big) == 2 and len(small) == 2
    for p in big + small:
        t = load_trajectory(p)
        assert t.metadata["delta_strain"] == STEP
        assert t.metadata["delta_l"] == pytest.approx(STEP * t.box[0, 0], rel=1e-12)
    assert min(load_trajectory(p).n_nodes for p in big) > 2 * max(load_trajectory(p).n_nodes for p in small)

    for r in rows:
        warm, h2 = r["metrics"]["warm"], r["metrics"]["h+2"]
        assert h2["start"] == 5  # h + 2 for the shipped h = 3 model
        assert warm["networks"] == h2["networks"] == 2
        for m in (warm, h2):
            assert m["mse_ratio_1"] > 0 and m["mse_1"]["baseline"] > 0
            assert m["nu_est_0.049"]["learned"]["n"] == 2
            assert 0 <= m["closer"]["closer"] <= m["closer"]["n"] == 2
    # the warm start is the first snapshot at >= 0.25 % strain of the row's trajectories
    warm_start = rows[0]["metrics"]["warm"]["start"]
    strains = [1 - load_trajectory(p).box[:, 0] / load_trajectory(p).box[0, 0] for p in small]
    assert max(int(np.argmax(s >= 0.0025)) for s in strains) == warm_start > 5
    ev = json.loads((out / "eval" / "demo_model" / small[0].parent.name / "warm" / "results.json").read_text())
    assert ev["start"] == warm_start and ev["box_delta_l"] == "model"
    assert rows[0]["metrics"]["warm"]["mse_ratio_100"] == pytest.approx(
        ev["aggregate"]["per_network"]["100"]["geomean_ratio"]
    )
    ev = json.loads((out / "eval" / "demo_model" / big[0].parent.name / "h+2" / "results.json").read_text())
    assert ev["start"] == 5 and ev["box_delta_l"] == "model"  # evaluate's own check of the step
    assert rows[1]["metrics"]["h+2"]["nu_est_0.049"]["learned"]["mean"] == pytest.approx(
        ev["aggregate"]["nu"]["strain_0.049"]["nu_est"]["learned"]["mean_abs_error"]
    )

    # a rerun reuses every stage and prints the same numbers
    assert tb.main(["-o", str(out), "--model", str(model), *TINY]) == 0
    again = json.loads((out / "results.json").read_text())
    assert all(v["cached"] for v in again["meta"]["timings"].values())
    assert again["models"] == res["models"]
    assert "cached" in capsys.readouterr().out
    # a moved output folder is still the same data
    moved = tmp_path / "moved"
    shutil.move(out, moved)
    assert tb.main(["-o", str(moved), "--model", str(model), *TINY]) == 0
    assert all(v["cached"] for v in json.loads((moved / "results.json").read_text())["meta"]["timings"].values())
    shutil.move(moved, out)
    # a changed model file is evaluated again on the same data
    os.utime(model, (1.0e9, 1.0e9))
    assert tb.main(["-o", str(out), "--model", str(model), *TINY]) == 0
    timings = json.loads((out / "results.json").read_text())["meta"]["timings"]
    assert {k.split()[0] for k, v in timings.items() if not v["cached"]} == {"evaluate"}
    assert "evaluating again" in capsys.readouterr().out
    # other data settings in the same folder are refused, not mixed in
    with pytest.raises(SystemExit, match="other settings"):
        tb.main(["-o", str(out), *TINY, "--networks-args", "--check-strain 0 --tol 0.02"])


@pytest.mark.slow
def test_testbed_data_efficiency_tiny(tmp_path, capsys):
    tb = _testbed()
    out = tmp_path / "bed"
    args = ["-o", str(out), *BASE, "--rows", "same-size"]
    assert tb.main(args) == 0
    # training data: the same networks at one Δl (training takes one step), the model's strain per step
    from lmp_gnn.cli import main as cli

    nets = next((out / "networks").glob("n1-*"))
    lx0 = float(np.mean([json.loads(p.read_text())["box"][0] for p in nets.glob("net_*.json")]))
    train = tmp_path / "train"
    assert (
        cli(
            [
                "simulate",
                str(nets),
                "-o",
                str(train),
                "--thermostat",
                "viscous",
                "--strain-rate",
                "5e-5",
                "--delta-l",
                repr(STEP * lx0),
            ]
        )
        == 0
    )
    assert tb.main([*args, "--data-efficiency", str(train), "--train-sizes", "1", "2", "--train-steps", "20"]) == 0
    res = json.loads((out / "results.json").read_text())
    de = res["data_efficiency"]
    assert [d["trajectories"] for d in de] == [1, 2] and all(d["train_steps"] == 20 for d in de)
    for d in de:  # 20 steps make a poor model: its rollouts may diverge, which the table must say
        ev = json.loads(
            next((out / "eval" / "data_efficiency").glob(f"n{d['trajectories']}-*/*/warm/results.json")).read_text()
        )
        assert d["non_finite"] == ev["aggregate"]["n_diverged"] + ev["aggregate"]["n_failed"]
        assert d["mse_ratio_100"] == ev["aggregate"]["per_network"]["100"]["geomean_ratio"] > 0
        assert d["nu_est_r2"] == ev["aggregate"]["nu"]["strain_0.049"]["nu_est"]["learned"]["r2"]
    for n in (1, 2):
        run = out / "data_efficiency" / f"n{n}-steps20"
        assert len(list((run / "data").glob("*.npz"))) == n and (run / "model.pt").is_file()
    assert "Data efficiency" in capsys.readouterr().out
