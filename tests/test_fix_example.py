"""examples/leap/in.leap runs as is (in a copy of the folder) and does what it says."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "leap"


def start_warnings(text: str) -> list[str]:
    """The WARNINGs of fix gnn/rollout's start checks: the examples match their model, so none."""
    return re.findall(r"^WARNING: Fix gnn/rollout.*$", text, re.M)


def test_leap_example_runs(tmp_path):
    work = tmp_path / "leap"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("*.pt", "*.data", "log.*", "*.dump"))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               OMP_NUM_THREADS="1")
    out = subprocess.run([str(Path(sys.executable).parent / "lmp"), "-in", "in.leap"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    m = re.search(r"after (\d+) learned steps: strain ([0-9.]+)", text)
    assert m, text[-3000:]
    assert m.group(1) == "200" and float(m.group(2)) == 0.025     # 200 × 0.002 on Lx = 16
    assert start_warnings(text) == []
    assert (work / "leap.dump").stat().st_size > 0


@pytest.mark.slow
def test_shadow_example_runs(tmp_path):
    root = Path(__file__).resolve().parents[1] / "examples"
    for name in ("leap", "shadow"):
        shutil.copytree(root / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("*.pt", "*.data", "log.*", "*.dump"))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               OMP_NUM_THREADS="1")
    out = subprocess.run([str(Path(sys.executable).parent / "lmp"), "-in", "in.shadow"],
                         cwd=tmp_path / "shadow", env=env, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    m = re.search(r"snapshots (\d+): one-step MSE ([0-9.e+-]+), rollout MSE ([0-9.e+-]+)", text)
    assert m, text[-3000:]
    assert m.group(1) == "21"
    assert start_warnings(text) == []
    assert 0 < float(m.group(2)) < float(m.group(3))


@pytest.mark.slow
def test_interleave_examples_run(tmp_path):
    """in.interleave (mode interleave, one run) and in.switch (consecutive runs, init fix)."""
    root = Path(__file__).resolve().parents[1] / "examples"
    for name in ("leap", "interleave"):
        shutil.copytree(root / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("*.pt", "*.data", "log.*", "*.dump"))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               OMP_NUM_THREADS="1")

    def run(deck: str) -> str:
        out = subprocess.run([str(Path(sys.executable).parent / "lmp"), "-in", deck],
                             cwd=tmp_path / "interleave", env=env, capture_output=True, text=True, timeout=300)
        text = out.stdout + out.stderr
        assert out.returncode == 0, text[-3000:]
        assert start_warnings(text) == []
        return text

    text = run("in.interleave")
    m = re.search(r"interleave done: (\d+) learned steps, (\d+) MD steps, Lx ([0-9.]+), Ly ([0-9.]+), "
                  r"time ([0-9.]+)", text)
    assert m, text[-3000:]
    assert (m.group(1), m.group(2), m.group(3)) == ("30", "9000", "15.9220")   # Lx: 16 - 39 x 0.002
    assert float(m.group(5)) == pytest.approx((9000 + 30 * 1000) * 0.05)
    assert abs(float(m.group(4)) - 13.8564) < 0.05

    text = run("in.switch")
    m = re.search(r"learned block: (\d+) steps, Lx ([0-9.]+)", text)
    assert m and m.group(1) == "10" and m.group(2) == "15.9700", text[-3000:]
    assert "interleave done" in text


@pytest.mark.slow
def test_adaptive_example_runs(tmp_path):
    """in.adaptive compresses a 300-node network to 5 % with learned blocks the signal stops; with
    -var tol 1e-9 the same deck is the protocol MD, and ν_box agrees with it; so does a ≡ 0 (`lmp-gnn
    export zero`) in MD blocks of 3 snapshots, and in.relax (a ≡ 0 corrected by minimisation)."""
    root = Path(__file__).resolve().parents[1]
    work = tmp_path / "examples" / "adaptive"
    shutil.copytree(root / "examples" / "adaptive", work, ignore=shutil.ignore_patterns("*.data", "*.json", "log.*"))
    (tmp_path / "python").symlink_to(root / "python")     # the deck's ../../python/lmp_gnn/data/demo_model.pt
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               OMP_NUM_THREADS="1")
    done = re.compile(r"adaptive done: strain ([0-9.]+), nu_box ([-0-9.]+), (\d+) learned steps, (\d+) MD steps, "
                      r"MD fraction ([0-9.]+)")
    subprocess.run([str(Path(sys.executable).parent / "lmp-gnn"), "export", "zero", "--like",
                    str(root / "python" / "lmp_gnn" / "data" / "demo_model.pt"), "-o", str(work / "zero.pt")],
                   check=True, capture_output=True)
    results = []
    for extra in ([], ["-var", "tol", "1e-9"], ["-var", "model", "zero.pt", "-var", "md", "3", "-var", "tol", "3e-3"]):
        out = subprocess.run([str(Path(sys.executable).parent / "lmp"), "-in", "in.adaptive", *extra], cwd=work,
                             env=env, capture_output=True, text=True, timeout=300)
        text = out.stdout + out.stderr
        assert out.returncode == 0, text[-3000:]
        assert start_warnings(text) == []
        m = done.search(text)
        assert m, text[-3000:]
        results.append((text, [float(g) for g in m.groups()]))
    (adaptive_text, adaptive), (_, md), (_, zero) = results
    assert adaptive[0] >= 0.05 and md[0] >= 0.05
    assert adaptive[2] > 100 and adaptive[4] < 0.5          # most of the strain in learned steps
    assert md[2] == 0 and md[4] == 1.0
    assert abs(adaptive[1] - md[1]) < 0.01                  # ν_box at 5 % as MD gives it
    assert zero[2] > 100 and zero[4] < 0.1 and abs(zero[1] - md[1]) < 0.01   # a ≡ 0, MD blocks of 3
    # in.relax: blocks of a ≡ 0 corrected by minimisation, on the same network
    out = subprocess.run([str(Path(sys.executable).parent / "lmp"), "-in", "in.relax"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    m = re.search(r"relax done: strain ([0-9.]+), nu_box ([-0-9.]+)", text)
    assert m and 0.05 <= float(m.group(1)) < 0.0505 and abs(float(m.group(2)) - md[1]) < 0.01, text[-3000:]
    assert "MD takes over, next learned block" in adaptive_text


@pytest.mark.slow
def test_pylammps_driver_example_runs(tmp_path):
    """examples/driver/pylammps_switch.py: PyLammps runs MD with a shadow fix, learned leaps, MD."""
    root = Path(__file__).resolve().parents[1] / "examples"
    for name in ("leap", "driver"):
        shutil.copytree(root / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("*.pt", "*.data", "log.*", "*.dump"))
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "pylammps_switch.py"], cwd=tmp_path / "driver", env=env,
                         capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    warm = re.search(r"MD warm-up: (\d+) snapshots, nu_est ([-0-9.e+]+)", text)
    learned = re.search(r"learned: (\d+) steps, [0-9.]+ ms per model call, Lx ([0-9.]+)", text)
    final = re.search(r"MD again: Lx ([0-9.]+), Ly [0-9.]+, strain ([0-9.]+)", text)
    assert warm and learned and final, text[-3000:]
    assert start_warnings(text) == []
    assert warm.group(1) == "6"                       # snapshots 0..5 of 5000 MD steps
    assert learned.group(1) == "10"
    # Lx: 16 - 5 snapshots x 0.002 (MD) - 10 x 0.002 (learned) = 15.97; then 5000 MD steps more
    assert float(learned.group(2)) == pytest.approx(15.97, abs=1e-6)
    assert float(final.group(1)) == pytest.approx(15.96, abs=1e-4)
