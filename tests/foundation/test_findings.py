import json

import pytest

from propflow_ops.findings import Action, Evidence, Finding, FindingsTable, Status, write_json_atomic


def make_ev(**kw):
    return Evidence(
        runbook="api-down",
        title="Backend API Down",
        incident={
            "id": "INC-7",
            "severity": "P0",
            "started_at": "2026-11-26T03:00:00Z",
            "response_due_at": "2026-11-26T03:15:00Z",
            "escalation_due": None,
        },
        parameters={"cluster": "propflow", "db_password": "hunter2hunter2"},
        **kw,
    )


def test_finding_codes_must_be_upper_snake():
    with pytest.raises(ValueError):
        Finding("api-down", Status.FAIL, "x")
    assert Finding.fail("ECS_TASK_OOM", "t").status is Status.FAIL


def test_run_status_is_problems_only_when_something_fails():
    ev = make_ev()
    ev.add(
        Finding.ok("A_B", "fine"),
        Finding.warn("C_D", "risky"),
        Finding.skipped("E_F", "n/a", "not configured"),
    )
    assert ev.status() == "ok"
    ev.add([Finding.error("G_H", "could not run", RuntimeError("boom"))])
    assert ev.status() == "ok"
    ev.add(Finding.fail("I_J", "broken"))
    assert ev.status() == "problems"


def test_evidence_json_has_the_contract_shape_and_masks_secrets(tmp_path):
    ev = make_ev()
    ev.add(Finding.fail("ECS_TASK_OOM", "OOM", "token=abcdef123456 from +919999900001", exit_code=137))
    ev.record(Action("rollback", "planned", "aws ecs update-service --cluster propflow", "not applied"))
    ev.recommend("db-connection", "database unreachable")
    path = tmp_path / "evidence.json"
    ev.save(path)
    data = json.loads(path.read_text())
    assert set(data) >= {
        "schema",
        "runbook",
        "title",
        "status",
        "incident",
        "run",
        "parameters",
        "findings",
        "actions",
        "recommended_runbooks",
    }
    assert data["schema"] == "propflow-ops.evidence/1"
    assert data["status"] == "problems"
    assert set(data["run"]) >= {"started_at", "finished_at", "duration_s", "propflow_ops_version", "target"}
    assert data["findings"][0] == {
        "code": "ECS_TASK_OOM",
        "status": "fail",
        "title": "OOM",
        "detail": "token=*** from +91********01",
        "data": {"exit_code": 137},
    }
    assert data["actions"][0]["mode"] == "planned" and data["actions"][0]["at"].endswith("Z")
    assert data["parameters"]["db_password"] == "***"
    assert data["recommended_runbooks"] == ["db-connection"]
    assert "hunter2hunter2" not in path.read_text()


def test_table_renders_worst_first_with_colours():
    html = FindingsTable([Finding.ok("A_B", "fine"), Finding.fail("C_D", "bad")])._repr_html_()
    assert html.index("C_D") < html.index("A_B")
    assert "#b71c1c" in html and "#2e7d32" in html
    assert "FAIL" in repr(FindingsTable([Finding.fail("C_D", "bad")]))


def test_checkpoint_keeps_evidence_current(tmp_path, monkeypatch):
    path = tmp_path / "e.json"
    monkeypatch.setenv("PROPFLOW_EVIDENCE_PATH", str(path))
    ev = make_ev()
    ev.add(Finding.fail("A_B", "bad"))
    assert json.loads(path.read_text())["findings"][0]["code"] == "A_B"


def test_atomic_write_leaves_no_temp_files(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
