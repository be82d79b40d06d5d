"""Every notebook in the repository (not only the runbooks in notebooks/) is committed clean: no outputs,
no execution counts, nothing a run or an interactive session leaves in its metadata (papermill's record
of a run, widget state), and a runbook has exactly one parameters cell. A notebook saved from JupyterLab
during an incident may hold production data: this is the check that keeps it out of git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest

from propflow_ops.runbooks import RUNBOOKS

REPO = Path(__file__).resolve().parents[2]
RUNBOOK_FILES = {rb.notebook for rb in RUNBOOKS.values()}
SESSION_METADATA = ("papermill", "widgets", "propflow_ops")  # left by a run, Lab widgets, our runner


def committed_notebooks() -> list[Path]:
    """The .ipynb files git tracks (every .ipynb outside outputs/ when this is not a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", "*.ipynb"], cwd=REPO, capture_output=True, check=True, timeout=30
        ).stdout.decode()
        paths = [REPO / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        paths = [
            p
            for p in REPO.rglob("*.ipynb")
            if "outputs" not in p.relative_to(REPO).parts
            and ".ipynb_checkpoints" not in p.parts
            and ".venv" not in p.relative_to(REPO).parts
        ]
    return sorted(p for p in paths if p.exists())


def residue(nb: nbformat.NotebookNode) -> list[str]:
    """What a committed notebook must not carry."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.get("outputs"):
            found.append(f"cell {i}: outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {i}: execution count {cell['execution_count']}")
        if "papermill" in cell.get("metadata", {}) or "execution" in cell.get("metadata", {}):
            found.append(f"cell {i}: run metadata")
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            found.append(f"cell {i}: papermill's injected parameters")
    found += [f"notebook metadata: {key}" for key in SESSION_METADATA if key in nb.metadata]
    return found


NOTEBOOKS = committed_notebooks()


def test_the_runbooks_are_among_the_committed_notebooks():
    assert RUNBOOK_FILES <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_clean(path):
    nb = nbformat.read(str(path), as_version=4)
    assert residue(nb) == []
    if path.name in RUNBOOK_FILES:
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"


def test_an_executed_notebook_is_caught():
    nb = nbformat.read(str(NOTEBOOKS[0]), as_version=4)
    i = next(n for n, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells[i].outputs = [nbformat.v4.new_output("stream", text="prod-db.internal")]
    nb.cells[i].execution_count = 3
    nb.metadata["papermill"] = {"parameters": {}}
    assert residue(nb) == [
        f"cell {i}: outputs",
        f"cell {i}: execution count 3",
        "notebook metadata: papermill",
    ]
