"""A command says what it means to say: no third-party import warning reaches its stderr or a notebook.

CI once saw ``propflow-ops sandbox``'s one-line refusal arrive as three lines: urllib3's warning about its
optional SOCKS module came first. requests silences that warning with a filter it adds on its own import,
but ``warnings.catch_warnings`` is not thread-safe: the sandbox starts PostgreSQL, Redis and AWS in
threads, and the PostgreSQL thread's ``catch_warnings`` block, leaving, put back the filters it had seen on
entering it, dropping the one requests had added meanwhile in the AWS thread. These tests replay that
interleaving in one thread (deterministic), with the warnings the user's environment could turn on.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import propflow_ops

PACKAGE = Path(propflow_ops.__file__).resolve().parent


def _python(code: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


INTERLEAVED = """
import warnings
import propflow_ops
with warnings.catch_warnings():  # another thread's block, entered before requests is imported...
    import requests  # ...which adds its filter for urllib3's DependencyWarning
# ...and left: the filters are back to what they were on entering, without requests' filter
try:
    import urllib3.contrib.socks  # what requests' adapters import; it warns without PySocks
except ImportError:
    pass
print("ok")
"""


def test_urllib3s_socks_warning_stays_silent_after_another_threads_catch_warnings() -> None:
    done = _python(INTERLEAVED)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert done.stderr == ""


def test_the_sandboxs_postgres_import_says_nothing_without_xdg_runtime_dir() -> None:
    pytest.importorskip("pgserver")
    code = (
        "import propflow_ops\n"
        "from pgserver.utils import ensure_prefix_permissions\n"
        "from pgserver._commands import POSTGRES_BIN_PATH\n"
        "print('ok')\n"
    )
    done = _python(code, XDG_RUNTIME_DIR=None)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert done.stderr == ""


def test_the_package_never_swaps_the_process_wide_warning_filters() -> None:
    """``catch_warnings`` restores, on leaving, the filters of every thread: the package does not use it."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            name = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.id
                if isinstance(node, ast.Name)
                else ""
            )
            if name in {"catch_warnings", "resetwarnings"}:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert offenders == []
