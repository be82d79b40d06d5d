"""After ``update_service`` the sandbox's ECS service converges as ECS would, or does not, as the world says
(``propflow_ops/sandbox/converge.py``): seen through boto3 and through the verifier an applied step uses."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from propflow_ops.change import verify
from propflow_ops.sandbox.converge import SETTLE_S, EcsModel
from propflow_ops.sources import aws as aws_source

from .helpers import aws, http, service, tasks

CLUSTER, SERVICE = "propflow", "propflow-api"


@pytest.fixture
def pointed(sandbox_env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Mapping[str, str]:
    """``propflow_ops.sources.aws`` (what the verifier reads through) pointed at the sandbox."""
    for k, v in sandbox_env.items():
        monkeypatch.setenv(k, v)
    aws_source.clear_cache()
    yield sandbox_env
    aws_source.clear_cache()


def short(arn: Any) -> str:
    return str(arn).rsplit("/", 1)[-1]


def deployments(svc: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [
        (d["status"], d.get("rolloutState", ""), d["runningCount"], short(d["taskDefinition"]))
        for d in svc["deployments"]
    ]


def settled(env: Mapping[str, str], sb: Any) -> dict[str, Any]:
    """The service once the rollout under way has ended (bounded)."""
    deadline = time.monotonic() + SETTLE_S + 5
    while sb.aws.rollout.busy and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sb.aws.rollout.busy, "the rollout did not end"
    return service(env)


def probe(env: Mapping[str, str], task_definition: str | None, timeout: float) -> verify.Verification:
    return verify.wait_until(
        verify.ecs_service(
            CLUSTER, SERVICE, task_definition=task_definition, health_url=env["PROPFLOW_API_URL"] + "/health"
        ),
        timeout=timeout,
        interval=0.5,
    )


def test_rollback_of_a_bad_deploy_converges_and_verifies_within_seconds(world, pointed):
    env = pointed
    sb = world("api-bad-deploy")
    before = service(env)
    assert short(before["taskDefinition"]) == "propflow-api:4"
    assert deployments(before)[0][:2] == ("PRIMARY", "FAILED")  # the scenario's own deploy is left alone
    old_running = {t["taskArn"] for t in tasks(env, "RUNNING")}
    aws(env, "ecs").update_service(cluster=CLUSTER, service=SERVICE, taskDefinition="propflow-api:3")
    # at once: a new PRIMARY deployment IN_PROGRESS, the old one still serving (as ECS starts a deployment)
    started = service(env)
    assert deployments(started)[0] == ("PRIMARY", "IN_PROGRESS", 0, "propflow-api:3"), started["deployments"]
    assert ("ACTIVE", "COMPLETED", 1, "propflow-api:3") in deployments(started)
    assert started["runningCount"] == 1
    seen = probe(env, "propflow-api:3", timeout=SETTLE_S + 5)
    assert seen.verified, seen
    assert seen.waited_s < SETTLE_S + 3, seen
    assert (
        "deployment COMPLETED, 2/2 tasks running on propflow-api:3, 1 deployment(s); /health 200" in seen.seen
    )
    after = settled(env, sb)
    assert deployments(after) == [("PRIMARY", "COMPLETED", 2, "propflow-api:3")]
    assert after["taskDefinition"].startswith("arn:aws:ecs:")  # ECS answers the ARN
    assert (after["runningCount"], after["pendingCount"], after["desiredCount"]) == (2, 0, 2)
    assert "has reached a steady state" in after["events"][0]["message"]
    # the scheduler replaced the tasks: the new ones run the target revision, the old ones were stopped
    running = tasks(env, "RUNNING")
    new = [t for t in running if t["taskArn"] not in old_running and t.get("lastStatus") == "RUNNING"]
    assert len(new) == 2 and {short(t["taskDefinitionArn"]) for t in new} == {"propflow-api:3"}
    stopped = [
        aws(env, "ecs").describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0] for arn in old_running
    ]
    assert stopped and all(t["lastStatus"] == "STOPPED" for t in stopped)  # even the one already on :3

    # deploying the bad revision again fails again: circuit breaker, the previous deployment keeps serving
    aws(env, "ecs").update_service(cluster=CLUSTER, service=SERVICE, taskDefinition="propflow-api:4")
    again = probe(env, "propflow-api:4", timeout=SETTLE_S + 2)
    assert not again.verified and "deployment FAILED" in again.seen, again
    failed = settled(env, sb)
    assert deployments(failed) == [
        ("PRIMARY", "FAILED", 0, "propflow-api:4"),
        ("ACTIVE", "COMPLETED", 2, "propflow-api:3"),
    ]
    assert failed["runningCount"] == 2 and "deployment failed" in failed["events"][0]["message"]


def test_force_new_deployment_under_api_oom_does_not_converge(world, pointed):
    env = pointed
    sb = world("api-oom")
    assert sb.aws.rollout.model == EcsModel(oom=True)
    aws(env, "ecs").update_service(cluster=CLUSTER, service=SERVICE, forceNewDeployment=True)
    seen = probe(env, None, timeout=SETTLE_S + 2)
    assert not seen.verified and "1/2 tasks running" in seen.seen, seen
    after = settled(env, sb)
    assert deployments(after) == [("PRIMARY", "IN_PROGRESS", 1, "propflow-api:3")]
    assert (after["runningCount"], after["desiredCount"]) == (1, 2)
    assert http("GET", env["PROPFLOW_API_URL"] + "/health")[0] == 503  # still down: nothing fixed it
    time.sleep(SETTLE_S + 0.5)  # and it stays so: nothing converges it later
    assert deployments(service(env)) == [("PRIMARY", "IN_PROGRESS", 1, "propflow-api:3")]


def test_healthy_world_restart_and_scale_converge(world, pointed):
    env = pointed
    sb = world()
    first = service(env)["deployments"][0]["id"]
    aws(env, "ecs").update_service(cluster=CLUSTER, service=SERVICE, forceNewDeployment=True)
    assert probe(env, "propflow-api:3", timeout=SETTLE_S + 5).verified
    after = settled(env, sb)
    assert len(after["deployments"]) == 1 and after["deployments"][0]["id"] != first
    aws(env, "ecs").update_service(cluster=CLUSTER, service=SERVICE, desiredCount=3)
    scaling = service(env)
    assert (scaling["runningCount"], scaling["desiredCount"]) == (2, 3)  # not at once, as moto would have it
    seen = probe(env, "propflow-api:3", timeout=SETTLE_S + 5)
    assert seen.verified and "3/3 tasks running" in seen.seen, seen


def test_a_reset_drops_a_rollout_under_way_and_the_model(world, pointed):
    env = pointed
    sb = world("api-bad-deploy")
    assert sb.aws.rollout.model.failing == {"propflow-api:4"}
    aws(env, "ecs").update_service(cluster=CLUSTER, service=SERVICE, taskDefinition="propflow-api:3")
    assert sb.aws.rollout.busy
    sb = world()
    assert not sb.aws.rollout.busy and sb.aws.rollout.model == EcsModel()
    time.sleep(SETTLE_S + 0.5)
    healthy = service(env)
    assert deployments(healthy) == [("PRIMARY", "COMPLETED", 2, "propflow-api:3")]
    assert [e["message"] for e in healthy["events"]][0].endswith("has reached a steady state.")
    assert healthy["deployments"][0]["createdAt"] < healthy["events"][0]["createdAt"]  # the seed's, not new
