"""post-incident end to end: a scripted incident in the sandbox, a tampered evidence file, the notebook."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runs import nbval, propflow_ops

from propflow_ops.runbooks import RUNBOOKS

NOTEBOOK = RUNBOOKS["post-incident"].path
MODELS = "propflow_ops.sandbox.backend.models:Base"


def z(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


def test_scripted_incident_review_matches_what_happened(world, sandbox_env, tmp_path):
    """api-oom injected -> triage -> api-down -> api-down applying force-new-deployment -> the fix takes effect
    (the world is healthy again) -> api-down all ok -> review."""
    inc = "INC-SCRIPTED"
    started = datetime.now(UTC) - timedelta(minutes=3)
    common = (
        "--incident",
        inc,
        "--started-at",
        z(started),
        "--severity",
        "P0",
        "--no-html",
    )  # the record's values
    world("api-oom")
    triage = propflow_ops(sandbox_env, "run", "triage", *common, "-p", "models", MODELS, output_dir=tmp_path)
    assert "api-down" in triage.evidence["recommended_runbooks"], triage.proc.stderr[-2000:]
    first = propflow_ops(sandbox_env, "run", "api-down", *common, output_dir=tmp_path)
    assert first.code == 1 and "API_HEALTH_FAILING" in first.fails(), first.proc.stderr[-2000:]
    fix = propflow_ops(
        {**sandbox_env, "PROPFLOW_VERIFY_TIMEOUT_S": "5"},  # under api-oom the restart cannot converge
        "run",
        "api-down",
        *common,
        "--reason",
        "test",
        "--apply",
        "force-new-deployment",
        output_dir=tmp_path,
    )
    restart = fix.actions()["force-new-deployment"]
    assert restart["mode"] == "executed", fix.actions()
    assert restart["verified"] is False and "1/2 tasks running" in restart["verification"]["seen"], restart
    world()  # the new deployment's tasks are healthy: the sandbox's stand-in for the fix taking effect
    again = propflow_ops(sandbox_env, "run", "api-down", *common, output_dir=tmp_path)
    assert again.code == 0, again.fails()

    review = propflow_ops(sandbox_env, "review", inc, output_dir=tmp_path)
    assert review.code == 0, review.proc.stdout[-2000:] + review.proc.stderr[-2000:]
    assert review.folder is not None and review.folder.parent.name == inc
    findings = {f["code"]: f["status"] for f in review.evidence["findings"]}
    assert findings["EVIDENCE_TAMPERED"] == "ok" and findings["INCIDENT_NOT_RESOLVED"] == "ok"
    assert findings["RTO_API_MISSED"] == "ok"  # recovered within 15 min of the start
    assert findings["RTO_FRONTEND_MISSED"] == "skipped"
    assert (
        review.evidence["incident"]["severity"] == "P0"
    )  # the incident's, from its record (opened by triage)

    pm = (review.folder / "postmortem.md").read_text()
    assert f"# Post-mortem: incident {inc}" in pm
    assert "- [x] Root cause identified" in pm and "ECS_TASK_OOM (api-down)" in pm
    assert "- [x] Timeline created" in pm
    assert "- [x] Fix implemented: executed: force-new-deployment" in pm
    assert "- [ ] Team debriefed (for people)" in pm
    api_row = next(line for line in pm.splitlines() if line.startswith("| API |"))
    assert api_row.rstrip().endswith("| met |")
    # the timeline, in order: start, triage, api-down (problem seen), the action, recovery, all ok
    rows = [
        line
        for line in pm.split("## Timeline (UTC)")[1].split("##")[0].splitlines()
        if line.startswith("| 20")
    ]
    kinds = [r.split("|")[3].strip() for r in rows]
    assert kinds[0] == "incident start" and kinds[-1] == "all ok"
    assert kinds.index("action executed") > kinds.index("problem seen") and "service recovered" in kinds
    runs = [r.split("|")[4].strip().split(":")[0] for r in rows if r.split("|")[3].strip() == "run"]
    assert runs == ["triage", "api-down", "api-down", "api-down"]
    action = next(r for r in rows if "action executed" in r)
    assert "force-new-deployment" in action
    response = next(line for line in pm.splitlines() if line.startswith("- Response target for P0"))
    assert response.endswith("**met**")  # the first run came ~3 min after a P0 start: within 15 min


def test_a_tampered_evidence_file_is_reported(sandbox_env, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_review import oom_incident

    folder = oom_incident(tmp_path, "INC-TAMPER")
    victim = sorted(p for p in folder.iterdir())[1] / "evidence.json"
    victim.write_text(victim.read_text().replace('"fail"', '"ok"'))
    review = propflow_ops(sandbox_env, "review", "INC-TAMPER", "--no-html", output_dir=tmp_path)
    assert review.code == 1, review.proc.stderr[-2000:]
    tampered = next(f for f in review.evidence["findings"] if f["code"] == "EVIDENCE_TAMPERED")
    assert tampered["status"] == "fail"
    assert f"{victim.parent.name}/evidence.json: tampered" in tampered["detail"]
    assert "tampered or missing" in (review.folder / "postmortem.md").read_text()
    assert review.folder.name.endswith("-post-incident")


def test_review_of_an_unknown_incident_is_a_usage_error(sandbox_env, tmp_path):
    review = propflow_ops(sandbox_env, "review", "INC-NONE", output_dir=tmp_path)
    assert review.code == 2 and review.folder is None
    assert len(review.proc.stderr.strip().splitlines()) == 1 and "INC-NONE" in review.proc.stderr


def test_notebook_runs_top_to_bottom_under_nbval(sandbox_env, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_review import oom_incident

    oom_incident(tmp_path, "INC-NB")
    proc = nbval(NOTEBOOK, {**sandbox_env, "PROPFLOW_OUTPUT_DIR": str(tmp_path)}, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert not list(tmp_path.glob("INC-NB/*post-incident*"))  # interactive: no run folder, nothing written
