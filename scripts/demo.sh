#!/usr/bin/env bash
# The demo on a fresh machine: set-up (idempotent), then `lmp-gnn demo` on its defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lmp-gnn demo "$@"
