"""The apply path of one step (propflow_ops.change.apply) without AWS: the JupyterLab confirmation parameter,
the reason, the lock, a failing verification, the incident record's started/ended events (a crash mid-step
leaves "started"), and how unapplied steps read in a run that applied others."""

from __future__ import annotations

import json

import pytest

from propflow_ops.change import runs
from propflow_ops.change.lock import FileLocks
from propflow_ops.change.target import MARKER, fingerprint
from propflow_ops.findings import Evidence, Finding, Status
from propflow_ops.remediation import Step, run_step
from propflow_ops.sandbox.canaries import CANARY_TWILIO_AUTH_TOKEN

INCIDENT = "INC-UNIT"
SANDBOX = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5999",
    "PROPFLOW_API_URL": "http://127.0.0.1:6999",
    "PROPFLOW_DATABASE_URL": "postgresql://u@/db?host=/tmp/x",
    "PROPFLOW_REDIS_URL": "unix:///tmp/x.sock",
}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    for name in (MARKER, "PROPFLOW_LOCK_TABLE", "PROPFLOW_CHANGE", *SANDBOX, "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROPFLOW_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("PROPFLOW_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # STS for the operator: refused at once
    return tmp_path


def ev(*apply: str, **params) -> Evidence:
    return Evidence("api-down", "t", {"id": INCIDENT}, dict(params), apply=list(apply))


def step(calls: list[int], *, verify=None, name="rollback", fail: BaseException | None = None) -> Step:
    def execute():
        calls.append(1)
        if fail is not None:
            raise fail
        return {"task_definition": "propflow-api:2"}

    return Step(
        name,
        "roll back",
        "aws ecs update-service ...",
        execute,
        resource="ecs:propflow/propflow-api",
        verify=verify,
        undo=lambda r, b, p: {"detail": "roll forward", "command": "aws ecs ... :3"},
    )


def actions(tmp_path) -> list[dict]:
    path = tmp_path / "out" / INCIDENT / "incident.jsonl"
    return (
        [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == "action"]
        if path.exists()
        else []
    )


def test_jupyterlab_applies_only_with_confirm_naming_the_step(isolated):
    calls: list[int] = []
    out = run_step(ev("rollback", reason="INC-UNIT bad deploy"), step(calls))
    assert out.mode == "refused" and calls == [] and 'confirm = "rollback"' in out.action.detail
    assert "not the sandbox" in out.action.detail
    out = run_step(ev("rollback", reason="r", confirm="force-new-deployment"), step(calls))
    assert out.mode == "refused" and calls == []
    out = run_step(ev("rollback", reason="INC-UNIT bad deploy", confirm="rollback"), step(calls))
    assert out.mode == "executed" and calls == [1] and out.action.extra["confirmed"] == "confirm parameter"
    out = run_step(ev("rollback", reason="r", confirm=INCIDENT), step(calls))
    assert out.mode == "executed" and calls == [1, 1]
    assert [(e["phase"], e["mode"]) for e in actions(isolated)] == [
        ("refused", "refused"),
        ("refused", "refused"),
        ("started", "started"),
        ("ended", "executed"),
        ("started", "started"),
        ("ended", "executed"),
    ]
    ended = actions(isolated)[3]
    assert ended["reason"] == "INC-UNIT bad deploy" and ended["by_label"] and ended["by"]["user"]
    assert ended["undo"] == "roll forward aws ecs ... :3" and ended["resource"] == "ecs:propflow/propflow-api"
    from propflow_ops.incident_cli import event_line

    line = event_line(ended)
    assert (
        "step rollback ended: executed" in line and "reason: INC-UNIT bad deploy" in line and "undo:" in line
    )


def test_a_reason_is_required_even_in_the_sandbox(isolated, monkeypatch):
    for k, v in SANDBOX.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(MARKER, fingerprint(SANDBOX))
    calls: list[int] = []
    assert run_step(ev("rollback"), step(calls)).mode == "refused" and calls == []
    out = run_step(ev("rollback", reason="drill"), step(calls))  # the sandbox: no confirmation needed
    assert out.mode == "executed" and calls == [1] and out.action.extra["target"] == "sandbox"


def test_a_held_lock_refuses_with_who_and_since(isolated):
    held = FileLocks(isolated / "locks").acquire(
        "ecs:propflow/propflow-api", "alice@h1 (arn:a)", "scale-service", "INC-OTHER"
    )
    calls: list[int] = []
    out = run_step(ev("rollback", reason="r", confirm="rollback"), step(calls))
    assert out.mode == "refused" and calls == []
    assert (
        "alice@h1 (arn:a)" in out.action.detail
        and held.since in out.action.detail
        and "INC-OTHER" in out.action.detail
    )
    assert "lock break" in out.action.detail


def test_a_step_that_does_not_verify_says_what_was_seen_and_the_run_exits_1(isolated, monkeypatch):
    monkeypatch.setenv("PROPFLOW_VERIFY_TIMEOUT_S", "0")
    e = ev("rollback", reason="r", confirm="rollback")
    out = run_step(e, step([], verify=lambda result, before: lambda: (False, "1/2 tasks running")))
    assert out.mode == "executed" and out.action.extra["verified"] is False
    assert "1/2 tasks running" in out.action.extra["verification"]["seen"]
    assert "NOT VERIFIED: " in repr(out) and "Undo: roll forward" in repr(out)
    evidence = e.to_json()
    assert evidence["status"] == "ok" and runs.exit_code(evidence, 0) == 1
    assert any("NOT VERIFIED" in line for line in runs.lines(evidence))
    ok = ev("rollback", reason="r", confirm="rollback")
    run_step(ok, step([], verify=lambda result, before: lambda: (True, "2/2 running")))
    assert runs.exit_code(ok.to_json(), 0) == 0


def test_a_crash_mid_step_leaves_the_started_record_and_frees_the_lock(isolated):
    with pytest.raises(KeyboardInterrupt):
        run_step(ev("rollback", reason="r", confirm="rollback"), step([], fail=KeyboardInterrupt()))
    assert [e["phase"] for e in actions(isolated)] == ["started"]
    assert FileLocks(isolated / "locks").list() == []


def test_a_failing_finding_refuses_a_guarded_step_unless_forced(isolated, monkeypatch):
    guarded = Step(
        "migration-downgrade",
        "undo",
        "alembic downgrade -1",
        lambda: "done",
        refused_while=("MIGRATION_OBJECT_EXISTS",),
    )
    e = ev("migration-downgrade", reason="r", confirm="migration-downgrade")
    e.add(Finding("MIGRATION_OBJECT_EXISTS", Status.FAIL, "exists"))
    assert run_step(e, guarded).mode == "refused"
    e = ev("migration-downgrade", reason="r", confirm="migration-downgrade", force=True)
    e.add(Finding("MIGRATION_OBJECT_EXISTS", Status.FAIL, "exists"))
    out = run_step(e, guarded)
    assert out.mode == "executed" and out.action.extra["forced"] == "despite MIGRATION_OBJECT_EXISTS"


def test_unapplied_steps_in_a_run_that_applied_others_say_so(isolated):
    e = ev("force-new-deployment", reason="r")
    assert run_step(e, step([])).action.detail.startswith("Not applied in this run.")
    assert run_step(ev(), step([])).action.detail.startswith("Not applied (read-only run).")


def test_a_secret_in_the_reason_is_masked_everywhere(isolated):
    reason = f"rotated token {CANARY_TWILIO_AUTH_TOKEN}"
    e = ev("rollback", reason=reason, confirm="rollback")
    run_step(e, step([]))
    assert CANARY_TWILIO_AUTH_TOKEN not in json.dumps(e.to_json())
    assert CANARY_TWILIO_AUTH_TOKEN not in (isolated / "out" / INCIDENT / "incident.jsonl").read_text()
