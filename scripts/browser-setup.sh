#!/usr/bin/env bash
# What the browser test (tests/browser, marker `browser`) needs, idempotent:
#  - Debian's chromium at /usr/bin/chromium, from apt (no browser download: never `playwright install`);
#  - the `browser` extra (Playwright's Python package and its bundled driver) in .venv.
# Run after scripts/setup.sh. Needs root (or sudo) only when chromium is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "browser-setup: chromium is missing and there is no sudo" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version >/dev/null 2>&1 || { echo "browser-setup: /usr/bin/chromium does not run" >&2; exit 1; }

if ! .venv/bin/python -c "import playwright.sync_api" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,lab,browser]'
fi
.venv/bin/python -c "import playwright.sync_api, jupyterlab" >/dev/null
