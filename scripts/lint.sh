#!/usr/bin/env bash
# Static checks, as CI runs them before the tests: ruff lint, ruff format check, mypy.
# Configuration in pyproject.toml ([tool.ruff], [tool.mypy]). Needs the set-up of
# scripts/setup.sh (ruff and mypy are installed into .venv there).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LMP_GNN_VENV:-.venv}
echo "[lint] ruff check"
"$VENV/bin/ruff" check .
echo "[lint] ruff format --check"
"$VENV/bin/ruff" format --check .
echo "[lint] mypy"
"$VENV/bin/mypy"
