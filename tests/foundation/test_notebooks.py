"""Every runbook notebook follows the layout convention of DESIGN.md."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from propflow_ops.run.parameters import COMMON_PARAMETERS, notebook_parameters
from propflow_ops.runbooks import RUNBOOKS, notebooks_dir

NOTEBOOKS = sorted(Path(notebooks_dir()).glob("*.ipynb"))


def test_there_are_notebooks_and_each_is_registered():
    assert NOTEBOOKS, "no notebooks found"
    registered = {rb.notebook for rb in RUNBOOKS.values()}
    assert {p.name for p in NOTEBOOKS} <= registered


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    assert not [i for i, c in enumerate(nb.cells) if c.get("outputs") or c.get("execution_count")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_typed_commented_parameters_cell_that_papermill_reads(path):
    nb = nbformat.read(str(path), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    ours = notebook_parameters(path)
    assert set(COMMON_PARAMETERS) <= set(ours)
    theirs = pm.inspect_notebook(str(path))
    assert set(theirs) == set(ours), "papermill cannot parse some parameter lines (a '=' in a comment?)"
    for name, info in ours.items():
        assert info["help"], f"parameter {name} has no comment"
        assert info["type"] in {"str", "int", "float", "bool", "list", "list[str]", "dict"}, (
            name,
            info["type"],
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_stay_thin(path):
    nb = nbformat.read(str(path), as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        assert not re.search(r"^\s*(def |class |try:|for |while )", cell.source, re.M), (
            f"cell {i} holds logic"
        )
        assert len(cell.source.strip().splitlines()) <= 8, f"cell {i} is longer than a call and a display"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_layout_banner_first_and_evidence_saved_last(path):
    nb = nbformat.read(str(path), as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "begin(" in code[1], "the cell after the parameters must start the run (banner)"
    assert "ev.save()" in code[-1], "the last cell saves the evidence and shows the findings"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
