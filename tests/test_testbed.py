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
TINY = [
    "--nodes",
    "40",
    "--count",
    "2",
    "--count-large",
    "2",
    "--rows",
    "same-size,2.7x",
    "--simulate-args",
    "--strain-rate 5e-5",
    "--networks-args",
    "--check-strain 0",
]


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

    # 2.7x: Δl per network = 2e-3 Lx0 / mean Lx0(same-size), i.e. the same strain per snapshot
    ref = res["meta"]["ref_lx0"]
    big = sorted((out / "traj").glob("2.7x-*/*.npz"))
    small = sorted((out / "traj").glob("same-size-*/*.npz"))
    assert len(big) == 2 and len(small) == 2
    for p in big:
        t = load_trajectory(p)
        assert t.n_nodes > 80
        assert t.metadata["delta_l"] == pytest.approx(2e-3 * t.box[0, 0] / ref, rel=1e-12)
        assert t.metadata["delta_strain"] == pytest.approx(2e-3 / ref, rel=1e-12)
    for p in small:
        assert load_trajectory(p).metadata["delta_l"] == 2e-3

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
    assert ev["start"] == 5 and ev["box_delta_l"] == "trajectory"
    assert rows[1]["metrics"]["h+2"]["nu_est_0.049"]["learned"]["mean"] == pytest.approx(
        ev["aggregate"]["nu"]["strain_0.049"]["nu_est"]["learned"]["mean_abs_error"]
    )

    # a rerun reuses every stage and prints the same numbers
    assert tb.main(["-o", str(out), "--model", str(model), *TINY]) == 0
    again = json.loads((out / "results.json").read_text())
    assert all(v["cached"] for v in again["meta"]["timings"].values())
    assert again["models"] == res["models"]
    assert "cached" in capsys.readouterr().out
    # a changed model file is evaluated again on the same data
    os.utime(model, (1.0e9, 1.0e9))
    assert tb.main(["-o", str(out), "--model", str(model), *TINY]) == 0
    timings = json.loads((out / "results.json").read_text())["meta"]["timings"]
    assert {k.split()[0] for k, v in timings.items() if not v["cached"]} == {"evaluate"}
    assert "evaluating again" in capsys.readouterr().out
    # other data settings in the same folder are refused, not mixed in
    with pytest.raises(SystemExit, match="other settings"):
        tb.main(["-o", str(out), *TINY[:-2], "--networks-args", "--check-strain 0 --tol 0.02"])


@pytest.mark.slow
def test_testbed_data_efficiency_tiny(tmp_path, capsys):
    tb = _testbed()
    out = tmp_path / "bed"
    args = ["-o", str(out), *TINY[:6], "--rows", "same-size", *TINY[8:]]
    assert tb.main(args) == 0
    train = next((out / "traj").glob("same-size-*"))  # any trajectories will do for the machinery
    assert tb.main([*args, "--data-efficiency", str(train), "--train-sizes", "1", "2", "--train-steps", "20"]) == 0
    res = json.loads((out / "results.json").read_text())
    de = res["data_efficiency"]
    assert [d["trajectories"] for d in de] == [1, 2] and all(d["train_steps"] == 20 for d in de)
    assert all(d["nu_est_r2_baseline"] is not None for d in de)
    for n in (1, 2):
        run = out / "data_efficiency" / f"n{n}-steps20"
        assert len(list((run / "data").glob("*.npz"))) == n and (run / "model.pt").is_file()
    assert "Data efficiency" in capsys.readouterr().out
