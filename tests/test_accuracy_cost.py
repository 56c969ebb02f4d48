"""benchmarks/accuracy_cost.py on a tiny setting: one jammed network of 80 nodes compressed to 1 %, pure MD,
one interleave cycle shape and pure leap, with the zero-acceleration predictor exported by the benchmark
and the shipped model. Real LAMMPS, real fix gnn/rollout."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from lmp_gnn.learning.export import export_zero_acceleration, load_exported
from lmp_gnn.physics.generate import jammed_network

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy_cost.py"
STRAINS = (0.005, 0.01)


@pytest.fixture(scope="module")
def ac():
    spec = importlib.util.spec_from_file_location("accuracy_cost", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["accuracy_cost"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(ac, tmp_path_factory):
    out = tmp_path_factory.mktemp("accuracy_cost")
    _, meta = load_exported(ac.SHIPPED)
    export_zero_acceleration(ac.SHIPPED, out / "zero.pt")
    models = {"learned": ac.SHIPPED, "zero": out / "zero.pt"}
    net = jammed_network(80, seed=3)
    return net, meta, models, ac.Setting.for_network(net, meta, STRAINS)


def test_schedule_arithmetic(ac):
    # cycles of 2 MD intervals (every = 10) and 3 learned steps
    assert [ac.lammps_steps(k, 2, 3, 10) for k in (1, 2, 3, 5, 6, 8)] == [10, 20, 21, 23, 33, 44]
    assert ac.lammps_steps(7, 1, 0, 10) == 70  # pure MD
    assert ac.md_fraction(10, 2, 3) == pytest.approx(0.4) and ac.md_fraction(7, 1, 0) == 1.0
    assert ac.md_fraction(100, 20, ac.LEAP_LEARN) == pytest.approx(0.2)


def test_zero_model_has_the_shipped_metadata(ac, setup):
    _, meta, models, _ = setup
    _, zmeta = load_exported(models["zero"])
    for key in ("delta_l", "box_length", "history", "md_steps_per_step", "strain_rate", "timestep", "dtype"):
        assert zmeta[key] == meta[key], key
    assert zmeta["weights_crc32"] is None


def test_md_interleave_leap(ac, setup):
    net, meta, models, setting = setup
    assert setting.every == ac.md_steps_per_snapshot(setting.lx0, setting.dl, ac.STRAIN_RATE, ac.TIMESTEP)
    md = [ac.run_case(net, models["zero"], setting, 1, 0) for _ in range(2)]
    inter = ac.run_case(net, models["zero"], setting, 2, 3)
    leap = ac.run_case(net, models["learned"], setting, 4, ac.LEAP_LEARN)
    for case in (*md, inter, leap):
        assert case.error is None and case.wall_s > 0
        # every variant stops at the same Lx: k units of dl each
        np.testing.assert_allclose(case.strain, np.array(setting.targets) * setting.dl / setting.lx0, rtol=1e-9)
        assert np.all(np.isfinite(case.nu_est)) and np.all(np.isfinite(case.nu_box))
    # the MD is deterministic: pure MD against itself is exactly 0
    assert md[0].nu_est == md[1].nu_est and md[0].nu_box == md[1].nu_box
    # a learned block changes the trajectory (the comparison is not vacuous), but stays close at 0.5 %
    assert inter.nu_est != md[0].nu_est and abs(inter.nu_est[0] - md[0].nu_est[0]) < 0.05

    # mode adaptive, stopped by a fix halt at the same Lx: never refused it is the interleave run, always
    # refused the protocol MD
    free = ac.run_case(net, models["zero"], setting, 2, 3, tol=1e30)
    refused = ac.run_case(net, models["zero"], setting, 2, 3, tol=1e-30)
    for case in (free, refused):
        assert case.error is None
        np.testing.assert_allclose(case.strain, inter.strain, rtol=0, atol=1e-12)
    assert free.nu_est == pytest.approx(inter.nu_est, abs=1e-12) and free.nu_box == pytest.approx(
        inter.nu_box, abs=1e-12
    )
    assert free.md_fraction == pytest.approx(inter_fraction := ac.md_fraction(setting.targets[-1], 2, 3))
    assert refused.nu_est == pytest.approx(md[0].nu_est, abs=1e-12) and refused.md_fraction == 1.0

    # the minimisation corrector (mode leap blocks of 2 steps, cg at zero y stress) from 4 MD intervals:
    # it stops at the same Lx, follows MD closely, and is not MD
    relax = ac.run_relax_case(net, models["zero"], setting, 4, 2)
    assert relax.error is None and relax.wall_s > 0
    np.testing.assert_allclose(relax.strain, inter.strain, rtol=0, atol=1e-12)
    assert np.abs(np.array(relax.nu_box) - md[0].nu_box).max() < 0.05 and relax.nu_box != md[0].nu_box

    # stopping at each measured strain leaves the run as one `run` to the last strain
    last = ac.Setting(setting.dl, setting.every, setting.lx0, setting.targets[-1:])
    whole = ac.run_case(net, models["zero"], last, 2, 3)
    assert whole.nu_est[0] == pytest.approx(inter.nu_est[-1], abs=1e-9)

    results = [
        {
            "setting": setting,
            "warm_units": 4,
            "md": md,
            "runs": {
                ("zero", 2, 3, None): inter,
                ("zero", 4, ac.LEAP_LEARN, None): leap,
                ("zero", 2, 3, 1e30): free,
            },
        }
    ]
    rows = ac.summarise(results, ["zero"], [(2, 3), (0, ac.LEAP_LEARN)], [(2, 3, 1e30)])
    assert [r["label"] for r in rows] == ["pure MD", "interleave", "pure leap", "adapt 1e+30"]
    assert rows[3]["md_fraction"] == pytest.approx(inter_fraction) and rows[3]["learn"] == "<=3"
    assert rows[0]["nu_est_err_max"] == [0.0, 0.0] and rows[0]["nu_box_err_mean"] == [0.0, 0.0]
    assert all(r["wall_ratio"] > 0 for r in rows)
    assert rows[1]["md_fraction"] == pytest.approx(ac.md_fraction(setting.targets[-1], 2, 3))
    assert rows[2]["md_fraction"] == pytest.approx(4 / setting.targets[-1])
    assert "pure leap" in ac.table(rows, STRAINS, STRAINS)
