"""Saving publishes: a runbook's working copy executed cell by cell in a real kernel, as JupyterLab sends the
cells (execute_request with the cell id), then ``ev.save()``: a new masked run folder of the incident each time,
with ``run.mode`` interactive, the operator, SHA256SUMS and the ``run`` event in the record."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from propflow_ops import incident_record as ir
from propflow_ops import interactive
from propflow_ops.run.folder import verify_sums

REPO = Path(__file__).resolve().parents[2]
CANARY = "CANARY-h9-pUb7"
SECRET_URL = f"postgresql://admin:{CANARY}@db.internal:5432/propflow"


class Kernel:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, cell_id: str, timeout: float = 120) -> list[dict[str, Any]]:
        """Execute as JupyterLab does (the cell id in the request's metadata); the iopub messages it caused."""
        msg = self.kc.session.msg(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            metadata={"cellId": cell_id},
        )
        self.kc.shell_channel.send(msg)
        got: list[dict[str, Any]] = []
        while True:
            m = self.kc.get_iopub_msg(timeout=timeout)
            if m["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                continue
            got.append(m)
            if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                return got

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def lab_kernel(tmp_path: Path) -> Iterator[tuple[Kernel, interactive.LabSession]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PROPFLOW_", "AWS_"))}
    env = {
        **base,
        "PROPFLOW_OUTPUT_DIR": str(tmp_path / "out"),
        "PYTHONPATH": str(REPO),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_REGION": "ap-south-1",
        "MPLBACKEND": "agg",
    }
    session = interactive.prepare("post-incident", "INC-31", env)
    kernel = Kernel({**env, **session.kernel_env}, session.workdir)
    try:
        yield kernel, session
    finally:
        kernel.stop()


def _run_folders(session: interactive.LabSession) -> list[Path]:
    return sorted(
        p for p in (session.root / session.incident).iterdir() if p.is_dir() and not p.name.startswith(".")
    )


@pytest.mark.slow  # a real kernel (not the fast lane)
def test_ev_save_publishes_a_new_masked_interactive_run_each_time(
    lab_kernel: tuple[Kernel, interactive.LabSession],
) -> None:
    kernel, session = lab_kernel
    nb = nbformat.read(str(session.copies["post-incident"]), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code[:-1]:
        errors = [m for m in kernel.run(cell.source, cell.id) if m["msg_type"] == "error"]
        assert not errors, errors[0]["content"]
    # A cell typed in the browser and never saved: it is in the report, masked.
    kernel.run(f"print({SECRET_URL!r})", "typed-in-the-browser")
    sent = kernel.run(code[-1].source, code[-1].id)  # ev.save()
    assert not [m for m in sent if m["msg_type"] == "error"], sent
    shown = json.dumps([m["content"] for m in sent])
    assert "Published" in shown and "propflow-findings" in shown

    (folder,) = _run_folders(session)
    assert folder.name.endswith("-post-incident")
    assert sorted(p.name for p in folder.iterdir()) == [
        "SHA256SUMS",
        "evidence.json",
        "report.html",
        "report.ipynb",
    ]
    assert set(verify_sums(folder).values()) == {"ok"}
    ev = json.loads((folder / "evidence.json").read_text())
    assert ev["run"]["mode"] == "interactive" and ev["run"]["operator"]["user"]
    assert ev["incident"]["id"] == "INC-31" and ev["status"] in ("ok", "problems")
    assert ev["parameters"]["review_incident"] == "INC-31"
    report = nbformat.read(str(folder / "report.ipynb"), as_version=4)
    by_id = {c.get("id"): c for c in report.cells}
    banner = json.dumps(by_id[code[1].id].outputs)  # begin(): the banner, captured from its own cell
    assert "propflow-banner" in banner and "Interactive run for incident INC-31" in banner
    typed = report.cells[-1]
    assert typed.source.startswith("print(") and [o["output_type"] for o in typed.outputs] == ["stream"]
    last_save = by_id[code[-1].id]
    assert any("propflow-findings" in json.dumps(o) for o in last_save.outputs), (
        "the findings table of ev.save()"
    )
    for p in folder.iterdir():
        assert CANARY not in p.read_text(encoding="utf-8"), f"{p.name} holds the canary"
    runs = ir.load(ir.LocalStore(session.root), "INC-31").runs
    assert [(r["mode"], r["run"]) for r in runs] == [("interactive", folder.name)]

    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    kernel.run("ev.save()", code[-1].id)
    folders = _run_folders(session)
    assert len(folders) == 2 and folder in folders, folders
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first, (
        "a second save must not touch the first run"
    )
    assert [r["mode"] for r in ir.load(ir.LocalStore(session.root), "INC-31").runs] == ["interactive"] * 2
    assert not list((session.root / session.incident).glob(".tmp-*"))
