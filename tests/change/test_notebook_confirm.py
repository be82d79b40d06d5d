"""JupyterLab's way: the notebook itself (papermill here, as a kernel in JupyterLab runs it, without the
runner), against a target that is not the sandbox, applies a step only when ``confirm`` names it."""

from __future__ import annotations

import json

import pytest

from propflow_ops.change.target import MARKER
from propflow_ops.findings import EVIDENCE_PATH_ENV
from propflow_ops.runbooks import RUNBOOKS

pytestmark = pytest.mark.slow


def _run(tmp_path, name: str, **params) -> dict:
    import papermill as pm

    evidence = tmp_path / f"{name}.json"
    pm.execute_notebook(
        str(RUNBOOKS["api-down"].path),
        str(tmp_path / f"{name}.ipynb"),
        kernel_name="python3",
        parameters={"incident_id": "INC-LAB", **params},
        progress_bar=False,
        cwd=str(RUNBOOKS["api-down"].path.parent),
    )
    return {a["step"]: a for a in json.loads(evidence.read_text())["actions"]} if evidence.exists() else {}


def test_the_remediation_cell_applies_only_with_confirm(world, sandbox_env, tmp_path, monkeypatch):
    sb = world("api-bad-deploy")
    for k, v in sandbox_env.items():
        if k != MARKER:  # the sandbox's targets without its marker: "not the sandbox"
            monkeypatch.setenv(k, v)
    monkeypatch.delenv(MARKER, raising=False)
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(tmp_path / "out"))
    ecs = sb.aws.client("ecs")
    before = ecs.describe_services(cluster="propflow", services=["propflow-api"])["services"][0][
        "taskDefinition"
    ]
    monkeypatch.setenv(EVIDENCE_PATH_ENV, str(tmp_path / "unconfirmed.json"))
    refused = _run(tmp_path, "unconfirmed", apply=["rollback"], reason="INC-LAB bad deploy")
    assert (
        refused["rollback"]["mode"] == "refused" and 'confirm = "rollback"' in refused["rollback"]["detail"]
    )
    assert (
        ecs.describe_services(cluster="propflow", services=["propflow-api"])["services"][0]["taskDefinition"]
        == before
    )
    monkeypatch.setenv(EVIDENCE_PATH_ENV, str(tmp_path / "confirmed.json"))
    applied = _run(tmp_path, "confirmed", apply=["rollback"], reason="INC-LAB bad deploy", confirm="rollback")
    assert (
        applied["rollback"]["mode"] == "executed" and applied["rollback"]["confirmed"] == "confirm parameter"
    )
    assert applied["rollback"]["verified"] is True, applied["rollback"]  # the sandbox's service converged
    assert applied["force-new-deployment"]["detail"].startswith("Not applied in this run.")
    assert (
        ecs.describe_services(cluster="propflow", services=["propflow-api"])["services"][0]["taskDefinition"]
        != before
    )
    record = (tmp_path / "out" / "INC-LAB" / "incident.jsonl").read_text()
    assert '"phase": "started"' in record and '"phase": "ended"' in record
