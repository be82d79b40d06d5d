#!/usr/bin/env bash
# README command (a): set up, then run the demo against the embedded sandbox; the report lands in outputs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/propflow-ops demo "$@"
