from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from propflow_ops.checks import ecs

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def svc(**kw):
    base = {
        "found": True,
        "serviceName": "propflow-api",
        "status": "ACTIVE",
        "desiredCount": 2,
        "runningCount": 2,
        "pendingCount": 0,
        "taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/propflow-api:3",
        "deployments": [
            {
                "id": "ecs-svc/1",
                "status": "PRIMARY",
                "rolloutState": "COMPLETED",
                "taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/propflow-api:3",
                "failedTasks": 0,
            }
        ],
    }
    return base | kw


def test_service_degraded():
    assert ecs.service_degraded(svc()).status == "ok"
    f = ecs.service_degraded(svc(runningCount=1, pendingCount=1))
    assert f.status == "fail" and f.data["running"] == 1 and "1/2" in f.title
    assert ecs.service_degraded({"found": False, "failure": "MISSING"}, name="x").status == "fail"
    assert ecs.service_degraded(svc(status="DRAINING")).status == "fail"
    assert ecs.service_degraded(RuntimeError("AccessDenied")).status == "error"


def test_deployment_failed():
    assert ecs.deployment_failed(svc()).status == "ok"
    failed = svc(
        deployments=[
            {
                "id": "ecs-svc/2",
                "status": "PRIMARY",
                "rolloutState": "FAILED",
                "failedTasks": 3,
                "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start.",
                "taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/propflow-api:4",
            },
            {
                "id": "ecs-svc/1",
                "status": "ACTIVE",
                "rolloutState": "COMPLETED",
                "taskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/propflow-api:3",
            },
        ]
    )
    f = ecs.deployment_failed(failed)
    assert f.status == "fail" and "propflow-api:4" in f.title and "circuit breaker" in f.detail
    in_progress = svc(
        deployments=[{"id": "d", "status": "PRIMARY", "rolloutState": "IN_PROGRESS", "failedTasks": 2}]
    )
    assert ecs.deployment_failed(in_progress).status == "warn"


def container_rows(*tasks):
    rows = []
    for arn, reason, exit_code, stopped, creason in tasks:
        rows.append(
            {
                "taskArn": arn,
                "lastStatus": "STOPPED",
                "desiredStatus": "STOPPED",
                "stoppedReason": reason,
                "stopCode": "EssentialContainerExited",
                "stoppedAt": pd.Timestamp(stopped),
                "startedAt": pd.NaT,
                "createdAt": pd.NaT,
                "taskDefinitionArn": "td/propflow-api:3",
                "group": "service:propflow-api",
                "container": "api",
                "exitCode": exit_code,
                "reason": creason,
            }
        )
    return pd.DataFrame(rows)


def test_task_oom_by_reason_or_exit_code_in_the_window():
    start = NOW - timedelta(minutes=60)
    by_reason = container_rows(
        ("t/1", "OutOfMemoryError: Container killed", 1, NOW - timedelta(minutes=5), None)
    )
    assert ecs.task_oom(by_reason, start=start).status == "fail"
    by_exit = container_rows(
        ("t/2", "Essential container in task exited", 137, NOW - timedelta(minutes=5), None)
    )
    f = ecs.task_oom(by_exit, start=start)
    assert f.status == "fail" and f.data["oom_tasks"] == ["2"]
    clean = container_rows(("t/3", "Essential container in task exited", 1, NOW - timedelta(minutes=5), None))
    assert ecs.task_oom(clean, start=start).status == "ok"
    old = container_rows(("t/4", "OutOfMemoryError", 137, NOW - timedelta(hours=3), None))
    assert ecs.task_oom(old, start=start).status == "ok"
    assert ecs.task_oom(RuntimeError("x")).status == "error"
    none = ecs.task_oom(
        container_rows().reindex(columns=["taskArn", "exitCode", "stoppedReason"]), start=start
    )
    assert (none.status, none.data["stopped_tasks"]) == ("ok", 0)
    table = ecs.tasks_table(by_exit)
    assert table.loc[0, "exit_codes"] == [137] and table.loc[0, "oom"]


def test_tasks_table_from_boto3_dicts():
    t = {
        "taskArn": "arn/t9",
        "stoppedReason": "x",
        "stopCode": "TaskFailedToStart",
        "stoppedAt": NOW,
        "containers": [{"exitCode": 0, "reason": "OOMKilled"}],
    }
    table = ecs.tasks_table([t])
    assert table.loc[0, "oom"] and table.loc[0, "stop_code"] == "TaskFailedToStart"


def series(values):
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(
                NOW - timedelta(minutes=len(values)), periods=len(values), freq="1min"
            ),
            "value": values,
        }
    )


def test_memory_and_cpu_thresholds():
    assert ecs.memory_high(series([50.0] * 30)).status == "ok"
    f = ecs.memory_high(series([50.0] * 30 + [95.0] * 5))
    assert f.status == "fail" and f.data["points_above"] == 5
    assert ecs.memory_high(series([50.0] * 30 + [95.0])).status == "fail"  # the latest point counts
    assert ecs.memory_high(series([50.0, 95.0, 50.0])).status == "ok"  # one noisy minute in the past
    assert ecs.memory_high(series([85.0] * 5), threshold=80).status == "fail"
    assert ecs.cpu_high(series([81.0] * 5)).status == "fail"
    assert ecs.cpu_high(series([79.0] * 5)).status == "ok"
    assert ecs.memory_high(series([])).status == "error"
    assert ecs.memory_high(RuntimeError("throttled")).status == "error"


def test_previous_revision():
    arns = [f"arn:aws:ecs:us-east-1:1:task-definition/propflow-api:{n}" for n in (1, 2, 4)]
    assert ecs.previous_revision("propflow-api:4", arns) == "propflow-api:2"
    assert ecs.previous_revision("arn:x/propflow-api:4", arns, explicit=1) == "propflow-api:1"
    assert ecs.previous_revision("propflow-api:4", arns, explicit=3) is None  # not ACTIVE
    assert ecs.previous_revision("propflow-api:1", arns) is None


def test_events_table_newest_first_in_window():
    events = [{"createdAt": NOW - timedelta(minutes=m), "message": f"m{m}"} for m in (90, 5, 30)]
    table = ecs.events_table(events, start=NOW - timedelta(minutes=60))
    assert table["message"].tolist() == ["m5", "m30"]
