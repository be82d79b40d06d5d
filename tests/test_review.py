"""The post-incident review over fabricated run folders (no sandbox, no kernel): propflow_ops.review."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from propflow_ops import review as rv
from propflow_ops.review.command import review_main
from propflow_ops.review.load import latest_incident
from propflow_ops.review.model import service_of
from propflow_ops.review.render import postmortem_markdown
from propflow_ops.run.folder import write_sums

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def z(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def fabricate_run(
    root: Path,
    incident: str,
    slug: str,
    at_min: float,
    findings: list[tuple[str, str]],
    *,
    duration_min: float = 0.5,
    severity: str = "P0",
    started: datetime = T0,
    actions: list[tuple[str, str, float]] = (),
    recommended: list[str] = (),
    data: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """One run folder as the runner publishes it: evidence.json, report.ipynb, SHA256SUMS."""
    begin = T0 + timedelta(minutes=at_min)
    end = begin + timedelta(minutes=duration_min)
    folder = root / incident / f"{begin.strftime('%Y%m%dT%H%M%SZ')}-{slug}"
    folder.mkdir(parents=True)
    status = "problems" if any(s == "fail" for _, s in findings) else "ok"
    evidence = {
        "schema": "propflow-ops.evidence/1",
        "runbook": slug,
        "title": slug,
        "status": status,
        "incident": {"id": incident, "severity": severity, "started_at": z(started)},
        "run": {"started_at": z(begin), "finished_at": z(end), "duration_s": duration_min * 60},
        "parameters": {},
        "findings": [
            {
                "code": c,
                "status": s,
                "title": f"{c} title",
                "detail": f"{c} detail",
                "data": (data or {}).get(c, {}),
            }
            for c, s in findings
        ],
        "actions": [
            {
                "step": step,
                "mode": mode,
                "command": "aws ecs ...",
                "detail": "done",
                "at": z(T0 + timedelta(minutes=m)),
            }
            for step, mode, m in actions
        ],
        "recommended_runbooks": list(recommended),
        "recommendation_reasons": {r: f"because {r}" for r in recommended},
    }
    (folder / "evidence.json").write_text(json.dumps(evidence), encoding="utf-8")
    (folder / "report.ipynb").write_text('{"cells": []}', encoding="utf-8")
    write_sums(folder, ["report.ipynb", "evidence.json"])
    return folder


API_FAIL = [
    ("API_HEALTH_FAILING", "fail"),
    ("ECS_TASK_OOM", "fail"),
    ("ECS_SERVICE_DEGRADED", "fail"),
    ("DB_UNREACHABLE", "ok"),
]
API_OK = [
    ("API_HEALTH_FAILING", "ok"),
    ("ECS_TASK_OOM", "ok"),
    ("ECS_SERVICE_DEGRADED", "ok"),
    ("DB_UNREACHABLE", "ok"),
]
TRIAGE_FAIL = [("TRIAGE_API", "fail"), ("TRIAGE_ECS", "fail"), ("TRIAGE_DATABASE", "ok"), ("TRIAGE_S3", "ok")]


def oom_incident(root: Path, incident: str = "INC-1", recovered_at_min: float = 10.0, **kw: Any) -> Path:
    """triage (T+2) -> api-down (T+4) -> api-down applying force-new-deployment (T+6) -> api-down all ok."""
    fabricate_run(root, incident, "triage", 2, TRIAGE_FAIL, severity="P1", recommended=["api-down"], **kw)
    fabricate_run(root, incident, "api-down", 4, API_FAIL, **kw)
    fabricate_run(
        root, incident, "api-down", 6, API_FAIL, actions=[("force-new-deployment", "executed", 6.4)], **kw
    )
    fabricate_run(root, incident, "api-down", recovered_at_min - 0.5, API_OK, **kw)
    return root / incident


def test_timeline_rto_and_checklist_of_a_recovered_incident(tmp_path):
    oom_incident(tmp_path)
    r = rv.build_review("INC-1", tmp_path)
    assert len(r.analysed) == 4 and r.problem_files.empty
    assert r.started_at == T0 and r.started_at_given and r.severity == "P0"
    assert r.resolved_at == T0 + timedelta(minutes=10)
    kinds = list(r.timeline["kind"])
    assert kinds[0] == "incident start" and kinds[-1] == "all ok"
    assert kinds.count("run") == 4 and kinds.count("action executed") == 1
    seen = r.timeline[r.timeline["kind"] == "problem seen"]
    first = dict(zip(seen["what"].str.split(" ").str[0], seen["t_plus_min"], strict=True))
    assert first == {
        "TRIAGE_API": 2.5,
        "TRIAGE_ECS": 2.5,
        "API_HEALTH_FAILING": 4.5,
        "ECS_TASK_OOM": 4.5,
        "ECS_SERVICE_DEGRADED": 4.5,
    }
    action = r.timeline[r.timeline["kind"] == "action executed"].iloc[0]
    assert action["t_plus_min"] == 6.4 and "force-new-deployment" in action["what"]
    # the escalation step at 15 min never fell due: resolved at T+10
    assert "escalation due" not in kinds
    assert list(r.escalation["fell_due"]) == ["no: resolved before it fell due"] * 4
    rto = r.rto.set_index("service")
    assert rto.loc["API", "verdict"] == "met" and rto.loc["API", "recovery_min"] == 10.0
    assert rto.loc["Database", "verdict"] == "not affected (checked, never failed)"
    assert rto.loc["File Storage", "verdict"] == "not affected (checked, never failed)"
    assert rto.loc["Frontend", "verdict"].startswith("not measured")
    assert list(r.root_causes["code"]) == ["API_HEALTH_FAILING", "ECS_TASK_OOM", "ECS_SERVICE_DEGRADED"]
    check = r.checklist.set_index("item")["state"].to_dict()
    assert check == {
        "Root cause identified": "done",
        "Impact documented": "for people",
        "Timeline created": "done",
        "Fix implemented": "done",
        "Runbook updated": "for people",
        "Team debriefed": "for people",
        "Follow-up tickets created": "for people",
    }
    assert r.response["verdict"] == "met" and r.response["response_min"] == 2.0
    codes = {f.code: f.status.value for f in rv.findings(r)}
    assert codes == {
        "EVIDENCE_TAMPERED": "ok",
        "INCIDENT_NOT_RESOLVED": "ok",
        "RTO_API_MISSED": "ok",
        "RTO_DATABASE_MISSED": "skipped",
        "RTO_FILE_STORAGE_MISSED": "skipped",
        "RTO_FRONTEND_MISSED": "skipped",
        "RPO_AT_RISK": "skipped",
        "RESPONSE_TIME_MISSED": "ok",
    }
    md = postmortem_markdown(r)
    assert "# Post-mortem: incident INC-1" in md and "- [x] Root cause identified" in md
    assert "- [ ] Team debriefed (for people)" in md and "| API | 15.0 |" in md


def test_a_slow_recovery_misses_the_api_rto_and_escalation_falls_due(tmp_path):
    oom_incident(tmp_path, recovered_at_min=40.0)
    r = rv.build_review("INC-1", tmp_path)
    rto = r.rto.set_index("service")
    assert rto.loc["API", "verdict"] == "missed" and rto.loc["API", "recovery_min"] == 40.0
    fell = dict(zip(r.escalation["action"], r.escalation["fell_due"], strict=True))
    assert fell["Notify on-call engineer"] == "yes, before recovery"
    assert fell["Notify engineering lead"] == "yes, before recovery"
    assert fell["Notify CTO"] == "no: resolved before it fell due"
    due = r.timeline[r.timeline["kind"] == "escalation due"]
    assert list(due["t_plus_min"]) == [15.0, 30.0]
    assert {f.code: f.status.value for f in rv.findings(r)}["RTO_API_MISSED"] == "fail"


def test_an_unresolved_incident_and_the_database_rpo_at_risk(tmp_path):
    inc = "INC-2"
    fabricate_run(
        tmp_path,
        inc,
        "db-connection",
        1,
        [("RDS_NOT_AVAILABLE", "fail"), ("DB_RPO_AT_RISK", "fail")],
        data={"DB_RPO_AT_RISK": {"backup_retention_days": 0}},
    )
    fabricate_run(
        tmp_path, inc, "db-connection", 70, [("RDS_NOT_AVAILABLE", "ok"), ("DB_RPO_AT_RISK", "fail")]
    )
    r = rv.build_review(inc, tmp_path)
    assert r.resolved_at is None
    assert r.rto.set_index("service").loc["Database", "verdict"] == "not recovered"
    assert r.rpo["verdict"] == "at risk" and r.rpo["data"] == {"backup_retention_days": 0}
    codes = {f.code: f.status.value for f in rv.findings(r)}
    assert codes["INCIDENT_NOT_RESOLVED"] == "fail" and codes["RPO_AT_RISK"] == "fail"
    assert codes["RTO_DATABASE_MISSED"] == "fail"
    fell = dict(zip(r.escalation["action"], r.escalation["fell_due"], strict=True))
    assert fell["Notify CTO"] == "yes (incident not resolved)"
    assert fell["Consider external communication"] == "not yet at the last run (incident not resolved)"
    assert r.checklist.set_index("item").loc["Fix implemented", "state"] == "open"


def test_tampered_and_missing_files_are_reported_per_file(tmp_path):
    folder = oom_incident(tmp_path)
    runs = sorted(p for p in folder.iterdir())
    ev_path = runs[1] / "evidence.json"
    ev_path.write_text(ev_path.read_text().replace('"fail"', '"ok"'))  # someone hides the failures
    (runs[2] / "report.ipynb").unlink()
    (runs[3] / "notes.txt").write_text("added later")
    r = rv.build_review("INC-1", tmp_path)
    bad = {(row.run, row.file): row.state for row in r.problem_files.itertuples()}
    assert bad == {(runs[1].name, "evidence.json"): "tampered", (runs[2].name, "report.ipynb"): "missing"}
    unlisted = r.integrity[r.integrity["state"] == "unlisted"]
    assert list(unlisted["file"]) == ["notes.txt"]
    f = {x.code: x for x in rv.findings(r)}["EVIDENCE_TAMPERED"]
    assert (
        f.status.value == "fail"
        and "evidence.json: tampered" in f.detail
        and "report.ipynb: missing" in f.detail
    )
    assert "TAMPERED OR MISSING" in rv.summary_text(r)


def test_no_start_time_given_means_response_zero_by_construction(tmp_path):
    fabricate_run(tmp_path, "ADHOC-1", "triage", 0, TRIAGE_FAIL, started=T0)
    r = rv.build_review("ADHOC-1", tmp_path)
    assert not r.started_at_given and r.response["response_min"] == 0.0
    assert "by construction" in r.response["verdict"]


def test_latest_incident_is_the_default_and_review_runs_are_not_judged(tmp_path):
    oom_incident(tmp_path, "INC-OLD")
    fabricate_run(tmp_path, "INC-NEW", "triage", 30, TRIAGE_FAIL)
    fabricate_run(tmp_path, "INC-OLD", "post-incident", 60, [("EVIDENCE_TAMPERED", "ok")])
    assert latest_incident(tmp_path) == "INC-NEW"
    r = rv.build_review("INC-OLD", tmp_path)
    assert len(r.runs) == 5 and len(r.analysed) == 4


def test_nothing_to_review_gives_skipped_findings_and_empty_figures(tmp_path):
    r = rv.build_review("", tmp_path)
    assert not r.runs and r.notes
    assert {f.status.value for f in rv.findings(r)} == {"skipped"}
    assert rv.timeline_figure(r) is not None
    assert "Nothing to review" in rv.summary_text(r)


@pytest.mark.parametrize(
    "code,service",
    [
        ("ECS_TASK_OOM", "api"),
        ("WS_HANDSHAKE_FAILING", "api"),
        ("API_LATENCY_HIGH", "api"),
        ("TRIAGE_API", "api"),
        ("DB_POOL_EXHAUSTED", "database"),
        ("RDS_NOT_AVAILABLE", "database"),
        ("SCHEMA_DRIFT", "database"),
        ("MIGRATION_PENDING", "database"),
        ("S3_WRITE_DENIED", "file-storage"),
        ("UPLOAD_ERRORS_IN_LOGS", "file-storage"),
        ("TWILIO_AUTH_FAILED", "notifications"),
        ("SOMETHING_ELSE", None),
    ],
)
def test_service_of(code, service):
    assert service_of(code) == service


def test_review_main_on_an_unknown_incident_exits_2_with_one_line(tmp_path, capsys):
    assert review_main("INC-NOPE", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "INC-NOPE" in err[0]


# ---------------------------------------------------------------- the incident record closes the loop

ALICE = {"aws_arn": "arn:aws:iam::111122223333:user/alice", "user": "alice", "host": "laptop-a"}
BOB = {"aws_arn": "unknown", "user": "bob", "host": "laptop-b"}
CAROL = {"aws_arn": "arn:aws:sts::111122223333:assumed-role/oncall/carol", "user": "carol", "host": "ci-7"}


def _with_operator(folder: Path, who: dict[str, Any]) -> None:
    ev = json.loads((folder / "evidence.json").read_text())
    ev["run"]["operator"] = who
    (folder / "evidence.json").write_text(json.dumps(ev))
    write_sums(folder, ["report.ipynb", "evidence.json"])


def test_five_failing_codes_give_five_follow_up_tickets_and_the_evidence_is_never_cut(tmp_path):
    """Before: 'Follow-up tickets created: suggested by the evidence: none' beside five failing codes, and an
    evidence column cut mid-string ('image=...propflow-api:1.1...')."""
    long_arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/propflow-api:" + "7" * 20
    fabricate_run(
        tmp_path,
        "INC-F",
        "api-down",
        4,
        [
            ("API_HEALTH_FAILING", "fail"),
            ("ECS_TASK_OOM", "fail"),
            ("ECS_SERVICE_DEGRADED", "fail"),
            ("ECS_MEMORY_HIGH", "fail"),
            ("LOG_ERROR_SPIKE", "fail"),
        ],
        data={
            "ECS_TASK_OOM": {
                "task_definition": long_arn,
                "exit_code": 137,
                "stopped": [{"task": f"t{i}", "reason": "OutOfMemoryError"} for i in range(9)],
                "note": "x" * 300,
            }
        },
    )
    r = rv.build_review("INC-F", tmp_path)
    assert len(r.root_causes) == 5
    tickets = r.follow_ups
    assert len(tickets) == 5 and list(tickets["from"].str.split(" ").str[0]) == list(r.root_causes["code"])
    assert (
        "memory limit"
        in tickets.set_index(tickets["from"].str.split(" ").str[0]).loc["ECS_TASK_OOM", "ticket"]
    )
    assert all(e.endswith("-api-down/evidence.json") for e in tickets["evidence"])
    follow = r.checklist.set_index("item").loc["Follow-up tickets created", "evidence"]
    assert follow == "suggested by the evidence: 5 ticket(s), listed under 'Follow-up tickets'"
    evidence = r.root_causes.set_index("code").loc["ECS_TASK_OOM", "evidence"]
    assert f"task_definition={long_arn}" in evidence and "exit_code=137" in evidence
    assert "stopped=[9 items]" in evidence and "note=(300 characters)" in evidence and "..." not in evidence
    md = postmortem_markdown(r)
    section = md.split("## Follow-up tickets\n\n")[1].split("\n## ")[0]
    assert section.count("- [ ] ") == 5 and "none" not in section


def test_the_record_drives_start_response_resolution_timeline_and_people(tmp_path):
    from propflow_ops import incident_record as ir

    store = ir.LocalStore(tmp_path)
    inc = "INC-R"
    # the record says the incident began at T0 (P0); the runs' own evidence carries other (later) starts
    ir.open_or_join(
        store,
        inc,
        severity="P0",
        started_at=T0,
        severity_given=True,
        started_given=True,
        by=ALICE,
        via="run triage",
    )
    t = fabricate_run(
        tmp_path,
        inc,
        "triage",
        2,
        TRIAGE_FAIL,
        severity="P1",
        started=T0 + timedelta(minutes=2),
        recommended=["api-down"],
    )
    _with_operator(t, ALICE)
    a = fabricate_run(
        tmp_path,
        inc,
        "api-down",
        16,
        API_FAIL,
        started=T0 + timedelta(minutes=2),
        actions=[("force-new-deployment", "executed", 17)],
    )
    _with_operator(a, BOB)
    with store.session(inc) as s:
        s.append(
            ir.event(
                "escalation",
                ALICE,
                T0 + timedelta(minutes=16),
                step="15m:Notify on-call engineer",
                action="Notify on-call engineer",
                channel="slack",
                status="sent",
            )
        )
        s.append(
            ir.event(
                "escalation",
                ALICE,
                T0 + timedelta(minutes=16),
                step="15m:Notify on-call engineer",
                action="Notify on-call engineer",
                channel="pagerduty",
                status="failed",
                error="HTTP 500",
            )
        )
    ir.record(store, inc, "ack", CAROL, T0 + timedelta(minutes=18))
    ir.record(store, inc, "note", BOB, T0 + timedelta(minutes=19), text="memory limit doubled")
    ir.record(store, inc, "resolve", CAROL, T0 + timedelta(minutes=40), text="stable for 15 min")
    r = rv.build_review(inc, tmp_path)
    assert r.started_at == T0 and r.started_at_given and r.severity == "P0"
    assert r.response["response_min"] == 18.0 and r.response["verdict"] == "missed"
    assert r.response["measured_to"].startswith("acknowledgement by carol@ci-7")
    assert r.resolved_at == T0 + timedelta(minutes=40) and r.resolved_by.startswith("carol@ci-7")
    api = r.rto.set_index("service").loc["API"]
    assert api["recovery_min"] == 40.0 and api["verdict"] == "missed (at the incident's resolution)"
    kinds = list(r.timeline["kind"])
    for kind in (
        "incident opened",
        "escalation sent",
        "escalation failed",
        "acknowledged",
        "note",
        "resolved",
        "action executed",
    ):
        assert kind in kinds, kind
    assert kinds.count("run") == 2
    runs = r.timeline[r.timeline["kind"] == "run"]["what"]
    assert any("by bob@laptop-b (AWS identity unknown)" in w for w in runs)
    note = r.timeline[r.timeline["kind"] == "note"].iloc[0]
    assert (
        note["t_plus_min"] == 19.0
        and "memory limit doubled" in note["what"]
        and "bob@laptop-b" in note["what"]
    )
    sent = r.escalation.set_index("action").loc["Notify on-call engineer", "sent"]
    assert sent == "sent: slack at 2026-11-26T03:16:00Z; failed: pagerduty at 2026-11-26T03:16:00Z (HTTP 500)"
    who = dict(zip(r.people["who"].str.split(" ").str[0], r.people["did"], strict=True))
    assert who == {
        "alice@laptop-a": "opened the incident (run triage), ran triage, sent escalations",
        "bob@laptop-b": "ran api-down, applied force-new-deployment (executed), wrote a note",
        "carol@ci-7": "acknowledged, resolved",
    }
    tickets = list(r.follow_ups["ticket"])
    assert any(t.startswith("Shorten API recovery") for t in tickets)
    assert any(t.startswith("Response took 18.0 min") for t in tickets)
    assert "Fix the pagerduty notification channel: escalations to it failed" in tickets
    codes = {f.code: f for f in rv.findings(r)}
    assert codes["RESPONSE_TIME_MISSED"].detail == "acknowledged after 18.0 min"
    assert (
        codes["INCIDENT_NOT_RESOLVED"].status.value == "ok"
        and "by carol@ci-7" in codes["INCIDENT_NOT_RESOLVED"].detail
    )
    md = postmortem_markdown(r)
    assert "- Resolved: 2026-11-26T03:40:00Z by carol@ci-7" in md
    people = md.split("## People\n\n")[1].split("\n## ")[0]
    assert all(name in people for name in ("alice@laptop-a", "bob@laptop-b", "carol@ci-7"))
    assert "Escalation policy (" in md
