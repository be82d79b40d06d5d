from __future__ import annotations

import pytest

from propflow_ops.findings import Evidence
from propflow_ops.remediation import run_step
from propflow_ops.sources import aws
from propflow_ops.steps import ecs as steps


def ev(*apply: str) -> Evidence:
    return Evidence(
        "api-down",
        "Backend API Down",
        {},
        {"reason": "unit test", "confirm": apply[0] if apply else ""},
        apply=list(apply),
    )


@pytest.fixture
def cluster(moto_aws):
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="propflow")
    arns = [
        ecs.register_task_definition(
            family="propflow-api",
            containerDefinitions=[{"name": "api", "image": f"img:{n}", "memory": 512}],
        )["taskDefinition"]["taskDefinitionArn"]
        for n in range(4)
    ]
    ecs.deregister_task_definition(taskDefinition="propflow-api:3")
    ecs.create_service(
        cluster="propflow", serviceName="propflow-api", taskDefinition=arns[-1], desiredCount=2
    )
    return ecs


def current(ecs):
    svc = ecs.describe_services(cluster="propflow", services=["propflow-api"])["services"][0]
    return svc["taskDefinition"].rsplit("/", 1)[-1], svc["desiredCount"]


def test_rollback_plans_the_previous_active_revision_and_changes_nothing(cluster):
    out = run_step(e := ev(), steps.rollback("propflow", "propflow-api", "propflow-api"))
    assert out.mode == "planned"
    # revision 3 is INACTIVE: the previous ACTIVE one below 4 is 2
    assert out.step.command == (
        "aws ecs update-service --cluster propflow --service propflow-api --task-definition propflow-api:2"
    )
    assert current(cluster) == ("propflow-api:4", 2)
    assert e.actions[0].mode == "planned"


def test_rollback_applied_moves_the_service_to_the_previous_revision(cluster):
    out = run_step(ev("rollback"), steps.rollback("propflow", "propflow-api", "propflow-api"))
    assert out.mode == "executed", out.action.detail
    assert current(cluster) == ("propflow-api:2", 2)
    assert out.result["rolled_back_from"] == "propflow-api:4"


def test_rollback_to_an_explicit_revision_and_to_a_missing_one(cluster):
    out = run_step(ev("rollback"), steps.rollback("propflow", "propflow-api", "propflow-api", revision=1))
    assert out.mode == "executed" and current(cluster)[0] == "propflow-api:1"
    out = run_step(ev("rollback"), steps.rollback("propflow", "propflow-api", "propflow-api", revision=3))
    assert out.mode == "failed" and "not ACTIVE" in out.action.detail
    assert current(cluster)[0] == "propflow-api:1"


def test_scale_service(cluster):
    assert run_step(ev(), steps.scale_service("propflow", "propflow-api", 4)).mode == "planned"
    assert current(cluster)[1] == 2
    out = run_step(ev("scale-service"), steps.scale_service("propflow", "propflow-api", 4))
    assert out.mode == "executed" and out.step.command.endswith("--desired-count 4")
    assert current(cluster) == ("propflow-api:4", 4)
    assert run_step(ev("scale-service"), steps.scale_service("propflow", "propflow-api", 0)).mode == "failed"


def test_force_new_deployment(cluster):
    step = steps.force_new_deployment("propflow", "propflow-api")
    assert (
        step.command
        == "aws ecs update-service --cluster propflow --service propflow-api --force-new-deployment"
    )
    out = run_step(ev("force-new-deployment"), step)
    assert out.mode == "executed" and out.result["task_definition"] == "propflow-api:4"
    assert current(cluster) == ("propflow-api:4", 2)


def test_rollback_without_aws_is_a_plan_that_says_why(moto_aws):
    out = run_step(ev("rollback"), steps.rollback("propflow", "nope", "propflow-api"))
    assert out.mode == "failed" and out.step.precondition
