"""benchmarks/model_size.py end to end on a tiny setting: two 48-node networks compressed to 5 % by LAMMPS
(viscous, T = 0), widths 16 / 32 and k = 1 / 2 trained for 20 steps each, judged on the same two networks;
then a second call that must reuse the checkpoints."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lmp_gnn.physics.generate import jammed_network
from lmp_gnn.physics.md import compress
from lmp_gnn.physics.trajectory import save_trajectory

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "model_size.py"
MODELS = ["w16_k1", "w32_k1", "w16_k2", "w32_k2"]


def run(data: Path, out: Path) -> str:
    cmd = [sys.executable, str(BENCH), "--train", str(data), "--eval", str(data), "--out", str(out)]
    cmd += ["--steps", "20", "--widths", "16", "32", "--layers", "1", "2"]
    cmd += ["--repeats", "2", "--seconds", "0.01", "--lattice", "8"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    data = tmp_path_factory.mktemp("size_data")
    for seed in range(2):
        traj = compress(jammed_network(48, seed=seed), max_strain=0.05, delta_l=2e-3, seed=seed, thermostat="viscous")
        save_trajectory(data / f"net{seed}.npz", traj)
    out = tmp_path_factory.mktemp("size_run")
    first = run(data, out)
    result = json.loads((out / f"eval_{data.name}.json").read_text())
    return data, out, first, result


def test_trains_every_size_and_judges_it_beside_the_baseline(bench):
    _, out, stdout, result = bench
    assert result["reference"] == "w32_k1" and result["steps"] == 20
    res = result["results"]
    assert list(res) == [*MODELS, "zero1"]
    for name in MODELS:
        assert f"{name}: trained in" in stdout
        s = res[name]["summary"]
        assert s["n"] == 2 and s["nonfinite"] == 0
        assert all(math.isfinite(s[k]) for k in ("mse1_gmean", "mse100_gmean", "nu0.049_mean", "nubox0.049_mean"))
        # the prior and 20 steps already predict one step far better than zero acceleration
        assert s["mse1_gmean"] < 0.1 * res["zero1"]["summary"]["mse1_gmean"]
        assert (out / f"{name}.pt").exists()
    assert "cost" not in res["zero1"]
    # the table: a header, its rule and one row per model and the baseline
    rows = [line for line in stdout.splitlines() if line.startswith("| w") or line.startswith("| zero1")]
    assert len(rows) == 5 and "| reference |" in rows[1]


def test_cost_grows_with_width_and_layers(bench):
    res = bench[3]["results"]
    cost = {name: res[name]["cost"] for name in MODELS}
    for a, b in (("w16_k1", "w32_k1"), ("w16_k2", "w32_k2"), ("w16_k1", "w16_k2"), ("w32_k1", "w32_k2")):
        assert cost[a]["params"] < cost[b]["params"]
        assert cost[a]["flops_per_node"] < cost[b]["flops_per_node"]
    assert cost["w32_k1"]["ratio_data"] == [1.0, 1.0, 1.0] and cost["w32_k1"]["ratio_lattice"] == [1.0, 1.0, 1.0]
    for name in MODELS:
        for key in ("ratio_data", "ratio_lattice"):
            med, lo, hi = cost[name][key]
            assert 0 < lo <= med <= hi < math.inf


def test_choice_rule_is_reported_against_the_reference(bench):
    res = bench[3]["results"]
    assert "keeps" not in res["w32_k1"]
    for name in ["w16_k1", "w16_k2", "w32_k2", "zero1"]:
        k = res[name]["keeps"]
        for key in ("dnu0.049", "dlog_mse100"):
            mean, se = k[key]
            assert math.isfinite(mean) and se > 0
        within = all(mean <= 2 * se for mean, se in (k["dnu0.049"], k["dlog_mse100"]))
        assert k["keeps"] is (within and res[name]["summary"]["nonfinite"] == 0)
    # zero acceleration is far off after 100 steps: the rule must not let it pass
    assert res["zero1"]["keeps"]["keeps"] is False


def test_second_call_reuses_the_checkpoints(bench):
    data, out, _, _ = bench
    before = {name: (out / f"{name}.pt").stat().st_mtime_ns for name in MODELS}
    stdout = run(data, out)
    assert all(f"{name}: reused" in stdout for name in MODELS)
    assert {name: (out / f"{name}.pt").stat().st_mtime_ns for name in MODELS} == before
