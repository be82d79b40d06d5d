"""sources.ecs against a real moto server (exit codes set on the in-process backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from propflow_ops.sources import aws, ecs
from tests.sources.conftest import REGION


@pytest.fixture
def world(aws_env: str, unique: str) -> dict[str, Any]:
    client = aws.client("ecs")
    cluster = f"propflow-{unique}"
    family = f"propflow-api-{unique}"
    client.create_cluster(clusterName=cluster)
    arns = []
    for rev in range(3):
        td = client.register_task_definition(
            family=family,
            containerDefinitions=[
                {
                    "name": "api",
                    "image": f"propflow/api:{rev}",
                    "memory": 512,
                    "environment": [
                        {
                            "name": "DATABASE_URL",
                            "value": "postgresql://app:s3cret@db.internal:5432/propflow",
                        },
                        {"name": "LOG_LEVEL", "value": f"INFO{rev}"},
                    ],
                    "secrets": [
                        {"name": "TWILIO_AUTH_TOKEN", "valueFrom": "arn:aws:ssm:x:1:parameter/twilio"}
                    ],
                },
                {
                    "name": "sidecar",
                    "image": "envoy",
                    "memory": 128,
                    "environment": [{"name": "LOG_LEVEL", "value": "DEBUG"}],
                },
            ],
        )
        arns.append(td["taskDefinition"]["taskDefinitionArn"])
    svc_name = f"propflow-api-{unique}"
    client.create_service(cluster=cluster, serviceName=svc_name, taskDefinition=arns[-1], desiredCount=2)
    # another family's tasks in the same cluster must never show up
    other = client.register_task_definition(
        family=f"other-{unique}", containerDefinitions=[{"name": "o", "image": "o", "memory": 64}]
    )
    client.run_task(
        cluster=cluster,
        taskDefinition=other["taskDefinition"]["taskDefinitionArn"],
        count=1,
        launchType="FARGATE",
    )
    tasks = client.run_task(
        cluster=cluster, taskDefinition=arns[-1], count=3, group=f"service:{svc_name}", launchType="FARGATE"
    )["tasks"]
    task_arns = [t["taskArn"] for t in tasks]
    client.stop_task(
        cluster=cluster, task=task_arns[0], reason="OutOfMemoryError: Container killed due to memory usage"
    )
    # exit codes and stop times exist only on the backend objects (moto runs in this process)
    from moto.ecs.models import ecs_backends

    backend = ecs_backends["123456789012"][REGION]
    stopped_at = datetime.now(UTC) - timedelta(minutes=3)
    for t in backend.tasks[cluster].values():
        if t.task_arn == task_arns[0]:
            t.containers[0].exitCode = 137
            t.containers[0].reason = "OutOfMemoryError: Container killed due to memory usage"
            t.stopCode = "EssentialContainerExited"
            t.stoppedAt = stopped_at
    return {"cluster": cluster, "family": family, "service": svc_name, "td_arns": arns, "tasks": task_arns}


def test_service(world: dict[str, Any]) -> None:
    svc = ecs.service(world["cluster"], world["service"])
    assert svc["found"] is True
    assert svc["status"] == "ACTIVE"
    assert svc["desiredCount"] == 2
    assert svc["taskDefinition"] == world["td_arns"][-1]
    assert svc["deployments"] and svc["deployments"][0]["taskDefinition"] == world["td_arns"][-1]
    assert "rolloutState" in svc["deployments"][0]
    events = ecs.service_events(svc)
    assert list(events.columns) == ["createdAt", "message"]


def test_service_missing(world: dict[str, Any]) -> None:
    svc = ecs.service(world["cluster"], "does-not-exist")
    assert svc["found"] is False
    assert svc["failure"] == "MISSING"


def test_service_events_frame() -> None:
    svc = {
        "events": [
            {
                "id": "1",
                "createdAt": datetime(2024, 11, 26, 5, 0, tzinfo=UTC),
                "message": "(service x) has reached a steady state.",
            },
            {
                "id": "2",
                "createdAt": datetime(2024, 11, 26, 5, 5, tzinfo=UTC),
                "message": "(service x) was unable to place a task.",
            },
        ]
    }
    df = ecs.service_events(svc)
    assert df["message"].tolist()[0].endswith("unable to place a task.")
    assert str(df["createdAt"].dtype) == "datetime64[ns, UTC]"


def test_stopped_tasks_one_row_per_container(world: dict[str, Any]) -> None:
    df = ecs.stopped_tasks(world["cluster"], world["service"], datetime.now(UTC) - timedelta(hours=1))
    assert set(df["taskArn"]) == {world["tasks"][0]}
    assert set(df.columns) >= {
        "taskArn",
        "lastStatus",
        "stoppedReason",
        "stopCode",
        "stoppedAt",
        "startedAt",
        "taskDefinitionArn",
        "exitCode",
        "reason",
        "container",
    }
    row = df.iloc[0]
    assert row["lastStatus"] == "STOPPED"
    assert row["stoppedReason"].startswith("OutOfMemoryError")
    assert row["exitCode"] == 137
    assert row["stopCode"] == "EssentialContainerExited"
    assert str(df["exitCode"].dtype) == "Int64"
    assert str(df["stoppedAt"].dtype) == "datetime64[ns, UTC]"
    # by family too
    assert set(ecs.stopped_tasks(world["cluster"], world["family"])["taskArn"]) == {world["tasks"][0]}
    # since after the stop: nothing
    assert (
        len(ecs.stopped_tasks(world["cluster"], world["service"], datetime.now(UTC) + timedelta(minutes=1)))
        == 0
    )


def test_running_tasks(world: dict[str, Any]) -> None:
    df = ecs.running_tasks(world["cluster"], world["service"])
    assert set(df["taskArn"]) == set(world["tasks"][1:])
    assert (df["lastStatus"] != "STOPPED").all()


def test_task_definition_and_environment(world: dict[str, Any]) -> None:
    td = ecs.task_definition(world["family"])
    assert td["taskDefinitionArn"] == world["td_arns"][-1]
    env = ecs.task_environment(td)
    assert env["DATABASE_URL"] == "postgresql://app:s3cret@db.internal:5432/propflow"
    assert env["LOG_LEVEL"] == "DEBUG"  # later container wins
    assert "TWILIO_AUTH_TOKEN" in env and env["TWILIO_AUTH_TOKEN"] is None
    names_only = ecs.task_environment(td, include_values=False)
    assert set(names_only) == {"DATABASE_URL", "LOG_LEVEL", "TWILIO_AUTH_TOKEN"}
    assert all(v is None for v in names_only.values())
    assert ecs.task_definition(world["td_arns"][0])["revision"] == 1


def test_current_task_definition_is_the_service_s_else_the_family_s_latest(world: dict[str, Any]) -> None:
    client = aws.client("ecs")
    client.update_service(
        cluster=world["cluster"], service=world["service"], taskDefinition=world["td_arns"][0]
    )
    running = ecs.current_task_definition(world["cluster"], world["service"], world["family"])
    assert running["taskDefinitionArn"] == world["td_arns"][0]  # what the service runs, not the newest
    fallback = ecs.current_task_definition(world["cluster"], "no-such-service", world["family"])
    assert fallback["taskDefinitionArn"] == world["td_arns"][-1]
    with pytest.raises(LookupError, match="no-such-service not found"):
        ecs.current_task_definition(world["cluster"], "no-such-service")


def test_task_definition_revisions_newest_first(world: dict[str, Any]) -> None:
    revs = ecs.task_definition_revisions(world["family"])
    assert revs == list(reversed(world["td_arns"]))
    aws.client("ecs").deregister_task_definition(taskDefinition=world["td_arns"][1])
    assert ecs.task_definition_revisions(world["family"]) == [world["td_arns"][2], world["td_arns"][0]]


def test_list_calls_follow_every_page_and_stop_on_a_repeated_token() -> None:
    """moto answers ECS list calls in one page, so the paging is shown with ECS's page shape here."""
    book = {None: (["a", "b"], "p2"), "p2": (["c"], "p3"), "p3": (["d"], None)}
    asked = []

    def paged(**kwargs: Any) -> dict[str, Any]:
        asked.append(kwargs.get("nextToken"))
        items, token = book[kwargs.get("nextToken")]
        return {"taskArns": items, **({"nextToken": token} if token else {})}

    assert ecs._all_pages(paged, "taskArns", cluster="c") == ["a", "b", "c", "d"]
    assert asked == [None, "p2", "p3"]

    def stuck(**kwargs: Any) -> dict[str, Any]:  # a service that hands back the token it was given
        asked.append(kwargs.get("nextToken"))
        return {"taskArns": ["x"], "nextToken": "same"}

    asked.clear()
    assert ecs._all_pages(stuck, "taskArns") == ["x", "x"]
    assert asked == [None, "same"]


def test_family_that_is_not_a_service_is_tolerated() -> None:
    """Real ECS answers ServiceNotFoundException for serviceName=<a family>; moto does not."""
    from botocore.exceptions import ClientError

    task = {
        "taskArn": "arn:aws:ecs:r:1:task/c/t1",
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "taskDefinitionArn": "arn:aws:ecs:r:1:task-definition/worker:3",
        "group": "family:worker",
        "stoppedReason": "Essential container in task exited",
        "containers": [{"name": "w", "exitCode": 1}],
    }

    class Fake:
        def list_tasks(self, **kw: Any) -> dict[str, Any]:
            if "serviceName" in kw:
                raise ClientError(
                    {"Error": {"Code": "ServiceNotFoundException", "Message": "nope"}}, "ListTasks"
                )
            return {"taskArns": [task["taskArn"]] if kw["desiredStatus"] == "STOPPED" else []}

        def describe_tasks(self, **kw: Any) -> dict[str, Any]:
            return {"tasks": [task] if task["taskArn"] in kw["tasks"] else []}

    df = ecs.stopped_tasks("c", "worker", client=Fake())
    assert df["taskArn"].tolist() == [task["taskArn"]]
    assert df["exitCode"].tolist() == [1]
