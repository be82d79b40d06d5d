"""The lab's working copies: per incident, never notebooks/, parameters from the record and the team
configuration, reset of ``apply`` each session; the save hook masks what reaches the disk."""

from __future__ import annotations

import getpass
import hashlib
import os
from pathlib import Path

import nbformat
import pytest

from propflow_ops import incident_record as ir
from propflow_ops import interactive
from propflow_ops.incident import BadInput
from propflow_ops.run.parameters import notebook_parameters
from propflow_ops.runbooks import RUNBOOKS, notebooks_dir

CANARY = "CANARY-h9-Zq81xx"
SECRET_URL = f"postgresql://admin:{CANARY}@db.internal:5432/propflow"


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def _params(path: Path) -> dict:
    return {k: v["default"] for k, v in notebook_parameters(path).items()}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    cfg = tmp_path / "team.toml"
    cfg.write_text(
        'default_environment = "staging"\n[environments.staging]\naws_region = "ap-south-1"\n'
        '[environments.staging.parameters]\ncluster = "team-cluster"\nservice = "team-api"\n',
        encoding="utf-8",
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROPFLOW_", "AWS_"))}
    return {**base, "PROPFLOW_CONFIG": str(cfg), "PROPFLOW_OUTPUT_DIR": str(tmp_path / "out")}


def test_prepare_writes_a_filled_copy_of_every_runbook_in_the_incident_folder(
    tmp_path: Path, env: dict[str, str]
) -> None:
    before = _tree_hash(notebooks_dir())
    s = interactive.prepare("api-down", "INC-21", env, started_at="2026-11-27T15:00:00Z", severity="P1")
    assert s.workdir == tmp_path / "out" / "INC-21" / ".lab" / getpass.getuser() and s.opened
    assert sorted(p.name for p in s.workdir.glob("*.ipynb")) == sorted(
        rb.notebook for rb in RUNBOOKS.values()
    )
    assert _tree_hash(notebooks_dir()) == before, "notebooks/ must never be written"
    p = _params(s.copies["api-down"])
    assert (p["incident_id"], p["severity"], p["started_at"]) == ("INC-21", "P1", "2026-11-27T15:00:00Z")
    assert (p["cluster"], p["service"], p["apply"]) == ("team-cluster", "team-api", [])
    # Every runbook of the incident gets the record's clock (not its own default severity).
    assert _params(s.copies["api-latency"])["severity"] == "P1"
    assert _params(s.copies["post-incident"])["review_incident"] == "INC-21"
    # Type annotations and comments are kept: the cell still reads as the runbook's parameters cell.
    src = interactive.parameters_cell(nbformat.read(str(s.copies["api-down"]), as_version=4)).source
    assert "cluster: str = 'team-cluster'  # ECS cluster" in src
    state = ir.load(ir.LocalStore(tmp_path / "out"), "INC-21")
    assert state.opened_via == "lab api-down" and state.severity == "P1"
    assert s.kernel_env["AWS_REGION"] == "ap-south-1"
    assert s.kernel_env["PROPFLOW_OUTPUT_DIR"] == str(tmp_path / "out")
    assert s.kernel_env[interactive.INCIDENT_ENV] == "INC-21"


def test_a_second_session_keeps_the_cells_but_never_carries_apply_over(
    tmp_path: Path, env: dict[str, str]
) -> None:
    s = interactive.prepare("api-down", "INC-22", env)
    nb = nbformat.read(str(s.copies["api-down"]), as_version=4)
    cell = interactive.parameters_cell(nb)
    cell.source = interactive.fill_parameters(cell.source, {"apply": ["rollback"], "window_minutes": 15})
    nb.cells.append(nbformat.v4.new_markdown_cell("my notes"))
    nbformat.write(nb, str(s.copies["api-down"]))
    again = interactive.prepare("api-down", "INC-22", env)
    assert not again.opened
    p = _params(again.copies["api-down"])
    assert p["apply"] == [] and p["incident_id"] == "INC-22"
    assert nbformat.read(str(again.copies["api-down"]), as_version=4).cells[-1].source == "my notes"


def test_an_ad_hoc_incident_without_incident(tmp_path: Path, env: dict[str, str]) -> None:
    s = interactive.prepare(None, None, env)
    assert s.incident.startswith("ADHOC-") and (tmp_path / "out" / s.incident / "incident.jsonl").exists()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"incident": "../etc"}, "incident"),
        ({"severity": "P9"}, "P9"),
        ({"started_at": "yesterday"}, "started"),
    ],
)
def test_bad_input_writes_nothing(tmp_path: Path, env: dict[str, str], kw: dict, message: str) -> None:
    args = {"incident": "INC-23", **kw}
    with pytest.raises(BadInput, match=message):
        interactive.prepare("api-down", args.pop("incident"), env, **args)
    assert not (tmp_path / "out").exists()


def test_the_save_hook_masks_sources_outputs_and_text_files() -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(f"url = {SECRET_URL!r}")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=SECRET_URL),
        nbformat.v4.new_output(
            "display_data", data={"text/html": f"<b>{SECRET_URL}</b>", "text/plain": SECRET_URL}
        ),
        nbformat.v4.new_output("error", ename="OperationalError", evalue=SECRET_URL, traceback=[SECRET_URL]),
    ]
    nb.cells.append(cell)
    model = {"type": "notebook", "content": nbformat.from_dict(nb)}
    interactive.pre_save_hook(model, path="01_api_down.ipynb")
    assert CANARY not in nbformat.writes(model["content"])
    text = {"type": "file", "format": "text", "content": f"DATABASE_URL={SECRET_URL}\n"}
    interactive.pre_save_hook(text, path="notes.txt")
    assert CANARY not in text["content"]


def test_fill_parameters_keeps_everything_but_the_values() -> None:
    src = 'a: str = ""  # the a\nb: list = []  # é then b\nc = 3\n'
    out = interactive.fill_parameters(src, {"a": "x#y", "b": ["rollback"], "zz": 1})
    assert out == "a: str = 'x#y'  # the a\nb: list = ['rollback']  # é then b\nc = 3"


def test_masked_code_still_runs_and_holds_no_secret() -> None:
    src = (
        f'ws_token: str = "triage-probe"  # token for /ws/<token>\nurl = "{SECRET_URL}"  # {SECRET_URL}\n'
        f"%env PROPFLOW_DATABASE_URL={SECRET_URL}\nx = 1\n"
    )
    out = interactive.mask_code(src)
    assert CANARY not in out
    assert out.splitlines()[0] == 'ws_token: str = "triage-probe"  # token for /ws/<token>'
    compile("\n".join(line for line in out.splitlines() if not line.startswith("%")), "cell", "exec")
    broken = interactive.mask_code(f'url = "{SECRET_URL}\n')  # not Python: masked whole
    assert CANARY not in broken


def test_two_engineers_on_one_incident_have_their_own_copies(tmp_path: Path) -> None:
    root = tmp_path / "out"
    assert interactive.working_dir(root, "INC-24", "alice") != interactive.working_dir(root, "INC-24", "bob")
    assert interactive.working_dir(root, "INC-24", "../../etc").parent == root / "INC-24" / ".lab"
