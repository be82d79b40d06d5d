#!/usr/bin/env bash
# README command (b): set up, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser-setup.sh
.venv/bin/ruff check propflow_ops tests bench notebooks
.venv/bin/mypy
.venv/bin/pytest -n 2 --dist loadgroup "$@"
