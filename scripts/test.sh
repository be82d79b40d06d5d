#!/usr/bin/env bash
# README command (b): set up, then lint, type-check and run the tests (CI runs this: .ci/run).
#   bash scripts/test.sh           everything: every lane, the browser test included
#   bash scripts/test.sh --fast    the pure and unit lanes: no kernel, no sandbox, no browser (under a minute)
# Any other argument goes to pytest (bash scripts/test.sh tests/runbooks -k oom).
# Lanes are pytest markers given by folder in tests/conftest.py: pure, unit, kernel, scenario, browser.
set -euo pipefail
cd "$(dirname "$0")/.."
FAST=0
ARGS=()
for a in "$@"; do
  if [ "$a" = "--fast" ]; then FAST=1; else ARGS+=("$a"); fi
done
T0=$SECONDS
say() { echo "test.sh: $* ($((SECONDS - T0)) s)"; }

bash scripts/setup.sh
if [ "$FAST" = 0 ]; then
  say "browser setup"
  bash scripts/browser-setup.sh
fi
say "ruff"
.venv/bin/ruff check propflow_ops tests bench notebooks
.venv/bin/ruff format --check propflow_ops tests bench notebooks
say "mypy"
.venv/bin/mypy
if [ "$FAST" = 1 ]; then
  say "pytest: the fast lane (pure and unit)"
  PROPFLOW_TEST_LANE=fast .venv/bin/pytest -p no:nbval -n 2 -m "(pure or unit) and not slow" --durations=15 ${ARGS[@]+"${ARGS[@]}"}
else
  say "pytest: every lane"
  .venv/bin/pytest -n 2 --dist loadgroup --durations=15 ${ARGS[@]+"${ARGS[@]}"}
fi
say "done"
