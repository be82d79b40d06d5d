"""Build small notebooks for tests (the runner's failure modes)."""

from __future__ import annotations

from pathlib import Path

import nbformat

PARAMETERS = """incident_id: str = ""  # incident id (empty: ADHOC-<now>)
severity: str = ""  # P0..P3 (empty: the runbook's default)
started_at: str = ""  # ISO 8601 UTC (empty: now)
window_minutes: int = 60  # look-back for logs and metrics
apply: list = []  # remediation steps to run for real (empty: read-only)
"""


def write_notebook(path: Path, slug: str, *cells: str, extra_params: str = "") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(PARAMETERS + extra_params)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# test notebook for {slug}"),
        params,
        nbformat.v4.new_code_cell(
            f"from propflow_ops.notebook import begin, show\nev = begin({slug!r}, globals())"
        ),
        *[nbformat.v4.new_code_cell(c) for c in cells],
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
