"""A step applied from a cell (or headlessly) is in the incident's append-only record before it starts and after
it ends: a kernel that dies mid-step leaves the ``started`` event with its operator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from propflow_ops import incident_record as ir
from propflow_ops.findings import Evidence
from propflow_ops.remediation import Step, run_step

REPO = Path(__file__).resolve().parents[2]


def _ev(apply: list[str], incident: str = "INC-9") -> Evidence:
    # change control: a reason, and (no sandbox here) the notebook's confirmation naming the step
    return Evidence(
        runbook="api-down",
        title="t",
        incident={"id": incident},
        parameters={"reason": "INC-9: API OOM-killed", "confirm": apply[0] if apply else ""},
        apply=apply,
    )


@pytest.fixture(autouse=True)
def _locks(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The change lock in a folder of its own (never the home folder's, never the tested output folder)."""
    monkeypatch.setenv("PROPFLOW_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
    monkeypatch.delenv("PROPFLOW_LOCK_TABLE", raising=False)


def _actions(root: Path, incident: str = "INC-9") -> list[dict]:
    return [e for e in ir.LocalStore(root).events(incident) if e.get("event") == "action"]


def test_started_is_written_before_the_step_runs_and_ended_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(tmp_path))
    seen_during: list[list[dict]] = []

    def execute() -> str:
        seen_during.append(_actions(tmp_path))
        return "rolled back to propflow-api:3"

    out = run_step(_ev(["rollback"]), Step("rollback", "roll back", "aws ecs update-service ...", execute))
    assert out.mode == "executed"
    (during,) = seen_during
    assert [(e["phase"], e["step"]) for e in during] == [("started", "rollback")]
    after = _actions(tmp_path)
    assert [(e["phase"], e["mode"]) for e in after] == [("started", "started"), ("ended", "executed")]
    ended = after[1]
    assert ended["detail"] == "rolled back to propflow-api:3"
    assert ended["reason"] == "INC-9: API OOM-killed" and ended["runbook"] == "api-down"
    assert ended["by"]["user"] and ended["by"]["host"] and ended["by_label"]
    assert ended["at"] == out.action.to_json()["at"]  # the same moment as the evidence's action


def test_a_failed_step_is_ended_failed_and_a_planned_one_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(tmp_path))

    def boom() -> str:
        raise RuntimeError("AccessDenied")

    run_step(_ev(["rollback"]), Step("rollback", "roll back", "aws ...", boom))
    run_step(_ev([]), Step("force-new-deployment", "restart", "aws ...", lambda: "x"))
    assert [(e["phase"], e["mode"], e["step"]) for e in _actions(tmp_path)] == [
        ("started", "started", "rollback"),
        ("ended", "failed", "rollback"),
    ]


def test_a_kernel_killed_mid_step_leaves_the_started_event(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import os
        from propflow_ops.findings import Evidence
        from propflow_ops.remediation import Step, run_step
        ev = Evidence(runbook="api-down", title="t", incident={"id": "INC-9"}, apply=["rollback"],
                      parameters={"reason": "r", "confirm": "rollback"})
        run_step(ev, Step("rollback", "roll back", "aws ...", lambda: os._exit(137)))
    """)
    env = {
        **os.environ,
        "PROPFLOW_OUTPUT_DIR": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "PROPFLOW_LOCK_DIR": str(tmp_path / ".locks"),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }  # STS refused at once: the operator is 'unknown', fast
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 137, proc.stderr
    (started,) = _actions(tmp_path)
    assert started["phase"] == "started" and started["step"] == "rollback" and started["by"]["user"]
    raw = (tmp_path / "INC-9" / "incident.jsonl").read_text().splitlines()
    assert json.loads(raw[-1])["phase"] == "started"


def test_without_an_output_folder_nothing_is_written_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROPFLOW_OUTPUT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    run_step(_ev(["rollback"]), Step("rollback", "roll back", "aws ...", lambda: "ok"))
    assert not list(tmp_path.iterdir())
